// Gathering what every shard knows about itself, for /metrics, the stats API and
// the status page. Tenants are those R2 lists (src/storage/blocks.ts listTenants:
// each shard registers itself at its first write); each tenant's shards (every one
// its ring ever listed, src/distributor/tenant_ring.ts) are asked for stats(),
// metrics and log shards alike. Every Durable Object and R2 call goes
// through one gate of MAX_CONCURRENT_SUBREQUESTS (the Workers connection limit).
//
// Each tenant's control Durable Object (durable-objects/tenant.ts) is asked too: its
// HA tracker (elections, deduped and non-HA samples), its retention sweep, and its
// open live tails, and its query counts (this isolate's pending ones are handed over
// in the same call: src/observability/queries.ts). Only tenants listed here are
// asked, through the same gate. The
// ring lookup before them (a fresh one) carries this isolate's pending HA counts to
// that object (src/distributor/tenant_ring.ts PendingReports), so a scrape after a
// push served from this isolate's election cache already counts its refusal.
//
// A shard (or control object) that cannot answer is left out of this collection (and
// counted in `failures`), rather than failing the whole scrape: its counters come
// back at the next one, unchanged, since they are persisted.

import { limitsFor } from "../config/limits";
import type { HaStats } from "../distributor/ha";
import { logShardStub, shardStub } from "../distributor/shards";
import { allShards, tenantStub } from "../distributor/tenant_ring";
import type { RetentionStats } from "../../durable-objects/tenant";
import type { TailStats } from "../querier/loki/tail_limit";
import { rateLimiterStats } from "../limits/rate";
import type { RateLimiterStats } from "../../durable-objects/rate_limiter";
import type { ShardStats } from "../ingester/rpc";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../model/concurrency";
import { listBlocksUnder, listTenants } from "../storage/blocks";
import { prefixOf, type BlockKind } from "../storage/retention";
import type { ShardObservations } from "./shard";
import { queryAccumulator, type QueryReport } from "./queries";

/**
 * What /metrics and /status read from a log shard's stats(), when the log ingester
 * offers it. Every field is optional: whatever is missing is left out.
 */
export interface LogShardView {
  streams?: number;
  chunks?: number;
  headBytes?: number;
  walBytes?: number;
  lastFlushAt?: number | null;
  nextAlarmAt?: number | null;
  lastFlushError?: string | null;
  /** Counters (src/observability/shard.ts COUNTER: lines_received, bytes_received, discarded_lines/<reason>, ...), history of lines received, recent errors. */
  observations?: ShardObservations;
}

export interface ShardSnapshot {
  shard: number;
  metrics: ShardStats | null;
  logs: LogShardView | null;
  /** Why a shard did not answer (the collection went on without it). */
  error: string | null;
}

/**
 * What the tenant's control Durable Object reports. Each part is null when its call
 * failed (`error` says why); the limits are this isolate's view of the tenant's.
 */
export interface TenantControlView {
  /** HA tracker: per cluster the elected replica, when it was last heard, changes, deduped samples; non-HA samples. */
  ha: HaStats | null;
  /** The retention sweep: blocks and bytes deleted per kind, last and next sweep, failures. */
  retention: RetentionStats | null;
  /** Open live tails (unexpired leases). */
  tails: TailStats | null;
  /** Query counts and latencies by user, route and outcome (every isolate's, this one's included). */
  queries: QueryReport | null;
  /** Limits as configured now (the sweep's own retentionPeriodMs is as of its last run). */
  limits: { retentionPeriodMs: number; acceptHaSamples: boolean; maxConcurrentTailRequests: number };
  error: string | null;
}

export interface TenantSnapshot {
  tenant: string;
  shards: ShardSnapshot[];
  /** The tenant's ingestion rate limiter (src/limits/rate.ts): its persisted rate_limited discards. Null if it did not answer. */
  limiter: RateLimiterStats | null;
  /** The tenant's control object (HA, retention, tails); null when not asked (CollectOptions.control false). */
  control: TenantControlView | null;
  /** Why the tenant's ring could not be read (its shards are then the configured count), or null. */
  ringError: string | null;
}

export interface ClusterSnapshot {
  /** Unix ms when the collection started. */
  at: number;
  tenants: TenantSnapshot[];
  /** Shards (rate limiters, tenant control objects) that failed to answer, by kind. */
  failures: { metrics: number; logs: number; limiter: number; control: number };
}

export interface CollectOptions {
  /** Only these tenants (no R2 listing). Default: every tenant R2 lists. */
  tenants?: string[];
  /** Ask the log shards too (default true). */
  logs?: boolean;
  /** Ask each tenant's control object (HA, retention, tails) too (default true). */
  control?: boolean;
}

export async function collectCluster(env: Env, gate: Semaphore = new Semaphore(MAX_CONCURRENT_SUBREQUESTS), opts: CollectOptions = {}): Promise<ClusterSnapshot> {
  const at = Date.now();
  const names = opts.tenants ?? (await gate.run(() => listTenants(env.BLOCKS)));
  const failures = { metrics: 0, logs: 0, limiter: 0, control: 0 };
  const withLogs = opts.logs ?? true;
  const withControl = opts.control ?? true;
  const tenants = await Promise.all(
    names.map(async (tenant): Promise<TenantSnapshot> => {
      // Every shard the tenant's ring ever listed (run-time resharding only adds to
      // that list), so a shard's counters never drop out of the sums. The ring is kept
      // by the tenant's control object: if it does not answer, the configured shard
      // count stands in (a shard only a past ring listed is then missed this once).
      let ringError: string | null = null;
      const ids = await gate.run(() => allShards(env, tenant)).catch((e: unknown) => {
        ringError = e instanceof Error ? e.message : String(e);
        return Array.from({ length: limitsFor(env, tenant).shards }, (_, i) => i);
      });
      const limiter = withLogs
        ? gate.run(() => rateLimiterStats(env, tenant)).catch(() => {
            failures.limiter++;
            return null;
          })
        : Promise.resolve(null);
      const control = withControl ? controlStats(env, tenant, gate) : Promise.resolve(null);
      const shards = await Promise.all(
        ids.map(async (shard): Promise<ShardSnapshot> => {
          const snap: ShardSnapshot = { shard, metrics: null, logs: null, error: null };
          const [m, l] = await Promise.all([
            gate.run(() => shardStub(env, tenant, shard).stats()).then(
              (s) => s,
              (e: unknown) => {
                failures.metrics++;
                snap.error = `metrics shard: ${(e as Error).message}`;
                return null;
              },
            ),
            withLogs ? gate.run(() => logStats(env, tenant, shard)).catch((e: unknown) => {
              failures.logs++;
              snap.error = `${snap.error ? snap.error + "; " : ""}log shard: ${(e as Error).message}`;
              return null;
            }) : null,
          ]);
          snap.metrics = m;
          snap.logs = l;
          return snap;
        }),
      );
      const c = await control;
      // One control object, counted once however many of its calls failed.
      if (ringError !== null || (c !== null && c.error !== null)) failures.control++;
      return { tenant, shards, limiter: await limiter, control: c, ringError };
    }),
  );
  return { at, tenants, failures };
}

/**
 * The tenant control object's four reports, each its own call through the gate. A
 * failed call leaves its part null; the object counts once in `failures.control`.
 */
async function controlStats(env: Env, tenant: string, gate: Semaphore): Promise<TenantControlView> {
  const stub = tenantStub(env, tenant);
  const errors: string[] = [];
  const ask = <T>(what: string, call: () => Promise<T>): Promise<T | null> =>
    gate.run(call).catch((e: unknown) => {
      errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    });
  const [ha, retention, tails, queries] = await Promise.all([
    ask("haStats", async (): Promise<HaStats> => await stub.haStats()),
    ask("retentionStats", async (): Promise<RetentionStats> => await stub.retentionStats()),
    ask("tailStats", async (): Promise<TailStats> => await stub.tailStats()),
    ask("queryStats", async (): Promise<QueryReport> => {
      // This isolate's own counts first: a send still in flight, then what it holds.
      await queryAccumulator.settled(tenant);
      const mine = queryAccumulator.take(tenant);
      try {
        return await stub.queryStats(mine);
      } catch (e) {
        queryAccumulator.restore(tenant, mine);
        throw e;
      }
    }),
  ]);
  const l = limitsFor(env, tenant);
  return {
    ha,
    retention,
    tails,
    queries,
    limits: { retentionPeriodMs: l.retentionPeriodMs, acceptHaSamples: Boolean(l.acceptHaSamples), maxConcurrentTailRequests: l.maxConcurrentTailRequests },
    error: errors.length > 0 ? `tenant control: ${errors.join("; ")}` : null,
  };
}

/** A log shard's stats (src/ingester/logs/rpc.ts LogShardStats), read through the optional fields of LogShardView. */
async function logStats(env: Env, tenant: string, shard: number): Promise<LogShardView | null> {
  const raw: unknown = await logShardStub(env, tenant, shard).stats();
  return typeof raw === "object" && raw !== null ? (raw as LogShardView) : null;
}

export interface ShardBlocks {
  count: number;
  bytes: number;
  /** Newest block's maxTime (ms), -Infinity when none. */
  maxTime: number;
}

/** The tenant's metric (or log) blocks in R2, by shard (one R2 list per 1,000 blocks). */
export async function blocksByShard(env: Env, tenant: string, gate: Semaphore, kind: BlockKind = "metrics"): Promise<Map<number, ShardBlocks>> {
  const out = new Map<number, ShardBlocks>();
  for (const b of await listBlocksUnder(env.BLOCKS, prefixOf(kind, tenant), -Infinity, Infinity, gate)) {
    let s = out.get(b.meta.shard);
    if (!s) out.set(b.meta.shard, (s = { count: 0, bytes: 0, maxTime: -Infinity }));
    s.count++;
    s.bytes += b.size;
    if (b.meta.maxTime > s.maxTime) s.maxTime = b.meta.maxTime;
  }
  return out;
}
