// The tenant's control Durable Object: one per tenant (named by the tenant id), holding
// what must be decided once for the whole tenant rather than per shard:
// - the HA tracker's elections, one per cluster (src/distributor/ha.ts), and its
//   counters (deduped samples per cluster, non-HA samples, elected replica changes);
// - the ring history: the tenant's shard counts over time (src/distributor/ring.ts
//   RingHistory, src/distributor/tenant_ring.ts).
// Being single-threaded, every check-and-update here is a compare-and-set. State is
// in SQLite and loaded into memory before the first request.

import { DurableObject } from "cloudflare:workers";
import { elect, HA_CLEANUP_AFTER_MS, type HaCheckAnswer, type HaCheckRequest, type HaClusterStats, type HaElection, type HaStats } from "../src/distributor/ha";
import { compactRingEntries, MAX_RING_ENTRIES, MAX_SHARDS, RingHistory, type RingEntry } from "../src/distributor/ring";
import type { TenantReport } from "../src/distributor/tenant_ring";

interface Counters {
  deduped: number;
  changes: number;
}

export class TenantControl extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private entries: RingEntry[] = [];
  private readonly elections = new Map<string, HaElection>();
  private readonly counters = new Map<string, Counters>();
  private nonHaSamples = 0;
  /** Wall clock; tests replace it to drive HA failovers. */
  clock: () => number = () => Date.now();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => this.load());
  }

  private load(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ring (seq INTEGER PRIMARY KEY, shards INTEGER NOT NULL, since REAL NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ha_election (cluster TEXT PRIMARY KEY, replica TEXT NOT NULL, received_at REAL NOT NULL, elected_at REAL NOT NULL)`);
    // Counters outlive elections (forgotten after HA_CLEANUP_AFTER_MS), as Prometheus counters should.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ha_counter (cluster TEXT PRIMARY KEY, deduped INTEGER NOT NULL, changes INTEGER NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v)`);
    for (const r of this.sql.exec<{ shards: number; since: number }>(`SELECT shards, since FROM ring ORDER BY seq`)) this.entries.push({ shards: r.shards, since: r.since });
    for (const r of this.sql.exec<{ cluster: string; replica: string; received_at: number; elected_at: number }>(`SELECT * FROM ha_election`)) {
      this.elections.set(r.cluster, { replica: r.replica, receivedAt: r.received_at, electedAt: r.elected_at });
    }
    for (const r of this.sql.exec<{ cluster: string; deduped: number; changes: number }>(`SELECT * FROM ha_counter`)) {
      this.counters.set(r.cluster, { deduped: r.deduped, changes: r.changes });
    }
    const nonHa = this.sql.exec<{ v: number }>(`SELECT v FROM kv WHERE k = 'non_ha_samples'`).toArray();
    this.nonHaSamples = nonHa.length > 0 ? nonHa[0].v : 0;
  }

  // ---- Ring history ----

  /**
   * The ring history (oldest first). The first caller seeds it with its `shards`
   * limit, as of time 0: data written before the DO existed used that count.
   */
  async ring(tenant: string, seedShards: number, report: TenantReport | null): Promise<RingEntry[]> {
    this.applyReport(report);
    this.seed(seedShards);
    return this.entries;
  }

  /** Changes the tenant's shard count from now on; the history is returned. */
  async setShards(tenant: string, seedShards: number, shards: number): Promise<RingEntry[]> {
    if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) throw new Error(`shards must be an integer from 1 to ${MAX_SHARDS}, got ${shards}`);
    this.seed(seedShards);
    const next = new RingHistory(this.entries).withShards(shards, this.clock());
    if (next.entries !== this.entries) this.replaceEntries(next.entries.slice());
    return this.entries;
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
}
