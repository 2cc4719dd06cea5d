// Gathering what every shard knows about itself, for /metrics, the stats API and
// the status page. Tenants are those R2 lists (src/storage/blocks.ts listTenants:
// each shard registers itself at its first write); each tenant's shards (every one
// its ring ever listed, src/distributor/tenant_ring.ts) are asked for stats(),
// metrics and log shards alike. Every Durable Object and R2 call goes
// through one gate of MAX_CONCURRENT_SUBREQUESTS (the Workers connection limit).
//
// A shard that cannot answer is left out of this collection (and counted in
// `failures`), rather than failing the whole scrape: its counters come back at the
// next one, unchanged, since they are persisted.

import { logShardStub, shardStub } from "../distributor/shards";
import { allShards } from "../distributor/tenant_ring";
import { rateLimiterStats } from "../limits/rate";
import type { RateLimiterStats } from "../../durable-objects/rate_limiter";
import type { ShardStats } from "../ingester/rpc";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../model/concurrency";
import { listBlocks, listTenants } from "../storage/blocks";
import type { ShardObservations } from "./shard";

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

export interface TenantSnapshot {
  tenant: string;
  shards: ShardSnapshot[];
  /** The tenant's ingestion rate limiter (src/limits/rate.ts): its persisted rate_limited discards. Null if it did not answer. */
  limiter: RateLimiterStats | null;
}

export interface ClusterSnapshot {
  /** Unix ms when the collection started. */
  at: number;
  tenants: TenantSnapshot[];
  /** Shards (and rate limiters) that failed to answer, by kind. */
  failures: { metrics: number; logs: number; limiter: number };
}

export interface CollectOptions {
  /** Only these tenants (no R2 listing). Default: every tenant R2 lists. */
  tenants?: string[];
  /** Ask the log shards too (default true). */
  logs?: boolean;
}

export async function collectCluster(env: Env, gate: Semaphore = new Semaphore(MAX_CONCURRENT_SUBREQUESTS), opts: CollectOptions = {}): Promise<ClusterSnapshot> {
  const at = Date.now();
  const names = opts.tenants ?? (await gate.run(() => listTenants(env.BLOCKS)));
  const failures = { metrics: 0, logs: 0, limiter: 0 };
  const withLogs = opts.logs ?? true;
  const tenants = await Promise.all(
    names.map(async (tenant): Promise<TenantSnapshot> => {
      // Every shard the tenant's ring ever listed (run-time resharding only adds to
      // that list), so a shard's counters never drop out of the sums.
      const ids = await gate.run(() => allShards(env, tenant));
      const limiter = withLogs
        ? gate.run(() => rateLimiterStats(env, tenant)).catch(() => {
            failures.limiter++;
            return null;
          })
        : Promise.resolve(null);
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
      return { tenant, shards, limiter: await limiter };
    }),
  );
  return { at, tenants, failures };
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

/** The tenant's metric blocks in R2, by shard (one R2 list per 1,000 blocks). */
export async function blocksByShard(env: Env, tenant: string, gate: Semaphore): Promise<Map<number, ShardBlocks>> {
  const out = new Map<number, ShardBlocks>();
  for (const b of await listBlocks(env.BLOCKS, tenant, -Infinity, Infinity, gate)) {
    let s = out.get(b.meta.shard);
    if (!s) out.set(b.meta.shard, (s = { count: 0, bytes: 0, maxTime: -Infinity }));
    s.count++;
    s.bytes += b.size;
    if (b.meta.maxTime > s.maxTime) s.maxTime = b.meta.maxTime;
  }
  return out;
}
