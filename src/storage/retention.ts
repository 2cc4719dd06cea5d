// Retention (Mimir's compactor_blocks_retention_period, Loki's retention_period): a
// tenant's blocks in R2 whose maxTime is older than now - retentionPeriodMs are
// deleted, metric blocks (`tenants/<t>/blocks/`) and log blocks (`tenants/<t>/logs/`)
// alike. Both kinds are keyed `<prefix><timeKey(maxTime)>-...` (src/storage/blocks.ts),
// and R2 lists in key order, so a sweep lists from the start of each prefix and stops
// at the first key at or after the cutoff: it never reads past what it deletes, plus
// one key. The sweep runs from the tenant's control Durable Object's alarm, hourly
// (durable-objects/tenant.ts). It is idempotent: a repeated or interrupted sweep lists
// again and deletes what is still there (deleting a gone key is not an error in R2).
//
// Queries do not wait for the sweep: `retentionStart` is the oldest time a query may
// read, and the Prometheus API, remote read and the Loki API clamp their start to it
// (as Loki's querier clamps to max_query_lookback in validateQueryTimeRangeLimits),
// so data past retention is never returned even while its block is still in R2. Caches of block indexes and chunks are keyed by block key and only
// consulted for blocks a query listed (R2 lists are strongly consistent), so a deleted
// block is never opened again; a block deleted between a query's list and its reads is
// skipped (BlockGoneError), not a 5xx.
//
// The sweep's R2 calls are counted through countingBucket (src/observability/r2.ts) in
// counters the caller persists (the tenant control object's retention state), so they
// appear in cortex_r2_operations_total{component="compactor"} whichever isolate is
// scraped; not in this isolate's r2Ops, whose lists /metrics reports as the querier's.

import { limitsFor } from "../config/limits";
import { countingBucket, type R2Counter } from "../observability/r2";
import { tenantBlocksPrefix, timeKey } from "./blocks";
import { tenantLogBlocksPrefix } from "./logs/blocks";

/** How often the tenant's control DO sweeps (Mimir's compactor cleanup runs every 15 min; blocks here are hours long). */
export const SWEEP_PERIOD_MS = 60 * 60_000;
/** R2's delete takes at most 1,000 keys a call, and list returns at most 1,000 a page. */
export const DELETE_BATCH = 1000;
/**
 * Pages (of up to 1,000 blocks) one sweep deletes before it hands over to the next
 * alarm: keeps one alarm well inside the subrequest and CPU limits when a tenant's
 * retention is first shortened and years of blocks are due at once.
 */
export const MAX_PAGES_PER_SWEEP = 20;
/** When a sweep stopped at MAX_PAGES_PER_SWEEP, the next one runs this soon. */
export const SWEEP_CONTINUE_MS = 10_000;

/**
 * The oldest time (ms) a query of `tenant` may return: now - retentionPeriodMs, or
 * -Infinity when retention is 0 (keep forever).
 */
export function retentionStart(env: { SHARDS?: string; LIMITS?: string }, tenant: string, now = Date.now()): number {
  const period = limitsFor(env, tenant).retentionPeriodMs;
  return period > 0 ? Math.floor(now - period) : -Infinity;
}

export type BlockKind = "metrics" | "logs";

export interface KindSweep {
  /** Blocks deleted by this sweep. */
  blocks: number;
  /** Their bytes (object sizes as R2 listed them). */
  bytes: number;
  /** Whether blocks of this kind remain after the sweep (newer than the cutoff, or beyond the page budget). */
  remaining: boolean;
}

export interface SweepResult {
  metrics: KindSweep;
  logs: KindSweep;
  /** The page budget ran out with expired blocks left: run again soon. */
  more: boolean;
}

export function prefixOf(kind: BlockKind, tenant: string): string {
  return kind === "metrics" ? tenantBlocksPrefix(tenant) : tenantLogBlocksPrefix(tenant);
}

/**
 * Deletes the tenant's blocks of both kinds whose maxTime < cutoff (ms). With
 * cutoff = -Infinity (retention 0) nothing is deleted and each prefix is only probed
 * (one LIST of one key) to tell whether the tenant still has blocks. `onBatch` is
 * called after every confirmed delete call, so the caller can count durably what an
 * R2 failure later in the sweep would otherwise lose. R2 errors propagate: nothing is
 * counted that R2 did not confirm, and the next sweep starts over.
 */
export async function sweepRetention(
  raw: R2Bucket,
  tenant: string,
  cutoff: number,
  onBatch: (kind: BlockKind, blocks: number, bytes: number) => void = () => {},
  /** Where the sweep's R2 calls are counted (each before it is made); none: not counted. */
  r2Counts: R2Counter | null = null,
): Promise<SweepResult> {
  const bucket = r2Counts === null ? raw : countingBucket(raw, r2Counts);
  const budget = { pages: MAX_PAGES_PER_SWEEP };
  const metrics = await sweepPrefix(bucket, prefixOf("metrics", tenant), cutoff, budget, (b, n) => onBatch("metrics", b, n));
  const logs = await sweepPrefix(bucket, prefixOf("logs", tenant), cutoff, budget, (b, n) => onBatch("logs", b, n));
  return { metrics: metrics.sweep, logs: logs.sweep, more: metrics.more || logs.more };
}

async function sweepPrefix(
  bucket: R2Bucket,
  prefix: string,
  cutoff: number,
  budget: { pages: number },
  onBatch: (blocks: number, bytes: number) => void,
): Promise<{ sweep: KindSweep; more: boolean }> {
  const sweep: KindSweep = { blocks: 0, bytes: 0, remaining: false };
  if (cutoff === -Infinity) {
    const page = await bucket.list({ prefix, limit: 1 });
    sweep.remaining = page.objects.length > 0;
    return { sweep, more: false };
  }
  // Keys below this one hold a maxTime < cutoff: timeKey is fixed-width digits, so
  // string order is time order. A key at or above it ends the sweep of this prefix.
  const bound = prefix + timeKey(Math.floor(cutoff));
  for (;;) {
    if (budget.pages <= 0) {
      sweep.remaining = true;
      return { sweep, more: true };
    }
    budget.pages--;
    // Always from the start of the prefix: what the last batch deleted is gone from
    // the list (R2 is strongly consistent), so no cursor has to survive a delete.
    const page = await bucket.list({ prefix, limit: DELETE_BATCH });
    const keys: string[] = [];
    let bytes = 0;
    let reachedNewer = false;
    for (const obj of page.objects) {
      if (obj.key >= bound) {
        reachedNewer = true;
        break;
      }
      keys.push(obj.key);
      bytes += obj.size;
    }
    if (keys.length > 0) {
      await bucket.delete(keys);
      sweep.blocks += keys.length;
      sweep.bytes += bytes;
      onBatch(keys.length, bytes);
    }
    if (reachedNewer) {
      sweep.remaining = true;
      return { sweep, more: false };
    }
    if (!page.truncated) return { sweep, more: false };
  }
}

/** Backoff after a failed sweep: 30 s doubling, at most the sweep period. */
export function sweepBackoffMs(failures: number): number {
  return Math.min(SWEEP_PERIOD_MS, 30_000 * 2 ** Math.max(0, Math.min(failures - 1, 20)));
}
