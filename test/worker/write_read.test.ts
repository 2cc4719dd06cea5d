// Push then read back through the Worker, in the Workers runtime with real Durable
// Objects and SQLite: ordering rules, partial errors, tenants, eviction.

import { describe, expect, it } from "vitest";
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { asMap, bits, eq, expected, pushV1, readAll, remoteRead, STALE_NAN, type TestSeries } from "./helpers";
import { shardStub } from "../../src/distributor/shards";
import { DEFAULT_LIMITS } from "../../src/config/limits";

const NOW = Date.now();
const T0 = NOW - 3600_000;

function series(n: number, samples: number, name = "node_cpu_seconds_total", step = 15_000): TestSeries[] {
  const out: TestSeries[] = [];
  for (let i = 0; i < n; i++) {
    const pts: [number, number][] = [];
    for (let j = 0; j < samples; j++) pts.push([T0 + j * step, i * 1000 + j * 0.25]);
    out.push({ labels: { __name__: name, cpu: String(i % 8), instance: `host-${i}:9100`, job: "node" }, samples: pts });
  }
  return out;
}

async function stats(tenant: string) {
  const res = await fetchStatus(tenant);
  return res.data.shards as { shard: number; series: number; samplesAppended: number; walRecords: number; pushes: number }[];
}
async function fetchStatus(tenant: string) {
  const { SELF } = await import("cloudflare:test");
  const r = await SELF.fetch("http://ingester/api/v1/status/ingesters", { headers: { "X-Scope-OrgID": tenant } });
  expect(r.status).toBe(200);
  return (await r.json()) as { data: { shards: unknown[] } };
}

describe("remote write then remote read", () => {
  it("reads back every sample bit-exactly, including NaN, the stale marker and infinities", async () => {
    const tenant = "rt-exact";
    const data = series(50, 130); // > 120: crosses a chunk cut
    data.push({ labels: { __name__: "special", job: "x" }, samples: [[T0, NaN], [T0 + 1, STALE_NAN], [T0 + 2, Infinity], [T0 + 3, -Infinity], [T0 + 4, -0], [T0 + 5, 1e308], [T0 + 6, 5e-324]] });
    const res = await pushV1(data, { tenant });
    expect(res.status, await res.text()).toBe(204);
    expect(asMap(await readAll(tenant))).toEqual(expected(data));
  });

  it("answers each remote read query with its own time range and matchers", async () => {
    const tenant = "rt-ranges";
    const data = series(10, 20);
    expect((await pushV1(data, { tenant })).status).toBe(204);
    const [a, b, c] = await remoteRead(
      [
        { matchers: [eq("__name__", "node_cpu_seconds_total"), eq("instance", "host-3:9100")], startMs: T0 + 15_000, endMs: T0 + 45_000 },
        { matchers: [eq("__name__", "node_cpu_seconds_total"), { type: 1, name: "cpu", value: "0" }], startMs: 0, endMs: NOW },
        { matchers: [eq("__name__", "nope")], startMs: 0, endMs: NOW },
      ],
      tenant,
    );
    expect(a.length).toBe(1);
    expect(Array.from(a[0].timestamps)).toEqual([T0 + 15_000, T0 + 30_000, T0 + 45_000]);
    expect(b.length).toBe(8); // cpu != "0": 10 series minus host-0 and host-8
    expect(c.length).toBe(0);
  });

  it("keeps tenants apart", async () => {
    expect((await pushV1(series(3, 2, "only_in_a"), { tenant: "iso-a" })).status).toBe(204);
    expect((await readAll("iso-b")).length).toBe(0);
    expect((await readAll("iso-a")).length).toBe(3);
  });

  it("uses the default tenant when X-Scope-OrgID is absent", async () => {
    expect((await pushV1(series(2, 1, "default_tenant_metric"))).status).toBe(204);
    const got = await readAll(env.DEFAULT_TENANT);
    expect(got.some((s) => s.labels.includes("default_tenant_metric"))).toBe(true);
  });

  it("spreads series over the shards with one RPC and one WAL row per shard per push", async () => {
    const tenant = "spread";
    for (let p = 0; p < 3; p++) {
      const data = series(400, 1).map((s) => ({ ...s, samples: [[T0 + p * 15_000, p] as [number, number]] }));
      expect((await pushV1(data, { tenant })).status).toBe(204);
    }
    const st = await stats(tenant);
    expect(st.length).toBe(DEFAULT_LIMITS.shards);
    expect(st.reduce((a, s) => a + s.series, 0)).toBe(400);
    for (const s of st) {
      expect(s.series).toBeGreaterThan(50); // 100 each on average
      expect(s.pushes).toBe(3);
      expect(s.walRecords).toBe(3);
    }
  });
});

describe("ordering rules (Prometheus)", () => {
  const tenant = "ordering";
  const lbl = { __name__: "ord", job: "x" };

  it("accepts an exact duplicate, refuses a new value for the same timestamp and older samples", async () => {
    expect((await pushV1([{ labels: lbl, samples: [[T0, 1], [T0 + 1000, 2]] }], { tenant })).status).toBe(204);
    // Same timestamp, same value: harmless.
    expect((await pushV1([{ labels: lbl, samples: [[T0 + 1000, 2]] }], { tenant })).status).toBe(204);
    // Same timestamp, other value.
    let res = await pushV1([{ labels: lbl, samples: [[T0 + 1000, 3]] }], { tenant });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/duplicate sample for timestamp.*ord\{job="x"\}.*1 of 1 samples in this request were dropped/s);
    // Older than newest.
    res = await pushV1([{ labels: lbl, samples: [[T0 + 500, 9]] }], { tenant });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/out of order sample/);
    const [s] = await readAll(tenant);
    expect(Array.from(s.values)).toEqual([1, 2]);
  });

  it("keeps the valid samples of a request with bad ones and says how many were dropped", async () => {
    const good = { labels: { __name__: "partial_ok", job: "x" }, samples: [[T0, 1], [T0 + 1000, 2]] as [number, number][] };
    const badName = { labels: { __name__: "bad-name", job: "x" }, samples: [[T0, 1]] as [number, number][] };
    const tooNew = { labels: { __name__: "partial_future", job: "x" }, samples: [[T0, 1], [NOW + 3600_000, 2]] as [number, number][] };
    const res = await pushV1([good, badName, tooNew], { tenant: "partial" });
    expect(res.status).toBe(400);
    const msg = await res.text();
    expect(msg).toMatch(/invalid metric name "bad-name"/);
    expect(msg).toMatch(/2 of 5 samples in this request were dropped, 3 were written/);
    const got = asMap(await readAll("partial"));
    expect(got.get(JSON.stringify(["__name__", "partial_ok", "job", "x"]))?.length).toBe(2);
    expect(got.get(JSON.stringify(["__name__", "partial_future", "job", "x"]))).toEqual([[T0, bits(1)]]);
    expect(got.size).toBe(2);
  });

  it("accepts late samples within a tenant's out-of-order window and merges them in order", async () => {
    // LIMITS in vitest.config.mts gives tenant "ooo" a 10 minute window.
    const tenant = "ooo";
    const l = { __name__: "late", job: "x" };
    expect((await pushV1([{ labels: l, samples: [[T0 + 60_000, 6], [T0 + 120_000, 12]] }], { tenant })).status).toBe(204);
    expect((await pushV1([{ labels: l, samples: [[T0 + 30_000, 3], [T0 + 90_000, 9]] }], { tenant })).status).toBe(204);
    // Same timestamp as a stored out-of-order sample with another value: refused.
    expect((await pushV1([{ labels: l, samples: [[T0 + 30_000, 4]] }], { tenant })).status).toBe(400);
    // Beyond the window: "too old".
    const res = await pushV1([{ labels: l, samples: [[T0 + 120_000 - 11 * 60_000, 1]] }], { tenant });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/too old sample/);
    const [s] = await readAll(tenant);
    expect(Array.from(s.timestamps)).toEqual([T0 + 30_000, T0 + 60_000, T0 + 90_000, T0 + 120_000]);
    expect(Array.from(s.values)).toEqual([3, 6, 9, 12]);
  });
});

describe("durability", () => {
  it("rebuilds every acked sample from the WAL after the ingesters are evicted", async () => {
    const tenant = "evict";
    const data = series(200, 3);
    // Several pushes, so replay walks many rows (one per push per shard).
    for (let j = 0; j < 3; j++) {
      const part = data.map((s) => ({ labels: s.labels, samples: [s.samples[j]] }));
      expect((await pushV1(part, { tenant })).status).toBe(204);
    }
    const before = asMap(await readAll(tenant));
    for (let shard = 0; shard < DEFAULT_LIMITS.shards; shard++) {
      const stub = shardStub(env, tenant, shard);
      await runInDurableObject(stub, (instance: unknown) => {
        expect((instance as { head: { numSeries: number } }).head.numSeries).toBeGreaterThan(0);
      });
      await evictDurableObject(stub);
    }
    expect(asMap(await readAll(tenant))).toEqual(before);
    expect(before).toEqual(expected(data));
    // And the series index survived: new samples append to the same series.
    const next = data.map((s) => ({ labels: s.labels, samples: [[T0 + 60_000, 1]] as [number, number][] }));
    expect((await pushV1(next, { tenant })).status).toBe(204);
    const st = await stats(tenant);
    expect(st.reduce((a, s) => a + s.series, 0)).toBe(200);
  });

  it("acks nothing and changes nothing when the WAL write fails, then accepts the retry", async () => {
    const tenant = "walfail";
    const stubs = Array.from({ length: DEFAULT_LIMITS.shards }, (_, i) => shardStub(env, tenant, i));
    type Inst = { wal: { append: (rec: Uint8Array) => void } };
    const originals: ((rec: Uint8Array) => void)[] = [];
    for (const stub of stubs) {
      await runInDurableObject(stub, (instance: unknown) => {
        const wal = (instance as Inst).wal;
        originals.push(wal.append);
        wal.append = () => {
          throw new Error("injected SQLite failure");
        };
      });
    }
    const data = series(20, 2, "walfail_metric");
    const res = await pushV1(data, { tenant });
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/injected SQLite failure/);
    expect((await readAll(tenant)).length).toBe(0);
    let i = 0;
    for (const stub of stubs) {
      const orig = originals[i++];
      await runInDurableObject(stub, (instance: unknown) => {
        (instance as Inst).wal.append = orig;
      });
    }
    expect((await pushV1(data, { tenant })).status).toBe(204);
    expect(asMap(await readAll(tenant))).toEqual(expected(data));
    for (const stub of stubs) await evictDurableObject(stub);
    expect(asMap(await readAll(tenant))).toEqual(expected(data));
  });
});

describe("remote write 2.0 extras", () => {
  it("stores metadata (1.0 and 2.0) in the head and the WAL, surviving eviction", async () => {
    const tenant = "meta";
    const { pushV2 } = await import("./helpers");
    const { MetricType } = await import("../../src/proto/types");
    const v1meta = [{ type: MetricType.COUNTER, metricFamilyName: "http_requests_total", help: "Requests served.", unit: "" }];
    expect((await pushV1([{ labels: { __name__: "http_requests_total", job: "x" }, samples: [[T0, 1]] }], { tenant, metadata: v1meta })).status).toBe(204);
    const v2meta = { type: MetricType.GAUGE, metricFamilyName: "", help: "Bytes in use.", unit: "bytes" };
    expect((await pushV2([{ labels: { __name__: "mem_bytes", job: "x" }, samples: [[T0, 5]] }], { tenant, metadata: [v2meta] })).status).toBe(204);
    const collect = async () => {
      const all = new Map<string, unknown>();
      for (let shard = 0; shard < DEFAULT_LIMITS.shards; shard++) {
        await runInDurableObject(shardStub(env, tenant, shard), (inst: unknown) => {
          for (const [k, v] of (inst as { head: { metadata: Map<string, unknown> } }).head.metadata) all.set(k, v);
        });
      }
      return all;
    };
    const before = await collect();
    expect(before.get("http_requests_total")).toEqual(v1meta[0]);
    expect(before.get("mem_bytes")).toEqual({ ...v2meta, metricFamilyName: "mem_bytes" });
    for (let shard = 0; shard < DEFAULT_LIMITS.shards; shard++) await evictDurableObject(shardStub(env, tenant, shard));
    expect(await collect()).toEqual(before);
  });

  it("ingests a zero sample at the created timestamp, as Prometheus does, only when it is in order", async () => {
    const tenant = "created-ts";
    const { pushV2 } = await import("./helpers");
    const l = { __name__: "requests_total", job: "x" };
    let res = await pushV2([{ labels: l, samples: [[T0 + 60_000, 10]], createdTimestamp: T0 }], { tenant });
    expect(res.status).toBe(204);
    // The zero sample is stored but not counted as written (it was not sent as a sample).
    expect(res.headers.get("X-Prometheus-Remote-Write-Samples-Written")).toBe("1");
    // Same created timestamp again: the zero would be out of order, so it is ignored, not an error.
    res = await pushV2([{ labels: l, samples: [[T0 + 120_000, 20]], createdTimestamp: T0 }], { tenant });
    expect(res.status).toBe(204);
    const [s] = await readAll(tenant);
    expect(Array.from(s.timestamps)).toEqual([T0, T0 + 60_000, T0 + 120_000]);
    expect(Array.from(s.values)).toEqual([0, 10, 20]);
  });
});
