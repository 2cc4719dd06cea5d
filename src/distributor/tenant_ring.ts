// The tenant's ring as the Workers see it: the history of shard counts is kept by the
// tenant's control Durable Object (durable-objects/tenant.ts) and cached here.
//
// Writes use the newest ring from a per-isolate cache of RING_CACHE_TTL_MS. After a
// change, an isolate may place series on the old ring until its copy expires, while
// others already use the new one: for that window one series can get samples on two
// shards. Nothing is lost or counted twice because reads never use the cache: each
// query asks the DO for the history and reads every shard that may hold samples in
// its range (RingHistory.readShards), and the querier merges a series' samples from
// every shard and from R2, one per timestamp (src/querier/select.ts toSamples).
//
// What callers use:
// - pushes: `writeRing(env, tenant)` -> the Ring (placement) and its `since`, which
//   each shard push carries so that a LEFT shard refuses a stale ring's writes;
// - queries of samples at or after `mint`: `readShards(env, tenant, mint, graceMs)`;
// - flush, shutdown, status, metadata: `allShards(env, tenant)` (LEAVING shards too,
//   not LEFT ones: retired by the tenant DO once all they held was in R2).

import { limitsFor } from "../config/limits";
import { HttpError } from "../http/errors";
import { MAX_SHARDS, RingHistory, type Ring, type RingState, type ShardState } from "./ring";

/** How long an isolate places writes on a cached ring. */
export const RING_CACHE_TTL_MS = 5_000;
/** Allowance for clocks of isolates and the tenant DO disagreeing (they are NTP-synchronised to far better). */
export const CLOCK_SKEW_MARGIN_MS = 60_000;
/**
 * A LEAVING shard may be retired this long after it left: far past any cached ring
 * (RING_CACHE_TTL_MS) and clock skew, so no write is still being placed on it. In
 * practice its head empties later still (idle period, then the retain period).
 */
export const RETIRE_AFTER_MS = 10 * 60_000;

/** The tenant's control Durable Object: one per tenant, named by the tenant. */
export function tenantStub(env: Env, tenant: string): DurableObjectStub<import("../../durable-objects/tenant").TenantControl> {
  return env.TENANT.get(env.TENANT.idFromName(tenant));
}

// ---- Counters the distributor owes the tenant DO ----

/** Counts made in an isolate (HA refusals served from the cache, non-HA samples), sent with its next call to the tenant DO. */
export interface TenantReport {
  deduped: [cluster: string, samples: number][];
  nonHaSamples: number;
}

/**
 * Counting in the DO rather than the isolate keeps the counters whole (one place
 * per tenant, persisted) however many isolates serve it. They reach the DO with the
 * isolate's next ring fetch or HA check, so within RING_CACHE_TTL_MS while the
 * tenant writes; an isolate recycled before that loses its few seconds of counts.
 */
export class PendingReports {
  private readonly byTenant = new Map<string, { deduped: Map<string, number>; nonHa: number }>();

  private of(tenant: string) {
    let p = this.byTenant.get(tenant);
    if (!p) this.byTenant.set(tenant, (p = { deduped: new Map(), nonHa: 0 }));
    return p;
  }

  addDeduped(tenant: string, cluster: string, samples: number): void {
    const d = this.of(tenant).deduped;
    d.set(cluster, (d.get(cluster) ?? 0) + samples);
  }

  addNonHa(tenant: string, samples: number): void {
    this.of(tenant).nonHa += samples;
  }

  /** What is owed, now considered sent (give it back with `restore` if the call fails). */
  take(tenant: string): TenantReport | null {
    const p = this.byTenant.get(tenant);
    if (!p) return null;
    this.byTenant.delete(tenant);
    return { deduped: [...p.deduped], nonHaSamples: p.nonHa };
  }

  restore(tenant: string, report: TenantReport | null): void {
    if (!report) return;
    for (const [cluster, n] of report.deduped) this.addDeduped(tenant, cluster, n);
    this.addNonHa(tenant, report.nonHaSamples);
  }
}

export const tenantReports = new PendingReports();

// ---- The ring cache ----

interface CachedRing {
  history: RingHistory;
  /** Isolate clock when the DO was asked (before the answer: the copy is never older than this). */
  askedAt: number;
}

export class TenantRings {
  /** This isolate's clock; tests replace it to expire cached rings. */
  clock: () => number = () => Date.now();
  /** DO calls made (tests check that pushes share them). */
  fetches = 0;
  private readonly cache = new Map<string, CachedRing>();
  private readonly inflight = new Map<string, Promise<CachedRing>>();

  /** The history writes are placed by: cached for RING_CACHE_TTL_MS; concurrent misses share one DO call. */
  async forWrite(env: Env, tenant: string): Promise<RingHistory> {
    const hit = this.cache.get(tenant);
    if (hit !== undefined && this.clock() - hit.askedAt < RING_CACHE_TTL_MS) return hit.history;
    let p = this.inflight.get(tenant);
    if (p === undefined) {
      p = this.fetch(env, tenant).finally(() => this.inflight.delete(tenant));
      this.inflight.set(tenant, p);
    }
    return (await p).history;
  }

  /** The history as the DO has it now, for reads (and refreshing this isolate's copy). */
  async fresh(env: Env, tenant: string): Promise<RingHistory> {
    return (await this.fetch(env, tenant)).history;
  }

  /** Sets this isolate's copy, as fetched at `askedAt` (after a change made here; tests: a stale isolate). */
  prime(tenant: string, history: RingHistory, askedAt = this.clock()): void {
    const have = this.cache.get(tenant);
    if (have === undefined || have.askedAt <= askedAt) this.cache.set(tenant, { history, askedAt });
  }

  /** Forgets every cached ring (tests: a fresh isolate). */
  clear(): void {
    this.cache.clear();
  }

  private async fetch(env: Env, tenant: string): Promise<CachedRing> {
    const askedAt = this.clock();
    const seed = limitsFor(env, tenant).shards;
    const report = tenantReports.take(tenant);
    this.fetches++;
    let state: RingState;
    try {
      state = await tenantStub(env, tenant).ring(tenant, seed, report);
    } catch (e) {
      tenantReports.restore(tenant, report);
      throw new HttpError(503, `the shard ring of tenant ${tenant} could not be read (retry): ${(e as Error).message}`, { "Retry-After": "1" });
    }
    const cached = { history: new RingHistory(state.entries, state.retired), askedAt };
    this.prime(tenant, cached.history, askedAt);
    return cached;
  }
}

export const tenantRings = new TenantRings();

/** Where a push goes: the newest ring (cached per isolate) and when it took effect (sent with each shard push). */
export interface WritePlacement {
  ring: Ring;
  since: number;
}

/** The ring a push places series on (the newest; cached per isolate). */
export async function writeRing(env: Env, tenant: string): Promise<WritePlacement> {
  const history = await tenantRings.forWrite(env, tenant);
  return { ring: history.ring(), since: history.since };
}

/**
 * The shards a read of samples with timestamps at or after `mint` (ms) must ask,
 * ascending. `futureGraceMs` is how far ahead of the distributor's clock a write may
 * be timestamped (creationGracePeriodMs for samples); pass Infinity for data without
 * such a bound, which makes every shard ever listed be asked.
 */
export async function readShards(env: Env, tenant: string, mint: number, futureGraceMs: number): Promise<number[]> {
  const history = await tenantRings.fresh(env, tenant);
  return history.readShards(mint, RING_CACHE_TTL_MS + futureGraceMs + CLOCK_SKEW_MARGIN_MS);
}

/** Every shard that may hold data not yet in R2 (ACTIVE and LEAVING, not LEFT), for flush, shutdown, status and metadata. */
export async function allShards(env: Env, tenant: string): Promise<number[]> {
  return (await tenantRings.fresh(env, tenant)).allShards();
}

// ---- Admin: GET|PUT /api/v1/shards?tenant=X[&shards=N] ----

function ringJson(tenant: string, history: RingHistory): Response {
  const states: { shard: number; state: ShardState; leftAt: number | null }[] = [];
  for (let s = 0; s < history.maxShards; s++) {
    const leftAt = history.leftAt(s);
    states.push({ shard: s, state: history.state(s)!, leftAt: Number.isFinite(leftAt) ? leftAt : null });
  }
  return Response.json({ status: "success", data: { tenant, shards: history.shards, history: history.entries, retired: [...history.retired], states } });
}

function tenantParam(url: URL): string {
  const tenant = url.searchParams.get("tenant");
  if (!tenant) throw new HttpError(400, "missing tenant parameter: /api/v1/shards?tenant=<tenant id>");
  return tenant;
}

/** GET /api/v1/shards?tenant=X: the tenant's ring history and each shard's state. */
export async function handleGetShards(request: Request, env: Env): Promise<Response> {
  const tenant = tenantParam(new URL(request.url));
  return ringJson(tenant, await tenantRings.fresh(env, tenant));
}

/**
 * PUT /api/v1/shards?tenant=X&shards=N: the tenant's writes go to N shards from now
 * on (within RING_CACHE_TTL_MS in every isolate); shards beyond N become LEAVING.
 * Admin scope: it acts on the tenant named in the query, not the caller's.
 */
export async function handlePutShards(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const tenant = tenantParam(url);
  const raw = url.searchParams.get("shards");
  const shards = Number(raw);
  if (raw === null || raw === "" || !Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    throw new HttpError(400, `shards must be an integer from 1 to ${MAX_SHARDS}, got ${JSON.stringify(raw)}: /api/v1/shards?tenant=<tenant id>&shards=<count>`);
  }
  const askedAt = tenantRings.clock();
  let state: RingState;
  try {
    state = await tenantStub(env, tenant).setShards(tenant, limitsFor(env, tenant).shards, shards);
  } catch (e) {
    throw new HttpError(503, `the shard count of tenant ${tenant} could not be changed (retry): ${(e as Error).message}`, { "Retry-After": "1" });
  }
  const history = new RingHistory(state.entries, state.retired);
  // This isolate sees its own change at once; others within RING_CACHE_TTL_MS.
  tenantRings.prime(tenant, history, askedAt);
  return ringJson(tenant, history);
}
