// PromQL function implementations against hand-computed expectations (Prometheus 3 semantics).

import { describe, expect, it } from "vitest";
import { FUNCTIONS } from "../../src/querier/promql/functions";
import { expandTemplate, naturalLess, parseGoFloat } from "../../src/querier/promql/functions/instant";
import { formatGoG } from "../../src/querier/promql/functions/range";
import { goQuote } from "../../src/querier/promql/format";
import type { FunctionArg, FunctionContext, WindowSeries } from "../../src/querier/promql/functions/types";
import { Annotations, PromQLExecError, type Sample, type Vector } from "../../src/querier/promql/value";
import type { Expr } from "../../src/querier/promql/ast";
import { MatchType } from "../../src/proto/types";

function win(labels: string[], points: [number, number][]): WindowSeries {
  return {
    labels,
    timestamps: Float64Array.from(points.map((p) => p[0])),
    values: Float64Array.from(points.map((p) => p[1])),
  };
}

function mkCtx(ts: number, rangeMs = 0, extra: Partial<FunctionContext> = {}): FunctionContext {
  return { ts, rangeStart: ts - rangeMs, rangeEnd: ts, annotations: new Annotations(), args: [], ...extra };
}

function call(name: string, vals: FunctionArg[], ctx: FunctionContext): Sample[] {
  const def = FUNCTIONS[name];
  if (!def) throw new Error(`no function ${name}`);
  return def.impl(vals, ctx);
}

/** The single result value of a one-series call. */
function one(name: string, vals: FunctionArg[], ctx: FunctionContext): number {
  const out = call(name, vals, ctx);
  expect(out).toHaveLength(1);
  return out[0].v;
}

function vec(...samples: [string[], number][]): Vector {
  return samples.map(([labels, v]) => ({ labels, t: 1000, v }));
}

const S = 1000;
const counter = ["__name__", "http_requests_total", "job", "a"];

describe("rate / increase / delta (extrapolatedRate)", () => {
  it("extrapolates to the start when the first point is within 1.1 intervals", () => {
    // Window (0, 60s], points every 15s from 15s: 15s to the start equals the average interval.
    const w = win(counter, [[15 * S, 1], [30 * S, 2], [45 * S, 3], [60 * S, 4]]);
    const ctx = mkCtx(60 * S, 60 * S);
    // increase = 3 * (45 + 15 + 0) / 45 = 4
    expect(one("increase", [[w]], ctx)).toBeCloseTo(4, 12);
    expect(one("rate", [[w]], ctx)).toBeCloseTo(4 / 60, 12);
    const out = call("rate", [[w]], ctx);
    expect(out[0].labels).toEqual(["job", "a"]);
    expect(out[0].t).toBe(60 * S);
    expect(ctx.annotations.infos.size).toBe(0);
  });

  it("does not extrapolate a counter below zero", () => {
    // 5 at 15s rising by 10 per 15s: zero point 7.5s before the first point, closer than 15s.
    const w = win(counter, [[15 * S, 5], [30 * S, 15], [45 * S, 25], [60 * S, 35]]);
    expect(one("increase", [[w]], mkCtx(60 * S, 60 * S))).toBeCloseTo(35, 12);
    // delta is not a counter function: extrapolates the whole 15s.
    expect(one("delta", [[w]], mkCtx(60 * S, 60 * S))).toBeCloseTo(40, 12);
  });

  it("adds the value before each counter reset", () => {
    // 1, 3, 1 (reset), 2: increase 1 + 3 = 4; zero point at 45 * 1/4 = 11.25s before the start.
    const w = win(counter, [[15 * S, 1], [30 * S, 3], [45 * S, 1], [60 * S, 2]]);
    expect(one("increase", [[w]], mkCtx(60 * S, 60 * S))).toBeCloseTo(5, 12);
    expect(one("resets", [[w]], mkCtx(60 * S, 60 * S))).toBe(1);
  });

  it("extrapolates half an interval when the first point is far from the start", () => {
    // Points at 40, 50, 60s: 40s to the start >= 1.1 * 10s, so only 5s of extrapolation.
    const w = win(["__name__", "g"], [[40 * S, 0], [50 * S, 10], [60 * S, 20]]);
    expect(one("delta", [[w]], mkCtx(60 * S, 60 * S))).toBeCloseTo(25, 12);
    // As a counter it starts at zero at the first point: no extrapolation at all.
    expect(one("increase", [[w]], mkCtx(60 * S, 60 * S))).toBeCloseTo(20, 12);
  });

  it("extrapolates half an interval when the last point is far from the end", () => {
    const w = win(["__name__", "g"], [[10 * S, 0], [20 * S, 10], [30 * S, 20]]);
    // 10s to the start (< 11s) fully, 30s to the end only 5s: 20 * (20 + 10 + 5) / 20.
    expect(one("delta", [[w]], mkCtx(60 * S, 60 * S))).toBeCloseTo(35, 12);
  });

  it("uses the window bounds, not ts, after offset", () => {
    // rate(x[1m] offset 1m) at ts = 120s: window (0, 60s].
    const w = win(counter, [[15 * S, 1], [30 * S, 2], [45 * S, 3], [60 * S, 4]]);
    const ctx: FunctionContext = { ...mkCtx(120 * S), rangeStart: 0, rangeEnd: 60 * S };
    const out = call("rate", [[w]], ctx);
    expect(out[0].v).toBeCloseTo(4 / 60, 12);
    expect(out[0].t).toBe(120 * S);
  });

  it("needs two points", () => {
    const w = win(counter, [[15 * S, 1]]);
    expect(call("rate", [[w]], mkCtx(60 * S, 60 * S))).toEqual([]);
    expect(call("delta", [[w]], mkCtx(60 * S, 60 * S))).toEqual([]);
  });

  it("leaves the not-a-counter info to the engine (which adds the argument's position)", () => {
    const ctx = mkCtx(60 * S, 60 * S);
    const w = win(["__name__", "temperature", "job", "a"], [[30 * S, 1], [60 * S, 2]]);
    expect(call("rate", [[w, win(counter, [[30 * S, 1], [60 * S, 2]])]], ctx)).toHaveLength(2);
    call("increase", [[w]], ctx);
    call("delta", [[w]], ctx);
    expect(ctx.annotations.infos.size).toBe(0);
  });

  it("anchored: boundary values without extrapolation", () => {
    // Point at 0 (at the range start) anchors the left value; reset inside the range.
    const w = win(counter, [[0, 10], [20 * S, 15], [40 * S, 3], [60 * S, 8]]);
    const ctx = mkCtx(60 * S, 60 * S, { anchored: true });
    // right - left = 8 - 10 = -2, plus 15 before the reset = 13.
    expect(one("increase", [[w]], ctx)).toBe(13);
    expect(one("rate", [[w]], ctx)).toBeCloseTo(13 / 60, 12);
    expect(one("delta", [[w]], ctx)).toBe(-2);
  });

  it("smoothed: interpolates at both bounds", () => {
    const w = win(counter, [[-10 * S, 0], [10 * S, 20], [50 * S, 60], [70 * S, 80]]);
    const ctx = mkCtx(60 * S, 60 * S, { smoothed: true });
    // left = value at 0s = 10, right = value at 60s = 70.
    expect(one("increase", [[w]], ctx)).toBeCloseTo(60, 12);
  });
});

describe("irate / idelta / deriv / predict_linear", () => {
  it("irate takes a drop as a reset", () => {
    const w = win(counter, [[10 * S, 5], [20 * S, 10], [30 * S, 2]]);
    expect(one("irate", [[w]], mkCtx(30 * S, 60 * S))).toBeCloseTo(0.2, 12);
    expect(one("idelta", [[w]], mkCtx(30 * S, 60 * S))).toBe(-8);
    const up = win(counter, [[10 * S, 5], [20 * S, 10], [30 * S, 40]]);
    expect(one("irate", [[up]], mkCtx(30 * S, 60 * S))).toBe(3);
  });

  it("predict_linear fits a line through ctx.ts", () => {
    const w = win(["__name__", "g"], [[0, 0], [10 * S, 10], [20 * S, 20], [30 * S, 30]]);
    const ctx = mkCtx(40 * S, 60 * S);
    expect(one("predict_linear", [[w], 0], ctx)).toBeCloseTo(40, 12);
    expect(one("predict_linear", [[w], 60], ctx)).toBeCloseTo(100, 12);
    expect(one("deriv", [[w]], ctx)).toBeCloseTo(1, 12);
  });

  it("a constant series has slope 0 exactly, NaN when infinite", () => {
    const w = win(["__name__", "g"], [[0, 3], [10 * S, 3], [20 * S, 3]]);
    expect(one("deriv", [[w]], mkCtx(20 * S, 60 * S))).toBe(0);
    expect(one("predict_linear", [[w], 100], mkCtx(20 * S, 60 * S))).toBe(3);
    const inf = win(["__name__", "g"], [[0, Infinity], [10 * S, Infinity]]);
    expect(one("deriv", [[inf]], mkCtx(20 * S, 60 * S))).toBeNaN();
  });
});

describe("<aggregation>_over_time", () => {
  const g = ["__name__", "g", "job", "a"];
  const ctx = () => mkCtx(100 * S, 100 * S);

  it("quantile_over_time interpolates between ranks", () => {
    const w = win(g, [[1 * S, 4], [2 * S, 1], [3 * S, 3], [4 * S, 2]]);
    expect(one("quantile_over_time", [0.5, [w]], ctx())).toBe(2.5);
    expect(one("quantile_over_time", [0.25, [w]], ctx())).toBe(1.75);
    expect(one("quantile_over_time", [1, [w]], ctx())).toBe(4);
    // The window itself is not reordered.
    expect(Array.from(w.values)).toEqual([4, 1, 3, 2]);
  });

  it("quantile_over_time warns for φ outside [0, 1]", () => {
    const w = win(g, [[1 * S, 1], [2 * S, 2]]);
    const c = ctx();
    expect(one("quantile_over_time", [-1, [w]], c)).toBe(-Infinity);
    expect(one("quantile_over_time", [1.5, [w]], c)).toBe(Infinity);
    expect(one("quantile_over_time", [NaN, [w]], c)).toBeNaN();
    expect([...c.annotations.warnings].sort()).toEqual([
      "PromQL warning: quantile value should be between 0 and 1, got -1",
      "PromQL warning: quantile value should be between 0 and 1, got 1.5",
      "PromQL warning: quantile value should be between 0 and 1, got NaN",
    ]);
  });

  it("quantile_over_time sorts NaN first", () => {
    const w = win(g, [[1 * S, 2], [2 * S, NaN], [3 * S, 1]]);
    expect(one("quantile_over_time", [0, [w]], ctx())).toBeNaN();
    expect(one("quantile_over_time", [1, [w]], ctx())).toBe(2);
  });

  it("sum, avg, count, min, max, stddev, stdvar, mad", () => {
    const w = win(g, [2, 4, 4, 4, 5, 5, 7, 9].map((v, i): [number, number] => [(i + 1) * S, v]));
    expect(one("sum_over_time", [[w]], ctx())).toBe(40);
    expect(one("avg_over_time", [[w]], ctx())).toBe(5);
    expect(one("count_over_time", [[w]], ctx())).toBe(8);
    expect(one("min_over_time", [[w]], ctx())).toBe(2);
    expect(one("max_over_time", [[w]], ctx())).toBe(9);
    expect(one("stddev_over_time", [[w]], ctx())).toBe(2);
    expect(one("stdvar_over_time", [[w]], ctx())).toBe(4);
    // Median 4.5; deviations 2.5 .5 .5 .5 .5 .5 2.5 4.5 -> median 0.5.
    expect(one("mad_over_time", [[w]], ctx())).toBe(0.5);
  });

  it("mad_over_time is NaN when the window holds a NaN", () => {
    expect(one("mad_over_time", [[win([], [[0, 1], [10 * S, 2], [20 * S, NaN], [30 * S, 4]])]], mkCtx(30 * S, 40 * S))).toBeNaN();
  });

  it("sum_over_time compensates (Kahan-Neumaier)", () => {
    const w = win(g, [[1 * S, 1], [2 * S, 1e100], [3 * S, 1], [4 * S, -1e100]]);
    expect(one("sum_over_time", [[w]], ctx())).toBe(2);
  });

  it("avg_over_time switches to an incremental mean on overflow", () => {
    const w = win(g, [[1 * S, Number.MAX_VALUE], [2 * S, Number.MAX_VALUE]]);
    expect(one("avg_over_time", [[w]], ctx())).toBe(Number.MAX_VALUE);
  });

  it("min/max skip a leading NaN", () => {
    const w = win(g, [[1 * S, NaN], [2 * S, 3], [3 * S, 1]]);
    expect(one("max_over_time", [[w]], ctx())).toBe(3);
    expect(one("min_over_time", [[w]], ctx())).toBe(1);
  });

  it("ts_of_* report seconds; the last point holding the extreme", () => {
    const w = win(g, [[1 * S, 5], [2 * S, 1], [3 * S, 5], [4 * S, 1]]);
    expect(one("ts_of_max_over_time", [[w]], ctx())).toBe(3);
    expect(one("ts_of_min_over_time", [[w]], ctx())).toBe(4);
    expect(one("ts_of_first_over_time", [[w]], ctx())).toBe(1);
    expect(one("ts_of_last_over_time", [[w]], ctx())).toBe(4);
  });

  it("last/first_over_time keep __name__, the others drop it", () => {
    const w = win(g, [[1 * S, 5], [2 * S, 6]]);
    expect(call("last_over_time", [[w]], ctx())[0]).toEqual({ labels: g, t: 100 * S, v: 6 });
    expect(call("first_over_time", [[w]], ctx())[0].v).toBe(5);
    expect(call("present_over_time", [[w]], ctx())[0]).toEqual({ labels: ["job", "a"], t: 100 * S, v: 1 });
    expect(FUNCTIONS.last_over_time.keepsMetricName).toBe(true);
    expect(FUNCTIONS.first_over_time.keepsMetricName).toBe(true);
    expect(FUNCTIONS.max_over_time.keepsMetricName).toBeFalsy();
  });

  it("changes and resets", () => {
    const w = win(g, [1, 1, 2, 1, NaN, NaN, 3].map((v, i): [number, number] => [(i + 1) * S, v]));
    expect(one("changes", [[w]], ctx())).toBe(4);
    expect(one("resets", [[w]], ctx())).toBe(1);
  });

  it("absent_over_time", () => {
    const sel: Expr = {
      type: "MatrixSelector",
      range: 60 * S,
      vectorSelector: {
        type: "VectorSelector",
        name: "nonexistent",
        matchers: [
          { type: MatchType.EQ, name: "__name__", value: "nonexistent" },
          { type: MatchType.EQ, name: "job", value: "myjob" },
          { type: MatchType.RE, name: "instance", value: ".*" },
        ],
        offset: 0,
        at: null,
      },
    };
    const c = mkCtx(100 * S, 60 * S, { args: [sel] });
    expect(call("absent_over_time", [[]], c)).toEqual([{ labels: ["job", "myjob"], t: 100 * S, v: 1 }]);
    expect(call("absent_over_time", [[win(g, [[S, 1]])]], c)).toEqual([]);
  });

  it("double_exponential_smoothing", () => {
    // sf = tf = 0.5 over 1, 2, 3: s = 2 then 3 (a straight line is followed exactly).
    const w = win(g, [[1 * S, 1], [2 * S, 2], [3 * S, 3]]);
    expect(one("double_exponential_smoothing", [[w], 0.5, 0.5], ctx())).toBe(3);
    expect(() => call("double_exponential_smoothing", [[w], 1, 0.5], ctx())).toThrow(
      new PromQLExecError("invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"),
    );
  });
});

describe("histogram_quantile", () => {
  const b = (le: string, v: number, extra: string[] = []): [string[], number] => [
    ["__name__", "rq_bucket", ...extra, "job", "a", "le", le],
    v,
  ];
  const buckets = vec(b("0.1", 10), b("0.5", 20), b("1", 30), b("+Inf", 40));

  it("interpolates linearly within the bucket", () => {
    const ctx = mkCtx(1000);
    expect(one("histogram_quantile", [0.5, buckets], ctx)).toBeCloseTo(0.5, 12);
    expect(one("histogram_quantile", [0.6, buckets], ctx)).toBeCloseTo(0.7, 12);
    // The lowest bucket starts at 0.
    expect(one("histogram_quantile", [0.25, buckets], ctx)).toBeCloseTo(0.1, 12);
    // In the +Inf bucket: the second highest bound.
    expect(one("histogram_quantile", [0.9, buckets], ctx)).toBe(1);
    expect(call("histogram_quantile", [0.5, buckets], ctx)[0].labels).toEqual(["job", "a"]);
    expect(ctx.annotations.warnings.size + ctx.annotations.infos.size).toBe(0);
  });

  it("does not depend on input order and merges equal bounds", () => {
    const shuffled = vec(b("+Inf", 40), b("1", 30), b("0.1", 10), b("0.5", 20));
    expect(one("histogram_quantile", [0.6, shuffled], mkCtx(1000))).toBeCloseTo(0.7, 12);
  });

  it("returns the bound of a non-positive lowest bucket", () => {
    const neg = vec(b("-1", 10), b("0", 20), b("+Inf", 20));
    expect(one("histogram_quantile", [0.25, neg], mkCtx(1000))).toBe(-1);
    expect(one("histogram_quantile", [0.75, neg], mkCtx(1000))).toBeCloseTo(-0.5, 12);
  });

  it("forces monotonicity with an info annotation", () => {
    const ctx = mkCtx(1000);
    const bad = vec(b("0.1", 10), b("0.5", 5), b("1", 30), b("+Inf", 40));
    // 0.5's count becomes 10: rank 20 falls in (0.5, 1] with 20 observations -> 0.75.
    expect(one("histogram_quantile", [0.5, bad], ctx)).toBeCloseTo(0.75, 12);
    expect([...ctx.annotations.infos]).toEqual([
      "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)",
    ]);
  });

  it("ends its annotations with the position of the argument they are about", () => {
    const pos = (line: number, column: number): Expr => ({ type: "VectorSelector", name: "x", matchers: [], offset: 0, at: null, pos: { line, column } });
    const ctx = mkCtx(1000, 0, { args: [{ type: "NumberLiteral", val: 2, pos: { line: 1, column: 20 } }, pos(1, 25)] });
    const input = vec(b("0.1", 10), b("0.5", 5), b("+Inf", 40), [["__name__", "x", "le", "oops"], 1]);
    call("histogram_quantile", [2, input], ctx);
    call("histogram_quantile", [0.5, input], ctx);
    expect([...ctx.annotations.warnings].sort()).toEqual([
      'PromQL warning: bucket label "le" is missing or has a malformed value of "oops" for metric name "x" (1:25)',
      "PromQL warning: quantile value should be between 0 and 1, got 2 (1:20)",
    ]);
    expect([...ctx.annotations.infos]).toEqual([
      "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) (1:25)",
    ]);
  });

  it("ignores tiny float noise silently", () => {
    const ctx = mkCtx(1000);
    const noisy = vec(b("0.1", 10), b("0.5", 20), b("1", 20 - 1e-14), b("+Inf", 40));
    expect(one("histogram_quantile", [0.5, noisy], ctx)).toBeCloseTo(0.5, 12);
    expect(ctx.annotations.infos.size).toBe(0);
  });

  it("NaN without +Inf bucket, with one bucket or no observations", () => {
    const ctx = mkCtx(1000);
    expect(one("histogram_quantile", [0.5, vec(b("0.1", 10), b("1", 20))], ctx)).toBeNaN();
    expect(one("histogram_quantile", [0.5, vec(b("+Inf", 10))], ctx)).toBeNaN();
    expect(one("histogram_quantile", [0.5, vec(b("1", 0), b("+Inf", 0))], ctx)).toBeNaN();
  });

  it("φ out of range: ±Inf and a warning", () => {
    const ctx = mkCtx(1000);
    expect(one("histogram_quantile", [1.5, buckets], ctx)).toBe(Infinity);
    expect(one("histogram_quantile", [-0.5, buckets], ctx)).toBe(-Infinity);
    expect([...ctx.annotations.warnings].sort()).toEqual([
      "PromQL warning: quantile value should be between 0 and 1, got -0.5",
      "PromQL warning: quantile value should be between 0 and 1, got 1.5",
    ]);
  });

  it("groups by the other labels and warns on a bad le", () => {
    const ctx = mkCtx(1000);
    const two = vec(
      ...buckets.map((s): [string[], number] => [s.labels, s.v]),
      b("1", 5, ["instance", "x"]),
      b("+Inf", 10, ["instance", "x"]),
      b("abc", 1),
    );
    const out = call("histogram_quantile", [0.5, two], ctx);
    expect(out.map((s) => [s.labels, s.v])).toEqual([
      [["job", "a"], expect.closeTo(0.5, 12)],
      [["instance", "x", "job", "a"], 1],
    ]);
    expect([...ctx.annotations.warnings]).toEqual([
      'PromQL warning: bucket label "le" is missing or has a malformed value of "abc" for metric name "rq_bucket"',
    ]);
  });

  it("histogram_fraction over classic buckets", () => {
    const ctx = mkCtx(1000);
    expect(one("histogram_fraction", [0, 0.5, buckets], ctx)).toBe(0.5);
    expect(one("histogram_fraction", [0.3, Infinity, buckets], ctx)).toBeCloseTo(0.625, 12);
    expect(one("histogram_fraction", [-Infinity, 1, buckets], ctx)).toBe(0.75);
    expect(one("histogram_fraction", [1, 0.5, buckets], ctx)).toBe(0);
  });

  it("histogram_quantiles labels each quantile", () => {
    const out = call("histogram_quantiles", [buckets, "quantile", 0.5, 1], mkCtx(1000));
    expect(out.map((s) => [s.labels, s.v])).toEqual([
      [["job", "a", "quantile", "0.5"], expect.closeTo(0.5, 12)],
      [["job", "a", "quantile", "1.0"], 1],
    ]);
  });
});

describe("label_replace / label_join", () => {
  const up = vec([["__name__", "up", "job", "api-server", "service", "a:c"], 1]);

  it("replaces with numbered and named groups", () => {
    const out = call("label_replace", [up, "foo", "$1", "service", "(.*):.*"], mkCtx(1000));
    expect(out[0].labels).toEqual(["__name__", "up", "foo", "a", "job", "api-server", "service", "a:c"]);
    const named = call("label_replace", [up, "foo", "$name-${version}", "service", "(?P<name>.*):(?P<version>.*)"], mkCtx(1000));
    expect(named[0].labels).toContain("a-c");
  });

  it("leaves the series alone when the regex does not match (it is anchored)", () => {
    const out = call("label_replace", [up, "foo", "$1", "service", "a"], mkCtx(1000));
    expect(out[0].labels).toEqual(up[0].labels);
  });

  it("an empty result removes the label; a missing source label is the empty string", () => {
    const out = call("label_replace", [up, "service", "", "job", ".*"], mkCtx(1000));
    expect(out[0].labels).toEqual(["__name__", "up", "job", "api-server"]);
    const out2 = call("label_replace", [up, "new", "x", "missing", ""], mkCtx(1000));
    expect(out2[0].labels).toContain("new");
  });

  it("expands templates as Go does", () => {
    const m = /^(?<a>x)(y)$/u.exec("xy") as RegExpExecArray;
    expect(expandTemplate("$1", m)).toBe("x");
    expect(expandTemplate("$1x", m)).toBe(""); // The group "1x" does not exist.
    expect(expandTemplate("${1}x", m)).toBe("xx");
    expect(expandTemplate("$2$a$$", m)).toBe("yx$");
    expect(expandTemplate("${1", m)).toBe("${1");
    expect(expandTemplate("$ $-", m)).toBe("$ $-");
    expect(expandTemplate("$9", m)).toBe("");
  });

  it("errors like Prometheus", () => {
    expect(() => call("label_replace", [up, "foo", "$1", "service", "(.*"], mkCtx(1000))).toThrow(
      "invalid regular expression in label_replace(): (.*",
    );
    expect(() => call("label_replace", [up, "", "$1", "service", "(.*)"], mkCtx(1000))).toThrow(
      "invalid destination label name in label_replace(): ",
    );
    expect(() => call("label_join", [up, "foo", ",", ""], mkCtx(1000))).toThrow(
      "invalid source label name in label_join(): ",
    );
  });

  it("refuses a label name from a literal that was not valid UTF-8 (\"\\xff\"), as Go does", () => {
    const lit = (val: string, invalidUTF8?: boolean): Expr => (invalidUTF8 ? { type: "StringLiteral", val, invalidUTF8 } : { type: "StringLiteral", val });
    const args = (dst: Expr): Expr[] => [{ type: "VectorSelector", name: "up", matchers: [], offset: 0, at: null }, dst, lit(""), lit("service"), lit("(.*)")];
    expect(() => call("label_replace", [up, "\ufffd", "", "service", "(.*)"], mkCtx(1000, 0, { args: args(lit("\ufffd", true)) }))).toThrow(
      "invalid destination label name in label_replace(): \ufffd",
    );
    expect(() =>
      call("label_join", [up, "\ufffd", ",", "service"], mkCtx(1000, 0, { args: args({ type: "ParenExpr", expr: lit("\ufffd", true) }) })),
    ).toThrow("invalid destination label name in label_join(): \ufffd");
    // A real U+FFFD is valid UTF-8.
    expect(call("label_replace", [up, "\ufffd", "x", "service", "(.*)"], mkCtx(1000, 0, { args: args(lit("\ufffd")) }))).toHaveLength(up.length);
  });

  it("accepts RE2-only syntax", () => {
    const v = vec([["path", "/a/b{1}"], 1]);
    const out = call("label_replace", [v, "x", "$1", "path", "\\Q/a/\\E([[:alpha:]])\\{1}"], mkCtx(1000));
    expect(out[0].labels).toEqual(["path", "/a/b{1}", "x", "b"]);
    // (?s) semantics: '.' matches a newline.
    const nl = call("label_replace", [vec([["l", "a\nb"], 1]), "x", "$1", "l", "a.(b)"], mkCtx(1000));
    expect(nl[0].labels).toEqual(["l", "a\nb", "x", "b"]);
    const ci = call("label_replace", [vec([["l", "ABC"], 1]), "x", "ok", "l", "(?i)abc"], mkCtx(1000));
    expect(ci[0].labels).toEqual(["l", "ABC", "x", "ok"]);
  });

  it("label_join joins in argument order", () => {
    const v = vec([["__name__", "up", "src1", "a", "src2", "b", "src3", "c"], 1]);
    const out = call("label_join", [v, "foo", ",", "src1", "src2", "src3"], mkCtx(1000));
    expect(out[0].labels).toEqual(["__name__", "up", "foo", "a,b,c", "src1", "a", "src2", "b", "src3", "c"]);
    const missing = call("label_join", [v, "foo", "-", "src3", "nope", "src1"], mkCtx(1000));
    expect(missing[0].labels).toContain("c--a");
    expect(FUNCTIONS.label_join.keepsMetricName).toBe(true);
  });
});

describe("instant functions", () => {
  it("round: ties up, to_nearest", () => {
    const v = vec([["__name__", "x"], 2.5], [["a", "1"], -2.5], [["a", "2"], 1.234]);
    expect(call("round", [v], mkCtx(1000)).map((s) => s.v)).toEqual([3, -2, 1]);
    expect(call("round", [v, 0.1], mkCtx(1000)).map((s) => s.v)).toEqual([2.5, -2.5, 1.2]);
    expect(call("round", [vec([[], 5]), 2], mkCtx(1000))[0].v).toBe(6);
    expect(call("round", [v], mkCtx(1000))[0].labels).toEqual([]);
  });

  it("clamp", () => {
    const v = vec([["__name__", "x", "a", "1"], -5], [["a", "2"], 5], [["a", "3"], 50]);
    expect(call("clamp", [v, 0, 10], mkCtx(1000)).map((s) => s.v)).toEqual([0, 5, 10]);
    expect(call("clamp", [v, 10, 0], mkCtx(1000))).toEqual([]);
    expect(call("clamp_min", [v, 0], mkCtx(1000)).map((s) => s.v)).toEqual([0, 5, 50]);
    expect(call("clamp_max", [v, 0], mkCtx(1000)).map((s) => s.v)).toEqual([-5, 0, 0]);
    expect(call("clamp", [v, NaN, 10], mkCtx(1000)).map((s) => s.v)).toEqual([NaN, NaN, NaN]);
  });

  it("math", () => {
    const v = vec([["__name__", "x"], 8]);
    expect(one("log2", [v], mkCtx(1000))).toBe(3);
    expect(one("log2", [vec([[], 2 ** -1074])], mkCtx(1000))).toBe(-1074);
    expect(one("log10", [vec([[], 1000])], mkCtx(1000))).toBeCloseTo(3, 14);
    expect(one("sgn", [vec([[], -3])], mkCtx(1000))).toBe(-1);
    expect(one("deg", [vec([[], Math.PI])], mkCtx(1000))).toBe(180);
    expect(one("sqrt", [v], mkCtx(1000))).toBeCloseTo(Math.SQRT2 * 2, 14);
  });

  it("date functions, UTC, with and without argument", () => {
    const ts = 1700000000 * S; // 2023-11-14T22:13:20Z, a Tuesday.
    const expected: Record<string, number> = {
      minute: 13,
      hour: 22,
      day_of_week: 2,
      day_of_month: 14,
      day_of_year: 318,
      days_in_month: 30,
      month: 11,
      year: 2023,
    };
    for (const [fn, want] of Object.entries(expected)) {
      expect(one(fn, [], mkCtx(ts)), fn).toBe(want);
      expect(one(fn, [vec([["__name__", "t"], 1700000000.9])], mkCtx(0)), fn).toBe(want);
    }
    const leap = vec([[], 1709208000]); // 2024-02-29T12:00:00Z
    expect(one("days_in_month", [leap], mkCtx(0))).toBe(29);
    expect(one("day_of_year", [leap], mkCtx(0))).toBe(60);
    const before = vec([[], -1]); // 1969-12-31T23:59:59Z, a Wednesday.
    expect([
      one("year", [before], mkCtx(0)),
      one("hour", [before], mkCtx(0)),
      one("minute", [before], mkCtx(0)),
      one("day_of_week", [before], mkCtx(0)),
    ]).toEqual([1969, 23, 59, 3]);
  });

  it("time, vector, scalar, timestamp, pi", () => {
    expect(call("time", [], mkCtx(1500))).toEqual([{ labels: [], t: 1500, v: 1.5 }]);
    expect(call("vector", [7], mkCtx(1500))).toEqual([{ labels: [], t: 1500, v: 7 }]);
    expect(one("scalar", [vec([["a", "1"], 4])], mkCtx(1500))).toBe(4);
    expect(one("scalar", [vec([["a", "1"], 4], [["a", "2"], 5])], mkCtx(1500))).toBeNaN();
    expect(one("scalar", [[]], mkCtx(1500))).toBeNaN();
    const raw: Vector = [{ labels: ["__name__", "x", "a", "1"], t: 1234, v: 9 }];
    expect(call("timestamp", [raw], mkCtx(5000))).toEqual([{ labels: ["a", "1"], t: 5000, v: 1.234 }]);
    expect(one("pi", [], mkCtx(0))).toBe(Math.PI);
    expect(one("step", [], mkCtx(0, 0, { queryStep: 15000 }))).toBe(15);
    expect(one("range", [], mkCtx(0, 0, { queryStart: 0, queryEnd: 3600000 }))).toBe(3600);
  });

  it("absent derives labels from = matchers", () => {
    const sel = (matchers: [MatchType, string, string][]): Expr => ({
      type: "VectorSelector",
      name: null,
      matchers: matchers.map(([type, name, value]) => ({ type, name, value })),
      offset: 0,
      at: null,
    });
    const run = (e: Expr) => call("absent", [[]], mkCtx(1000, 0, { args: [e] }));
    expect(run(sel([[MatchType.EQ, "__name__", "x"], [MatchType.EQ, "job", "j"], [MatchType.RE, "i", ".*"]]))).toEqual([
      { labels: ["job", "j"], t: 1000, v: 1 },
    ]);
    // A label matched twice is left out; an empty = value is no label.
    expect(run(sel([[MatchType.EQ, "job", "a"], [MatchType.EQ, "job", "b"], [MatchType.EQ, "e", ""]]))[0].labels).toEqual([]);
    expect(run({ type: "NumberLiteral", val: 1 })[0].labels).toEqual([]);
    expect(call("absent", [vec([["a", "1"], 1])], mkCtx(1000, 0, { args: [sel([])] }))).toEqual([]);
  });

  it("sort and sort_desc put NaN last", () => {
    const v = vec([["a", "1"], 3], [["a", "2"], NaN], [["a", "3"], 1], [["a", "4"], 2]);
    expect(call("sort", [v], mkCtx(1000)).map((s) => s.v)).toEqual([1, 2, 3, NaN]);
    expect(call("sort_desc", [v], mkCtx(1000)).map((s) => s.v)).toEqual([3, 2, 1, NaN]);
  });

  it("sort_by_label uses natural order, then the full label set", () => {
    const v = vec(
      [["__name__", "x", "inst", "a10"], 1],
      [["__name__", "x", "inst", "a2"], 2],
      [["__name__", "x", "inst", "a1"], 3],
      [["__name__", "w", "inst", "a2"], 4],
    );
    const asc = call("sort_by_label", [v, "inst"], mkCtx(1000)).map((s) => s.v);
    expect(asc).toEqual([3, 4, 2, 1]);
    const desc = call("sort_by_label_desc", [v, "inst"], mkCtx(1000)).map((s) => s.v);
    expect(desc).toEqual([1, 2, 4, 3]);
    expect(naturalLess("a2", "a10")).toBe(true);
    expect(naturalLess("a10", "a2")).toBe(false);
    expect(naturalLess("abc", "abd")).toBe(true);
    expect(naturalLess("x", "x1")).toBe(true);
    expect(naturalLess("99999999999999999999", "1")).toBe(false); // Overflows int64: compared as strings.
  });
});

describe("Go formatting helpers", () => {
  it("%g", () => {
    expect([1.5, 1e6, 123456, 0.0001, 0.00001, -2, 1e21, NaN, Infinity].map(formatGoG)).toEqual([
      "1.5",
      "1e+06",
      "123456",
      "0.0001",
      "1e-05",
      "-2",
      "1e+21",
      "NaN",
      "+Inf",
    ]);
  });

  it("%q", () => {
    expect(goQuote('a"b\\\n\x01é')).toBe('"a\\"b\\\\\\n\\x01é"');
  });

  it("ParseFloat", () => {
    expect(["1", "+Inf", "-inf", "NaN", "0x1p-2", ".5", "1e3"].map(parseGoFloat)).toEqual([1, Infinity, -Infinity, NaN, 0.25, 0.5, 1000]);
    expect(["", " 1", "1e400", "0x10", "1_0", "abc"].map(parseGoFloat)).toEqual([null, null, null, null, null, null]);
  });
});
