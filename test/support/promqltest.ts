// A parser and runner for Prometheus's PromQL engine test scripts (the `.test` files of
// prometheus/prometheus promql/promqltest/testdata), after promql/promqltest/test.go:
//
//   load <interval>            then `<series> <values>` lines (expanding notation)
//   load_with_nhcb <interval>  same; Prometheus also converts classic histograms to
//                              native histograms with custom buckets (NHCB): the float
//                              series are loaded, the converted series are only recorded
//                              (histogramSeries) so that cases reading them can be skipped
//   clear
//   eval instant at <time> <query>
//   eval range from <t> to <t> step <d> <query>
//   eval_fail / eval_warn / eval_info / eval_ordered (older forms)
//     expect fail | fail msg: <m> | fail regex: <re>   (also warn, info)
//     expect no_warn | no_info | ordered
//     expect range vector from <t> to <t> step <d>       (an instant query returning a matrix)
//     expect string "<s>"
//     expected_fail_message <m> | expected_fail_regexp <re>   (after eval_fail)
//     <series> <values> | <scalar>
//
// A comment line (`#`) is a blank line: it ends a load or eval block, as in test.go.
// Everything here is independent of the engine: runEval() takes a PromQLEngine.

import type { Expr } from "../../src/querier/promql/ast";
import type { Annotations, Matrix, Queryable, Series, Value, Vector } from "../../src/querier/promql/value";
import type { LabelMatcher } from "../../src/proto/types";
import { compileMatcher, type CompiledMatcher } from "../../src/model/matchers";
import { compareLabels, formatLabels, getLabel, seriesKey, type FlatLabels } from "../../src/model/labels";

// ---------------------------------------------------------------------------------------
// Numbers, durations, strings

/** Relative tolerance for sample values (test.go defaultEpsilon). */
export const DEFAULT_EPSILON = 0.000001;
const MIN_NORMAL = 2.2250738585072014e-308; // math.Float64frombits(0x0010000000000000)

/** Prometheus's util/almost.Equal: NaN equals NaN; otherwise relative error below epsilon. */
export function almostEqual(a: number, b: number, epsilon = DEFAULT_EPSILON): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (a === b) return true;
  const absSum = Math.abs(a) + Math.abs(b);
  const diff = Math.abs(a - b);
  if (a === 0 || b === 0 || absSum < MIN_NORMAL) return diff < epsilon * MIN_NORMAL;
  return diff / Math.min(absSum, Number.MAX_VALUE) < epsilon;
}

/** The stale marker: the NaN with bits 0x7ff0000000000002 (Prometheus value.StaleNaN). */
export const STALE_NAN_HI = 0x7ff00000;
export const STALE_NAN_LO = 0x00000002;

const scratchF64 = new Float64Array(1);
const scratchU32 = new Uint32Array(scratchF64.buffer);

/**
 * Whether v has the stale marker's bits. The marker is a signalling NaN: V8 keeps its bits
 * through element stores (a[i] = v) but may set the quiet bit elsewhere (an array literal
 * `[v]`, arithmetic), so it is read back through a typed-array element store.
 */
export function isStaleNaN(v: number): boolean {
  if (!Number.isNaN(v)) return false;
  scratchF64[0] = v;
  return scratchU32[0] === STALE_NAN_LO && scratchU32[1] === STALE_NAN_HI;
}

/** Writes the stale marker's exact bits at index i of a Float64Array (little-endian words). */
export function writeStaleNaN(arr: Float64Array, i: number): void {
  const u = new Uint32Array(arr.buffer, arr.byteOffset, arr.length * 2);
  u[2 * i] = STALE_NAN_LO;
  u[2 * i + 1] = STALE_NAN_HI;
}

/** Go's strconv.ParseInt(s, 0, 64), then strconv.ParseFloat(s, 64) (test.go parseNumber, parser.number). */
export function parseNumber(s: string): number | null {
  const int = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (int) {
    const body = int[2];
    let n: number;
    if (/^0[xX]/.test(body)) n = parseInt(body.slice(2), 16);
    else if (/^0[oO]/.test(body)) n = parseInt(body.slice(2), 8);
    else if (/^0[bB]/.test(body)) n = parseInt(body.slice(2), 2);
    else if (body.length > 1 && body[0] === "0") n = parseInt(body.slice(1), 8);
    else n = Number(body);
    // ParseInt fails beyond int64; ParseFloat then parses the decimal text.
    if (Math.abs(n) < 2 ** 63) return int[1] === "-" ? -n : n;
  }
  const m = /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)$/i.exec(s);
  if (!m) return null;
  const lower = s.toLowerCase();
  if (lower.endsWith("nan")) return NaN;
  if (lower.endsWith("inf") || lower.endsWith("infinity")) return lower.startsWith("-") ? -Infinity : Infinity;
  return Number(s);
}

const DURATION_RE = /^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$/;
const DURATION_UNITS_MS = [365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1];

/** Prometheus's model.ParseDuration, in ms: units y w d h m s ms, largest first, "0" alone allowed. */
export function parseDuration(s: string): number {
  if (s === "0") return 0;
  if (s === "") throw new Error("empty duration string");
  const m = DURATION_RE.exec(s);
  if (!m) throw new Error(`not a valid duration string: ${JSON.stringify(s)}`);
  let ms = 0;
  for (let i = 0; i < DURATION_UNITS_MS.length; i++) if (m[i + 1] !== undefined) ms += Number(m[i + 1]) * DURATION_UNITS_MS[i];
  return ms;
}

/**
 * Go's strconv.Unquote (also PromQL's: "...", '...' of any length, `raw`). Escapes
 * \a \b \f \n \r \t \v \\ \' \" \xHH \ooo \uHHHH \UHHHHHHHH; \x and octal escapes are
 * bytes, decoded as UTF-8 at the end (invalid bytes become U+FFFD).
 */
export function unquote(s: string): string {
  if (s.length < 2) throw new Error(`invalid quoted string ${s}`);
  const q = s[0];
  if (s[s.length - 1] !== q || (q !== '"' && q !== "'" && q !== "`")) throw new Error(`invalid quoted string ${s}`);
  const body = s.slice(1, -1);
  if (q === "`") {
    if (body.includes("`")) throw new Error(`invalid quoted string ${s}`);
    return body.replace(/\r/g, "");
  }
  const bytes: number[] = [];
  const enc = new TextEncoder();
  const pushCodePoint = (cp: number) => {
    for (const b of enc.encode(String.fromCodePoint(cp))) bytes.push(b);
  };
  for (let i = 0; i < body.length; ) {
    const c = body[i];
    if (c === q) throw new Error(`invalid quoted string ${s}`);
    if (c !== "\\") {
      const cp = body.codePointAt(i)!;
      pushCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    switch (e) {
      case "a": bytes.push(7); break;
      case "b": bytes.push(8); break;
      case "f": bytes.push(12); break;
      case "n": bytes.push(10); break;
      case "r": bytes.push(13); break;
      case "t": bytes.push(9); break;
      case "v": bytes.push(11); break;
      case "\\": bytes.push(92); break;
      case "'": bytes.push(39); break;
      case '"': bytes.push(34); break;
      case "x": {
        const h = body.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) throw new Error(`invalid escape in ${s}`);
        bytes.push(parseInt(h, 16));
        i += 2;
        break;
      }
      case "u":
      case "U": {
        const n = e === "u" ? 4 : 8;
        const h = body.slice(i, i + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) throw new Error(`invalid escape in ${s}`);
        pushCodePoint(parseInt(h, 16));
        i += n;
        break;
      }
      default: {
        const o = body.slice(i - 1, i + 2);
        if (!/^[0-7]{3}$/.test(o)) throw new Error(`invalid escape \\${e ?? ""} in ${s}`);
        const v = parseInt(o, 8);
        if (v > 255) throw new Error(`invalid escape in ${s}`);
        bytes.push(v);
        i += 2;
      }
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Go's %v for a float64 (strconv 'g', shortest), for messages. */
export function formatFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const exp = Math.floor(Math.log10(Math.abs(v)));
  if (exp < -4 || exp >= 21) {
    const [mant, e] = v.toExponential().split("e");
    const en = Number(e);
    return `${mant}e${en < 0 ? "-" : "+"}${String(Math.abs(en)).padStart(2, "0")}`;
  }
  return String(v);
}

// ---------------------------------------------------------------------------------------
// Series descriptions: `metric{a="b"} 1+2x3 _ stale {{schema:0 sum:1}}x2`

export type SequenceValue =
  | { kind: "float"; v: number; stale: boolean }
  | { kind: "omitted" }
  /** A native histogram, kept as its text: the runner does not evaluate them. */
  | { kind: "histogram"; text: string };

export interface SeriesDesc {
  /** Sorted by name (with __name__ when a metric name was written). */
  labels: FlatLabels;
  values: SequenceValue[];
}

export class TestParseError extends Error {
  override name = "TestParseError";
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const IDENT_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function readQuoted(s: string, pos: number): { value: string; end: number } {
  const q = s[pos];
  let i = pos + 1;
  while (i < s.length && s[i] !== q) {
    if (s[i] === "\\" && q !== "`") i++;
    i++;
  }
  if (i >= s.length) throw new Error(`unterminated string at ${pos}`);
  return { value: unquote(s.slice(pos, i + 1)), end: i + 1 };
}

function skipWS(s: string, pos: number): number {
  while (pos < s.length && (s[pos] === " " || s[pos] === "\t")) pos++;
  return pos;
}

/** Sorts [n0, v0, n1, v1, ...] by name. */
export function sortLabels(labels: FlatLabels): FlatLabels {
  const pairs: [string, string][] = [];
  for (let i = 0; i < labels.length; i += 2) pairs.push([labels[i], labels[i + 1]]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return pairs.flat();
}

/** Parses the `metric{labels}` prefix; returns the labels and the position after it. */
function parseSeriesLabels(s: string, pos0: number): { labels: FlatLabels; end: number } {
  let pos = skipWS(s, pos0);
  const out: FlatLabels = [];
  const id = IDENT_RE.exec(s.slice(pos));
  if (id) {
    out.push("__name__", id[0]);
    pos += id[0].length;
  }
  if (s[pos] === "{" && s[pos + 1] !== "{") {
    pos++;
    for (;;) {
      pos = skipWS(s, pos);
      if (s[pos] === "}") {
        pos++;
        break;
      }
      let name: string;
      let quotedName = false;
      if (s[pos] === '"' || s[pos] === "'" || s[pos] === "`") {
        const q = readQuoted(s, pos);
        name = q.value;
        pos = q.end;
        quotedName = true;
      } else {
        const m = LABEL_NAME_RE.exec(s.slice(pos));
        if (!m) throw new Error(`unexpected character ${JSON.stringify(s[pos] ?? "end of line")} in label set`);
        name = m[0];
        pos += m[0].length;
      }
      pos = skipWS(s, pos);
      if (s[pos] === "=") {
        pos = skipWS(s, pos + 1);
        if (s[pos] !== '"' && s[pos] !== "'" && s[pos] !== "`") throw new Error(`expected a quoted label value for ${name}`);
        const q = readQuoted(s, pos);
        out.push(name, q.value);
        pos = q.end;
      } else if (quotedName) {
        // {"metric.name", ...}: a quoted metric name.
        if (out.includes("__name__")) throw new Error("metric name given twice");
        out.push("__name__", name);
      } else {
        throw new Error(`expected "=" after label name ${name}`);
      }
      pos = skipWS(s, pos);
      if (s[pos] === ",") {
        pos++;
        continue;
      }
      if (s[pos] === "}") {
        pos++;
        break;
      }
      throw new Error(`unexpected character ${JSON.stringify(s[pos] ?? "end of line")} in label set`);
    }
  } else if (!id) {
    throw new Error("expected a metric name or a label set");
  }
  const names = new Set<string>();
  for (let i = 0; i < out.length; i += 2) {
    if (names.has(out[i])) throw new Error(`duplicate label name ${out[i]}`);
    names.add(out[i]);
  }
  return { labels: sortLabels(out), end: pos };
}

const NUM = String.raw`(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])`;
const ITEM_RE = new RegExp(`^(?:(_)(?:x([0-9]+))?|(stale)|([+-]?${NUM})(?:(?:([+-])(${NUM}))?x([0-9]+))?)$`);

/** One whitespace-free item: `_`, `_x3`, `stale`, `1`, `-Inf`, `1x3`, `1+2x3`, `1-2x3`. */
function parseFloatItem(tok: string): SequenceValue[] {
  const m = ITEM_RE.exec(tok);
  if (!m) throw new Error(`invalid series value ${JSON.stringify(tok)}`);
  if (m[1] !== undefined) {
    const n = m[2] === undefined ? 1 : Number(m[2]);
    return Array.from({ length: n }, () => ({ kind: "omitted" }) as const);
  }
  if (m[3] !== undefined) return [{ kind: "float", v: NaN, stale: true }];
  let v = parseNumber(m[4]);
  if (v === null) throw new Error(`invalid number ${m[4]}`);
  if (m[7] === undefined) return [{ kind: "float", v, stale: false }];
  let delta = 0;
  if (m[5] !== undefined) {
    const d = parseNumber(m[6]);
    if (d === null) throw new Error(`invalid number ${m[6]}`);
    delta = m[5] === "-" ? -d : d;
  }
  const n = Number(m[7]);
  const out: SequenceValue[] = [];
  // Like the Go parser: n+1 values, accumulating by repeated addition.
  for (let i = 0; i <= n; i++) {
    out.push({ kind: "float", v, stale: false });
    v += delta;
  }
  return out;
}

function readHistogram(s: string, pos: number): { text: string; end: number } {
  const close = s.indexOf("}}", pos + 2);
  if (close < 0) throw new Error("unterminated native histogram {{...}}");
  return { text: s.slice(pos, close + 2), end: close + 2 };
}

/** Parses the values part of a series description. */
export function parseSequence(s: string): SequenceValue[] {
  const out: SequenceValue[] = [];
  let pos = skipWS(s, 0);
  while (pos < s.length) {
    if (s.startsWith("{{", pos)) {
      const h = readHistogram(s, pos);
      pos = h.end;
      let count = 1;
      let m = /^x([0-9]+)/.exec(s.slice(pos));
      if (m) {
        count = Number(m[1]) + 1;
        pos += m[0].length;
      } else if ((s[pos] === "+" || s[pos] === "-") && s.startsWith("{{", pos + 1)) {
        const inc = readHistogram(s, pos + 1);
        pos = inc.end;
        m = /^x([0-9]+)/.exec(s.slice(pos));
        if (!m) throw new Error("expected x<count> after a histogram increment");
        count = Number(m[1]) + 1;
        pos += m[0].length;
      }
      for (let i = 0; i < count; i++) out.push({ kind: "histogram", text: h.text });
      if (pos < s.length && s[pos] !== " " && s[pos] !== "\t") throw new Error(`unexpected ${JSON.stringify(s[pos])} after histogram`);
    } else {
      let end = pos;
      while (end < s.length && s[end] !== " " && s[end] !== "\t") end++;
      out.push(...parseFloatItem(s.slice(pos, end)));
      pos = end;
    }
    pos = skipWS(s, pos);
  }
  return out;
}

/** Parses `metric{labels} values` (Prometheus's parser.ParseSeriesDesc). */
export function parseSeriesDesc(line: string): SeriesDesc {
  const { labels, end } = parseSeriesLabels(line, 0);
  if (end < line.length && line[end] !== " " && line[end] !== "\t") {
    throw new Error(`unexpected ${JSON.stringify(line[end])} after the series labels`);
  }
  return { labels, values: parseSequence(line.slice(end)) };
}

// ---------------------------------------------------------------------------------------
// Test scripts

export interface LoadCmd {
  kind: "load";
  line: number;
  intervalMs: number;
  withNHCB: boolean;
  series: SeriesDesc[];
  /** `metric@st <offsets>` start-timestamp lines (start_timestamps.test), kept as text: not loaded. */
  startTimestampLines: string[];
}

export interface ClearCmd {
  kind: "clear";
  line: number;
}

export interface ExpectMatcher {
  /** Exact message (msg:) or a pattern (regex:, or the match-anything pattern when neither was given). */
  message?: string;
  regex?: RegExp;
}

export type ExpectType = "ordered" | "fail" | "warn" | "no_warn" | "info" | "no_info";

export interface ExpectedSeries {
  /** 1-based position among the expected lines (for `expect ordered`). */
  pos: number;
  labels: FlatLabels;
  values: SequenceValue[];
}

export interface EvalCmd {
  kind: "eval";
  /** 1-based line number of the eval line. */
  line: number;
  expr: string;
  isRange: boolean;
  /** Instant: the evaluation time. Range: the query range. All ms. */
  evalMs: number;
  startMs: number;
  /** -Infinity for an instant query without `expect range vector` (Go's zero time). */
  endMs: number;
  stepMs: number;
  /** The older eval_fail/eval_warn/eval_info/eval_ordered flags. */
  fail: boolean;
  warn: boolean;
  info: boolean;
  ordered: boolean;
  expectedFailMessage: string;
  expectedFailRegexp: RegExp | null;
  expects: Record<ExpectType, ExpectMatcher[]>;
  expectScalar: boolean;
  /** Keyed by seriesKey(labels); a scalar expectation is stored under the key "". */
  expected: Map<string, ExpectedSeries>;
  expectedString: string | null;
  excludeFromRangeQuery: boolean;
}

export type Command = LoadCmd | ClearCmd | EvalCmd;

export function isOrdered(ev: EvalCmd): boolean {
  return ev.ordered || ev.expects.ordered.length > 0;
}

export function isFail(ev: EvalCmd): boolean {
  return ev.fail || ev.expects.fail.length > 0;
}

/** Whether the expected output (or a loaded value) involves native histograms. */
export function expectsHistograms(ev: EvalCmd): boolean {
  for (const e of ev.expected.values()) if (e.values.some((v) => v.kind === "histogram")) return true;
  return false;
}

const PAT_LOAD = /^load(?:_(with_nhcb))?\s+(.+?)$/;
const PAT_EVAL_INSTANT = /^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$/;
const PAT_EVAL_RANGE = /^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$/;
const PAT_EXPECT = /^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$/;
const PAT_EXPECT_RANGE = /^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$/;
const MATCH_ANY = /^.*$/;

/** test.go getLines: trimmed; comment lines become blank lines. */
function getLines(input: string): string[] {
  return input.split("\n").map((l) => {
    const t = l.trim();
    return t.startsWith("#") ? "" : t;
  });
}

function parseDurations(from: string, to: string, step: string): [number, number, number] {
  const f = parseDuration(from);
  const t = parseDuration(to);
  if (t < f) throw new Error(`invalid test definition, end timestamp (${to}) is before start timestamp (${from})`);
  return [f, t, parseDuration(step)];
}

function parseLoad(lines: string[], i: number): [number, LoadCmd] {
  const m = PAT_LOAD.exec(lines[i]);
  if (!m) throw new TestParseError("invalid load command. (load[_with_nhcb] <step:duration>)", i + 1);
  let intervalMs: number;
  try {
    intervalMs = parseDuration(m[2]);
  } catch (e) {
    throw new TestParseError(`invalid step definition ${JSON.stringify(m[2])}: ${(e as Error).message}`, i + 1);
  }
  const cmd: LoadCmd = { kind: "load", line: i + 1, intervalMs, withNHCB: m[1] === "with_nhcb", series: [], startTimestampLines: [] };
  while (i + 1 < lines.length) {
    i++;
    const def = lines[i];
    if (def === "") {
      i--;
      break;
    }
    const sp = def.search(/[ \t]/);
    if (sp >= 0 && def.slice(0, sp).endsWith("@st")) {
      cmd.startTimestampLines.push(def);
      continue;
    }
    try {
      cmd.series.push(parseSeriesDesc(def));
    } catch (e) {
      throw new TestParseError((e as Error).message, i + 1);
    }
  }
  return [i, cmd];
}

function parseExpect(line: string): [ExpectType, ExpectMatcher] {
  const m = PAT_EXPECT.exec(line.trim());
  if (!m) throw new Error("invalid expect statement, must match `expect <type> <match_type>: <string>` format");
  const type = m[1] as ExpectType;
  if (m[2] === "msg") return [type, { message: m[3].trim() }];
  if (m[2] === "regex") {
    const pattern = m[3].trim();
    try {
      return [type, { regex: new RegExp(pattern) }];
    } catch {
      throw new Error(`invalid regex ${pattern} for ${type}`);
    }
  }
  return [type, { regex: MATCH_ANY }];
}

function parseEval(lines: string[], i: number): [number, EvalCmd] {
  const inst = PAT_EVAL_INSTANT.exec(lines[i]);
  const rng = PAT_EVAL_RANGE.exec(lines[i]);
  if (!inst && !rng) {
    throw new TestParseError(
      "invalid evaluation command. Must be either 'eval[_fail|_warn|_ordered] instant [at <offset:duration>] <query>' or 'eval[_fail|_warn] range from <from> to <to> step <step> <query>'",
      i + 1,
    );
  }
  const line = i + 1;
  const expr = inst ? inst[3] : rng![5];
  const fmtErr = (msg: string) => new TestParseError(`error in eval ${expr} (line ${line}): ${msg}`, line);
  const cmd: EvalCmd = {
    kind: "eval",
    line,
    expr,
    isRange: !inst,
    evalMs: 0,
    startMs: 0,
    endMs: -Infinity,
    stepMs: 0,
    fail: false,
    warn: false,
    info: false,
    ordered: false,
    expectedFailMessage: "",
    expectedFailRegexp: null,
    expects: { ordered: [], fail: [], warn: [], no_warn: [], info: [], no_info: [] },
    expectScalar: false,
    expected: new Map(),
    expectedString: null,
    excludeFromRangeQuery: false,
  };
  const mod = inst ? inst[1] : rng![1];
  try {
    if (inst) {
      cmd.evalMs = cmd.startMs = parseDuration(inst[2] ?? "");
    } else {
      [cmd.startMs, cmd.endMs, cmd.stepMs] = parseDurations(rng![2], rng![3], rng![4]);
      cmd.evalMs = cmd.startMs;
    }
  } catch (e) {
    throw fmtErr((e as Error).message);
  }
  if (mod === "ordered") cmd.ordered = true;
  else if (mod === "fail") cmd.fail = true;
  else if (mod === "warn") cmd.warn = true;
  else if (mod === "info") cmd.info = true;

  let expectRangeVector = false;
  for (let j = 1; i + 1 < lines.length; j++) {
    i++;
    const def = lines[i];
    if (def === "") {
      i--;
      break;
    }
    if (cmd.fail && def.startsWith("expected_fail_message")) {
      cmd.expectedFailMessage = def.slice("expected_fail_message".length).trim();
      break;
    }
    if (cmd.fail && def.startsWith("expected_fail_regexp")) {
      const pattern = def.slice("expected_fail_regexp".length).trim();
      try {
        cmd.expectedFailRegexp = new RegExp(pattern);
      } catch (e) {
        throw fmtErr(`invalid regexp '${pattern}' for expected_fail_regexp: ${(e as Error).message}`);
      }
      break;
    }
    if (def.startsWith("expect range vector")) {
      const m = PAT_EXPECT_RANGE.exec(def);
      if (!m) throw fmtErr(`invalid range vector definition ${JSON.stringify(def)}`);
      try {
        [cmd.startMs, cmd.endMs, cmd.stepMs] = parseDurations(m[1], m[2], m[3]);
      } catch (e) {
        throw fmtErr((e as Error).message);
      }
      expectRangeVector = true;
      cmd.evalMs = cmd.endMs;
      cmd.excludeFromRangeQuery = true;
      continue;
    }
    if (def.startsWith("expect string")) {
      const str = def === "expect string" ? "" : def.startsWith("expect string ") ? def.slice("expect string ".length) : "";
      if (str === "") throw fmtErr("expected string literal not valid - a quoted string literal is required");
      try {
        cmd.expectedString = unquote(str);
      } catch {
        throw fmtErr("expected string literal not valid - check that the string is correctly quoted");
      }
      cmd.excludeFromRangeQuery = true;
      continue;
    }
    if (def.split(" ")[0] === "expect") {
      let parsed: [ExpectType, ExpectMatcher];
      try {
        parsed = parseExpect(def);
      } catch (e) {
        throw fmtErr((e as Error).message);
      }
      cmd.expects[parsed[0]].push(parsed[1]);
      j--;
      if (cmd.expects.info.length > 0 && cmd.expects.no_info.length > 0) throw fmtErr("invalid expect lines, info and no_info cannot be used together");
      if (cmd.expects.warn.length > 0 && cmd.expects.no_warn.length > 0) throw fmtErr("invalid expect lines, warn and no_warn cannot be used together");
      if (cmd.expects.fail.length > 1) throw fmtErr("invalid expect lines, multiple expect fail lines are not allowed");
      continue;
    }
    const f = parseNumber(def);
    if (f !== null) {
      cmd.expectScalar = true;
      cmd.expected.set("", { pos: 0, labels: [], values: [{ kind: "float", v: f, stale: false }] });
      break;
    }
    let desc: SeriesDesc;
    try {
      desc = parseSeriesDesc(def);
    } catch (e) {
      throw new TestParseError((e as Error).message, i + 1);
    }
    if (desc.values.length > 1 && inst && !expectRangeVector) {
      throw fmtErr(
        "expecting multiple values in instant evaluation not allowed. consider using 'expect range vector' directive to enable a range vector result for an instant query",
      );
    }
    cmd.expectScalar = false;
    cmd.expected.set(seriesKey(desc.labels), { pos: j, labels: desc.labels, values: desc.values });
  }
  return [i, cmd];
}

/** Parses a whole test script (test.go test.parse). Throws TestParseError. */
export function parseTestScript(input: string): Command[] {
  const lines = getLines(input);
  const cmds: Command[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l === "") continue;
    const c = l.split(/[\t ]+/, 1)[0].toLowerCase();
    let cmd: Command;
    if (c === "clear") cmd = { kind: "clear", line: i + 1 };
    else if (c.startsWith("load")) [i, cmd] = parseLoad(lines, i);
    else if (c.startsWith("eval")) [i, cmd] = parseEval(lines, i);
    else throw new TestParseError(`invalid command ${JSON.stringify(l)}`, i + 1);
    cmds.push(cmd);
  }
  return cmds;
}

// ---------------------------------------------------------------------------------------
// In-memory storage

interface StoredSeries {
  labels: FlatLabels;
  timestamps: number[];
  values: number[];
  stale: boolean[];
}

/** The name a classic histogram series converts to under load_with_nhcb (convertnhcb.GetHistogramMetricBase). */
function nhcbBaseLabels(labels: FlatLabels): FlatLabels | null {
  const name = getLabel(labels, "__name__");
  let base: string;
  if (name.endsWith("_bucket")) {
    const le = getLabel(labels, "le");
    const n = parseNumber(le);
    if (!labels.includes("le") || n === null || Number.isNaN(n)) return null;
    base = name.slice(0, -"_bucket".length);
  } else if (name.endsWith("_count")) base = name.slice(0, -"_count".length);
  else if (name.endsWith("_sum")) base = name.slice(0, -"_sum".length);
  else return null;
  const out: FlatLabels = [];
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i] === "le") continue;
    out.push(labels[i], labels[i] === "__name__" ? base : labels[i + 1]);
  }
  return out;
}

/**
 * An immutable in-memory Queryable: load() returns a new storage with the samples added.
 * Float samples only; series that hold native histogram samples (loaded `{{...}}` values,
 * or the NHCB series load_with_nhcb would create) are listed in histogramSeries.
 */
export class MemoryStorage implements Queryable {
  private constructor(
    private readonly series: ReadonlyMap<string, StoredSeries>,
    /** Label sets of the series that hold native histograms, keyed by seriesKey. */
    readonly histogramSeries: ReadonlyMap<string, FlatLabels>,
  ) {}

  static empty(): MemoryStorage {
    return new MemoryStorage(new Map(), new Map());
  }

  /** test.go loadCmd.append: samples at 0, interval, 2*interval, ...; `_` leaves a gap. */
  load(cmd: LoadCmd): MemoryStorage {
    const series = new Map(this.series);
    const hist = new Map(this.histogramSeries);
    // Within one load block a repeated series description replaces the earlier one.
    const defs = new Map<string, SeriesDesc>();
    for (const d of cmd.series) defs.set(seriesKey(d.labels), d);
    for (const [key, d] of defs) {
      const add: { t: number; v: number; stale: boolean }[] = [];
      d.values.forEach((sv, i) => {
        const t = i * cmd.intervalMs;
        if (sv.kind === "float") add.push({ t, v: sv.v, stale: sv.stale });
        else if (sv.kind === "histogram") hist.set(key, d.labels);
      });
      if (cmd.withNHCB) {
        const base = nhcbBaseLabels(d.labels);
        if (base) hist.set(seriesKey(base), base);
      }
      if (add.length === 0 && !series.has(key)) continue;
      const old = series.get(key);
      const merged = new Map<number, { v: number; stale: boolean }>();
      if (old) old.timestamps.forEach((t, i) => merged.set(t, { v: old.values[i], stale: old.stale[i] }));
      for (const s of add) merged.set(s.t, { v: s.v, stale: s.stale });
      const ts = [...merged.keys()].sort((a, b) => a - b);
      series.set(key, {
        labels: d.labels,
        timestamps: ts,
        values: ts.map((t) => merged.get(t)!.v),
        stale: ts.map((t) => merged.get(t)!.stale),
      });
    }
    return new MemoryStorage(series, hist);
  }

  /** Series matching all matchers with samples in [mint, maxt], sorted by labels; fresh arrays per call. */
  async select(matchers: LabelMatcher[], mint: number, maxt: number): Promise<Series[]> {
    const compiled = matchers.map((m) => compileMatcher(m));
    const out: Series[] = [];
    for (const s of this.series.values()) {
      if (!matchesAll(compiled, s.labels)) continue;
      let lo = 0;
      while (lo < s.timestamps.length && s.timestamps[lo] < mint) lo++;
      let hi = lo;
      while (hi < s.timestamps.length && s.timestamps[hi] <= maxt) hi++;
      if (hi === lo) continue;
      const timestamps = new Float64Array(hi - lo);
      const values = new Float64Array(hi - lo);
      for (let i = lo; i < hi; i++) {
        timestamps[i - lo] = s.timestamps[i];
        if (s.stale[i]) writeStaleNaN(values, i - lo);
        else values[i - lo] = s.values[i];
      }
      out.push({ labels: s.labels.slice(), timestamps, values });
    }
    out.sort((a, b) => compareLabels(a.labels, b.labels));
    return out;
  }

  /** The label sets of histogram-holding series that these matchers select. */
  histogramSeriesSelectedBy(matchers: LabelMatcher[]): FlatLabels[] {
    let compiled: CompiledMatcher[];
    try {
      compiled = matchers.map((m) => compileMatcher(m));
    } catch {
      return [];
    }
    return [...this.histogramSeries.values()].filter((l) => matchesAll(compiled, l));
  }
}

function matchesAll(ms: CompiledMatcher[], labels: FlatLabels): boolean {
  for (const m of ms) if (!m.matches(getLabel(labels, m.name))) return false;
  return true;
}

// ---------------------------------------------------------------------------------------
// Running evals

export interface QueryResult {
  value: Value;
  annotations: Annotations;
}

/** What the runner needs from the engine (the test file adapts parse.ts and engine.ts). */
export interface PromQLEngine {
  parseExpr(input: string): Expr;
  instantQuery(q: Queryable, expr: Expr, timeMs: number): Promise<QueryResult>;
  rangeQuery(q: Queryable, expr: Expr, startMs: number, endMs: number, stepMs: number): Promise<QueryResult>;
}

export interface RunOptions {
  /**
   * Also run each instant query with `@ <eval time>` set on every selector and subquery
   * that has none, at other evaluation times (test.go atModifierTestCases). Default true.
   */
  atModifierVariants?: boolean;
  /** Also run each instant query as a range query around the eval time and compare the middle step (test.go). Default true. */
  rangeCheck?: boolean;
}

/**
 * Functions whose result depends on the evaluation time even with step-invariant arguments
 * (promql.AtModifierUnsafeFunctions): an instant query calling one gets no `@` variants.
 */
export const AT_MODIFIER_UNSAFE_FUNCTIONS = new Set([
  "days_in_month", "day_of_month", "day_of_week", "day_of_year",
  "hour", "minute", "month", "year", "predict_linear", "time", "timestamp",
]);

/**
 * start(), end(), range(), step() return the query's own times, so test.go neither checks
 * them in range mode nor (as its scripts only pass that way: `eval instant at 0 start()`
 * expects 0) with `@` variants evaluated at other times.
 */
const RE_QUERY_CONTEXT_FUNCS = /(start|end|range|step)\(\)/;

type AnyNode = { type: string } & Record<string, unknown>;

function isNode(x: unknown): x is AnyNode {
  return typeof x === "object" && x !== null && typeof (x as { type?: unknown }).type === "string";
}

/** Visits every node of an expression (generic over the AST's shape). */
export function walkExpr(e: unknown, visit: (n: AnyNode) => boolean | void): void {
  if (Array.isArray(e)) {
    for (const x of e) walkExpr(x, visit);
    return;
  }
  if (!isNode(e)) return;
  if (visit(e) === false) return;
  for (const v of Object.values(e)) if (Array.isArray(v) || isNode(v)) walkExpr(v, visit);
}

/** test.go atModifierTestCases: the expression with `@ ts` on every selector/subquery lacking one, at other times. */
export function atModifierVariants(expr: Expr, evalMs: number): { expr: Expr; timeMs: number }[] {
  const e = structuredClone(expr) as Expr;
  let unsafe = false;
  walkExpr(e, (n) => {
    if (n.type === "VectorSelector") {
      if (n.at === null || n.at === undefined) n.at = { kind: "time", ms: evalMs };
    } else if (n.type === "SubqueryExpr") {
      if (n.at === null || n.at === undefined) n.at = { kind: "time", ms: evalMs };
      return false; // Nothing inside a subquery that has @ is changed (or inspected).
    } else if (n.type === "Call") {
      if (AT_MODIFIER_UNSAFE_FUNCTIONS.has(n.func as string)) unsafe = true;
    }
  });
  if (unsafe) return [];
  const times = evalMs === 0 ? [-1000, -0, 1000] : [-10 * evalMs, 0, Math.trunc(evalMs / 5), evalMs, 10 * evalMs];
  return times.map((timeMs) => ({ expr: e, timeMs: timeMs === 0 ? 0 : timeMs }));
}

export class EvalFailure extends Error {
  override name = "EvalFailure";
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkMatch(m: ExpectMatcher, s: string): boolean {
  if (m.regex === undefined) return m.message === s;
  m.regex.lastIndex = 0;
  return m.regex.test(s);
}

function matcherString(m: ExpectMatcher): string {
  return m.regex === undefined ? (m.message ?? "") : m.regex.source;
}

/** test.go checkExpectedFailure: returns an error message, or null when the failure is the expected one. */
export function checkExpectedFailure(ev: EvalCmd, actual: unknown): string | null {
  const msg = errMessage(actual);
  if (ev.expectedFailMessage !== "" && ev.expectedFailMessage !== msg) {
    return `expected error ${JSON.stringify(ev.expectedFailMessage)} evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}), but got: ${msg}`;
  }
  if (ev.expectedFailRegexp && !ev.expectedFailRegexp.test(msg)) {
    return `expected error matching pattern ${JSON.stringify(ev.expectedFailRegexp.source)} evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}), but got: ${msg}`;
  }
  const f = ev.expects.fail[0];
  if (f && !checkMatch(f, msg)) {
    return `expected error matching ${JSON.stringify(matcherString(f))} evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}), but got: ${msg}`;
  }
  return null;
}

function allAnnotations(a: Annotations): string {
  return JSON.stringify([...a.warnings, ...a.infos]);
}

function validateExpectedOfType(ev: EvalCmd, expected: ExpectMatcher[], actual: string[], type: string, all: Annotations): string | null {
  if (expected.length === 0) return null;
  if (actual.length === 0) return `expected ${type} annotations but none were found for query ${JSON.stringify(ev.expr)} (line ${ev.line})`;
  for (const e of expected) {
    if (!actual.some((a) => checkMatch(e, a))) {
      return `expected ${type} annotation matching ${e.regex ? "pattern" : "message"} ${JSON.stringify(matcherString(e))} but no matching annotation was found for query ${JSON.stringify(ev.expr)} (line ${ev.line}), found: ${allAnnotations(all)}`;
    }
  }
  for (const a of actual) {
    if (!expected.some((e) => checkMatch(e, a))) return `unexpected ${type} annotation ${JSON.stringify(a)} found for query ${ev.expr} (line ${ev.line})`;
  }
  return null;
}

/** test.go checkAnnotations. Returns an error message or null. */
export function checkAnnotations(ev: EvalCmd, annos: Annotations): string | null {
  const warnings = [...annos.warnings];
  const infos = [...annos.infos];
  if (ev.warn && warnings.length === 0) return `expected warnings evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}) but got none`;
  if (ev.info && infos.length === 0) return `expected info annotations evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}) but got none`;
  const w = validateExpectedOfType(ev, ev.expects.warn, warnings, "warn", annos);
  if (w) return w;
  const i = validateExpectedOfType(ev, ev.expects.info, infos, "info", annos);
  if (i) return i;
  if (ev.expects.no_warn.length > 0 && warnings.length > 0) {
    return `unexpected warning annotations evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}): ${allAnnotations(annos)}`;
  }
  if (ev.expects.no_info.length > 0 && infos.length > 0) {
    return `unexpected info annotations evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}): ${allAnnotations(annos)}`;
  }
  return null;
}

function labelsKey(labels: FlatLabels): string | { error: string } {
  for (let i = 2; i < labels.length; i += 2) {
    if (labels[i - 2] >= labels[i]) {
      return { error: labels[i - 2] === labels[i] ? `duplicate label name ${labels[i]} in result ${JSON.stringify(labels)}` : `result labels are not sorted by name: ${JSON.stringify(labels)}` };
    }
  }
  return seriesKey(labels);
}

function fmtLabels(labels: FlatLabels): string {
  return formatLabels(labels);
}

function fmtPoints(s: Series): string {
  const pts: string[] = [];
  for (let i = 0; i < s.timestamps.length; i++) pts.push(`${formatFloat(s.values[i])} @[${s.timestamps[i]}]`);
  return `${s.timestamps.length} float point${s.timestamps.length === 1 ? "" : "s"} [${pts.join(" ")}]`;
}

function fmtSequence(vals: SequenceValue[]): string {
  return `[${vals.map((v) => (v.kind === "float" ? (v.stale ? "stale" : formatFloat(v.v)) : v.kind === "omitted" ? "_" : v.text)).join(" ")}]`;
}

/** test.go assertMatrixSorted. */
export function assertMatrixSorted(m: Matrix): string | null {
  for (let i = 0; i + 1 < m.length; i++) {
    if (compareLabels(m[i].labels, m[i + 1].labels) > 0) {
      return `matrix results should always be sorted by labels, but matrix is not sorted: series at index ${i + 1} with labels ${fmtLabels(m[i + 1].labels)} sorts before series at index ${i} with labels ${fmtLabels(m[i].labels)}`;
    }
  }
  return null;
}

/** test.go compareResult. Returns an error message or null. */
export function compareResult(ev: EvalCmd, result: Value): string | null {
  switch (result.type) {
    case "matrix": {
      const val = result.matrix;
      if (isOrdered(ev)) return "expected ordered result, but query returned a matrix";
      if (ev.expectScalar) return `expected scalar result, but got matrix of ${val.length} series`;
      const sortErr = assertMatrixSorted(val);
      if (sortErr) return sortErr;
      const seen = new Set<string>();
      for (const s of val) {
        const key = labelsKey(s.labels);
        if (typeof key !== "string") return key.error;
        const exp = ev.expected.get(key);
        if (!exp) return `unexpected metric ${fmtLabels(s.labels)} in result, has ${fmtPoints(s)}`;
        if (seen.has(key)) return `duplicate series ${fmtLabels(s.labels)} in result`;
        seen.add(key);
        const expT: number[] = [];
        const expV: number[] = [];
        let expHist = 0;
        for (let i = 0; i < exp.values.length; i++) {
          const e = exp.values[i];
          const t = ev.startMs + i * ev.stepMs;
          if (t > ev.endMs) {
            return `expected ${exp.values.length} points for ${fmtLabels(exp.labels)}, but query time range cannot return this many points`;
          }
          if (e.kind === "float") {
            expT.push(t);
            expV.push(e.v);
          } else if (e.kind === "histogram") expHist++;
        }
        if (expHist > 0) return `expected ${expHist} histogram points for ${fmtLabels(exp.labels)}: native histograms are not supported`;
        if (expT.length !== s.timestamps.length || s.values.length !== s.timestamps.length) {
          return `expected ${expT.length} float points and 0 histogram points for ${fmtLabels(exp.labels)}, but got ${fmtPoints(s)}`;
        }
        for (let i = 0; i < expT.length; i++) {
          if (expT[i] !== s.timestamps[i]) {
            return `expected float value at index ${i} for ${fmtLabels(exp.labels)} to have timestamp ${expT[i]}, but it had timestamp ${s.timestamps[i]} (result has ${fmtPoints(s)})`;
          }
          if (!almostEqual(s.values[i], expV[i])) {
            return `expected float value at index ${i} (t=${s.timestamps[i]}) for ${fmtLabels(exp.labels)} to be ${formatFloat(expV[i])}, but got ${formatFloat(s.values[i])} (result has ${fmtPoints(s)})`;
          }
        }
      }
      for (const [key, exp] of ev.expected) if (!seen.has(key)) return `expected metric ${fmtLabels(exp.labels)} not found`;
      return null;
    }
    case "vector": {
      const val: Vector = result.vector;
      if (ev.expectScalar) return `expected scalar result, but got vector of ${val.length} samples`;
      const seen = new Set<string>();
      for (let pos = 0; pos < val.length; pos++) {
        const v = val[pos];
        const key = labelsKey(v.labels);
        if (typeof key !== "string") return key.error;
        const exp = ev.expected.get(key);
        if (!exp) return `unexpected metric ${fmtLabels(v.labels)} in result, has value ${formatFloat(v.v)}`;
        if (seen.has(key)) return `duplicate series ${fmtLabels(v.labels)} in result`;
        if (isOrdered(ev) && exp.pos !== pos + 1) {
          return `expected metric ${fmtLabels(v.labels)} with ${fmtSequence(exp.values)} at position ${exp.pos} but was at ${pos + 1}`;
        }
        const exp0 = exp.values[0];
        if (exp0 === undefined) return `no expected value for ${fmtLabels(v.labels)}`;
        if (exp0.kind === "histogram") return `expected histogram ${exp0.text} for ${fmtLabels(v.labels)} but got float value ${formatFloat(v.v)}`;
        if (exp0.kind === "omitted") return `expected no value for ${fmtLabels(v.labels)} but got ${formatFloat(v.v)}`;
        if (!almostEqual(exp0.v, v.v)) return `expected ${formatFloat(exp0.v)} for ${fmtLabels(v.labels)} but got ${formatFloat(v.v)}`;
        seen.add(key);
      }
      for (const [key, exp] of ev.expected) {
        if (!seen.has(key)) return `expected metric ${fmtLabels(exp.labels)} with ${fmtSequence(exp.values)} not found`;
      }
      return null;
    }
    case "scalar": {
      if (!ev.expectScalar) return `expected vector or matrix result, but got scalar ${formatFloat(result.v)}`;
      const exp0 = ev.expected.get("")!.values[0];
      if (exp0.kind !== "float") return `expected ${exp0.kind} but got scalar ${formatFloat(result.v)}`;
      if (!almostEqual(exp0.v, result.v)) return `expected scalar ${formatFloat(exp0.v)} but got ${formatFloat(result.v)}`;
      return null;
    }
    case "string": {
      if ((ev.expectedString ?? "") !== result.v) return `expected string "${ev.expectedString ?? ""}" but got "${result.v}"`;
      return null;
    }
    default:
      return `unexpected result type ${(result as { type: string }).type}`;
  }
}

/** Runs one eval against the engine as test.go execEval does. Throws EvalFailure on a mismatch. */
export async function runEval(ev: EvalCmd, storage: Queryable, engine: PromQLEngine, opts: RunOptions = {}): Promise<void> {
  const fail = (msg: string): never => {
    throw new EvalFailure(msg);
  };
  let expr: Expr;
  try {
    expr = engine.parseExpr(ev.expr);
  } catch (e) {
    if (isFail(ev) && checkExpectedFailure(ev, e) === null) return;
    return fail(`error creating ${ev.isRange ? "range" : "instant"} query for ${JSON.stringify(ev.expr)} (line ${ev.line}): ${errMessage(e)}`);
  }

  if (ev.isRange) {
    let res: QueryResult;
    try {
      res = await engine.rangeQuery(storage, expr, ev.startMs, ev.endMs, ev.stepMs);
    } catch (e) {
      if (isFail(ev)) {
        const err = checkExpectedFailure(ev, e);
        return err === null ? undefined : fail(err);
      }
      return fail(`error evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}): ${errMessage(e)}`);
    }
    if (isFail(ev)) fail(`expected error evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}) but got none`);
    const a = checkAnnotations(ev, res.annotations);
    if (a) fail(a);
    const c = compareResult(ev, res.value);
    if (c) fail(`error in eval ${ev.expr} (line ${ev.line}): ${c}`);
    return;
  }

  const queries: { expr: Expr; timeMs: number; what: string }[] = [{ expr, timeMs: ev.evalMs, what: "" }];
  if ((opts.atModifierVariants ?? true) && !RE_QUERY_CONTEXT_FUNCS.test(ev.expr)) {
    for (const v of atModifierVariants(expr, ev.evalMs)) {
      queries.push({ ...v, what: ` [variant: @ ${ev.evalMs / 1000} on every selector, evaluated at ${v.timeMs / 1000}s]` });
    }
  }
  for (const iq of queries) {
    let res: QueryResult;
    try {
      res = await engine.instantQuery(storage, iq.expr, iq.timeMs);
    } catch (e) {
      if (isFail(ev)) {
        const err = checkExpectedFailure(ev, e);
        if (err !== null) fail(err + iq.what);
        continue;
      }
      return fail(`error evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line})${iq.what}: ${errMessage(e)}`);
    }
    if (isFail(ev)) fail(`expected error evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}) but got none${iq.what}`);
    const a = checkAnnotations(ev, res.annotations);
    if (a) fail(a + iq.what);
    const c = compareResult(ev, res.value);
    if (c) fail(`error in eval ${ev.expr} (line ${ev.line})${iq.what}: ${c}`);

    if (ev.excludeFromRangeQuery || !(opts.rangeCheck ?? true)) continue;
    if (RE_QUERY_CONTEXT_FUNCS.test(ev.expr)) continue;
    let rangeRes: QueryResult;
    try {
      rangeRes = await engine.rangeQuery(storage, iq.expr, iq.timeMs - 60_000, iq.timeMs + 60_000, 60_000);
    } catch (e) {
      return fail(`error evaluating query ${JSON.stringify(ev.expr)} (line ${ev.line}) in range mode${iq.what}: ${errMessage(e)}`);
    }
    if (isOrdered(ev)) continue; // Range results are sorted by labels.
    if (rangeRes.value.type !== "matrix") fail(`range query returned a ${rangeRes.value.type}, not a matrix${iq.what}`);
    const mat = (rangeRes.value as { type: "matrix"; matrix: Matrix }).matrix;
    const sortErr = assertMatrixSorted(mat);
    if (sortErr) fail(`${sortErr} (range mode)${iq.what}`);
    const vec: Vector = [];
    for (const s of mat) {
      for (let i = 0; i < s.timestamps.length; i++) {
        if (s.timestamps[i] === iq.timeMs) {
          vec.push({ labels: s.labels, t: s.timestamps[i], v: s.values[i] });
          break;
        }
      }
    }
    let c2: string | null;
    if (res.value.type === "scalar") {
      c2 = vec.length === 0 ? "range mode returned no point at the evaluation time for a scalar" : compareResult(ev, { type: "scalar", t: iq.timeMs, v: vec[0].v });
    } else {
      c2 = compareResult(ev, { type: "vector", vector: vec });
    }
    if (c2) fail(`error in eval ${ev.expr} (line ${ev.line}) range mode${iq.what}: ${c2}`);
  }
}
