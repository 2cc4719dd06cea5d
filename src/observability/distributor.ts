// Distributor-side discards (validation: label rules, too old, too far in the
// future) outlive the Worker isolate that saw them by riding to a shard of the
// tenant, whose counters are persisted (src/observability/shard.ts). Counting them
// in isolate memory would make cortex_discarded_samples_total per isolate: reset
// whenever Cloudflare recycles the isolate, and split over every isolate serving
// the tenant, so a scrape (which reaches one isolate) would see a fraction.
//
// No extra request in the usual case: the counts are attached to one of the
// request's own shard batches. Only when validation refused everything (no batch
// at all) is one small RPC made, to shard 0, and awaited with the request, so the
// counts are durable before the sender sees the 400.

// Refusals counted the same way: native histogram samples and exemplars (not stored
// yet; Mimir counts its refusals of them as discards too), "too many HA clusters"
// (src/distributor/ha.ts, Mimir's too_many_ha_clusters), and the validation discards
// of a push the rate limiter then refuses as a whole (429): Mimir counts those by
// their validation reason, and the rest of the push as rate_limited (counted by the
// tenant's RateLimiter).

import { Reason } from "../model/errors";
import { HttpError } from "../http/errors";
import type { ReasonCount, ShardPush } from "../ingester/rpc";
import type { LogDiscardCount } from "../ingester/logs/rpc";
import { logShardStub, shardStub } from "../distributor/shards";

/**
 * The validation discards plus the request's native histogram samples and exemplars,
 * all refused (src/distributor/push.ts answers 400 naming them). Exemplars become
 * cortex_discarded_exemplars_total, not samples (src/observability/metrics.ts).
 */
export function withUnsupported(reasons: ReadonlyMap<Reason, number>, histograms: number, exemplars: number): Map<Reason, number> {
  const out = new Map(reasons);
  if (histograms > 0) out.set(Reason.NativeHistogramsUnsupported, (out.get(Reason.NativeHistogramsUnsupported) ?? 0) + histograms);
  if (exemplars > 0) out.set(Reason.ExemplarsUnsupported, (out.get(Reason.ExemplarsUnsupported) ?? 0) + exemplars);
  return out;
}

/**
 * Awaits the rate limit check; if it refuses the push (429), `count` (the push's
 * validation discards, sent on their own) is awaited before the refusal goes on, so
 * the counts are durable before the sender sees the 429. Other failures (the rate
 * limiter unreachable: 503, retried by the sender) count nothing: the retry will.
 */
export async function countIfRateLimited(admit: Promise<void>, count: () => Promise<void>): Promise<void> {
  try {
    await admit;
  } catch (e) {
    if (e instanceof HttpError && e.status === 429) await count();
    throw e;
  }
}

/**
 * Attaches the discards tallied so far to the first batch of the request, or sends
 * them to shard 0 when there is none. Call after validation and before the batches
 * are sent; await the promise with the shard writes (it never rejects).
 */
export function forwardDistributorDiscards(
  env: Env,
  tenant: string,
  batches: (ShardPush | null)[],
  reasons: ReadonlyMap<Reason, number>,
  firstError: string | null,
): Promise<void> {
  if (reasons.size === 0) return Promise.resolve();
  const discards: ReasonCount[] = [];
  for (const [reason, count] of reasons) if (count > 0) discards.push({ reason, count });
  if (discards.length === 0) return Promise.resolve();
  const carrier = batches.find((b) => b !== null);
  if (carrier) {
    carrier.distributorDiscards = discards;
    return Promise.resolve();
  }
  return recordDistributorDiscards(env, tenant, discards, firstError);
}

/** Counts discards in the tenant's shard 0 (for refusals made before any batch exists). Never rejects. */
export async function recordDistributorDiscards(env: Env, tenant: string, discards: ReasonCount[], firstError: string | null): Promise<void> {
  try {
    await shardStub(env, tenant, 0).recordDistributorDiscards(tenant, 0, discards, firstError);
  } catch (e) {
    // The answer to the sender does not depend on a counter; the loss is logged.
    console.error(`could not count ${discards.map((d) => `${d.count} ${d.reason}`).join(", ")} discards of tenant ${tenant}: ${(e as Error).message}`);
  }
}

/**
 * The log path's counterpart of forwardDistributorDiscards: the Loki push handler
 * attaches the returned list to its first shard RPC; when no entry reached any
 * shard it calls recordLogDistributorDiscards instead.
 */
export function logDiscardList(counts: ReadonlyMap<string, number>, bytes: ReadonlyMap<string, number>): LogDiscardCount[] {
  const out: LogDiscardCount[] = [];
  for (const [reason, count] of counts) if (count > 0) out.push({ reason, count, bytes: bytes.get(reason) ?? 0 });
  return out;
}

/** Counts log discards in the tenant's log shard 0 (for refusals made before any batch exists). Never rejects. */
export async function recordLogDistributorDiscards(env: Env, tenant: string, discards: LogDiscardCount[], firstError: string | null): Promise<void> {
  if (discards.length === 0) return;
  try {
    await logShardStub(env, tenant, 0).recordDistributorDiscards(tenant, 0, discards, firstError);
  } catch (e) {
    console.error(`could not count ${discards.map((d) => `${d.count} ${d.reason}`).join(", ")} log discards of tenant ${tenant}: ${(e as Error).message}`);
  }
}
