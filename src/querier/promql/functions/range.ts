// Range-vector functions (rate, *_over_time, ...), after Prometheus 3's promql/functions.go,
// for float samples only (native histograms are not supported). Each function receives the
// window of every input series at one evaluation step and returns one sample per series that
// has enough points, at t = ctx.ts, with __name__ dropped unless the function keeps it
// (last_over_time and first_over_time, as Prometheus's engine.go `dropName`).
//
// Hot path: these run per series per step, so they read the typed arrays directly and
// allocate nothing per point (Kahan state lives in locals, quantiles sort a shared scratch
// buffer).
//
// Also home to helpers shared with instant.ts: name dropping, absent() labels, Go-compatible
// formatting for annotation texts (%q, %g), Kahan summation and quantile().

import type { FunctionArg, FunctionContext, FunctionImpl, WindowSeries } from "./types";
import { PromQLExecError, type Sample } from "../value";
import { posSuffix, type Expr } from "../ast";
import type { FlatLabels } from "../../../model/labels";
import { MatchType } from "../../../proto/types";

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

const METRIC_NAME = "__name__";

// Label arrays are immutable and the evaluator hands the same array for a series at every
// step, so the name-less copy is made once per series.
const noNameCache = new WeakMap<FlatLabels, FlatLabels>();

/** The labels without __name__ (the same array when there is none). */
export function dropMetricName(labels: FlatLabels): FlatLabels {
  let at = -1;
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i] === METRIC_NAME) {
      at = i;
      break;
    }
  }
  if (at < 0) return labels;
  let out = noNameCache.get(labels);
  if (out === undefined) {
    out = labels.slice(0, at).concat(labels.slice(at + 2));
    noNameCache.set(labels, out);
  }
  return out;
}

export function metricName(labels: FlatLabels): string {
  for (let i = 0; i < labels.length; i += 2) if (labels[i] === METRIC_NAME) return labels[i + 1];
  return "";
}

/** A scalar argument: a number, or (defensively) the value of a one-element vector. */
export function scalarArg(a: FunctionArg | undefined, dflt = NaN): number {
  if (typeof a === "number") return a;
  if (Array.isArray(a) && a.length > 0) {
    const s = a[0] as Sample;
    if (typeof s.v === "number") return s.v;
  }
  return dflt;
}

export function stringArg(a: FunctionArg | undefined): string {
  return typeof a === "string" ? a : "";
}

const absentCache = new WeakMap<Expr, FlatLabels>();

/**
 * Prometheus's createLabelsForAbsentFunction: the labels matched exactly (=) by the selector
 * of absent()/absent_over_time(), minus __name__. A label matched twice, or also by another
 * matcher after its = matcher, is dropped (historic behaviour kept by Prometheus); an empty
 * value means "no label" (labels.Builder.Set deletes on "").
 */
export function absentLabels(expr: Expr | undefined): FlatLabels {
  if (expr === undefined) return [];
  let e: Expr = expr;
  while (e.type === "ParenExpr") e = e.expr; // The engine unwraps parentheses in call arguments.
  const cached = absentCache.get(e);
  if (cached !== undefined) return cached;
  let matchers;
  if (e.type === "VectorSelector") matchers = e.matchers;
  else if (e.type === "MatrixSelector") matchers = e.vectorSelector.matchers;
  else matchers = null;
  const out: FlatLabels = [];
  if (matchers !== null) {
    const set = new Map<string, string>();
    const has = new Set<string>();
    for (const m of matchers) {
      if (m.name === METRIC_NAME) continue;
      if (m.type === MatchType.EQ && !has.has(m.name)) {
        if (m.value === "") set.delete(m.name);
        else set.set(m.name, m.value);
        has.add(m.name);
      } else {
        set.delete(m.name);
      }
    }
    const names = [...set.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const n of names) out.push(n, set.get(n) as string);
  }
  absentCache.set(e, out);
  return out;
}


/** Go's %g (strconv 'g', shortest): exponent form below 1e-4 or from 1e+06 on, two-digit exponent. */
export function formatGoG(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const e = x.toExponential(); // Shortest round-trip digits, like Go's.
  const at = e.indexOf("e");
  const exp = Number(e.slice(at + 1));
  if (exp < -4 || exp >= 6) {
    const a = Math.abs(exp);
    return e.slice(0, at) + "e" + (exp < 0 ? "-" : "+") + (a < 10 ? "0" : "") + a;
  }
  return String(x); // JS prints plain decimals for 1e-7 <= |x| < 1e21 with the same digits.
}

export function invalidQuantileWarning(q: number): string {
  return `PromQL warning: quantile value should be between 0 and 1, got ${formatGoG(q)}`;
}

/** time.Duration(ms).Seconds() as Go computes it (whole seconds plus the fraction). */
function durationSeconds(ms: number): number {
  const sec = Math.trunc(ms / 1000);
  const nsec = (ms - sec * 1000) * 1e6;
  return sec + nsec / 1e9;
}

/**
 * Kahan-Neumaier step (Prometheus's kahansum.Inc): given inc, the old sum and t = sum + inc,
 * returns the new compensation. Split this way so callers keep both values in locals.
 */
export function kahanComp(inc: number, sum: number, t: number, c: number): number {
  if (t === Infinity || t === -Infinity) return 0;
  if (Math.abs(sum) >= Math.abs(inc)) return c + (sum - t + inc);
  return c + (inc - t + sum);
}

let scratch = new Float64Array(256);
function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

/**
 * Prometheus's quantile() over buf[0, n), which it sorts in place: NaN sorts first (its
 * comparator says NaN < anything), then weighted interpolation between the two closest ranks.
 */
export function quantileOf(q: number, buf: Float64Array, n: number): number {
  if (n === 0 || Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  // Move NaNs to the front and sort the rest (typed-array sort is numeric).
  let nans = 0;
  for (let i = 0; i < n; i++) {
    const x = buf[i];
    if (Number.isNaN(x)) {
      buf[i] = buf[nans];
      buf[nans++] = x;
    }
  }
  if (n - nans > 1) buf.subarray(nans, n).sort();
  const rank = q * (n - 1);
  const lowerIndex = Math.max(0, Math.floor(rank));
  const upperIndex = Math.min(n - 1, lowerIndex + 1);
  const weight = rank - Math.floor(rank);
  return buf[lowerIndex] * (1 - weight) + buf[upperIndex] * weight;
}

/** quantile() over a Float64Array without touching it (copies into the scratch buffer). */
export function quantileOfValues(q: number, values: Float64Array, n: number): number {
  const buf = scratchOf(n);
  buf.set(n === values.length ? values : values.subarray(0, n));
  return quantileOf(q, buf, n);
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

/** Computes one series' result from its window; null for "no output for this series". */
type PointsFn = (t: Float64Array, v: Float64Array, n: number, ctx: FunctionContext, vals: FunctionArg[]) => number | null;

function rangeFunction(fn: PointsFn, keepName = false, matrixArg = 0): FunctionImpl {
  return (vals, ctx) => {
    const series = vals[matrixArg] as WindowSeries[];
    const out: Sample[] = [];
    for (let i = 0; i < series.length; i++) {
      const s = series[i];
      const n = s.values.length;
      // The engine calls a range function only for series with points in the window.
      if (n === 0) continue;
      const v = fn(s.timestamps, s.values, n, ctx, vals);
      if (v === null) continue;
      out.push({ labels: keepName ? s.labels : dropMetricName(s.labels), t: ctx.ts, v });
    }
    return out;
  };
}

// First index i in [0, n) with t[i] > x, or n (Go's sort.Search).
function searchGreater(t: Float64Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (t[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// First index i in [0, n) with t[i] >= x, or n.
function searchGreaterEq(t: Float64Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (t[mid] >= x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// rate, increase, delta
// ---------------------------------------------------------------------------------------------

/**
 * Prometheus's extrapolatedRate: the increase between the first and last point (plus the
 * value before each counter reset), extrapolated towards the window's bounds: all the way if
 * the first/last point is within 1.1 average intervals of the bound, else by half an average
 * interval; for counters never below zero (the zero point caps the start extrapolation).
 */
function extrapolatedRate(
  t: Float64Array,
  v: Float64Array,
  n: number,
  ctx: FunctionContext,
  isCounter: boolean,
  isRate: boolean,
): number | null {
  if (ctx.anchored || ctx.smoothed) return extendedRate(t, v, n, ctx, isCounter, isRate);
  if (n < 2) return null;
  const firstT = t[0];
  const lastT = t[n - 1];
  let result = v[n - 1] - v[0];
  if (isCounter) {
    for (let i = 1; i < n; i++) {
      const prev = v[i - 1];
      if (v[i] < prev) result += prev;
    }
  }
  let durationToStart = (firstT - ctx.rangeStart) / 1000;
  let durationToEnd = (ctx.rangeEnd - lastT) / 1000;
  const sampledInterval = (lastT - firstT) / 1000;
  const averageDurationBetweenSamples = sampledInterval / (n - 1);
  const extrapolationThreshold = averageDurationBetweenSamples * 1.1;
  if (durationToStart >= extrapolationThreshold) durationToStart = averageDurationBetweenSamples / 2;
  if (isCounter) {
    // Counters cannot go negative: if the extrapolated zero point is closer than the start,
    // the series is taken to start there.
    let durationToZero = durationToStart;
    if (result > 0 && v[0] >= 0) durationToZero = sampledInterval * (v[0] / result);
    if (durationToZero < durationToStart) durationToStart = durationToZero;
  }
  if (durationToEnd >= extrapolationThreshold) durationToEnd = averageDurationBetweenSamples / 2;
  let factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval;
  if (isRate) factor /= durationSeconds(ctx.rangeEnd - ctx.rangeStart);
  return result * factor;
}

function interpolate(t1: number, y1: number, t2: number, y2: number, at: number, isCounter: boolean): number {
  // A counter that dropped is modelled as restarting from 0.
  if (isCounter && y2 < y1) y1 = 0;
  return y1 + ((y2 - y1) * (at - t1)) / (t2 - t1);
}

/**
 * Prometheus's extendedRate, for `anchored`/`smoothed` matrix selectors (experimental): the
 * window also holds the point at or before the range start (and, smoothed, the one after its
 * end); no extrapolation, the boundary values are picked or interpolated instead.
 */
function extendedRate(
  t: Float64Array,
  v: Float64Array,
  n: number,
  ctx: FunctionContext,
  isCounter: boolean,
  isRate: boolean,
): number | null {
  const smoothed = ctx.smoothed === true;
  const rangeStart = ctx.rangeStart;
  const rangeEnd = ctx.rangeEnd;
  let last = n - 1;
  let first = Math.max(0, searchGreater(t, last, rangeStart) - 1);
  if (smoothed) last = searchGreaterEq(t, last, rangeEnd);
  if (t[last] <= rangeStart) return null;
  const left =
    smoothed && t[first] < rangeStart
      ? interpolate(t[first], v[first], t[first + 1], v[first + 1], rangeStart, isCounter)
      : v[first];
  const right =
    smoothed && last > 0 && t[last] > rangeEnd
      ? interpolate(t[last - 1], v[last - 1], t[last], v[last], rangeEnd, isCounter)
      : v[last];
  let result = right - left;
  if (isCounter) {
    // Only points strictly inside the range: the boundary values already handle resets there.
    if (t[first] <= rangeStart) first++;
    if (t[last] >= rangeEnd) last--;
    let correction = 0;
    let prev = left;
    for (let i = first; i <= last; i++) {
      if (v[i] < prev) correction += prev;
      prev = v[i];
    }
    if (right < prev) correction += prev;
    result += correction;
  }
  if (isRate) result /= durationSeconds(rangeEnd - rangeStart);
  return result;
}

/**
 * rate()/increase(). Prometheus's engine also adds an info annotation for every named input
 * series with output whose name does not look like a counter's: engine.ts does (nonCounterInfo).
 */
function counterRateFunction(isRate: boolean): FunctionImpl {
  return (vals, ctx) => {
    const series = vals[0] as WindowSeries[];
    const out: Sample[] = [];
    for (let i = 0; i < series.length; i++) {
      const s = series[i];
      const n = s.values.length;
      if (n === 0) continue;
      const v = extrapolatedRate(s.timestamps, s.values, n, ctx, true, isRate);
      if (v === null) continue;
      out.push({ labels: dropMetricName(s.labels), t: ctx.ts, v });
    }
    return out;
  };
}

export const rate = counterRateFunction(true);
export const increase = counterRateFunction(false);
export const delta = rangeFunction((t, v, n, ctx) => extrapolatedRate(t, v, n, ctx, false, false));

// ---------------------------------------------------------------------------------------------
// irate, idelta
// ---------------------------------------------------------------------------------------------

/** Prometheus's instantValue: from the last two points; irate takes a drop as a reset. */
function instantValue(t: Float64Array, v: Float64Array, n: number, isRate: boolean): number | null {
  if (n < 2) return null;
  const sampledInterval = t[n - 1] - t[n - 2];
  if (sampledInterval === 0) return null;
  const last = v[n - 1];
  const prev = v[n - 2];
  let result = last;
  // On a counter reset irate uses the last value as the increase (`!(a < b)` keeps NaN here).
  if (!isRate || !(last < prev)) result = last - prev;
  if (isRate) result /= sampledInterval / 1000;
  return result;
}

export const irate = rangeFunction((t, v, n) => instantValue(t, v, n, true));
export const idelta = rangeFunction((t, v, n) => instantValue(t, v, n, false));

// ---------------------------------------------------------------------------------------------
// deriv, predict_linear
// ---------------------------------------------------------------------------------------------

let lrSlope = 0;
let lrIntercept = 0;

/**
 * Prometheus's linearRegression: least squares with Kahan sums, x in seconds relative to
 * interceptTime (to keep x small, prometheus#2674). Sets lrSlope and lrIntercept (the value at
 * interceptTime). A constant series has slope 0 exactly (NaN when the constant is infinite).
 */
function linearRegression(t: Float64Array, v: Float64Array, n: number, interceptTime: number): void {
  let sumX = 0;
  let cX = 0;
  let sumY = 0;
  let cY = 0;
  let sumXY = 0;
  let cXY = 0;
  let sumX2 = 0;
  let cX2 = 0;
  const initY = v[0];
  let constY = true;
  for (let i = 0; i < n; i++) {
    const y = v[i];
    if (constY && i > 0 && y !== initY) constY = false;
    const x = (t[i] - interceptTime) / 1e3;
    let s = sumX + x;
    cX = kahanComp(x, sumX, s, cX);
    sumX = s;
    s = sumY + y;
    cY = kahanComp(y, sumY, s, cY);
    sumY = s;
    const xy = x * y;
    s = sumXY + xy;
    cXY = kahanComp(xy, sumXY, s, cXY);
    sumXY = s;
    const x2 = x * x;
    s = sumX2 + x2;
    cX2 = kahanComp(x2, sumX2, s, cX2);
    sumX2 = s;
  }
  if (constY) {
    if (initY === Infinity || initY === -Infinity) {
      lrSlope = NaN;
      lrIntercept = NaN;
    } else {
      lrSlope = 0;
      lrIntercept = initY;
    }
    return;
  }
  sumX += cX;
  sumY += cY;
  sumXY += cXY;
  sumX2 += cX2;
  const covXY = sumXY - (sumX * sumY) / n;
  const varX = sumX2 - (sumX * sumX) / n;
  lrSlope = covXY / varX;
  lrIntercept = sumY / n - (lrSlope * sumX) / n;
}

export const deriv = rangeFunction((t, v, n) => {
  if (n < 2) return null;
  linearRegression(t, v, n, t[0]);
  return lrSlope;
});

/** predict_linear(v range-vector, t scalar): the regression line's value t seconds after ctx.ts. */
export const predictLinear = rangeFunction((t, v, n, ctx, vals) => {
  if (n < 2) return null;
  const duration = scalarArg(vals[1]);
  linearRegression(t, v, n, ctx.ts);
  return lrSlope * duration + lrIntercept;
});

// ---------------------------------------------------------------------------------------------
// resets, changes
// ---------------------------------------------------------------------------------------------

/** Prometheus's pickFirstSampleIndex: for anchored selectors, start at the point at or before the range start. */
function firstSampleIndex(t: Float64Array, n: number, ctx: FunctionContext): number {
  if (!ctx.anchored) return 0;
  if (n === 0 || t[n - 1] <= ctx.rangeStart) return -1;
  return Math.max(0, searchGreater(t, n - 1, ctx.rangeStart) - 1);
}

export const resets = rangeFunction((t, v, n, ctx) => {
  const first = firstSampleIndex(t, n, ctx);
  if (first < 0) return null;
  let count = 0;
  for (let i = first + 1; i < n; i++) if (v[i] < v[i - 1]) count++;
  return count;
});

export const changes = rangeFunction((t, v, n, ctx) => {
  const first = firstSampleIndex(t, n, ctx);
  if (first < 0) return null;
  let count = 0;
  for (let i = first + 1; i < n; i++) {
    const cur = v[i];
    const prev = v[i - 1];
    // NaN to NaN is no change.
    if (cur !== prev && !(Number.isNaN(cur) && Number.isNaN(prev))) count++;
  }
  return count;
});

// ---------------------------------------------------------------------------------------------
// <aggregation>_over_time
// ---------------------------------------------------------------------------------------------

/**
 * avg_over_time: Kahan-summed direct mean while the sum stays finite, switching to an
 * incremental mean once it would overflow (Prometheus, see prometheus#16714).
 */
export const avgOverTime = rangeFunction((_t, v, n) => {
  let sum = v[0];
  let count = 1;
  let mean = 0;
  let kahanC = 0;
  let incrementalMean = false;
  for (let i = 1; i < n; i++) {
    const f = v[i];
    count = i + 1;
    if (!incrementalMean) {
      const newSum = sum + f;
      const newC = kahanComp(f, sum, newSum, kahanC);
      if (newSum !== Infinity && newSum !== -Infinity) {
        sum = newSum;
        kahanC = newC;
        continue;
      }
      incrementalMean = true;
      mean = sum / (count - 1);
      kahanC /= count - 1;
    }
    const q = (count - 1) / count;
    const inc = f / count;
    const base = q * mean;
    const t = base + inc;
    kahanC = kahanComp(inc, base, t, q * kahanC);
    mean = t;
  }
  if (incrementalMean) return mean + kahanC;
  return sum / count + kahanC / count;
});

export const countOverTime = rangeFunction((_t, _v, n) => n);

export const sumOverTime = rangeFunction((_t, v, n) => {
  let sum = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    const f = v[i];
    const s = sum + f;
    c = kahanComp(f, sum, s, c);
    sum = s;
  }
  if (sum === Infinity || sum === -Infinity) return sum;
  return sum + c;
});

// Prometheus's compareOverTime: a NaN so far is replaced by any later value.
export const maxOverTime = rangeFunction((_t, v, n) => {
  let m = v[0];
  for (let i = 0; i < n; i++) {
    const f = v[i];
    if (f > m || Number.isNaN(m)) m = f;
  }
  return m;
});

export const minOverTime = rangeFunction((_t, v, n) => {
  let m = v[0];
  for (let i = 0; i < n; i++) {
    const f = v[i];
    if (f < m || Number.isNaN(m)) m = f;
  }
  return m;
});

// ts_of_max/min_over_time report the last point that holds the extreme (>= / <=).
export const tsOfMaxOverTime = rangeFunction((t, v, n) => {
  let m = v[0];
  let at = t[0];
  for (let i = 0; i < n; i++) {
    const f = v[i];
    if (f >= m || Number.isNaN(m)) {
      m = f;
      at = t[i];
    }
  }
  return at / 1000;
});

export const tsOfMinOverTime = rangeFunction((t, v, n) => {
  let m = v[0];
  let at = t[0];
  for (let i = 0; i < n; i++) {
    const f = v[i];
    if (f <= m || Number.isNaN(m)) {
      m = f;
      at = t[i];
    }
  }
  return at / 1000;
});

export const tsOfFirstOverTime = rangeFunction((t) => t[0] / 1000);
export const tsOfLastOverTime = rangeFunction((t, _v, n) => t[n - 1] / 1000);

/** last_over_time and first_over_time act like an offset and keep __name__. */
export const lastOverTime = rangeFunction((_t, v, n) => v[n - 1], true);
export const firstOverTime = rangeFunction((_t, v) => v[0], true);

export const presentOverTime = rangeFunction(() => 1);

/** Welford's running variance with Kahan-compensated mean and sum of squares (Prometheus's varianceOverTime). */
function varianceOf(v: Float64Array, n: number): number {
  let count = 0;
  let mean = 0;
  let cMean = 0;
  let aux = 0;
  let cAux = 0;
  for (let i = 0; i < n; i++) {
    const f = v[i];
    count++;
    const delta = f - (mean + cMean);
    const inc = delta / count;
    let s = mean + inc;
    cMean = kahanComp(inc, mean, s, cMean);
    mean = s;
    const sq = delta * (f - (mean + cMean));
    s = aux + sq;
    cAux = kahanComp(sq, aux, s, cAux);
    aux = s;
  }
  return (aux + cAux) / count;
}

export const stdvarOverTime = rangeFunction((_t, v, n) => varianceOf(v, n));
export const stddevOverTime = rangeFunction((_t, v, n) => Math.sqrt(varianceOf(v, n)));

/** quantile_over_time(φ scalar, v range-vector); warns once per step for φ outside [0, 1]. */
export const quantileOverTime: FunctionImpl = (vals, ctx) => {
  const q = scalarArg(vals[0]);
  const series = vals[1] as WindowSeries[];
  const out: Sample[] = [];
  const invalid = Number.isNaN(q) || q < 0 || q > 1;
  for (let i = 0; i < series.length; i++) {
    const s = series[i];
    const n = s.values.length;
    if (n === 0) continue;
    if (invalid) ctx.annotations.warn(invalidQuantileWarning(q) + posSuffix(ctx.args[0]));
    out.push({ labels: dropMetricName(s.labels), t: ctx.ts, v: quantileOfValues(q, s.values, n) });
  }
  return out;
};

/**
 * mad_over_time: the median of the absolute deviations from the median. A NaN in the window
 * makes it NaN (functions.go: the median, and so the deviation, is undefined).
 */
export const madOverTime = rangeFunction((_t, v, n) => {
  for (let i = 0; i < n; i++) if (Number.isNaN(v[i])) return NaN;
  const median = quantileOfValues(0.5, v, n);
  const buf = scratchOf(n);
  for (let i = 0; i < n; i++) buf[i] = Math.abs(v[i] - median);
  return quantileOf(0.5, buf, n);
});

/** absent_over_time: 1 with the selector's = labels when no input series has a point in its window. */
export const absentOverTime: FunctionImpl = (vals, ctx) => {
  const series = vals[0] as WindowSeries[];
  for (let i = 0; i < series.length; i++) if (series[i].values.length > 0) return [];
  return [{ labels: absentLabels(ctx.args[0]), t: ctx.ts, v: 1 }];
};

// ---------------------------------------------------------------------------------------------
// double_exponential_smoothing (experimental; Prometheus 2's holt_winters)
// ---------------------------------------------------------------------------------------------

/** Go's %f: six decimals. */
function formatGoF(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  return x.toFixed(6);
}

export const doubleExponentialSmoothing: FunctionImpl = (vals, ctx) => {
  const series = vals[0] as WindowSeries[];
  const sf = scalarArg(vals[1]);
  const tf = scalarArg(vals[2]);
  const out: Sample[] = [];
  for (let i = 0; i < series.length; i++) {
    const s = series[i];
    const n = s.values.length;
    if (n === 0) continue;
    // Prometheus validates the factors per call, i.e. only when some series has points.
    if (!(sf > 0 && sf < 1)) throw new PromQLExecError(`invalid smoothing factor. Expected: 0 < sf < 1, got: ${formatGoF(sf)}`);
    if (!(tf > 0 && tf < 1)) throw new PromQLExecError(`invalid trend factor. Expected: 0 < tf < 1, got: ${formatGoF(tf)}`);
    if (n < 2) continue;
    const v = s.values;
    let s0 = 0;
    let s1 = v[0];
    let b = v[1] - v[0];
    for (let j = 1; j < n; j++) {
      const x = sf * v[j];
      // calcTrendValue(j-1, ...): the initial trend is used as is.
      if (j - 1 !== 0) b = tf * (s1 - s0) + (1 - tf) * b;
      const y = (1 - sf) * (s1 + b);
      s0 = s1;
      s1 = x + y;
    }
    out.push({ labels: dropMetricName(s.labels), t: ctx.ts, v: s1 });
  }
  return out;
};

