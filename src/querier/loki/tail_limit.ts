// The cap on a tenant's concurrent live tails (Loki's max_concurrent_tail_requests,
// default 10). Loki's querier counts the tailers its ingesters hold; here a tail's
// Worker isolate and its shards' sockets can be anywhere, so the count is kept in one
// place per tenant: the tenant's control Durable Object (durable-objects/tenant.ts)
// grants a lease when a tail opens and drops it when the tail closes. The tail renews
// its lease every TAIL_RENEW_MS; a tail whose isolate died without a word stops
// renewing, and its slot frees itself TAIL_LEASE_MS later.
//
// Loki refuses the tail after the WebSocket upgrade, with a close frame (1011,
// CloseInternalServerErr) carrying "max concurrent tail requests limit exceeded,
// count > limit (11 > 10)" (pkg/querier/http.go TailHandler, querier.go
// checkTailRequestLimit); logcli and Grafana show that reason. We answer the same way.

import { HttpError } from "../../http/errors";
import { tenantStub } from "../../distributor/tenant_ring";

/** A lease lives this long after its last renewal (an isolate that died frees its slot within this). */
export const TAIL_LEASE_MS = 120_000;
/** How often an open tail renews its lease: several renewals per lease, so one failed call loses nothing. */
export const TAIL_RENEW_MS = 30_000;

/** The tenant DO's answer to a tail asking to open. */
export interface TailLease {
  granted: boolean;
  /** The lease's id (empty when refused). */
  id: string;
  /** Tails open, this one included when granted. */
  open: number;
  leaseMs: number;
}

export interface TailStats {
  /** Tails open now (unexpired leases). */
  open: number;
}

/** A refused tail: Loki's message, sent as the close reason. */
export class TailLimitError extends Error {}

/** Loki's text: the count is the tails open plus this one. */
export function tailLimitMessage(open: number, limit: number): string {
  return `max concurrent tail requests limit exceeded, count > limit (${open + 1} > ${limit})`;
}

/** An open tail's slot: renewed while held, released once. */
export class TailSlot {
  private timer: ReturnType<typeof setInterval> | null = null;
  private released: Promise<void> | null = null;

  constructor(
    private readonly env: Env,
    private readonly tenant: string,
    readonly id: string,
    private readonly limit: number,
  ) {}

  /** Starts renewing; `lost` is called if the slot went to another tail (this one should end). */
  keep(lost: () => void): void {
    if (this.timer !== null || this.released !== null) return;
    this.timer = setInterval(() => {
      tenantStub(this.env, this.tenant)
        .renewTail(this.id, this.limit)
        .then((ok) => {
          if (!ok) lost();
        })
        // A failed renewal is retried at the next tick; the lease outlives a few.
        .catch((e: unknown) => console.error("tail lease renewal failed:", e instanceof Error ? e.message : e));
    }, TAIL_RENEW_MS);
  }

  /** Stops renewing and gives the slot back (at most once; a failure leaves the lease to expire). */
  release(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.released ??= tenantStub(this.env, this.tenant)
      .releaseTail(this.id)
      .catch((e: unknown) => console.error("tail lease release failed (it expires on its own):", e instanceof Error ? e.message : e));
    return this.released;
  }
}

/**
 * Takes one of the tenant's tail slots. Throws TailLimitError (Loki's message) when
 * `limit` tails are open, and a retryable 503 when the tenant DO cannot answer.
 */
export async function acquireTail(env: Env, tenant: string, limit: number): Promise<TailSlot> {
  let lease: TailLease;
  try {
    lease = await tenantStub(env, tenant).acquireTail(tenant, limit);
  } catch (e) {
    throw new HttpError(503, `the live tail count of tenant ${tenant} could not be checked (retry): ${e instanceof Error ? e.message : String(e)}`, { "Retry-After": "1" });
  }
  if (!lease.granted) throw new TailLimitError(tailLimitMessage(lease.open, limit));
  return new TailSlot(env, tenant, lease.id, limit);
}
