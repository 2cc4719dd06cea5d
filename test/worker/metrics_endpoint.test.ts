// GET /metrics, the per-tenant stats API and the status page, inside workerd with
// the real Durable Objects and R2: the exposition parses (a strict parser,
// ./exposition_reader.ts),
// counters move by exactly what was pushed and discarded (by the distributor and by
// the shards), and they survive the eviction of every shard.

import { describe, expect, it } from "vitest";
import { env, evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { post, pushV1, type TestSeries } from "./helpers";
import { ProtoWriter } from "../../src/proto/writer";
import { logShardStub, shardStub } from "../../src/distributor/shards";
import { snappyCompress } from "../../src/proto/snappy";
import { encodePushRequest, jsonPushBody, ns, type JsonStream, type PushStream } from "../support/loki_wire";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { Registry, formatValue } from "../../src/observability/exposition";
import { parseStrict, scrape, scrapeWithTenant, value, type ParsedFamily } from "./exposition_reader";
import { routeLabel } from "../../src/observability/requests";
import { listBlocks, listBlocksUnder, listTenants } from "../../src/storage/blocks";
import { tenantLogBlocksPrefix } from "../../src/storage/logs/blocks";
import { bytes } from "../../src/http/status_page";
import { COUNTER, MAX_RECENT_ERRORS, ShardObserver, ratePerSecond, sumHistories } from "../../src/observability/shard";

const NOW = Date.now();

function series(n: number, prefix: string, t: number): TestSeries[] {
  return Array.from({ length: n }, (_, i) => ({ labels: { __name__: `${prefix}_metric`, idx: String(i) }, samples: [[t, i], [t + 1000, i + 1], [t + 2000, i + 2]] }));
}

// ---------------------------------------------------------------------------------

describe("exposition format", () => {
  it("escapes label values and HELP, writes TYPE lines, sums repeated label sets and lays out histograms", () => {
    const reg = new Registry();
    reg.counter("demo_requests_total", 'Requests with "quotes", a back\\slash\nand a newline.').add({ path: 'a"b\\c\nd' }, 2).add({ path: 'a"b\\c\nd' }, 3);
    reg.gauge("demo_temperature", "A gauge.").set({}, -1.5);
    reg.histogram("demo_seconds", "A histogram.", [0.1, 1]).observeMany({ route: "x" }, [1, 2, 3], 9.5, 6);
    reg.counter("demo_empty_total", "Never written: left out.");
    const text = reg.render();
    expect(text).toBe(
      [
        '# HELP demo_requests_total Requests with "quotes", a back\\\\slash\\nand a newline.',
        "# TYPE demo_requests_total counter",
        'demo_requests_total{path="a\\"b\\\\c\\nd"} 5',
        "# HELP demo_temperature A gauge.",
        "# TYPE demo_temperature gauge",
        "demo_temperature -1.5",
        "# HELP demo_seconds A histogram.",
        "# TYPE demo_seconds histogram",
        'demo_seconds_bucket{route="x",le="0.1"} 1',
        'demo_seconds_bucket{route="x",le="1"} 3',
        'demo_seconds_bucket{route="x",le="+Inf"} 6',
        'demo_seconds_sum{route="x"} 9.5',
        'demo_seconds_count{route="x"} 6',
        "",
      ].join("\n"),
    );
    const f = parseStrict(text);
    expect(f.get("demo_requests_total")!.help).toBe('Requests with "quotes", a back\\slash\nand a newline.');
    expect(f.get("demo_requests_total")!.samples[0].labels.path).toBe('a"b\\c\nd');
    expect(f.has("demo_empty_total")).toBe(false);
    expect([formatValue(NaN), formatValue(Infinity), formatValue(-Infinity), formatValue(1e21)]).toEqual(["NaN", "+Inf", "-Inf", "1e+21"]);
  });

  it("refuses names the format does not allow and counters without _total", () => {
    const reg = new Registry();
    expect(() => reg.counter("requests", "x")).toThrow(/_total/);
    expect(() => reg.gauge("9lives", "x")).toThrow(/invalid metric name/);
    expect(() => reg.gauge("ok", "x").set({ "bad-name": "v" }, 1)).toThrow(/invalid label name/);
    expect(() => reg.gauge("ok2", "x").set({ __reserved: "v" }, 1)).toThrow(/invalid label name/);
  });

  it("names routes as Cortex's middleware does", () => {
    expect(routeLabel("/api/v1/push")).toBe("api_v1_push");
    expect(routeLabel("/api/v1/label/:name/values")).toBe("api_v1_label_name_values");
    expect(routeLabel("/loki/api/v1/query_range")).toBe("loki_api_v1_query_range");
    expect(routeLabel("/")).toBe("root");
    expect(routeLabel("*")).toBe("other");
    expect(routeLabel(undefined)).toBe("other");
  });
});

describe("shard observations", () => {
  it("keep an hour of per-minute counts, reload from SQLite, cap and throttle errors", async () => {
    const t0 = Math.floor(NOW / 60_000) * 60_000;
    await runInDurableObject(shardStub(env, "obs-unit", 0), (_inst: unknown, state) => {
      const o = new ShardObserver(state.storage.sql);
      o.record(t0 - 90 * 60_000, 1000); // an hour and a half ago: out of the window
      o.record(t0 - 59 * 60_000, 7); // the oldest minute shown
      o.record(t0 - 60_000 + 5, 60);
      o.record(t0 + 1000, 20);
      o.record(t0 + 2000, 10);
      o.inc(COUNTER.samplesReceived, 97);
      o.inc(`${COUNTER.discarded}/sample_out_of_order`, 3);
      for (let i = 0; i < 15; i++) o.error(t0 + i, "push", `failure ${i}`);
      o.error(t0 + 100, "rejected", "first refusal");
      o.error(t0 + 200, "rejected", "second refusal, within 10 s: not kept");
      o.commit();

      const back = new ShardObserver(state.storage.sql).snapshot(t0 + 30_000);
      expect(back.counters).toEqual({ [COUNTER.samplesReceived]: 97, [`${COUNTER.discarded}/sample_out_of_order`]: 3 });
      expect(back.history.endMinute).toBe(t0 / 60_000);
      expect(back.history.counts).toHaveLength(60);
      expect(back.history.counts[0]).toBe(7);
      expect(back.history.counts[58]).toBe(60);
      expect(back.history.counts[59]).toBe(30);
      expect(back.history.counts.reduce((a, b) => a + b, 0)).toBe(97);
      expect(back.errors).toHaveLength(MAX_RECENT_ERRORS);
      expect(back.errors.map((e) => e.message).slice(-2)).toEqual(["failure 14", "first refusal"]);
      // Half-way through the minute: this minute's 30 plus half of the previous minute's 60, per 60 s.
      expect(ratePerSecond(back.history, t0 + 30_000)).toBe(1);
      // An hour later every minute has rolled out.
      expect(new ShardObserver(state.storage.sql).history(t0 + 60 * 60_000).counts.every((c) => c === 0)).toBe(true);
    });
    // Histories ending a minute apart line up by minute.
    const a = { endMinute: 100, counts: Array.from({ length: 60 }, (_, i) => i) };
    const b = { endMinute: 99, counts: Array.from({ length: 60 }, () => 1) };
    const sum = sumHistories([a, b], 100);
    expect(sum.counts[59]).toBe(59);
    expect(sum.counts[58]).toBe(58 + 1);
    // b's oldest minute (40) is before the window (41..100): dropped.
    expect(sum.counts[0]).toBe(0 + 1);
    expect(sum.counts.reduce((x, y) => x + y, 0)).toBe(1770 + 59);
  });
});

describe("GET /metrics", () => {
  const tenant = "obs-exact";
  const fresh = series(10, "fresh", NOW - 60_000);

  it("counts received and discarded samples exactly, by reason, whichever side discarded them", async () => {
    // 30 valid samples.
    expect((await pushV1(fresh, { tenant })).status).toBe(204);
    // 2 valid samples ride with 3 refused for an invalid label name and 1 too old
    // (the distributor's discards travel with the batch).
    const mixed: TestSeries[] = [
      { labels: { __name__: "mixed_ok", a: "1" }, samples: [[NOW - 5000, 1], [NOW - 4000, 2]] },
      { labels: { __name__: "mixed_bad", "0bad": "x" }, samples: [[NOW - 5000, 1], [NOW - 4000, 2], [NOW - 3000, 3]] },
      { labels: { __name__: "mixed_old", a: "2" }, samples: [[NOW - 30 * 86_400_000, 1]] },
    ];
    expect((await pushV1(mixed, { tenant })).status).toBe(400);
    // Everything refused by validation: no batch at all, the counts go to shard 0 on their own.
    expect((await pushV1([{ labels: { job: "no-name" }, samples: [[NOW - 5000, 1], [NOW - 4000, 2]] }], { tenant })).status).toBe(400);
    // Refused by the shards: one sample older than its series' newest, one new value for an existing timestamp.
    const ooo: TestSeries[] = [
      { labels: { __name__: "fresh_metric", idx: "0" }, samples: [[NOW - 60_000 - 500, 7]] },
      { labels: { __name__: "fresh_metric", idx: "1" }, samples: [[NOW - 60_000 + 2000, 99]] },
    ];
    expect((await pushV1(ooo, { tenant })).status).toBe(400);

    const f = await scrapeWithTenant(tenant);
    const user = { user: tenant };
    expect(value(f, "cortex_distributor_received_samples_total", user)).toBe(34);
    expect(value(f, "cortex_distributor_samples_in_total", user)).toBe(40);
    expect(value(f, "cortex_ingester_ingested_samples_total", user)).toBe(32);
    expect(value(f, "cortex_ingester_ingested_samples_failures_total", user)).toBe(2);
    const discarded = (reason: string) => value(f, "cortex_discarded_samples_total", { user: tenant, reason });
    expect(discarded("label_name_invalid")).toBe(3);
    expect(discarded("sample_too_old")).toBe(1);
    expect(discarded("missing_metric_name")).toBe(2);
    expect(discarded("sample_out_of_order")).toBe(1);
    expect(discarded("new_value_for_timestamp")).toBe(1);
    expect(value(f, "cortex_discarded_samples_total", user)).toBe(8);
    expect(value(f, "cortex_ingester_memory_series", user)).toBe(11);
    expect(value(f, "cortex_ingester_memory_series_created_total", user)).toBe(11);
    expect(f.get("cortex_ingester_memory_series")!.samples.filter((s) => s.labels.user === tenant).map((s) => s.labels.shard).sort()).toEqual(["0", "1", "2", "3"]);
    expect(value(f, "cortex_ingester_wal_records", user)).toBeGreaterThanOrEqual(3);
    expect(value(f, "cortex_ingester_wal_bytes", user)).toBeGreaterThan(0);
  });

  it("keeps every counter across the eviction of every shard, and counts on from there", async () => {
    const before = await scrapeWithTenant(tenant);
    for (let s = 0; s < DEFAULT_LIMITS.shards; s++) await evictDurableObject(shardStub(env, tenant, s));
    const after = await scrapeWithTenant(tenant);
    for (const name of [
      "cortex_distributor_received_samples_total",
      "cortex_distributor_samples_in_total",
      "cortex_discarded_samples_total",
      "cortex_ingester_ingested_samples_total",
      "cortex_ingester_memory_series_created_total",
      "cortex_ingester_pushes_total",
    ]) {
      const mine = (fam: Map<string, ParsedFamily>) => fam.get(name)!.samples.filter((s) => s.labels.user === tenant);
      expect(mine(after), name).toEqual(mine(before));
    }
    // Replayed from the WAL: the head is back too.
    expect(value(after, "cortex_ingester_memory_series", { user: tenant })).toBe(11);

    expect((await pushV1(series(10, "fresh", NOW - 50_000), { tenant })).status).toBe(204);
    const later = await scrape();
    expect(value(later, "cortex_distributor_received_samples_total", { user: tenant })).toBe(34 + 30);
    expect(value(later, "cortex_discarded_samples_total", { user: tenant })).toBe(8);
  });

  it("adds the ingestion rate limiter's refusals as reason rate_limited", async () => {
    const t = "obs-limited";
    const put = await SELF.fetch("http://x/api/v1/runtime_config", { method: "PUT", body: JSON.stringify({ overrides: { [t]: { ingestionRate: 1, ingestionBurstSize: 10 } } }) });
    expect(put.status, await put.text()).toBe(200);
    try {
      // 6 samples fit the burst; 30 never can (429).
      expect((await pushV1(series(2, "limited", NOW - 30_000), { tenant: t })).status).toBe(204);
      expect((await pushV1(series(10, "limited", NOW - 20_000), { tenant: t })).status).toBe(429);
      const f = await scrapeWithTenant(t);
      expect(value(f, "cortex_discarded_samples_total", { user: t, reason: "rate_limited" })).toBe(30);
      expect(value(f, "cortex_distributor_received_samples_total", { user: t })).toBe(6);
      expect(value(f, "cortex_distributor_samples_in_total", { user: t })).toBe(36);
      expect(value(f, "edge_ingester_rate_limit_refusals_total", { user: t })).toBe(1);
    } finally {
      expect((await SELF.fetch("http://x/api/v1/runtime_config", { method: "PUT", body: "{}" })).status).toBe(200);
    }
  });

  it("counts requests by route and status code in this isolate", async () => {
    const before = await scrape();
    const labels = (status: string) => ({ method: "POST", route: "api_v1_push", status_code: status });
    for (let i = 0; i < 3; i++) expect((await pushV1(series(2, "req", NOW - 40_000 + i * 10_000), { tenant: "obs-requests" })).status).toBe(204);
    expect((await pushV1([{ labels: { job: "x" }, samples: [[NOW, 1]] }], { tenant: "obs-requests" })).status).toBe(400);
    expect((await SELF.fetch("http://x/no/such/route")).status).toBe(404);
    const after = await scrape();
    const delta = (name: string, l: Record<string, string>) => value(after, name, l) - value(before, name, l);
    expect(delta("cortex_request_duration_seconds_count", labels("204"))).toBe(3);
    expect(delta("cortex_request_duration_seconds_count", labels("400"))).toBe(1);
    expect(delta("cortex_request_duration_seconds_bucket", { ...labels("204"), le: "+Inf" })).toBe(3);
    expect(delta("cortex_request_duration_seconds_count", { route: "other", status_code: "404" })).toBe(1);
    // One isolate label across the scrapes, on every Worker-side series.
    const isolates = new Set(after.get("cortex_request_duration_seconds")!.samples.map((s) => s.labels.isolate));
    expect(isolates.size).toBe(1);
    expect([...isolates][0]).toMatch(/^[0-9a-f]{8}$/);
  });

  it("counts flushes, blocks and R2 calls in the shards, and a failed flush with its error", async () => {
    const t = "obs-flush";
    expect((await pushV1(series(20, "flushme", NOW - 30_000), { tenant: t })).status).toBe(204);
    const flush = await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": t } });
    expect(flush.status).toBe(204);
    const blocks = await listBlocks(env.BLOCKS, t, -Infinity, Infinity);
    expect(blocks.length).toBeGreaterThan(0);
    let f = await scrapeWithTenant(t);
    expect(value(f, "cortex_ingester_flushed_blocks_total", { user: t })).toBe(blocks.length);
    expect(value(f, "cortex_ingester_chunks_flushed_total", { user: t, reason: "forced" })).toBe(20);
    expect(value(f, "cortex_ingester_flush_failures_total", { user: t })).toBe(0);
    expect(value(f, "cortex_r2_operations_total", { component: "ingester", op: "put" })).toBeGreaterThanOrEqual(blocks.length);
    expect(value(f, "cortex_r2_written_bytes_total", { component: "ingester" })).toBeGreaterThanOrEqual(blocks.reduce((n, b) => n + b.size, 0));

    // R2 refuses: the failure is counted, and the error kept for the status page.
    expect((await pushV1(series(20, "flushme", NOW - 20_000), { tenant: t })).status).toBe(204);
    for (let s = 0; s < DEFAULT_LIMITS.shards; s++) {
      await runInDurableObject(shardStub(env, t, s), (inst: unknown) => {
        const i = inst as { bucket: R2Bucket };
        const real = i.bucket;
        i.bucket = new Proxy(real, {
          get(target, prop) {
            if (prop === "put") return async () => { throw new Error("injected R2 outage"); };
            const v = Reflect.get(target, prop) as unknown;
            return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
      });
    }
    expect((await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": t } })).status).toBe(503);
    // /flush answers at the first shard's failure; the others fail on their own time.
    const shardsWithData = f.get("cortex_ingester_memory_series")!.samples.filter((s) => s.labels.user === t && s.value > 0).length;
    for (let i = 0; i < 100; i++) {
      f = await scrape();
      if (value(f, "cortex_ingester_flush_failures_total", { user: t }) >= shardsWithData) break;
    }
    expect(value(f, "cortex_ingester_flush_failures_total", { user: t })).toBe(shardsWithData);
    expect(value(f, "cortex_r2_operation_failures_total", { component: "ingester", op: "put" })).toBeGreaterThanOrEqual(shardsWithData);
    const page = await (await SELF.fetch("http://x/status")).text();
    expect(page).toContain("injected R2 outage");
    expect(page).toContain("flush failing");
  });
});

describe("per-tenant stats", () => {
  it("GET /api/v1/user_stats answers Cortex's UserStats for the request's tenant", async () => {
    const tenant = "obs-stats";
    expect((await pushV1(series(7, "stats", NOW - 10_000), { tenant })).status).toBe(204);
    const res = await SELF.fetch("http://x/api/v1/user_stats", { headers: { "X-Scope-OrgID": tenant } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, number>;
    expect(Object.keys(body).sort()).toEqual(["APIIngestionRate", "RuleIngestionRate", "ingestionRate", "numSeries"]);
    expect(body.numSeries).toBe(7);
    // 21 samples this minute: between 21/60 (a full minute back in the window) and 21/60 + the previous minute's.
    expect(body.ingestionRate).toBeGreaterThan(0);
    expect(body.APIIngestionRate).toBe(body.ingestionRate);
    expect(body.RuleIngestionRate).toBe(0);
  });

  it("GET /distributor/all_user_stats lists every tenant with series per shard, as JSON or an HTML table", async () => {
    const tenant = "obs-all-stats";
    expect((await pushV1(series(5, "allstats", NOW - 10_000), { tenant })).status).toBe(204);
    type Row = { userID: string; stats: { numSeries: number }; shards: { shard: number; numSeries: number }[] };
    let rows: Row[] = [];
    for (let i = 0; i < 100 && !rows.some((r) => r.userID === tenant); i++) {
      const res = await SELF.fetch("http://x/distributor/all_user_stats");
      expect(res.status).toBe(200);
      rows = (await res.json()) as Row[];
    }
    const mine = rows.find((r) => r.userID === tenant)!;
    expect(mine.stats.numSeries).toBe(5);
    expect(mine.shards.map((s) => s.shard)).toEqual([0, 1, 2, 3]);
    expect(mine.shards.reduce((n, s) => n + s.numSeries, 0)).toBe(5);
    // Sorted by series, most first, as Cortex sorts them.
    for (let i = 1; i < rows.length; i++) expect(rows[i - 1].stats.numSeries).toBeGreaterThanOrEqual(rows[i].stats.numSeries);

    const html = await SELF.fetch("http://x/distributor/all_user_stats", { headers: { Accept: "text/html,application/xhtml+xml" } });
    expect(html.headers.get("Content-Type")).toMatch(/^text\/html/);
    const text = await html.text();
    expect(text).toContain("<table>");
    expect(text).toContain(`<td>${tenant}</td>`);
  });
});

describe("GET /status", () => {
  it("renders tenants, a row per shard and the ingestion chart", async () => {
    const tenant = "obs-status";
    expect((await pushV1(series(4, "status", NOW - 10_000), { tenant })).status).toBe(204);
    let html = "";
    for (let i = 0; i < 100 && !html.includes(`data-tenant="${tenant}"`); i++) {
      const res = await SELF.fetch("http://x/status");
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("text/html; charset=utf-8");
      html = await res.text();
    }
    expect(html).toContain(`<tr class="tenant-row" data-tenant="${tenant}">`);
    for (let s = 0; s < 4; s++) expect(html).toContain(`<tr class="shard-row" data-tenant="${tenant}" data-shard="${s}">`);
    expect(html).toMatch(/<svg id="rate-chart"[^>]*>[\s\S]*<path class="series" d="M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){59}"/);
    // No external assets.
    expect(html).not.toMatch(/<(link|img)\b|src="http|href="http/);
  });
});

describe("GET /status after a flush", () => {
  it("shows each shard's memory, WAL, last and next flush and its metric and log blocks as the stats API and R2 report them", async () => {
    const tenant = "obs-status-flush";
    const headers = { "X-Scope-OrgID": tenant };
    const lokiPush = (line: string, t: number) =>
      SELF.fetch("http://x/loki/api/v1/push", { method: "POST", body: JSON.stringify({ streams: [{ stream: { app: "st", n: line.slice(0, 1) }, values: [[ns(t), line]] }] }), headers: { ...headers, "Content-Type": "application/json" } });
    expect((await pushV1(series(12, "stflush", NOW - 60_000), { tenant })).status).toBe(204);
    for (const line of ["alpha", "bravo", "charlie", "delta"]) expect((await lokiPush(line, NOW - 60_000)).status).toBe(204);
    expect((await SELF.fetch("http://x/flush", { method: "POST", headers })).status).toBe(204);
    // After the flush: new data in the heads and WALs, beside the flushed blocks.
    expect((await pushV1(series(6, "stafter", NOW - 30_000), { tenant })).status).toBe(204);
    expect((await lokiPush("echo", NOW - 30_000)).status).toBe(204);

    type Stat = { shard: number; headBytes: number; walBytes: number; walRecords?: number; lastFlushAt: number | null; nextAlarmAt: number | null };
    const st = (await (await SELF.fetch("http://x/api/v1/status/ingesters", { headers })).json()) as { data: { shards: Stat[]; logShards: Stat[] } };
    type Block = { shard: number; size: number };
    const listed = async (kind: string) => ((await (await SELF.fetch(`http://x/api/v1/blocks?kind=${kind}`, { headers })).json()) as { data: { blocks: Block[] } }).data.blocks;
    const metricBlocks = await listed("metrics");
    const logBlocks = await listed("logs");
    expect(metricBlocks.length).toBeGreaterThan(0);
    expect(logBlocks.length).toBeGreaterThan(0);

    let html = "";
    for (let i = 0; i < 100 && !html.includes(`data-tenant="${tenant}"`); i++) html = await (await SELF.fetch("http://x/status")).text();
    let flushedShards = 0;
    for (let s = 0; s < DEFAULT_LIMITS.shards; s++) {
      const m = st.data.shards.find((x) => x.shard === s)!;
      const l = st.data.logShards.find((x) => x.shard === s)!;
      const row = new RegExp(`<tr class="shard-row" data-tenant="${tenant}" data-shard="${s}">([\\s\\S]*?)</tr>`).exec(html);
      expect(row, `shard ${s} row`).not.toBeNull();
      const cells = [...row![1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => c[1]);
      const tds = [...row![1].matchAll(/<td([^>]*)>/g)].map((c) => c[1]);
      // shard, series, chunks, streams, memory, WAL, checkpoint, rate, received, discarded, last flush, next flush, blocks, block bytes, state
      expect(cells[4], `shard ${s} memory`).toBe(bytes(m.headBytes + l.headBytes));
      expect(cells[5], `shard ${s} WAL`).toBe(`${bytes(m.walBytes + l.walBytes)} <span class="dim">(${m.walRecords} rec)</span>`);
      const last = Math.max(m.lastFlushAt ?? -Infinity, l.lastFlushAt ?? -Infinity);
      if (Number.isFinite(last)) {
        flushedShards++;
        expect(cells[10], `shard ${s} last flush`).toContain(`data-ms="${last}"`);
      } else expect(cells[10]).toContain("—");
      const next = [m.nextAlarmAt, l.nextAlarmAt].filter((v): v is number => v !== null);
      expect(next.length, `shard ${s} holds data: an alarm is set`).toBeGreaterThan(0);
      expect(cells[11], `shard ${s} next flush`).toContain(`data-ms="${Math.min(...next)}"`);
      const mine = (bs: Block[]) => bs.filter((b) => b.shard === s);
      const count = mine(metricBlocks).length + mine(logBlocks).length;
      const logs = mine(logBlocks).length;
      expect(tds[12], `shard ${s} blocks`).toContain(`data-blocks="${count}" data-log-blocks="${logs}"`);
      expect(cells[12]).toBe(logs > 0 ? `${count} <span class="dim">(${logs} log)</span>` : String(count));
      expect(cells[13], `shard ${s} block bytes`).toBe(bytes([...mine(metricBlocks), ...mine(logBlocks)].reduce((n, b) => n + b.size, 0)));
    }
    expect(flushedShards).toBeGreaterThan(0);
    // The tenant's row sums both kinds.
    const tenantRow = new RegExp(`<tr class="tenant-row" data-tenant="${tenant}">([\\s\\S]*?)</tr>`).exec(html)!;
    const tcells = [...tenantRow[1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => c[1]);
    expect(tcells[10]).toBe(`${metricBlocks.length + logBlocks.length} <span class="dim">(${logBlocks.length} log)</span>`);
    // The "blocks in R2" tile: every tenant's blocks of both kinds, as R2 lists them.
    let allMetric = 0;
    let allLog = 0;
    for (const t of await listTenants(env.BLOCKS)) {
      allMetric += (await listBlocks(env.BLOCKS, t, -Infinity, Infinity)).length;
      allLog += (await listBlocksUnder(env.BLOCKS, tenantLogBlocksPrefix(t), -Infinity, Infinity)).length;
    }
    expect(allLog).toBeGreaterThanOrEqual(logBlocks.length);
    expect(html).toContain(`<div class="sub" data-metric-blocks="${allMetric}" data-log-blocks="${allLog}">${allMetric} metric · ${allLog} log</div>`);
    expect(bytes(1536)).toBe("1.50 KiB");
  });
});

describe("GET /metrics: logs", () => {
  const tenant = "obs-logs";
  const A = '{app="obs", env="x"}';
  const Y = '{app="obs", env="y"}';

  function lokiPush(body: Uint8Array | string, contentType: string): Promise<Response> {
    return SELF.fetch("http://x/loki/api/v1/push", { method: "POST", body, headers: { "Content-Type": contentType, "X-Scope-OrgID": tenant } });
  }
  const pushProto = (streams: PushStream[]) => lokiPush(snappyCompress(encodePushRequest(streams)), "application/x-protobuf");
  const pushJson = (streams: JsonStream[]) => lokiPush(jsonPushBody(streams), "application/json");

  /** Scrapes until the tenant's log shards are listed (registration in R2 is not awaited by the push). */
  async function scrapeWithLogTenant(): Promise<Map<string, ParsedFamily>> {
    for (let i = 0; i < 100; i++) {
      const f = await scrape();
      if (f.get("loki_distributor_lines_received_total")?.samples.some((s) => s.labels.tenant === tenant)) return f;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`tenant ${tenant} never appeared in /metrics`);
  }

  const lokiFamilies = ["loki_distributor_lines_received_total", "loki_distributor_bytes_received_total", "loki_discarded_samples_total", "loki_discarded_bytes_total"];
  const mine = (f: Map<string, ParsedFamily>, name: string) => (f.get(name)?.samples ?? []).filter((s) => s.labels.tenant === tenant);

  it("counts lines and bytes received and discarded exactly, by reason, whichever side discarded them", async () => {
    // 3 lines, 11 bytes.
    let res = await pushProto([{ labels: A, entries: [{ ts: ns(NOW - 60_000), line: "one" }, { ts: ns(NOW - 50_000), line: "two" }, { ts: ns(NOW - 40_000), line: "three" }] }]);
    expect(res.status, await res.text()).toBe(204);
    // The distributor refuses a malformed stream (2 lines, 8 bytes), one entry too old (7) and one too new (6);
    // its counts ride with the one valid line (3 bytes) to its shard.
    res = await pushProto([
      { labels: Y, entries: [{ ts: ns(NOW - 30_000), line: "ok!" }] },
      { labels: '{app="obs"', entries: [{ ts: ns(NOW - 30_000), line: "bad1" }, { ts: ns(NOW - 20_000), line: "bad2" }] },
      { labels: A, entries: [{ ts: ns(NOW - 8 * 86_400_000), line: "ancient" }, { ts: ns(NOW + 3_600_000), line: "future" }] },
    ]);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("4 of 5 entries in this request were dropped");
    // The shard refuses an entry too far behind its stream's newest (JSON: "läte" is 5 UTF-8 bytes) and drops an
    // exact duplicate of the stream's last entry silently: both were received (2 lines, 10 bytes).
    res = await pushJson([{ stream: { app: "obs", env: "x" }, values: [[ns(NOW - 40_000 - 2 * 3_600_000), "läte"], [ns(NOW - 40_000), "three"]] }]);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("entry too far behind");
    // Everything refused by validation (a stream without labels; "日本" is 6 bytes): no batch, counted in log shard 0.
    res = await pushJson([{ stream: { app: "" }, values: [[ns(NOW - 10_000), "日本"]] }]);
    expect(res.status).toBe(400);

    const f = await scrapeWithLogTenant();
    const t = { tenant };
    expect(value(f, "loki_distributor_lines_received_total", t)).toBe(6);
    expect(value(f, "loki_distributor_bytes_received_total", t)).toBe(24);
    const lines = (reason: string) => value(f, "loki_discarded_samples_total", { tenant, reason });
    const bytes = (reason: string) => value(f, "loki_discarded_bytes_total", { tenant, reason });
    expect([lines("invalid_labels"), bytes("invalid_labels")]).toEqual([2, 8]);
    expect([lines("greater_than_max_sample_age"), bytes("greater_than_max_sample_age")]).toEqual([1, 7]);
    expect([lines("too_far_in_future"), bytes("too_far_in_future")]).toEqual([1, 6]);
    expect([lines("too_far_behind"), bytes("too_far_behind")]).toEqual([1, 5]);
    expect([lines("missing_labels"), bytes("missing_labels")]).toEqual([1, 6]);
    expect(value(f, "loki_discarded_samples_total", t)).toBe(6);
    expect(value(f, "loki_discarded_bytes_total", t)).toBe(32);
    // Streams in the heads, by shard: A and Y, wherever the ring put them.
    expect(value(f, "loki_ingester_memory_streams", t)).toBe(2);
    // The distributor's first refusal rode with its counts and is among the shards' recent
    // errors (the status page lists them; later ones within 10 s of it on a shard are not kept).
    const errors: string[] = [];
    for (let s = 0; s < DEFAULT_LIMITS.shards; s++) for (const e of (await logShardStub(env, tenant, s).stats()).observations.errors) errors.push(`${e.kind}: ${e.message}`);
    expect(errors.some((e) => e.startsWith(`rejected: Error parsing labels '{app="obs"' with error:`)), errors.join("\n")).toBe(true);
  });

  it("keeps every log counter across the eviction of every log shard, and counts on from there", async () => {
    const before = await scrapeWithLogTenant();
    for (let s = 0; s < DEFAULT_LIMITS.shards; s++) await evictDurableObject(logShardStub(env, tenant, s));
    const after = await scrapeWithLogTenant();
    for (const name of lokiFamilies) expect(mine(after, name), name).toEqual(mine(before, name));
    // Replayed from the WAL: the streams are back too.
    expect(value(after, "loki_ingester_memory_streams", { tenant })).toBe(2);

    expect((await pushProto([{ labels: Y, entries: [{ ts: ns(NOW - 5_000), line: "again" }] }])).status).toBe(204);
    const later = await scrape();
    expect(value(later, "loki_distributor_lines_received_total", { tenant })).toBe(7);
    expect(value(later, "loki_distributor_bytes_received_total", { tenant })).toBe(29);
    expect(value(later, "loki_discarded_samples_total", { tenant })).toBe(6);
  });

  it("shows the log streams of each shard on the status page", async () => {
    let html = "";
    for (let i = 0; i < 100 && !html.includes(`data-tenant="${tenant}"`); i++) html = await (await SELF.fetch("http://x/status")).text();
    // The shard table has a streams column (4th) when log shards answer: each row shows its shard's count.
    expect(html).toMatch(/<th[^>]*>streams<\/th>/);
    let total = 0;
    for (let s = 0; s < DEFAULT_LIMITS.shards; s++) {
      const row = new RegExp(`<tr class="shard-row" data-tenant="${tenant}" data-shard="${s}">([\\s\\S]*?)</tr>`).exec(html);
      expect(row, `shard ${s} row`).not.toBeNull();
      const cells = [...row![1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => m[1]);
      const streams = (await logShardStub(env, tenant, s).stats()).streams;
      expect(cells[3], `shard ${s} streams`).toBe(String(streams));
      total += streams;
    }
    expect(total).toBe(2);
  });

  it("counts log flushes, chunks flushed by reason and the log shards' R2 writes", async () => {
    const before = await scrape();
    const flush = await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
    expect(flush.status).toBe(204);
    const f = await scrape();
    // One open chunk per stream, cut by the flush.
    expect(value(f, "loki_ingester_chunks_flushed_total", { tenant, reason: "forced" })).toBe(2);
    expect(value(f, "loki_ingester_flushes_total", { tenant })).toBeGreaterThanOrEqual(1);
    expect(value(f, "loki_ingester_flush_failures_total", { tenant })).toBe(0);
    const put = (m: Map<string, ParsedFamily>) => value(m, "cortex_r2_operations_total", { component: "log-ingester", op: "put" });
    const blocks = (await (await SELF.fetch("http://x/api/v1/blocks?kind=logs", { headers: { "X-Scope-OrgID": tenant } })).json()) as { data: { blocks: { size: number }[] } };
    expect(blocks.data.blocks.length).toBeGreaterThanOrEqual(1);
    expect(put(f) - put(before)).toBe(blocks.data.blocks.length);
  });
});

describe("GET /metrics: refusals counted as discards", () => {
  /** Scrapes until `tenant` is listed under `family` (shards register in R2 at their first write, not awaited by the push). */
  async function scrapeListing(family: string, label: string, tenant: string): Promise<Map<string, ParsedFamily>> {
    for (let i = 0; i < 100; i++) {
      const f = await scrape();
      if (f.get(family)?.samples.some((s) => s.labels[label] === tenant)) return f;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`tenant ${tenant} never appeared in ${family}`);
  }

  it("counts refused native histogram samples as discarded samples and refused exemplars as discarded exemplars (Mimir's families)", async () => {
    const tenant = "obs-hist";
    const V2 = { "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0", "X-Scope-OrgID": tenant };
    /** A v2 request of one series (__name__="hist", job="x"): `floats` float samples, `histograms` native histograms, `exemplars` exemplars. */
    const request = (floats: number, histograms: number, exemplars: number): Uint8Array => {
      const w = new ProtoWriter();
      for (const sym of ["", "__name__", "hist", "job", "x"]) w.string(4, sym);
      w.message(5, () => {
        w.packedUint32(1, [1, 2, 3, 4]);
        for (let i = 0; i < floats; i++) w.message(2, () => { w.double(1, i); w.int64(2, NOW - 10_000 + i); });
        for (let i = 0; i < histograms; i++) w.message(3, () => w.int64(15, NOW - 10_000 + i));
        for (let i = 0; i < exemplars; i++) w.message(4, () => w.int64(3, NOW - 10_000 + i));
      });
      return snappyCompress(w.finish());
    };
    // One float sample stored beside 2 histograms and 3 exemplars; then 2 histograms alone (no batch at all: shard 0 counts them).
    let res = await post("/api/v1/write", request(1, 2, 3), V2);
    expect(res.status, await res.text()).toBe(400);
    res = await post("/api/v1/write", request(0, 2, 0), V2);
    expect(res.status, await res.text()).toBe(400);

    const f = await scrapeWithTenant(tenant);
    expect(value(f, "cortex_discarded_samples_total", { user: tenant, reason: "native_histograms_unsupported" })).toBe(4);
    expect(value(f, "cortex_discarded_samples_total", { user: tenant })).toBe(4);
    expect(value(f, "cortex_discarded_exemplars_total", { user: tenant, reason: "exemplars_unsupported" })).toBe(3);
    expect(f.get("cortex_discarded_exemplars_total")!.type).toBe("counter");
    expect(value(f, "cortex_distributor_received_samples_total", { user: tenant })).toBe(1);
    // Mimir's samples_in counts histogram samples, not exemplars.
    expect(value(f, "cortex_distributor_samples_in_total", { user: tenant })).toBe(1 + 4);
  });

  it("counts a push refused for too many HA clusters as too_many_ha_clusters", async () => {
    const tenant = "ha_custom"; // acceptHaSamples, labels prom_cluster/prom_replica, haMaxClusters 1
    const s = (cluster: string, n: number): TestSeries[] => [{ labels: { __name__: "up", prom_cluster: cluster, prom_replica: "r1" }, samples: Array.from({ length: n }, (_, i): [number, number] => [NOW - 20_000 + i * 1000, i]) }];
    expect((await pushV1(s("c1", 2), { tenant })).status).toBe(204);
    const refused = await pushV1(s("c2", 3), { tenant });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("too many HA clusters");
    const f = await scrapeWithTenant(tenant);
    expect(value(f, "cortex_discarded_samples_total", { user: tenant, reason: "too_many_ha_clusters" })).toBe(3);
    expect(value(f, "cortex_distributor_received_samples_total", { user: tenant })).toBe(2);
    expect(value(f, "cortex_distributor_samples_in_total", { user: tenant })).toBe(2 + 3);
  });

  it("counts the validation discards of a push the rate limiter refuses, then the rest as rate_limited (metrics and logs)", async () => {
    const t = "obs-limited-mixed";
    const logs = "obs-limited-logs";
    const put = await SELF.fetch("http://x/api/v1/runtime_config", {
      method: "PUT",
      body: JSON.stringify({ overrides: { [t]: { ingestionRate: 1, ingestionBurstSize: 10 }, [logs]: { logIngestionRateBytes: 1, logIngestionBurstBytes: 64 } } }),
    });
    expect(put.status, await put.text()).toBe(200);
    try {
      // 6 samples fit the burst. Then 30 valid samples (never fit: 429) with 3 refused for a label name and 1 too old.
      expect((await pushV1(series(2, "limited", NOW - 30_000), { tenant: t })).status).toBe(204);
      const mixed: TestSeries[] = [
        ...series(10, "limited", NOW - 20_000),
        { labels: { __name__: "limited_bad", "0bad": "x" }, samples: [[NOW - 5000, 1], [NOW - 4000, 2], [NOW - 3000, 3]] },
        { labels: { __name__: "limited_old", a: "2" }, samples: [[NOW - 30 * 86_400_000, 1]] },
      ];
      expect((await pushV1(mixed, { tenant: t })).status).toBe(429);
      const f = await scrapeWithTenant(t);
      const discarded = (reason: string) => value(f, "cortex_discarded_samples_total", { user: t, reason });
      expect([discarded("label_name_invalid"), discarded("sample_too_old"), discarded("rate_limited")]).toEqual([3, 1, 30]);
      expect(value(f, "cortex_distributor_received_samples_total", { user: t })).toBe(6);
      expect(value(f, "cortex_distributor_samples_in_total", { user: t })).toBe(6 + 3 + 1 + 30);

      // Logs: a 2-byte line fits; then a 100-byte line (never fits the 64-byte burst) beside a stream without labels ("日本": 6 bytes).
      const lokiPush = (streams: { stream: Record<string, string>; values: [string, string][] }[]) =>
        SELF.fetch("http://x/loki/api/v1/push", { method: "POST", body: JSON.stringify({ streams }), headers: { "Content-Type": "application/json", "X-Scope-OrgID": logs } });
      let res = await lokiPush([{ stream: { app: "lim" }, values: [[ns(NOW - 20_000), "hi"]] }]);
      expect(res.status, await res.text()).toBe(204);
      res = await lokiPush([
        { stream: { app: "lim" }, values: [[ns(NOW - 10_000), "x".repeat(100)]] },
        { stream: { app: "" }, values: [[ns(NOW - 10_000), "日本"]] },
      ]);
      expect(res.status, await res.text()).toBe(429);
      const g = await scrapeListing("loki_distributor_lines_received_total", "tenant", logs);
      expect(value(g, "loki_discarded_samples_total", { tenant: logs, reason: "missing_labels" })).toBe(1);
      expect(value(g, "loki_discarded_bytes_total", { tenant: logs, reason: "missing_labels" })).toBe(6);
      expect(value(g, "loki_discarded_samples_total", { tenant: logs, reason: "rate_limited" })).toBe(1);
      expect(value(g, "loki_distributor_lines_received_total", { tenant: logs })).toBe(1);
    } finally {
      expect((await SELF.fetch("http://x/api/v1/runtime_config", { method: "PUT", body: "{}" })).status).toBe(200);
    }
  });
});
