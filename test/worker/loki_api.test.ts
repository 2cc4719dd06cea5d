// The Loki HTTP API through the Worker (SELF.fetch), as Grafana, logcli and Loki's own
// clients call it: Loki's parameter errors as plain-text 400s, the JSON shapes of
// streams / matrix / vector / scalar results, labels, label values, series and index
// stats over data pushed through the real push route, and live tail's refusals.

import { env, SELF } from "cloudflare:test";
import { logShardStub } from "../../src/distributor/shards";
import { logChunkFacts, logIndexStats } from "../../src/querier/logs/select";
import { listLogBlocks } from "../../src/storage/logs/blocks";
import { memorySource, openBlock } from "../../src/storage/block/reader";
import { chunkRecordSize } from "../../src/storage/block/format";
import { MatchType } from "../../src/proto/types";
import { beforeAll, describe, expect, it } from "vitest";

const TENANT = "loki-api";
const NOW_MS = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
const ns = (ms: number, extraNs = 0): string => (BigInt(ms) * 1_000_000n + BigInt(extraNs)).toString();
const utf8 = (s: string): number => new TextEncoder().encode(s).length;

interface Stream {
  stream: Record<string, string>;
  values: [string, string][];
}

async function get(path: string, params: Record<string, string | string[]> = {}, tenant = TENANT, headers: Record<string, string> = {}): Promise<Response> {
  const url = new URL(`http://ingester${path}`);
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) url.searchParams.append(k, x);
  return SELF.fetch(url.toString(), { headers: { "X-Scope-OrgID": tenant, ...headers } });
}

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text}`);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  return JSON.parse(text) as T;
}

async function expect400(res: Promise<Response>, message: string | RegExp): Promise<void> {
  const r = await res;
  const text = await r.text();
  expect(r.status, text).toBe(400);
  expect(r.headers.get("Content-Type")).toMatch(/^text\/plain/);
  if (typeof message === "string") expect(text.trim()).toBe(message);
  else expect(text.trim()).toMatch(message);
}

// Two apps, three streams; entries one second apart, with a nanosecond part to prove it survives.
const PUSHED: { stream: Record<string, string>; values: [string, string][] }[] = [
  {
    stream: { app: "api", env: "prod", level: "info" },
    values: Array.from({ length: 6 }, (_, i) => [ns(NOW_MS + i * 1000, 123), `level=info msg="GET /users" status=200 i=${i}`] as [string, string]),
  },
  {
    stream: { app: "api", env: "prod", level: "error" },
    values: Array.from({ length: 3 }, (_, i) => [ns(NOW_MS + i * 2000 + 500), `{"level":"error","msg":"boom","code":${500 + i}}`] as [string, string]),
  },
  {
    stream: { app: "web", env: "dev", level: "info" },
    values: Array.from({ length: 4 }, (_, i) => [ns(NOW_MS + i * 1000 + 250), `page view ${i}`] as [string, string]),
  },
];

const START = ns(NOW_MS - 60_000);
const END = ns(NOW_MS + 60_000);

describe("Loki HTTP API", () => {
  beforeAll(async () => {
    const res = await SELF.fetch("http://ingester/loki/api/v1/push", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Scope-OrgID": TENANT },
      body: JSON.stringify({ streams: PUSHED }),
    });
    expect(res.status, await res.text()).toBe(204);
  });

  describe("parameter errors: Loki's plain-text 400s", () => {
    it.each([
      [{ query: '{app="api"}', start: "yesterday" }, `could not parse 'start' parameter: strconv.ParseInt: parsing "yesterday": invalid syntax`],
      [{ query: '{app="api"}', end: "1.2.3" }, `could not parse 'end' parameter: strconv.ParseFloat: parsing "1.2.3": invalid syntax`],
      [{ query: '{app="api"}', start: END, end: START }, "end timestamp must not be before or equal to start time"],
      [{ query: '{app="api"}', step: "fast" }, 'cannot parse "fast" to a valid duration'],
      [{ query: '{app="api"}', step: "0" }, "zero or negative query resolution step widths are not accepted. Try a positive integer"],
      [{ query: '{app="api"}', start: "0", end: "1700000000", step: "1s" }, "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"],
      [{ query: '{app="api"}', limit: "0" }, "limit must be a positive value"],
      [{ query: '{app="api"}', limit: "5001" }, "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)"],
      [{ query: '{app="api"}', direction: "up" }, "invalid direction 'up'"],
      [{ query: '{app="api"' }, /^parse error at line 1, col \d+: syntax error: /],
      [{ query: "" }, /^parse error .*unexpected \$end/],
      [{ query: 'count_over_time({app="api"}[5x])' }, /^parse error/],
    ])("query_range %j -> 400", async (params, message) => {
      await expect400(get("/loki/api/v1/query_range", params), message);
    });

    it("a metric query may ask for any limit (only log queries return entries)", async () => {
      const res = await get("/loki/api/v1/query_range", { query: 'count_over_time({app="api"}[1m])', limit: "100000", start: START, end: END, step: "60" });
      expect(res.status, await res.clone().text()).toBe(200);
    });

    it("instant queries: a bad time, and log selectors (Loki wants a range query for those)", async () => {
      await expect400(get("/loki/api/v1/query", { query: 'count_over_time({app="api"}[1m])', time: "soon" }), 'strconv.ParseInt: parsing "soon": invalid syntax');
      await expect400(get("/loki/api/v1/query", { query: '{app="api"}' }), "log queries are not supported as an instant query type, please change your query to a range query type");
    });

    it("tail: plain HTTP is refused; a WebSocket with a metric query or a bad delay_for too", async () => {
      await expect400(get("/loki/api/v1/tail", { query: '{app="api"}' }), "this endpoint requires a websocket");
      await expect400(get("/loki/api/v1/tail", { query: 'rate({app="api"}[1m])' }, TENANT, { Upgrade: "websocket" }), "tail is supported for log queries only, not metric queries");
      await expect400(get("/loki/api/v1/tail", { query: '{app="api"}', delay_for: "6" }, TENANT, { Upgrade: "websocket" }), "delay_for can't be greater than 5");
      await expect400(get("/loki/api/v1/tail", { query: '{app="api"' }, TENANT, { Upgrade: "websocket" }), /^parse error/);
    });

    it("series and labels: a selector that does not parse", async () => {
      await expect400(get("/loki/api/v1/series", { "match[]": "{app=" }), /^parse error/);
      await expect400(get("/loki/api/v1/labels", { query: "{app=" }), /^parse error/);
      await expect400(get("/loki/api/v1/label/%zz/values"), 'label name "%zz" in the path is not valid percent-encoding');
    });
  });

  describe("result shapes", () => {
    it("streams: every entry with its nanoseconds, backward by default, limit applied newest first", async () => {
      const body = await json<{ status: string; data: { resultType: string; result: Stream[]; stats: { summary: Record<string, number> } } }>(
        await get("/loki/api/v1/query_range", { query: '{app="api"}', start: START, end: END }),
      );
      expect(body.status).toBe("success");
      expect(body.data.resultType).toBe("streams");
      // The stats Grafana shows: what was read and what was returned.
      const api = PUSHED.slice(0, 2);
      expect(body.data.stats.summary.totalLinesProcessed).toBe(9);
      expect(body.data.stats.summary.totalBytesProcessed).toBe(api.reduce((n, p) => n + p.values.reduce((b, v) => b + new TextEncoder().encode(v[1]).length, 0), 0));
      expect(body.data.stats.summary.totalEntriesReturned).toBe(9);
      const byLabels = new Map(body.data.result.map((s) => [JSON.stringify(s.stream), s.values]));
      expect(byLabels.size).toBe(2);
      for (const p of PUSHED.slice(0, 2)) expect(byLabels.get(JSON.stringify(p.stream))).toEqual([...p.values].reverse());

      const limited = await json<{ data: { result: Stream[] } }>(await get("/loki/api/v1/query_range", { query: '{app="api"}', start: START, end: END, limit: "2" }));
      const entries = limited.data.result.flatMap((s) => s.values.map((v) => v[0])).sort();
      // The two newest across both streams.
      const all = PUSHED.slice(0, 2).flatMap((p) => p.values.map((v) => v[0])).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
      expect(entries).toEqual(all.slice(-2).sort());
    });

    it("streams forward, with a line filter", async () => {
      const body = await json<{ data: { result: Stream[] } }>(await get("/loki/api/v1/query_range", { query: '{app="web"} |= "view 2"', start: START, end: END, direction: "forward" }));
      expect(body.data.result).toEqual([{ stream: { app: "web", env: "dev", level: "info" }, values: [PUSHED[2].values[2]] }]);
    });

    it("matrix: count_over_time per stream at each step", async () => {
      const body = await json<{ data: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] } }>(
        await get("/loki/api/v1/query_range", { query: 'sum by (app) (count_over_time({env=~".+"}[1m]))', start: ns(NOW_MS + 60_000), end: ns(NOW_MS + 60_000), step: "60" }),
      );
      expect(body.data.resultType).toBe("matrix");
      const got = Object.fromEntries(body.data.result.map((s) => [s.metric.app, s.values]));
      expect(got).toEqual({ api: [[(NOW_MS + 60_000) / 1000, "9"]], web: [[(NOW_MS + 60_000) / 1000, "4"]] });
    });

    it("vector: an instant metric query", async () => {
      const t = (NOW_MS + 60_000) / 1000;
      const body = await json<{ data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } }>(
        await get("/loki/api/v1/query", { query: 'sum(count_over_time({app="api", level="error"}[5m]))', time: String(t) }),
      );
      expect(body.data.resultType).toBe("vector");
      expect(body.data.result).toEqual([{ metric: {}, value: [t, "3"] }]);
    });

    it("Grafana's data source check: vector(1)+vector(1) as an instant query", async () => {
      const body = await json<{ data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } }>(
        await get("/loki/api/v1/query", { query: "vector(1)+vector(1)", time: "1700000000" }),
      );
      expect(body.data.resultType).toBe("vector");
      expect(body.data.result).toEqual([{ metric: {}, value: [1700000000, "2"] }]);
    });

    it("POST with a form body, as Grafana sends long queries", async () => {
      const form = new URLSearchParams({ query: '{app="web"} |= "view 3"', start: START, end: END });
      const res = await SELF.fetch("http://ingester/loki/api/v1/query_range", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Scope-OrgID": TENANT },
        body: form.toString(),
      });
      const body = await json<{ data: { result: Stream[] } }>(res);
      expect(body.data.result).toEqual([{ stream: { app: "web", env: "dev", level: "info" }, values: [PUSHED[2].values[3]] }]);
    });

    it("structured metadata: in the stream labels by default, a third element with categorize-labels (and Loki's encodingFlags)", async () => {
      // Its own tenant: the label tests below count this tenant's streams.
      const META_TENANT = "loki-api-meta";
      const t = NOW_MS + 30_000;
      const push = await SELF.fetch("http://ingester/loki/api/v1/push", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Scope-OrgID": META_TENANT },
        body: JSON.stringify({ streams: [{ stream: { app: "meta" }, values: [[ns(t), "with metadata", { trace_id: "abc" }], [ns(t + 1), "without"]] }] }),
      });
      expect(push.status, await push.text()).toBe(204);
      const params = { query: '{app="meta"}', start: START, end: END, direction: "forward" };
      const plain = await json<{ data: { result: Stream[]; encodingFlags?: string[] } }>(await get("/loki/api/v1/query_range", params, META_TENANT));
      expect(plain.data.encodingFlags).toBeUndefined();
      expect(plain.data.result.map((s) => JSON.stringify([s.stream, s.values])).sort()).toEqual(
        [
          [{ app: "meta" }, [[ns(t + 1), "without"]]],
          [{ app: "meta", trace_id: "abc" }, [[ns(t), "with metadata"]]],
        ]
          .map((x) => JSON.stringify(x))
          .sort(),
      );
      const categorized = await json<{ data: { result: unknown[]; encodingFlags?: string[] } }>(
        await get("/loki/api/v1/query_range", params, META_TENANT, { "X-Loki-Response-Encoding-Flags": "categorize-labels" }),
      );
      expect(categorized.data.encodingFlags).toEqual(["categorize-labels"]);
      expect(categorized.data.result).toEqual([{ stream: { app: "meta" }, values: [[ns(t), "with metadata", { structuredMetadata: { trace_id: "abc" } }], [ns(t + 1), "without"]] }]);
    });

    it("scalar: a literal", async () => {
      const body = await json<{ data: { resultType: string; result: [number, string] } }>(await get("/loki/api/v1/query", { query: "1 + 2", time: "1700000000" }));
      expect(body.data).toMatchObject({ resultType: "scalar", result: [1700000000, "3"] });
    });
  });

  describe("labels, values, series, index stats", () => {
    it("label names and values, with and without a selector", async () => {
      const range = { start: START, end: END };
      expect(await json(await get("/loki/api/v1/labels", range))).toEqual({ status: "success", data: ["app", "env", "level"] });
      expect(await json(await get("/loki/api/v1/label", range))).toEqual({ status: "success", data: ["app", "env", "level"] });
      expect(await json(await get("/loki/api/v1/label/app/values", range))).toEqual({ status: "success", data: ["api", "web"] });
      expect(await json(await get("/loki/api/v1/label/level/values", { ...range, query: '{app="web"}' }))).toEqual({ status: "success", data: ["info"] });
      expect(await json(await get("/loki/api/v1/label/nope/values", range))).toEqual({ status: "success", data: [] });
    });

    it("series: match[] (GET, and POST as a form), a lone {} means every stream", async () => {
      const range = { start: START, end: END };
      const sorted = (x: { data: Record<string, string>[] }) => x.data.map((s) => JSON.stringify(s)).sort();
      const api = await json<{ status: string; data: Record<string, string>[] }>(await get("/loki/api/v1/series", { ...range, "match[]": '{app="api"}' }));
      expect(sorted(api)).toEqual(PUSHED.slice(0, 2).map((p) => JSON.stringify(p.stream)).sort());
      const all = await json<{ data: Record<string, string>[] }>(await get("/loki/api/v1/series", { ...range, "match[]": "{}" }));
      expect(sorted(all)).toEqual(PUSHED.map((p) => JSON.stringify(p.stream)).sort());
      const form = new URLSearchParams({ ...range });
      form.append("match[]", '{app="web"}');
      form.append("match[]", '{level="error"}');
      const posted = await json<{ data: Record<string, string>[] }>(
        await SELF.fetch("http://ingester/loki/api/v1/series", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Scope-OrgID": TENANT }, body: form.toString() }),
      );
      expect(sorted(posted)).toEqual([PUSHED[1], PUSHED[2]].map((p) => JSON.stringify(p.stream)).sort());
    });

    it("index stats: streams, entries and uncompressed bytes of a selector", async () => {
      const stats = await json<{ streams: number; chunks: number; entries: number; bytes: number }>(await get("/loki/api/v1/index/stats", { query: '{app="api"}', start: START, end: END }));
      const api = PUSHED.slice(0, 2);
      // Loki's bytes are the chunks' UNCOMPRESSED size: here the lines' UTF-8 bytes (no metadata).
      expect(stats).toEqual({ streams: 2, chunks: 2, entries: 9, bytes: api.reduce((n, p) => n + p.values.reduce((b, v) => b + utf8(v[1]), 0), 0) });
      await expect400(get("/loki/api/v1/index/stats", { start: START, end: END }), 'query parameter is required: a stream selector such as {app="x"}');
    });

    it("index stats of part of a chunk: entries and bytes scaled by the share of its span (Loki's GetFactorOfTime)", async () => {
      // {level="info"} of api: 6 entries at NOW_MS + i s + 123 ns, one chunk spanning 5 s.
      const info = PUSHED[0];
      const from = BigInt(NOW_MS + 2500) * 1_000_000n;
      const min = BigInt(info.values[0][0]);
      const max = BigInt(info.values[5][0]);
      const factor = Number(max - from) / Number(max - min);
      const bytes = info.values.reduce((b, v) => b + utf8(v[1]), 0);
      const stats = await json(await get("/loki/api/v1/index/stats", { query: '{app="api", level="info"}', start: from.toString(), end: END }));
      expect(stats).toEqual({ streams: 1, chunks: 1, entries: Math.floor(6 * factor), bytes: Math.floor(bytes * factor) });
      expect(Math.floor(6 * factor)).toBe(3);
    });

    it("index stats count structured metadata names and values, from the heads and, after a flush, from R2 blocks", async () => {
      const tenant = "loki-api-stats";
      const t = NOW_MS + 20_000;
      const values: [string, string, Record<string, string>?][] = [
        [ns(t), "GET /naïve 200", { trace_id: "abc123", span: "ünï" }],
        [ns(t + 1), "plain line"],
        [ns(t + 2), "another", { trace_id: "def" }],
      ];
      const push = await SELF.fetch("http://ingester/loki/api/v1/push", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant },
        body: JSON.stringify({ streams: [{ stream: { app: "stats" }, values }] }),
      });
      expect(push.status, await push.text()).toBe(204);
      const want = values.reduce((n, [, line, meta]) => n + utf8(line) + Object.entries(meta ?? {}).reduce((m, [k, v]) => m + utf8(k) + utf8(v), 0), 0);
      const params = { query: '{app="stats"}', start: START, end: END };
      expect(await json(await get("/loki/api/v1/index/stats", params, tenant))).toEqual({ streams: 1, chunks: 1, entries: 3, bytes: want });
      const flushed = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
      expect(flushed.status).toBe(204);
      // From R2 the size comes from the block index (format version 2): no byte of a chunk
      // record is read. Every GET is recorded through a bucket that passes it on (an
      // isolate-wide counter would also see other test files' reads), before any query
      // through the Worker could put the chunk in the isolate's chunk cache.
      const [block] = await listLogBlocks(env.BLOCKS, tenant, -8.64e15, 0, 8.64e15, 0);
      const whole = new Uint8Array(await (await env.BLOCKS.get(block.key))!.arrayBuffer());
      const chunkRecords = (await openBlock(memorySource(whole))).select([], -Infinity, Infinity).flatMap((x) => x.chunks).map((c) => [c.offset, c.offset + chunkRecordSize(c.length)]);
      const ranges: [number, number][] = [];
      const bucket = new Proxy(env.BLOCKS, {
        get(target, prop) {
          if (prop === "get") {
            return async (key: string, opts?: R2GetOptions) => {
              const r = opts?.range as { offset?: number; length?: number; suffix?: number } | undefined;
              const from = r?.suffix !== undefined ? whole.length - r.suffix : (r?.offset ?? 0);
              ranges.push([from, r?.length !== undefined ? from + r.length : whole.length]);
              return target.get(key, opts);
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const q = { matcherSets: [[{ type: MatchType.EQ, name: "app", value: "stats" }]], startMs: NOW_MS - 60_000, startNs: 0, endMs: NOW_MS + 60_000, endNs: 0 };
      expect(await logIndexStats({ ...env, BLOCKS: bucket }, tenant, q)).toEqual({ streams: 1, chunks: 1, entries: 3, bytes: want });
      // Volumes take the chunks' sizes the same way (logChunkFacts), also without a chunk read.
      expect((await logChunkFacts({ ...env, BLOCKS: bucket }, tenant, q)).map((f) => f.chunks.map((c) => c.bytes))).toEqual([[want]]);
      expect(chunkRecords.length).toBe(1);
      for (const [a, b] of ranges) for (const [c0, c1] of chunkRecords) expect(a < c1 && b > c0, `GET [${a}, ${b}) reads chunk record [${c0}, ${c1})`).toBe(false);
      expect(await json(await get("/loki/api/v1/index/stats", params, tenant))).toEqual({ streams: 1, chunks: 1, entries: 3, bytes: want });
      const volume = await json<{ data: { result: { value: [number, string] }[] } }>(await get("/loki/api/v1/index/volume", params, tenant));
      expect(volume.data.result.map((r) => Number(r.value[1]))).toEqual([want]);
      // volume_range: the three entries fall in one 60 s bucket, which holds all the bytes.
      const ranged = await json<{ data: { result: { value: [number, string] }[] } }>(await get("/loki/api/v1/index/volume_range", { ...params, step: "60s" }, tenant));
      expect(ranged.data.result.map((r) => Number(r.value[1]))).toEqual([want]);
    });

    it("labels, label values and index stats answer POST forms too, as Loki registers them", async () => {
      const post = (path: string, form: Record<string, string>) =>
        SELF.fetch(`http://ingester${path}`, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Scope-OrgID": TENANT }, body: new URLSearchParams(form).toString() });
      const range = { start: START, end: END };
      expect(await json(await post("/loki/api/v1/labels", range))).toEqual({ status: "success", data: ["app", "env", "level"] });
      expect(await json(await post("/loki/api/v1/label", range))).toEqual({ status: "success", data: ["app", "env", "level"] });
      expect(await json(await post("/loki/api/v1/label/level/values", { ...range, query: '{app="api"}' }))).toEqual({ status: "success", data: ["error", "info"] });
      expect(await json(await post("/loki/api/v1/index/stats", { ...range, query: '{app="web"}' }))).toEqual({
        streams: 1,
        chunks: 1,
        entries: 4,
        bytes: PUSHED[2].values.reduce((b, v) => b + utf8(v[1]), 0),
      });
    });

    it("build info: Loki's versionHandler shape", async () => {
      const res = await get("/loki/api/v1/status/buildinfo");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        version: "3.0.0",
        revision: "edge-ingester",
        branch: "main",
        buildUser: "edge-ingester",
        buildDate: "",
        goVersion: "none (TypeScript on Cloudflare Workers)",
      });
    });

    it("another tenant sees nothing", async () => {
      expect(await json(await get("/loki/api/v1/labels", { start: START, end: END }, "loki-api-other"))).toEqual({ status: "success", data: [] });
    });
  });

  describe("volumes (/index/volume, /index/volume_range)", () => {
    const VT = "loki-api-volume";
    // Minute-aligned, so 5 s buckets start at t0. Three streams of one chunk each:
    // x within the first 5 s, y within the second, z across both.
    const t0 = NOW_MS + 120_000;
    const line = (k: string, i: number) => `${k} line ${i} ${"x".repeat(i * 7)}`;
    const VSTREAMS = [
      { stream: { app: "v", s: "x", env: "prod" }, values: [0, 1000, 2000].map((o, i) => [ns(t0 + o), line("x", i)]) as [string, string][] },
      { stream: { app: "v", s: "y", env: "dev" }, values: [6000, 8000].map((o, i) => [ns(t0 + o), line("y", i)]) as [string, string][] },
      { stream: { app: "v", s: "z", env: "prod" }, values: [1000, 7000].map((o, i) => [ns(t0 + o), line("z", i + 5)]) as [string, string][] },
    ];
    const bytesOf = (i: number) => VSTREAMS[i].values.reduce((b, v) => b + utf8(v[1]), 0);
    type Vec = { status: string; data: { resultType: string; result: { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[] } };
    const vol = async (path: string, params: Record<string, string>) => json<Vec>(await get(`/loki/api/v1/index/${path}`, { start: ns(t0 - 60_000), end: ns(t0 + 60_000), ...params }, VT));
    /** Expected vector entries, ordered as Loki's toPrometheusData: by volume descending, then name. */
    const vector = (ts: number, entries: [Record<string, string>, number][]) =>
      entries
        .map(([metric, v]) => ({ metric, v, name: `{${Object.keys(metric).sort().map((k) => `${k}="${metric[k]}"`).join(", ")}}` }))
        .sort((a, b) => b.v - a.v || (a.name < b.name ? -1 : 1))
        .map(({ metric, v }) => ({ metric, value: [ts, String(v)] }));

    beforeAll(async () => {
      const res = await SELF.fetch("http://ingester/loki/api/v1/push", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Scope-OrgID": VT },
        body: JSON.stringify({ streams: VSTREAMS }),
      });
      expect(res.status, await res.text()).toBe(204);
    });

    it("instant: per label set of the selector's labels, then of targetLabels, per label name, limited", async () => {
      const ts = (t0 + 60_000) / 1000;
      const [x, y, z] = [0, 1, 2].map(bytesOf);
      // Aggregated into the selector's label names ({env}).
      expect((await vol("volume", { query: '{env=~".+"}' })).data).toEqual({ resultType: "vector", result: vector(ts, [[{ env: "prod" }, x + z], [{ env: "dev" }, y]]), stats: expect.any(Object) });
      // targetLabels: into {s}.
      expect((await vol("volume", { query: '{app="v"}', targetLabels: "s" })).data.result).toEqual(vector(ts, [[{ s: "x" }, x], [{ s: "y" }, y], [{ s: "z" }, z]]));
      // {} keeps every label.
      expect((await vol("volume", { query: "{}" })).data.result).toEqual(vector(ts, VSTREAMS.map((st, i) => [st.stream, bytesOf(i)])));
      // aggregateBy=labels: a volume per label name, {name: ""}.
      expect((await vol("volume", { query: '{app="v"}', aggregateBy: "labels" })).data.result).toEqual(vector(ts, [[{ app: "" }, x + y + z], [{ env: "" }, x + y + z], [{ s: "" }, x + y + z]]));
      // limit: the top entries only (ties by name).
      expect((await vol("volume", { query: '{app="v"}', targetLabels: "s", limit: "1" })).data.result).toEqual(vector(ts, [[{ s: "x" }, x], [{ s: "y" }, y], [{ s: "z" }, z]]).slice(0, 1));
      // POST too.
      const posted = await SELF.fetch("http://ingester/loki/api/v1/index/volume", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Scope-OrgID": VT },
        body: new URLSearchParams({ query: '{env="dev"}', start: ns(t0 - 60_000), end: ns(t0 + 60_000) }).toString(),
      });
      expect((await json<Vec>(posted)).data.result).toEqual(vector(ts, [[{ env: "dev" }, y]]));
    });

    it("range: 5 s buckets stamped with their ends; a chunk counts by the share of its span each bucket covers (GetFactorOfTime)", async () => {
      const [x, y, z] = [0, 1, 2].map(bytesOf);
      // Buckets [t0, t0+4.999 s] (sent as whole seconds: [t0, t0+4 s]) and [t0+5 s, t0+10 s].
      // z spans t0+1 s .. t0+7 s: 3 of its 6 s in the first bucket, 2 in the second.
      const body = await json<Vec>(await get("/loki/api/v1/index/volume_range", { query: '{app="v"}', targetLabels: "s", start: ns(t0), end: ns(t0 + 10_000), step: "5" }, VT));
      const b1 = (t0 + 4999) / 1000;
      const b2 = (t0 + 10_000) / 1000;
      const series: { metric: Record<string, string>; values: [number, string][] }[] = [
        { metric: { s: "x" }, values: [[b1, String(x)]] },
        { metric: { s: "y" }, values: [[b2, String(y)]] },
        { metric: { s: "z" }, values: [[b1, String(Math.floor(z * (3 / 6)))], [b2, String(Math.floor(z * (2 / 6)))]] },
      ];
      series.sort((a, b) => Number(b.values[0][1]) - Number(a.values[0][1]) || (a.metric.s < b.metric.s ? -1 : 1));
      expect(body.data.resultType).toBe("matrix");
      expect(body.data.result).toEqual(series);
    });

    it("the same volumes after a flush, from the R2 blocks' chunks", async () => {
      const queries: [string, Record<string, string>][] = [
        ["volume", { query: '{app="v"}', targetLabels: "s" }],
        ["volume", { query: "{}", aggregateBy: "labels" }],
        ["volume_range", { query: '{app="v"}', targetLabels: "s", start: ns(t0), end: ns(t0 + 10_000), step: "5" }],
      ];
      // The answers checked against computed values above, from the heads.
      const before = await Promise.all(queries.map(([path, params]) => vol(path, params)));
      const flushed = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": VT } });
      expect(flushed.status).toBe(204);
      const blocks = await json<{ data: { blocks: unknown[] } }>(await get("/api/v1/blocks", { kind: "logs" }, VT));
      expect(blocks.data.blocks.length).toBeGreaterThan(0);
      const after = await Promise.all(queries.map(([path, params]) => vol(path, params)));
      expect(after).toEqual(before);
    });

    it("parameter errors are Loki's 400s", async () => {
      const range = { start: ns(t0 - 60_000), end: ns(t0 + 60_000) };
      await expect400(get("/loki/api/v1/index/volume", { ...range, query: '{app="v"}', limit: "-1" }, VT), "limit must be a positive value");
      await expect400(get("/loki/api/v1/index/volume", { ...range, query: '{app="v"}', limit: "ten" }, VT), 'strconv.Atoi: parsing "ten": invalid syntax');
      await expect400(get("/loki/api/v1/index/volume", { ...range, query: '{app="v"}', aggregateBy: "pods" }, VT), "invalid aggregation option");
      await expect400(get("/loki/api/v1/index/volume", { ...range, query: '{app="v"} |= "x"' }, VT), "only label matchers are supported");
      await expect400(get("/loki/api/v1/index/volume", { ...range, query: '{app="v"' }, VT), /^parse error/);
      await expect400(get("/loki/api/v1/index/volume_range", { start: range.end, end: range.start, query: '{app="v"}' }, VT), "end timestamp must not be before or equal to start time");
      await expect400(get("/loki/api/v1/index/volume_range", { ...range, query: '{app="v"}', step: "0" }, VT), "zero or negative query resolution step widths are not accepted. Try a positive integer");
    });
  });

  describe("live tail (WebSocket)", () => {
    const TAIL_TENANT = "loki-tail";
    const pushTo = async (streams: { stream: Record<string, string>; values: [string, string][] }[]): Promise<void> => {
      const res = await SELF.fetch("http://ingester/loki/api/v1/push", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Scope-OrgID": TAIL_TENANT },
        body: JSON.stringify({ streams }),
      });
      expect(res.status, await res.text()).toBe(204);
    };

    /** Waits (not a timing assertion: a bound on event-loop turns) until n messages arrived. */
    async function received(messages: unknown[], n: number): Promise<unknown[]> {
      for (let i = 0; i < 500 && messages.length < n; i++) await new Promise((r) => setTimeout(r, 10));
      expect(messages.length).toBe(n);
      return messages;
    }

    async function tailers(): Promise<number> {
      let n = 0;
      for (let shard = 0; shard < 4; shard++) n += (await logShardStub(env, TAIL_TENANT, shard).stats()).tailers;
      return n;
    }

    it("sends history first (the newest `limit` entries, oldest first), then live entries through the pipeline; closing ends every shard socket", async () => {
      const t0 = NOW_MS;
      const stream = { app: "tail", env: "test" };
      const other = { app: "tail", env: "other" };
      await pushTo([
        { stream, values: [[ns(t0), "level=info msg=old1"], [ns(t0 + 1000), "level=debug msg=old2"], [ns(t0 + 2000), "level=info msg=old3"], [ns(t0 + 3000), "level=info msg=old4"]] },
      ]);
      const q = '{app="tail", env="test"} |= "info" | logfmt | line_format "{{.msg}}"';
      const url = `http://ingester/loki/api/v1/tail?query=${encodeURIComponent(q)}&start=${ns(t0 - 60_000)}&limit=2`;
      const res = await SELF.fetch(url, { headers: { Upgrade: "websocket", "X-Scope-OrgID": TAIL_TENANT } });
      expect(res.status).toBe(101);
      const ws = res.webSocket!;
      const messages: unknown[] = [];
      ws.addEventListener("message", (e) => messages.push(JSON.parse(e.data as string)));
      const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
      ws.accept();

      // History: of the matching entries since `start` (old1, old3, old4) the newest `limit`
      // (Loki's Querier.Tail queries backward with the limit), sent oldest first, through the pipeline.
      const labels = (msg: string) => ({ ...stream, level: "info", msg });
      expect(await received(messages, 1)).toEqual([
        {
          streams: [
            { stream: labels("old3"), values: [[ns(t0 + 2000), "old3"]] },
            { stream: labels("old4"), values: [[ns(t0 + 3000), "old4"]] },
          ],
          dropped_entries: null,
        },
      ]);
      expect(await tailers()).toBe(4);

      // Live: filtered by the line filter, parsed, reformatted; other streams never arrive.
      await pushTo([
        { stream, values: [[ns(t0 + 10_000), "level=debug msg=new1"], [ns(t0 + 11_000, 7), "level=info msg=new2"]] },
        { stream: other, values: [[ns(t0 + 12_000), "level=info msg=elsewhere"]] },
      ]);
      await pushTo([{ stream, values: [[ns(t0 + 13_000), "level=info msg=new3"]] }]);
      expect((await received(messages, 3)).slice(1)).toEqual([
        { streams: [{ stream: labels("new2"), values: [[ns(t0 + 11_000, 7), "new2"]] }], dropped_entries: null },
        { streams: [{ stream: labels("new3"), values: [[ns(t0 + 13_000), "new3"]] }], dropped_entries: null },
      ]);

      ws.close(1000, "done");
      await closed;
      for (let i = 0; i < 500 && (await tailers()) > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await tailers()).toBe(0);
    });
    it("history of one stream: its newest `limit` entries in ascending order", async () => {
      const t0 = NOW_MS + 200_000;
      const stream = { app: "tail-hist" };
      const values: [string, string][] = Array.from({ length: 6 }, (_, i) => [ns(t0 + i * 1000, i), `line ${i}`]);
      await pushTo([{ stream, values }]);
      const url = `http://ingester/loki/api/v1/tail?query=${encodeURIComponent('{app="tail-hist"}')}&start=${ns(t0 - 1000)}&limit=4`;
      const res = await SELF.fetch(url, { headers: { Upgrade: "websocket", "X-Scope-OrgID": TAIL_TENANT } });
      const ws = res.webSocket!;
      const messages: unknown[] = [];
      ws.addEventListener("message", (e) => messages.push(JSON.parse(e.data as string)));
      const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
      ws.accept();
      expect(await received(messages, 1)).toEqual([{ streams: [{ stream, values: values.slice(2) }], dropped_entries: null }]);
      ws.close(1000, "done");
      await closed;
    });

    it("a tail open across a reshard (4 -> 6 shards) also relays the streams placed on the new shards", async () => {
      const tenant = "loki-tail-reshard";
      const shardTailers = async (shards: number[]) => Promise.all(shards.map(async (s) => (await logShardStub(env, tenant, s).stats()).tailers));
      const url = `http://ingester/loki/api/v1/tail?query=${encodeURIComponent('{app="tail-rs"}')}&start=${ns(NOW_MS)}`;
      const res = await SELF.fetch(url, { headers: { Upgrade: "websocket", "X-Scope-OrgID": tenant } });
      const ws = res.webSocket!;
      const got: [string, string, string][] = [];
      ws.addEventListener("message", (e) => {
        for (const st of (JSON.parse(e.data as string) as { streams: Stream[] }).streams) for (const v of st.values) got.push([st.stream.i, v[0], v[1]]);
      });
      const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
      ws.accept();
      // The tail is open once each of the 4 shards holds its socket (a bound on turns, not a timing assertion).
      for (let i = 0; i < 500 && (await shardTailers([0, 1, 2, 3])).some((n) => n !== 1); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await shardTailers([0, 1, 2, 3, 4, 5])).toEqual([1, 1, 1, 1, 0, 0]);

      const put = await SELF.fetch(`http://ingester/api/v1/shards?tenant=${tenant}&shards=6`, { method: "PUT" });
      expect(put.status, await put.text()).toBe(200);

      // Pushes on the new ring (this isolate saw its own change). The relay looks at the
      // ring whenever a shard sends entries (and every 5 s): the first push's lines on
      // shards 0-3 make it open sockets on 4 and 5.
      const pushBatch = async (k: number) => {
        const t = NOW_MS + 300_000 + k * 1000;
        const streams = Array.from({ length: 30 }, (_, i) => ({ stream: { app: "tail-rs", i: String(i) }, values: [[ns(t + i), `push ${k} line ${i}`]] as [string, string][] }));
        const push = await SELF.fetch("http://ingester/loki/api/v1/push", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant },
          body: JSON.stringify({ streams }),
        });
        expect(push.status, await push.text()).toBe(204);
        return streams.map((st) => [st.stream.i, st.values[0][0], st.values[0][1]] as [string, string, string]);
      };
      await pushBatch(0);
      for (let i = 0; i < 500 && (await shardTailers([4, 5])).some((n) => n !== 1); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await shardTailers([0, 1, 2, 3, 4, 5])).toEqual([1, 1, 1, 1, 1, 1]);
      const onNew = await Promise.all([4, 5].map(async (s) => (await logShardStub(env, tenant, s).stats()).entriesAppended));
      expect(onNew[0]).toBeGreaterThan(0);
      expect(onNew[1]).toBeGreaterThan(0);

      // Every line of the next push arrives, from old shards and new.
      const before = got.length;
      const second = await pushBatch(1);
      for (let i = 0; i < 500 && got.length < before + 30; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.slice(before).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual(second);

      ws.close(1000, "done");
      await closed;
      for (let i = 0; i < 500 && (await shardTailers([0, 1, 2, 3, 4, 5])).some((n) => n !== 0); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await shardTailers([0, 1, 2, 3, 4, 5])).toEqual([0, 0, 0, 0, 0, 0]);
    });

    it("delay_for holds live entries and sends them in time order", async () => {
      const t0 = NOW_MS + 100_000;
      const stream = { app: "tail-delay" };
      await pushTo([{ stream, values: [[ns(t0), "history"]] }]);
      const url = `http://ingester/loki/api/v1/tail?query=${encodeURIComponent('{app="tail-delay"}')}&start=${ns(t0 - 1000)}&delay_for=5`;
      const res = await SELF.fetch(url, { headers: { Upgrade: "websocket", "X-Scope-OrgID": TAIL_TENANT } });
      const ws = res.webSocket!;
      const messages: unknown[] = [];
      ws.addEventListener("message", (e) => messages.push(JSON.parse(e.data as string)));
      ws.accept();
      await received(messages, 1);
      // Two pushes, the later entry first: within the 5 s delay they are sorted into one message.
      await pushTo([{ stream, values: [[ns(t0 + 2000), "second"]] }]);
      await pushTo([{ stream, values: [[ns(t0 + 1000), "first"]] }]);
      for (let i = 0; i < 1000 && messages.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(messages.slice(1)).toEqual([{ streams: [{ stream, values: [[ns(t0 + 1000), "first"], [ns(t0 + 2000), "second"]] }], dropped_entries: null }]);
      ws.close(1000, "done");
    });
  });
});
