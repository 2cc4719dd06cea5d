// The LogQL engine (Loki's pkg/logql/engine.go, evaluator.go, range_vector.go,
// vector.go): log queries return streams; metric queries are evaluated at every step.
//
// Each selector is read from the source once over the whole time range it needs
// (steps, range, offset); entries pass the line filters on the string first, then the
// rest of the pipeline, and become samples gathered per series in typed arrays. Steps
// are then evaluated over those arrays: windows (t - offset - range, t - offset], as
// Loki's range vector iterator. Aggregations and binary operators work step by step
// on series of Float64Arrays with a presence mask.

import { compareLabels, type FlatLabels } from "../../model/labels";
import type { LogSelectParams, LogStreamData } from "../../model/logs";
import { compileRegex } from "../../model/matchers";
import { cmpNs, formatNs, NS_PER_MS } from "../../model/logtime";
import { MatchType, type LabelMatcher } from "../../proto/types";
import { formatFloat } from "../promql/format";
import {
  type BinaryExpr,
  type Grouping,
  type LogExpr,
  type LogQLExpr,
  type RangeAggregation,
  type SampleExpr,
  type VectorAggregation,
} from "./ast";
import { parseLogQL } from "./parse";
import { ERR_SAMPLE, ERROR_LABEL, LabelsBuilder, labelsString } from "./pipeline/labels";
import { compilePipeline } from "./pipeline/pipeline";
import { compileLabelFilter } from "./pipeline/stages";
import { LogQLEvalError, type EntryCategories, type LokiQueryData, type LokiStream, type StreamValue } from "./result";
import { parseBytes, parseDuration, parseGoFloat } from "./units";

export { parseLogQL } from "./parse";
export { LogQLParseError } from "./ast";
export { LogQLEvalError, type LokiQueryData } from "./result";

export interface LogSource {
  select(params: LogSelectParams): Promise<LogStreamData[]>;
}

export interface EvalOptions {
  startMs: number;
  startNs: number;
  endMs: number;
  endNs: number;
  stepMs: number;
  intervalMs?: number;
  instant: boolean;
  direction: "forward" | "backward";
  limit: number;
  /** Series a metric query may return (Loki max_query_series). */
  maxSeries?: number;
  /** The largest `limit` a log query may ask for (Loki max_entries_limit_per_query). */
  maxEntries?: number;
  /**
   * Loki's `X-Loki-Response-Encoding-Flags: categorize-labels`: streams keep their own
   * labels and each entry carries {structuredMetadata, parsed}. Off (Loki's default):
   * metadata and parsed labels join the stream labels, splitting streams.
   */
  categorizeLabels?: boolean;
}

export async function evalLogQL(source: LogSource, query: string | LogQLExpr, opts: EvalOptions): Promise<LokiQueryData> {
  const expr = typeof query === "string" ? parseLogQL(query) : query;
  if (expr.kind === "log") return evalLogs(source, expr, opts);
  return evalMetric(source, expr, opts);
}

// ====================================================================== log queries

interface Candidate {
  ms: number;
  ns: number;
  line: string;
  key: string;
  labels: FlatLabels;
  cats: EntryCategories | null;
  /** Position within its source stream, to keep the source's order among equal timestamps. */
  seq: number;
}

async function evalLogs(source: LogSource, expr: LogExpr, o: EvalOptions): Promise<LokiQueryData> {
  if (o.maxEntries !== undefined && o.limit > o.maxEntries) {
    throw new LogQLEvalError(`max entries limit per query exceeded, limit > max_entries_limit (${o.limit} > ${o.maxEntries})`);
  }
  const streams = await source.select({ matchers: expr.matchers, startMs: o.startMs, startNs: o.startNs, endMs: o.endMs, endNs: o.endNs });
  const pipeline = compilePipeline(expr.stages);
  const lb = new LabelsBuilder();
  const backward = o.direction === "backward";
  const limit = o.limit > 0 ? o.limit : Infinity;
  const interval = o.intervalMs ?? 0;
  // No more than `limit` entries can come from one stream, so without `interval` a
  // stream stops there. With it, Loki's readStreams skips entries while merging and
  // counts only those it returns, so any candidate may be needed: no cap.
  const perStream = interval > 0 ? Infinity : limit;
  const cands: Candidate[] = [];
  let seq = 0;
  for (const s of streams) {
    lb.setStream(s.flat, s.labels);
    const n = s.lines.length;
    let taken = 0;
    for (let k = 0; k < n && taken < perStream; k++) {
      const i = backward ? n - 1 - k : k;
      const ms = s.tsMs[i];
      const ns = s.tsNs[i];
      if (cmpNs(ms, ns, o.startMs, o.startNs) < 0 || cmpNs(ms, ns, o.endMs, o.endNs) >= 0) continue;
      let line: string | null = s.lines[i];
      if (pipeline.prefilter !== null && !pipeline.prefilter(line)) continue;
      lb.reset(s.metadata !== null ? s.metadata[i] : null);
      line = pipeline.process(line, lb, ms, ns);
      if (line === null) continue;
      let labels: FlatLabels;
      let key: string;
      let cats: EntryCategories | null = null;
      if (o.categorizeLabels) {
        const c = lb.categorized();
        labels = c.stream;
        key = labelsString(labels);
        if (c.metadata.length > 0 || c.parsed.length > 0) {
          cats = {};
          if (c.metadata.length > 0) cats.structuredMetadata = toObject(c.metadata);
          if (c.parsed.length > 0) cats.parsed = toObject(c.parsed);
        }
      } else {
        labels = lb.labels();
        key = lb.key();
      }
      cands.push({ ms, ns, line, key, labels, cats, seq: seq++ });
      taken++;
    }
  }
  // Loki's merge: entries across streams in time order (direction), equal times by stream labels.
  cands.sort((a, b) => {
    const c = cmpNs(a.ms, a.ns, b.ms, b.ns);
    if (c !== 0) return backward ? -c : c;
    if (a.key !== b.key) return a.key < b.key ? -1 : 1;
    return a.seq - b.seq;
  });
  const byKey = new Map<string, LokiStream>();
  let lastMs = NaN;
  let lastNs = 0;
  let count = 0;
  for (const c of cands) {
    if (count >= limit) break;
    if (interval > 0 && !Number.isNaN(lastMs)) {
      // Loki's readStreams: the next entry must be at least `interval` after (before, backward) the last one kept.
      const d = backward ? cmpNs(lastMs - interval, lastNs, c.ms, c.ns) : cmpNs(c.ms, c.ns, lastMs + interval, lastNs);
      if (d < 0) continue;
    }
    lastMs = c.ms;
    lastNs = c.ns;
    let st = byKey.get(c.key);
    if (st === undefined) {
      st = { stream: toObject(c.labels), values: [] };
      byKey.set(c.key, st);
    }
    const v: StreamValue = c.cats !== null ? [formatNs(c.ms, c.ns), c.line, c.cats] : [formatNs(c.ms, c.ns), c.line];
    st.values.push(v);
    count++;
  }
  // Loki sorts the streams of a response by their label string.
  const keys = [...byKey.keys()].sort();
  return { resultType: "streams", result: keys.map((k) => byKey.get(k) as LokiStream) };
}

function toObject(labels: FlatLabels): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < labels.length; i += 2) out[labels[i]] = labels[i + 1];
  return out;
}

// ====================================================================== metric queries

/** One series over the query's steps: values with a presence mask (a value may be NaN). */
interface Series {
  labels: FlatLabels;
  vals: Float64Array;
  has: Uint8Array;
}

type Value = { kind: "vector"; series: Series[] } | { kind: "scalar"; vals: Float64Array };

interface Ctx {
  source: LogSource;
  o: EvalOptions;
  /** Step times: ms, plus the query start's sub-ms nanoseconds. */
  steps: Float64Array;
  stepNs: number;
  n: number;
}

async function evalMetric(source: LogSource, expr: SampleExpr, o: EvalOptions): Promise<LokiQueryData> {
  let steps: Float64Array;
  let stepNs: number;
  if (o.instant) {
    // Loki evaluates an instant query at its time (start = end).
    steps = Float64Array.of(o.endMs);
    stepNs = o.endNs;
  } else {
    if (!(o.stepMs > 0)) throw new LogQLEvalError("zero or negative query resolution step widths are not accepted. Try a positive integer");
    const n = Math.floor((o.endMs - o.startMs) / o.stepMs) + 1;
    steps = new Float64Array(Math.max(0, n));
    for (let k = 0; k < steps.length; k++) steps[k] = o.startMs + k * o.stepMs;
    stepNs = o.startNs;
  }
  const ctx: Ctx = { source, o, steps, stepNs, n: steps.length };
  const v = await evalSample(ctx, expr);
  return format(ctx, expr, v);
}

function format(ctx: Ctx, expr: SampleExpr, v: Value): LokiQueryData {
  const secs = (k: number) => ctx.steps[k] / 1000;
  if (v.kind === "scalar") {
    if (ctx.o.instant) return { resultType: "scalar", result: [secs(0), formatFloat(v.vals[0])] };
    // Loki's PopulateMatrixFromScalar: one series without labels.
    return { resultType: "matrix", result: [{ metric: {}, values: Array.from(v.vals, (x, k) => [secs(k), formatFloat(x)] as [number, string]) }] };
  }
  const present = v.series.filter((s) => s.has.some((h) => h === 1));
  if (ctx.o.maxSeries !== undefined && present.length > ctx.o.maxSeries) {
    throw new LogQLEvalError(
      `maximum number of series (${ctx.o.maxSeries}) reached for a single query; consider reducing query cardinality by adding more filters, reducing the time range, or aggregating with sum()`,
    );
  }
  if (ctx.o.instant) {
    const sorted = expr.kind === "vector_agg" && (expr.op === "sort" || expr.op === "sort_desc");
    const out = sorted ? present : [...present].sort((a, b) => compareLabels(a.labels, b.labels));
    return { resultType: "vector", result: out.map((s) => ({ metric: toObject(s.labels), value: [secs(0), formatFloat(s.vals[0])] })) };
  }
  const out = [...present].sort((a, b) => compareLabels(a.labels, b.labels));
  return {
    resultType: "matrix",
    result: out.map((s) => {
      const values: [number, string][] = [];
      for (let k = 0; k < ctx.n; k++) if (s.has[k] === 1) values.push([secs(k), formatFloat(s.vals[k])]);
      return { metric: toObject(s.labels), values };
    }),
  };
}

async function evalSample(ctx: Ctx, e: SampleExpr): Promise<Value> {
  switch (e.kind) {
    case "literal": {
      const vals = new Float64Array(ctx.n).fill(e.value);
      return { kind: "scalar", vals };
    }
    case "vector":
      return { kind: "vector", series: [{ labels: [], vals: new Float64Array(ctx.n).fill(e.value), has: new Uint8Array(ctx.n).fill(1) }] };
    case "range_agg":
      return { kind: "vector", series: await evalRange(ctx, e) };
    case "vector_agg": {
      const inner = await evalSample(ctx, e.expr);
      if (inner.kind === "scalar") throw new LogQLEvalError(`unexpected scalar in ${e.op}`);
      return { kind: "vector", series: aggregate(ctx, e, inner.series) };
    }
    case "binary": {
      const [l, r] = await Promise.all([evalSample(ctx, e.lhs), evalSample(ctx, e.rhs)]);
      return binary(ctx, e, l, r);
    }
    case "label_replace": {
      const inner = await evalSample(ctx, e.expr);
      if (inner.kind === "scalar") return inner;
      return { kind: "vector", series: labelReplace(inner.series, e.dst, e.replacement, e.src, e.regex) };
    }
  }
}

// ---------------------------------------------------------------- range aggregations

/** The samples of one series, appended in arrival order, sorted by time before use. */
class SampleBuf {
  ms: Float64Array = new Float64Array(16);
  ns: Uint32Array = new Uint32Array(16);
  v: Float64Array = new Float64Array(16);
  len = 0;
  sorted = true;
  constructor(readonly labels: FlatLabels) {}
  push(ms: number, ns: number, v: number): void {
    if (this.len === this.ms.length) {
      const cap = this.len * 2;
      const m = new Float64Array(cap);
      m.set(this.ms);
      this.ms = m;
      const n = new Uint32Array(cap);
      n.set(this.ns);
      this.ns = n;
      const x = new Float64Array(cap);
      x.set(this.v);
      this.v = x;
    }
    const l = this.len;
    if (l > 0 && cmpNs(ms, ns, this.ms[l - 1], this.ns[l - 1]) < 0) this.sorted = false;
    this.ms[l] = ms;
    this.ns[l] = ns;
    this.v[l] = v;
    this.len = l + 1;
  }
  sort(): void {
    if (this.sorted) return;
    const idx = Array.from({ length: this.len }, (_, i) => i);
    idx.sort((a, b) => cmpNs(this.ms[a], this.ns[a], this.ms[b], this.ns[b]) || a - b);
    const ms = new Float64Array(this.len);
    const ns = new Uint32Array(this.len);
    const v = new Float64Array(this.len);
    for (let i = 0; i < this.len; i++) {
      ms[i] = this.ms[idx[i]];
      ns[i] = this.ns[idx[i]];
      v[i] = this.v[idx[i]];
    }
    this.ms = ms;
    this.ns = ns;
    this.v = v;
    this.sorted = true;
  }
}

/** UTF-8 length without encoding (bytes_over_time counts bytes, as Loki's len(line)). */
function byteLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

function groupLabels(labels: FlatLabels, g: Grouping | null, extraWithout: string | null): FlatLabels {
  if (g === null || g.without) {
    const drop = g === null ? [] : g.labels;
    if (drop.length === 0 && extraWithout === null) return labels;
    const out: FlatLabels = [];
    for (let i = 0; i < labels.length; i += 2) {
      const n = labels[i];
      if (n === extraWithout || drop.includes(n)) continue;
      out.push(n, labels[i + 1]);
    }
    return out;
  }
  const out: FlatLabels = [];
  for (let i = 0; i < labels.length; i += 2) if (g.labels.includes(labels[i])) out.push(labels[i], labels[i + 1]);
  return out;
}

async function evalRange(ctx: Ctx, e: RangeAggregation): Promise<Series[]> {
  const { range, op } = e;
  const n = ctx.n;
  if (n === 0) return [];
  const off = range.offsetMs;
  const rangeMs = range.rangeMs;
  // Entries in (first step - offset - range, last step - offset]; the source range is [start, end).
  const selStartMs = ctx.steps[0] - off - rangeMs;
  const selEndMs = ctx.steps[n - 1] - off;
  const params: LogSelectParams = {
    matchers: range.selector.matchers,
    startMs: selStartMs,
    startNs: ctx.stepNs,
    endMs: ctx.stepNs + 1 >= NS_PER_MS ? selEndMs + 1 : selEndMs,
    endNs: ctx.stepNs + 1 >= NS_PER_MS ? 0 : ctx.stepNs + 1,
  };
  const streams = await ctx.source.select(params);
  const pipeline = compilePipeline(range.selector.stages);
  const lb = new LabelsBuilder();
  const unwrap = range.unwrap;
  const conv = unwrap === null ? null : converter(unwrap.conv);
  const post = unwrap === null ? [] : unwrap.postFilters.map(compileLabelFilter);
  const bytes = op === "bytes_over_time" || op === "bytes_rate";
  const series = new Map<string, SampleBuf>();
  // Grouping inside the range aggregation (`sum_over_time(...) by (x)`) applies to each sample;
  // the unwrapped label leaves the series unless grouped by (Loki's LabelExtractorWithStages).
  const g = e.grouping;
  const unwrapWithout = unwrap !== null && (g === null || g.without) ? unwrap.label : null;
  for (const s of streams) {
    lb.setStream(s.flat, s.labels);
    // A stream whose labels never change (no parser/label stage) maps to one series.
    let fixed: SampleBuf | null = null;
    for (let i = 0; i < s.lines.length; i++) {
      const ms = s.tsMs[i];
      const ns = s.tsNs[i];
      if (cmpNs(ms, ns, params.startMs, params.startNs) <= 0 || cmpNs(ms, ns, params.endMs, params.endNs) >= 0) continue;
      let line: string | null = s.lines[i];
      if (pipeline.prefilter !== null && !pipeline.prefilter(line)) continue;
      const meta = s.metadata !== null ? s.metadata[i] : null;
      lb.reset(meta);
      if (pipeline.stages.length > 0) {
        line = pipeline.process(line, lb, ms, ns);
        if (line === null) continue;
      }
      let v: number;
      if (unwrap !== null) {
        const raw = lb.get(unwrap.label);
        // A line without the label has no sample (Loki issue #6843).
        if (raw === undefined || raw === "") continue;
        const x = (conv as (s: string) => number | null)(raw);
        if (x === null) {
          lb.setErr(ERR_SAMPLE, `strconv.ParseFloat: parsing ${JSON.stringify(raw)}: invalid syntax`);
          v = 0;
        } else v = x;
        let keep = true;
        for (const f of post) if (!f(lb)) keep = false;
        if (!keep) continue;
      } else v = bytes ? byteLength(line) : 1;
      let buf: SampleBuf | undefined;
      if (fixed !== null) buf = fixed;
      else {
        const canFix = pipeline.stages.length === 0 && (meta === null || meta.length === 0) && s.metadata === null;
        const all = lb.labels();
        // An entry with __error__ keeps all its labels so the error cannot be grouped away (Loki GroupedLabels).
        const labels = lb.hasErr() ? all : groupLabels(all, g, unwrapWithout);
        const key = labelsString(labels);
        buf = series.get(key);
        if (buf === undefined) {
          buf = new SampleBuf(labels);
          series.set(key, buf);
        }
        if (canFix) fixed = buf;
      }
      buf.push(ms, ns, v);
    }
  }
  const out: Series[] = [];
  for (const buf of series.values()) {
    buf.sort();
    const s = windowAggregate(ctx, e, buf);
    if (s.has.some((h) => h === 1) && buf.labels.includes(ERROR_LABEL)) throw pipelineError(buf.labels);
    out.push(s);
  }
  if (op === "absent_over_time") return absent(ctx, e, out);
  return out;
}

function pipelineError(labels: FlatLabels): LogQLEvalError {
  let err = "";
  for (let i = 0; i < labels.length; i += 2) if (labels[i] === ERROR_LABEL) err = labels[i + 1];
  return new LogQLEvalError(
    `pipeline error: '${err}' for series: '${labelsString(labels)}'.\n` +
      `Use a label filter to intentionally skip this error. (e.g | __error__!="${err}").\n` +
      `To skip all potential errors you can match empty errors.(e.g __error__="")\n` +
      `The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__="" )\n`,
  );
}

function converter(conv: "" | "bytes" | "duration" | "duration_seconds"): (s: string) => number | null {
  const safe = (f: (s: string) => number) => (s: string) => {
    try {
      return f(s);
    } catch {
      return null;
    }
  };
  if (conv === "bytes") return safe(parseBytes);
  if (conv === "duration" || conv === "duration_seconds") return safe((s) => parseDuration(s) / 1000);
  return parseGoFloat;
}

function windowAggregate(ctx: Ctx, e: RangeAggregation, b: SampleBuf): Series {
  const n = ctx.n;
  const vals = new Float64Array(n);
  const has = new Uint8Array(n);
  const off = e.range.offsetMs;
  const rangeMs = e.range.rangeMs;
  const rangeSec = rangeMs / 1000;
  const ns = ctx.stepNs;
  let lo = 0;
  let hi = 0;
  const len = b.len;
  const scratch: number[] = [];
  for (let k = 0; k < n; k++) {
    const endMs = ctx.steps[k] - off;
    const startMs = endMs - rangeMs;
    // Steps ascend, so both window edges only move forward.
    while (hi < len && cmpNs(b.ms[hi], b.ns[hi], endMs, ns) <= 0) hi++;
    while (lo < hi && cmpNs(b.ms[lo], b.ns[lo], startMs, ns) <= 0) lo++;
    const cnt = hi - lo;
    if (cnt <= 0) continue;
    let r: number;
    const v = b.v;
    switch (e.op) {
      case "count_over_time":
        r = cnt;
        break;
      case "absent_over_time":
        r = 1;
        break;
      case "rate":
      case "bytes_rate":
      case "sum_over_time":
      case "bytes_over_time": {
        let s = 0;
        for (let i = lo; i < hi; i++) s += v[i];
        r = e.op === "rate" || e.op === "bytes_rate" ? s / rangeSec : s;
        break;
      }
      case "avg_over_time": {
        let s = 0;
        for (let i = lo; i < hi; i++) s += v[i];
        r = s / cnt;
        break;
      }
      case "min_over_time": {
        r = v[lo];
        for (let i = lo + 1; i < hi; i++) if (v[i] < r || Number.isNaN(r)) r = v[i];
        break;
      }
      case "max_over_time": {
        r = v[lo];
        for (let i = lo + 1; i < hi; i++) if (v[i] > r || Number.isNaN(r)) r = v[i];
        break;
      }
      case "first_over_time":
        r = v[lo];
        break;
      case "last_over_time":
        r = v[hi - 1];
        break;
      case "stddev_over_time":
      case "stdvar_over_time": {
        // Welford, as Prometheus's stdvar_over_time (Loki reuses it).
        let count = 0;
        let mean = 0;
        let m2 = 0;
        for (let i = lo; i < hi; i++) {
          count++;
          const d = v[i] - mean;
          mean += d / count;
          m2 += d * (v[i] - mean);
        }
        r = m2 / count;
        if (e.op === "stddev_over_time") r = Math.sqrt(r);
        break;
      }
      case "quantile_over_time": {
        scratch.length = 0;
        for (let i = lo; i < hi; i++) scratch.push(v[i]);
        r = quantile(e.param as number, scratch);
        break;
      }
      case "rate_counter":
        r = counterRate(b, lo, hi, startMs, endMs, rangeSec);
        break;
    }
    vals[k] = r;
    has[k] = 1;
  }
  return { labels: b.labels, vals, has };
}

/** Prometheus's quantile (linear interpolation between closest ranks), as Loki's quantile_over_time. */
export function quantile(q: number, values: number[]): number {
  if (values.length === 0) return NaN;
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  values.sort((a, b) => a - b);
  const n = values.length;
  const rank = q * (n - 1);
  const lower = Math.max(0, Math.floor(rank));
  const upper = Math.min(n - 1, lower + 1);
  const weight = rank - Math.floor(rank);
  return values[lower] * (1 - weight) + values[upper] * weight;
}

/** Loki's rate_counter: Prometheus's extrapolatedRate for counters over the window's samples. */
function counterRate(b: SampleBuf, lo: number, hi: number, startMs: number, endMs: number, rangeSec: number): number {
  const cnt = hi - lo;
  if (cnt < 2) return 0;
  const t = (i: number) => b.ms[i] + b.ns[i] / NS_PER_MS;
  let result = b.v[hi - 1] - b.v[lo];
  let last = b.v[lo];
  for (let i = lo; i < hi; i++) {
    if (b.v[i] < last) result += last;
    last = b.v[i];
  }
  let toStart = (t(lo) - startMs) / 1000;
  const toEnd = (endMs - t(hi - 1)) / 1000;
  const sampled = (t(hi - 1) - t(lo)) / 1000;
  const avg = sampled / (cnt - 1);
  if (result > 0 && b.v[lo] >= 0) {
    const toZero = sampled * (b.v[lo] / result);
    if (toZero < toStart) toStart = toZero;
  }
  const threshold = avg * 1.1;
  let extrapolate = sampled;
  extrapolate += toStart < threshold ? toStart : avg / 2;
  extrapolate += toEnd < threshold ? toEnd : avg / 2;
  return (result * (extrapolate / sampled)) / rangeSec;
}

/** absent_over_time: 1 at steps where no series had a sample, labelled by the selector's equality matchers. */
function absent(ctx: Ctx, e: RangeAggregation, present: Series[]): Series[] {
  const vals = new Float64Array(ctx.n);
  const has = new Uint8Array(ctx.n);
  for (let k = 0; k < ctx.n; k++) {
    let any = false;
    for (const s of present) if (s.has[k] === 1) any = true;
    if (!any) {
      vals[k] = 1;
      has[k] = 1;
    }
  }
  const labels: FlatLabels = [];
  const seen = new Map<string, number>();
  for (const m of e.range.selector.matchers) {
    if (m.type !== MatchType.EQ) continue;
    seen.set(m.name, (seen.get(m.name) ?? 0) + 1);
  }
  const sorted = [...e.range.selector.matchers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const m of sorted) if (m.type === MatchType.EQ && seen.get(m.name) === 1) labels.push(m.name, m.value);
  return [{ labels, vals, has }];
}

// ---------------------------------------------------------------- vector aggregations

function groupKey(labels: FlatLabels, g: Grouping | null): { key: string; labels: FlatLabels } {
  if (g === null) return { key: "{}", labels: [] };
  const ls = groupLabels(labels, g, null);
  return { key: labelsString(ls), labels: ls };
}

function aggregate(ctx: Ctx, e: VectorAggregation, input: Series[]): Series[] {
  const n = ctx.n;
  if (e.op === "sort" || e.op === "sort_desc") {
    if (!ctx.o.instant) return input;
    const dir = e.op === "sort" ? 1 : -1;
    return [...input].filter((s) => s.has[0] === 1).sort((a, b) => dir * cmpFloat(a.vals[0], b.vals[0]));
  }
  // Group membership depends only on labels, so it is computed once.
  const groups = new Map<string, { labels: FlatLabels; members: Series[] }>();
  for (const s of input) {
    const g = groupKey(s.labels, e.grouping);
    let grp = groups.get(g.key);
    if (grp === undefined) {
      grp = { labels: g.labels, members: [] };
      groups.set(g.key, grp);
    }
    grp.members.push(s);
  }
  if (e.op === "topk" || e.op === "bottomk") {
    const k = e.param as number;
    const out = new Map<Series, Series>();
    for (const grp of groups.values()) {
      for (let t = 0; t < n; t++) {
        const present = grp.members.filter((s) => s.has[t] === 1);
        // topk keeps the largest (NaN last), bottomk the smallest; ties keep input order.
        present.sort((a, b) => (e.op === "topk" ? -1 : 1) * cmpFloat(a.vals[t], b.vals[t]));
        for (const s of present.slice(0, k)) {
          let o = out.get(s);
          if (o === undefined) {
            o = { labels: s.labels, vals: new Float64Array(n), has: new Uint8Array(n) };
            out.set(s, o);
          }
          o.vals[t] = s.vals[t];
          o.has[t] = 1;
        }
      }
    }
    return [...out.values()];
  }
  const out: Series[] = [];
  for (const grp of groups.values()) {
    const vals = new Float64Array(n);
    const has = new Uint8Array(n);
    for (let t = 0; t < n; t++) {
      let cnt = 0;
      let acc = 0;
      let mean = 0;
      let m2 = 0;
      for (const s of grp.members) {
        if (s.has[t] !== 1) continue;
        const v = s.vals[t];
        cnt++;
        switch (e.op) {
          case "sum":
            acc += v;
            break;
          case "avg":
          case "stddev":
          case "stdvar": {
            const d = v - mean;
            mean += d / cnt;
            m2 += d * (v - mean);
            break;
          }
          case "min":
            acc = cnt === 1 || v < acc || Number.isNaN(acc) ? v : acc;
            break;
          case "max":
            acc = cnt === 1 || v > acc || Number.isNaN(acc) ? v : acc;
            break;
          case "count":
            acc = cnt;
            break;
        }
      }
      if (cnt === 0) continue;
      has[t] = 1;
      vals[t] = e.op === "avg" ? mean : e.op === "stdvar" ? m2 / cnt : e.op === "stddev" ? Math.sqrt(m2 / cnt) : acc;
    }
    out.push({ labels: grp.labels, vals, has });
  }
  return out;
}

/** Sorts numbers ascending with NaN last. */
function cmpFloat(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (Number.isNaN(b)) return -1;
  return a - b;
}

// ---------------------------------------------------------------- binary operators

function arith(op: string, a: number, b: number): number {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    // Loki's MergeBinOp guards both against a zero divisor: NaN, not ±Inf.
    case "/":
      return b === 0 ? NaN : a / b;
    case "%":
      return b === 0 ? NaN : a % b;
    case "^":
      return goPow(a, b);
    case "==":
      return a === b ? 1 : 0;
    case "!=":
      return a !== b ? 1 : 0;
    case ">":
      return a > b ? 1 : 0;
    case ">=":
      return a >= b ? 1 : 0;
    case "<":
      return a < b ? 1 : 0;
    case "<=":
      return a <= b ? 1 : 0;
  }
  throw new LogQLEvalError(`operator ${op} not allowed here`);
}

/** Go's math.Pow where it differs from Math.pow: Pow(1, y) and Pow(-1, ±Inf) are 1. */
function goPow(a: number, b: number): number {
  if (a === 1 || (a === -1 && (b === Infinity || b === -Infinity))) return 1;
  return Math.pow(a, b);
}

const CMP_OPS = new Set(["==", "!=", ">", ">=", "<", "<="]);

function binary(ctx: Ctx, e: BinaryExpr, l: Value, r: Value): Value {
  const n = ctx.n;
  const cmp = CMP_OPS.has(e.op);
  if (l.kind === "scalar" && r.kind === "scalar") {
    const vals = new Float64Array(n);
    for (let k = 0; k < n; k++) vals[k] = arith(e.op, l.vals[k], r.vals[k]);
    return { kind: "scalar", vals };
  }
  if (l.kind === "scalar" || r.kind === "scalar") {
    const vecLeft = l.kind === "vector";
    const vec = (vecLeft ? l : r) as { kind: "vector"; series: Series[] };
    const sc = (vecLeft ? r : l) as { kind: "scalar"; vals: Float64Array };
    const series: Series[] = vec.series.map((s) => {
      const vals = new Float64Array(n);
      const has = new Uint8Array(n);
      for (let k = 0; k < n; k++) {
        if (s.has[k] !== 1) continue;
        const a = vecLeft ? s.vals[k] : sc.vals[k];
        const b = vecLeft ? sc.vals[k] : s.vals[k];
        const x = arith(e.op, a, b);
        if (cmp && !e.returnBool) {
          if (x === 0) continue;
          vals[k] = s.vals[k];
        } else vals[k] = x;
        has[k] = 1;
      }
      return { labels: s.labels, vals, has };
    });
    return { kind: "vector", series };
  }
  return { kind: "vector", series: vectorBinary(ctx, e, l.series, r.series) };
}

function signature(labels: FlatLabels, on: boolean, names: string[]): string {
  const out: FlatLabels = [];
  for (let i = 0; i < labels.length; i += 2) {
    const inList = names.includes(labels[i]);
    if (on ? inList : !inList) out.push(labels[i], labels[i + 1]);
  }
  return labelsString(out);
}

function vectorBinary(ctx: Ctx, e: BinaryExpr, ls: Series[], rs: Series[]): Series[] {
  const n = ctx.n;
  const m = e.matching ?? { on: false, labels: [], card: "one-to-one" as const, include: [] };
  const on = m.on;
  const names = m.labels;
  const lsig = ls.map((s) => signature(s.labels, on, names));
  const rsig = rs.map((s) => signature(s.labels, on, names));
  if (e.op === "and" || e.op === "unless" || e.op === "or") {
    const out: Series[] = [];
    for (let i = 0; i < ls.length; i++) {
      const s = ls[i];
      const vals = new Float64Array(n);
      const has = new Uint8Array(n);
      for (let k = 0; k < n; k++) {
        if (s.has[k] !== 1) continue;
        let match = false;
        for (let j = 0; j < rs.length && !match; j++) if (rsig[j] === lsig[i] && rs[j].has[k] === 1) match = true;
        if (e.op === "or" || (e.op === "and") === match) {
          vals[k] = s.vals[k];
          has[k] = 1;
        }
      }
      out.push({ labels: s.labels, vals, has });
    }
    if (e.op === "or") {
      // Loki's vectorOr works step by step: a right series fills the steps where no
      // left series of its signature has a sample. Over a range, a right series with
      // a left series' labels is the same result series (one per label set in the matrix).
      const byLabels = new Map<string, Series>();
      for (const s of out) byLabels.set(labelsString(s.labels), s);
      for (let j = 0; j < rs.length; j++) {
        const s = rs[j];
        const key = labelsString(s.labels);
        let into = byLabels.get(key);
        if (into === undefined) {
          into = { labels: s.labels, vals: new Float64Array(n), has: new Uint8Array(n) };
          byLabels.set(key, into);
          out.push(into);
        }
        for (let k = 0; k < n; k++) {
          if (s.has[k] !== 1 || into.has[k] === 1) continue;
          let match = false;
          for (let i = 0; i < ls.length && !match; i++) if (lsig[i] === rsig[j] && ls[i].has[k] === 1) match = true;
          if (!match) {
            into.vals[k] = s.vals[k];
            into.has[k] = 1;
          }
        }
      }
    }
    return out;
  }
  // One side is "one" (unique per signature at each step), the other "many".
  const swap = m.card === "one-to-many";
  const many = swap ? rs : ls;
  const one = swap ? ls : rs;
  const manySig = swap ? rsig : lsig;
  const oneSig = swap ? lsig : rsig;
  const cmp = CMP_OPS.has(e.op);
  const out = new Map<string, Series>();
  for (let k = 0; k < n; k++) {
    const oneAt = new Map<string, number>();
    for (let j = 0; j < one.length; j++) {
      if (one[j].has[k] !== 1) continue;
      if (oneAt.has(oneSig[j])) {
        throw new LogQLEvalError(
          `found duplicate series for the match group ${oneSig[j]} on the ${swap ? "left" : "right"} hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side`,
        );
      }
      oneAt.set(oneSig[j], j);
    }
    const seenMany = new Set<string>();
    for (let i = 0; i < many.length; i++) {
      if (many[i].has[k] !== 1) continue;
      const j = oneAt.get(manySig[i]);
      if (j === undefined) continue;
      if (m.card === "one-to-one") {
        if (seenMany.has(manySig[i])) throw new LogQLEvalError("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
        seenMany.add(manySig[i]);
      }
      const a = swap ? one[j].vals[k] : many[i].vals[k];
      const b = swap ? many[i].vals[k] : one[j].vals[k];
      const x = arith(e.op, a, b);
      let v: number;
      if (cmp && !e.returnBool) {
        if (x === 0) continue;
        // Loki's MergeBinOp (and Prometheus) keep the left-hand value, group_right too.
        v = a;
      } else v = x;
      const labels = resultLabels(many[i].labels, one[j].labels, m);
      const key = labelsString(labels);
      let s = out.get(key);
      if (s === undefined) {
        s = { labels, vals: new Float64Array(n), has: new Uint8Array(n) };
        out.set(key, s);
      } else if (s.has[k] === 1) {
        throw new LogQLEvalError("multiple matches for labels: grouping labels must ensure unique matches");
      }
      s.vals[k] = v;
      s.has[k] = 1;
    }
  }
  return [...out.values()];
}

/** Prometheus's resultMetric: one-to-one keeps only the on() labels or drops the ignoring() ones; group_x copies `include` labels from the one side. */
function resultLabels(many: FlatLabels, one: FlatLabels, m: { on: boolean; labels: string[]; card: string; include: string[] }): FlatLabels {
  let out: FlatLabels = many;
  if (m.card === "one-to-one") {
    if (m.on) out = groupLabels(many, { without: false, labels: m.labels }, null);
    else if (m.labels.length > 0) out = groupLabels(many, { without: true, labels: m.labels }, null);
    return out;
  }
  if (m.include.length === 0) return out;
  const map = new Map<string, string>();
  for (let i = 0; i < out.length; i += 2) map.set(out[i], out[i + 1]);
  for (const name of m.include) {
    let v = "";
    for (let i = 0; i < one.length; i += 2) if (one[i] === name) v = one[i + 1];
    if (v === "") map.delete(name);
    else map.set(name, v);
  }
  const res: FlatLabels = [];
  for (const k of [...map.keys()].sort()) res.push(k, map.get(k) as string);
  return res;
}

// ---------------------------------------------------------------- label_replace

function labelReplace(input: Series[], dst: string, repl: string, src: string, regex: string): Series[] {
  const re = compileRegex(regex);
  return input.map((s) => {
    let v = "";
    for (let i = 0; i < s.labels.length; i += 2) if (s.labels[i] === src) v = s.labels[i + 1];
    const m = re.exec(v);
    if (m === null) return s;
    const res = repl.replace(/\$(\{([a-zA-Z0-9_]+)\}|([a-zA-Z0-9_]+)|\$)/g, (_a, _w: string, braced?: string, bare?: string) => {
      if (_w === "$") return "$";
      const name = (braced ?? bare) as string;
      if (/^[0-9]+$/.test(name)) return m[Number(name)] ?? "";
      return m.groups?.[name] ?? "";
    });
    const map = new Map<string, string>();
    for (let i = 0; i < s.labels.length; i += 2) map.set(s.labels[i], s.labels[i + 1]);
    if (res === "") map.delete(dst);
    else map.set(dst, res);
    const labels: FlatLabels = [];
    for (const k of [...map.keys()].sort()) labels.push(k, map.get(k) as string);
    return { labels, vals: s.vals, has: s.has };
  });
}

/** The matchers a query's selectors use (for callers that need them, e.g. query stats). */
export function selectorsOf(e: LogQLExpr): LabelMatcher[][] {
  switch (e.kind) {
    case "log":
      return [e.matchers];
    case "range_agg":
      return [e.range.selector.matchers];
    case "vector_agg":
    case "label_replace":
      return selectorsOf(e.expr);
    case "binary":
      return [...selectorsOf(e.lhs), ...selectorsOf(e.rhs)];
    default:
      return [];
  }
}
