// Run-time resharding for logs, as test/worker/resharding.test.ts does it for
// samples: a loop of Loki pushes (many streams, increasing timestamps, protobuf and
// JSON in turn) keeps going while the tenant's shard count changes 4 -> 6 -> 2 -> 5.
// Right after each change, pushes alternate between the old ring (an isolate whose
// cached ring has not expired yet) and the new one, so streams get entries on two
// shards at once; a retried push lands its duplicates on a shard that never had
// them. Then every acked line must read back exactly once through
// /loki/api/v1/query_range (and count_over_time), before and after a POST /flush
// that leaves R2 log blocks from every shard layout.

import { describe, expect, it } from "vitest";
import { env, SELF } from "cloudflare:test";
import { RingHistory } from "../../src/distributor/ring";
import { logShardStub } from "../../src/distributor/shards";
import { tenantRings } from "../../src/distributor/tenant_ring";
import { snappyCompress } from "../../src/proto/snappy";
import { encodePushRequest, jsonPushBody, ns } from "../support/loki_wire";

const NOW = Date.now();
const T0 = NOW - 2 * 3600_000;
const TENANT = "lreshard";
const STREAMS = 30;

function admin(method: string, query: string): Promise<Response> {
  return SELF.fetch(`http://ingester/api/v1/shards?${query}`, { method });
}

/** This isolate behaves as one whose cached ring is `history` (stale or fresh). */
function asIsolateWith(history: RingHistory): void {
  tenantRings.clear();
  tenantRings.prime(TENANT, history);
}

const labelsOf = (i: number) => ({ app: "lrs", i: String(i).padStart(2, "0") });
const streamKey = (i: number) => `{app="lrs", i="${String(i).padStart(2, "0")}"}`;

/** Push k: one entry per stream at T0 + k s (ns part i: nanoseconds survive every hop). */
function entries(k: number): { i: number; ts: string; line: string }[] {
  return Array.from({ length: STREAMS }, (_, i) => ({ i, ts: ns(T0 + k * 1000, 1000 + i), line: `push=${k} stream=${i} ${"x".repeat(i)}` }));
}

async function pushLoki(k: number): Promise<Response> {
  const es = entries(k);
  // Protobuf and JSON in turn: both decoders place streams by the same canonical labels.
  if (k % 2 === 0) {
    const body = snappyCompress(encodePushRequest(es.map((e) => ({ labels: streamKey(e.i), entries: [{ ts: e.ts, line: e.line }] }))));
    return SELF.fetch("http://ingester/loki/api/v1/push", { method: "POST", body, headers: { "Content-Type": "application/x-protobuf", "X-Scope-OrgID": TENANT } });
  }
  const body = jsonPushBody(es.map((e) => ({ stream: labelsOf(e.i), values: [[e.ts, e.line]] })));
  return SELF.fetch("http://ingester/loki/api/v1/push", { method: "POST", body, headers: { "Content-Type": "application/json", "X-Scope-OrgID": TENANT } });
}

interface StreamResult {
  stream: Record<string, string>;
  values: [string, string][];
}

async function queryRange(query: string, extra: Record<string, string> = {}): Promise<{ resultType: string; result: unknown[] }> {
  const q = new URLSearchParams({ query, start: ns(T0 - 60_000), end: ns(NOW + 60_000), limit: "5000", direction: "forward", ...extra });
  const res = await SELF.fetch(`http://ingester/loki/api/v1/query_range?${q}`, { headers: { "X-Scope-OrgID": TENANT } });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return (JSON.parse(text) as { data: { resultType: string; result: unknown[] } }).data;
}

describe("log resharding at run time", () => {
  it("loses and duplicates no acked line before, during and after 4 -> 6 -> 2 -> 5 shards, in the heads and after a flush", async () => {
    /** Acked entries by stream key: ts -> line. */
    const acked = new Map<string, Map<string, string>>();
    let total = 0;
    const push = async (k: number, retry = false) => {
      const res = await pushLoki(k);
      expect(res.status, await res.clone().text()).toBe(204);
      if (retry) return;
      for (const e of entries(k)) {
        const key = streamKey(e.i);
        if (!acked.has(key)) acked.set(key, new Map());
        acked.get(key)!.set(e.ts, e.line);
        total++;
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
      // The push before the change is retried (as after a lost answer): its lines go by
      // the new ring, so some land on a shard that never had them (not a duplicate there).
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

    // Every shard layout held lines: shard 5 (LEAVING now) was written while it was in the 6-shard ring.
    const perShard = await Promise.all([0, 1, 2, 3, 4, 5].map(async (s) => (await logShardStub(env, TENANT, s).stats()).entriesAppended));
    for (const n of perShard) expect(n).toBeGreaterThan(0);
    // Some streams really are split over shards, with the retried pushes' copies on new shards ...
    expect(perShard.reduce((a, b) => a + b, 0)).toBeGreaterThan(total);

    const want = [...acked].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, m]) => [key, [...m].sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1))] as const);
    const check = async () => {
      // ... yet every acked line reads back exactly once, in time order.
      const data = await queryRange(`{app="lrs"}`);
      expect(data.resultType).toBe("streams");
      const got = (data.result as StreamResult[])
        .map((s) => [`{app="${s.stream.app}", i="${s.stream.i}"}`, s.values] as const)
        .sort(([a], [b]) => (a < b ? -1 : 1));
      expect(got.length).toBe(STREAMS);
      expect(got).toEqual(want);
      const counts = await queryRange(`sum(count_over_time({app="lrs"}[3h]))`, { step: "3600" });
      expect(counts.resultType).toBe("matrix");
      const series = counts.result as { values: [number, string][] }[];
      // The last step's 3 h window holds every line.
      expect(Number(series[0].values[series[0].values.length - 1][1])).toBe(total);
    };
    await check();

    // Flush every shard, LEAVING ones included: blocks from every layout, then read from R2 (and retained heads).
    const flushed = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": TENANT } });
    expect(flushed.status).toBe(204);
    const res = await SELF.fetch("http://ingester/api/v1/blocks?kind=logs", { headers: { "X-Scope-OrgID": TENANT } });
    const blocks = ((await res.json()) as { data: { blocks: { shard: number; stats: { numEntries: number } }[] } }).data.blocks;
    expect(new Set(blocks.map((b) => b.shard))).toEqual(new Set([0, 1, 2, 3, 4, 5]));
    expect(blocks.reduce((n, b) => n + b.stats.numEntries, 0)).toBe(perShard.reduce((a, b) => a + b, 0));
    await check();
  });
});
