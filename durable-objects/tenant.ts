// The tenant's control Durable Object: one per tenant (named by the tenant id), holding
// what must be decided once for the whole tenant rather than per shard:
// - the HA tracker's elections, one per cluster (src/distributor/ha.ts), and its
//   counters (deduped samples per cluster, non-HA samples, elected replica changes);
// - the ring history: the tenant's shard counts over time (src/distributor/ring.ts
//   RingHistory, src/distributor/tenant_ring.ts), and the LEAVING shards it retired
//   (LEFT) once everything they held was in R2, tried at each alarm;
// - retention: an hourly alarm deleting the tenant's blocks older than
//   retentionPeriodMs from R2 (src/storage/retention.ts), with its counters;
// - live tail leases: the tenant's open tails over every Worker isolate, capped at
//   maxConcurrentTailRequests (src/querier/loki/tail_limit.ts);
// - query counts and latencies, per user, route and outcome, sent by the isolates in
//   batches (src/observability/queries.ts).
// Being single-threaded, every check-and-update here is a compare-and-set. State is
// in SQLite and loaded into memory before the first request.

import { DurableObject } from "cloudflare:workers";
import { elect, HA_CLEANUP_AFTER_MS, type HaCheckAnswer, type HaCheckRequest, type HaClusterStats, type HaElection, type HaStats } from "../src/distributor/ha";
import { compactRingEntries, MAX_RING_ENTRIES, MAX_SHARDS, RingHistory, type RingEntry, type RingState } from "../src/distributor/ring";
import { RETIRE_AFTER_MS, type TenantReport } from "../src/distributor/tenant_ring";
import { logShardStub, shardStub } from "../src/distributor/shards";
import { limitsFor } from "../src/config/limits";
import { refreshRuntimeConfig } from "../src/config/runtime";
import { retentionStart, sweepBackoffMs, sweepRetention, SWEEP_CONTINUE_MS, SWEEP_PERIOD_MS, type BlockKind } from "../src/storage/retention";
import { TAIL_LEASE_MS, type TailLease, type TailStats } from "../src/querier/loki/tail_limit";
import { addSeries, emptySeries, seriesKey, type QueryReport, type QuerySeries } from "../src/observability/queries";
import { REQUEST_BUCKETS } from "../src/observability/buckets";

interface Counters {
  deduped: number;
  changes: number;
}

/** What the retention sweep has done, for /metrics (persisted: counters survive restarts). */
export interface RetentionStats {
  /** retentionPeriodMs as of the last sweep (0 = keep forever). */
  retentionPeriodMs: number;
  /** Blocks and bytes deleted by retention since the tenant's DO was created, per kind. */
  deleted: Record<BlockKind, { blocks: number; bytes: number }>;
  /** Unix ms of the last sweep that completed, or null. */
  lastSweepAt: number | null;
  /** Sweeps that failed (an R2 error); each is retried by the next alarm. */
  failures: number;
  /** The last failure ("<ISO time>: <message>"), cleared by a sweep that completes. */
  lastError: string | null;
  /** When the next sweep is due (the DO's alarm), or null while the tenant has no blocks. */
  nextSweepAt: number | null;
  /** The sweeps' R2 calls, as shard counters name them: r2_ops/<op>, r2_failures/<op> (cortex_r2_operations_total{component="compactor"}). */
  r2: Record<string, number>;
}

interface SweepState {
  retentionPeriodMs: number;
  deleted: Record<BlockKind, { blocks: number; bytes: number }>;
  lastSweepAt: number | null;
  failures: number;
  consecutiveFailures: number;
  lastError: string | null;
  /** Absent in states saved before R2 calls were counted. */
  r2?: Record<string, number>;
}

export class TenantControl extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private entries: RingEntry[] = [];
  /** LEFT shards (retired LEAVING shards), ascending. */
  private retired: number[] = [];
  private readonly elections = new Map<string, HaElection>();
  private readonly counters = new Map<string, Counters>();
  private nonHaSamples = 0;
  /** Wall clock; tests replace it to drive HA failovers, retention sweeps and tail lease expiry. */
  clock: () => number = () => Date.now();
  /** The blocks bucket; tests wrap it to inject R2 failures. */
  bucket: R2Bucket;
  /** The tenant this DO serves, learnt from its first ring call (DOs do not know their name). */
  private tenant: string | null = null;
  private alarmAt: number | null = null;
  private sweepState: SweepState = { retentionPeriodMs: 0, deleted: { metrics: { blocks: 0, bytes: 0 }, logs: { blocks: 0, bytes: 0 } }, lastSweepAt: null, failures: 0, consecutiveFailures: 0, lastError: null };
  /** Open tails: lease id -> expiry (clock ms). */
  private readonly tails = new Map<string, number>();
  /** Query histograms by seriesKey(user, route, status). */
  private readonly queries = new Map<string, QuerySeries>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.bucket = env.BLOCKS;
    ctx.blockConcurrencyWhile(async () => {
      this.load();
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  private load(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ring (seq INTEGER PRIMARY KEY, shards INTEGER NOT NULL, since REAL NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ha_election (cluster TEXT PRIMARY KEY, replica TEXT NOT NULL, received_at REAL NOT NULL, elected_at REAL NOT NULL)`);
    // Counters outlive elections (forgotten after HA_CLEANUP_AFTER_MS), as Prometheus counters should.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ha_counter (cluster TEXT PRIMARY KEY, deduped INTEGER NOT NULL, changes INTEGER NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS retired_shard (shard INTEGER PRIMARY KEY, at REAL NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS tail_lease (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)`);
    // One row per (user, route, outcome): bounded by the query routes and status classes.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS query_stats (user TEXT NOT NULL, route TEXT NOT NULL, status TEXT NOT NULL, counts TEXT NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (user, route, status))`);
    for (const r of this.sql.exec<{ shards: number; since: number }>(`SELECT shards, since FROM ring ORDER BY seq`)) this.entries.push({ shards: r.shards, since: r.since });
    for (const r of this.sql.exec<{ shard: number }>(`SELECT shard FROM retired_shard ORDER BY shard`)) this.retired.push(r.shard);
    for (const r of this.sql.exec<{ cluster: string; replica: string; received_at: number; elected_at: number }>(`SELECT * FROM ha_election`)) {
      this.elections.set(r.cluster, { replica: r.replica, receivedAt: r.received_at, electedAt: r.elected_at });
    }
    for (const r of this.sql.exec<{ cluster: string; deduped: number; changes: number }>(`SELECT * FROM ha_counter`)) {
      this.counters.set(r.cluster, { deduped: r.deduped, changes: r.changes });
    }
    const nonHa = this.sql.exec<{ v: number }>(`SELECT v FROM kv WHERE k = 'non_ha_samples'`).toArray();
    this.nonHaSamples = nonHa.length > 0 ? nonHa[0].v : 0;
    const tenant = this.sql.exec<{ v: string }>(`SELECT v FROM kv WHERE k = 'tenant'`).toArray();
    this.tenant = tenant.length > 0 ? tenant[0].v : null;
    const sweep = this.sql.exec<{ v: string }>(`SELECT v FROM kv WHERE k = 'retention'`).toArray();
    if (sweep.length > 0) this.sweepState = JSON.parse(sweep[0].v) as SweepState;
    this.sweepState.r2 ??= {};
    for (const r of this.sql.exec<{ id: string; expires_at: number }>(`SELECT id, expires_at FROM tail_lease`)) this.tails.set(r.id, r.expires_at);
    for (const r of this.sql.exec<{ user: string; route: string; status: string; counts: string; sum: number; count: number }>(`SELECT * FROM query_stats`)) {
      this.queries.set(seriesKey(r.user, r.route, r.status), { user: r.user, route: r.route, status: r.status, counts: JSON.parse(r.counts) as number[], sum: r.sum, count: r.count });
    }
  }

  /** Remembers the tenant (for the alarm) and makes sure the retention sweep is scheduled. */
  private use(tenant: string): void {
    if (this.tenant !== tenant) {
      this.tenant = tenant;
      this.sql.exec(`INSERT INTO kv (k, v) VALUES ('tenant', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, tenant);
    }
    if (this.alarmAt === null) this.schedule(this.clock() + SWEEP_PERIOD_MS);
  }

  private schedule(at: number): void {
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  // ---- Ring history ----

  /**
   * The ring history (oldest first). The first caller seeds it with its `shards`
   * limit, as of time 0: data written before the DO existed used that count.
   */
  async ring(tenant: string, seedShards: number, report: TenantReport | null): Promise<RingState> {
    this.use(tenant);
    this.applyReport(report);
    this.seed(seedShards);
    return { entries: this.entries, retired: this.retired };
  }

  /** Changes the tenant's shard count from now on (LEFT shards it lists are ACTIVE again); the history is returned. */
  async setShards(tenant: string, seedShards: number, shards: number): Promise<RingState> {
    if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) throw new Error(`shards must be an integer from 1 to ${MAX_SHARDS}, got ${shards}`);
    this.use(tenant);
    this.seed(seedShards);
    const next = new RingHistory(this.entries, this.retired).withShards(shards, this.clock());
    if (next.entries !== this.entries) {
      this.replaceEntries(next.entries.slice());
      this.replaceRetired([...next.retired]);
    }
    return { entries: this.entries, retired: this.retired };
  }

  /**
   * Retires LEAVING shards that left RETIRE_AFTER_MS ago (no write can still be placed
   * on them) and whose metrics and log shards both hold nothing: everything they had is
   * in R2. Each shard agrees in one synchronous step (src/ingester/lifecycle.ts retire),
   * after which it refuses writes placed by this or an older ring; a shard that still
   * holds data is asked again at the next alarm. Returns the shards still LEAVING.
   */
  private async retireLeaving(tenant: string, now: number): Promise<number> {
    let history = new RingHistory(this.entries, this.retired);
    const candidates = history.retirable(now, RETIRE_AFTER_MS);
    try {
      for (const shard of candidates) {
        const [metrics, logs] = await Promise.all([shardStub(this.env, tenant, shard).retire(history.since), logShardStub(this.env, tenant, shard).retire(history.since)]);
        if (!metrics || !logs) continue;
        // The ring may have changed while the shards answered: retire only a shard still LEAVING.
        history = new RingHistory(this.entries, this.retired);
        if (history.state(shard) !== "LEAVING") continue;
        this.retired = [...history.withRetired(shard).retired].sort((a, b) => a - b);
        this.sql.exec(`INSERT OR REPLACE INTO retired_shard (shard, at) VALUES (?, ?)`, shard, now);
      }
    } catch (e) {
      // A shard that cannot be reached stays LEAVING (still read, still flushed): tried again at the next alarm.
      console.error(`retiring LEAVING shards of tenant ${tenant}: ${e instanceof Error ? e.message : String(e)}`);
    }
    history = new RingHistory(this.entries, this.retired);
    return history.allShards().filter((s) => history.state(s) === "LEAVING").length;
  }

  private replaceRetired(retired: number[]): void {
    this.sql.exec(`DELETE FROM retired_shard`);
    const at = this.clock();
    for (const s of retired) this.sql.exec(`INSERT INTO retired_shard (shard, at) VALUES (?, ?)`, s, at);
    this.retired = retired.sort((a, b) => a - b);
  }

  private seed(shards: number): void {
    if (this.entries.length > 0) return;
    this.replaceEntries([{ shards: Math.min(Math.max(1, Math.floor(shards)), MAX_SHARDS), since: 0 }]);
  }

  private replaceEntries(entries: RingEntry[]): void {
    const kept = compactRingEntries(entries, MAX_RING_ENTRIES);
    // No await between the statements: they commit together (the DO's implicit transaction).
    this.sql.exec(`DELETE FROM ring`);
    kept.forEach((e, i) => this.sql.exec(`INSERT INTO ring (seq, shards, since) VALUES (?, ?, ?)`, i, e.shards, e.since));
    this.entries = kept;
  }

  // ---- HA tracker ----

  /** One election check (Cortex haTracker.checkReplica's CAS), plus the caller's pending counts. */
  async checkReplica(req: HaCheckRequest, report: TenantReport | null): Promise<HaCheckAnswer> {
    this.applyReport(report);
    const now = this.clock();
    const current = this.elections.get(req.cluster);
    if (current === undefined) {
      this.forgetStale(now);
      if (req.maxClusters > 0 && this.elections.size >= req.maxClusters) {
        return { accepted: false, elected: "", receivedAgoMs: 0, tooManyClusters: true };
      }
    }
    const outcome = elect(current, req.replica, now, req.failoverTimeoutMs);
    const e = outcome.election;
    if (outcome.accepted) {
      this.elections.set(req.cluster, e);
      this.sql.exec(
        `INSERT INTO ha_election (cluster, replica, received_at, elected_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (cluster) DO UPDATE SET replica = excluded.replica, received_at = excluded.received_at, elected_at = excluded.elected_at`,
        req.cluster,
        e.replica,
        e.receivedAt,
        e.electedAt,
      );
      if (outcome.changed) this.count(req.cluster, 0, 1);
    } else {
      this.count(req.cluster, req.samples, 0);
    }
    return { accepted: outcome.accepted, elected: e.replica, receivedAgoMs: Math.max(0, now - e.receivedAt), tooManyClusters: false };
  }

  /** Cortex's cleanupOldReplicas: clusters silent for HA_CLEANUP_AFTER_MS no longer count against haMaxClusters. */
  private forgetStale(now: number): void {
    for (const [cluster, e] of this.elections) {
      if (now - e.receivedAt > HA_CLEANUP_AFTER_MS) {
        this.elections.delete(cluster);
        this.sql.exec(`DELETE FROM ha_election WHERE cluster = ?`, cluster);
      }
    }
  }

  private count(cluster: string, deduped: number, changes: number): void {
    let c = this.counters.get(cluster);
    if (!c) this.counters.set(cluster, (c = { deduped: 0, changes: 0 }));
    c.deduped += deduped;
    c.changes += changes;
    this.sql.exec(
      `INSERT INTO ha_counter (cluster, deduped, changes) VALUES (?, ?, ?)
       ON CONFLICT (cluster) DO UPDATE SET deduped = excluded.deduped, changes = excluded.changes`,
      cluster,
      c.deduped,
      c.changes,
    );
  }

  private applyReport(report: TenantReport | null): void {
    if (!report) return;
    for (const [cluster, n] of report.deduped) if (n > 0) this.count(cluster, n, 0);
    if (report.nonHaSamples > 0) {
      this.nonHaSamples += report.nonHaSamples;
      this.sql.exec(`INSERT INTO kv (k, v) VALUES ('non_ha_samples', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, this.nonHaSamples);
    }
  }

  /**
   * The HA tracker's state and counters, for /metrics: per cluster the elected
   * replica and cortex_distributor_deduped_samples_total{user,cluster}. Counts
   * refused from an isolate's cache arrive with that isolate's next call here.
   */
  async haStats(): Promise<HaStats> {
    const clusters: HaClusterStats[] = [];
    const names = new Set([...this.elections.keys(), ...this.counters.keys()]);
    for (const cluster of [...names].sort()) {
      const e = this.elections.get(cluster);
      const c = this.counters.get(cluster);
      clusters.push({
        cluster,
        replica: e?.replica ?? "",
        receivedAtMs: e?.receivedAt ?? 0,
        electedReplicaChanges: c?.changes ?? 0,
        dedupedSamples: c?.deduped ?? 0,
      });
    }
    return { clusters, nonHaSamples: this.nonHaSamples };
  }

  // ---- Retention (src/storage/retention.ts) ----

  /**
   * The hourly sweep. Alarms run at least once and may repeat; the sweep is
   * idempotent. An R2 failure is caught and retried by the next alarm, with backoff
   * under our control (as the ingesters' flush does), rather than workerd's six
   * retries. The alarm is kept while the tenant has blocks; once none are left it
   * stops, and the next ring call (any push or query) sets it again.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const tenant = this.tenant;
    if (tenant === null) return;
    // This DO may run in an isolate no request refreshed: load the runtime overrides
    // (retentionPeriodMs may be one) as the router does.
    await refreshRuntimeConfig(this.env);
    const period = limitsFor(this.env, tenant).retentionPeriodMs;
    const now = this.clock();
    // LEAVING shards that emptied become LEFT; while some stay LEAVING the alarm keeps coming.
    const leaving = await this.retireLeaving(tenant, now);
    if (leaving > 0) this.schedule(now + SWEEP_PERIOD_MS);
    const st = this.sweepState;
    // Each R2 call is counted in the saved state before it is made (src/observability/r2.ts).
    const r2 = (st.r2 ??= {});
    const r2Counts = {
      inc: (key: string, by = 1) => {
        r2[key] = (r2[key] ?? 0) + by;
      },
      commit: () => this.saveSweepState(),
    };
    try {
      const result = await sweepRetention(
        this.bucket,
        tenant,
        retentionStart(this.env, tenant, now),
        (kind, blocks, bytes) => {
          st.deleted[kind].blocks += blocks;
          st.deleted[kind].bytes += bytes;
          this.saveSweepState();
        },
        r2Counts,
      );
      st.retentionPeriodMs = period;
      st.lastSweepAt = now;
      st.consecutiveFailures = 0;
      st.lastError = null;
      this.saveSweepState();
      if (result.more) this.schedule(now + SWEEP_CONTINUE_MS);
      else if (result.metrics.remaining || result.logs.remaining) this.schedule(now + SWEEP_PERIOD_MS);
    } catch (e) {
      st.retentionPeriodMs = period;
      st.failures++;
      st.consecutiveFailures++;
      st.lastError = `${new Date(now).toISOString()}: ${e instanceof Error ? e.message : String(e)}`;
      this.saveSweepState();
      this.schedule(now + sweepBackoffMs(st.consecutiveFailures));
    }
  }

  private saveSweepState(): void {
    this.sql.exec(`INSERT INTO kv (k, v) VALUES ('retention', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, JSON.stringify(this.sweepState));
  }

  /**
   * Retention counters for /metrics (suggested: cortex_compactor_blocks_cleaned_total
   * and a bytes counter, label user, kind metrics|logs) and the sweep's state.
   */
  async retentionStats(): Promise<RetentionStats> {
    const st = this.sweepState;
    return {
      retentionPeriodMs: st.retentionPeriodMs,
      deleted: { metrics: { ...st.deleted.metrics }, logs: { ...st.deleted.logs } },
      lastSweepAt: st.lastSweepAt,
      failures: st.failures,
      lastError: st.lastError,
      nextSweepAt: this.alarmAt,
      r2: { ...st.r2 },
    };
  }

  // ---- Query counts (src/observability/queries.ts) ----

  /** Adds an isolate's batch of query counts: one row written per histogram it touches. */
  async recordQueries(report: QueryReport): Promise<void> {
    this.applyQueries(report);
  }

  /**
   * The query histograms for /metrics, after adding the scraping isolate's own
   * pending counts (one call does both, so a scrape costs no extra request).
   */
  async queryStats(report: QueryReport | null): Promise<QueryReport> {
    if (report !== null) this.applyQueries(report);
    return { series: [...this.queries.values()] };
  }

  private applyQueries(report: QueryReport): void {
    for (const s of report.series) {
      // A layout other than this deploy's (an isolate of another version) cannot be summed: left out, said once.
      if (s.counts.length !== REQUEST_BUCKETS.length + 1 || !(s.count > 0)) {
        if (s.count > 0) console.error(`query counts of ${s.user} ${s.route} ${s.status} left out: ${s.counts.length} buckets, expected ${REQUEST_BUCKETS.length + 1}`);
        continue;
      }
      const key = seriesKey(s.user, s.route, s.status);
      let have = this.queries.get(key);
      if (!have) this.queries.set(key, (have = emptySeries(s.user, s.route, s.status)));
      addSeries(have, s);
      this.sql.exec(
        `INSERT INTO query_stats (user, route, status, counts, sum, count) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (user, route, status) DO UPDATE SET counts = excluded.counts, sum = excluded.sum, count = excluded.count`,
        have.user,
        have.route,
        have.status,
        JSON.stringify(have.counts),
        have.sum,
        have.count,
      );
    }
  }

  // ---- Live tail leases (src/querier/loki/tail_limit.ts) ----

  /**
   * Opens a tail if fewer than `limit` are open (Loki's checkTailRequestLimit). The
   * lease expires TAIL_LEASE_MS after its last renewal, so a tail whose isolate died
   * without releasing frees its slot.
   */
  async acquireTail(tenant: string, limit: number): Promise<TailLease> {
    this.use(tenant);
    const now = this.clock();
    this.expireTails(now);
    const open = this.tails.size;
    if (open >= limit) return { granted: false, id: "", open, leaseMs: TAIL_LEASE_MS };
    const id = crypto.randomUUID();
    this.setTail(id, now + TAIL_LEASE_MS);
    return { granted: true, id, open: open + 1, leaseMs: TAIL_LEASE_MS };
  }

  /**
   * Extends a lease. One that expired (its isolate stalled past TAIL_LEASE_MS) is
   * taken again if a slot is free; false means the slot went to another tail and the
   * caller should end this one.
   */
  async renewTail(id: string, limit: number): Promise<boolean> {
    const now = this.clock();
    const expires = this.tails.get(id);
    if (expires === undefined || expires <= now) {
      this.expireTails(now);
      if (this.tails.size >= limit) return false;
    }
    this.setTail(id, now + TAIL_LEASE_MS);
    return true;
  }

  async releaseTail(id: string): Promise<void> {
    if (!this.tails.delete(id)) return;
    this.sql.exec(`DELETE FROM tail_lease WHERE id = ?`, id);
  }

  async tailStats(): Promise<TailStats> {
    this.expireTails(this.clock());
    return { open: this.tails.size };
  }

  private setTail(id: string, expiresAt: number): void {
    this.tails.set(id, expiresAt);
    this.sql.exec(`INSERT INTO tail_lease (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`, id, expiresAt);
  }

  private expireTails(now: number): void {
    for (const [id, expires] of this.tails) {
      if (expires > now) continue;
      this.tails.delete(id);
      this.sql.exec(`DELETE FROM tail_lease WHERE id = ?`, id);
    }
  }
}
