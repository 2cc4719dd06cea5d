// Ingestion rate limits, checked by the distributor after validation and before any
// shard write, so that a refused push writes nothing (429, Retry-After). Mimir:
// ingestion_rate 10,000 samples/s, burst 200,000, on the valid samples of a push;
// Loki: ingestion_rate_mb 4, burst 6, on line bytes. Browser keys add their own
// bytes/s bucket, taken together with the tenant's (all or nothing).
//
// The buckets live in the tenant's RateLimiter Durable Object. To spare a round trip
// per push, each isolate leases tokens in batches (LEASE_FRACTION of a second of the
// rate, at most a tenth of the burst, valid LEASE_TTL_MS): a push that its isolate's
// lease covers is admitted without a call. Leased tokens are already out of the
// bucket, so the tolerance is one-sided: over any interval T a tenant is admitted at
// most rate x T + burst (never more); it may be refused early by at most the tokens
// isolates hold in unexpired leases: one lease per isolate (only one call per bucket
// at a time asks for a lease), i.e. about a tenth of a second of the rate each.

import type { Limits } from "../config/limits";
import { HttpError } from "../http/errors";
import { authorizationOf } from "../auth/context";
import { Reason } from "../model/errors";
import type { BucketTake, DiscardCounts, RateLimiterStats, TakeResult } from "../../durable-objects/rate_limiter";

const LEASE_TTL_MS = 1000;
const LEASE_FRACTION = 0.1;

interface Lease {
  tokens: number;
  expires: number;
  /** Calls to the limiter in flight for this bucket: only the first asks for a lease, so concurrent pushes do not each strand one. */
  asking: number;
}

/**
 * One isolate's leases: `${tenant}\0${bucket}` -> tokens it may spend without asking.
 * A class (one instance per isolate, isolateLeases) so that a test can stand in for
 * several isolates sharing one RateLimiter.
 */
export class LeaseBook {
  private readonly leases = new Map<string, Lease>();

  /** null when admitted; the limiter's answer when refused. */
  async admit(env: Env, tenant: string, takes: BucketTake[], discard: DiscardCounts): Promise<TakeResult | null> {
    const now = Date.now();
    const local: Lease[] = [];
    let covered = true;
    for (const t of takes) {
      const k = `${tenant}\u0000${t.name}`;
      let lease = this.leases.get(k);
      if (lease === undefined) {
        if (this.leases.size >= MAX_LEASES) this.prune(now);
        lease = { tokens: 0, expires: 0, asking: 0 };
        this.leases.set(k, lease);
      } else if (lease.expires <= now) {
        // Unspent tokens of an expired lease are dropped: that is the early-refusal side of
        // the tolerance. Reset in place: a call in flight holds this object and settles
        // `asking` and its leased tokens on it (a new object would keep `asking` > 0
        // forever, and every later push would ask without a lease).
        lease.tokens = 0;
        lease.expires = 0;
      }
      local.push(lease);
      if (lease.tokens < t.amount) covered = false;
    }
    if (covered) {
      for (let i = 0; i < takes.length; i++) local[i].tokens -= takes[i].amount;
      return null;
    }
    const asked = takes.map((t, i) => (local[i].asking++ > 0 ? { ...t, lease: 0 } : t));
    let result: TakeResult;
    try {
      result = await limiter(env, tenant).take({ buckets: asked, discard });
    } catch (e) {
      // Retryable: nothing was written and nothing is acked.
      throw new HttpError(503, `the ingestion rate limiter of tenant ${tenant} is unavailable (retry): ${(e as Error).message}`, { "Retry-After": "1" });
    } finally {
      for (const l of local) l.asking--;
    }
    if (!result.ok) return result;
    const expires = Date.now() + LEASE_TTL_MS;
    for (let i = 0; i < takes.length; i++) {
      if (result.leased[i] > 0) {
        local[i].tokens += result.leased[i];
        local[i].expires = expires;
      }
    }
    return null;
  }

  /** Leases held, for tests. */
  tokens(tenant: string, bucket: string): number {
    const l = this.leases.get(`${tenant}\u0000${bucket}`);
    return l === undefined || l.expires <= Date.now() ? 0 : l.tokens;
  }

  /** Forgets expired leases nobody is asking about (one entry per tenant and browser key otherwise stays for the isolate's life). */
  private prune(now: number): void {
    for (const [k, l] of this.leases) if (l.expires <= now && l.asking === 0) this.leases.delete(k);
  }
}

/** Entries before a LeaseBook prunes expired ones. */
const MAX_LEASES = 10_000;

/** This isolate's leases. */
const isolateLeases = new LeaseBook();

function leaseSize(rate: number, burst: number): number {
  return Math.floor(Math.min(rate * LEASE_FRACTION, burst * LEASE_FRACTION));
}

function limiter(env: Env, tenant: string) {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenant));
}

/** Mimir's ingestion rate limit on the valid samples of a remote write push; throws 429 when exceeded. */
export async function admitSamples(env: Env, tenant: string, limits: Limits, samples: number, book: LeaseBook = isolateLeases): Promise<void> {
  if (samples <= 0 || limits.ingestionRate <= 0) return;
  const rate = limits.ingestionRate;
  const burst = limits.ingestionBurstSize;
  const refused = await book.admit(env, tenant, [{ name: "samples", rate, burst, amount: samples, lease: leaseSize(rate, burst) }], { samples, lines: 0, bytes: 0 });
  if (refused === null) return;
  const head = `ingestion rate limit exceeded for tenant ${tenant}: this push holds ${samples} valid samples; the limit is ${rate} samples/s with a burst of ${burst} (ingestionRate, ingestionBurstSize), across all Workers (${Reason.RateLimited})`;
  throw tooMany(refused, head, samples, burst, "raise ingestionBurstSize or send smaller pushes (Prometheus queue_config.max_samples_per_send)");
}

/**
 * A browser key's charge for a request's body as it came, before decoding: validation
 * refuses invalid pushes before the rate limit, so without this a key (a credential any
 * page may hold) could send invalid pushes at no cost. Its own bucket only; throws 429.
 * Returns the bytes charged, to pass to admitLogs as `keyPaid`.
 */
export async function admitBrowserKeyBody(request: Request, env: Env, tenant: string, bodyBytes: number, book: LeaseBook = isolateLeases): Promise<number> {
  const key = authorizationOf(request)?.principal.browserKey;
  if (key === undefined || key.bytesPerSecond <= 0 || bodyBytes <= 0) return 0;
  const take = keyTake(key, bodyBytes);
  const refused = await book.admit(env, tenant, [take], { samples: 0, lines: 0, bytes: bodyBytes });
  if (refused === null) return bodyBytes;
  throw tooMany(refused, keyRefusal(key, take, `with a request body of ${bodyBytes} bytes`), bodyBytes, take.burst, KEY_FIX);
}

/**
 * Loki's ingestion rate limit on a log push's bytes (lines and structured metadata),
 * and the browser key's own limit when the request came with one, taken together (all
 * or nothing); throws 429. `keyPaid`: what admitBrowserKeyBody already charged the key,
 * so that it pays max(body, valid bytes) in all and compression cannot multiply its rate.
 */
export async function admitLogs(request: Request, env: Env, tenant: string, limits: Limits, lines: number, bytes: number, keyPaid = 0, book: LeaseBook = isolateLeases): Promise<void> {
  if (bytes <= 0) return;
  const takes: BucketTake[] = [];
  if (limits.logIngestionRateBytes > 0) {
    const rate = limits.logIngestionRateBytes;
    const burst = limits.logIngestionBurstBytes;
    takes.push({ name: "logBytes", rate, burst, amount: bytes, lease: leaseSize(rate, burst) });
  }
  const key = authorizationOf(request)?.principal.browserKey;
  const keyOwes = bytes - keyPaid;
  if (key !== undefined && key.bytesPerSecond > 0 && keyOwes > 0) {
    takes.push(keyTake(key, keyOwes));
  }
  if (takes.length === 0) return;
  const refused = await book.admit(env, tenant, takes, { samples: 0, lines, bytes });
  if (refused === null) return;
  const b = takes[refused.refused];
  const head =
    b.name === "logBytes"
      ? // Loki's message, with our limits' names.
        `Ingestion rate limit exceeded for user ${tenant} (limit: ${b.rate} bytes/sec, burst ${b.burst} bytes; logIngestionRateBytes, logIngestionBurstBytes) while attempting to ingest '${lines}' lines totaling '${bytes}' bytes, reduce log volume or contact your administrator to see if the limit can be increased (${Reason.RateLimited})`
      : keyRefusal(key!, b, `while attempting to ingest '${lines}' lines totaling '${bytes}' bytes`);
  throw tooMany(refused, head, b.amount, b.burst, b.name === "logBytes" ? "raise logIngestionBurstBytes or send smaller pushes" : KEY_FIX);
}

type BrowserKeyLimit = NonNullable<NonNullable<ReturnType<typeof authorizationOf>>["principal"]["browserKey"]>;

/** A browser key's own bucket (bytes/s), taking `amount`. */
function keyTake(key: BrowserKeyLimit, amount: number): BucketTake {
  return { name: `browserKey:${key.id}`, rate: key.bytesPerSecond, burst: key.burstBytes, amount, lease: leaseSize(key.bytesPerSecond, key.burstBytes) };
}

const KEY_FIX = "raise the key's burstBytes or send smaller pushes";

/** The 429 message when a browser key's bucket refused; `what` says what was being charged. */
function keyRefusal(key: BrowserKeyLimit, b: BucketTake, what: string): string {
  return `browser key ${key.id} exceeded its rate limit (limit: ${b.rate} bytes/sec, burst ${b.burst} bytes; browserKeys[].bytesPerSecond, burstBytes in the runtime config) ${what} (${Reason.RateLimited})`;
}

/** The tenant's rate-limit refusals (reason rate_limited) and buckets, for /metrics. */
export function rateLimiterStats(env: Env, tenant: string): Promise<RateLimiterStats> {
  return limiter(env, tenant).stats();
}

function tooMany(r: TakeResult, head: string, amount: number, burst: number, fix: string): HttpError {
  if (!Number.isFinite(r.retryAfterMs)) {
    // Mimir answers 429 here too; the message says why retrying cannot help.
    return new HttpError(429, `${head}; ${amount} is more than the burst of ${burst}, so this push can never be accepted: ${fix}`, { "Retry-After": "60" });
  }
  const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
  return new HttpError(429, `${head}; ${r.available} available now, retry after ${seconds}s`, { "Retry-After": String(seconds) });
}

/**
 * Bytes of a log push as the rate limit counts them: its per-shard batches (lines,
 * structured metadata and a few bytes per entry), close to Loki's line + metadata bytes.
 */
export function batchBytes(batches: readonly (readonly Uint8Array[])[]): number {
  let n = 0;
  for (const shard of batches) for (const b of shard) n += b.byteLength;
  return n;
}
