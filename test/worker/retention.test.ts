// Retention per tenant (retentionPeriodMs, src/storage/retention.ts): the tenant
// control DO's alarm deletes metric and log blocks whose maxTime is past retention
// and keeps newer ones; queries through every API clamp their start to retention
// before any sweep; retention 0 keeps everything; the sweep is idempotent, deletes in
// batches of at most 1,000 keys, survives R2 failures (retried by the next alarm,
// queries unaffected) and keeps its alarm only while the tenant has blocks.
// Tenants and their limits: vitest.config.mts (ret_*: 24 h retention).

import { describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { tenantStub } from "../../src/distributor/tenant_ring";
import type { RetentionStats } from "../../durable-objects/tenant";
import { blockKey, listBlocks, listBlocksUnder, type ListedBlock } from "../../src/storage/blocks";
import { queryLogBlocks, tenantLogBlocksPrefix } from "../../src/storage/logs/blocks";
import { selectFromBlocks } from "../../src/querier/store";
import { compileMatcher } from "../../src/model/matchers";
import { Semaphore } from "../../src/model/concurrency";
import { DELETE_BATCH } from "../../src/storage/retention";
import { pushV1, readAll, re, type TestSeries } from "./helpers";

const HOUR = 3600_000;
const RETENTION = 24 * HOUR;
const NOW = Date.now();
const OLD = NOW - 48 * HOUR;
const NEW = NOW - HOUR;
const ns = (ms: number): string => (BigInt(Math.floor(ms)) * 1_000_000n).toString();

interface TenantInst {
  clock: () => number;
  bucket: R2Bucket;
}

function series(name: string, t0: number, n = 3, samples = 4): TestSeries[] {
  return Array.from({ length: n }, (_, i) => ({
    labels: { __name__: name, instance: `h${i}` },
    samples: Array.from({ length: samples }, (_, j) => [t0 + j * 15_000, i * 10 + j] as [number, number]),
  }));
}

async function pushLogs(tenant: string, streams: { stream: Record<string, string>; values: [string, string][] }[]): Promise<void> {
  const res = await SELF.fetch("http://ingester/loki/api/v1/push", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant },
    body: JSON.stringify({ streams }),
  });
  expect(res.status, await res.text()).toBe(204);
}

async function pushMetrics(tenant: string, s: TestSeries[]): Promise<void> {
  const res = await pushV1(s, { tenant });
  expect(res.status, await res.text()).toBe(204);
}

async function flush(tenant: string): Promise<void> {
  const res = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
  expect(res.status, await res.text()).toBe(204);
}

async function get(tenant: string, path: string, params: Record<string, string>): Promise<{ status: number; body: { data: unknown } }> {
  const url = new URL(`http://ingester${path}`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await SELF.fetch(url.toString(), { headers: { "X-Scope-OrgID": tenant } });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return { status: res.status, body: JSON.parse(text) as { data: unknown } };
}

const metricBlocks = (tenant: string): Promise<ListedBlock[]> => listBlocks(env.BLOCKS, tenant, -Infinity, Infinity);
const logBlocks = (tenant: string): Promise<ListedBlock[]> => listBlocksUnder(env.BLOCKS, tenantLogBlocksPrefix(tenant), -Infinity, Infinity);
const stats = (tenant: string): Promise<RetentionStats> => tenantStub(env, tenant).retentionStats();
const sweep = (tenant: string): Promise<boolean> => runDurableObjectAlarm(tenantStub(env, tenant));

async function onTenant(tenant: string, fn: (i: TenantInst) => void): Promise<void> {
  await runInDurableObject(tenantStub(env, tenant), (inst: unknown) => fn(inst as TenantInst));
}

/** Old and new blocks of both kinds: one flush of data 48 h old, then one of data 1 h old. */
async function oldAndNewBlocks(tenant: string): Promise<void> {
  await pushMetrics(tenant, series("m_old", OLD));
  await pushLogs(tenant, [{ stream: { app: "old" }, values: [[ns(OLD), "old line 1"], [ns(OLD + 1000), "old line 2"]] }]);
  await flush(tenant);
  await pushMetrics(tenant, series("m_new", NEW));
  await pushLogs(tenant, [{ stream: { app: "new" }, values: [[ns(NEW), "new line 1"], [ns(NEW + 1000), "new line 2"]] }]);
  await flush(tenant);
}

const cutoffOf = (at: number) => at - RETENTION;
const names = (blocks: ListedBlock[]) => blocks.map((b) => b.key).sort();

describe("retention", () => {
  it("deletes metric and log blocks older than retention, keeps newer ones, counts them, and a repeated sweep changes nothing", async () => {
    const tenant = "ret_sweep";
    await oldAndNewBlocks(tenant);
    // The tenant DO armed its sweep when the pushes first asked it for the ring.
    expect((await stats(tenant)).nextSweepAt).not.toBeNull();

    const cutoff = cutoffOf(Date.now());
    const metrics = await metricBlocks(tenant);
    const logs = await logBlocks(tenant);
    const oldMetrics = metrics.filter((b) => b.meta.maxTime < cutoff);
    const oldLogs = logs.filter((b) => b.meta.maxTime < cutoff);
    expect(oldMetrics.length).toBeGreaterThan(0);
    expect(oldLogs.length).toBeGreaterThan(0);
    expect(oldMetrics.length).toBeLessThan(metrics.length);
    expect(oldLogs.length).toBeLessThan(logs.length);

    expect(await sweep(tenant)).toBe(true);
    const keptMetrics = await metricBlocks(tenant);
    const keptLogs = await logBlocks(tenant);
    expect(names(keptMetrics)).toEqual(names(metrics.filter((b) => b.meta.maxTime >= cutoff)));
    expect(names(keptLogs)).toEqual(names(logs.filter((b) => b.meta.maxTime >= cutoff)));
    const st = await stats(tenant);
    expect(st.deleted).toEqual({
      metrics: { blocks: oldMetrics.length, bytes: oldMetrics.reduce((n, b) => n + b.size, 0) },
      logs: { blocks: oldLogs.length, bytes: oldLogs.reduce((n, b) => n + b.size, 0) },
    });
    expect(st.retentionPeriodMs).toBe(RETENTION);
    expect(st.lastError).toBeNull();
    expect(st.lastSweepAt).not.toBeNull();
    // Blocks remain: the next hourly sweep is scheduled.
    expect(st.nextSweepAt).not.toBeNull();

    // Alarms run at least once: a repeat deletes nothing more and counts nothing twice.
    expect(await sweep(tenant)).toBe(true);
    expect(names(await metricBlocks(tenant))).toEqual(names(keptMetrics));
    expect(names(await logBlocks(tenant))).toEqual(names(keptLogs));
    expect((await stats(tenant)).deleted).toEqual(st.deleted);

    // The newer data still reads back, from R2 and heads alike.
    const read = await readAll(tenant, 0, NOW + HOUR);
    expect(read.map((s) => s.labels[1]).sort()).toEqual(["m_new", "m_new", "m_new"]);
    expect(read.every((s) => s.timestamps.length === 4)).toBe(true);
  });

  it("queries never return data older than retention, before any sweep: remote read, PromQL, series, Loki query_range, series and labels", async () => {
    const tenant = "ret_clamp";
    // One series with one sample on each side of the cutoff, 1 h apart: one head chunk spans the cutoff.
    const span: TestSeries = { labels: { __name__: "m_span", job: "x" }, samples: [[NOW - RETENTION - 30 * 60_000, 1], [NOW - RETENTION + 30 * 60_000, 2]] };
    await pushMetrics(tenant, [...series("m_old", OLD), ...series("m_new", NEW), span]);
    await pushLogs(tenant, [
      { stream: { app: "old" }, values: [[ns(OLD), "old"]] },
      { stream: { app: "new" }, values: [[ns(NEW), "new"]] },
      { stream: { app: "span" }, values: [[ns(NOW - RETENTION - 30 * 60_000), "before"], [ns(NOW - RETENTION + 30 * 60_000), "after"]] },
    ]);

    const check = async () => {
      // Remote read from time 0: the old series is gone, the spanning one keeps its newer sample only.
      const read = await readAll(tenant, 0, NOW + HOUR);
      const byName = new Map<string, number[][]>();
      for (const s of read) byName.set(s.labels[1], [...(byName.get(s.labels[1]) ?? []), Array.from(s.timestamps)]);
      expect([...byName.keys()].sort()).toEqual(["m_new", "m_span"]);
      expect(byName.get("m_span")).toEqual([[NOW - RETENTION + 30 * 60_000]]);

      // PromQL: a 72 h range query of the old series is empty; the spanning series counts one sample.
      const range = await get(tenant, "/api/v1/query_range", { query: "m_old", start: String((NOW - 72 * HOUR) / 1000), end: String(NOW / 1000), step: "3600" });
      expect((range.body.data as { result: unknown[] }).result).toEqual([]);
      const count = await get(tenant, "/api/v1/query", { query: "count_over_time(m_span[72h])", time: String(NOW / 1000) });
      expect((count.body.data as { result: { value: [number, string] }[] }).result.map((r) => r.value[1])).toEqual(["1"]);

      // Series API from time 0: the old series is not listed.
      const ser = await get(tenant, "/api/v1/series", { "match[]": '{__name__=~"m_.*"}', start: "0" });
      expect((ser.body.data as Record<string, string>[]).map((l) => l.__name__).sort()).toEqual(["m_new", "m_new", "m_new", "m_span"]);

      // Loki: query_range from 72 h ago, series and label values.
      const logs = await get(tenant, "/loki/api/v1/query_range", { query: '{app=~".+"}', start: ns(NOW - 72 * HOUR), end: ns(NOW), direction: "forward", limit: "100" });
      const streams = (logs.body.data as { result: { stream: { app: string }; values: [string, string][] }[] }).result;
      expect(streams.map((s) => [s.stream.app, s.values.map((v) => v[1])]).sort()).toEqual([["new", ["new"]], ["span", ["after"]]]);
      const lseries = await get(tenant, "/loki/api/v1/series", { "match[]": '{app=~".+"}', start: ns(NOW - 72 * HOUR), end: ns(NOW) });
      expect((lseries.body.data as { app: string }[]).map((s) => s.app).sort()).toEqual(["new", "span"]);
      // With a selector, label values are exact per stream (without one, a block's whole index answers, as in Loki and Prometheus).
      const values = await get(tenant, "/loki/api/v1/label/app/values", { query: '{app=~".+"}', start: ns(NOW - 72 * HOUR), end: ns(NOW) });
      expect(values.body.data).toEqual(["new", "span"]);
      // A range wholly past retention reads nothing.
      const past = await get(tenant, "/loki/api/v1/query_range", { query: '{app="old"}', start: ns(OLD - HOUR), end: ns(OLD + HOUR), limit: "100" });
      expect((past.body.data as { result: unknown[] }).result).toEqual([]);
    };
    await check(); // from the heads
    await flush(tenant);
    await check(); // from the blocks (and the heads' retained copies), old blocks still in R2
    expect((await metricBlocks(tenant)).some((b) => b.meta.maxTime < cutoffOf(Date.now()))).toBe(true);
  });

  it("a tenant with retention 0 keeps everything", async () => {
    const tenant = "ret_zero";
    const old = NOW - 10 * 24 * HOUR; // within the 2-week reject_old_samples_max_age
    await pushMetrics(tenant, series("m_old", old));
    await pushLogs(tenant, [{ stream: { app: "old" }, values: [[ns(NOW - 5 * 24 * HOUR), "old"]] }]);
    await flush(tenant);
    const before = [names(await metricBlocks(tenant)), names(await logBlocks(tenant))];
    expect(before[0].length).toBeGreaterThan(0);
    expect(before[1].length).toBeGreaterThan(0);
    expect(await sweep(tenant)).toBe(true);
    expect([names(await metricBlocks(tenant)), names(await logBlocks(tenant))]).toEqual(before);
    const st = await stats(tenant);
    expect(st.deleted).toEqual({ metrics: { blocks: 0, bytes: 0 }, logs: { blocks: 0, bytes: 0 } });
    expect(st.retentionPeriodMs).toBe(0);
    expect(st.nextSweepAt).not.toBeNull(); // it has blocks: the sweep stays scheduled
    expect((await readAll(tenant, 0, NOW)).length).toBe(3);
  });

  it("an R2 failure during the sweep is retried by the next alarm, and queries keep answering without the expired data", async () => {
    const tenant = "ret_fail";
    await oldAndNewBlocks(tenant);
    const cutoff = cutoffOf(Date.now());
    const before = await metricBlocks(tenant);
    const expired = before.filter((b) => b.meta.maxTime < cutoff).length;
    expect(expired).toBeGreaterThan(0);

    let failing = true;
    await onTenant(tenant, (i) => {
      const real = i.bucket;
      i.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "delete" && failing) return async () => { throw new Error("injected R2 failure"); };
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    });
    expect(await sweep(tenant)).toBe(true);
    const failed = await stats(tenant);
    expect(failed.failures).toBe(1);
    expect(failed.lastError).toMatch(/injected R2 failure/);
    expect(failed.deleted.metrics.blocks).toBe(0);
    expect(failed.nextSweepAt).not.toBeNull(); // a retry is scheduled
    expect(names(await metricBlocks(tenant))).toEqual(names(before));
    // Queries are unaffected: 200, the expired data clamped away.
    const read = await readAll(tenant, 0, NOW + HOUR);
    expect([...new Set(read.map((s) => s.labels[1]))]).toEqual(["m_new"]);
    const logs = await get(tenant, "/loki/api/v1/query_range", { query: '{app=~".+"}', start: ns(NOW - 72 * HOUR), end: ns(NOW), limit: "100" });
    expect((logs.body.data as { result: { stream: { app: string } }[] }).result.map((s) => s.stream.app)).toEqual(["new"]);

    // R2 recovers: the next alarm deletes what the failed one could not.
    failing = false;
    expect(await sweep(tenant)).toBe(true);
    const ok = await stats(tenant);
    expect(ok.deleted.metrics.blocks).toBe(expired);
    expect(ok.deleted.logs.blocks).toBeGreaterThan(0);
    expect(ok.failures).toBe(1);
    expect(ok.lastError).toBeNull();
    expect((await metricBlocks(tenant)).every((b) => b.meta.maxTime >= cutoff)).toBe(true);
  });

  it("deletes in batches of at most 1,000 keys, stops its alarm when no block is left, and the next ring call re-arms it", async () => {
    const tenant = "ret_batch";
    // A read asks the tenant DO for the ring: it learns its tenant and arms its sweep.
    expect(await readAll(tenant)).toEqual([]);
    // 1,200 expired metric "blocks" (the sweep reads keys only) and one expired log block key.
    const n = DELETE_BATCH + 200;
    const keys = Array.from({ length: n }, (_, i) => blockKey(tenant, { minTime: OLD - 1000 + i, maxTime: OLD + i, shard: 0, blockId: `b${i}` }));
    for (let i = 0; i < n; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => env.BLOCKS.put(k, "xy")));
    await env.BLOCKS.put(`${tenantLogBlocksPrefix(tenant)}${keys[0].slice(keys[0].lastIndexOf("/") + 1)}`, "xyz");

    const batches: number[] = [];
    await onTenant(tenant, (i) => {
      const real = i.bucket;
      i.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "delete") {
            return async (k: string | string[]) => {
              batches.push(Array.isArray(k) ? k.length : 1);
              return target.delete(k);
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    });
    expect(await sweep(tenant)).toBe(true);
    expect(batches).toEqual([DELETE_BATCH, 200, 1]);
    expect((await env.BLOCKS.list({ prefix: `tenants/${tenant}/blocks/` })).objects).toEqual([]);
    expect((await env.BLOCKS.list({ prefix: tenantLogBlocksPrefix(tenant) })).objects).toEqual([]);
    const st = await stats(tenant);
    expect(st.deleted).toEqual({ metrics: { blocks: n, bytes: 2 * n }, logs: { blocks: 1, bytes: 3 } });
    // Nothing left: no alarm until the tenant is used again.
    expect(st.nextSweepAt).toBeNull();
    expect(await sweep(tenant)).toBe(false);
    await readAll(tenant);
    expect((await stats(tenant)).nextSweepAt).not.toBeNull();
  });

  it("a block deleted between a query's list and its reads is skipped, not a 5xx", async () => {
    const tenant = "ret_gone";
    await pushMetrics(tenant, series("m_new", NEW));
    await pushLogs(tenant, [{ stream: { app: "new" }, values: [[ns(NEW), "new"]] }]);
    await flush(tenant);
    expect((await metricBlocks(tenant)).length).toBe(1);
    // A bucket whose list answers and then the listed objects are deleted (the sweep running in between).
    const racing = new Proxy(env.BLOCKS, {
      get(target, prop) {
        if (prop === "list") {
          return async (opts: R2ListOptions) => {
            const page = await target.list(opts);
            await target.delete(page.objects.map((o) => o.key));
            return page;
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const gate = new Semaphore(6);
    expect(await selectFromBlocks(racing, tenant, [compileMatcher(re("__name__", ".+"))], 0, NOW + HOUR, gate)).toEqual([]);
    expect(await queryLogBlocks(racing, tenant, { matchers: [re("app", ".+")], startMs: 0, startNs: 0, endMs: NOW + HOUR, endNs: 0 }, { gate })).toEqual([]);
  });
});
