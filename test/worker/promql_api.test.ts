// The Prometheus HTTP API through the Worker: JSON shapes byte for byte, every error
// type and status with Prometheus's texts, GET and POST, the /prometheus prefix,
// labels/series/values with and without match[], from the heads, after a flush
// (heads and R2 overlap) and after a shutdown (R2 alone), metadata, limits.

import { beforeAll, describe, expect, it } from "vitest";
import { env, SELF } from "cloudflare:test";
import { pushV1, type TestSeries } from "./helpers";
import { MetricType } from "../../src/proto/types";
import { apiHandler, formatTimestamp, formatValue, jsonString, successResponse } from "../../src/querier/api/respond";
import { handleQuery, handleQueryRange } from "../../src/querier/api/query";
import { handleLabelNames, handleSeries, unescapeName } from "../../src/querier/api/labels";
import { goQuote, parseDuration, parseTime } from "../../src/querier/api/params";
import { Head } from "../../src/ingester/head";
import { headLabelNames, headLabelValues, headSeries } from "../../src/ingester/labels";
import { seriesKey } from "../../src/model/labels";
import { MatchType as M } from "../../src/proto/types";
import { parseExpr } from "../../src/querier/promql/parse";
import { formatExpr } from "../../src/querier/promql/format";

const NOW = Date.now();
/** Whole seconds, 30 minutes ago: data spans T0 .. T0 + 5 min. */
const T0 = Math.floor(NOW / 1000) * 1000 - 1800_000;
const LAST = T0 + 300_000;
/** An evaluation time with a millisecond fraction, to see Prometheus's ".781". */
const QT = LAST + 781;
const sec = (ms: number) => ms / 1000;

const TENANT = "promapi";

function ramp(labels: Record<string, string>, step: number): TestSeries {
  return { labels, samples: Array.from({ length: 21 }, (_, k) => [T0 + k * 15_000, k * step] as [number, number]) };
}

const SPECIAL: [string, number][] = [
  ["nan", NaN],
  ["inf", Infinity],
  ["ninf", -Infinity],
  ["tiny", 1e-7],
  ["huge", 1e21],
  ["negzero", -0],
  ["frac", 0.1],
  ["big", 123456789.125],
  ["small", 0.000001],
  ["under", 1e20],
];

const DATA: TestSeries[] = [
  ramp({ __name__: "http_requests_total", code: "200", instance: "a", job: "api" }, 10),
  ramp({ __name__: "http_requests_total", code: "500", instance: "b", job: "api" }, 2.5),
  { labels: { __name__: "up", instance: "a", job: "node" }, samples: Array.from({ length: 21 }, (_, k) => [T0 + k * 15_000, 1] as [number, number]) },
  ...SPECIAL.map(([kind, v]): TestSeries => ({ labels: { __name__: "special", job: "x", kind }, samples: [[LAST, v]] })),
  // Old data: outside any range that starts after T0 - 1h.
  { labels: { __name__: "old_metric", job: "old" }, samples: [[T0 - 7200_000, 7]] },
];

const METADATA = [
  { type: MetricType.COUNTER, metricFamilyName: "http_requests_total", help: "Requests <served> & counted.", unit: "" },
  { type: MetricType.GAUGE, metricFamilyName: "up", help: "Whether the target is up.", unit: "" },
];

interface Envelope {
  status: string;
  data?: unknown;
  errorType?: string;
  error?: string;
  warnings?: string[];
  infos?: string[];
}

async function get(path: string, tenant = TENANT): Promise<{ status: number; text: string; json: Envelope; type: string | null }> {
  const res = await SELF.fetch(`http://ingester${path}`, { headers: { "X-Scope-OrgID": tenant } });
  return read(res);
}

async function postForm(path: string, form: Record<string, string | string[]>, tenant = TENANT) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
  const res = await SELF.fetch(`http://ingester${path}`, {
    method: "POST",
    body: body.toString(),
    headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Scope-OrgID": tenant },
  });
  return read(res);
}

async function read(res: Response) {
  const text = await res.text();
  return { status: res.status, text, json: (text ? JSON.parse(text) : {}) as Envelope, type: res.headers.get("Content-Type") };
}

function qs(params: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
  return p.toString();
}

async function expectError(r: Promise<{ status: number; json: Envelope }>, status: number, errorType: string, error: string | RegExp) {
  const res = await r;
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  expect(res.json.status).toBe("error");
  expect(res.json.errorType).toBe(errorType);
  if (typeof error === "string") expect(res.json.error).toBe(error);
  else expect(res.json.error).toMatch(error);
  expect(res.json.data).toBeUndefined();
}

/** An env whose LIMITS add `limits` for `tenant` (the Worker's own limits; Durable Objects keep theirs). */
function envWith(tenant: string, limits: Record<string, number>): Env {
  const current = JSON.parse(env.LIMITS ?? "{}") as Record<string, unknown>;
  return { ...env, LIMITS: JSON.stringify({ ...current, [tenant]: limits }) };
}

function call(handler: Parameters<typeof apiHandler>[0], path: string, e: Env, tenant = TENANT) {
  return apiHandler(handler)(new Request(`http://ingester${path}`, { headers: { "X-Scope-OrgID": tenant } }), e).then(read);
}

beforeAll(async () => {
  const res = await pushV1(DATA, { tenant: TENANT, metadata: METADATA });
  expect(res.status, await res.text()).toBe(204);
});

describe("formatting, as Prometheus's jsonutil", () => {
  it("writes values with Go's shortest digits, exponents below 1e-6 and from 1e21, and NaN/±Inf", () => {
    expect(formatValue(1)).toBe("1");
    expect(formatValue(0.1)).toBe("0.1");
    expect(formatValue(-0)).toBe("-0");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(NaN)).toBe("NaN");
    expect(formatValue(Infinity)).toBe("+Inf");
    expect(formatValue(-Infinity)).toBe("-Inf");
    expect(formatValue(1e-7)).toBe("1e-07");
    expect(formatValue(1.5e-7)).toBe("1.5e-07");
    expect(formatValue(0.000001)).toBe("0.000001");
    expect(formatValue(1e20)).toBe("100000000000000000000");
    expect(formatValue(1e21)).toBe("1e+21");
    expect(formatValue(-2.5e300)).toBe("-2.5e+300");
    expect(formatValue(123456789.125)).toBe("123456789.125");
    expect(formatValue(5e-324)).toBe("5e-324");
  });

  it("writes timestamps as seconds with three decimals unless whole", () => {
    expect(formatTimestamp(1435781451781)).toBe("1435781451.781");
    expect(formatTimestamp(1435781451500)).toBe("1435781451.500");
    expect(formatTimestamp(1435781451050)).toBe("1435781451.050");
    expect(formatTimestamp(1435781451000)).toBe("1435781451");
    expect(formatTimestamp(-1500)).toBe("-1.500");
    expect(formatTimestamp(0)).toBe("0");
  });

  it("escapes strings as Go does and writes the envelope in Prometheus's field order", async () => {
    expect(jsonString("a<b>&c\u2028")).toBe('"a\\u003cb\\u003e\\u0026c\\u2028"');
    const res = successResponse("[]", ["w"], ["i"]);
    expect(res.headers.get("Content-Type")).toBe("application/json");
    expect(await res.text()).toBe('{"status":"success","data":[],"warnings":["w"],"infos":["i"]}');
    expect(await successResponse("[]").text()).toBe('{"status":"success","data":[]}');
  });
});

describe("parameters, as Prometheus parses them", () => {
  it("reads times as Unix seconds (rounded to ms) or RFC3339 (truncated to ms)", () => {
    expect(parseTime("1435781451.781")).toBe(1435781451781);
    expect(parseTime("1435781451")).toBe(1435781451000);
    expect(parseTime("1e9")).toBe(1e12);
    expect(parseTime("-1.5")).toBe(-1500);
    expect(parseTime("0.0004")).toBe(0);
    expect(parseTime("2015-07-01T20:10:51.781Z")).toBe(1435781451781);
    expect(parseTime("2015-07-01T20:10:51.7819999Z")).toBe(1435781451781);
    expect(parseTime("2015-07-01T22:10:51+02:00")).toBe(1435781451000);
    expect(parseTime("0001-01-01T00:00:00Z")).toBe(-62135596800000);
    expect(parseTime("-292273086-05-16T16:47:06Z")).toBe(-9223309901257974000);
    for (const bad of ["x", "", "2015-07-01", "2015-02-29T00:00:00Z", "2015-07-01T20:10:51", "NaN", "Inf", "1e400"]) {
      expect(() => parseTime(bad), bad).toThrow(`cannot parse ${goQuote(bad)} to a valid timestamp`);
    }
  });

  it("reads durations as float seconds or PromQL durations", () => {
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5")).toBe(1500);
    expect(parseDuration("15")).toBe(15_000);
    expect(parseDuration("100ms")).toBe(100);
    expect(parseDuration("0")).toBe(0);
    expect(parseDuration("-1")).toBe(-1000);
    expect(() => parseDuration("30m1h")).toThrow('cannot parse "30m1h" to a valid duration');
    expect(() => parseDuration("1e300")).toThrow('cannot parse "1e300" to a valid duration. It overflows int64');
  });

  it("undoes Prometheus 3's U__ escaping of label names", () => {
    expect(unescapeName("U__http_2e_method")).toBe("http.method");
    expect(unescapeName("U__j_6f_b")).toBe("job");
    expect(unescapeName("U__a__b")).toBe("a_b");
    expect(unescapeName("U___1f600_")).toBe("\u{1f600}");
    expect(unescapeName("U__bad_zz_")).toBe("U__bad_zz_");
    expect(unescapeName("U__open_2e")).toBe("U__open_2e");
    expect(unescapeName("job")).toBe("job");
  });
});

describe("the head's label lookups", () => {
  it("use the postings, never every series, when a matcher narrows them", () => {
    const head = new Head();
    for (let i = 0; i < 50; i++) {
      const s = head.addSeries(i + 1, seriesKey(["__name__", i % 2 ? "a" : "b", "i", String(i), "job", "j"]));
      s.appendAccepted(1000 + i, i, 120, 7200_000);
    }
    // A scan would call byKey.values(): make it fail.
    head.byKey.values = () => {
      throw new Error("scanned every series");
    };
    const q = { matcherSets: [[{ type: M.EQ, name: "__name__", value: "a" }]], mint: 0, maxt: 5000, limit: 0 };
    expect(headSeries(head, q).length).toBe(25);
    expect(headLabelNames(head, q)).toEqual(["__name__", "i", "job"]);
    expect(headLabelValues(head, { ...q, name: "i", limit: 3 })).toEqual(["1", "11", "13"]);
    expect(headLabelValues(head, { matcherSets: [], mint: 0, maxt: 0, limit: 0, name: "__name__" })).toEqual(["a", "b"]);
    // Only series with data in [mint, maxt] count when matchers are given.
    expect(headSeries(head, { ...q, mint: 1040, maxt: 1045 }).map((l) => l[3])).toEqual(["41", "43", "45"]);
  });
});

describe("GET|POST /api/v1/query", () => {
  it("answers a vector with Prometheus's exact JSON", async () => {
    const res = await get(`/api/v1/query?${qs({ query: "up", time: String(sec(QT)) })}`);
    expect(res.status, res.text).toBe(200);
    expect(res.type).toBe("application/json");
    expect(res.text).toBe(
      `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"node"},"value":[${formatTimestamp(QT)},"1"]}]}}`,
    );
    expect(res.text).toContain(".781,");
  });

  it("takes POST form bodies, RFC3339 times and the /prometheus prefix alike", async () => {
    const iso = new Date(QT).toISOString();
    const a = await get(`/api/v1/query?${qs({ query: "http_requests_total", time: iso })}`);
    const b = await postForm("/api/v1/query", { query: "http_requests_total", time: iso });
    const c = await postForm("/prometheus/api/v1/query", { query: "http_requests_total", time: String(sec(QT)) });
    const d = await get(`/prometheus/api/v1/query?${qs({ query: "http_requests_total", time: iso })}`);
    expect(a.status, a.text).toBe(200);
    expect(b.text).toBe(a.text);
    expect(c.text).toBe(a.text);
    expect(d.text).toBe(a.text);
    const data = a.json.data as { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    expect(data.resultType).toBe("vector");
    expect(data.result.map((r) => [r.metric.instance, r.value[1]])).toEqual([
      ["a", "200"],
      ["b", "50"],
    ]);
  });

  it("writes special values as Prometheus does", async () => {
    const res = await get(`/api/v1/query?${qs({ query: "special", time: String(sec(QT)) })}`);
    expect(res.status, res.text).toBe(200);
    const data = res.json.data as { result: { metric: Record<string, string>; value: [number, string] }[] };
    const got = Object.fromEntries(data.result.map((r) => [r.metric.kind, r.value[1]]));
    expect(got).toEqual({ nan: "NaN", inf: "+Inf", ninf: "-Inf", tiny: "1e-07", huge: "1e+21", negzero: "-0", frac: "0.1", big: "123456789.125", small: "0.000001", under: "100000000000000000000" });
  });

  it("answers scalars and strings as [time, value]", async () => {
    const s = await get(`/api/v1/query?${qs({ query: "42", time: "1435781451.781" })}`);
    expect(s.text).toBe('{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,"42"]}}');
    const t = await get(`/api/v1/query?${qs({ query: '"a<b"', time: "100" })}`);
    expect(t.text).toBe('{"status":"success","data":{"resultType":"string","result":[100,"a\\u003cb"]}}');
  });

  it("defaults the time to now", async () => {
    const res = await get(`/api/v1/query?${qs({ query: "1" })}`);
    const [t] = (res.json.data as { result: [number, string] }).result;
    expect(Math.abs(t * 1000 - Date.now())).toBeLessThan(60_000);
  });

  it("answers an empty vector as []", async () => {
    const res = await get(`/api/v1/query?${qs({ query: "nothing_here", time: String(sec(QT)) })}`);
    expect(res.text).toBe('{"status":"success","data":{"resultType":"vector","result":[]}}');
    const other = await get(`/api/v1/query?${qs({ query: "up", time: String(sec(QT)) })}`, "promapi-other-tenant");
    expect(other.text).toBe('{"status":"success","data":{"resultType":"vector","result":[]}}');
  });

  it("cuts the result at limit with Prometheus's warning", async () => {
    const res = await get(`/api/v1/query?${qs({ query: "http_requests_total", time: String(sec(QT)), limit: "1" })}`);
    expect(res.status).toBe(200);
    expect((res.json.data as { result: unknown[] }).result.length).toBe(1);
    expect(res.json.warnings).toEqual(["results truncated due to limit"]);
    const all = await get(`/api/v1/query?${qs({ query: "http_requests_total", time: String(sec(QT)), limit: "0" })}`);
    expect((all.json.data as { result: unknown[] }).result.length).toBe(2);
    expect(all.json.warnings).toBeUndefined();
  });

  it("refuses bad parameters with 400 bad_data and Prometheus's messages", async () => {
    await expectError(get(`/api/v1/query?${qs({ query: "up", time: "x" })}`), 400, "bad_data", `invalid parameter "time": Invalid time value for 'time': cannot parse "x" to a valid timestamp`);
    await expectError(get(`/api/v1/query?${qs({ query: "up", timeout: "x" })}`), 400, "bad_data", `invalid parameter "timeout": cannot parse "x" to a valid duration`);
    await expectError(get(`/api/v1/query?${qs({ query: "up", limit: "-1" })}`), 400, "bad_data", `invalid parameter "limit": limit must be non-negative`);
    await expectError(get(`/api/v1/query?${qs({ query: "up", limit: "x" })}`), 400, "bad_data", `invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax`);
    await expectError(get(`/api/v1/query?${qs({ query: "up", lookback_delta: "x" })}`), 400, "bad_data", `error parsing lookback delta duration: cannot parse "x" to a valid duration`);
    await expectError(postForm("/prometheus/api/v1/query", { query: "up{" }), 400, "bad_data", /^invalid parameter "query": 1:\d+: parse error: /);
    await expectError(get(`/api/v1/query?${qs({ query: "" })}`), 400, "bad_data", /^invalid parameter "query": /);
  });

  it("answers 503 timeout when the timeout has passed before the query starts", async () => {
    await expectError(get(`/api/v1/query?${qs({ query: "up", timeout: "0" })}`), 503, "timeout", "query timed out in query queue");
    await expectError(postForm("/api/v1/query_range", { query: "up", start: "0", end: "60", step: "15", timeout: "-1s" }), 400, "bad_data", `invalid parameter "timeout": cannot parse "-1s" to a valid duration`);
    await expectError(postForm("/api/v1/query_range", { query: "up", start: "0", end: "60", step: "15", timeout: "-1" }), 503, "timeout", "query timed out in query queue");
    // The tenant's queryTimeoutMs caps every query.
    await expectError(call(handleQuery, `/api/v1/query?${qs({ query: "up", timeout: "1h" })}`, envWith(TENANT, { queryTimeoutMs: 0 })), 503, "timeout", "query timed out in query queue");
  });

  it("answers 422 execution when a query selects more than maxSeriesPerQuery", async () => {
    const e = envWith(TENANT, { maxSeriesPerQuery: 1 });
    await expectError(
      call(handleQuery, `/api/v1/query?${qs({ query: "http_requests_total", time: String(sec(QT)) })}`, e),
      422,
      "execution",
      "the query exceeded the maximum number of series (limit: 1 series, maxSeriesPerQuery). Consider reducing the time range and/or the number of series selected by the query",
    );
    const ok = await call(handleQuery, `/api/v1/query?${qs({ query: "up", time: String(sec(QT)) })}`, e);
    expect(ok.status, ok.text).toBe(200);
  });

  it("answers 422 execution, naming the limit, when a query loads more than maxSamplesPerQuery", async () => {
    const e = envWith(TENANT, { maxSamplesPerQuery: 1 });
    await expectError(
      call(handleQuery, `/api/v1/query?${qs({ query: "http_requests_total[5m]", time: String(sec(QT)) })}`, e),
      422,
      "execution",
      /^query processing would load too many samples into memory in .*\(limit: 1 samples, maxSamplesPerQuery\)$/,
    );
  });

  it("answers 500 internal when storage fails", async () => {
    const broken = { ...env, BLOCKS: new Proxy(env.BLOCKS, { get: (t, p) => (p === "list" ? () => Promise.reject(new Error("R2 is down")) : Reflect.get(t, p)) }) } as Env;
    await expectError(call(handleQuery, `/api/v1/query?${qs({ query: "up", time: String(sec(QT)) })}`, broken), 500, "internal", "R2 is down");
    await expectError(call(handleLabelNames, `/api/v1/labels`, broken), 500, "internal", "R2 is down");
  });

  it("returns the engine's annotations as infos and warnings", async () => {
    const res = await get(`/api/v1/query?${qs({ query: "rate(up[5m])", time: String(sec(QT)) })}`);
    expect(res.status, res.text).toBe(200);
    // Prometheus 3 ends the text with the position in the query, " (1:6)"; the engine's Annotations carry none yet.
    expect(res.json.infos?.length).toBe(1);
    expect(res.json.infos?.[0]).toMatch(/^PromQL info: metric might not be a counter, name does not end in _total\/_sum\/_count\/_bucket: "up"( \(1:6\))?$/);
    expect(res.json.warnings).toBeUndefined();
    const w = await get(`/api/v1/query?${qs({ query: "histogram_quantile(0.5, up)", time: String(sec(QT)) })}`);
    expect(w.status, w.text).toBe(200);
    expect(w.json.warnings?.length).toBe(1);
    expect(w.json.warnings?.[0]).toMatch(/^PromQL warning: /);
  });

  it("refuses other methods with 405", async () => {
    const res = await SELF.fetch("http://ingester/api/v1/query?query=up", { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET, POST");
  });
});

describe("GET|POST /api/v1/query_range", () => {
  const range = { query: "up", start: String(sec(T0)), end: String(sec(LAST)), step: "1m" };

  it("answers a matrix with Prometheus's exact JSON", async () => {
    const res = await get(`/api/v1/query_range?${qs(range)}`);
    expect(res.status, res.text).toBe(200);
    const points = Array.from({ length: 6 }, (_, i) => `[${formatTimestamp(T0 + i * 60_000)},"1"]`).join(",");
    expect(res.text).toBe(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a","job":"node"},"values":[${points}]}]}}`);
    const post = await postForm("/prometheus/api/v1/query_range", { ...range, step: "60" });
    expect(post.text).toBe(res.text);
  });

  it("refuses bad ranges with Prometheus's messages", async () => {
    await expectError(get(`/api/v1/query_range?${qs({ ...range, start: "x" })}`), 400, "bad_data", `invalid parameter "start": cannot parse "x" to a valid timestamp`);
    await expectError(get(`/api/v1/query_range?${qs({ ...range, start: "" })}`), 400, "bad_data", `invalid parameter "start": cannot parse "" to a valid timestamp`);
    await expectError(get(`/api/v1/query_range?${qs({ ...range, end: "x" })}`), 400, "bad_data", `invalid parameter "end": cannot parse "x" to a valid timestamp`);
    await expectError(get(`/api/v1/query_range?${qs({ ...range, start: "100", end: "99" })}`), 400, "bad_data", `invalid parameter "end": end timestamp must not be before start time`);
    await expectError(get(`/api/v1/query_range?${qs({ ...range, step: "x" })}`), 400, "bad_data", `invalid parameter "step": cannot parse "x" to a valid duration`);
    for (const step of ["0", "-1", "0s"]) {
      await expectError(get(`/api/v1/query_range?${qs({ ...range, step })}`), 400, "bad_data", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`);
    }
    await expectError(
      get(`/api/v1/query_range?${qs({ ...range, start: "0", end: "11001", step: "1" })}`),
      400,
      "bad_data",
      "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
    );
    const edge = await get(`/api/v1/query_range?${qs({ ...range, query: "1", start: "0", end: "11000", step: "1" })}`);
    expect(edge.status, edge.text).toBe(200);
    await expectError(
      get(`/api/v1/query_range?${qs({ ...range, query: '"text"' })}`),
      400,
      "bad_data",
      `invalid parameter "query": invalid expression type "string" for range query, must be Scalar or instant Vector`,
    );
    await expectError(
      get(`/api/v1/query_range?${qs({ ...range, query: "up[5m]" })}`),
      400,
      "bad_data",
      `invalid parameter "query": invalid expression type "range vector" for range query, must be Scalar or instant Vector`,
    );
    await expectError(get(`/api/v1/query_range?${qs({ ...range, query: "up{" })}`), 400, "bad_data", /^invalid parameter "query": 1:\d+: parse error: /);
  });

  it("applies maxSeriesPerQuery to range queries too", async () => {
    await expectError(call(handleQueryRange, `/api/v1/query_range?${qs({ ...range, query: "http_requests_total" })}`, envWith(TENANT, { maxSeriesPerQuery: 1 })), 422, "execution", /maxSeriesPerQuery/);
  });
});

/** The label, series and metadata answers that must not change when data moves from heads to R2. */
async function catalogue(tenant: string) {
  const labels = await get("/api/v1/labels", tenant);
  const labelsUp = await get(`/api/v1/labels?${qs({ "match[]": "up" })}`, tenant);
  const labelsTwo = await postForm("/api/v1/labels", { "match[]": ["up", '{__name__="special",kind="nan"}'] }, tenant);
  const labelsOld = await get(`/api/v1/labels?${qs({ "match[]": '{job="old"}' })}`, tenant);
  const labelsOldRecent = await get(`/api/v1/labels?${qs({ "match[]": '{job="old"}', start: String(sec(T0 - 3600_000)) })}`, tenant);
  const jobs = await get("/api/v1/label/job/values", tenant);
  const jobsEscaped = await get("/prometheus/api/v1/label/U__j_6f_b/values", tenant);
  const jobsOfUp = await get(`/api/v1/label/job/values?${qs({ "match[]": ["up", "http_requests_total"] })}`, tenant);
  const names = await get("/api/v1/label/__name__/values", tenant);
  const series = await get(`/api/v1/series?${qs({ "match[]": ["up", 'http_requests_total{code="500"}'] })}`, tenant);
  const seriesPost = await postForm("/prometheus/api/v1/series", { "match[]": ["up", 'http_requests_total{code="500"}'] }, tenant);
  const seriesRecent = await get(`/api/v1/series?${qs({ "match[]": '{job=~".+"}', start: String(sec(T0 - 3600_000)), end: String(sec(NOW)) })}`, tenant);
  const seriesOld = await get(`/api/v1/series?${qs({ "match[]": '{job=~".+"}', end: String(sec(T0 - 3600_000)) })}`, tenant);
  return { labels, labelsUp, labelsTwo, labelsOld, labelsOldRecent, jobs, jobsEscaped, jobsOfUp, names, series, seriesPost, seriesRecent, seriesOld };
}

function checkCatalogue(c: Awaited<ReturnType<typeof catalogue>>) {
  for (const [name, r] of Object.entries(c)) expect(r.status, `${name}: ${r.text}`).toBe(200);
  expect(c.labels.json).toEqual({ status: "success", data: ["__name__", "code", "instance", "job", "kind"] });
  expect(c.labelsUp.json.data).toEqual(["__name__", "instance", "job"]);
  expect(c.labelsTwo.json.data).toEqual(["__name__", "instance", "job", "kind"]);
  expect(c.labelsOld.json.data).toEqual(["__name__", "job"]);
  // With matchers, only series with data in [start, end] count.
  expect(c.labelsOldRecent.json.data).toEqual([]);
  expect(c.jobs.json.data).toEqual(["api", "node", "old", "x"]);
  expect(c.jobsEscaped.json.data).toEqual(["api", "node", "old", "x"]);
  expect(c.jobsOfUp.json.data).toEqual(["api", "node"]);
  expect(c.names.json.data).toEqual(["http_requests_total", "old_metric", "special", "up"]);
  expect(c.series.text).toBe(
    '{"status":"success","data":[{"__name__":"http_requests_total","code":"500","instance":"b","job":"api"},{"__name__":"up","instance":"a","job":"node"}]}',
  );
  expect(c.seriesPost.text).toBe(c.series.text);
  const recent = c.seriesRecent.json.data as Record<string, string>[];
  expect(recent.length).toBe(3 + SPECIAL.length);
  expect(recent.some((s) => s.__name__ === "old_metric")).toBe(false);
  expect(c.seriesOld.json.data).toEqual([{ __name__: "old_metric", job: "old" }]);
}

describe("labels, label values and series", () => {
  it("answers from the heads", async () => {
    checkCatalogue(await catalogue(TENANT));
  });

  it("answers the same after a flush (heads and R2 overlap) and after a shutdown (R2 alone)", async () => {
    const tenant = "promapi-flushed";
    expect((await pushV1(DATA, { tenant, metadata: METADATA })).status).toBe(204);
    const before = await catalogue(tenant);
    checkCatalogue(before);
    const query = `/api/v1/query_range?${qs({ query: '{job=~".+"}', start: String(sec(T0)), end: String(sec(LAST)), step: "30" })}`;
    const rangeBefore = await get(query, tenant);
    expect(rangeBefore.status, rangeBefore.text).toBe(200);

    const flushed = await SELF.fetch("http://ingester/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
    expect(flushed.status).toBe(204);
    const blocks = (await (await SELF.fetch("http://ingester/api/v1/blocks", { headers: { "X-Scope-OrgID": tenant } })).json()) as { data: { blocks: unknown[] } };
    expect(blocks.data.blocks.length).toBeGreaterThan(0);
    checkCatalogue(await catalogue(tenant));
    expect((await get(query, tenant)).text).toBe(rangeBefore.text);

    // Shutdown flushes and drops everything from memory: now only R2 answers.
    expect((await SELF.fetch("http://ingester/shutdown", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    const status = (await (await SELF.fetch("http://ingester/api/v1/status/ingesters", { headers: { "X-Scope-OrgID": tenant } })).json()) as { data: { shards: { series: number }[] } };
    expect(status.data.shards.every((s) => s.series === 0)).toBe(true);
    checkCatalogue(await catalogue(tenant));
    expect((await get(query, tenant)).text).toBe(rangeBefore.text);
    expect((await SELF.fetch("http://ingester/shutdown", { method: "DELETE", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
  });

  it("cuts at limit with Prometheus's warning", async () => {
    const labels = await get(`/api/v1/labels?${qs({ limit: "2" })}`);
    expect(labels.json).toEqual({ status: "success", data: ["__name__", "code"], warnings: ["results truncated due to limit"] });
    const exact = await get(`/api/v1/labels?${qs({ limit: "5" })}`);
    expect(exact.json).toEqual({ status: "success", data: ["__name__", "code", "instance", "job", "kind"] });
    const values = await get(`/api/v1/label/kind/values?${qs({ limit: "3" })}`);
    expect(values.json).toEqual({ status: "success", data: ["big", "frac", "huge"], warnings: ["results truncated due to limit"] });
    const series = await get(`/api/v1/series?${qs({ "match[]": "special", limit: "2" })}`);
    expect(series.json).toEqual({
      status: "success",
      data: [
        { __name__: "special", job: "x", kind: "big" },
        { __name__: "special", job: "x", kind: "frac" },
      ],
      warnings: ["results truncated due to limit"],
    });
  });

  it("answers unknown names and UTF-8 names with an empty list", async () => {
    expect((await get("/api/v1/label/nope/values")).text).toBe('{"status":"success","data":[]}');
    expect((await get("/api/v1/label/U__http_2e_method/values")).text).toBe('{"status":"success","data":[]}');
    expect((await get(`/api/v1/series?${qs({ "match[]": "nope" })}`)).text).toBe('{"status":"success","data":[]}');
    expect((await get("/api/v1/labels", "promapi-empty")).text).toBe('{"status":"success","data":[]}');
  });

  it("refuses bad requests with Prometheus's messages", async () => {
    await expectError(get("/api/v1/series"), 400, "bad_data", "no match[] parameter provided");
    await expectError(postForm("/api/v1/series", {}), 400, "bad_data", "no match[] parameter provided");
    await expectError(get(`/api/v1/series?${qs({ "match[]": "up{" })}`), 400, "bad_data", /^invalid parameter "match\[\]": 1:\d+: parse error: /);
    await expectError(get(`/api/v1/series?${qs({ "match[]": '{job=~".*"}' })}`), 400, "bad_data", /non-empty matcher/);
    await expectError(get(`/api/v1/labels?${qs({ "match[]": '{job=~".*"}' })}`), 400, "bad_data", /non-empty matcher/);
    await expectError(get(`/api/v1/labels?${qs({ "match[]": "up{" })}`), 400, "bad_data", /^1:\d+: parse error: /);
    await expectError(get(`/api/v1/label/job/values?${qs({ "match[]": "up{" })}`), 400, "bad_data", /^1:\d+: parse error: /);
    await expectError(get(`/api/v1/series?${qs({ "match[]": "up", start: "x" })}`), 400, "bad_data", `invalid parameter "start": Invalid time value for 'start': cannot parse "x" to a valid timestamp`);
    await expectError(get(`/api/v1/labels?${qs({ end: "x" })}`), 400, "bad_data", `invalid parameter "end": Invalid time value for 'end': cannot parse "x" to a valid timestamp`);
    await expectError(get(`/api/v1/label/job/values?${qs({ limit: "-5" })}`), 400, "bad_data", `invalid parameter "limit": limit must be non-negative`);
    await expectError(get("/api/v1/label/U__bad%ff/values"), 400, "bad_data", /^invalid label name: /);
    const post = await SELF.fetch("http://ingester/api/v1/label/job/values", { method: "POST" });
    expect(post.status).toBe(405);
  });

  it("answers 422 when /series would return more than maxSeriesPerQuery, unless limit cuts it", async () => {
    const e = envWith(TENANT, { maxSeriesPerQuery: 3 });
    await expectError(call(handleSeries, `/api/v1/series?${qs({ "match[]": "special" })}`, e), 422, "execution", /maxSeriesPerQuery/);
    const cut = await call(handleSeries, `/api/v1/series?${qs({ "match[]": "special", limit: "2" })}`, e);
    expect(cut.status, cut.text).toBe(200);
    expect(cut.json.warnings).toEqual(["results truncated due to limit"]);
  });
});

describe("GET /api/v1/metadata", () => {
  it("answers the ingesters' metadata by metric", async () => {
    const res = await get("/api/v1/metadata");
    expect(res.status, res.text).toBe(200);
    expect(res.text).toBe(
      '{"status":"success","data":{"http_requests_total":[{"type":"counter","help":"Requests \\u003cserved\\u003e \\u0026 counted.","unit":""}],"up":[{"type":"gauge","help":"Whether the target is up.","unit":""}]}}',
    );
    const one = await get(`/prometheus/api/v1/metadata?${qs({ metric: "up" })}`);
    expect(one.json.data).toEqual({ up: [{ type: "gauge", help: "Whether the target is up.", unit: "" }] });
    expect((await get(`/api/v1/metadata?${qs({ limit: "1" })}`)).json.data).toEqual({ http_requests_total: [{ type: "counter", help: "Requests <served> & counted.", unit: "" }] });
    expect((await get(`/api/v1/metadata?${qs({ limit: "0" })}`)).json.data).toEqual({});
    expect((await get(`/api/v1/metadata?${qs({ metric: "nope" })}`)).json.data).toEqual({});
    await expectError(get(`/api/v1/metadata?${qs({ limit: "x" })}`), 400, "bad_data", "limit must be a number");
    await expectError(get(`/api/v1/metadata?${qs({ limit_per_metric: "x" })}`), 400, "bad_data", "limit_per_metric must be a number");
  });
});

describe("status, exemplars and formatting", () => {
  it("GET /api/v1/status/buildinfo answers Prometheus's shape", async () => {
    for (const path of ["/api/v1/status/buildinfo", "/prometheus/api/v1/status/buildinfo"]) {
      const res = await get(path);
      expect(res.status).toBe(200);
      const data = res.json.data as Record<string, string>;
      expect(Object.keys(data)).toEqual(["version", "revision", "branch", "buildUser", "buildDate", "goVersion"]);
      expect(data.version).toMatch(/^3\./);
    }
  });

  it("GET|POST /api/v1/query_exemplars answers [] (not stored yet), 204 without selectors", async () => {
    expect((await get(`/api/v1/query_exemplars?${qs({ query: "up" })}`)).text).toBe('{"status":"success","data":[]}');
    expect((await postForm("/prometheus/api/v1/query_exemplars", { query: "up", start: "0", end: "100" })).text).toBe('{"status":"success","data":[]}');
    const none = await get(`/api/v1/query_exemplars?${qs({ query: "1" })}`);
    expect(none.status).toBe(204);
    await expectError(get(`/api/v1/query_exemplars?${qs({ query: "up", start: "10", end: "5" })}`), 400, "bad_data", "end timestamp must not be before start timestamp");
    await expectError(get(`/api/v1/query_exemplars?${qs({ query: "up{" })}`), 400, "bad_data", /^1:\d+: parse error: /);
  });

  it("GET|POST /api/v1/format_query answers the parsed expression printed back", async () => {
    expect((await get(`/api/v1/format_query?${qs({ query: "foo/bar" })}`)).json).toEqual({ status: "success", data: "foo / bar" });
    for (const q of ['up{job="node"}', "http_requests_total[5m]", "42"]) {
      const want = formatExpr(parseExpr(q));
      expect((await get(`/api/v1/format_query?${qs({ query: q })}`)).json).toEqual({ status: "success", data: want });
      expect((await postForm("/prometheus/api/v1/format_query", { query: q })).json).toEqual({ status: "success", data: want });
    }
    await expectError(get(`/api/v1/format_query?${qs({ query: "up{" })}`), 400, "bad_data", /^invalid parameter "query": 1:\d+: parse error: /);
  });
});
