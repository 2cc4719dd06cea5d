// Run-time resharding: a loop of pushes (many series, increasing timestamps) keeps
// going while the tenant's shard count changes 4 -> 6 -> 2 -> 5. Right after each
// change, pushes alternate between the old ring (an isolate whose cached ring has
// not expired yet) and the new one, so series get samples on two shards at once; a
// retried request lands its duplicates on a different shard. Then everything acked
// must read back exactly, once: through remote read and PromQL, before and after a
// flush that leaves R2 blocks from several shard layouts.

import { describe, expect, it } from "vitest";
import { env, evictDurableObject, SELF } from "cloudflare:test";
import { asMap, expected, pushV1, readAll, type TestSeries } from "./helpers";
import { RingHistory } from "../../src/distributor/ring";
import { tenantRings, tenantStub } from "../../src/distributor/tenant_ring";
import { listBlocks } from "../../src/storage/blocks";

const NOW = Date.now();
const T0 = NOW - 2 * 3600_000;
const TENANT = "reshard";
const SERIES = 60;

function admin(method: string, query: string): Promise<Response> {
  return SELF.fetch(`http://ingester/api/v1/shards?${query}`, { method });
}

async function promql(query: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const q = new URLSearchParams({ query, time: String(NOW / 1000) });
  const res = await SELF.fetch(`http://ingester/api/v1/query?${q}`, { headers: { "X-Scope-OrgID": TENANT } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  return body.data.result;
}

/** This isolate behaves as one whose cached ring is `history` (stale or fresh). */
function asIsolateWith(history: RingHistory): void {
  tenantRings.clear();
  tenantRings.prime(TENANT, history);
}

describe("resharding at run time", () => {
  it("loses and duplicates nothing acked before, during and after 4 -> 6 -> 2 -> 5 shards, in the heads and after a flush", async () => {
    const acked = new Map<string, TestSeries>();
    let total = 0;
    let sum = 0;
    const batch = (k: number): TestSeries[] =>
      Array.from({ length: SERIES }, (_, i) => ({ labels: { __name__: "rs", i: String(i), job: "reshard" }, samples: [[T0 + k * 1000, k * 1000 + i]] as [number, number][] }));
    const push = async (k: number, retry = false) => {
      const b = batch(k);
      const res = await pushV1(b, { tenant: TENANT });
      expect(res.status, await res.clone().text()).toBe(204);
      if (retry) return;
      for (const s of b) {
        const key = JSON.stringify(s.labels);
        const have = acked.get(key);
        if (have) have.samples.push(...s.samples);
        else acked.set(key, { labels: s.labels, samples: [...s.samples] });
        total++;
        sum += s.samples[0][1];
      }
    };

    tenantRings.clear();
    let k = 0;
    for (; k < 8; k++) await push(k);
    expect((await tenantRings.fresh(env, TENANT)).shards).toBe(4);

    for (const shards of [6, 2, 5]) {
      const old = await tenantRings.fresh(env, TENANT);
      // The change races a push.
      const [put] = await Promise.all([admin("PUT", `tenant=${TENANT}&shards=${shards}`), push(k++)]);
      expect(put.status).toBe(200);
      const fresh = await tenantRings.fresh(env, TENANT);
      expect(fresh.shards).toBe(shards);
      // The request before the change is retried (as after a lost answer): its
      // duplicates go by the new ring, so some land on a shard that never had them.
      asIsolateWith(fresh);
      await push(k - 1, true);
      // Two placements at once while caches expire: old ring, new ring, old, ...
      for (let j = 0; j < 6; j++) {
        asIsolateWith(j % 2 === 0 ? old : fresh);
        await push(k++);
      }
      asIsolateWith(fresh);
      for (let j = 0; j < 5; j++) await push(k++);
    }

    const states = (await (await admin("GET", `tenant=${TENANT}`)).json()) as {
      data: { shards: number; history: { shards: number }[]; states: { shard: number; state: string }[] };
    };
    expect(states.data.shards).toBe(5);
    expect(states.data.history.map((e) => e.shards)).toEqual([4, 6, 2, 5]);
    expect(states.data.states.map((s) => s.state)).toEqual(["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "LEAVING"]);

    // Every shard layout held data: shard 5 (LEAVING now) was written while it was in the 6-shard ring.
    const perShard = await Promise.all(
      [0, 1, 2, 3, 4, 5].map(async (s) => (await env.INGESTER.get(env.INGESTER.idFromName(`${TENANT}/${s}`)).stats()).samplesAppended),
    );
    for (const n of perShard) expect(n).toBeGreaterThan(0);
    // Some series really are split over shards: more appended (incl. retried duplicates on new shards) ...
    expect(perShard.reduce((a, b) => a + b, 0)).toBeGreaterThan(total);

    const want = expected([...acked.values()]);
    const check = async () => {
      // ... yet every acked sample reads back exactly once.
      expect(asMap(await readAll(TENANT))).toEqual(want);
      const counts = await promql(`count_over_time(rs[3h])`);
      expect(counts.length).toBe(SERIES);
      for (const r of counts) expect(Number(r.value[1])).toBe(k);
      expect(Number((await promql(`sum(count_over_time(rs[3h]))`))[0].value[1])).toBe(total);
      expect(Number((await promql(`sum(sum_over_time(rs[3h]))`))[0].value[1])).toBe(sum);
    };
    await check();

    // Flush every shard, LEAVING ones included: blocks from every layout, read from R2 alone.
    const flushed = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": TENANT } });
    expect(flushed.status).toBe(204);
    const blocks = await listBlocks(env.BLOCKS, TENANT, -Infinity, Infinity);
    expect(new Set(blocks.map((b) => b.meta.shard))).toEqual(new Set([0, 1, 2, 3, 4, 5]));
    await check();
  });

  it("refuses a bad shard count or a missing tenant with 400, and answers 405 to other methods", async () => {
    for (const q of ["tenant=x&shards=0", "tenant=x&shards=1.5", "tenant=x&shards=abc", "tenant=x", "tenant=x&shards=1025"]) {
      const res = await admin("PUT", q);
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("shards must be an integer from 1 to 1024");
    }
    const noTenant = await admin("PUT", "shards=3");
    expect(noTenant.status).toBe(400);
    expect(await noTenant.text()).toContain("missing tenant parameter");
    expect((await admin("POST", "tenant=x&shards=3")).status).toBe(405);
    // A repeated change is a no-op: one history entry per real change.
    await admin("PUT", "tenant=idem&shards=3");
    const again = (await (await admin("PUT", "tenant=idem&shards=3")).json()) as { data: { history: unknown[] } };
    expect(again.data.history.length).toBe(2);
    // The history is in the tenant DO's SQLite: a restarted object has it.
    await evictDurableObject(tenantStub(env, "idem"));
    const after = (await (await admin("GET", "tenant=idem")).json()) as { data: { shards: number; history: unknown[] } };
    expect(after.data).toMatchObject({ shards: 3, history: again.data.history });
  });
});
