// Retiring LEAVING shards (LEFT, src/distributor/ring.ts): after a scale-down, the
// tenant DO's alarm retires a shard once it left long enough ago (RETIRE_AFTER_MS)
// and both its metrics and log shards hold nothing (everything flushed and past the
// retain period). A LEFT shard is no longer asked by reads, flushes or status; it
// refuses writes placed by a stale ring (retryable); growing the ring over it makes
// it ACTIVE again. Every acked sample and line reads back exactly throughout.

import { describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { asMap, expected, pushV1, readAll, type TestSeries } from "./helpers";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { LogBatchWriter } from "../../src/ingester/logs/batch";
import { shardLimits } from "./log_support";
import { logShardStub, shardStub } from "../../src/distributor/shards";
import { RETIRE_AFTER_MS, tenantRings, tenantStub } from "../../src/distributor/tenant_ring";
import { jsonPushBody, ns } from "../support/loki_wire";

const NOW = Date.now();
const T0 = NOW - 3600_000;
const TENANT = "retire";
const MIN = 60_000;

interface Clocked {
  clock: () => number;
}

async function setClocks(shards: number[], at: number): Promise<void> {
  for (const s of shards) {
    for (const stub of [shardStub(env, TENANT, s), logShardStub(env, TENANT, s)]) {
      await runInDurableObject(stub, (inst: unknown) => {
        (inst as Clocked).clock = () => at;
      });
    }
  }
}

/** Every shard's flush check at `at` (metrics and logs). */
async function shardAlarms(shards: number[], at: number): Promise<void> {
  await setClocks(shards, at);
  for (const s of shards) {
    await runDurableObjectAlarm(shardStub(env, TENANT, s));
    await runDurableObjectAlarm(logShardStub(env, TENANT, s));
  }
}

/** The tenant DO's alarm (retention sweep, then retiring) at `at`. */
async function tenantAlarm(at: number): Promise<void> {
  await runInDurableObject(tenantStub(env, TENANT), (inst: unknown) => {
    (inst as Clocked).clock = () => at;
  });
  expect(await runDurableObjectAlarm(tenantStub(env, TENANT))).toBe(true);
}

async function ringStates(): Promise<{ retired: number[]; states: string[] }> {
  const res = await SELF.fetch(`http://ingester/api/v1/shards?tenant=${TENANT}`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { retired: number[]; states: { state: string }[] } };
  return { retired: body.data.retired, states: body.data.states.map((s) => s.state) };
}

async function statusShards(): Promise<number[]> {
  return (await statusSeries()).map(([s]) => s);
}

/** [shard, series in its head] as the status API lists them. */
async function statusSeries(): Promise<[number, number][]> {
  const res = await SELF.fetch("http://ingester/api/v1/status/ingesters", { headers: { "X-Scope-OrgID": TENANT } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { shards: { shard: number; series: number }[] } };
  return body.data.shards.map((s) => [s.shard, s.series]);
}

const acked: TestSeries[] = [];
const lines: [string, string, string][] = []; // [stream i, ns, line]

async function pushMetrics(k: number, expectStatus = 204): Promise<void> {
  const batch: TestSeries[] = Array.from({ length: 40 }, (_, i) => ({ labels: { __name__: "rt", i: String(i) }, samples: [[T0 + k * 1000, k * 100 + i]] }));
  const res = await pushV1(batch, { tenant: TENANT });
  const text = await res.text();
  expect(res.status, text).toBe(expectStatus);
  if (res.status === 204) acked.push(...batch);
  if (expectStatus === 503) expect(text).toMatch(/left the ring \(retired: all its data is in R2\)/);
}

async function pushLogs(k: number): Promise<void> {
  const es = Array.from({ length: 20 }, (_, i) => [String(i), ns(T0 + k * 1000, i), `k=${k} stream=${i}`] as [string, string, string]);
  const body = jsonPushBody(es.map(([i, ts, line]) => ({ stream: { app: "rt", i }, values: [[ts, line]] })));
  const res = await SELF.fetch("http://ingester/loki/api/v1/push", { method: "POST", body, headers: { "Content-Type": "application/json", "X-Scope-OrgID": TENANT } });
  expect(res.status, await res.text()).toBe(204);
  lines.push(...es);
}

async function expectEverything(): Promise<void> {
  // One entry per series, its samples from every acked push in time order.
  const merged = new Map<string, TestSeries>();
  for (const s of acked) {
    const key = JSON.stringify(s.labels);
    const have = merged.get(key);
    if (have) have.samples = [...have.samples, ...s.samples].sort((a, b) => a[0] - b[0]);
    else merged.set(key, { labels: s.labels, samples: [...s.samples] });
  }
  const want = expected([...merged.values()]);
  expect(asMap(await readAll(TENANT))).toEqual(want);
  const q = new URLSearchParams({ query: '{app="rt"}', start: ns(T0 - MIN), end: ns(NOW + MIN), limit: "5000", direction: "forward" });
  const res = await SELF.fetch(`http://ingester/loki/api/v1/query_range?${q}`, { headers: { "X-Scope-OrgID": TENANT } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { result: { stream: { i: string }; values: [string, string][] }[] } };
  const got = body.data.result.flatMap((r) => r.values.map(([ts, line]) => `${r.stream.i} ${ts} ${line}`)).sort();
  expect(got).toEqual(lines.map(([i, ts, line]) => `${i} ${ts} ${line}`).sort());
}

describe("retiring LEAVING shards", () => {
  it("retires emptied shards after a scale-down, refuses stale placements, and takes them back on a scale-up", async () => {
    tenantRings.clear();
    let k = 0;
    for (; k < 3; k++) {
      await pushMetrics(k);
      await pushLogs(k);
    }
    const four = await tenantRings.fresh(env, TENANT);
    expect(four.shards).toBe(DEFAULT_LIMITS.shards);
    const put = await SELF.fetch(`http://ingester/api/v1/shards?tenant=${TENANT}&shards=2`, { method: "PUT" });
    expect(put.status).toBe(200);
    tenantRings.clear();
    const two = await tenantRings.fresh(env, TENANT);
    await pushMetrics(k);
    await pushLogs(k++);

    // Too soon, then holding data: still LEAVING, still read.
    await tenantAlarm(NOW);
    expect((await ringStates()).states).toEqual(["ACTIVE", "ACTIVE", "LEAVING", "LEAVING"]);
    await tenantAlarm(two.since + RETIRE_AFTER_MS + MIN);
    expect((await ringStates()).states).toEqual(["ACTIVE", "ACTIVE", "LEAVING", "LEAVING"]);
    expect(await statusShards()).toEqual([0, 1, 2, 3]);
    await expectEverything();

    // Flush everything, then let the retain period pass on the LEAVING shards: their heads empty.
    const flush = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": TENANT } });
    expect(flush.status).toBe(204);
    const later = Date.now() + DEFAULT_LIMITS.retainPeriodMs + MIN;
    await shardAlarms([2, 3], later);

    await tenantAlarm(later + MIN);
    const { retired, states } = await ringStates();
    expect(retired).toEqual([2, 3]);
    expect(states).toEqual(["ACTIVE", "ACTIVE", "LEFT", "LEFT"]);
    expect(await statusShards()).toEqual([0, 1]);
    // Everything they held reads back from R2.
    await expectEverything();

    // An isolate still placing by the 4-shard ring is refused on the LEFT shards (503,
    // retryable, nothing acked there); its retry with the current ring lands.
    tenantRings.clear();
    tenantRings.prime(TENANT, four);
    await pushMetrics(k, 503);
    tenantRings.clear();
    await pushMetrics(k++);
    await expectEverything();

    // Scale up again over the LEFT shards: they are ACTIVE and take writes from the new ring.
    const up = await SELF.fetch(`http://ingester/api/v1/shards?tenant=${TENANT}&shards=4`, { method: "PUT" });
    expect(up.status).toBe(200);
    expect(await ringStates()).toEqual({ retired: [], states: ["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE"] });
    tenantRings.clear();
    const again = await tenantRings.fresh(env, TENANT);
    expect(again.shards).toBe(4);
    await pushMetrics(k);
    await pushLogs(k++);
    // The 40 series of that push spread over all four shards again: 2 and 3 took some.
    const on23 = (await statusSeries()).filter(([s]) => s >= 2);
    expect(on23.map(([s]) => s)).toEqual([2, 3]);
    for (const [, series] of on23) expect(series).toBeGreaterThan(0);
    await expectEverything();
  });

  it("keeps a LEAVING shard while its log shard still holds lines, retires it once both are empty", async () => {
    const tenant = "retire-partial";
    const es = Array.from({ length: 20 }, (_, i) => ({ stream: { app: "rp", i: String(i) }, values: [[ns(T0, i), `line ${i}`]] as [string, string][] }));
    const res = await SELF.fetch("http://ingester/loki/api/v1/push", { method: "POST", body: jsonPushBody(es), headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant } });
    expect(res.status, await res.text()).toBe(204);
    expect((await SELF.fetch(`http://ingester/api/v1/shards?tenant=${tenant}&shards=2`, { method: "PUT" })).status).toBe(200);
    expect((await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    const later = Date.now() + DEFAULT_LIMITS.retainPeriodMs + MIN;
    const alarmOf = async (stub: DurableObjectStub, at: number) => {
      await runInDurableObject(stub, (inst: unknown) => {
        (inst as Clocked).clock = () => at;
      });
      await runDurableObjectAlarm(stub);
    };
    const retireAt = async (at: number) => {
      await runInDurableObject(tenantStub(env, tenant), (inst: unknown) => {
        (inst as Clocked).clock = () => at;
      });
      expect(await runDurableObjectAlarm(tenantStub(env, tenant))).toBe(true);
      const body = (await (await SELF.fetch(`http://ingester/api/v1/shards?tenant=${tenant}`)).json()) as { data: { states: { state: string }[] } };
      return body.data.states.map((s) => s.state);
    };
    // The metrics shards 2 and 3 never held anything; the log shards keep their flushed chunks for the retain period.
    expect(await retireAt(later + MIN)).toEqual(["ACTIVE", "ACTIVE", "LEAVING", "LEAVING"]);
    for (const s of [2, 3]) await alarmOf(logShardStub(env, tenant, s), later);
    expect(await retireAt(later + 2 * MIN)).toEqual(["ACTIVE", "ACTIVE", "LEFT", "LEFT"]);
    const q = new URLSearchParams({ query: '{app="rp"}', start: ns(T0 - MIN), end: ns(NOW + MIN), limit: "100" });
    const read = (await (await SELF.fetch(`http://ingester/loki/api/v1/query_range?${q}`, { headers: { "X-Scope-OrgID": tenant } })).json()) as { data: { result: { values: unknown[] }[] } };
    expect(read.data.result.reduce((n, r) => n + r.values.length, 0)).toBe(20);
  });

  it("a retired shard refuses writes placed by its ring or an older one, and takes them from a newer ring", async () => {
    const tenant = "retire-direct";
    const since = 1_000_000;
    const stub = logShardStub(env, tenant, 1);
    expect(await stub.retire(since)).toBe(true);
    const b = new LogBatchWriter();
    b.beginStream('{app="x"}');
    b.entry(T0, 0, "line", null);
    const batch = b.finish();
    const attempt = async (ringSince: number | undefined) => {
      try {
        return await stub.pushLogs({ tenant, shard: 1, batch, limits: shardLimits(), ringSince });
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(await attempt(since)).toMatch(/log shard|shard 1 of tenant retire-direct left the ring/);
    expect(await attempt(undefined)).toMatch(/left the ring/);
    expect(await attempt(since - 1)).toMatch(/left the ring/);
    expect(await attempt(since + 1)).toMatchObject({ accepted: 1 });
    // No longer retired: any ring's writes land again, and it holds data, so it does not retire.
    expect(await attempt(since)).toMatchObject({ duplicates: 1 });
    expect(await stub.retire(since + 1)).toBe(false);
  });
});
