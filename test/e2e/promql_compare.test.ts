// PromQL compared with Prometheus itself: the same deterministic data is remote-written
// to Debian's `prometheus` (2.42, --web.enable-remote-write-receiver) and to
// `wrangler dev`; then each query of a list runs through both HTTP APIs, instant and
// range, and the answers must match series for series and value for value.
//
// Samples, query times and subquery steps are offset from each other (see END), so
// the one semantic change between Prometheus 2.x and 3.x that this data could see
// (range selectors became left-open) never decides a result. Where 2.42 and 3.x differ otherwise, 3.x wins and
// the query is left out of this list, with a reason.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { startPrometheus, snappyCompress, type PrometheusHandle } from "../support/prometheus";
import { encodeWriteV1, type PromSeries } from "../support/promproto";
import { buildWorkerBundle, startWrangler, type WranglerHandle } from "../support/wrangler";
import { mulberry32 } from "../support/prng";

const STEP_MS = 15_000;
// Samples sit 3 s past the 15 s grid; query times 7 s past the minute; subquery steps on
// the minute: no window boundary ever falls on a sample.
const END = Math.floor(Date.now() / STEP_MS) * STEP_MS - 60_000 + 3_000;
const START = END - 2 * 3600_000;


/** Deterministic series: counters (with a reset), gauges, classic histogram buckets, up. */
function workload(): PromSeries[] {
  const rand = mulberry32(42);
  const steps = Math.floor((END - START) / STEP_MS) + 1;
  const ts = Array.from({ length: steps }, (_, i) => START + i * STEP_MS);
  const out: PromSeries[] = [];
  for (let i = 0; i < 5; i++) {
    const instance = `10.0.0.${i}:9100`;
    for (const code of ["200", "500"]) {
      for (const method of ["GET", "POST"]) {
        let v = rand() * 1000;
        const rate = code === "200" ? 5 + rand() * 20 : rand();
        const resetAt = Math.floor(rand() * steps);
        out.push({
          labels: { __name__: "http_requests_total", job: "api", instance, code, method },
          samples: ts.map((t, k) => {
            if (k === resetAt && i % 2 === 0) v = 0;
            else v += rate * 15 * (0.5 + rand());
            return [t, Math.round(v)];
          }),
        });
      }
    }
    let g = 4e8 + rand() * 2e8;
    out.push({ labels: { __name__: "node_memory_bytes", job: "node", instance }, samples: ts.map((t) => [t, (g += (rand() - 0.5) * 1e7)]) });
    const les = ["0.1", "0.5", "1", "+Inf"];
    const counts = [0, 0, 0, 0];
    const perStep = ts.map(() => {
      const n = Math.floor(rand() * 20);
      for (let k = 0; k < n; k++) {
        const d = rand() * 1.5;
        for (let b = 0; b < 4; b++) if (b === 3 || d <= Number(les[b])) counts[b]++;
      }
      return counts.slice();
    });
    les.forEach((le, b) => {
      out.push({ labels: { __name__: "http_request_duration_seconds_bucket", job: "api", instance, le }, samples: ts.map((t, k) => [t, perStep[k][b]]) });
    });
    out.push({ labels: { __name__: "up", job: "node", instance }, samples: ts.map((t, k) => [t, i === 4 && k > steps - 40 ? 0 : 1]) });
  }
  return out;
}

/** Requests in time order, each holding 20 consecutive samples of every series. */
function requests(series: PromSeries[]): Uint8Array[] {
  const n = (series[0].samples as [number, number][]).length;
  const out: Uint8Array[] = [];
  for (let from = 0; from < n; from += 20) {
    out.push(snappyCompress(encodeWriteV1(series.map((s) => ({ labels: s.labels, samples: (s.samples as [number, number][]).slice(from, from + 20) })))));
  }
  return out;
}

const QUERIES: string[] = [
  "up",
  "up == 0",
  "rate(http_requests_total[5m])",
  "irate(http_requests_total[5m])",
  "increase(http_requests_total[10m])",
  "delta(node_memory_bytes[10m])",
  "idelta(node_memory_bytes[5m])",
  "resets(http_requests_total[30m])",
  "changes(up[30m])",
  "sum by (job) (rate(http_requests_total[5m]))",
  "sum without (instance, method) (rate(http_requests_total[5m]))",
  "avg(node_memory_bytes)",
  "min by (job) (node_memory_bytes)",
  "max(node_memory_bytes)",
  "count by (code) (http_requests_total)",
  "group by (instance) (up)",
  "stddev(node_memory_bytes)",
  "stdvar(node_memory_bytes)",
  "topk(3, node_memory_bytes)",
  "bottomk(2, node_memory_bytes)",
  "quantile(0.9, node_memory_bytes)",
  "count_values(\"value\", up)",
  "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
  "histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[10m]))",
  "sum(rate(http_requests_total{code=~\"5..\"}[5m])) / sum(rate(http_requests_total[5m]))",
  "rate(http_requests_total[5m]) / on(instance) group_left sum by (instance) (rate(http_requests_total[5m]))",
  "sum by (instance) (rate(http_requests_total[5m])) * on(instance) group_right up",
  "node_memory_bytes > bool 5e8",
  "node_memory_bytes > 5e8",
  "node_memory_bytes offset 10m",
  "node_memory_bytes - node_memory_bytes offset 1h",
  "http_requests_total unless on(instance) up == 0",
  "up and on(instance) node_memory_bytes > 4e8",
  "up or vector(1)",
  "max_over_time(node_memory_bytes[10m])",
  "min_over_time(node_memory_bytes[10m])",
  "avg_over_time(node_memory_bytes[10m])",
  "sum_over_time(up[10m])",
  "count_over_time(up[10m])",
  "last_over_time(node_memory_bytes[10m])",
  "quantile_over_time(0.5, node_memory_bytes[10m])",
  "stddev_over_time(node_memory_bytes[10m])",
  "present_over_time(up[5m])",
  "deriv(node_memory_bytes[10m])",
  "predict_linear(node_memory_bytes[30m], 3600)",
  "max_over_time(rate(http_requests_total[5m])[30m:1m])",
  "avg_over_time(sum by (job) (rate(http_requests_total[5m]))[20m:2m])",
  "label_replace(up, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
  "label_join(up, \"both\", \"/\", \"job\", \"instance\")",
  "absent(nonexistent_metric)",
  "absent(up)",
  "abs(-node_memory_bytes)",
  "ceil(rate(http_requests_total[5m]))",
  "floor(rate(http_requests_total[5m]))",
  "round(rate(http_requests_total[5m]), 0.1)",
  "clamp(rate(http_requests_total[5m]), 1, 10)",
  "clamp_max(node_memory_bytes, 5e8)",
  "exp(up)",
  "ln(node_memory_bytes)",
  "log2(node_memory_bytes)",
  "sqrt(node_memory_bytes)",
  "sgn(node_memory_bytes - 5e8)",
  "scalar(sum(up))",
  "vector(time())",
  "time() - timestamp(up)",
  "hour(vector(time()))",
  "day_of_week()",
  "-node_memory_bytes",
  "2 ^ 3 * 4 - 1",
  "node_memory_bytes % 7",
  "sum(up) + 1",
  "count(rate(http_requests_total[5m]) > 10)",
];

const haveProm = existsSync("/usr/bin/prometheus");
if (!haveProm) console.warn("promql_compare: skipped: Debian's prometheus is not installed (/usr/bin/prometheus); .ci/run installs it");

describe.skipIf(!haveProm)("PromQL answers as Prometheus's", () => {
  let prom: PrometheusHandle;
  let ours: WranglerHandle;

  beforeAll(async () => {
    const bundle = await buildWorkerBundle();
    [prom, ours] = await Promise.all([startPrometheus({ scrapeInterval: "1h" }), startWrangler({ bundle })]);
    for (const body of requests(workload())) {
      for (const url of [`${prom.url}/api/v1/write`, `${ours.url}/api/v1/write`]) {
        const res = await fetch(url, { method: "POST", body, headers: { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0" } });
        expect(res.status, `${url}: ${await res.text()}`).toBeLessThan(300);
      }
    }
    // Half of the data goes to R2 as blocks, so queries merge heads and blocks.
    expect((await fetch(`${ours.url}/flush`, { method: "POST" })).status).toBe(204);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([prom?.stop(), ours?.stop()]);
  });

  type Result = { status: string; data: { resultType: string; result: unknown }; error?: string };
  async function get(base: string, path: string, params: Record<string, string>): Promise<Result> {
    const res = await fetch(`${base}${path}?${new URLSearchParams(params)}`);
    return (await res.json()) as Result;
  }

  /** Series sorted by labels, values as numbers; scalars as one series with no labels. */
  function normalise(r: Result): { metric: string; points: [number, number][] }[] {
    const out: { metric: string; points: [number, number][] }[] = [];
    const { resultType, result } = r.data;
    if (resultType === "scalar") return [{ metric: "{}", points: [[(result as [number, string])[0], Number((result as [number, string])[1])]] }];
    for (const s of result as { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[]) {
      const metric = JSON.stringify(Object.entries(s.metric).sort(([a], [b]) => (a < b ? -1 : 1)));
      const pts = s.value ? [s.value] : (s.values ?? []);
      out.push({ metric, points: pts.map(([t, v]) => [t, Number(v)]) });
    }
    return out.sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0));
  }

  function expectSame(query: string, theirs: Result, mine: Result) {
    expect(mine.status, `${query}: ${mine.error ?? ""}`).toBe("success");
    expect(theirs.status).toBe("success");
    expect(mine.data.resultType).toBe(theirs.data.resultType);
    const a = normalise(theirs);
    const b = normalise(mine);
    expect(b.map((s) => s.metric), query).toEqual(a.map((s) => s.metric));
    for (let i = 0; i < a.length; i++) {
      expect(b[i].points.map((p) => p[0]), `${query} ${a[i].metric} timestamps`).toEqual(a[i].points.map((p) => p[0]));
      for (let k = 0; k < a[i].points.length; k++) {
        const x = a[i].points[k][1];
        const y = b[i].points[k][1];
        if (Number.isNaN(x)) expect(Number.isNaN(y), `${query} ${a[i].metric} @${a[i].points[k][0]}`).toBe(true);
        else if (!Number.isFinite(x)) expect(y).toBe(x);
        else expect(Math.abs(x - y), `${query} ${a[i].metric} @${a[i].points[k][0]}: ${x} vs ${y}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(x)));
      }
    }
  }

  const minute = (t: number) => Math.floor(t / 60_000) * 60_000;
  const instantAt = String((minute(END) - 5 * 60_000 + 7_000) / 1000);
  for (const q of QUERIES) {
    it(`instant: ${q}`, async () => {
      const params = { query: q, time: instantAt };
      expectSame(q, await get(prom.url, "/api/v1/query", params), await get(ours.url, "/api/v1/query", params));
    });
    it(`range 1h step 60s: ${q}`, async () => {
      const params = { query: q, start: String((minute(END) - 3600_000 + 7_000) / 1000), end: String((minute(END) + 7_000) / 1000), step: "60" };
      expectSame(q, await get(prom.url, "/api/v1/query_range", params), await get(ours.url, "/api/v1/query_range", params));
    });
  }

  it("labels, label values and series agree", async () => {
    const range = { start: String(START / 1000), end: String(END / 1000) };
    for (const [path, params] of [
      ["/api/v1/labels", range],
      ["/api/v1/label/instance/values", range],
      ["/api/v1/label/__name__/values", range],
      ["/api/v1/series", { ...range, "match[]": "up" }],
    ] as const) {
      const a = await get(prom.url, path, params);
      const b = await get(ours.url, path, params);
      expect(b.status, `${path}: ${b.error ?? ""}`).toBe("success");
      expect(b.data, path).toEqual(a.data);
    }
  });
});
