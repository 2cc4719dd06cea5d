// Instant-vector and scalar functions, after Prometheus 3's promql/functions.go and
// promql/quantile.go, for float samples (native histograms are not supported: functions that
// act only on them return nothing, as Prometheus does for float input).
//
// Results carry t = ctx.ts. Like Prometheus without delayed name removal, functions that
// compute new values drop __name__ themselves; sort*, label_replace and label_join keep it.
// Scalar-valued functions (time, pi, scalar, start, ...) return one sample with no labels.

import type { FunctionImpl } from "./types";
import { posSuffix, type Expr } from "../ast";
import { anchoredRE2 } from "../../../model/regex";
import { goQuote } from "../format";
import { PromQLExecError, type Sample, type Vector } from "../value";
import { compareLabels, getLabel, setLabel, type FlatLabels } from "../../../model/labels";
import {
  absentLabels,
  dropMetricName,
  formatGoG,
  invalidQuantileWarning,
  metricName,
  scalarArg,
  stringArg,
} from "./range";

// ---------------------------------------------------------------------------------------------
// Element-wise math
// ---------------------------------------------------------------------------------------------

function simpleFunction(f: (x: number) => number): FunctionImpl {
  return (vals, ctx) => {
    const vec = vals[0] as Vector;
    const out = new Array<Sample>(vec.length);
    for (let i = 0; i < vec.length; i++) {
      const s = vec[i];
      out[i] = { labels: dropMetricName(s.labels), t: ctx.ts, v: f(s.v) };
    }
    return out;
  };
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer); // Little-endian: u32[1] holds sign, exponent and top mantissa bits.

/** Go's math.Log2: frexp-based, so exact powers of two give exact results. */
function goLog2(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return Math.log(x) * Math.LOG2E; // Frexp(x) = (x, 0) here.
  let exp = 0;
  if (Math.abs(x) < 2.2250738585072014e-308) {
    x *= 4503599627370496; // 2^52: normalize a subnormal.
    exp = -52;
  }
  f64[0] = x;
  exp += ((u32[1] >>> 20) & 0x7ff) - 1022;
  u32[1] = (u32[1] & 0x800fffff) | (1022 << 20);
  const frac = f64[0];
  if (frac === 0.5) return exp - 1;
  return Math.log(frac) * Math.LOG2E + exp;
}

export const abs = simpleFunction(Math.abs);
export const ceil = simpleFunction(Math.ceil);
export const floor = simpleFunction(Math.floor);
export const exp = simpleFunction(Math.exp);
export const sqrt = simpleFunction(Math.sqrt);
export const ln = simpleFunction(Math.log);
export const log2 = simpleFunction(goLog2);
// Go: math.Log10(x) = math.Log(x) * (1/Ln10).
export const log10 = simpleFunction((x) => Math.log(x) * Math.LOG10E);
export const sin = simpleFunction(Math.sin);
export const cos = simpleFunction(Math.cos);
export const tan = simpleFunction(Math.tan);
export const asin = simpleFunction(Math.asin);
export const acos = simpleFunction(Math.acos);
export const atan = simpleFunction(Math.atan);
export const sinh = simpleFunction(Math.sinh);
export const cosh = simpleFunction(Math.cosh);
export const tanh = simpleFunction(Math.tanh);
export const asinh = simpleFunction(Math.asinh);
export const acosh = simpleFunction(Math.acosh);
export const atanh = simpleFunction(Math.atanh);
export const rad = simpleFunction((v) => (v * Math.PI) / 180);
export const deg = simpleFunction((v) => (v * 180) / Math.PI);
// sgn keeps 0, -0 and NaN as they are.
export const sgn = simpleFunction((v) => (v < 0 ? -1 : v > 0 ? 1 : v));

/** round(v, to_nearest=1): ties round up; Prometheus multiplies by the inverse for accuracy. */
export const round: FunctionImpl = (vals, ctx) => {
  const toNearest = vals.length >= 2 ? scalarArg(vals[1]) : 1;
  const inv = 1 / toNearest;
  return simpleFunction((f) => Math.floor(f * inv + 0.5) / inv)(vals, ctx);
};

function clampTo(vec: Vector, min: number, max: number, ts: number): Sample[] {
  // An empty result when min > max (NaN bounds pass and make every value NaN).
  if (max < min) return [];
  const out = new Array<Sample>(vec.length);
  for (let i = 0; i < vec.length; i++) {
    const s = vec[i];
    out[i] = { labels: dropMetricName(s.labels), t: ts, v: Math.max(min, Math.min(max, s.v)) };
  }
  return out;
}

export const clamp: FunctionImpl = (vals, ctx) =>
  clampTo(vals[0] as Vector, scalarArg(vals[1]), scalarArg(vals[2]), ctx.ts);
export const clampMin: FunctionImpl = (vals, ctx) => clampTo(vals[0] as Vector, scalarArg(vals[1]), Infinity, ctx.ts);
export const clampMax: FunctionImpl = (vals, ctx) => clampTo(vals[0] as Vector, -Infinity, scalarArg(vals[1]), ctx.ts);

// ---------------------------------------------------------------------------------------------
// Scalars and conversions
// ---------------------------------------------------------------------------------------------

function scalarResult(v: number, ts: number): Sample[] {
  return [{ labels: [], t: ts, v }];
}

export const time: FunctionImpl = (_vals, ctx) => scalarResult(ctx.ts / 1000, ctx.ts);
export const pi: FunctionImpl = (_vals, ctx) => scalarResult(Math.PI, ctx.ts);

// Experimental start(), end(), range(), step(): the query's own parameters, in seconds.
export const start: FunctionImpl = (_vals, ctx) => scalarResult((ctx.queryStart ?? ctx.ts) / 1000, ctx.ts);
export const end: FunctionImpl = (_vals, ctx) => scalarResult((ctx.queryEnd ?? ctx.ts) / 1000, ctx.ts);
export const range: FunctionImpl = (_vals, ctx) =>
  scalarResult(((ctx.queryEnd ?? ctx.ts) - (ctx.queryStart ?? ctx.ts)) / 1000, ctx.ts);
export const step: FunctionImpl = (_vals, ctx) => scalarResult((ctx.queryStep ?? 0) / 1000, ctx.ts);

export const vector: FunctionImpl = (vals, ctx) => [{ labels: [], t: ctx.ts, v: scalarArg(vals[0]) }];

/** scalar(v): the value of the only element, else NaN. */
export const scalar: FunctionImpl = (vals, ctx) => {
  const vec = vals[0] as Vector;
  return scalarResult(vec.length === 1 ? vec[0].v : NaN, ctx.ts);
};

/** timestamp(v): the sample's own time (the evaluator passes raw sample times for a selector argument). */
export const timestamp: FunctionImpl = (vals, ctx) => {
  const vec = vals[0] as Vector;
  const out = new Array<Sample>(vec.length);
  for (let i = 0; i < vec.length; i++) {
    const s = vec[i];
    out[i] = { labels: dropMetricName(s.labels), t: ctx.ts, v: s.t / 1000 };
  }
  return out;
};

/** absent(v): 1 with the selector's = labels when v is empty. */
export const absent: FunctionImpl = (vals, ctx) => {
  const vec = vals[0] as Vector;
  if (vec.length > 0) return [];
  return [{ labels: absentLabels(ctx.args[0]), t: ctx.ts, v: 1 }];
};

// ---------------------------------------------------------------------------------------------
// Date functions (UTC)
// ---------------------------------------------------------------------------------------------

const enum DatePart {
  Minute,
  Hour,
  DayOfWeek,
  DayOfMonth,
  DayOfYear,
  DaysInMonth,
  Month,
  Year,
}

const CUMULATIVE_DAYS = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** A part of the UTC date of `sec` seconds since the epoch (Howard Hinnant's civil_from_days). */
function datePart(sec: number, part: DatePart): number {
  // Go converts with int64(f); beyond int64 (and for NaN) its result is platform garbage.
  if (!Number.isFinite(sec) || Math.abs(sec) >= 9.2e18) return NaN;
  const days = Math.floor(sec / 86400);
  const secOfDay = sec - days * 86400;
  switch (part) {
    case DatePart.Minute:
      return Math.floor(secOfDay / 60) % 60;
    case DatePart.Hour:
      return Math.floor(secOfDay / 3600);
    case DatePart.DayOfWeek:
      return (((days + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday.
  }
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  switch (part) {
    case DatePart.DayOfMonth:
      return d;
    case DatePart.Month:
      return m;
    case DatePart.Year:
      return y;
    case DatePart.DayOfYear:
      return CUMULATIVE_DAYS[m - 1] + d + (m > 2 && isLeap(y) ? 1 : 0);
    default:
      return m === 2 && isLeap(y) ? 29 : MONTH_DAYS[m - 1];
  }
}

/** Prometheus's dateWrapper: without an argument, the evaluation time; else each value as epoch seconds. */
function dateFunction(part: DatePart): FunctionImpl {
  return (vals, ctx) => {
    if (vals.length === 0) return [{ labels: [], t: ctx.ts, v: datePart(Math.trunc(ctx.ts / 1000), part) }];
    const vec = vals[0] as Vector;
    const out = new Array<Sample>(vec.length);
    for (let i = 0; i < vec.length; i++) {
      const s = vec[i];
      out[i] = { labels: dropMetricName(s.labels), t: ctx.ts, v: datePart(Math.trunc(s.v), part) };
    }
    return out;
  };
}

export const minute = dateFunction(DatePart.Minute);
export const hour = dateFunction(DatePart.Hour);
export const dayOfWeek = dateFunction(DatePart.DayOfWeek);
export const dayOfMonth = dateFunction(DatePart.DayOfMonth);
export const dayOfYear = dateFunction(DatePart.DayOfYear);
export const daysInMonth = dateFunction(DatePart.DaysInMonth);
export const month = dateFunction(DatePart.Month);
export const year = dateFunction(DatePart.Year);

// ---------------------------------------------------------------------------------------------
// Sorting
// ---------------------------------------------------------------------------------------------

// NaN sorts to the bottom either way. JS sort is stable where Go's is not: equal values keep
// their input order.
export const sort: FunctionImpl = (vals) =>
  (vals[0] as Vector).slice().sort((a, b) => {
    const x = a.v;
    const y = b.v;
    if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
    if (Number.isNaN(y)) return -1;
    return x < y ? -1 : x > y ? 1 : 0;
  });

export const sortDesc: FunctionImpl = (vals) =>
  (vals[0] as Vector).slice().sort((a, b) => {
    const x = a.v;
    const y = b.v;
    if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
    if (Number.isNaN(y)) return -1;
    return x > y ? -1 : x < y ? 1 : 0;
  });

const MAX_INT64 = 9223372036854775807n;

/** strconv.Atoi of a chunk of ASCII digits, or null when it overflows int64. */
function atoiDigits(s: string): bigint | null {
  if (s.charCodeAt(0) < 48 || s.charCodeAt(0) > 57) return null;
  const n = BigInt(s);
  return n > MAX_INT64 ? null : n;
}

/**
 * github.com/facette/natsort.Compare at the version Prometheus pins (2018): the strings are
 * split into runs of digits and non-digits; digit runs compare as integers, others as strings;
 * a string that runs out of chunks while equal so far sorts first.
 */
export function naturalLess(a: string, b: string): boolean {
  const ca = a.match(/\d+|\D+/g) ?? [];
  const cb = b.match(/\d+|\D+/g) ?? [];
  const na = ca.length;
  const nb = cb.length;
  for (let i = 0; i < na; i++) {
    if (i >= nb) return false;
    const x = ca[i];
    const y = cb[i];
    const xi = atoiDigits(x);
    const yi = atoiDigits(y);
    if (xi !== null && yi !== null) {
      if (xi === yi) {
        if (i === na - 1) return true;
        if (i === nb - 1) return false;
        continue;
      }
      return xi < yi;
    }
    if (x === y) {
      if (i === na - 1) return true;
      if (i === nb - 1) return false;
      continue;
    }
    return x < y;
  }
  return false;
}

function sortByLabelFunction(desc: boolean): FunctionImpl {
  return (vals) => {
    const names: string[] = [];
    for (let i = 1; i < vals.length; i++) names.push(stringArg(vals[i]));
    const sign = desc ? -1 : 1;
    return (vals[0] as Vector).slice().sort((a, b) => {
      for (const name of names) {
        const x = getLabel(a.labels, name);
        const y = getLabel(b.labels, name);
        if (x === y) continue;
        return naturalLess(x, y) ? -sign : sign;
      }
      // Equal on the given labels: by the full label set, for a stable order.
      return sign * compareLabels(a.labels, b.labels);
    });
  };
}

export const sortByLabel = sortByLabelFunction(false);
export const sortByLabelDesc = sortByLabelFunction(true);

// ---------------------------------------------------------------------------------------------
// label_replace, label_join
// ---------------------------------------------------------------------------------------------

/**
 * model.UTF8Validation.IsValidLabelName (Prometheus 3's default scheme): any non-empty valid
 * UTF-8. `arg` is the argument as written: a string literal whose bytes were not valid UTF-8
 * ("\xff") reaches us with U+FFFD in their place, so the parser marks it.
 */
function isValidLabelName(name: string, arg?: Expr): boolean {
  while (arg?.type === "ParenExpr") arg = arg.expr;
  if (arg?.type === "StringLiteral" && arg.invalidUTF8 === true) return false;
  return name.length > 0 && !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name);
}


const regexCache = new Map<string, RegExp | null>();

/** label_replace's regex, fully anchored; null when it does not compile. */
function anchoredRegex(src: string): RegExp | null {
  let re = regexCache.get(src);
  if (re !== undefined) return re;
  try {
    re = anchoredRE2(src);
  } catch {
    re = null;
  }
  if (regexCache.size >= 256) regexCache.clear();
  regexCache.set(src, re);
  return re;
}

/**
 * Go's Regexp.ExpandString: $1, $name, ${name} ($ followed by the longest run of letters,
 * digits and _, so "$1x" names the group "1x"); $$ is "$"; a malformed reference is kept as
 * "$"; groups that do not exist or did not match expand to "".
 */
export function expandTemplate(template: string, m: RegExpExecArray): string {
  let out = "";
  let i = 0;
  while (i < template.length) {
    const dollar = template.indexOf("$", i);
    if (dollar < 0) break;
    out += template.slice(i, dollar);
    i = dollar + 1;
    if (template[i] === "$") {
      out += "$";
      i++;
      continue;
    }
    let j = i;
    const brace = template[j] === "{";
    if (brace) j++;
    const nameMatch = /^[\p{L}\p{Nd}_]+/u.exec(template.slice(j));
    if (nameMatch === null || (brace && template[j + nameMatch[0].length] !== "}")) {
      out += "$";
      continue;
    }
    const name = nameMatch[0];
    i = j + name.length + (brace ? 1 : 0);
    let num = -1;
    if (/^[0-9]+$/.test(name) && !(name[0] === "0" && name.length > 1) && name.length <= 9) num = Number(name);
    if (num >= 0) {
      if (num < m.length && m[num] !== undefined) out += m[num];
    } else {
      const g = m.groups?.[name];
      if (g !== undefined) out += g;
    }
  }
  return out + template.slice(i);
}

const labelCaches = new Map<string, WeakMap<FlatLabels, FlatLabels>>();

/** Per (function, arguments) cache of result labels by input labels (the same array every step). */
function labelCache(key: string): WeakMap<FlatLabels, FlatLabels> {
  let c = labelCaches.get(key);
  if (c === undefined) {
    if (labelCaches.size >= 256) labelCaches.clear();
    c = new WeakMap();
    labelCaches.set(key, c);
  }
  return c;
}

/** label_replace(v, dst, replacement, src, regex): errors as Prometheus (regex checked first). */
export const labelReplace: FunctionImpl = (vals, ctx) => {
  const dst = stringArg(vals[1]);
  const repl = stringArg(vals[2]);
  const src = stringArg(vals[3]);
  const regexStr = stringArg(vals[4]);
  const re = anchoredRegex(regexStr);
  if (re === null) throw new PromQLExecError(`invalid regular expression in label_replace(): ${regexStr}`);
  if (!isValidLabelName(dst, ctx.args[1])) throw new PromQLExecError(`invalid destination label name in label_replace(): ${dst}`);
  const cache = labelCache(`r\0${dst}\0${repl}\0${src}\0${regexStr}`);
  const vec = vals[0] as Vector;
  const out = new Array<Sample>(vec.length);
  for (let i = 0; i < vec.length; i++) {
    const s = vec[i];
    let labels = cache.get(s.labels);
    if (labels === undefined) {
      const m = re.exec(getLabel(s.labels, src));
      // Only a matching regex changes the labels.
      labels = m === null ? s.labels : setLabel(s.labels, dst, expandTemplate(repl, m));
      cache.set(s.labels, labels);
    }
    out[i] = { labels, t: ctx.ts, v: s.v };
  }
  return out;
};

/** label_join(v, dst, separator, src...). */
export const labelJoin: FunctionImpl = (vals, ctx) => {
  const dst = stringArg(vals[1]);
  const sep = stringArg(vals[2]);
  const srcs: string[] = [];
  for (let i = 3; i < vals.length; i++) {
    const src = stringArg(vals[i]);
    if (!isValidLabelName(src, ctx.args[i])) throw new PromQLExecError(`invalid source label name in label_join(): ${src}`);
    srcs.push(src);
  }
  if (!isValidLabelName(dst, ctx.args[1])) throw new PromQLExecError(`invalid destination label name in label_join(): ${dst}`);
  const cache = labelCache(`j\0${dst}\0${sep}\0${srcs.join("\0")}`);
  const vec = vals[0] as Vector;
  const out = new Array<Sample>(vec.length);
  for (let i = 0; i < vec.length; i++) {
    const s = vec[i];
    let labels = cache.get(s.labels);
    if (labels === undefined) {
      let joined = "";
      for (let k = 0; k < srcs.length; k++) joined += (k > 0 ? sep : "") + getLabel(s.labels, srcs[k]);
      labels = setLabel(s.labels, dst, joined);
      cache.set(s.labels, labels);
    }
    out[i] = { labels, t: ctx.ts, v: s.v };
  }
  return out;
};

// ---------------------------------------------------------------------------------------------
// Classic histograms: histogram_quantile, histogram_quantiles, histogram_fraction
// ---------------------------------------------------------------------------------------------

/** strconv.ParseFloat(s, 64), or null where Go returns an error (including out of range). */
export function parseGoFloat(s: string): number | null {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) {
    const v = Number(s);
    return Number.isFinite(v) ? v : null; // Overflow is ErrRange in Go.
  }
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(s);
  if (special) {
    if (special[2].toLowerCase() === "nan") return special[1] === "" ? NaN : null;
    return special[1] === "-" ? -Infinity : Infinity;
  }
  const hex = /^([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?\d+)$/.exec(s);
  if (hex && (hex[2] !== "" || hex[3] !== "")) {
    const mant = parseInt((hex[2] + hex[3]) || "0", 16);
    const v = mant * Math.pow(2, Number(hex[4]) - 4 * hex[3].length);
    if (!Number.isFinite(v)) return null;
    return hex[1] === "-" ? -v : v;
  }
  return null;
}

interface BucketGroup {
  /** Output labels: the input's without le and __name__. */
  labels: FlatLabels;
  upper: number[];
  count: number[];
}

const bucketLabelsCache = new WeakMap<FlatLabels, FlatLabels>();

function withoutLeAndName(labels: FlatLabels): FlatLabels {
  let out = bucketLabelsCache.get(labels);
  if (out === undefined) {
    out = [];
    for (let i = 0; i < labels.length; i += 2) {
      const n = labels[i];
      if (n !== "le" && n !== "__name__") out.push(n, labels[i + 1]);
    }
    bucketLabelsCache.set(labels, out);
  }
  return out;
}

/**
 * Groups the float samples into classic histograms by their labels except le (the metric name
 * included, so two histograms with otherwise equal labels stay apart), as Prometheus's
 * resetHistograms; samples without a parseable le are skipped with a warning.
 */
function groupBuckets(vec: Vector, warn: (msg: string) => void): BucketGroup[] {
  const groups = new Map<string, BucketGroup>();
  for (let i = 0; i < vec.length; i++) {
    const s = vec[i];
    const le = getLabel(s.labels, "le");
    const upper = parseGoFloat(le);
    if (upper === null) {
      const name = metricName(s.labels);
      warn(
        `PromQL warning: bucket label "le" is missing or has a malformed value of ${goQuote(le)}` +
          (name === "" ? "" : ` for metric name ${goQuote(name)}`),
      );
      continue;
    }
    let key = "";
    for (let k = 0; k < s.labels.length; k += 2) {
      if (s.labels[k] !== "le") key += s.labels[k] + "\xff" + s.labels[k + 1] + "\xff";
    }
    let g = groups.get(key);
    if (g === undefined) {
      g = { labels: withoutLeAndName(s.labels), upper: [], count: [] };
      groups.set(key, g);
    }
    g.upper.push(upper);
    g.count.push(s.v);
  }
  return [...groups.values()];
}

/** Sorts the buckets by upper bound (insertion sort: few buckets, usually sorted already). */
function sortBuckets(upper: number[], count: number[], n: number): void {
  for (let i = 1; i < n; i++) {
    const u = upper[i];
    const c = count[i];
    let j = i - 1;
    while (j >= 0 && upper[j] > u) {
      upper[j + 1] = upper[j];
      count[j + 1] = count[j];
      j--;
    }
    upper[j + 1] = u;
    count[j + 1] = c;
  }
}

/** Merges buckets with the same upper bound, in place; returns the new length. */
function coalesceBuckets(upper: number[], count: number[], n: number): number {
  let lastU = upper[0];
  let lastC = count[0];
  let k = 0;
  for (let i = 1; i < n; i++) {
    if (upper[i] === lastU) {
      lastC += count[i];
    } else {
      upper[k] = lastU;
      count[k] = lastC;
      lastU = upper[i];
      lastC = count[i];
      k++;
    }
  }
  upper[k] = lastU;
  count[k] = lastC;
  return k + 1;
}

const MIN_NORMAL = 2.2250738585072014e-308;

/** Prometheus's util/almost.Equal. */
function almostEqual(a: number, b: number, epsilon: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (a === b) return true;
  const absSum = Math.abs(a) + Math.abs(b);
  const diff = Math.abs(a - b);
  if (a === 0 || b === 0 || absSum < MIN_NORMAL) return diff < epsilon * MIN_NORMAL;
  return diff / Math.min(absSum, Number.MAX_VALUE) < epsilon;
}

/**
 * Prometheus's ensureMonotonicAndIgnoreSmallDeltas: differences within 1e-12 relative are
 * taken as float noise and flattened; real decreases are raised to the previous count.
 * Returns whether a real decrease had to be fixed.
 */
function ensureMonotonic(count: number[], n: number): boolean {
  let forced = false;
  let prev = count[0];
  for (let i = 1; i < n; i++) {
    const curr = count[i];
    if (curr === prev) continue;
    if (almostEqual(prev, curr, 1e-12)) {
      count[i] = prev;
      continue;
    }
    if (curr < prev) {
      count[i] = prev;
      forced = true;
      continue;
    }
    prev = curr;
  }
  return forced;
}

let forcedMonotonicity = false;

/**
 * Prometheus's BucketQuantile over cumulative buckets (which it sorts and fixes in place, as
 * Go does on the group's slice): linear interpolation within the bucket; the lowest bucket
 * starts at 0 if its bound is positive; a quantile in the +Inf bucket gives the second
 * highest bound. NaN without a +Inf bucket, with fewer than two buckets or no observations.
 * Sets forcedMonotonicity.
 */
export function bucketQuantile(q: number, upper: number[], count: number[], len: number): number {
  forcedMonotonicity = false;
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  sortBuckets(upper, count, len);
  if (upper[len - 1] !== Infinity) return NaN;
  const n = coalesceBuckets(upper, count, len);
  forcedMonotonicity = ensureMonotonic(count, n);
  if (n < 2) return NaN;
  const observations = count[n - 1];
  if (observations === 0) return NaN;
  let rank = q * observations;
  // sort.Search over all but the +Inf bucket.
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (count[mid] >= rank) hi = mid;
    else lo = mid + 1;
  }
  const b = lo;
  if (b === n - 1) return upper[n - 2];
  if (b === 0 && upper[0] <= 0) return upper[0];
  let bucketStart = 0;
  const bucketEnd = upper[b];
  let c = count[b];
  if (b > 0) {
    bucketStart = upper[b - 1];
    c -= count[b - 1];
    rank -= count[b - 1];
  }
  return bucketStart + (bucketEnd - bucketStart) * (rank / c);
}

/**
 * Prometheus's BucketFraction: the estimated fraction of observations in [lower, upper] with
 * the same linear interpolation (the first bucket starts at 0 if its bound is positive, else
 * at -Inf, where no interpolation happens).
 */
export function bucketFraction(lower: number, upper: number, ub: number[], count: number[], len: number): number {
  if (len === 0) return NaN;
  sortBuckets(ub, count, len);
  if (ub[len - 1] !== Infinity) return NaN;
  const n = coalesceBuckets(ub, count, len);
  const total = count[n - 1];
  if (total === 0 || Number.isNaN(lower) || Number.isNaN(upper)) return NaN;
  if (lower >= upper) return 0;
  let rank = 0;
  let lowerRank = 0;
  let upperRank = 0;
  let lowerSet = false;
  let upperSet = false;
  let lowerBound = ub[0] <= 0 ? -Infinity : 0;
  for (let i = 0; i < n; i++) {
    if (i > 0) lowerBound = ub[i - 1];
    const upperBound = ub[i];
    const c = count[i];
    if (!lowerSet && lowerBound >= lower) {
      lowerRank = rank;
      lowerSet = true;
    }
    if (!upperSet && lowerBound >= upper) {
      upperRank = rank;
      upperSet = true;
    }
    if (lowerSet && upperSet) break;
    if (!lowerSet && lowerBound < lower && upperBound > lower) {
      lowerRank = lowerBound === -Infinity ? c : rank + ((c - rank) * (lower - lowerBound)) / (upperBound - lowerBound);
      lowerSet = true;
    }
    if (!upperSet && lowerBound < upper && upperBound > upper) {
      upperRank = lowerBound === -Infinity ? c : rank + ((c - rank) * (upper - lowerBound)) / (upperBound - lowerBound);
      upperSet = true;
    }
    if (lowerSet && upperSet) break;
    rank = c; // Counts are cumulative.
  }
  if (!lowerSet || lowerRank > total) lowerRank = total;
  if (!upperSet || upperRank > total) upperRank = total;
  return (upperRank - lowerRank) / total;
}

// Without delayed name removal Prometheus leaves the metric name out of this message.
const FORCED_MONOTONICITY_INFO =
  "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)";

/** histogram_quantile(φ scalar, b instant-vector) over classic (le) buckets. */
export const histogramQuantile: FunctionImpl = (vals, ctx) => {
  const q = scalarArg(vals[0]);
  // functions.go: the quantile warning points at φ, the others at the bucket vector.
  if (Number.isNaN(q) || q < 0 || q > 1) ctx.annotations.warn(invalidQuantileWarning(q) + posSuffix(ctx.args[0]));
  const at = posSuffix(ctx.args[1]);
  const groups = groupBuckets(vals[1] as Vector, (m) => ctx.annotations.warn(m + at));
  const out = new Array<Sample>(groups.length);
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    const v = bucketQuantile(q, g.upper, g.count, g.upper.length);
    if (forcedMonotonicity) ctx.annotations.info(FORCED_MONOTONICITY_INFO + at);
    out[i] = { labels: g.labels, t: ctx.ts, v };
  }
  return out;
};

/** labels.FormatOpenMetricsFloat: Go's %g, with ".0" added to integers. */
function formatOpenMetricsFloat(f: number): string {
  if (f === 1) return "1.0";
  if (f === 0) return "0.0";
  if (f === -1) return "-1.0";
  const s = formatGoG(f);
  if (Number.isNaN(f) || !Number.isFinite(f) || /[e.]/.test(s)) return s;
  return s + ".0";
}

/** histogram_quantiles(b, label, φ...) (experimental): one result per φ, labelled with it. */
export const histogramQuantiles: FunctionImpl = (vals, ctx) => {
  const label = stringArg(vals[1]);
  const qs: number[] = [];
  for (let i = 2; i < vals.length; i++) {
    const q = scalarArg(vals[i]);
    if (Number.isNaN(q) || q < 0 || q > 1) ctx.annotations.warn(invalidQuantileWarning(q) + posSuffix(ctx.args[i]));
    qs.push(q);
  }
  // functions.go: the bucket warnings and the monotonicity info point at the bucket vector.
  const at = posSuffix(ctx.args[0]);
  const groups = groupBuckets(vals[0] as Vector, (m) => ctx.annotations.warn(m + at));
  const out: Sample[] = [];
  for (const q of qs) {
    const qStr = formatOpenMetricsFloat(q);
    for (const g of groups) {
      const v = bucketQuantile(q, g.upper, g.count, g.upper.length);
      if (forcedMonotonicity) ctx.annotations.info(FORCED_MONOTONICITY_INFO + at);
      out.push({ labels: setLabel(g.labels, label, qStr), t: ctx.ts, v });
    }
  }
  return out;
};

/** histogram_fraction(lower, upper scalar, b instant-vector) over classic buckets. */
export const histogramFraction: FunctionImpl = (vals, ctx) => {
  const lower = scalarArg(vals[0]);
  const upper = scalarArg(vals[1]);
  const at = posSuffix(ctx.args[2]);
  const groups = groupBuckets(vals[2] as Vector, (m) => ctx.annotations.warn(m + at));
  const out = new Array<Sample>(groups.length);
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    out[i] = { labels: g.labels, t: ctx.ts, v: bucketFraction(lower, upper, g.upper, g.count, g.upper.length) };
  }
  return out;
};

/** histogram_count/sum/avg/stddev/stdvar act on native histograms only: nothing for floats. */
export const nativeHistogramOnly: FunctionImpl = () => [];
