// The cap on a tenant's concurrent live tails (maxConcurrentTailRequests, Loki's
// max_concurrent_tail_requests): counted by the tenant's control DO over every
// isolate; a tail over the cap is upgraded and closed at once with Loki's close code
// and message; closing a tail frees its slot; a tail whose isolate died frees its
// slot when its lease expires. Tenants: vitest.config.mts (tail_cap: 2, tail_default: 10).

import { describe, expect, it } from "vitest";
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { tenantStub } from "../../src/distributor/tenant_ring";
import { TAIL_LEASE_MS } from "../../src/querier/loki/tail_limit";

interface Tail {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
}

async function openTail(tenant: string): Promise<Tail> {
  const url = `http://ingester/loki/api/v1/tail?query=${encodeURIComponent('{app="tail-limit"}')}`;
  const res = await SELF.fetch(url, { headers: { Upgrade: "websocket", "X-Scope-OrgID": tenant } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  ws.accept();
  return { ws, closed };
}

const openCount = async (tenant: string): Promise<number> => (await tenantStub(env, tenant).tailStats()).open;

/** Waits (a bound on event-loop turns, not a timing assertion) until the tenant DO counts `n` open tails. */
async function untilOpen(tenant: string, n: number): Promise<void> {
  for (let i = 0; i < 500 && (await openCount(tenant)) !== n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(await openCount(tenant)).toBe(n);
}

async function closeAll(tails: Tail[]): Promise<void> {
  for (const t of tails) t.ws.close(1000, "done");
  await Promise.all(tails.map((t) => t.closed));
}

describe("concurrent live tails per tenant", () => {
  it("the default cap: the 11th tail is closed with Loki's 1011 and message; closing one lets the next in", async () => {
    const tenant = "tail_default";
    const tails: Tail[] = [];
    for (let i = 0; i < 10; i++) tails.push(await openTail(tenant));
    expect(await openCount(tenant)).toBe(10);

    const refused = await openTail(tenant);
    expect(await refused.closed).toEqual({ code: 1011, reason: "max concurrent tail requests limit exceeded, count > limit (11 > 10)" });
    expect(await openCount(tenant)).toBe(10);

    const first = tails.shift()!;
    first.ws.close(1000, "done");
    await first.closed;
    await untilOpen(tenant, 9);
    tails.push(await openTail(tenant));
    expect(await openCount(tenant)).toBe(10);

    await closeAll(tails);
    await untilOpen(tenant, 0);
  });

  it("counts tails of every isolate in the tenant DO, and a dead isolate's slot frees itself when its lease expires", async () => {
    const tenant = "tail_cap"; // maxConcurrentTailRequests: 2
    const mine = await openTail(tenant);
    // Another isolate's tail: it took a slot straight from the tenant DO and then died (never renews or releases).
    const other = await tenantStub(env, tenant).acquireTail(tenant, 2);
    expect(other).toMatchObject({ granted: true, open: 2 });

    const refused = await openTail(tenant);
    expect(await refused.closed).toEqual({ code: 1011, reason: "max concurrent tail requests limit exceeded, count > limit (3 > 2)" });

    // Past the lease, the dead isolate's slot is free again; the live tail renews and keeps its own.
    const now = Date.now();
    await runInDurableObject(tenantStub(env, tenant), (inst: unknown) => {
      (inst as { clock: () => number }).clock = () => now + TAIL_LEASE_MS / 2;
    });
    const [mineLease] = await runInDurableObject(tenantStub(env, tenant), (inst: unknown) => [...(inst as { tails: Map<string, number> }).tails.keys()].filter((id) => id !== other.id));
    expect(await tenantStub(env, tenant).renewTail(mineLease, 2)).toBe(true);
    await runInDurableObject(tenantStub(env, tenant), (inst: unknown) => {
      (inst as { clock: () => number }).clock = () => now + TAIL_LEASE_MS + 1000;
    });
    expect(await openCount(tenant)).toBe(1);
    const next = await openTail(tenant);
    expect(await openCount(tenant)).toBe(2);

    await closeAll([mine, next]);
    await untilOpen(tenant, 0);
    // A release for a lease already gone is harmless.
    await tenantStub(env, tenant).releaseTail(other.id);
    expect(await openCount(tenant)).toBe(0);
  });

  it("a lease that expired is taken again on renewal when a slot is free, and refused when another tail took it", async () => {
    const stub = tenantStub(env, "tail_lease_unit");
    const a = await stub.acquireTail("tail_lease_unit", 1);
    expect(a.granted).toBe(true);
    const now = Date.now();
    await runInDurableObject(stub, (inst: unknown) => {
      (inst as { clock: () => number }).clock = () => now + TAIL_LEASE_MS + 1;
    });
    // Expired, slot free: renewed.
    expect(await stub.renewTail(a.id, 1)).toBe(true);
    await runInDurableObject(stub, (inst: unknown) => {
      (inst as { clock: () => number }).clock = () => now + 3 * TAIL_LEASE_MS;
    });
    const b = await stub.acquireTail("tail_lease_unit", 1);
    expect(b.granted).toBe(true);
    // a expired and b holds the only slot: a must end.
    expect(await stub.renewTail(a.id, 1)).toBe(false);
    expect(await stub.acquireTail("tail_lease_unit", 1)).toMatchObject({ granted: false, open: 1 });
    // A cap of 0 refuses every tail, as Loki's does.
    expect(await stub.acquireTail("tail_lease_unit", 0)).toMatchObject({ granted: false });
  });
});
