// End to end with real Loki clients against `wrangler dev`:
//
//   1. winston-loki (its default wire format: snappy-compressed protobuf
//      logproto.PushRequest, batched, flushed on close) and pino-loki (JSON, batched,
//      flushed when the stream ends) push through a recording proxy, so the test
//      sees exactly what each client sent: the Content-Type, and every entry.
//   2. Every entry comes back through /loki/api/v1/query_range exactly: labels,
//      nanosecond timestamps, lines, and nothing else.
//   3. A table of LogQL queries over that data (line filters, logfmt and json parsing,
//      label filters, line_format, count_over_time, rate, sum by), each expectation
//      computed here from what was pushed.

import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import winston from "winston";
import LokiTransport from "winston-loki";
import pino from "pino";
import { pinoLoki } from "pino-loki";
import { mulberry32 } from "../support/prng";
import { buildWorkerBundle, startWrangler, type WranglerHandle } from "../support/wrangler";
import { entriesOf, labelString, lokiGet, msToNs, openTail, startRecordingProxy, type LokiMatrixSeries, type LokiStream, type LokiVectorSample, type RecordingProxy } from "../support/loki";

const require = createRequire(import.meta.url);
// The client's own generated decoder and the snappy it compresses with: used only to
// read back what went over the wire.
const { logproto } = require("winston-loki/src/proto") as { logproto: { PushRequest: { decode(b: Uint8Array): { streams: { labels: string; entries: { timestamp: { seconds: number | { toNumber(): number }; nanos: number }; line: string }[] }[] } } } };
const snappy = require("snappy") as { uncompressSync(b: Uint8Array): Buffer };

const TENANT = "e2e-logs";

interface Pushed {
  labels: Record<string, string>;
  tsMs: number;
  line: string;
}

const METHODS = ["GET", "POST", "DELETE"];
const PATHS = ["/api/users", "/api/orders", "/health"];
const STATUSES = [200, 200, 200, 201, 404, 500, 503];

describe("Loki clients (winston-loki, pino-loki) against wrangler dev", () => {
  let wrangler: WranglerHandle | undefined;
  let proxy: RecordingProxy | undefined;
  // A window well inside the accepted age, on a minute boundary, so windows are easy to reason about.
  const base = Math.floor((Date.now() - 20 * 60_000) / 60_000) * 60_000;
  const winstonPushed: Pushed[] = [];
  const pinoPushed: Pushed[] = [];

  beforeAll(async () => {
    const bundle = await buildWorkerBundle();
    wrangler = await startWrangler({ bundle });
    proxy = await startRecordingProxy(wrangler.url);
  });

  afterAll(async () => {
    await proxy?.close();
    await wrangler?.stop();
  });

  const url = (): string => {
    if (!wrangler) throw new Error("wrangler dev did not start");
    return wrangler.url;
  };

  it("winston-loki pushes snappy protobuf; every entry comes back exactly", async () => {
    const rnd = mulberry32(7);
    const transport = new LokiTransport({
      host: proxy!.url,
      json: false,
      batching: true,
      interval: 60, // nothing leaves before close(): one batch, flushed on close
      replaceTimestamp: false,
      gracefulShutdown: false,
      labels: { job: "winston-e2e" },
      headers: { "X-Scope-OrgID": TENANT },
      format: winston.format.printf((info) => String(info.logfmt)),
    });
    const logger = winston.createLogger({ level: "debug", transports: [transport] });
    for (let i = 0; i < 30; i++) {
      const method = METHODS[Math.floor(rnd() * METHODS.length)];
      const path = PATHS[Math.floor(rnd() * PATHS.length)];
      const status = STATUSES[Math.floor(rnd() * STATUSES.length)];
      const duration = 1 + Math.floor(rnd() * 400);
      const level = status >= 500 ? "error" : status >= 400 ? "warn" : "info";
      const line = `method=${method} path=${path} status=${status} duration=${duration}ms msg="request ${i}"`;
      const tsMs = base + i * 10_000;
      logger.log({ level, message: `request ${i}`, logfmt: line, timestamp: new Date(tsMs).toISOString() });
      winstonPushed.push({ labels: { job: "winston-e2e", level }, tsMs, line });
    }
    await transport.close();
    logger.close();

    // What went over the wire: protobuf, snappy-compressed, and all 30 entries.
    const sent = proxy!.requests.filter((r) => r.path === "/loki/api/v1/push" && r.headers["x-scope-orgid"] === TENANT && r.headers["content-type"] === "application/x-protobuf");
    expect(sent.length).toBeGreaterThan(0);
    for (const r of sent) expect(r.status).toBe(204);
    const wire = sent.flatMap((r) => logproto.PushRequest.decode(snappy.uncompressSync(r.body)).streams);
    const wireEntries = wire.flatMap((s) => s.entries.map((e) => e.line));
    expect(wireEntries.sort()).toEqual(winstonPushed.map((p) => p.line).sort());

    await expectStored('{job="winston-e2e"}', winstonPushed);
  });

  it("pino-loki pushes JSON; every entry comes back exactly", async () => {
    const rnd = mulberry32(11);
    let nowMs = base;
    const stream = pinoLoki({
      host: proxy!.url,
      batching: { interval: 60 }, // flushed when the stream ends
      labels: { app: "pino-e2e" },
      headers: { "X-Scope-OrgID": TENANT },
    });
    const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
    const logger = pino({ level: "debug", base: { pid: 4242, hostname: "e2e-host" }, timestamp: () => `,"time":${nowMs}` }, stream);
    const levelNames: Record<string, string> = { info: "info", warn: "warning", error: "error" };
    for (let i = 0; i < 24; i++) {
      nowMs = base + 5_000 + i * 15_000;
      const path = PATHS[Math.floor(rnd() * PATHS.length)];
      const status = STATUSES[Math.floor(rnd() * STATUSES.length)];
      const durationMs = 1 + Math.floor(rnd() * 400);
      const level = status >= 500 ? "error" : status >= 400 ? "warn" : "info";
      logger[level]({ path, status, duration_ms: durationMs }, `handled ${i}`);
      const levelNum = level === "error" ? 50 : level === "warn" ? 40 : 30;
      // pino-loki re-serialises pino's line without the hostname (it becomes a label).
      const line = JSON.stringify({ level: levelNum, time: nowMs, pid: 4242, path, status, duration_ms: durationMs, msg: `handled ${i}` });
      pinoPushed.push({ labels: { app: "pino-e2e", hostname: "e2e-host", level: levelNames[level] }, tsMs: nowMs, line });
    }
    stream.end();
    await closed;

    const sent = proxy!.requests.filter((r) => r.path === "/loki/api/v1/push" && r.headers["x-scope-orgid"] === TENANT && String(r.headers["content-type"]).startsWith("application/json"));
    expect(sent.length).toBeGreaterThan(0);
    for (const r of sent) expect(r.status).toBe(204);
    const wire = sent.flatMap((r) => (JSON.parse(r.body.toString("utf8")) as { streams: LokiStream[] }).streams);
    expect(wire.flatMap((s) => s.values.map((v) => v[1])).sort()).toEqual(pinoPushed.map((p) => p.line).sort());

    await expectStored('{app="pino-e2e"}', pinoPushed);
  });

  /** query_range over the whole window, forward: exactly the pushed entries. */
  async function expectStored(selector: string, pushed: Pushed[]): Promise<void> {
    const res = await lokiGet(url(), "/loki/api/v1/query_range", { query: selector, start: msToNs(base - 60_000), end: msToNs(base + 30 * 60_000), limit: "1000", direction: "forward" }, TENANT);
    expect(res.status).toBe("success");
    expect(res.data.resultType).toBe("streams");
    const got = entriesOf(res.data.result as LokiStream[]).map((e) => `${e.labels} ${e.ts} ${e.line}`);
    const want = pushed.map((p) => `${labelString(p.labels)} ${msToNs(p.tsMs)} ${p.line}`);
    expect(got.sort()).toEqual(want.sort());
  }

  // -------------------------------------------------------------- the LogQL table

  const logfmt = (line: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const m of line.matchAll(/(\w+)=("([^"]*)"|\S+)/g)) out[m[1]] = m[3] ?? m[2];
    return out;
  };
  const json = (line: string): Record<string, unknown> => JSON.parse(line) as Record<string, unknown>;

  interface LogCase {
    name: string;
    query: string;
    want: () => Pushed[];
    /** The line each wanted entry should come back as (line_format), default unchanged. */
    line?: (p: Pushed) => string;
  }

  const logCases: LogCase[] = [
    { name: "line contains", query: '{job="winston-e2e"} |= "method=GET"', want: () => winstonPushed.filter((p) => p.line.includes("method=GET")) },
    { name: "line does not contain", query: '{job="winston-e2e"} != "method=GET"', want: () => winstonPushed.filter((p) => !p.line.includes("method=GET")) },
    { name: "line regexp", query: '{job="winston-e2e"} |~ "status=5\\\\d\\\\d"', want: () => winstonPushed.filter((p) => /status=5\d\d/.test(p.line)) },
    { name: "logfmt + numeric label filter", query: '{job="winston-e2e"} | logfmt | status >= 500', want: () => winstonPushed.filter((p) => Number(logfmt(p.line).status) >= 500) },
    {
      name: "logfmt + duration filter",
      query: '{job="winston-e2e"} | logfmt | duration > 200ms',
      want: () => winstonPushed.filter((p) => parseInt(logfmt(p.line).duration, 10) > 200),
    },
    { name: "json + string label filter", query: '{app="pino-e2e"} | json | path="/api/orders"', want: () => pinoPushed.filter((p) => json(p.line).path === "/api/orders") },
    { name: "json + numeric filter", query: '{app="pino-e2e"} | json | duration_ms > 100', want: () => pinoPushed.filter((p) => (json(p.line).duration_ms as number) > 100) },
    {
      name: "json + line_format",
      query: '{app="pino-e2e"} | json | line_format "{{.msg}} -> {{.status}}"',
      want: () => pinoPushed,
      line: (p) => `${json(p.line).msg as string} -> ${json(p.line).status as number}`,
    },
    { name: "selector regexp over both clients", query: '{level=~"error|warning"}', want: () => [...winstonPushed, ...pinoPushed].filter((p) => p.labels.level === "error" || p.labels.level === "warning") },
  ];

  it.each(logCases.map((c) => [c.name, c] as const))("LogQL log query: %s", async (_name, c) => {
    const res = await lokiGet(url(), "/loki/api/v1/query_range", { query: c.query, start: msToNs(base - 60_000), end: msToNs(base + 30 * 60_000), limit: "1000" }, TENANT);
    expect(res.data.resultType).toBe("streams");
    const entries = entriesOf(res.data.result as LokiStream[]);
    // Parsers add labels (every json field, every logfmt key): compare time and line.
    const got = entries.map((e) => `${e.ts} ${e.line}`);
    const want = c.want().map((p) => `${msToNs(p.tsMs)} ${c.line ? c.line(p) : p.line}`);
    expect(want.length).toBeGreaterThan(0);
    expect(got.sort()).toEqual(want.sort());
    // Backward (the default): newest first within each stream.
    for (const s of res.data.result as LokiStream[]) {
      for (let i = 1; i < s.values.length; i++) expect(BigInt(s.values[i][0]) <= BigInt(s.values[i - 1][0])).toBe(true);
    }
  });

  /** Range-vector expectations: for each step t, entries in (t - range, t]. */
  function windows(pushed: Pushed[], rangeMs: number, start: number, end: number, step: number, groupBy: (p: Pushed) => string, value: (ps: Pushed[]) => number): Map<string, [number, string][]> {
    const out = new Map<string, [number, string][]>();
    for (let t = start; t <= end; t += step) {
      const groups = new Map<string, Pushed[]>();
      for (const p of pushed) {
        if (p.tsMs > t - rangeMs && p.tsMs <= t) {
          const k = groupBy(p);
          const g = groups.get(k);
          if (g) g.push(p);
          else groups.set(k, [p]);
        }
      }
      for (const [k, ps] of groups) {
        const series = out.get(k) ?? [];
        series.push([t / 1000, String(value(ps))]);
        out.set(k, series);
      }
    }
    return out;
  }

  interface MetricCase {
    name: string;
    query: string;
    rangeMs: number;
    pushed: () => Pushed[];
    groupBy: (p: Pushed) => string;
    value: (ps: Pushed[]) => number;
  }

  const metricCases: MetricCase[] = [
    { name: "count_over_time per stream", query: 'count_over_time({job="winston-e2e"}[1m])', rangeMs: 60_000, pushed: () => winstonPushed, groupBy: (p) => labelString(p.labels), value: (ps) => ps.length },
    // Per stream: a sum of per-stream rates would depend on the order floats are added in.
    { name: "rate", query: 'rate({job="winston-e2e"}[1m])', rangeMs: 60_000, pushed: () => winstonPushed, groupBy: (p) => labelString(p.labels), value: (ps) => ps.length / 60 },
    { name: "sum by level", query: 'sum by (level) (count_over_time({app="pino-e2e"}[2m]))', rangeMs: 120_000, pushed: () => pinoPushed, groupBy: (p) => labelString({ level: p.labels.level }), value: (ps) => ps.length },
    {
      name: "sum by a json field, filtered",
      query: 'sum by (path) (count_over_time({app="pino-e2e"} | json | status >= 400 [5m]))',
      rangeMs: 300_000,
      pushed: () => pinoPushed.filter((p) => (json(p.line).status as number) >= 400),
      groupBy: (p) => labelString({ path: json(p.line).path as string }),
      value: (ps) => ps.length,
    },
    {
      name: "bytes_over_time",
      query: 'sum(bytes_over_time({job="winston-e2e"}[1m]))',
      rangeMs: 60_000,
      pushed: () => winstonPushed,
      groupBy: () => "{}",
      value: (ps) => ps.reduce((n, p) => n + Buffer.byteLength(p.line), 0),
    },
    {
      name: "sum by logfmt method",
      query: 'sum by (method) (count_over_time({job="winston-e2e"} | logfmt [3m]))',
      rangeMs: 180_000,
      pushed: () => winstonPushed,
      groupBy: (p) => labelString({ method: logfmt(p.line).method }),
      value: (ps) => ps.length,
    },
  ];

  it.each(metricCases.map((c) => [c.name, c] as const))("LogQL metric query: %s", async (_name, c) => {
    const start = base;
    const end = base + 8 * 60_000;
    const step = 60_000;
    const res = await lokiGet(url(), "/loki/api/v1/query_range", { query: c.query, start: msToNs(start), end: msToNs(end), step: "60" }, TENANT);
    expect(res.data.resultType).toBe("matrix");
    const got = new Map((res.data.result as LokiMatrixSeries[]).map((s) => [labelString(s.metric), s.values.map(([t, v]) => [t, String(Number(v))])]));
    const want = windows(c.pushed(), c.rangeMs, start, end, step, c.groupBy, c.value);
    for (const series of want.values()) for (const pt of series) pt[1] = String(Number(pt[1]));
    expect(want.size).toBeGreaterThan(0);
    expect(Object.fromEntries(got)).toEqual(Object.fromEntries(want));
  });

  it("an instant metric query: the total over the whole window", async () => {
    const time = base + 10 * 60_000;
    const res = await lokiGet(url(), "/loki/api/v1/query", { query: 'sum by (job) (count_over_time({job="winston-e2e"}[15m]))', time: msToNs(time) }, TENANT);
    expect(res.data.resultType).toBe("vector");
    const result = res.data.result as LokiVectorSample[];
    expect(result.map((s) => [s.metric, s.value])).toEqual([[{ job: "winston-e2e" }, [time / 1000, String(winstonPushed.length)]]]);
  });

  it("labels, label values and series see both clients' streams", async () => {
    const range = { start: msToNs(base - 60_000), end: msToNs(base + 30 * 60_000) };
    const labels = await lokiGet<{ status: string; data: string[] }>(url(), "/loki/api/v1/labels", range, TENANT);
    expect(labels.data).toEqual(["app", "hostname", "job", "level"]);
    const levels = await lokiGet<{ status: string; data: string[] }>(url(), "/loki/api/v1/label/level/values", range, TENANT);
    expect(levels.data).toEqual([...new Set([...winstonPushed, ...pinoPushed].map((p) => p.labels.level))].sort());
    const series = await lokiGet<{ status: string; data: Record<string, string>[] }>(url(), "/loki/api/v1/series", { ...range, "match[]": '{app="pino-e2e"}' }, TENANT);
    expect(series.data.map(labelString).sort()).toEqual([...new Set(pinoPushed.map((p) => labelString(p.labels)))].sort());
  });

  it("live tail over wrangler dev's WebSocket: history first, then pino-loki's new lines through the pipeline", async () => {
    const stream = pinoLoki({ host: url(), batching: false, labels: { app: "pino-tail" }, headers: { "X-Scope-OrgID": TENANT } });
    const logger = pino({ base: { pid: 1, hostname: "e2e-host" } }, stream);
    // Waits, bounded, for something the clients do in the background (no timing is asserted).
    const until = async (what: string, ok: () => boolean | Promise<boolean>): Promise<void> => {
      for (let i = 0; i < 600; i++) {
        if (await ok()) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    // One entry before the tail opens: it must arrive as history.
    logger.info({ n: 0 }, "before the tail");
    const stored = async (): Promise<boolean> => {
      const res = await lokiGet(url(), "/loki/api/v1/query_range", { query: '{app="pino-tail"}', start: msToNs(Date.now() - 60_000) }, TENANT);
      return (res.data.result as LokiStream[]).length > 0;
    };
    await until("the first push", stored);
    const tail = await openTail(url(), { query: '{app="pino-tail"} != "skip me" | json | line_format "{{.msg}} #{{.n}}"', start: msToNs(Date.now() - 60_000) }, TENANT);
    await until("the history", () => tail.messages.length >= 1);
    const linesOf = (m: unknown): string[] => (m as { streams: LokiStream[] }).streams.flatMap((s) => s.values.map((v) => v[1]));
    expect(linesOf(tail.messages[0])).toEqual(["before the tail #0"]);

    logger.info({ n: 1 }, "live one");
    logger.info({ n: 2 }, "skip me");
    logger.warn({ n: 3 }, "live three");
    await until("the live lines", () => tail.messages.slice(1).flatMap(linesOf).length >= 2);
    expect(tail.messages.slice(1).flatMap(linesOf)).toEqual(["live one #1", "live three #3"]);
    for (const m of tail.messages) expect((m as { dropped_entries: unknown }).dropped_entries).toBeNull();
    tail.close();
    await tail.closed;
    stream.end();
  });

  it("a push refused before its body is read does not break the next request (256 KiB bodies: bad Content-Encoding, an origin no tenant lists)", async () => {
    const big = new Uint8Array(256 << 10).fill(0x61);
    const want: string[] = [];
    const refusals: [Record<string, string>, number][] = [
      [{ "Content-Type": "application/json", "Content-Encoding": "br" }, 400],
      [{ "Content-Type": "application/json", Origin: "https://nobody-lists-this.example" }, 403],
    ];
    for (let i = 0; i < 10; i++) {
      const [headers, status] = refusals[i % 2];
      const refused = await fetch(`${url()}/loki/api/v1/push`, { method: "POST", headers: { ...headers, "X-Scope-OrgID": TENANT }, body: big });
      expect(refused.status).toBe(status);
      await refused.arrayBuffer();
      const ts = msToNs(base + 25 * 60_000 + i);
      const ok = await fetch(`${url()}/loki/api/v1/push`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Scope-OrgID": TENANT },
        body: JSON.stringify({ streams: [{ stream: { job: "after-refusal" }, values: [[ts, `line ${i}`]] }] }),
      });
      expect(ok.status, `push ${i} after a refused one: ${await ok.text()}`).toBe(204);
      want.push(`${ts} line ${i}`);
    }
    const res = await lokiGet<{ data: { result: { values: [string, string][] }[] } }>(url(), "/loki/api/v1/query_range", { query: '{job="after-refusal"}', start: msToNs(base), end: msToNs(base + 30 * 60_000), limit: "100", direction: "forward" }, TENANT);
    expect(res.data.result.flatMap((r) => r.values.map(([t, l]) => `${t} ${l}`))).toEqual(want);
  });
});
