// Prometheus's canonical text of an expression (promql/parser/printer.go, Expr.String()),
// used by /api/v1/format_query and in messages, and the Go formatting it relies on:
// strconv.Quote, strconv.FormatFloat(v, 'f', -1, 64), model.Duration.String().

import { MatchType, type LabelMatcher } from "../../proto/types";
import type { AggregateExpr, AtModifier, BinaryExpr, Expr, VectorSelector } from "./ast";

export function formatExpr(e: Expr): string {
  switch (e.type) {
    case "NumberLiteral":
      if (e.duration) return e.val < 0 ? "-" + formatDuration(secondsToMs(-e.val)) : formatDuration(secondsToMs(e.val));
      return formatFloat(e.val);
    case "StringLiteral":
      return goQuote(e.val);
    case "VectorSelector":
      return formatSelector(e) + formatAt(e.at) + formatOffset(e.offset);
    case "MatrixSelector": {
      // The @ and offset of the inner selector come after the range.
      const vs = e.vectorSelector;
      return `${formatSelector(vs)}[${formatDuration(e.range)}]${formatAt(vs.at)}${formatOffset(vs.offset)}`;
    }
    case "SubqueryExpr": {
      const step = e.step !== 0 ? formatDuration(e.step) : "";
      return `${formatExpr(e.expr)}[${formatDuration(e.range)}:${step}]${formatAt(e.at)}${formatOffset(e.offset)}`;
    }
    case "AggregateExpr":
      return formatAggregate(e);
    case "BinaryExpr":
      return `${formatExpr(e.lhs)} ${e.op}${e.returnBool ? " bool" : ""}${formatMatching(e)} ${formatExpr(e.rhs)}`;
    case "UnaryExpr":
      return e.op + formatExpr(e.expr);
    case "Call":
      return `${e.func}(${e.args.map(formatExpr).join(", ")})`;
    case "ParenExpr":
      return `(${formatExpr(e.expr)})`;
  }
}

function formatAggregate(e: AggregateExpr): string {
  let s: string = e.op;
  if (e.without) s += ` without (${formatGroupingLabels(e.grouping)}) `;
  else if (e.grouping.length > 0) s += ` by (${formatGroupingLabels(e.grouping)}) `;
  s += "(";
  if (e.param !== null) s += formatExpr(e.param) + ", ";
  return s + formatExpr(e.expr) + ")";
}

// Grouping labels that are not legacy names are quoted (printer.go writeLabels).
function formatGroupingLabels(ls: string[]): string {
  return ls.map((l) => (/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(l) ? l : goQuote(l))).join(", ");
}

// As Prometheus: matching is printed only with on(...) or a non-empty ignoring(...);
// its labels are printed as written.
function formatMatching(e: BinaryExpr): string {
  const vm = e.matching;
  if (vm === null || (vm.matchingLabels.length === 0 && !vm.on)) return "";
  let s = `${vm.on ? " on" : " ignoring"} (${vm.matchingLabels.join(", ")})`;
  if (vm.card === "many-to-one") s += ` group_left (${vm.include.join(", ")})`;
  else if (vm.card === "one-to-many") s += ` group_right (${vm.include.join(", ")})`;
  return s;
}

/** The selector without @ and offset: name, then the matchers sorted as strings. */
function formatSelector(vs: VectorSelector): string {
  const name = vs.name ?? "";
  const ls: string[] = [];
  for (const m of vs.matchers) {
    // The name matcher written before the braces is not repeated inside them.
    if (m.name === "__name__" && m.type === MatchType.EQ && m.value === name && m.value !== "") continue;
    ls.push(formatMatcher(m));
  }
  if (ls.length === 0) return name;
  ls.sort(compareCodePoints);
  return `${name}{${ls.join(",")}}`;
}

/** labels.Matcher.String(): the name quoted unless it is a plain identifier, the value always quoted. */
export function formatMatcher(m: LabelMatcher): string {
  const name = /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(m.name) ? m.name : goQuote(m.name);
  return name + MATCH_OPS[m.type] + goQuote(m.value);
}

const MATCH_OPS: Record<MatchType, string> = {
  [MatchType.EQ]: "=",
  [MatchType.NEQ]: "!=",
  [MatchType.RE]: "=~",
  [MatchType.NRE]: "!~",
};

function formatAt(at: AtModifier): string {
  if (at === null) return "";
  if (at.kind === "start") return " @ start()";
  if (at.kind === "end") return " @ end()";
  return ` @ ${(at.ms / 1000).toFixed(3)}`;
}

function formatOffset(ms: number): string {
  if (ms > 0) return ` offset ${formatDuration(ms)}`;
  if (ms < 0) return ` offset -${formatDuration(-ms)}`;
  return "";
}

// model.Duration(v * 1e9): float seconds to int64 nanoseconds (truncated), then to ms (truncated).
function secondsToMs(s: number): number {
  return Math.trunc(Math.trunc(s * 1e9) / 1e6);
}

/**
 * model.Duration.String() of a duration in ms: "1h30m", "90d" (years and weeks only when
 * exact), "0s" for zero. Negative durations get a leading "-".
 */
export function formatDuration(ms: number): string {
  if (ms < 0) return "-" + formatDuration(-ms);
  let rest = Math.trunc(ms);
  if (rest === 0) return "0s";
  let r = "";
  const unit = (u: string, mult: number, exact: boolean): void => {
    if (exact && rest % mult !== 0) return;
    const v = Math.floor(rest / mult);
    if (v > 0) {
      r += `${v}${u}`;
      rest -= v * mult;
    }
  };
  unit("y", 365 * 86_400_000, true);
  unit("w", 7 * 86_400_000, true);
  unit("d", 86_400_000, false);
  unit("h", 3_600_000, false);
  unit("m", 60_000, false);
  unit("s", 1000, false);
  unit("ms", 1, false);
  return r;
}

/** strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that round-trip, never an exponent. */
export function formatFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Object.is(v, -0)) return "-0";
  const s = String(v); // JavaScript also prints the shortest round-trip digits
  const e = s.indexOf("e");
  if (e < 0) return s;
  const neg = s[0] === "-";
  const mant = s.slice(neg ? 1 : 0, e);
  const exp = Number(s.slice(e + 1));
  const dot = mant.indexOf(".");
  const digits = dot < 0 ? mant : mant.slice(0, dot) + mant.slice(dot + 1);
  const point = (dot < 0 ? mant.length : dot) + exp;
  let out: string;
  if (point <= 0) out = "0." + "0".repeat(-point) + digits;
  else if (point >= digits.length) out = digits + "0".repeat(point - digits.length);
  else out = digits.slice(0, point) + "." + digits.slice(point);
  return (neg ? "-" : "") + out;
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isGoPrint(cp: number): boolean {
  return cp === 0x20 || PRINTABLE.test(String.fromCodePoint(cp));
}

const HEX = "0123456789abcdef";

function hex(n: number, width: number): string {
  let s = "";
  for (let i = width - 1; i >= 0; i--) s += HEX[Math.floor(n / 16 ** i) % 16];
  return s;
}

function escapeRune(cp: number, quote: number): string {
  if (cp === quote || cp === 0x5c) return "\\" + String.fromCodePoint(cp);
  // A lone surrogate cannot come from valid UTF-8; Go prints such runes as U+FFFD.
  if (cp >= 0xd800 && cp <= 0xdfff) return "\\ufffd";
  if (isGoPrint(cp)) return String.fromCodePoint(cp);
  switch (cp) {
    case 0x07:
      return "\\a";
    case 0x08:
      return "\\b";
    case 0x0c:
      return "\\f";
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
    case 0x0b:
      return "\\v";
  }
  if (cp < 0x20 || cp === 0x7f) return "\\x" + hex(cp, 2);
  if (cp < 0x10000) return "\\u" + hex(cp, 4);
  return "\\U" + hex(cp, 8);
}

/** strconv.Quote: a double-quoted Go string literal. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) out += escapeRune(ch.codePointAt(0) ?? 0, 0x22);
  return out + '"';
}

/** strconv.QuoteRune (fmt's %q of a rune); -1 (end of input) prints as Go prints an invalid rune. */
export function goQuoteRune(cp: number): string {
  if (cp < 0 || cp > 0x10ffff) cp = 0xfffd;
  return "'" + escapeRune(cp, 0x27) + "'";
}

/** Go's sort.Strings order: by UTF-8 bytes, i.e. by code points. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i) ?? 0;
    const cb = b.codePointAt(i) ?? 0;
    if (ca !== cb) return ca - cb;
    if (ca > 0xffff) i++;
  }
  return a.length - b.length;
}
