// Focused tests of the PromQL evaluator (src/querier/promql/engine.ts) over an in-memory
// Queryable; Prometheus's own test scripts (the conformance runner) cover the rest.

import { describe, expect, it } from "vitest";
import { instantQuery, rangeQuery, goFormatG, formatFloatF, xxhash64 } from "../../src/querier/promql/engine";
import type { AggregateOp, AtModifier, BinaryOp, Expr, VectorMatching, VectorSelector } from "../../src/querier/promql/ast";
import "../../src/querier/promql/signatures";
import { PromQLExecError, PromQLTimeoutError, type Queryable, type Series, type Value } from "../../src/querier/promql/value";
import { compileMatcher, matchesAll } from "../../src/model/matchers";
import { compareLabels, type FlatLabels } from "../../src/model/labels";
import { MatchType, type LabelMatcher } from "../../src/proto/types";

// --- storage ---------------------------------------------------------------------------------

/** A stale marker with its exact bits, written through the array (a JS NaN would lose them). */
function withStale(values: (number | "stale")[]): Float64Array {
  const out = new Float64Array(values.length);
  const words = new Uint32Array(out.buffer);
  values.forEach((v, i) => {
    if (v === "stale") {
      words[2 * i] = 2;
      words[2 * i + 1] = 0x7ff00000;
    } else {
      out[i] = v;
    }
  });
  return out;
}

function series(labels: Record<string, string>, points: [number, number | "stale"][]): Series {
  const flat: FlatLabels = [];
  for (const k of Object.keys(labels).sort()) flat.push(k, labels[k]);
  return {
    labels: flat,
    timestamps: Float64Array.from(points.map((p) => p[0])),
    values: withStale(points.map((p) => p[1])),
  };
}

/** Samples every `step` ms from 0: values[i] at i*step (undefined = no sample). */
function regular(labels: Record<string, string>, step: number, values: (number | "stale" | undefined)[]): Series {
  const pts: [number, number | "stale"][] = [];
  values.forEach((v, i) => {
    if (v !== undefined) pts.push([i * step, v]);
  });
  return series(labels, pts);
}

class MemoryQueryable implements Queryable {
  calls: { matchers: LabelMatcher[]; mint: number; maxt: number }[] = [];
  constructor(private readonly data: Series[]) {
    this.data.sort((a, b) => compareLabels(a.labels, b.labels));
  }
  async select(matchers: LabelMatcher[], mint: number, maxt: number): Promise<Series[]> {
    this.calls.push({ matchers, mint, maxt });
    const ms = matchers.map(compileMatcher);
    const out: Series[] = [];
    for (const s of this.data) {
      if (!matchesAll(ms, s.labels)) continue;
      let lo = 0;
      while (lo < s.timestamps.length && s.timestamps[lo] < mint) lo++;
      let hi = lo;
      while (hi < s.timestamps.length && s.timestamps[hi] <= maxt) hi++;
      out.push({ labels: s.labels, timestamps: s.timestamps.subarray(lo, hi), values: s.values.subarray(lo, hi) });
    }
    return out;
  }
}

// --- AST builders (the parser is tested on its own) ------------------------------------------

const M = 60_000;

function sel(name: string, labels: Record<string, string> = {}, o: { offset?: number; at?: AtModifier } = {}): VectorSelector {
  const matchers: LabelMatcher[] = [];
  if (name !== "") matchers.push({ type: MatchType.EQ, name: "__name__", value: name });
  for (const [k, v] of Object.entries(labels)) matchers.push({ type: MatchType.EQ, name: k, value: v });
  return { type: "VectorSelector", name: name === "" ? null : name, matchers, offset: o.offset ?? 0, at: o.at ?? null };
}
const re = (name: string, value: string): VectorSelector => ({
  type: "VectorSelector",
  name: null,
  matchers: [{ type: MatchType.RE, name, value }],
  offset: 0,
  at: null,
});
const num = (val: number): Expr => ({ type: "NumberLiteral", val });
const str = (val: string): Expr => ({ type: "StringLiteral", val });
const mat = (vs: VectorSelector, range: number): Expr => ({ type: "MatrixSelector", vectorSelector: vs, range });
const subq = (expr: Expr, range: number, step: number, o: { offset?: number; at?: AtModifier } = {}): Expr => ({
  type: "SubqueryExpr",
  expr,
  range,
  step,
  offset: o.offset ?? 0,
  at: o.at ?? null,
});
const call = (func: string, ...args: Expr[]): Expr => ({ type: "Call", func, args });
const neg = (expr: Expr): Expr => ({ type: "UnaryExpr", op: "-", expr });
function bin(op: BinaryOp, lhs: Expr, rhs: Expr, o: { bool?: boolean; matching?: Partial<VectorMatching> } = {}): Expr {
  const set = op === "and" || op === "or" || op === "unless";
  const vectors = lhs.type !== "NumberLiteral" && rhs.type !== "NumberLiteral";
  const matching: VectorMatching | null = vectors
    ? { card: set ? "many-to-many" : "one-to-one", matchingLabels: [], on: false, include: [], ...o.matching }
    : null;
  return { type: "BinaryExpr", op, lhs, rhs, returnBool: o.bool ?? false, matching };
}
function agg(op: AggregateOp, expr: Expr, o: { by?: string[]; without?: string[]; param?: Expr } = {}): Expr {
  return {
    type: "AggregateExpr",
    op,
    expr,
    param: o.param ?? null,
    grouping: o.without ?? o.by ?? [],
    without: o.without !== undefined,
  };
}

// --- result helpers --------------------------------------------------------------------------

function labelsText(l: FlatLabels): string {
  const parts: string[] = [];
  let name = "";
  for (let i = 0; i < l.length; i += 2) {
    if (l[i] === "__name__") name = l[i + 1];
    else parts.push(`${l[i]}="${l[i + 1]}"`);
  }
  return `${name}{${parts.join(",")}}`;
}

/** An instant vector as "labels => value" lines, in result order. */
function vec(v: Value): string[] {
  if (v.type !== "vector") throw new Error(`expected a vector, got ${v.type}`);
  return v.vector.map((s) => `${labelsText(s.labels)} => ${s.v}`);
}

/** A matrix as "labels => t:v t:v" lines (t in seconds). */
function matrix(v: Value): string[] {
  if (v.type !== "matrix") throw new Error(`expected a matrix, got ${v.type}`);
  return v.matrix.map((s) => `${labelsText(s.labels)} => ${Array.from(s.timestamps, (t, i) => `${t / 1000}:${s.values[i]}`).join(" ")}`);
}

async function iq(q: Queryable, e: Expr, t: number): Promise<Value> {
  return (await instantQuery(q, e, t)).value;
}

// --- tests -----------------------------------------------------------------------------------

describe("instant selection", () => {
  const q = new MemoryQueryable([
    regular({ __name__: "m", job: "a" }, M, [1, 2, 3, undefined, undefined, undefined, undefined, undefined, undefined, 10]),
    series({ __name__: "st", job: "a" }, [
      [0, 1],
      [M, "stale"],
      [2 * M, 5],
    ]),
  ]);

  it("takes the newest sample within the lookback window, which is left-open", async () => {
    expect(vec(await iq(q, sel("m"), 30_000))).toEqual(['m{job="a"} => 1']);
    expect(vec(await iq(q, sel("m"), 2 * M))).toEqual(['m{job="a"} => 3']);
    expect(vec(await iq(q, sel("m"), 7 * M - 1))).toEqual(['m{job="a"} => 3']);
    // 5m after the last sample it is out: (t - 5m, t] excludes t - 5m.
    expect(vec(await iq(q, sel("m"), 7 * M))).toEqual([]);
    expect(vec(await iq(q, sel("m"), 9 * M))).toEqual(['m{job="a"} => 10']);
  });

  it("ends a series at a stale marker (compared by bits)", async () => {
    expect(vec(await iq(q, sel("st"), 59_000))).toEqual(['st{job="a"} => 1']);
    expect(vec(await iq(q, sel("st"), M))).toEqual([]);
    expect(vec(await iq(q, sel("st"), 90_000))).toEqual([]);
    expect(vec(await iq(q, sel("st"), 2 * M))).toEqual(['st{job="a"} => 5']);
    // A NaN value that is not a stale marker is a value.
    const nan = new MemoryQueryable([series({ __name__: "n" }, [[0, NaN]])]);
    expect(vec(await iq(nan, sel("n"), 10_000))).toEqual(["n{} => NaN"]);
  });

  it("applies offset and @ (also negative offsets and start()/end())", async () => {
    expect(vec(await iq(q, sel("m", {}, { offset: M }), 2 * M))).toEqual(['m{job="a"} => 2']);
    expect(vec(await iq(q, sel("m", {}, { offset: -M }), M))).toEqual(['m{job="a"} => 3']);
    expect(vec(await iq(q, sel("m", {}, { at: { kind: "time", ms: M } }), 100 * M))).toEqual(['m{job="a"} => 2']);
    expect(vec(await iq(q, sel("m", {}, { at: { kind: "time", ms: 2 * M }, offset: M }), 0))).toEqual(['m{job="a"} => 2']);
    const r = await rangeQuery(q, sel("m", {}, { at: { kind: "end" } }), 0, 2 * M, M);
    expect(matrix(r.value)).toEqual(['m{job="a"} => 0:3 60:3 120:3']);
    const s = await rangeQuery(q, sel("m", {}, { at: { kind: "start" } }), M, 3 * M, M);
    expect(matrix(s.value)).toEqual(['m{job="a"} => 60:2 120:2 180:2']);
  });

  it("loads each selector once with the range it needs", async () => {
    const mq = new MemoryQueryable([]);
    await rangeQuery(mq, bin("+", sel("a", {}, { offset: M }), call("rate", mat(sel("b"), 5 * M))), 10 * M, 20 * M, M);
    expect(mq.calls.map((c) => [c.mint, c.maxt])).toEqual([
      [10 * M - M - 5 * M + 1, 20 * M - M],
      [10 * M - 5 * M + 1, 20 * M],
    ]);
    // The same matchers with overlapping ranges share one select over the union; far apart, not.
    const mq2 = new MemoryQueryable([]);
    await instantQuery(mq2, bin("/", call("rate", mat(sel("x"), 5 * M)), sel("x")), 60 * M);
    expect(mq2.calls.map((c) => [c.mint, c.maxt])).toEqual([[55 * M + 1, 60 * M]]);
    const mq3 = new MemoryQueryable([]);
    await instantQuery(mq3, bin("-", sel("x"), sel("x", {}, { offset: 1440 * M })), 2000 * M);
    expect(mq3.calls).toHaveLength(2);
    const sq = new MemoryQueryable([]);
    await instantQuery(sq, call("max_over_time", subq(sel("c", {}, { offset: M }), 10 * M, M, { offset: 2 * M })), 30 * M);
    expect(sq.calls.map((c) => [c.mint, c.maxt])).toEqual([[30 * M - 2 * M - 10 * M - M - 5 * M + 1, 30 * M - 2 * M - M]]);
  });
});

describe("range queries", () => {
  const q = new MemoryQueryable([
    regular({ __name__: "m", job: "b" }, M, [1, 2, 3, 4, 5]),
    regular({ __name__: "m", job: "a" }, M, [10, 20, undefined, undefined, undefined, undefined, undefined, undefined, 90]),
  ]);

  it("returns a matrix sorted by labels with one point per step that has a value", async () => {
    const r = await rangeQuery(q, sel("m"), 0, 8 * M, 2 * M);
    expect(matrix(r.value)).toEqual([
      // job="a": nothing at 6m, its last sample (1m) is exactly 5m old.
      'm{job="a"} => 0:10 120:20 240:20 480:90',
      'm{job="b"} => 0:1 120:3 240:5 360:5 480:5',
    ]);
  });

  it("evaluates scalars at every step", async () => {
    const r = await rangeQuery(q, bin("*", num(2), call("time")), 0, 2 * M, M);
    expect(matrix(r.value)).toEqual(["{} => 0:0 60:120 120:240"]);
  });

  it("refuses range-vector expressions", async () => {
    await expect(rangeQuery(q, mat(sel("m"), M), 0, M, M)).rejects.toThrow(/invalid expression type "range vector"/);
  });
});

describe("range vectors and subqueries", () => {
  const q = new MemoryQueryable([
    regular({ __name__: "c_total", job: "a" }, 15_000, Array.from({ length: 41 }, (_, i) => i * 15)),
    series({ __name__: "g" }, [
      [0, 1],
      [M, 2],
      [2 * M, "stale"],
      [3 * M, 4],
    ]),
  ]);

  it("selects (t - range, t] with stale markers dropped", async () => {
    // (1m, 3m]: the sample at 1m is out, the stale marker at 2m dropped.
    expect(matrix(await iq(q, mat(sel("g"), 2 * M), 3 * M))).toEqual(["g{} => 180:4"]);
    expect(matrix(await iq(q, mat(sel("g"), 2 * M), 3 * M - 1))).toEqual(["g{} => 60:2"]);
    expect(matrix(await iq(q, mat(sel("g"), 2 * M), 2 * M))).toEqual(["g{} => 60:2"]);
    expect(matrix(await iq(q, mat(sel("g", {}, { offset: M }), 2 * M), 3 * M))).toEqual(["g{} => 60:2"]);
    expect(matrix(await iq(q, mat(sel("g", {}, { at: { kind: "time", ms: 2 * M } }), 3 * M), 9 * M))).toEqual(["g{} => 0:1 60:2"]);
  });

  it("feeds windows to range functions at every step", async () => {
    const r = await rangeQuery(q, call("count_over_time", mat(sel("g"), 2 * M)), 0, 4 * M, M);
    expect(matrix(r.value)).toEqual(["{} => 0:1 60:2 120:1 180:1 240:1"]);
    const rate = await rangeQuery(q, call("increase", mat(sel("c_total"), 2 * M)), 2 * M, 4 * M, M);
    expect(matrix(rate.value)).toEqual(['{job="a"} => 120:120 180:120 240:120']);
    const info = await instantQuery(q, call("rate", mat(sel("g"), 3 * M)), 3 * M - 1);
    expect([...info.annotations.infos]).toEqual([
      'PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "g"',
    ]);
  });

  it("aligns subquery steps to multiples of the step", async () => {
    // At 3m10s a [2m:1m] subquery evaluates at 2m and 3m (the first multiple after 1m10s is 2m).
    expect(matrix(await iq(q, subq(sel("c_total"), 2 * M, M), 3 * M + 10_000))).toEqual([
      'c_total{job="a"} => 120:120 180:180',
    ]);
    expect(matrix(await iq(q, subq(sel("c_total"), 2 * M, 0), 3 * M))).toEqual(['c_total{job="a"} => 120:120 180:180']);
    const r = await rangeQuery(q, call("count_over_time", subq(call("rate", mat(sel("c_total"), M)), 3 * M, 30_000)), 3 * M, 5 * M, M);
    expect(matrix(r.value)).toEqual(['{job="a"} => 180:6 240:6 300:6']);
    // @ fixes the subquery's window: (2m, 4m] at every step.
    const at = await rangeQuery(q, call("sum_over_time", subq(sel("c_total"), 2 * M, M, { at: { kind: "time", ms: 4 * M } })), 0, 2 * M, M);
    expect(matrix(at.value)).toEqual(['{job="a"} => 0:420 60:420 120:420']);
  });

  it("keeps __name__ for last_over_time unless the subquery dropped it", async () => {
    expect(vec(await iq(q, call("last_over_time", mat(sel("c_total"), M)), 5 * M))).toEqual(['c_total{job="a"} => 300']);
    expect(vec(await iq(q, call("last_over_time", subq(call("abs", sel("c_total")), M, 0)), 5 * M))).toEqual([
      '{job="a"} => 300',
    ]);
  });
});

describe("binary operators", () => {
  const q = new MemoryQueryable([
    series({ __name__: "req", job: "a", code: "200" }, [[0, 10]]),
    series({ __name__: "req", job: "a", code: "500" }, [[0, 2]]),
    series({ __name__: "req", job: "b", code: "200" }, [[0, 6]]),
    series({ __name__: "lim", job: "a" }, [[0, 100]]),
    series({ __name__: "lim", job: "b" }, [[0, 50]]),
    series({ __name__: "info", job: "a", team: "x" }, [[0, 1]]),
    series({ __name__: "l", k: "1" }, [[0, 3]]),
    series({ __name__: "r", k: "1" }, [[0, 4]]),
    series({ __name__: "r", k: "2" }, [[0, 5]]),
  ]);
  const t = 10_000;

  it("matches one-to-one on all labels but the name, and drops the name for arithmetic", async () => {
    expect(vec(await iq(q, bin("+", sel("l"), sel("r")), t))).toEqual(['{k="1"} => 7']);
    expect(vec(await iq(q, bin("-", sel("r"), sel("l")), t))).toEqual(['{k="1"} => 1']);
  });

  it("filters with comparisons (keeping the name) or returns 0/1 with bool", async () => {
    expect(vec(await iq(q, bin(">", sel("req"), num(5)), t))).toEqual([
      'req{code="200",job="a"} => 10',
      'req{code="200",job="b"} => 6',
    ]);
    expect(vec(await iq(q, bin("<", num(5), sel("req")), t))).toEqual([
      'req{code="200",job="a"} => 10',
      'req{code="200",job="b"} => 6',
    ]);
    expect(vec(await iq(q, bin(">", sel("req"), num(5), { bool: true }), t))).toEqual([
      '{code="200",job="a"} => 1',
      '{code="200",job="b"} => 1',
      '{code="500",job="a"} => 0',
    ]);
    expect(vec(await iq(q, bin("<", sel("r"), sel("l"), { bool: true, matching: { on: true, matchingLabels: ["k"] } }), t))).toEqual([
      '{k="1"} => 0',
    ]);
  });

  it("supports on/ignoring and group_left with included labels", async () => {
    const ratio = bin("/", sel("req"), sel("lim"), {
      matching: { card: "many-to-one", on: true, matchingLabels: ["job"], include: [] },
    });
    expect(vec(await iq(q, ratio, t))).toEqual([
      '{code="200",job="a"} => 0.1',
      '{code="200",job="b"} => 0.12',
      '{code="500",job="a"} => 0.02',
    ]);
    const withTeam = bin("*", sel("req"), sel("info"), {
      matching: { card: "many-to-one", on: true, matchingLabels: ["job"], include: ["team"] },
    });
    expect(vec(await iq(q, withTeam, t))).toEqual(['{code="200",job="a",team="x"} => 10', '{code="500",job="a",team="x"} => 2']);
    const right = bin("*", sel("info"), sel("req"), {
      matching: { card: "one-to-many", on: true, matchingLabels: ["job"], include: ["team"] },
    });
    expect(vec(await iq(q, right, t))).toEqual(['{code="200",job="a",team="x"} => 10', '{code="500",job="a",team="x"} => 2']);
    const ign = bin("-", sel("req"), sel("lim"), { matching: { card: "one-to-one", on: false, matchingLabels: ["code"] } });
    // Two left series share the signature {job="a"}: one-to-one must fail.
    await expect(iq(q, ign, t)).rejects.toThrow("multiple matches for labels: many-to-one matching must be explicit");
    const oneToOneOn = bin("-", sel("lim"), sel("req", { code: "200" }), { matching: { on: true, matchingLabels: ["job"] } });
    expect(vec(await iq(q, oneToOneOn, t))).toEqual(['{job="a"} => 90', '{job="b"} => 44']);
  });

  it("reports many-to-many and ambiguous matches with Prometheus's messages", async () => {
    const e = bin(">", sel("lim"), sel("req"), { matching: { on: true, matchingLabels: ["job"] } });
    await expect(iq(q, e, t)).rejects.toThrow(
      'found duplicate series for the match group {job="a"} on the right hand-side of the operation: ' +
        '[{__name__="req", code="200", job="a"}, {__name__="req", code="500", job="a"}];' +
        "many-to-many matching not allowed: matching labels must be unique on one side",
    );
    const e2 = bin("+", sel("req"), sel("lim"), { matching: { on: true, matchingLabels: ["job"] } });
    await expect(iq(q, e2, t)).rejects.toThrow(
      "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
    );
    const e3 = bin("+", sel("req"), sel("lim"), { matching: { card: "many-to-one", on: true, matchingLabels: [] } });
    await expect(iq(q, e3, t)).rejects.toThrow(PromQLExecError);
  });

  it("implements and, or, unless on signatures", async () => {
    const and = bin("and", sel("req"), sel("lim"), { matching: { on: true, matchingLabels: ["job"] } });
    expect(vec(await iq(q, and, t))).toHaveLength(3);
    const unless = bin("unless", sel("req"), sel("info"), { matching: { on: true, matchingLabels: ["job"] } });
    expect(vec(await iq(q, unless, t))).toEqual(['req{code="200",job="b"} => 6']);
    const or = bin("or", sel("l"), sel("r"), { matching: { on: true, matchingLabels: ["k"] } });
    expect(vec(await iq(q, or, t))).toEqual(['l{k="1"} => 3', 'r{k="2"} => 5']);
  });

  it("computes % and ^ as Go's math does", async () => {
    const scalar = async (e: Expr): Promise<number> => {
      const v = await iq(q, e, t);
      if (v.type !== "scalar") throw new Error(v.type);
      return v.v;
    };
    expect(await scalar(bin("%", num(-7), num(3)))).toBe(-1);
    expect(await scalar(bin("%", num(7), num(Infinity)))).toBe(7);
    expect(await scalar(bin("^", num(1), num(NaN)))).toBe(1);
    expect(await scalar(bin("^", num(NaN), num(0)))).toBe(1);
    expect(await scalar(bin("^", num(-1), num(-Infinity)))).toBe(1);
    expect(await scalar(bin("atan2", num(1), num(1)))).toBeCloseTo(Math.PI / 4, 15);
    expect(await scalar(bin("==", num(1), num(1), { bool: true }))).toBe(1);
  });
});

describe("aggregations", () => {
  const q = new MemoryQueryable([
    series({ __name__: "x", job: "a", i: "1" }, [[0, 1]]),
    series({ __name__: "x", job: "a", i: "2" }, [[0, 4]]),
    series({ __name__: "x", job: "b", i: "3" }, [[0, 10]]),
    series({ __name__: "x", job: "b", i: "4" }, [[0, NaN]]),
    series({ __name__: "x", job: "c", i: "5" }, [[0, 7]]),
    series({ __name__: "big", i: "1" }, [[0, 1e308]]),
    series({ __name__: "big", i: "2" }, [[0, 1e308]]),
    series({ __name__: "big", i: "3" }, [[0, -1e308]]),
  ]);
  const t = 0;

  it("sum, avg, min, max, count, group by and without", async () => {
    expect(vec(await iq(q, agg("sum", sel("x", { job: "a" })), t))).toEqual(["{} => 5"]);
    expect(vec(await iq(q, agg("sum", sel("x"), { by: ["job"] }), t))).toEqual(['{job="a"} => 5', '{job="b"} => NaN', '{job="c"} => 7']);
    expect(vec(await iq(q, agg("avg", sel("x"), { without: ["i"] }), t))).toEqual(['{job="a"} => 2.5', '{job="b"} => NaN', '{job="c"} => 7']);
    expect(vec(await iq(q, agg("max", sel("x"), { by: ["job"] }), t))).toEqual(['{job="a"} => 4', '{job="b"} => 10', '{job="c"} => 7']);
    expect(vec(await iq(q, agg("min", sel("x"), { by: ["job"] }), t))).toEqual(['{job="a"} => 1', '{job="b"} => 10', '{job="c"} => 7']);
    expect(vec(await iq(q, agg("count", sel("x"), { by: ["nope"] }), t))).toEqual(["{} => 5"]);
    expect(vec(await iq(q, agg("group", sel("x"), { by: ["job"] }), t))).toHaveLength(3);
    expect(vec(await iq(q, agg("sum", sel("x"), { by: ["__name__"] }), t))).toEqual(["x{} => NaN"]);
  });

  it("avg switches to an incremental mean instead of overflowing", async () => {
    const v = await iq(q, agg("avg", sel("big")), t);
    if (v.type !== "vector") throw new Error(v.type);
    expect(v.vector[0].v).toBeCloseTo(1e308 / 3, -300);
  });

  it("stddev, stdvar and quantile", async () => {
    expect(vec(await iq(q, agg("stdvar", sel("x", { job: "a" })), t))).toEqual(["{} => 2.25"]);
    expect(vec(await iq(q, agg("stddev", sel("x", { job: "a" })), t))).toEqual(["{} => 1.5"]);
    expect(vec(await iq(q, agg("quantile", sel("x", { job: "a" }), { param: num(0.5) }), t))).toEqual(["{} => 2.5"]);
    const r = await instantQuery(q, agg("quantile", sel("x", { job: "a" }), { param: num(2) }), t);
    expect(vec(r.value)).toEqual(["{} => Infinity"]);
    expect([...r.annotations.warnings]).toEqual(["PromQL warning: quantile value should be between 0 and 1, got 2"]);
  });

  it("topk and bottomk order an instant result and keep labels", async () => {
    expect(vec(await iq(q, agg("topk", sel("x"), { param: num(3) }), t))).toEqual([
      'x{i="3",job="b"} => 10',
      'x{i="5",job="c"} => 7',
      'x{i="2",job="a"} => 4',
    ]);
    expect(vec(await iq(q, agg("bottomk", sel("x"), { param: num(2), by: ["job"] }), t))).toEqual([
      'x{i="1",job="a"} => 1',
      'x{i="2",job="a"} => 4',
      'x{i="3",job="b"} => 10',
      'x{i="4",job="b"} => NaN',
      'x{i="5",job="c"} => 7',
    ]);
    expect(vec(await iq(q, agg("topk", sel("x"), { param: num(0) }), t))).toEqual([]);
    await expect(iq(q, agg("topk", sel("x"), { param: num(NaN) }), t)).rejects.toThrow("Parameter value is NaN");
    expect(vec(await iq(q, agg("limitk", sel("x"), { param: num(1), by: ["job"] }), t))).toHaveLength(3);
  });

  it("count_values labels by the value, as Go formats it", async () => {
    const cv = await iq(q, agg("count_values", sel("x", { job: "a" }), { param: str("v") }), t);
    expect(vec(cv)).toEqual(['{v="1"} => 1', '{v="4"} => 1']);
    const big = new MemoryQueryable([series({ __name__: "y", a: "1" }, [[0, 1e21]]), series({ __name__: "y", a: "2" }, [[0, 1e21]])]);
    expect(vec(await iq(big, agg("count_values", sel("y"), { param: str("v") }), t))).toEqual(['{v="1000000000000000000000"} => 2']);
  });

  it("limit_ratio samples by the label hash: r and r-1 are complements", async () => {
    const all = await iq(q, agg("count", bin("or", agg("limit_ratio", sel("x"), { param: num(0.3) }), agg("limit_ratio", sel("x"), { param: num(-0.7) }))), t);
    expect(vec(all)).toEqual(["{} => 5"]);
    const none = await iq(q, agg("count", bin("and", agg("limit_ratio", sel("x"), { param: num(0.3) }), agg("limit_ratio", sel("x"), { param: num(-0.7) }))), t);
    expect(vec(none)).toEqual([]);
  });

  it("aggregates over steps of a range query, with the parameter per step", async () => {
    const rq = new MemoryQueryable([
      regular({ __name__: "z", i: "1" }, M, [1, 5, 1]),
      regular({ __name__: "z", i: "2" }, M, [2, 2, 2]),
      regular({ __name__: "z", i: "3" }, M, [3, undefined, 3]),
    ]);
    const r = await rangeQuery(rq, agg("topk", sel("z"), { param: call("scalar", sel("z", { i: "1" })) }), 0, 2 * M, M);
    expect(matrix(r.value)).toEqual(['z{i="1"} => 60:5', 'z{i="2"} => 60:2', 'z{i="3"} => 0:3 60:3 120:3']);
    const s = await rangeQuery(rq, agg("sum", sel("z")), 0, 2 * M, M);
    expect(matrix(s.value)).toEqual(["{} => 0:6 60:10 120:6"]);
  });
});

describe("evaluation strategies agree", () => {
  // 300 series sampled every second for 1000 s: `by (i)` makes 300 groups × 1000 steps, past
  // the cell budget of one block of the series-by-series aggregation.
  const N = 300;
  const STEPS = 1000;
  const data = Array.from({ length: N }, (_, i) =>
    regular({ __name__: "w", i: String(i).padStart(3, "0"), odd: String(i % 2) }, 1000, Array.from({ length: STEPS }, (_, k) => (i * 7 + k * 3) % 101)),
  );
  const q = new MemoryQueryable(data);
  const valueAt = (i: number, k: number): number => (i * 7 + k * 3) % 101;

  it("aggregates in blocks of steps when there are many groups, in one when few", async () => {
    const many = await rangeQuery(q, agg("max", sel("w"), { by: ["i"] }), 0, (STEPS - 1) * 1000, 1000);
    if (many.value.type !== "matrix") throw new Error("matrix");
    expect(many.value.matrix).toHaveLength(N);
    for (let i = 0; i < N; i += 37) {
      const s = many.value.matrix[i];
      expect(s.labels).toEqual(["i", String(i).padStart(3, "0")]);
      expect(Array.from(s.values)).toEqual(Array.from({ length: STEPS }, (_, k) => valueAt(i, k)));
    }
    for (const op of ["sum", "avg", "count", "min", "max", "stdvar"] as const) {
      const stepwise = await rangeQuery(q, agg(op, sel("w"), { by: ["i", "odd"] }), 0, (STEPS - 1) * 1000, 1000);
      const few = await rangeQuery(q, agg(op, sel("w"), { by: ["odd"] }), 0, (STEPS - 1) * 1000, 1000);
      if (stepwise.value.type !== "matrix" || few.value.type !== "matrix") throw new Error("matrix");
      // Re-aggregating the per-series groups must give the per-odd groups (sum, count, min, max).
      if (op === "sum" || op === "min" || op === "max") {
        const again = await rangeQuery(q, agg(op, agg(op, sel("w"), { by: ["i", "odd"] }), { by: ["odd"] }), 0, (STEPS - 1) * 1000, 1000);
        expect(matrix(again.value)).toEqual(matrix(few.value));
      }
      expect(few.value.matrix).toHaveLength(2);
    }
    const sum = await rangeQuery(q, agg("sum", sel("w")), 0, (STEPS - 1) * 1000, 1000);
    if (sum.value.type !== "matrix") throw new Error("matrix");
    for (let k = 0; k < STEPS; k += 111) {
      let want = 0;
      for (let i = 0; i < N; i++) want += valueAt(i, k);
      expect(sum.value.matrix[0].values[k]).toBe(want);
    }
  });

  it("keeps Kahan compensation per cell across blocks of steps", async () => {
    // 100 groups × 3000 steps is more than one block; each group adds 1e16 + 1 - 1e16 = 1.
    const G = 100;
    const T = 3000;
    const parts = [1e16, 1, -1e16];
    const kq = new MemoryQueryable(
      Array.from({ length: G * 3 }, (_, i) =>
        regular({ __name__: "k", g: String(Math.floor(i / 3)), p: String(i % 3) }, 1000, new Array<number>(T).fill(parts[i % 3])),
      ),
    );
    const r = await rangeQuery(kq, agg("sum", sel("k"), { by: ["g"] }), 0, (T - 1) * 1000, 1000);
    if (r.value.type !== "matrix") throw new Error("matrix");
    expect(r.value.matrix).toHaveLength(G);
    for (const s of r.value.matrix) expect(s.values.every((v) => v === 1)).toBe(true);
  });

  it("matches one-to-one pairs directly, or step by step when a side repeats a signature", async () => {
    const pairs = await rangeQuery(q, bin("-", sel("w"), sel("w")), 0, 9000, 1000);
    if (pairs.value.type !== "matrix") throw new Error("matrix");
    expect(pairs.value.matrix).toHaveLength(N);
    expect(Array.from(pairs.value.matrix[5].values)).toEqual(new Array(10).fill(0));
    // on(odd): 150 series per side share a signature: the general loop reports it.
    await expect(
      rangeQuery(q, bin("-", sel("w"), sel("w"), { matching: { on: true, matchingLabels: ["odd"] } }), 0, 9000, 1000),
    ).rejects.toThrow(/found duplicate series for the match group \{odd="0"\} on the right hand-side/);
    const split = new MemoryQueryable([
      regular({ __name__: "a", k: "x" }, M, [1, 2, 3, 4]),
      regular({ __name__: "b", k: "x", v: "1" }, M, [10, 20]),
      series({ __name__: "b", k: "x", v: "2" }, [
        [2 * M, 30],
        [3 * M, 40],
      ]),
    ]);
    // Right: two series with the signature {k="x"}, never at the same step (lookback 1m).
    const r = await rangeQuery(split, bin("+", sel("a"), sel("b"), { matching: { on: true, matchingLabels: ["k"] } }), 0, 3 * M, M, {
      lookbackDeltaMs: M,
    });
    expect(matrix(r.value)).toEqual(['{k="x"} => 0:11 60:22 120:33 180:44']);
  });
});

describe("step-invariant expressions and timestamp()", () => {
  const q = new MemoryQueryable([regular({ __name__: "m" }, 10_000, [1, 2, 3, 4, 5, 6, 7])]);

  it("evaluates @ parts once and repeats them", async () => {
    const r = await rangeQuery(q, agg("sum", sel("m", {}, { at: { kind: "time", ms: 20_000 } })), 0, 60_000, 20_000);
    expect(matrix(r.value)).toEqual(["{} => 0:3 20:3 40:3 60:3"]);
    const mixed = await rangeQuery(q, bin("-", sel("m"), sel("m", {}, { at: { kind: "start" } })), 0, 60_000, 20_000);
    expect(matrix(mixed.value)).toEqual(["{} => 0:0 20:2 40:4 60:6"]);
  });

  it("timestamp() of a selector reports the sample's own time", async () => {
    expect(vec(await iq(q, call("timestamp", sel("m")), 25_000))).toEqual(["{} => 20"]);
    const r = await rangeQuery(q, call("timestamp", sel("m", {}, { at: { kind: "time", ms: 35_000 } })), 0, 20_000, 10_000);
    expect(matrix(r.value)).toEqual(["{} => 0:30 10:30 20:30"]);
    expect(vec(await iq(q, call("timestamp", call("abs", sel("m"))), 25_000))).toEqual(["{} => 25"]);
  });
});

describe("metric names", () => {
  const q = new MemoryQueryable([
    series({ __name__: "a_total", env: "1" }, [[0, 1]]),
    series({ __name__: "b_total", env: "1" }, [[0, 2]]),
    regular({ __name__: "ma" }, 10 * M, [1]),
    regular({ __name__: "mb" }, 10 * M, [3, 4]),
  ]);

  it("drops the name for unary minus at the end, merging series that no longer overlap", async () => {
    const r = await rangeQuery(q, bin("or", neg(sel("ma")), neg(sel("mb"))), 0, 20 * M, 10 * M);
    expect(matrix(r.value)).toEqual(["{} => 0:-1 600:-4"]);
    await expect(iq(q, neg(re("env", "1")), 0)).rejects.toThrow("vector cannot contain metrics with the same labelset");
  });

  it("keeps the name through aggregation by __name__ (delayed removal)", async () => {
    expect(vec(await iq(q, agg("sum", re("env", "1"), { by: ["__name__"] }), 0))).toEqual(["a_total{} => 1", "b_total{} => 2"]);
    await expect(iq(q, agg("sum", neg(re("env", "1")), { by: ["__name__"] }), 0)).rejects.toThrow(
      "vector cannot contain metrics with the same labelset",
    );
    expect(vec(await iq(q, agg("sum", neg(re("env", "1")), { by: ["env"] }), 0))).toEqual(['{env="1"} => -3']);
  });

  it("drops names after functions at the end, so differently named series still aggregate", async () => {
    expect(vec(await iq(q, agg("sum", call("abs", re("env", "1"))), 0))).toEqual(["{} => 3"]);
    const rq = new MemoryQueryable([
      regular({ __name__: "a_total", env: "1" }, M, [0, 60, 120]),
      regular({ __name__: "b_total", env: "1" }, M, [0, 120, 240]),
    ]);
    expect(vec(await iq(rq, agg("sum", call("rate", mat(re("env", "1"), 2 * M)), { by: ["env"] }), 2 * M))).toEqual([
      '{env="1"} => 3',
    ]);
    await expect(iq(rq, agg("sum", call("rate", mat(re("env", "1"), 2 * M)), { by: ["__name__"] }), 2 * M)).rejects.toThrow(
      "vector cannot contain metrics with the same labelset",
    );
    await expect(iq(rq, call("rate", mat(re("env", "1"), 2 * M)), 2 * M)).rejects.toThrow(
      "vector cannot contain metrics with the same labelset",
    );
  });
});

describe("annotations", () => {
  const q = new MemoryQueryable([regular({ __name__: "m", i: "1" }, M, [1, 2, 3])]);

  it("warns about sort in range queries, with the node's position when the parser gives one", async () => {
    const sorted = Object.assign(call("sort", sel("m")), { pos: { line: 1, column: 5 } });
    const r = await rangeQuery(q, agg("sum", sorted), 0, 2 * M, M);
    expect([...r.annotations.warnings]).toEqual([
      "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:5)",
    ]);
    const i = await instantQuery(q, call("sort", sel("m")), 0);
    expect([...i.annotations.warnings]).toEqual([]);
  });
});

describe("limits", () => {
  const q = new MemoryQueryable(Array.from({ length: 20 }, (_, i) => regular({ __name__: "m", i: String(i) }, M, [1, 2, 3, 4, 5])));

  it("refuses to hold more samples than maxSamples", async () => {
    await expect(rangeQuery(q, sel("m"), 0, 4 * M, M, { maxSamples: 50 })).rejects.toThrow(
      "query processing would load too many samples into memory in query execution",
    );
    const ok = await rangeQuery(q, agg("sum", sel("m")), 0, 4 * M, M, { maxSamples: 200 });
    expect(matrix(ok.value)).toEqual(["{} => 0:20 60:40 120:60 180:80 240:100"]);
  });

  it("times out between steps", async () => {
    const slow: Queryable = {
      select: async (m, a, b) => {
        await new Promise((r) => setTimeout(r, 30));
        return q.select(m, a, b);
      },
    };
    await expect(rangeQuery(slow, sel("m"), 0, 4 * M, M, { timeoutMs: 5 })).rejects.toThrow(PromQLTimeoutError);
  });
});

describe("literals", () => {
  const q = new MemoryQueryable([]);
  it("returns scalars and strings for instant queries", async () => {
    expect(await iq(q, num(3), 5_000)).toEqual({ type: "scalar", t: 5_000, v: 3 });
    expect(await iq(q, str("hi"), 5_000)).toEqual({ type: "string", t: 5_000, v: "hi" });
    expect(await iq(q, neg(num(3)), 0)).toEqual({ type: "scalar", t: 0, v: -3 });
  });
});

describe("helpers", () => {
  it("formats floats like Go", () => {
    expect(formatFloatF(1e21)).toBe("1000000000000000000000");
    expect(formatFloatF(1.5e-7)).toBe("0.00000015");
    expect(formatFloatF(-Infinity)).toBe("-Inf");
    expect(goFormatG(1e6)).toBe("1e+06");
    expect(goFormatG(123456)).toBe("123456");
    expect(goFormatG(0.00001)).toBe("1e-05");
    expect(goFormatG(1.5)).toBe("1.5");
  });

  it("computes xxHash64", () => {
    const enc = new TextEncoder();
    expect(xxhash64(new Uint8Array(0)).toString(16)).toBe("ef46db3751d8e999");
    expect(xxhash64(enc.encode("a")).toString(16)).toBe("d24ec4f1a98c6e5b");
    expect(xxhash64(enc.encode("abc")).toString(16)).toBe("44bc2cf5ad770999");
    expect(xxhash64(enc.encode("Nobody inspects the spammish repetition")).toString(16)).toBe("fbcea83c8a378bf1");
  });
});
