// The PromQL evaluator, after Prometheus 3's promql/engine.go (with delayed __name__ removal,
// as Prometheus's own test scripts run it).
//
// A query runs in two phases. First the AST is walked and every selector's time range is
// computed (steps, lookback, range, offset, @, nested subqueries: FindMinMaxTime's rules), and
// each selector is loaded with one q.select(), all in parallel. Then the expression is
// evaluated synchronously, node by node over all steps at once, like Prometheus's evaluator:
// every node yields, per output series, the points it has at the step times (typed arrays),
// and the operators walk the steps with cursors into their inputs. Per-step vectors (what
// function implementations see) are objects, reused from step to step.

import {
  exprType,
  posSuffix,
  type AggregateExpr,
  type AggregateOp,
  type AtModifier,
  type BinaryExpr,
  type BinaryOp,
  type Call,
  type Expr,
  type MatrixSelector,
  type SubqueryExpr,
  type ValueType,
  type VectorMatching,
  type VectorSelector,
} from "./ast";
import {
  Annotations,
  PromQLExecError,
  PromQLTimeoutError,
  type Matrix,
  type Queryable,
  type Sample,
  type Series,
  type Value,
  type Vector,
} from "./value";
import type { FunctionArg, FunctionContext, FunctionDef, WindowSeries } from "./functions/types";
import { FUNCTIONS } from "./functions/index";
// exprType() needs the function table's return types, which this module fills.
import "./signatures";
import { compareLabels, getLabel, seriesKey, setLabel, type FlatLabels } from "../../model/labels";
import { goQuote } from "./format";

export interface EngineOptions {
  /** How far back an instant selector looks for a sample (default 5m). */
  lookbackDeltaMs?: number;
  /** The most samples held in memory at once (default 50,000,000, as Prometheus). */
  maxSamples?: number;
  /** Wall-clock limit of the evaluation (default none). */
  timeoutMs?: number;
  /** The step of a subquery written without one, `[30m:]` (default 1m). */
  defaultSubqueryStepMs?: number;
}

const DEFAULT_LOOKBACK_MS = 5 * 60_000;
const DEFAULT_MAX_SAMPLES = 50_000_000;
const DEFAULT_SUBQUERY_STEP_MS = 60_000;
/** The most points a result series is first allocated for (engine.go caps its slices at 5000). */
const INITIAL_CAPACITY = 4096;
/** The (group, step) state cells of one block of an aggregation run series by series. */
const SERIES_MAJOR_AGG_CELLS = 1 << 18;

const METRIC_NAME = "__name__";
/** schema.IsMetadataLabel: the labels Prometheus drops with the metric name. */
const METADATA_LABELS = new Set([METRIC_NAME, "__type__", "__unit__"]);

const TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution";
const SAME_LABELSET = "vector cannot contain metrics with the same labelset";

/**
 * Functions whose result depends on the evaluation time, so a call is never step-invariant
 * even when its arguments are (engine.go's AtModifierUnsafeFunctions).
 */
const AT_MODIFIER_UNSAFE = new Set([
  "days_in_month",
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "hour",
  "minute",
  "month",
  "year",
  "predict_linear",
  "time",
  "timestamp",
]);

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/** Evaluates expr at one time: a vector, scalar or string, or a matrix for a top-level range selector or subquery. */
export async function instantQuery(
  q: Queryable,
  expr: Expr,
  timeMs: number,
  opts: EngineOptions = {},
): Promise<{ value: Value; annotations: Annotations }> {
  const ctx = await prepare(q, expr, timeMs, timeMs, 0, opts);
  const type = exprType(expr);
  const ev = new Evaluator(ctx, timeMs, timeMs, 1);
  if (type === "string") {
    return { value: { type: "string", t: timeMs, v: stringOf(expr) }, annotations: ctx.annotations };
  }
  if (type === "matrix") {
    const series = cleanupMatrix(ev.evalRangeValue(expr));
    series.sort((a, b) => compareLabels(a.labels, b.labels));
    return { value: { type: "matrix", matrix: toMatrix(series) }, annotations: ctx.annotations };
  }
  const series = ev.eval(expr);
  if (type === "scalar") {
    const s = series[0];
    const v = s !== undefined && s.n > 0 ? s.vs[0] : NaN;
    return { value: { type: "scalar", t: timeMs, v }, annotations: ctx.annotations };
  }
  // An instant vector keeps the evaluation order (sort(), topk() order their output).
  const vector: Vector = [];
  for (const s of series) {
    if (s.n === 0) continue;
    vector.push({ labels: s.dropName ? dropMetadata(s.labels) : s.labels, t: timeMs, v: s.vs[0] });
  }
  if (hasDuplicateLabels(vector)) throw new PromQLExecError(SAME_LABELSET);
  return { value: { type: "vector", vector }, annotations: ctx.annotations };
}

/** Evaluates expr at start, start+step, ... ≤ end: a matrix sorted by labels. */
export async function rangeQuery(
  q: Queryable,
  expr: Expr,
  startMs: number,
  endMs: number,
  stepMs: number,
  opts: EngineOptions = {},
): Promise<{ value: Value; annotations: Annotations }> {
  const type = exprType(expr);
  if (type !== "vector" && type !== "scalar") {
    throw new PromQLExecError(
      `invalid expression type "${documentedType(type)}" for range query, must be Scalar or instant Vector`,
    );
  }
  if (!(stepMs > 0)) throw new PromQLExecError("zero or negative query resolution step widths are not accepted");
  if (endMs < startMs) throw new PromQLExecError("end timestamp must not be before start time");
  const ctx = await prepare(q, expr, startMs, endMs, stepMs, opts);
  warnSortInRangeQuery(expr, ctx.annotations);
  const ev = new Evaluator(ctx, startMs, endMs, stepMs);
  const series = cleanupMatrix(ev.eval(expr));
  series.sort((a, b) => compareLabels(a.labels, b.labels));
  return { value: { type: "matrix", matrix: toMatrix(series) }, annotations: ctx.annotations };
}

function documentedType(t: ValueType): string {
  switch (t) {
    case "matrix":
      return "range vector";
    case "vector":
      return "instant vector";
    default:
      return t;
  }
}

// ---------------------------------------------------------------------------------------------
// Data in flight
// ---------------------------------------------------------------------------------------------

/**
 * One series of a node's result: its points at (some of) the evaluator's step times, ascending.
 * The arrays may be longer than n (they grow by doubling).
 */
interface StepSeries {
  labels: FlatLabels;
  /** Prometheus's DropName: __name__ goes at the end of evaluation (delayed name removal). */
  dropName: boolean;
  ts: Float64Array;
  vs: Float64Array;
  n: number;
  /** For timestamp()'s selector argument only: the times of the samples selected. */
  ot: Float64Array | null;
}

function newSeries(labels: FlatLabels, dropName: boolean, cap: number): StepSeries {
  const c = Math.max(cap, 1);
  return { labels, dropName, ts: new Float64Array(c), vs: new Float64Array(c), n: 0, ot: null };
}

function grow(s: StepSeries): void {
  const c = s.ts.length * 2;
  const ts = new Float64Array(c);
  ts.set(s.ts);
  const vs = new Float64Array(c);
  vs.set(s.vs);
  s.ts = ts;
  s.vs = vs;
  if (s.ot !== null) {
    const ot = new Float64Array(c);
    ot.set(s.ot);
    s.ot = ot;
  }
}

function pushPoint(s: StepSeries, t: number, v: number): void {
  if (s.n === s.ts.length) grow(s);
  s.ts[s.n] = t;
  s.vs[s.n] = v;
  s.n++;
}

function countPoints(m: StepSeries[]): number {
  let n = 0;
  for (const s of m) n += s.n;
  return n;
}

/** A selected series as loaded: raw samples, stale markers included. */
interface RawSeries {
  labels: FlatLabels;
  ts: Float64Array;
  vs: Float64Array;
  /** 1 where the sample is a stale marker; null when there is none. */
  stale: Uint8Array | null;
  /** The samples without stale markers (range selection), made on first use. */
  clean: { ts: Float64Array; vs: Float64Array } | null;
}

/**
 * Prometheus's stale marker is a NaN with one exact bit pattern (0x7ff0000000000002). V8 may
 * canonicalise NaNs passed around as numbers, so the bits are read from the array itself.
 */
function staleMask(vs: Float64Array): Uint8Array | null {
  let mask: Uint8Array | null = null;
  let words: Uint32Array | null = null;
  for (let i = 0; i < vs.length; i++) {
    const v = vs[i];
    if (v === v) continue; // not NaN
    if (words === null) words = new Uint32Array(vs.buffer, vs.byteOffset, vs.length * 2);
    // Little-endian (every platform Workers and Node run on): low word first.
    if (words[2 * i + 1] === 0x7ff00000 && words[2 * i] === 2) {
      if (mask === null) mask = new Uint8Array(vs.length);
      mask[i] = 1;
    }
  }
  return mask;
}

function cleanOf(r: RawSeries): { ts: Float64Array; vs: Float64Array } {
  if (r.clean !== null) return r.clean;
  if (r.stale === null) {
    r.clean = { ts: r.ts, vs: r.vs };
    return r.clean;
  }
  let n = 0;
  for (let i = 0; i < r.stale.length; i++) if (r.stale[i] === 0) n++;
  const ts = new Float64Array(n);
  const vs = new Float64Array(n);
  let j = 0;
  for (let i = 0; i < r.stale.length; i++) {
    if (r.stale[i] !== 0) continue;
    ts[j] = r.ts[i];
    vs[j] = r.vs[i];
    j++;
  }
  r.clean = { ts, vs };
  return r.clean;
}

/** State shared by the evaluators of one query (subqueries and step-invariant parts get their own). */
interface QueryContext {
  queryStart: number;
  queryEnd: number;
  queryStep: number;
  lookback: number;
  maxSamples: number;
  /** Samples currently held (Prometheus's currentSamples, approximately). */
  samples: number;
  deadline: number;
  subqueryStep: number;
  annotations: Annotations;
  data: Map<VectorSelector, RawSeries[]>;
  /** Nodes Prometheus's PreprocessExpr wraps in a StepInvariantExpr: evaluated once, repeated. */
  invariant: Set<Expr>;
  functions: Record<string, FunctionDef>;
}

// ---------------------------------------------------------------------------------------------
// Preparation: time ranges, loading, step invariance
// ---------------------------------------------------------------------------------------------

async function prepare(
  q: Queryable,
  expr: Expr,
  start: number,
  end: number,
  step: number,
  opts: EngineOptions,
): Promise<QueryContext> {
  const ctx: QueryContext = {
    queryStart: start,
    queryEnd: end,
    queryStep: step,
    lookback: opts.lookbackDeltaMs !== undefined && opts.lookbackDeltaMs > 0 ? opts.lookbackDeltaMs : DEFAULT_LOOKBACK_MS,
    maxSamples: opts.maxSamples ?? DEFAULT_MAX_SAMPLES,
    samples: 0,
    deadline: opts.timeoutMs !== undefined && opts.timeoutMs > 0 ? Date.now() + opts.timeoutMs : Infinity,
    subqueryStep:
      opts.defaultSubqueryStepMs !== undefined && opts.defaultSubqueryStepMs > 0
        ? opts.defaultSubqueryStepMs
        : DEFAULT_SUBQUERY_STEP_MS,
    annotations: new Annotations(),
    data: new Map(),
    invariant: new Set(),
    functions: FUNCTIONS,
  };

  const ranges: SelectorRange[] = [];
  collectSelectors(expr, ctx, { off: 0, range: 0, at: null }, 0, ranges);
  // Selectors with the same matchers and overlapping ranges (rate(x[5m]) / x) share one
  // select() over the union: every use bounds its own reads, so more data is harmless.
  const loads = mergeLoads(ranges);
  const loaded = await Promise.all(loads.map((l) => q.select(l.matchers, l.mint, l.maxt)));
  checkDeadline(ctx);
  for (let i = 0; i < loads.length; i++) {
    const raws: RawSeries[] = [];
    for (const s of loaded[i]) {
      if (s.timestamps.length === 0) continue;
      raws.push({ labels: s.labels, ts: s.timestamps, vs: s.values, stale: staleMask(s.values), clean: null });
    }
    for (const vs of loads[i].selectors) ctx.data.set(vs, raws);
  }

  const [, wrap] = markInvariant(expr, ctx.invariant);
  if (wrap) ctx.invariant.add(expr);
  return ctx;
}

interface SelectorRange {
  vs: VectorSelector;
  mint: number;
  maxt: number;
}

interface Load {
  matchers: VectorSelector["matchers"];
  mint: number;
  maxt: number;
  selectors: VectorSelector[];
}

/** One load per run of overlapping or adjacent ranges of the same matchers. */
function mergeLoads(ranges: SelectorRange[]): Load[] {
  const byMatchers = new Map<string, SelectorRange[]>();
  for (const r of ranges) {
    const key = r.vs.matchers
      .map((m) => `${m.name}\u0000${m.type}\u0000${m.value}`)
      .sort()
      .join("\u0001");
    const list = byMatchers.get(key);
    if (list === undefined) byMatchers.set(key, [r]);
    else list.push(r);
  }
  const loads: Load[] = [];
  for (const list of byMatchers.values()) {
    list.sort((a, b) => a.mint - b.mint);
    let cur: Load | null = null;
    for (const r of list) {
      if (cur !== null && r.mint <= cur.maxt + 1) {
        cur.maxt = Math.max(cur.maxt, r.maxt);
        cur.selectors.push(r.vs);
        continue;
      }
      cur = { matchers: r.vs.matchers, mint: r.mint, maxt: r.maxt, selectors: [r.vs] };
      loads.push(cur);
    }
  }
  return loads;
}

interface SubqueryPath {
  off: number;
  range: number;
  at: number | null;
}

function resolveAt(at: AtModifier, ctx: { queryStart: number; queryEnd: number }): number | null {
  if (at === null) return null;
  switch (at.kind) {
    case "time":
      return at.ms;
    case "start":
      return ctx.queryStart;
    case "end":
      return ctx.queryEnd;
  }
}

/** Every selector with the time range it reads (engine.go's getTimeRangesForSelector). */
function collectSelectors(
  e: Expr,
  ctx: QueryContext,
  path: SubqueryPath,
  evalRange: number,
  out: SelectorRange[],
): void {
  switch (e.type) {
    case "VectorSelector": {
      let start = ctx.queryStart;
      let end = ctx.queryEnd;
      if (path.at !== null) {
        start = path.at;
        end = path.at;
      }
      const at = resolveAt(e.at, ctx);
      if (at !== null) {
        // The selector's own @ overrides everything around it.
        start = at;
        end = at;
      } else {
        start -= path.off + path.range;
        end -= path.off;
      }
      // The lookback window and ranges are left-open: a sample exactly at the boundary is out.
      start -= (evalRange === 0 ? ctx.lookback : evalRange) - 1;
      start -= e.offset;
      end -= e.offset;
      out.push({ vs: e, mint: start, maxt: end });
      return;
    }
    case "MatrixSelector":
      collectSelectors(e.vectorSelector, ctx, path, e.range, out);
      return;
    case "SubqueryExpr": {
      const at = resolveAt(e.at, ctx);
      // An @ on a subquery resets the offsets and ranges accumulated outside it.
      const inner: SubqueryPath =
        at !== null
          ? { off: e.offset, range: e.range, at }
          : { off: path.off + e.offset, range: path.range + e.range, at: path.at };
      collectSelectors(e.expr, ctx, inner, 0, out);
      return;
    }
    case "AggregateExpr":
      if (e.param !== null) collectSelectors(e.param, ctx, path, 0, out);
      collectSelectors(e.expr, ctx, path, 0, out);
      return;
    case "BinaryExpr":
      collectSelectors(e.lhs, ctx, path, 0, out);
      collectSelectors(e.rhs, ctx, path, 0, out);
      return;
    case "Call":
      for (const a of e.args) collectSelectors(a, ctx, path, 0, out);
      return;
    case "UnaryExpr":
    case "ParenExpr":
      collectSelectors(e.expr, ctx, path, 0, out);
      return;
    case "NumberLiteral":
    case "StringLiteral":
      return;
  }
}

function unwrapParens(e: Expr): Expr {
  while (e.type === "ParenExpr") e = e.expr;
  return e;
}

const SORT_FUNCTIONS = new Set(["sort", "sort_desc", "sort_by_label", "sort_by_label_desc"]);

/** Prometheus warns about every sort function in a range query: its result is ordered by labels anyway. */
function warnSortInRangeQuery(e: Expr, annotations: Annotations): void {
  if (e.type === "Call" && SORT_FUNCTIONS.has(e.func)) {
    annotations.warn(
      `PromQL warning: sort is ineffective for range queries since results are always ordered by labels${posSuffix(e)}`,
    );
  }
  switch (e.type) {
    case "Call":
      for (const a of e.args) warnSortInRangeQuery(a, annotations);
      break;
    case "AggregateExpr":
      if (e.param !== null) warnSortInRangeQuery(e.param, annotations);
      warnSortInRangeQuery(e.expr, annotations);
      break;
    case "BinaryExpr":
      warnSortInRangeQuery(e.lhs, annotations);
      warnSortInRangeQuery(e.rhs, annotations);
      break;
    case "ParenExpr":
    case "UnaryExpr":
    case "SubqueryExpr":
      warnSortInRangeQuery(e.expr, annotations);
      break;
    default:
      break;
  }
}

/**
 * engine.go's preprocessExprHelper: finds the highest step-invariant subtrees (those under an
 * @ modifier, and literals around them) and records which to evaluate once and repeat.
 * Returns [isStepInvariant, shouldWrap].
 */
function markInvariant(e: Expr, set: Set<Expr>): [boolean, boolean] {
  const wrap = (x: Expr): void => {
    // Range selectors and subqueries are evaluated by the function that reads them.
    const u = unwrapParens(x);
    if (u.type !== "MatrixSelector" && u.type !== "SubqueryExpr") set.add(x);
  };
  switch (e.type) {
    case "VectorSelector":
      return [e.at !== null, e.at !== null];
    case "AggregateExpr":
      // As Prometheus: only the aggregated expression decides (the parameter is not looked at).
      return markInvariant(unwrapParens(e.expr), set);
    case "BinaryExpr": {
      const [li, lw] = markInvariant(e.lhs, set);
      const [ri, rw] = markInvariant(e.rhs, set);
      if (li && ri) return [true, true];
      if (lw) wrap(e.lhs);
      if (rw) wrap(e.rhs);
      return [false, false];
    }
    case "Call": {
      let inv = !AT_MODIFIER_UNSAFE.has(e.func);
      const wraps: boolean[] = [];
      for (const a of e.args) {
        const [ai, aw] = markInvariant(unwrapParens(a), set);
        inv = inv && ai;
        wraps.push(aw);
      }
      if (inv) return [true, true];
      for (let i = 0; i < e.args.length; i++) if (wraps[i]) wrap(unwrapParens(e.args[i]));
      return [false, false];
    }
    case "MatrixSelector": {
      const [inv] = markInvariant(e.vectorSelector, set);
      return [inv, false];
    }
    case "SubqueryExpr": {
      const [inv] = markInvariant(e.expr, set);
      // The inside is evaluated once, at the subquery's first step, when it is invariant.
      if (inv) wrap(e.expr);
      const at = e.at !== null;
      return [at, at];
    }
    case "ParenExpr":
    case "UnaryExpr":
      return markInvariant(e.expr, set);
    case "NumberLiteral":
    case "StringLiteral":
      return [true, false];
  }
}

function checkDeadline(ctx: QueryContext): void {
  if (ctx.deadline !== Infinity && Date.now() > ctx.deadline) {
    // Note: inside a Worker the clock only advances across I/O, so this fires at the next
    // check after an await; the platform's CPU limit bounds a purely synchronous run.
    throw new PromQLTimeoutError("query timed out in expression evaluation");
  }
}

function stringOf(e: Expr): string {
  const u = unwrapParens(e);
  if (u.type === "StringLiteral") return u.val;
  throw new PromQLExecError(`unexpected string expression ${u.type}`);
}

// ---------------------------------------------------------------------------------------------
// Output of a node: series by label set, in first-seen order
// ---------------------------------------------------------------------------------------------

/**
 * Collects the samples an operator produces step by step into series. A series is found by
 * its position in the previous step's output first (operators emit in a stable order and hand
 * out the same label array for a series at every step), then by array identity, then by key.
 * Two samples for one label set at one step are an error, as in engine.go's rangeEval.
 */
class Collector {
  readonly out: StepSeries[] = [];
  private readonly byRef = new Map<FlatLabels, StepSeries>();
  private readonly byKey = new Map<string, StepSeries>();
  private prev: StepSeries[] = [];
  private cur: StepSeries[] = [];
  private lastT = NaN;

  constructor(
    private readonly ctx: QueryContext,
    private readonly cap: number,
  ) {}

  private find(labels: FlatLabels, dropName: boolean): StepSeries {
    let s = this.byRef.get(labels);
    if (s === undefined) {
      const key = seriesKey(labels);
      s = this.byKey.get(key);
      if (s === undefined) {
        // The series keeps the dropName of its first sample (engine.go rangeEval).
        s = newSeries(labels, dropName, this.cap);
        this.byKey.set(key, s);
        this.out.push(s);
      }
      // Label arrays made fresh at every step would grow this map without bound.
      if (this.byRef.size > 4 * this.out.length + 1024) this.byRef.clear();
      this.byRef.set(labels, s);
    }
    return s;
  }

  add(labels: FlatLabels, dropName: boolean, t: number, v: number): void {
    if (t !== this.lastT) {
      const x = this.prev;
      this.prev = this.cur;
      this.cur = x;
      this.cur.length = 0;
      this.lastT = t;
    }
    let s = this.prev[this.cur.length];
    if (s === undefined || s.labels !== labels) s = this.find(labels, dropName);
    this.cur.push(s);
    if (s.n > 0 && s.ts[s.n - 1] === t) throw new PromQLExecError(SAME_LABELSET);
    pushPoint(s, t, v);
    if (++this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
  }
}

/** Walks an operand's series step by step: which series have a point at t, and where. */
class Cursor {
  private readonly pos: Int32Array;
  /** Series indexes with a point at the last step gathered, and the point's position. */
  readonly idx: Int32Array;
  readonly at: Int32Array;
  count = 0;

  constructor(readonly m: StepSeries[]) {
    this.pos = new Int32Array(m.length);
    this.idx = new Int32Array(m.length);
    this.at = new Int32Array(m.length);
  }

  gather(t: number): number {
    const m = this.m;
    const pos = this.pos;
    let c = 0;
    for (let i = 0; i < m.length; i++) {
      const s = m[i];
      const p = pos[i];
      if (p < s.n && s.ts[p] === t) {
        this.idx[c] = i;
        this.at[c] = p;
        c++;
        pos[i] = p + 1;
      }
    }
    this.count = c;
    return c;
  }
}

/**
 * The window of one series handed to range functions. Its views are made only if read (a view
 * costs about as much as a small range function); functions can read srcTimestamps/srcValues
 * with lo/hi instead and make none.
 */
class Window implements WindowSeries {
  srcTimestamps: Float64Array;
  srcValues: Float64Array;
  lo = 0;
  hi = 0;
  private tView: Float64Array | null = null;
  private vView: Float64Array | null = null;

  constructor(
    readonly labels: FlatLabels,
    ts: Float64Array,
    vs: Float64Array,
    readonly dropName: boolean,
  ) {
    this.srcTimestamps = ts;
    this.srcValues = vs;
  }

  get timestamps(): Float64Array {
    if (this.tView === null) this.tView = this.srcTimestamps.subarray(this.lo, this.hi);
    return this.tView;
  }

  get values(): Float64Array {
    if (this.vView === null) this.vView = this.srcValues.subarray(this.lo, this.hi);
    return this.vView;
  }

  set(lo: number, hi: number): void {
    if (lo === this.lo && hi === this.hi) return;
    this.lo = lo;
    this.hi = hi;
    this.tView = null;
    this.vView = null;
  }
}

/** First index ≥ from with ts[i] > bound (ts ascending): a short linear walk, then binary search. */
function advance(ts: Float64Array, n: number, from: number, bound: number): number {
  let i = from;
  for (let k = 0; k < 8; k++) {
    if (i >= n || ts[i] > bound) return i;
    i++;
  }
  let lo = i;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid] > bound) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// The evaluator
// ---------------------------------------------------------------------------------------------

interface ResultMetric {
  labels: FlatLabels;
  /** Signature and label set, to find duplicate results of many-to-one matching. */
  key: string;
}

interface WindowSource {
  series: { labels: FlatLabels; ts: Float64Array; vs: Float64Array; n: number; dropName: boolean }[];
  offset: number;
  range: number;
  at: number | null;
}

class Evaluator {
  readonly steps: number;

  constructor(
    readonly ctx: QueryContext,
    readonly start: number,
    readonly end: number,
    readonly interval: number,
  ) {
    this.steps = end < start ? 0 : Math.floor((end - start) / interval) + 1;
  }

  /**
   * The first capacity of a result series: all steps, up to a bound (arrays grow by doubling),
   * so a very fine subquery does not allocate for points it may never hold.
   */
  private cap(): number {
    return Math.min(this.steps, INITIAL_CAPACITY);
  }

  private time(k: number): number {
    return this.start + k * this.interval;
  }

  private tick(): void {
    checkDeadline(this.ctx);
  }

  /** Evaluates an instant-vector or scalar expression over all steps. */
  eval(e: Expr): StepSeries[] {
    if (this.steps === 0) return [];
    if (this.steps > 1 && this.ctx.invariant.has(e)) return this.evalInvariant(e);
    const before = this.ctx.samples;
    const out = this.evalNode(e);
    // The inputs are released; what this node returns stays in memory (engine.go's accounting).
    this.ctx.samples = before + countPoints(out);
    if (this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
    return out;
  }

  private evalNode(e: Expr): StepSeries[] {
    switch (e.type) {
      case "NumberLiteral":
        return [this.constant(e.val)];
      case "StringLiteral":
        throw new PromQLExecError("unexpected string literal");
      case "ParenExpr":
        return this.eval(e.expr);
      case "UnaryExpr":
        return this.evalUnary(e.op, e.expr);
      case "VectorSelector":
        return this.evalVectorSelector(e, false);
      case "MatrixSelector":
      case "SubqueryExpr":
        if (this.steps !== 1) throw new PromQLExecError("cannot do range evaluation of matrix selector");
        return this.evalRangeValue(e);
      case "AggregateExpr":
        return this.evalAggregate(e);
      case "BinaryExpr":
        return this.evalBinary(e);
      case "Call":
        return this.evalCall(e);
    }
  }

  /** A StepInvariantExpr: evaluated at the first step only, its points repeated at every step. */
  private evalInvariant(e: Expr): StepSeries[] {
    const once = new Evaluator(this.ctx, this.start, this.start, this.interval).eval(e);
    const out: StepSeries[] = [];
    for (const s of once) {
      if (s.n === 0) continue;
      const r = newSeries(s.labels, s.dropName, this.steps);
      const v = s.vs[0];
      for (let k = 0; k < this.steps; k++) {
        r.ts[k] = this.time(k);
        r.vs[k] = v;
      }
      if (s.ot !== null) r.ot = new Float64Array(this.steps).fill(s.ot[0]);
      r.n = this.steps;
      out.push(r);
    }
    return out;
  }

  private constant(v: number): StepSeries {
    const s = newSeries([], false, this.steps);
    for (let k = 0; k < this.steps; k++) {
      s.ts[k] = this.time(k);
      s.vs[k] = v;
    }
    s.n = this.steps;
    return s;
  }

  /** A scalar operand as one value per step (NaN where it has none). */
  private dense(m: StepSeries[]): Float64Array {
    const s = m[0];
    if (s !== undefined && s.n === this.steps && s.vs.length === this.steps) return s.vs;
    const out = new Float64Array(this.steps).fill(NaN);
    if (s !== undefined) {
      for (let i = 0; i < s.n; i++) out[Math.round((s.ts[i] - this.start) / this.interval)] = s.vs[i];
    }
    return out;
  }

  // --- selectors ---------------------------------------------------------------------------

  /**
   * Instant selection: at each step the newest sample in (ref - lookback, ref], ref being the
   * step (or the @ time) minus the offset; none if that sample is a stale marker.
   */
  private evalVectorSelector(e: VectorSelector, recordOrigT: boolean): StepSeries[] {
    const raws = this.ctx.data.get(e) ?? [];
    const at = resolveAt(e.at, this.ctx);
    const lookback = this.ctx.lookback;
    const out: StepSeries[] = [];
    for (const r of raws) {
      this.tick();
      const ts = r.ts;
      const n = ts.length;
      const stale = r.stale;
      let s: StepSeries;
      if (at !== null) {
        // Step-invariant: one lookup, repeated.
        s = newSeries(r.labels, false, this.steps);
        if (recordOrigT) s.ot = new Float64Array(s.ts.length);
        const ref = at - e.offset;
        const j = advance(ts, n, 0, ref) - 1;
        if (j >= 0 && ts[j] > ref - lookback && (stale === null || stale[j] === 0)) {
          for (let k = 0; k < this.steps; k++) {
            s.ts[k] = this.time(k);
            s.vs[k] = r.vs[j];
            if (s.ot !== null) s.ot[k] = ts[j];
          }
          s.n = this.steps;
        }
      } else {
        s = newSeries(r.labels, false, this.cap());
        if (recordOrigT) s.ot = new Float64Array(s.ts.length);
        let j = 0;
        for (let k = 0; k < this.steps; k++) {
          const t = this.time(k);
          const ref = t - e.offset;
          j = advance(ts, n, j, ref);
          const i = j - 1;
          if (i < 0 || ts[i] <= ref - lookback || (stale !== null && stale[i] !== 0)) continue;
          pushPoint(s, t, r.vs[i]);
          if (s.ot !== null) s.ot[s.n - 1] = ts[i];
        }
      }
      if (s.n === 0) continue;
      this.ctx.samples += s.n;
      if (this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
      out.push(s);
    }
    return out;
  }

  /** A matrix selector or subquery as a range-function argument: its series and window rule. */
  private windowSource(e: MatrixSelector | SubqueryExpr): WindowSource {
    if (e.type === "MatrixSelector") {
      const vs = e.vectorSelector;
      const raws = this.ctx.data.get(vs) ?? [];
      const series = raws.map((r) => {
        const c = cleanOf(r);
        return { labels: r.labels, ts: c.ts, vs: c.vs, n: c.ts.length, dropName: false };
      });
      return { series, offset: vs.offset, range: e.range, at: resolveAt(vs.at, this.ctx) };
    }
    const at = resolveAt(e.at, this.ctx);
    const step = e.step > 0 ? e.step : this.ctx.subqueryStep;
    const refStart = at ?? this.start;
    const refEnd = at ?? this.end;
    // The first step after (start - offset - range) that is a multiple of the step (Go's
    // truncating division, as engine.go computes it).
    const lo = refStart - e.offset - e.range;
    let subStart = step * Math.trunc(lo / step);
    if (subStart <= lo) subStart += step;
    const sub = new Evaluator(this.ctx, subStart, refEnd - e.offset, step);
    const series = sub.eval(e.expr);
    return { series, offset: e.offset, range: e.range, at };
  }

  /** A top-level range selector or subquery of an instant query: the points in its window. */
  evalRangeValue(expr: Expr): StepSeries[] {
    const e = unwrapParens(expr);
    if (e.type !== "MatrixSelector" && e.type !== "SubqueryExpr") {
      throw new PromQLExecError(`unexpected expression type ${e.type} for a range vector`);
    }
    const src = this.windowSource(e);
    const maxt = (src.at ?? this.start) - src.offset;
    const mint = maxt - src.range;
    const out: StepSeries[] = [];
    for (const s of src.series) {
      const lo = advance(s.ts, s.n, 0, mint);
      const hi = advance(s.ts, s.n, lo, maxt);
      if (hi <= lo) continue;
      const r = newSeries(s.labels, s.dropName, hi - lo);
      r.ts.set(s.ts.subarray(lo, hi));
      r.vs.set(s.vs.subarray(lo, hi));
      r.n = hi - lo;
      this.ctx.samples += r.n;
      if (this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
      out.push(r);
    }
    return out;
  }

  // --- unary -------------------------------------------------------------------------------

  private evalUnary(op: "-" | "+", inner: Expr): StepSeries[] {
    const m = this.eval(inner);
    if (op === "+") return m;
    const scalar = exprType(inner) === "scalar";
    return m.map((s) => {
      const r = newSeries(s.labels, scalar ? s.dropName : true, s.n);
      for (let i = 0; i < s.n; i++) {
        r.ts[i] = s.ts[i];
        r.vs[i] = -s.vs[i];
      }
      r.n = s.n;
      return r;
    });
  }

  // --- function calls ----------------------------------------------------------------------

  private evalCall(e: Call): StepSeries[] {
    const def = this.ctx.functions[e.func];
    if (def === undefined) throw new PromQLExecError(`unknown function with name "${e.func}"`);
    for (let i = 0; i < e.args.length; i++) {
      const a = unwrapParens(e.args[i]);
      if (a.type === "MatrixSelector" || a.type === "SubqueryExpr") return this.evalRangeCall(e, def, i, a);
    }
    return this.evalInstantCall(e, def);
  }

  private functionContext(e: Call): FunctionContext {
    return {
      ts: this.start,
      rangeStart: 0,
      rangeEnd: 0,
      annotations: this.ctx.annotations,
      args: e.args,
      queryStart: this.ctx.queryStart,
      queryEnd: this.ctx.queryEnd,
      queryStep: this.ctx.queryStep,
    };
  }

  /** The dropName of a function's output sample (engine.go rangeEval + functions.go). */
  private static outDropName(def: FunctionDef, s: Sample, inputDrop: boolean): boolean {
    if (def.keepsMetricName !== true) return true;
    return s.dropName === true || inputDrop;
  }

  private evalInstantCall(e: Call, def: FunctionDef): StepSeries[] {
    const n = e.args.length;
    const kinds: ValueType[] = [];
    const cursors: (Cursor | null)[] = [];
    const pools: Sample[][] = [];
    const vectors: Sample[][] = [];
    const scalars: (Float64Array | null)[] = [];
    const vals: FunctionArg[] = new Array<FunctionArg>(n);
    for (let i = 0; i < n; i++) {
      const a = unwrapParens(e.args[i]);
      const kind = exprType(a);
      kinds.push(kind);
      cursors.push(null);
      pools.push([]);
      vectors.push([]);
      scalars.push(null);
      if (kind === "string") {
        vals[i] = stringOf(a);
      } else if (kind === "scalar") {
        scalars[i] = this.dense(this.eval(a));
      } else {
        // timestamp() reports the selected sample's own time (engine.go's
        // rangeEvalTimestampFunctionOverVectorSelector).
        const m =
          e.func === "timestamp" && a.type === "VectorSelector" ? this.evalVectorSelector(a, true) : this.eval(a);
        cursors[i] = new Cursor(m);
      }
    }
    const fctx = this.functionContext(e);
    const coll = new Collector(this.ctx, this.cap());
    const keeps = def.keepsMetricName === true;
    // Outputs are matched to the (first) vector argument's samples to restore labels and find
    // pending name drops; not for scalar results, which are no input series' values.
    const firstVector = exprType(e) === "vector" ? cursors.findIndex((c) => c !== null) : -1;
    const firstCursor = firstVector >= 0 ? cursors[firstVector] : null;
    // Per input series, the output label array last matched to it (implementations cache the
    // name-less labels per input, so this is an identity check from the second step on).
    const restored: (FlatLabels | undefined)[] = [];
    // label_replace/label_join writing __name__ cancel a pending drop (functions.go).
    const writesName = (e.func === "label_replace" || e.func === "label_join") && vals[1] === METRIC_NAME;
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      for (let i = 0; i < n; i++) {
        const cur = cursors[i];
        if (cur !== null) {
          const c = cur.gather(t);
          const vec = vectors[i];
          const pool = pools[i];
          vec.length = 0;
          for (let j = 0; j < c; j++) {
            const si = cur.idx[j];
            const p = cur.at[j];
            const s = cur.m[si];
            let smp = pool[si];
            if (smp === undefined) {
              smp = { labels: s.labels, t, v: 0, dropName: s.dropName };
              pool[si] = smp;
            }
            // Everything is reset at every step: an implementation may have changed it.
            smp.labels = s.labels;
            smp.t = s.ot !== null ? s.ot[p] : t;
            smp.v = s.vs[p];
            smp.dropName = s.dropName;
            vec.push(smp);
          }
          vals[i] = vec;
        } else if (kinds[i] === "scalar") {
          vals[i] = (scalars[i] as Float64Array)[k];
        }
      }
      fctx.ts = t;
      const res = def.impl(vals, fctx);
      const inVec = firstVector >= 0 ? vectors[firstVector] : null;
      let at = 0;
      for (let j = 0; j < res.length; j++) {
        const o = res[j];
        let labels = o.labels;
        if (!keeps && inVec !== null) {
          // Prometheus keeps an input's labels and drops __name__ at the end (delayed name
          // removal), so that e.g. sum(abs({job="x"})) adds up series of several names. An
          // implementation that already dropped it gets the input's labels back, matched in
          // order as element-wise functions emit (a few inputs may be skipped).
          for (let look = 0; look < 4 && at + look < inVec.length; look++) {
            const inLabels = inVec[at + look].labels;
            const si = (firstCursor as Cursor).idx[at + look];
            if (inLabels === labels || restored[si] === labels || isDroppedOf(labels, inLabels)) {
              restored[si] = labels;
              labels = inLabels;
              at += look + 1;
              break;
            }
          }
        }
        let drop = true;
        if (keeps) {
          if (o.dropName !== undefined) drop = o.dropName;
          else if (inVec !== null && res.length === inVec.length) {
            // An implementation that did not say: the input's pending drop, which label_replace
            // and label_join keep unless they write __name__ (functions.go).
            drop = !writesName && inVec[j].dropName === true;
          } else drop = false;
        }
        coll.add(labels, drop, t, o.v);
      }
    }
    return coll.out;
  }

  private evalRangeCall(e: Call, def: FunctionDef, mi: number, arg: MatrixSelector | SubqueryExpr): StepSeries[] {
    const n = e.args.length;
    const scalars: (Float64Array | null)[] = [];
    const vals: FunctionArg[] = new Array<FunctionArg>(n);
    for (let i = 0; i < n; i++) {
      scalars.push(null);
      if (i === mi) continue;
      const a = unwrapParens(e.args[i]);
      const kind = exprType(a);
      if (kind === "string") vals[i] = stringOf(a);
      else if (kind === "scalar") scalars[i] = this.dense(this.eval(a));
      else throw new PromQLExecError(`unexpected argument of type ${kind} to ${e.func}()`);
    }
    const src = this.windowSource(arg);
    const fctx = this.functionContext(e);
    // absent_over_time looks at all series at once (engine.go special-cases it too).
    const out =
      e.func === "absent_over_time"
        ? this.rangeCallByStep(def, src, mi, vals, scalars, fctx)
        : this.rangeCallBySeries(def, src, mi, vals, scalars, fctx);
    if (e.func === "rate" || e.func === "increase") this.nonCounterInfo(src, out.produced, posSuffix(e.args[mi]));
    return out.series;
  }

  /**
   * The usual case, as engine.go does it: one series at a time over all steps (memory is read
   * in order), calling the function with that one series' window.
   */
  private rangeCallBySeries(
    def: FunctionDef,
    src: WindowSource,
    mi: number,
    vals: FunctionArg[],
    scalars: (Float64Array | null)[],
    fctx: FunctionContext,
  ): { series: StepSeries[]; produced: Uint8Array } {
    const ns = src.series.length;
    const produced = new Uint8Array(ns);
    const one: WindowSeries[] = [];
    vals[mi] = one;
    const held = this.ctx.samples;
    const out: StepSeries[] = [];
    // Output labels other than the input's own array may collide: checked after the loop.
    let relabelled = false;
    let extra: Collector | null = null;
    const keeps = def.keepsMetricName === true;
    for (let i = 0; i < ns; i++) {
      this.tick();
      const s = src.series[i];
      const w = new Window(s.labels, s.ts, s.vs, s.dropName);
      one.length = 1;
      one[0] = w;
      let res: StepSeries | null = null;
      let first: FlatLabels | null = null;
      let lo = 0;
      let hi = 0;
      for (let k = 0; k < this.steps; k++) {
        const t = this.time(k);
        const maxt = (src.at ?? t) - src.offset;
        const mint = maxt - src.range;
        lo = advance(s.ts, s.n, lo, mint);
        hi = advance(s.ts, s.n, hi > lo ? hi : lo, maxt);
        if (hi <= lo) continue; // As Prometheus: no call for a step without points.
        // Prometheus holds one window at a time besides the results.
        if (held + hi - lo > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
        w.set(lo, hi);
        for (let j = 0; j < scalars.length; j++) {
          const sc = scalars[j];
          if (sc !== null) vals[j] = sc[k];
        }
        fctx.ts = t;
        fctx.rangeStart = mint;
        fctx.rangeEnd = maxt;
        const r = def.impl(vals, fctx);
        for (let j = 0; j < r.length; j++) {
          const o = r[j];
          if (res === null) {
            // An implementation that dropped __name__ itself gets the input's labels back: the
            // name goes at the end (see evalInstantCall).
            first = o.labels;
            const labels = !keeps && o.labels !== s.labels && isDroppedOf(o.labels, s.labels) ? s.labels : o.labels;
            res = newSeries(labels, Evaluator.outDropName(def, o, s.dropName), this.cap());
            if (labels !== s.labels) relabelled = true;
          } else if ((o.labels !== first && !sameLabels(o.labels, first as FlatLabels)) || res.ts[res.n - 1] === t) {
            // More than one output per series: route it through a collector.
            extra ??= new Collector(this.ctx, this.cap());
            extra.add(o.labels, Evaluator.outDropName(def, o, s.dropName), t, o.v);
            continue;
          }
          pushPoint(res, t, o.v);
        }
      }
      one.length = 0;
      if (res === null) continue;
      produced[i] = 1;
      this.ctx.samples += res.n;
      if (this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
      out.push(res);
    }
    if (extra !== null) {
      out.push(...extra.out);
      relabelled = true;
    }
    return { series: relabelled ? mergeSameLabels(out) : out, produced };
  }

  /** All series per call, step by step (for functions that need to see every series). */
  private rangeCallByStep(
    def: FunctionDef,
    src: WindowSource,
    mi: number,
    vals: FunctionArg[],
    scalars: (Float64Array | null)[],
    fctx: FunctionContext,
  ): { series: StepSeries[]; produced: Uint8Array } {
    const ns = src.series.length;
    const windows = src.series.map((s) => new Window(s.labels, s.ts, s.vs, s.dropName));
    const los = new Int32Array(ns);
    const his = new Int32Array(ns);
    const active: WindowSeries[] = [];
    vals[mi] = active;
    const coll = new Collector(this.ctx, this.cap());
    const held = this.ctx.samples;
    const dropByLabels = new Map<FlatLabels, boolean>();
    for (const s of src.series) if (s.dropName) dropByLabels.set(s.labels, true);
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      const maxt = (src.at ?? t) - src.offset;
      const mint = maxt - src.range;
      active.length = 0;
      let inWindows = 0;
      for (let i = 0; i < ns; i++) {
        const s = src.series[i];
        const lo = advance(s.ts, s.n, los[i], mint);
        const hi = advance(s.ts, s.n, Math.max(his[i], lo), maxt);
        los[i] = lo;
        his[i] = hi;
        if (hi <= lo) continue;
        windows[i].set(lo, hi);
        active.push(windows[i]);
        inWindows += hi - lo;
      }
      if (held + inWindows > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
      for (let j = 0; j < scalars.length; j++) {
        const sc = scalars[j];
        if (sc !== null) vals[j] = sc[k];
      }
      fctx.ts = t;
      fctx.rangeStart = mint;
      fctx.rangeEnd = maxt;
      const res = def.impl(vals, fctx);
      for (let j = 0; j < res.length; j++) {
        const o = res[j];
        coll.add(o.labels, Evaluator.outDropName(def, o, dropByLabels.get(o.labels) ?? false), t, o.v);
      }
    }
    return { series: coll.out, produced: new Uint8Array(ns) };
  }

  /** engine.go: rate()/increase() over a series whose name does not look like a counter's. */
  private nonCounterInfo(src: WindowSource, produced: Uint8Array, at: string): void {
    for (let i = 0; i < src.series.length; i++) {
      if (produced[i] === 0) continue;
      const name = getLabel(src.series[i].labels, METRIC_NAME);
      if (name === "" || /_(total|sum|count|bucket)$/.test(name)) continue;
      this.ctx.annotations.info(
        `PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: ${goQuote(name)}${at}`,
      );
    }
  }

  // --- binary operators --------------------------------------------------------------------

  private evalBinary(e: BinaryExpr): StepSeries[] {
    const lt = exprType(e.lhs);
    const rt = exprType(e.rhs);
    if (lt === "scalar" && rt === "scalar") {
      const l = this.dense(this.eval(e.lhs));
      const r = this.dense(this.eval(e.rhs));
      const s = newSeries([], false, this.steps);
      for (let k = 0; k < this.steps; k++) {
        s.ts[k] = this.time(k);
        s.vs[k] = scalarBinop(e.op, l[k], r[k]);
      }
      s.n = this.steps;
      return [s];
    }
    if (lt === "scalar" || rt === "scalar") return this.evalVectorScalar(e, lt === "scalar");
    const matching: VectorMatching = e.matching ?? {
      card: isSetOperator(e.op) ? "many-to-many" : "one-to-one",
      matchingLabels: [],
      on: false,
      include: [],
    };
    const lhs = this.eval(e.lhs);
    const rhs = this.eval(e.rhs);
    if (isSetOperator(e.op)) return this.evalSetOp(e.op, lhs, rhs, matching);
    return this.evalVectorBinop(e, lhs, rhs, matching);
  }

  private evalVectorScalar(e: BinaryExpr, scalarLeft: boolean): StepSeries[] {
    // Left before right, as engine.go evaluates them (the first error wins).
    const l = this.eval(e.lhs);
    const r = this.eval(e.rhs);
    const vec = scalarLeft ? r : l;
    const sc = this.dense(scalarLeft ? l : r);
    const comparison = isComparison(e.op);
    const opc = opCode(e.op);
    const dropAll = changesMetricSchema(e.op) || e.returnBool;
    // Every input series maps to at most one output series: no collector needed.
    return vec
      .map((s) => {
        const o = newSeries(s.labels, dropAll || s.dropName, s.n);
        for (let i = 0; i < s.n; i++) {
          const x = s.vs[i];
          const y = sc[Math.round((s.ts[i] - this.start) / this.interval)];
          const lf = scalarLeft ? y : x;
          const rf = scalarLeft ? x : y;
          let v = elemValue(opc, lf, rf);
          let keep = comparison ? compare(opc, lf, rf) : true;
          // A comparison keeps the vector's value even when the scalar is on the left.
          if (comparison) v = x;
          if (e.returnBool) {
            v = keep ? 1 : 0;
            keep = true;
          }
          if (!keep) continue;
          o.ts[o.n] = s.ts[i];
          o.vs[o.n] = v;
          o.n++;
        }
        return o;
      })
      .filter((s) => s.n > 0);
  }

  /** Join signatures: series with equal signatures match. Returns per-side ordinals and their count. */
  private static signatures(
    lhs: StepSeries[],
    rhs: StepSeries[],
    matching: VectorMatching,
  ): { l: Int32Array; r: Int32Array; count: number } {
    const names = new Set(matching.matchingLabels);
    if (!matching.on) names.add(METRIC_NAME);
    const ords = new Map<string, number>();
    const sig = (labels: FlatLabels): number => {
      let key = "";
      for (let i = 0; i < labels.length; i += 2) {
        if (names.has(labels[i]) !== matching.on) continue;
        const v = labels[i + 1];
        key += labels[i] + "\u0000" + v.length + ":" + v;
      }
      let o = ords.get(key);
      if (o === undefined) {
        o = ords.size;
        ords.set(key, o);
      }
      return o;
    };
    const l = new Int32Array(lhs.length);
    for (let i = 0; i < lhs.length; i++) l[i] = sig(lhs[i].labels);
    const r = new Int32Array(rhs.length);
    for (let i = 0; i < rhs.length; i++) r[i] = sig(rhs[i].labels);
    return { l, r, count: ords.size };
  }

  private evalSetOp(op: BinaryOp, lhs: StepSeries[], rhs: StepSeries[], matching: VectorMatching): StepSeries[] {
    const sigs = Evaluator.signatures(lhs, rhs, matching);
    const lc = new Cursor(lhs);
    const rc = new Cursor(rhs);
    // Stamp arrays (step number + 1) stand for per-step sets of signatures, never cleared.
    const seen = new Int32Array(sigs.count);
    const coll = new Collector(this.ctx, this.cap());
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      const stamp = k + 1;
      const nl = lc.gather(t);
      const nr = rc.gather(t);
      switch (op) {
        case "and":
          if (nl === 0 || nr === 0) break;
          for (let j = 0; j < nr; j++) seen[sigs.r[rc.idx[j]]] = stamp;
          for (let j = 0; j < nl; j++) {
            const si = lc.idx[j];
            if (seen[sigs.l[si]] === stamp) addFrom(coll, lhs[si], lc.at[j], t);
          }
          break;
        case "or":
          for (let j = 0; j < nl; j++) {
            const si = lc.idx[j];
            seen[sigs.l[si]] = stamp;
            addFrom(coll, lhs[si], lc.at[j], t);
          }
          for (let j = 0; j < nr; j++) {
            const si = rc.idx[j];
            if (seen[sigs.r[si]] !== stamp) addFrom(coll, rhs[si], rc.at[j], t);
          }
          break;
        case "unless":
          for (let j = 0; j < nr; j++) seen[sigs.r[rc.idx[j]]] = stamp;
          for (let j = 0; j < nl; j++) {
            const si = lc.idx[j];
            if (seen[sigs.l[si]] !== stamp) addFrom(coll, lhs[si], lc.at[j], t);
          }
          break;
        default:
          throw new PromQLExecError(`operator ${op} is not a set operator`);
      }
    }
    return coll.out;
  }

  private evalVectorBinop(e: BinaryExpr, lhsIn: StepSeries[], rhsIn: StepSeries[], matching: VectorMatching): StepSeries[] {
    if (matching.card === "many-to-many") throw new PromQLExecError("many-to-many only allowed for set operators");
    if (matching.card === "one-to-one") {
      const fast = this.oneToOnePairs(e, lhsIn, rhsIn, matching);
      if (fast !== null) return fast;
    }
    const opc = opCode(e.op);
    const returnBool = e.returnBool;
    // One-to-many is many-to-one with the sides swapped (and swapped back for the values).
    const swap = matching.card === "one-to-many";
    const lhs = swap ? rhsIn : lhsIn;
    const rhs = swap ? lhsIn : rhsIn;
    const sigsRaw = Evaluator.signatures(lhsIn, rhsIn, matching);
    const sigL = swap ? sigsRaw.r : sigsRaw.l;
    const sigR = swap ? sigsRaw.l : sigsRaw.r;
    const lc = new Cursor(lhs);
    const rc = new Cursor(rhs);
    const rStamp = new Int32Array(sigsRaw.count);
    const rAt = new Int32Array(sigsRaw.count); // index into rc's gathered arrays
    const mStamp = new Int32Array(sigsRaw.count);
    const oneToOne = matching.card === "one-to-one";
    // Many-to-one: result label sets already produced at this step, per signature.
    const resultStamp = oneToOne ? null : new Map<string, number>();
    const comparison = isComparison(e.op);
    const onNames = new Set(matching.matchingLabels);
    const includes = matching.include;
    const schemaChange = changesMetricSchema(e.op);
    // engine.go caches resultMetric by the two label sets; here by the pair of series, with
    // the last pair of each many-side series remembered (it rarely changes between steps).
    const nR = rhs.length;
    const metricCache = new Map<number, ResultMetric>();
    const lastR = new Int32Array(lhs.length).fill(-1);
    const lastM: (ResultMetric | undefined)[] = new Array<ResultMetric | undefined>(lhs.length);
    const coll = new Collector(this.ctx, this.cap());
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      const stamp = k + 1;
      const nl = lc.gather(t);
      const nr = rc.gather(t);
      if (nl === 0 || nr === 0) continue;
      for (let j = 0; j < nr; j++) {
        const si = rc.idx[j];
        const sig = sigR[si];
        if (rStamp[sig] === stamp) {
          const dup = rhs[rc.idx[rAt[sig]]].labels;
          throw new PromQLExecError(duplicateSeriesMessage(rhs[si].labels, dup, matching, swap));
        }
        rStamp[sig] = stamp;
        rAt[sig] = j;
      }
      for (let j = 0; j < nl; j++) {
        const li = lc.idx[j];
        const sig = sigL[li];
        if (rStamp[sig] !== stamp) continue;
        const rj = rAt[sig];
        const ri = rc.idx[rj];
        let fl = lhs[li].vs[lc.at[j]];
        let fr = rhs[ri].vs[rc.at[rj]];
        if (swap) {
          const x = fl;
          fl = fr;
          fr = x;
        }
        let v = elemValue(opc, fl, fr);
        const keep = comparison ? compare(opc, fl, fr) : true;
        if (returnBool) v = keep ? 1 : 0;
        let rm = lastR[li] === ri ? lastM[li] : undefined;
        if (rm === undefined) {
          const ck = li * nR + ri;
          rm = metricCache.get(ck);
          if (rm === undefined) {
            const labels = resultMetric(lhs[li].labels, rhs[ri].labels, schemaChange, oneToOne, matching.on, onNames, includes);
            rm = { labels, key: oneToOne ? "" : `${sig}|${seriesKey(labels)}` };
            metricCache.set(ck, rm);
          }
          lastR[li] = ri;
          lastM[li] = rm;
        }
        if (resultStamp === null) {
          if (mStamp[sig] === stamp) {
            throw new PromQLExecError(
              "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            );
          }
          mStamp[sig] = stamp;
        } else {
          if (resultStamp.get(rm.key) === stamp) {
            throw new PromQLExecError("multiple matches for labels: grouping labels must ensure unique matches");
          }
          resultStamp.set(rm.key, stamp);
        }
        if (!keep && !returnBool) continue;
        // As engine.go: only `bool` delays the name drop; arithmetic dropped it from the labels.
        coll.add(rm.labels, returnBool, t, v);
      }
    }
    return coll.out;
  }

  /**
   * One-to-one matching where every signature has at most one series on each side: then no
   * step can see a duplicate, the pairs are fixed, and each pair is merged series by series
   * (in left-hand order, as the step-by-step loop emits). Null when the general loop is needed.
   */
  private oneToOnePairs(e: BinaryExpr, lhs: StepSeries[], rhs: StepSeries[], matching: VectorMatching): StepSeries[] | null {
    const sigs = Evaluator.signatures(lhs, rhs, matching);
    const leftOf = new Int32Array(sigs.count).fill(-1);
    const rightOf = new Int32Array(sigs.count).fill(-1);
    for (let i = 0; i < lhs.length; i++) {
      if (leftOf[sigs.l[i]] !== -1) return null;
      leftOf[sigs.l[i]] = i;
    }
    for (let i = 0; i < rhs.length; i++) {
      if (rightOf[sigs.r[i]] !== -1) return null;
      rightOf[sigs.r[i]] = i;
    }
    const opc = opCode(e.op);
    const comparison = isComparison(e.op);
    const schemaChange = changesMetricSchema(e.op);
    const onNames = new Set(matching.matchingLabels);
    const returnBool = e.returnBool;
    const out: StepSeries[] = [];
    for (let li = 0; li < lhs.length; li++) {
      const ri = rightOf[sigs.l[li]];
      if (ri === -1) continue;
      this.tick();
      const L = lhs[li];
      const R = rhs[ri];
      const labels = resultMetric(L.labels, R.labels, schemaChange, true, matching.on, onNames, matching.include);
      const r = newSeries(labels, returnBool, Math.min(L.n, R.n));
      let i = 0;
      let j = 0;
      while (i < L.n && j < R.n) {
        const tl = L.ts[i];
        const tr = R.ts[j];
        if (tl < tr) {
          i++;
          continue;
        }
        if (tr < tl) {
          j++;
          continue;
        }
        const fl = L.vs[i++];
        const fr = R.vs[j++];
        let v = elemValue(opc, fl, fr);
        const keep = comparison ? compare(opc, fl, fr) : true;
        if (returnBool) v = keep ? 1 : 0;
        else if (!keep) continue;
        r.ts[r.n] = tl;
        r.vs[r.n] = v;
        r.n++;
      }
      if (r.n === 0) continue;
      this.ctx.samples += r.n;
      if (this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
      out.push(r);
    }
    return out;
  }

  // --- aggregations ------------------------------------------------------------------------

  private evalAggregate(e: AggregateExpr): StepSeries[] {
    const grouping = [...e.grouping].sort();
    if (e.op === "count_values") return this.evalCountValues(e, grouping);
    const param = e.param !== null ? this.evalParam(e.param) : new FParams(null, false);
    const input = this.eval(e.expr);
    const ns = input.length;
    const cursor = new Cursor(input);
    const isK = e.op === "topk" || e.op === "bottomk" || e.op === "limitk" || e.op === "limit_ratio";

    // Map input series to groups once (engine.go's rangeEvalAgg).
    const groupOf = new Int32Array(ns);
    const groupKeys = new Map<string, number>();
    const groupLabels: FlatLabels[] = [];
    const gset = new Set(grouping);
    for (let i = 0; i < ns; i++) {
      const key = groupingKey(input[i].labels, grouping, gset, e.without);
      let g = groupKeys.get(key);
      if (g === undefined) {
        g = groupKeys.size;
        groupKeys.set(key, g);
        if (!isK) groupLabels.push(groupingLabels(input[i].labels, gset, e.without));
      }
      groupOf[i] = g;
    }
    const ng = groupKeys.size;

    if (isK) return this.evalAggregateK(e, input, cursor, groupOf, ng, param);

    if (e.op === "quantile") {
      const at = posSuffix(e.param);
      const warn = (q: number): void =>
        this.ctx.annotations.warn(`PromQL warning: quantile value should be between 0 and 1, got ${goFormatG(q)}${at}`);
      if (param.anyNaN) warn(NaN);
      if (param.max > 1) warn(param.max);
      if (param.min < 0) warn(param.min);
    }

    if (e.op !== "quantile") return this.aggregateBySeries(e.op, input, groupOf, groupLabels);

    // quantile: the values of each group at each step, with the parameter of that step.
    const out = groupLabels.map((l) => newSeries(l, false, this.cap()));
    const seen = new Uint8Array(ng);
    const drop = new Uint8Array(ng);
    const lists: number[][] = groupLabels.map(() => []);
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      const q = param.next();
      seen.fill(0);
      const c = cursor.gather(t);
      for (let j = 0; j < c; j++) {
        const si = cursor.idx[j];
        const g = groupOf[si];
        if (seen[g] === 0) {
          seen[g] = 1;
          drop[g] = 0;
          lists[g].length = 0;
        }
        if (input[si].dropName) drop[g] = 1;
        lists[g].push(input[si].vs[cursor.at[j]]);
      }
      for (let g = 0; g < ng; g++) {
        if (seen[g] === 0) continue;
        const s = out[g];
        pushPoint(s, t, quantile(q, lists[g]));
        // engine.go overwrites the output series' DropName at every step.
        s.dropName = drop[g] === 1;
        if (++this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
      }
    }
    return out.filter((s) => s.n > 0);
  }

  /**
   * sum, avg, count, group, min, max, stddev, stdvar: over blocks of steps, one pass over each
   * input series in order, into per-(group, step) state. Every (group, step) sees its values in
   * the same order as a step-by-step loop would, so the results are identical, but memory is
   * read in order and the state stays bounded (SERIES_MAJOR_AGG_CELLS cells).
   */
  private aggregateBySeries(op: AggregateOp, input: StepSeries[], groupOf: Int32Array, groupLabels: FlatLabels[]): StepSeries[] {
    const steps = this.steps;
    const ng = groupLabels.length;
    const block = Math.max(1, Math.min(steps, Math.floor(SERIES_MAJOR_AGG_CELLS / Math.max(ng, 1))));
    const cells = ng * block;
    const seen = new Uint8Array(cells);
    const drop = new Uint8Array(cells);
    const value = new Float64Array(cells);
    const comp = op === "sum" || op === "avg" ? new Float64Array(cells) : null;
    const count = op === "avg" || op === "count" || op === "stddev" || op === "stdvar" ? new Float64Array(cells) : null;
    const mean = op === "avg" || op === "stddev" || op === "stdvar" ? new Float64Array(cells) : null;
    const incremental = op === "avg" ? new Uint8Array(cells) : null;
    const start = this.start;
    const interval = this.interval;
    const pos = new Int32Array(input.length);
    const outs: (StepSeries | null)[] = new Array<StepSeries | null>(ng).fill(null);
    for (let k0 = 0; k0 < steps; k0 += block) {
      const k1 = Math.min(steps, k0 + block);
      const tEnd = this.time(k1 - 1);
      seen.fill(0);
      if (incremental !== null) incremental.fill(0);
      for (let si = 0; si < input.length; si++) {
        this.tick();
        const s = input[si];
        const base = groupOf[si] * block - k0;
        const d = s.dropName ? 1 : 0;
        let p = pos[si];
        for (; p < s.n && s.ts[p] <= tEnd; p++) {
          const c = base + Math.round((s.ts[p] - start) / interval);
          const f = s.vs[p];
          if (seen[c] === 0) {
            // Cells are reused from block to block: everything is set here.
            seen[c] = 1;
            drop[c] = d;
            if (comp !== null) comp[c] = 0;
            switch (op) {
              case "stddev":
              case "stdvar":
                value[c] = Number.isFinite(f) ? 0 : NaN;
                (mean as Float64Array)[c] = f;
                (count as Float64Array)[c] = 1;
                break;
              case "group":
                value[c] = 1;
                break;
              case "avg":
                value[c] = f;
                (mean as Float64Array)[c] = f;
                (count as Float64Array)[c] = 1;
                break;
              case "count":
                (count as Float64Array)[c] = 1;
                break;
              default:
                value[c] = f;
            }
            continue;
          }
          if (d === 1) drop[c] = 1;
          switch (op) {
            case "sum": {
              const cc = comp as Float64Array;
              const sum = value[c];
              const t = sum + f;
              if (t === Infinity || t === -Infinity) cc[c] = 0;
              else if (Math.abs(sum) >= Math.abs(f)) cc[c] += sum - t + f;
              else cc[c] += f - t + sum;
              value[c] = t;
              break;
            }
            case "avg": {
              const cc = comp as Float64Array;
              const cnt = count as Float64Array;
              const mn = mean as Float64Array;
              const inc = incremental as Uint8Array;
              cnt[c]++;
              if (inc[c] === 0) {
                kahanInc(f, value[c], cc[c]);
                if (kahanSum !== Infinity && kahanSum !== -Infinity) {
                  value[c] = kahanSum;
                  cc[c] = kahanC;
                  break;
                }
                inc[c] = 1;
                mn[c] = value[c] / (cnt[c] - 1);
                cc[c] /= cnt[c] - 1;
              }
              const r = (cnt[c] - 1) / cnt[c];
              kahanInc(f / cnt[c], r * mn[c], r * cc[c]);
              mn[c] = kahanSum;
              cc[c] = kahanC;
              break;
            }
            case "max":
              if (value[c] < f || Number.isNaN(value[c])) value[c] = f;
              break;
            case "min":
              if (value[c] > f || Number.isNaN(value[c])) value[c] = f;
              break;
            case "count":
              (count as Float64Array)[c]++;
              break;
            case "stddev":
            case "stdvar": {
              const cnt = count as Float64Array;
              const mn = mean as Float64Array;
              cnt[c]++;
              const delta = f - mn[c];
              mn[c] += delta / cnt[c];
              value[c] += delta * (f - mn[c]);
              break;
            }
            case "group":
              break;
            default:
              throw new PromQLExecError(`expected aggregation operator but got ${op}`);
          }
        }
        pos[si] = p;
      }
      for (let g = 0; g < ng; g++) {
        const base = g * block - k0;
        let r = outs[g];
        for (let k = k0; k < k1; k++) {
          const c = base + k;
          if (seen[c] === 0) continue;
          let v = value[c];
          switch (op) {
            case "sum":
              v = value[c] + (comp as Float64Array)[c];
              break;
            case "avg": {
              const cnt = (count as Float64Array)[c];
              v = (incremental as Uint8Array)[c] === 1 ? (mean as Float64Array)[c] + (comp as Float64Array)[c] : value[c] / cnt + (comp as Float64Array)[c] / cnt;
              break;
            }
            case "count":
              v = (count as Float64Array)[c];
              break;
            case "stdvar":
              v = value[c] / (count as Float64Array)[c];
              break;
            case "stddev":
              v = Math.sqrt(value[c] / (count as Float64Array)[c]);
              break;
          }
          if (r === null) {
            r = newSeries(groupLabels[g], false, this.cap());
            outs[g] = r;
          }
          pushPoint(r, start + k * interval, v);
          // engine.go overwrites the output series' DropName at every step: the last one counts.
          r.dropName = drop[c] === 1;
          if (++this.ctx.samples > this.ctx.maxSamples) throw new PromQLExecError(TOO_MANY_SAMPLES);
        }
      }
    }
    const out: StepSeries[] = [];
    for (const r of outs) if (r !== null) out.push(r);
    return out;
  }

  private evalParam(p: Expr): FParams {
    const u = unwrapParens(p);
    const m = this.eval(u);
    if (m.length === 0 || m[0].n === 0) return new FParams(null, false);
    return new FParams(m[0], u.type === "NumberLiteral");
  }

  /** topk, bottomk, limitk, limit_ratio (engine.go's aggregationK): input series pass through. */
  private evalAggregateK(
    e: AggregateExpr,
    input: StepSeries[],
    cursor: Cursor,
    groupOf: Int32Array,
    ng: number,
    param: FParams,
  ): StepSeries[] {
    const op = e.op;
    if (op === "limit_ratio") {
      if (param.max === 0 && param.min === 0) return [];
      if (param.anyNaN) throw new PromQLExecError("Ratio value is NaN");
      const at = posSuffix(e.param);
      if (param.max > 1) this.ctx.annotations.warn(`PromQL warning: ratio value should be between -1 and 1, got ${goFormatG(param.max)}, capping to 1${at}`);
      if (param.min < -1) this.ctx.annotations.warn(`PromQL warning: ratio value should be between -1 and 1, got ${goFormatG(param.min)}, capping to -1${at}`);
    } else {
      if (param.max < 1) return [];
      if (param.anyNaN) throw new PromQLExecError("Parameter value is NaN");
      if (param.min <= -9223372036854775808) throw new PromQLExecError(`Scalar value ${goFormatG(param.min)} underflows int64`);
      if (param.max >= 9223372036854774784) throw new PromQLExecError(`Scalar value ${goFormatG(param.max)} overflows int64`);
    }
    const TOPK = 0;
    const BOTTOMK = 1;
    const LIMITK = 2;
    const RATIO = 3;
    const kind = op === "topk" ? TOPK : op === "bottomk" ? BOTTOMK : op === "limitk" ? LIMITK : RATIO;
    // bottomk keeps its largest value on top (vectorByReverseValueHeap); the others the smallest.
    const maxHeap = kind === BOTTOMK;
    const ns = input.length;
    // Heaps hold positions into this step's gathered values.
    const heaps: number[][] = [];
    for (let g = 0; g < ng; g++) heaps.push([]);
    const seen = new Uint8Array(ng);
    const vals = new Float64Array(ns);
    const sidx = new Int32Array(ns);
    const coll = new Collector(this.ctx, this.cap());
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      const fParam = param.next();
      const c = cursor.gather(t);
      for (let j = 0; j < c; j++) {
        sidx[j] = cursor.idx[j];
        vals[j] = input[cursor.idx[j]].vs[cursor.at[j]];
      }
      let kk = 0;
      let r = 0;
      if (kind === RATIO) {
        if (fParam === 0) continue;
        r = fParam < -1 ? -1 : fParam > 1 ? 1 : fParam;
      } else {
        kk = Math.min(Math.trunc(fParam), ns);
        if (!(kk >= 1)) continue;
      }
      seen.fill(0);
      for (let j = 0; j < c; j++) {
        const g = groupOf[sidx[j]];
        const h = heaps[g];
        if (seen[g] === 0) {
          seen[g] = 1;
          h.length = 0;
          if (kind !== RATIO || addRatioSample(r, input[sidx[j]].labels)) heapPush(h, j, vals, maxHeap);
          continue;
        }
        const v = vals[j];
        switch (kind) {
          case TOPK:
          case BOTTOMK: {
            if (h.length < kk) {
              heapPush(h, j, vals, maxHeap);
              break;
            }
            const top = vals[h[0]];
            const better = kind === TOPK ? top < v : top > v;
            if (better || (Number.isNaN(top) && !Number.isNaN(v))) {
              h[0] = j;
              if (kk > 1) heapFix(h, 0, vals, maxHeap);
            }
            break;
          }
          case LIMITK:
            if (h.length < kk) heapPush(h, j, vals, maxHeap);
            break;
          default:
            if (addRatioSample(r, input[sidx[j]].labels)) heapPush(h, j, vals, maxHeap);
        }
      }
      for (let g = 0; g < ng; g++) {
        if (seen[g] === 0) continue;
        const h = heaps[g];
        // sort.Sort(sort.Reverse(heap)): topk descending, bottomk ascending, NaN last.
        if (kind <= BOTTOMK && h.length > 1) sortReverse(h, vals, maxHeap);
        for (let i = 0; i < h.length; i++) {
          const s = input[sidx[h[i]]];
          coll.add(s.labels, s.dropName, t, vals[h[i]]);
        }
      }
    }
    return coll.out;
  }

  private evalCountValues(e: AggregateExpr, groupingIn: string[]): StepSeries[] {
    if (e.param === null) throw new PromQLExecError("count_values needs a label name");
    const valueLabel = stringOf(e.param);
    if (!isValidLabelName(valueLabel)) throw new PromQLExecError(`invalid label name ${goQuote(valueLabel)}`);
    let grouping = groupingIn;
    if (!e.without) grouping = [...grouping, valueLabel].sort();
    const gset = new Set(grouping);
    const input = this.eval(e.expr);
    const cursor = new Cursor(input);
    const coll = new Collector(this.ctx, this.cap());
    // Output label sets are cached by group key so each is one array across steps.
    const labelsByKey = new Map<string, FlatLabels>();
    const counts = new Map<string, number>();
    for (let k = 0; k < this.steps; k++) {
      this.tick();
      const t = this.time(k);
      const c = cursor.gather(t);
      counts.clear();
      for (let j = 0; j < c; j++) {
        const s = input[cursor.idx[j]];
        const metric = setLabel(s.labels, valueLabel, formatFloatF(s.vs[cursor.at[j]]));
        const key = groupingKey(metric, grouping, gset, e.without);
        const n = counts.get(key);
        if (n === undefined) {
          counts.set(key, 1);
          if (!labelsByKey.has(key)) labelsByKey.set(key, groupingLabels(metric, gset, e.without));
        } else {
          counts.set(key, n + 1);
        }
      }
      for (const [key, n] of counts) coll.add(labelsByKey.get(key) as FlatLabels, false, t, n);
    }
    return coll.out;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers: values
// ---------------------------------------------------------------------------------------------

function addFrom(coll: Collector, s: StepSeries, p: number, t: number): void {
  coll.add(s.labels, s.dropName, t, s.vs[p]);
}

function isSetOperator(op: BinaryOp): boolean {
  return op === "and" || op === "or" || op === "unless";
}

function isComparison(op: BinaryOp): boolean {
  return op === "==" || op === "!=" || op === ">" || op === "<" || op === ">=" || op === "<=";
}

/** Operators whose result is no longer the metric (engine.go's changesMetricSchema). */
function changesMetricSchema(op: BinaryOp): boolean {
  return op === "+" || op === "-" || op === "*" || op === "/" || op === "^" || op === "%" || op === "atan2";
}

// Operators as small integers for the per-point loops.
const OP_ADD = 0;
const OP_SUB = 1;
const OP_MUL = 2;
const OP_DIV = 3;
const OP_POW = 4;
const OP_MOD = 5;
const OP_ATAN2 = 6;
const OP_EQ = 7;
const OP_NE = 8;
const OP_GT = 9;
const OP_LT = 10;
const OP_GE = 11;
const OP_LE = 12;
const OP_SET = 13;

function opCode(op: BinaryOp): number {
  switch (op) {
    case "+":
      return OP_ADD;
    case "-":
      return OP_SUB;
    case "*":
      return OP_MUL;
    case "/":
      return OP_DIV;
    case "^":
      return OP_POW;
    case "%":
      return OP_MOD;
    case "atan2":
      return OP_ATAN2;
    case "==":
      return OP_EQ;
    case "!=":
      return OP_NE;
    case ">":
      return OP_GT;
    case "<":
      return OP_LT;
    case ">=":
      return OP_GE;
    case "<=":
      return OP_LE;
    default:
      return OP_SET;
  }
}

/** Whether a comparison holds (true for the other operators). */
function compare(op: number, l: number, r: number): boolean {
  switch (op) {
    case OP_EQ:
      return l === r;
    case OP_NE:
      return l !== r;
    case OP_GT:
      return l > r;
    case OP_LT:
      return l < r;
    case OP_GE:
      return l >= r;
    case OP_LE:
      return l <= r;
    default:
      return true;
  }
}

/** The float result of a vector element operation (a comparison yields the left value). */
function elemValue(op: number, l: number, r: number): number {
  switch (op) {
    case OP_ADD:
      return l + r;
    case OP_SUB:
      return l - r;
    case OP_MUL:
      return l * r;
    case OP_DIV:
      return l / r;
    case OP_POW:
      return goPow(l, r);
    case OP_MOD:
      // JavaScript's % is C's fmod, as Go's math.Mod: the sign of the dividend.
      return l % r;
    case OP_ATAN2:
      return Math.atan2(l, r);
    default:
      return l;
  }
}

function scalarBinop(op: BinaryOp, l: number, r: number): number {
  const c = opCode(op);
  if (isComparison(op)) return compare(c, l, r) ? 1 : 0;
  return elemValue(c, l, r);
}

/** Go's math.Pow where it differs from JavaScript's: Pow(x, ±0) = 1, Pow(1, y) = 1, Pow(-1, ±Inf) = 1. */
function goPow(x: number, y: number): number {
  if (y === 0 || x === 1) return 1;
  if (x === -1 && (y === Infinity || y === -Infinity)) return 1;
  return Math.pow(x, y);
}

// Kahan–Neumaier summation (Prometheus's kahanSumInc); the result lands in these two.
let kahanSum = 0;
let kahanC = 0;
function kahanInc(inc: number, sum: number, c: number): void {
  const t = sum + inc;
  if (t === Infinity || t === -Infinity) c = 0;
  else if (Math.abs(sum) >= Math.abs(inc)) c += sum - t + inc;
  else c += inc - t + sum;
  kahanSum = t;
  kahanC = c;
}

/** Prometheus's quantile() over the values (sorted in place, NaN first). */
function quantile(q: number, values: number[]): number {
  if (values.length === 0 || Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  values.sort((a, b) => (Number.isNaN(a) ? (Number.isNaN(b) ? 0 : -1) : Number.isNaN(b) ? 1 : a - b));
  const n = values.length;
  const rank = q * (n - 1);
  const lower = Math.max(0, Math.floor(rank));
  const upper = Math.min(n - 1, lower + 1);
  const weight = rank - Math.floor(rank);
  return values[lower] * (1 - weight) + values[upper] * weight;
}

/** engine.go's fParams: the per-step values of an aggregation parameter, with min, max and NaN. */
class FParams {
  readonly min: number;
  readonly max: number;
  readonly anyNaN: boolean;
  private i = 0;

  constructor(
    private readonly series: StepSeries | null,
    private readonly constant: boolean,
  ) {
    if (series === null) {
      this.min = 0;
      this.max = 0;
      this.anyNaN = false;
      return;
    }
    if (constant) {
      const v = series.vs[0];
      this.min = v;
      this.max = v;
      this.anyNaN = Number.isNaN(v);
      return;
    }
    // Go's math.Min/Max: NaN wins.
    let min = Number.MAX_VALUE;
    let max = -Number.MAX_VALUE;
    let nan = false;
    for (let i = 0; i < series.n; i++) {
      const v = series.vs[i];
      min = Math.min(min, v);
      max = Math.max(max, v);
      if (Number.isNaN(v)) nan = true;
    }
    this.min = min;
    this.max = max;
    this.anyNaN = nan;
  }

  /** The value for the next step; 0 once the series is exhausted (as engine.go). */
  next(): number {
    const s = this.series;
    if (s === null) return 0;
    if (this.constant) return s.vs[0];
    if (this.i < s.n) return s.vs[this.i++];
    return 0;
  }
}

// container/heap, as Go implements it (the result order of topk & co. depends on it), over
// positions into vals. Less is vectorByValueHeap's (min on top) or, for maxHeap,
// vectorByReverseValueHeap's; NaN counts as less than anything in both.
function heapLess(vals: Float64Array, a: number, b: number, maxHeap: boolean): boolean {
  const x = vals[a];
  if (x !== x) return true;
  return maxHeap ? x > vals[b] : x < vals[b];
}

function heapUp(h: number[], j: number, vals: Float64Array, maxHeap: boolean): void {
  while (j > 0) {
    const i = (j - 1) >> 1;
    if (!heapLess(vals, h[j], h[i], maxHeap)) break;
    const x = h[i];
    h[i] = h[j];
    h[j] = x;
    j = i;
  }
}

function heapDown(h: number[], i0: number, n: number, vals: Float64Array, maxHeap: boolean): boolean {
  let i = i0;
  for (;;) {
    const j1 = 2 * i + 1;
    if (j1 >= n) break;
    let j = j1;
    const j2 = j1 + 1;
    if (j2 < n && heapLess(vals, h[j2], h[j1], maxHeap)) j = j2;
    if (!heapLess(vals, h[j], h[i], maxHeap)) break;
    const x = h[i];
    h[i] = h[j];
    h[j] = x;
    i = j;
  }
  return i > i0;
}

function heapPush(h: number[], x: number, vals: Float64Array, maxHeap: boolean): void {
  h.push(x);
  heapUp(h, h.length - 1, vals, maxHeap);
}

function heapFix(h: number[], i: number, vals: Float64Array, maxHeap: boolean): void {
  if (!heapDown(h, i, h.length, vals, maxHeap)) heapUp(h, i, vals, maxHeap);
}

/**
 * sort.Sort(sort.Reverse(heap)). Go's pdqsort runs insertion sort up to 12 elements, which we
 * copy so ties come out in Go's order; longer heaps use a stable sort (ties may differ).
 */
function sortReverse(h: number[], vals: Float64Array, maxHeap: boolean): void {
  const rless = (a: number, b: number): boolean => heapLess(vals, b, a, maxHeap);
  if (h.length <= 12) {
    for (let i = 1; i < h.length; i++) {
      for (let j = i; j > 0 && rless(h[j], h[j - 1]); j--) {
        const x = h[j];
        h[j] = h[j - 1];
        h[j - 1] = x;
      }
    }
    return;
  }
  h.sort((a, b) => (rless(a, b) ? -1 : rless(b, a) ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Helpers: labels
// ---------------------------------------------------------------------------------------------

const dropCache = new WeakMap<FlatLabels, FlatLabels>();

/** The labels without __name__, __type__ and __unit__ (the same array when none is there). */
function dropMetadata(labels: FlatLabels): FlatLabels {
  let found = false;
  for (let i = 0; i < labels.length; i += 2) {
    if (METADATA_LABELS.has(labels[i])) {
      found = true;
      break;
    }
  }
  if (!found) return labels;
  let out = dropCache.get(labels);
  if (out === undefined) {
    out = [];
    for (let i = 0; i < labels.length; i += 2) if (!METADATA_LABELS.has(labels[i])) out.push(labels[i], labels[i + 1]);
    dropCache.set(labels, out);
  }
  return out;
}

/** Whether labels are input without its __name__ (and __type__, __unit__). */
function isDroppedOf(labels: FlatLabels, input: FlatLabels): boolean {
  const d = dropMetadata(input);
  return d !== input && (d === labels || sameLabels(labels, d));
}

function sameLabels(a: FlatLabels, b: FlatLabels): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}


/** The grouping key of a series (by: the grouping labels' values; without: all others but __name__). */
function groupingKey(labels: FlatLabels, grouping: string[], gset: Set<string>, without: boolean): string {
  let key = "";
  if (without) {
    for (let i = 0; i < labels.length; i += 2) {
      const n = labels[i];
      if (n === METRIC_NAME || gset.has(n)) continue;
      const v = labels[i + 1];
      key += n + "\u0000" + v.length + ":" + v;
    }
    return key;
  }
  for (const n of grouping) {
    const v = getLabel(labels, n);
    key += v.length + ":" + v;
  }
  return key;
}

/** engine.go's generateGroupingLabels. */
function groupingLabels(labels: FlatLabels, gset: Set<string>, without: boolean): FlatLabels {
  const out: FlatLabels = [];
  for (let i = 0; i < labels.length; i += 2) {
    const n = labels[i];
    const keep = without ? n !== METRIC_NAME && !gset.has(n) : gset.has(n);
    if (keep) out.push(n, labels[i + 1]);
  }
  return out;
}

/** engine.go's resultMetric for vector matching. */
function resultMetric(
  lhs: FlatLabels,
  rhs: FlatLabels,
  schemaChange: boolean,
  oneToOne: boolean,
  on: boolean,
  onNames: Set<string>,
  include: string[],
): FlatLabels {
  let out: FlatLabels = [];
  for (let i = 0; i < lhs.length; i += 2) {
    const n = lhs[i];
    if (schemaChange && METADATA_LABELS.has(n)) continue;
    if (oneToOne && onNames.has(n) !== on) continue;
    out.push(n, lhs[i + 1]);
  }
  // group_left/group_right labels come from the "one" side.
  for (const ln of include) out = setLabel(out, ln, getLabel(rhs, ln));
  return out;
}

/** labels.Labels.String(): {a="b", c="d"} with the name as an ordinary label. */
function labelsString(labels: FlatLabels): string {
  const parts: string[] = [];
  for (let i = 0; i < labels.length; i += 2) {
    const n = labels[i];
    parts.push(`${/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(n) ? n : goQuote(n)}=${goQuote(labels[i + 1])}`);
  }
  return `{${parts.join(", ")}}`;
}

function duplicateSeriesMessage(a: FlatLabels, b: FlatLabels, matching: VectorMatching, swapped: boolean): string {
  // labels.MatchLabels: on keeps the names; ignoring drops them and __name__.
  const names = new Set(matching.matchingLabels);
  const matched: FlatLabels = [];
  for (let i = 0; i < a.length; i += 2) {
    const n = a[i];
    const keep = matching.on ? names.has(n) : n !== METRIC_NAME && !names.has(n);
    if (keep) matched.push(n, a[i + 1]);
  }
  // Prometheus reports the two series in a stable, sorted order.
  const [x, y] = compareLabels(a, b) <= 0 ? [a, b] : [b, a];
  return (
    `found duplicate series for the match group ${labelsString(matched)} on the ${swapped ? "left" : "right"} ` +
    `hand-side of the operation: [${labelsString(x)}, ${labelsString(y)}]` +
    ";many-to-many matching not allowed: matching labels must be unique on one side"
  );
}

/** Label names are any valid UTF-8 (Prometheus 3); JavaScript strings fail only on lone surrogates. */
function isValidLabelName(n: string): boolean {
  if (n.length === 0) return false;
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = n.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

function hasDuplicateLabels(vec: Vector): boolean {
  if (vec.length < 2) return false;
  const seen = new Set<string>();
  for (const s of vec) {
    const k = seriesKey(s.labels);
    if (seen.has(k)) return true;
    seen.add(k);
  }
  return false;
}

/**
 * The end of evaluation (engine.go's cleanupMetricLabels): drop the names still pending, then
 * merge series that now share a label set.
 */
function cleanupMatrix(series: StepSeries[]): StepSeries[] {
  for (const s of series) if (s.dropName) s.labels = dropMetadata(s.labels);
  return mergeSameLabels(series);
}

/**
 * Merges series with equal label sets when their points do not overlap (engine.go's
 * mergeSeriesWithSameLabelset); two points at one time are an error. Empty series go.
 */
function mergeSameLabels(series: StepSeries[]): StepSeries[] {
  const byKey = new Map<string, StepSeries[]>();
  let dup = false;
  for (const s of series) {
    if (s.n === 0) continue;
    const k = seriesKey(s.labels);
    const list = byKey.get(k);
    if (list === undefined) byKey.set(k, [s]);
    else {
      list.push(s);
      dup = true;
    }
  }
  if (!dup) return series.filter((s) => s.n > 0);
  const out: StepSeries[] = [];
  for (const list of byKey.values()) {
    if (list.length === 1) {
      out.push(list[0]);
      continue;
    }
    // Each series is sorted: merge them pairwise.
    let m = list[0];
    for (let j = 1; j < list.length; j++) m = mergeTwo(m, list[j]);
    out.push(m);
  }
  return out;
}

/** The points of two series with one label set, in time order; one time in both is an error. */
function mergeTwo(a: StepSeries, b: StepSeries): StepSeries {
  const m = newSeries(a.labels, a.dropName || b.dropName, a.n + b.n);
  let i = 0;
  let j = 0;
  while (i < a.n || j < b.n) {
    if (j >= b.n || (i < a.n && a.ts[i] < b.ts[j])) {
      m.ts[m.n] = a.ts[i];
      m.vs[m.n++] = a.vs[i++];
    } else if (i >= a.n || b.ts[j] < a.ts[i]) {
      m.ts[m.n] = b.ts[j];
      m.vs[m.n++] = b.vs[j++];
    } else {
      throw new PromQLExecError(SAME_LABELSET);
    }
  }
  return m;
}

function toMatrix(series: StepSeries[]): Matrix {
  return series.map(
    (s): Series => ({
      labels: s.labels,
      timestamps: s.n === s.ts.length ? s.ts : s.ts.slice(0, s.n),
      values: s.n === s.vs.length ? s.vs : s.vs.slice(0, s.n),
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Helpers: Go formatting and hashing
// ---------------------------------------------------------------------------------------------


/** Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits, never an exponent. */
export function formatFloatF(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const s = String(v);
  if (!s.includes("e")) return s;
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (m === null) return s;
  const digits = m[2] + (m[3] ?? "");
  const exp = Number(m[4]);
  if (exp >= 0) {
    const intLen = exp + 1;
    return m[1] + (digits.length <= intLen ? digits + "0".repeat(intLen - digits.length) : digits.slice(0, intLen) + "." + digits.slice(intLen));
  }
  return m[1] + "0." + "0".repeat(-exp - 1) + digits;
}

/** Go's %g (and %v) for a float64: shortest digits, an exponent when it is below -4 or from 6 up. */
export function goFormatG(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const [mant, e] = v.toExponential().split("e");
  const exp = Number(e);
  if (exp >= -4 && exp < 6) return formatFloatF(v);
  const a = Math.abs(exp);
  return `${mant}e${exp < 0 ? "-" : "+"}${a < 10 ? "0" : ""}${a}`;
}

// xxHash64 over the label set as Prometheus's labels.Hash() lays it out (name 0xff value 0xff ...),
// for limit_ratio's deterministic sampling.
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;
const M64 = (1n << 64n) - 1n;

function rotl64(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & M64;
}

function xxRound(acc: bigint, input: bigint): bigint {
  acc = (acc + input * P2) & M64;
  acc = rotl64(acc, 31n);
  return (acc * P1) & M64;
}

function xxMerge(acc: bigint, val: bigint): bigint {
  acc ^= xxRound(0n, val);
  return (acc * P1 + P4) & M64;
}

export function xxhash64(b: Uint8Array): bigint {
  const len = b.length;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let i = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (P1 + P2) & M64;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (M64 + 1n - P1) & M64;
    while (i + 32 <= len) {
      v1 = xxRound(v1, dv.getBigUint64(i, true));
      v2 = xxRound(v2, dv.getBigUint64(i + 8, true));
      v3 = xxRound(v3, dv.getBigUint64(i + 16, true));
      v4 = xxRound(v4, dv.getBigUint64(i + 24, true));
      i += 32;
    }
    h = (rotl64(v1, 1n) + rotl64(v2, 7n) + rotl64(v3, 12n) + rotl64(v4, 18n)) & M64;
    h = xxMerge(h, v1);
    h = xxMerge(h, v2);
    h = xxMerge(h, v3);
    h = xxMerge(h, v4);
  } else {
    h = P5;
  }
  h = (h + BigInt(len)) & M64;
  while (i + 8 <= len) {
    h ^= xxRound(0n, dv.getBigUint64(i, true));
    h = (rotl64(h, 27n) * P1 + P4) & M64;
    i += 8;
  }
  if (i + 4 <= len) {
    h ^= (BigInt(dv.getUint32(i, true)) * P1) & M64;
    h = (rotl64(h, 23n) * P2 + P3) & M64;
    i += 4;
  }
  while (i < len) {
    h ^= (BigInt(b[i]) * P5) & M64;
    h = (rotl64(h, 11n) * P1) & M64;
    i++;
  }
  h ^= h >> 33n;
  h = (h * P2) & M64;
  h ^= h >> 29n;
  h = (h * P3) & M64;
  h ^= h >> 32n;
  return h;
}

const encoder = new TextEncoder();
const ratioOffsets = new WeakMap<FlatLabels, number>();

/** HashRatioSampler.AddRatioSample: hash(labels) / 2^64 against the ratio (negative: the complement). */
function addRatioSample(ratio: number, labels: FlatLabels): boolean {
  let off = ratioOffsets.get(labels);
  if (off === undefined) {
    const parts: number[] = [];
    for (const s of labels) {
      for (const byte of encoder.encode(s)) parts.push(byte);
      parts.push(0xff);
    }
    off = Number(xxhash64(Uint8Array.from(parts))) / 18446744073709551616;
    ratioOffsets.set(labels, off);
  }
  return (ratio >= 0 && off < ratio) || (ratio < 0 && off >= 1 + ratio);
}
