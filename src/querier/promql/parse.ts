// PromQL text → AST (ast.ts), with Prometheus's type checks and error messages
// (promql/parser: lex.go, generated_parser.y, parse.go checkAST).
//
// The parse tree comes from @prometheus-io/lezer-promql, the grammar of Prometheus's own UI.
// That grammar is written for highlighting, so three things are done around it:
//  1. Prometheus's lexer is ported below. It finds the lexical errors Prometheus reports
//     (unterminated strings, bad escapes, bad numbers...), and its tokens name the
//     offending token of a syntax error the way Prometheus does ("unexpected <op:*>").
//  2. Inputs Prometheus accepts but the grammar does not are rewritten, keeping every
//     position, before lezer sees them: numbers like `5.` or `0X1F`, `offset` as a metric
//     name, `foo:bar` as a grouping label, functions the grammar does not list (`integral`).
//     Names and literals are always read from the original text.
//  3. The grammar gives every postfix (offset, @, [range], [range:step]) the lowest
//     precedence and folds signs into literals (`-2^2` as (-2)^2). So a chain of operators
//     is flattened into operands, operators and postfixes and parsed again with
//     Prometheus's precedences: postfixes bind tightest, then ^ (right-associative),
//     unary minus/plus, * / % atan2, + -, comparisons, and/unless, or.
// Limit: lezer cuts off very long left-associative chains (a guard against deep trees:
// about 300 operators at one level once the chain passes 2000 characters, e.g. 200 terms
// of `sum(rate(x{job="a"}[5m])) or ...`); such a query fails with a syntax error.

import { parser } from "@prometheus-io/lezer-promql";
import { compileMatcher, MatcherError } from "../../model/matchers";
import { MatchType, type LabelMatcher } from "../../proto/types";
import {
  exprType,
  PromQLParseError,
  type AggregateExpr,
  type AggregateOp,
  type BinaryExpr,
  type BinaryOp,
  type Call,
  type Expr,
  type NumberLiteral,
  type Pos,
  type StringLiteral,
  type SubqueryExpr,
  type UnaryExpr,
  type ValueType,
  type VectorMatching,
  type VectorSelector,
} from "./ast";
import { goQuote, goQuoteRune, isGoPrint } from "./format";
import { getFunction } from "./signatures";

type SyntaxNode = ReturnType<typeof parser.parse>["topNode"];

export interface ParseOptions {
  /**
   * Accept the functions and aggregations Prometheus keeps behind
   * --enable-feature=promql-experimental-functions (sort_by_label, limitk, info, ...).
   * Default true: this engine implements them.
   */
  enableExperimentalFunctions?: boolean;
  /** Accept arithmetic in durations (`foo[5m+1m]`); on by default since Prometheus 3.14. Default true. */
  experimentalDurationExpr?: boolean;
}

/** Parses and type-checks a PromQL expression; throws PromQLParseError with Prometheus's message. */
export function parseExpr(input: string, opts: ParseOptions = {}): Expr {
  const o: Required<ParseOptions> = {
    enableExperimentalFunctions: opts.enableExperimentalFunctions ?? true,
    experimentalDurationExpr: opts.experimentalDurationExpr ?? true,
  };
  try {
    return parse(input, o);
  } catch (e) {
    if (e instanceof PosError) throw toParseError(input, e);
    throw e;
  }
}

/** An error at a position (a UTF-16 index into the input), before it becomes "line:col: parse error: ...". */
class PosError {
  constructor(
    readonly pos: number,
    readonly msg: string,
  ) {}
}

function toParseError(input: string, e: PosError): PromQLParseError {
  // Prometheus counts columns in bytes and says "unknown position" for an empty query.
  if (input === "") return new PromQLParseError(`unknown position: parse error: ${e.msg}`, null);
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < e.pos; i++) {
    if (input.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  const column = utf8Length(input.slice(lineStart, e.pos)) + 1;
  return new PromQLParseError(`${line}:${column}: parse error: ${e.msg}`, { line, column });
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// Prometheus's lexer (lex.go), without the series-description modes.

type TokKind = "EOF" | "IDENT" | "METRIC_IDENT" | "NUMBER" | "DURATION" | "STRING" | "PUNCT" | "OP" | "KW" | "AGGR" | "PRE";

interface Tok {
  kind: TokKind;
  val: string;
  start: number;
  end: number;
}

interface LexError {
  /** Where the message points (Prometheus's lexer start position). */
  pos: number;
  /** Where the error stands in the token stream: the end of the last token before it. */
  streamPos: number;
  msg: string;
}

const KEYWORDS = new Map<string, TokKind>([
  ["and", "OP"],
  ["or", "OP"],
  ["unless", "OP"],
  ["atan2", "OP"],
  ["sum", "AGGR"],
  ["avg", "AGGR"],
  ["count", "AGGR"],
  ["min", "AGGR"],
  ["max", "AGGR"],
  ["group", "AGGR"],
  ["stddev", "AGGR"],
  ["stdvar", "AGGR"],
  ["topk", "AGGR"],
  ["bottomk", "AGGR"],
  ["count_values", "AGGR"],
  ["quantile", "AGGR"],
  ["limitk", "AGGR"],
  ["limit_ratio", "AGGR"],
  ["offset", "KW"],
  ["smoothed", "KW"],
  ["anchored", "KW"],
  ["by", "KW"],
  ["without", "KW"],
  ["on", "KW"],
  ["ignoring", "KW"],
  ["group_left", "KW"],
  ["group_right", "KW"],
  ["bool", "KW"],
  ["start", "PRE"],
  ["end", "PRE"],
  ["step", "PRE"],
  ["range", "PRE"],
  ["inf", "NUMBER"],
  ["nan", "NUMBER"],
]);

// Words of duration expressions inside brackets (step(), range(), min_of(), max_of()).
const DURATION_WORDS = new Set(["step", "range", "min", "max", "min_of", "max_of"]);

const EOF_R = -1;

type LexState = (l: Lexer) => LexState | null;

const isSpace = (r: number): boolean => r === 0x20 || r === 0x09 || r === 0x0a || r === 0x0d;
const isDigit = (r: number): boolean => r >= 0x30 && r <= 0x39;
const isAlpha = (r: number): boolean => r === 0x5f || (r >= 0x61 && r <= 0x7a) || (r >= 0x41 && r <= 0x5a);
const isAlphaNumeric = (r: number): boolean => isAlpha(r) || isDigit(r);
// Go's lexer sees invalid UTF-8 as U+FFFD; a JavaScript string can only carry it as that
// character or as a lone surrogate.
const isRuneError = (r: number): boolean => r === 0xfffd || (r >= 0xd800 && r <= 0xdfff);

/** fmt's %#U: "U+0063 'c'". */
function formatU(r: number): string {
  const code = "U+" + r.toString(16).toUpperCase().padStart(4, "0");
  return isGoPrint(r) ? `${code} '${String.fromCodePoint(r)}'` : code;
}

class Lexer {
  pos = 0;
  start = 0;
  width = 0;
  parenDepth = 0;
  braceOpen = false;
  bracketOpen = false;
  gotColon = false;
  gotDuration = false;
  stringOpen = 0;
  readonly toks: Tok[] = [];
  err: LexError | null = null;
  private stateStartToks = 0;

  constructor(readonly input: string) {}

  run(): void {
    let state: LexState | null = lexStatements;
    while (state !== null && this.err === null) {
      this.stateStartToks = this.toks.length;
      state = state(this);
    }
  }

  next(): number {
    if (this.pos >= this.input.length) {
      this.width = 0;
      return EOF_R;
    }
    const r = this.input.codePointAt(this.pos) ?? 0;
    this.width = r > 0xffff ? 2 : 1;
    this.pos += this.width;
    return r;
  }

  peek(): number {
    const r = this.next();
    this.backup();
    return r;
  }

  backup(): void {
    this.pos -= this.width;
  }

  emit(kind: TokKind): void {
    this.toks.push({ kind, val: this.input.slice(this.start, this.pos), start: this.start, end: this.pos });
    this.start = this.pos;
  }

  ignore(): void {
    this.start = this.pos;
  }

  accept(valid: string): boolean {
    const r = this.next();
    if (r !== EOF_R && valid.includes(String.fromCodePoint(r))) return true;
    this.backup();
    return false;
  }

  is(valid: string): boolean {
    const r = this.peek();
    return r !== EOF_R && valid.includes(String.fromCodePoint(r));
  }

  acceptRun(valid: string): void {
    while (this.accept(valid)) {
      // consume
    }
  }

  skipSpaces(): void {
    while (isSpace(this.peek())) this.next();
    this.ignore();
  }

  errorf(msg: string): null {
    // In Go the error item overwrites a token emitted by the same state call.
    this.toks.length = this.stateStartToks;
    const last = this.toks[this.toks.length - 1];
    this.err = { pos: this.start, streamPos: last ? last.end : 0, msg };
    return null;
  }

  /** scanNumber: decimal, hex, octal or float; the token is checked by the parser. */
  scanNumber(): boolean {
    const initial = this.pos;
    let digits = "0123456789";
    if (this.accept("0") && this.accept("xX")) {
      this.accept("_");
      digits = "0123456789abcdefABCDEF";
    }
    this.accept(".");
    this.accept(digits);
    let dotConsumed = false;
    let expConsumed = false;
    while (this.is(digits + "._eE")) {
      if (this.is(".") && dotConsumed) {
        this.accept(".");
        return false;
      }
      if (this.is("eE") && expConsumed) {
        this.accept("eE");
        return false;
      }
      if (this.accept(".")) {
        dotConsumed = true;
        if (this.accept("_.")) return false;
        if (digits.length > 10) return false; // no fractional hex
        continue;
      }
      if (this.accept("eE")) {
        expConsumed = true;
        this.accept("+-");
        if (this.accept("._eE") || this.peek() === EOF_R) return false;
        continue;
      }
      if (this.accept("_")) {
        if (this.accept("._eE") || this.peek() === EOF_R) return false;
        continue;
      }
      this.acceptRun(digits);
    }
    if (this.pos === initial) return false;
    return !isAlphaNumeric(this.peek());
  }

  acceptRemainingDuration(): boolean {
    if (!this.accept("smhdwy")) return false;
    this.accept("s"); // ms; bad units are reported when the duration is parsed
    while (this.accept("0123456789")) {
      this.acceptRun("0123456789");
      if (!this.accept("smhdw")) return false;
      this.accept("s");
    }
    return !isAlphaNumeric(this.next());
  }

  /** A word inside brackets after its first letter: step, range, min_of, max_of. */
  scanDurationWord(): boolean {
    while (isAlpha(this.peek())) this.next();
    const word = this.input.slice(this.start, this.pos).toLowerCase();
    if (!DURATION_WORDS.has(word)) return false;
    this.emit(word === "min" || word === "max" ? "AGGR" : "PRE");
    return true;
  }
}

function lexStatements(l: Lexer): LexState | null {
  if (l.braceOpen) return lexInsideBraces;
  if (l.input.startsWith("#", l.pos)) return lexLineComment;
  const r = l.next();
  if (r === EOF_R) {
    if (l.parenDepth !== 0) return l.errorf("unclosed left parenthesis");
    if (l.bracketOpen) return l.errorf("unclosed left bracket");
    l.emit("EOF");
    return null;
  }
  if (isSpace(r)) return lexSpace;
  if (isDigit(r) || (r === 0x2e && isDigit(l.peek()))) {
    l.backup();
    return lexNumberOrDuration;
  }
  if (isAlpha(r) || r === 0x3a) {
    if (!l.bracketOpen) {
      l.backup();
      return lexKeywordOrIdentifier;
    }
    if (r === 0x3a) {
      if (l.gotColon) return l.errorf(`unexpected colon ${goQuoteRune(r)}`);
      l.emit("PUNCT");
      l.gotColon = true;
      return lexStatements;
    }
    if (l.scanDurationWord()) return lexStatements;
    return l.errorf(`unexpected character: ${goQuoteRune(r)}, expected ':'`);
  }
  switch (String.fromCodePoint(r)) {
    case ",":
      l.emit("PUNCT");
      return lexStatements;
    case "*":
    case "/":
    case "%":
    case "+":
    case "-":
    case "^":
    case "@":
      l.emit("OP");
      return lexStatements;
    case "=": {
      const t = l.peek();
      if (t === 0x3d) {
        l.next();
        l.emit("OP");
      } else if (t === 0x7e) {
        return l.errorf(`unexpected character after '=': ${goQuoteRune(t)}`);
      } else {
        l.emit("PUNCT");
      }
      return lexStatements;
    }
    case "!": {
      const t = l.next();
      if (t !== 0x3d) return l.errorf(`unexpected character after '!': ${goQuoteRune(t)}`);
      l.emit("OP");
      return lexStatements;
    }
    case "<":
    case ">":
      if (l.peek() === 0x3d) l.next();
      l.emit("OP");
      return lexStatements;
    case '"':
    case "'":
      l.stringOpen = r;
      return lexString;
    case "`":
      l.stringOpen = r;
      return lexRawString;
    case "(":
      l.emit("PUNCT");
      l.parenDepth++;
      return lexStatements;
    case ")":
      l.emit("PUNCT");
      l.parenDepth--;
      if (l.parenDepth < 0) return l.errorf(`unexpected right parenthesis ${goQuoteRune(r)}`);
      return lexStatements;
    case "{":
      l.emit("PUNCT");
      l.braceOpen = true;
      return lexInsideBraces;
    case "[":
      if (l.bracketOpen) return l.errorf(`unexpected left bracket ${goQuoteRune(r)}`);
      l.gotColon = false;
      l.emit("PUNCT");
      l.skipSpaces();
      l.bracketOpen = true;
      return lexDurationExpr;
    case "]":
      if (!l.bracketOpen) return l.errorf(`unexpected right bracket ${goQuoteRune(r)}`);
      l.emit("PUNCT");
      l.bracketOpen = false;
      return lexStatements;
  }
  return l.errorf(`unexpected character: ${goQuoteRune(r)}`);
}

function lexInsideBraces(l: Lexer): LexState | null {
  if (l.input.startsWith("#", l.pos)) return lexLineComment;
  const r = l.next();
  if (r === EOF_R) return l.errorf("unexpected end of input inside braces");
  if (isSpace(r)) return lexSpace;
  if (isAlpha(r)) {
    l.backup();
    return lexIdentifier;
  }
  switch (String.fromCodePoint(r)) {
    case ",":
      l.emit("PUNCT");
      return lexInsideBraces;
    case '"':
    case "'":
      l.stringOpen = r;
      return lexString;
    case "`":
      l.stringOpen = r;
      return lexRawString;
    case "=":
      if (l.next() === 0x7e) {
        l.emit("OP");
      } else {
        l.backup();
        l.emit("PUNCT");
      }
      return lexInsideBraces;
    case "!": {
      const nr = l.next();
      if (nr !== 0x7e && nr !== 0x3d) return l.errorf(`unexpected character after '!' inside braces: ${goQuoteRune(nr)}`);
      l.emit("OP");
      return lexInsideBraces;
    }
    case "{":
      return l.errorf(`unexpected left brace ${goQuoteRune(r)}`);
    case "}":
      l.emit("PUNCT");
      l.braceOpen = false;
      return lexStatements;
  }
  return l.errorf(`unexpected character inside braces: ${goQuoteRune(r)}`);
}

function lexSpace(l: Lexer): LexState {
  while (isSpace(l.peek())) l.next();
  l.ignore();
  return lexStatements;
}

function lexLineComment(l: Lexer): LexState {
  l.pos += 1;
  for (let r = l.next(); r !== 0x0a && r !== 0x0d && r !== EOF_R; r = l.next()) {
    // skip
  }
  l.backup();
  l.ignore();
  return lexStatements;
}

function lexString(l: Lexer): LexState | null {
  for (;;) {
    const r = l.next();
    if (r === 0x5c) return lexEscape;
    if (isRuneError(r)) return l.errorf("invalid UTF-8 rune");
    if (r === EOF_R || r === 0x0a) return l.errorf("unterminated quoted string");
    if (r === l.stringOpen) break;
  }
  l.emit("STRING");
  return lexStatements;
}

function lexRawString(l: Lexer): LexState | null {
  for (;;) {
    const r = l.next();
    if (isRuneError(r)) return l.errorf("invalid UTF-8 rune");
    if (r === EOF_R) return l.errorf("unterminated raw string");
    if (r === l.stringOpen) break;
  }
  l.emit("STRING");
  return lexStatements;
}

function digitVal(r: number): number {
  if (r >= 0x30 && r <= 0x39) return r - 0x30;
  if (r >= 0x61 && r <= 0x66) return r - 0x61 + 10;
  if (r >= 0x41 && r <= 0x46) return r - 0x41 + 10;
  return 16;
}

function lexEscape(l: Lexer): LexState | null {
  let ch = l.next();
  let n: number;
  let base: number;
  let max: number;
  if (ch === l.stringOpen || (ch !== EOF_R && "abfnrtv\\".includes(String.fromCodePoint(ch)))) return lexString;
  if (ch >= 0x30 && ch <= 0x37) {
    [n, base, max] = [3, 8, 255];
  } else if (ch === 0x78 /* x */) {
    ch = l.next();
    [n, base, max] = [2, 16, 255];
  } else if (ch === 0x75 /* u */) {
    ch = l.next();
    [n, base, max] = [4, 16, 0x10ffff];
  } else if (ch === 0x55 /* U */) {
    ch = l.next();
    [n, base, max] = [8, 16, 0x10ffff];
  } else if (ch === EOF_R) {
    return l.errorf("escape sequence not terminated");
  } else {
    return l.errorf(`unknown escape sequence ${formatU(ch)}`);
  }
  let x = 0;
  while (n > 0) {
    const d = digitVal(ch);
    if (d >= base) {
      if (ch === EOF_R) return l.errorf("escape sequence not terminated");
      return l.errorf(`illegal character ${formatU(ch)} in escape sequence`);
    }
    x = x * base + d;
    n--;
    if (n > 0) ch = l.next();
  }
  if (x > max || (x >= 0xd800 && x < 0xe000)) return l.errorf("escape sequence is an invalid Unicode code point");
  return lexString;
}

function lexNumberOrDuration(l: Lexer): LexState | null {
  if (l.scanNumber()) {
    l.emit("NUMBER");
    return lexStatements;
  }
  if (l.acceptRemainingDuration()) {
    l.backup();
    l.emit("DURATION");
    return lexStatements;
  }
  return l.errorf(`bad number or duration syntax: ${goQuote(l.input.slice(l.start, l.pos))}`);
}

function lexKeywordOrIdentifier(l: Lexer): LexState {
  for (;;) {
    const r = l.next();
    if (isAlphaNumeric(r) || r === 0x3a) continue;
    l.backup();
    break;
  }
  const word = l.input.slice(l.start, l.pos);
  const kw = KEYWORDS.get(word.toLowerCase());
  l.emit(kw ?? (word.includes(":") ? "METRIC_IDENT" : "IDENT"));
  return lexStatements;
}

function lexIdentifier(l: Lexer): LexState {
  while (isAlphaNumeric(l.next())) {
    // absorb
  }
  l.backup();
  l.emit("IDENT");
  return lexStatements;
}

function lexDurationExpr(l: Lexer): LexState | null {
  const r = l.next();
  if (r === EOF_R) return l.errorf("unexpected end of input in duration expression");
  if (isSpace(r)) {
    l.skipSpaces();
    return lexDurationExpr;
  }
  if (isDigit(r) || (r === 0x2e && isDigit(l.peek()))) {
    l.backup();
    l.gotDuration = true;
    return lexNumberOrDuration;
  }
  if (isAlpha(r)) {
    if (l.scanDurationWord()) return lexDurationExpr;
    return l.errorf(`unexpected character in duration expression: ${goQuoteRune(r)}`);
  }
  switch (String.fromCodePoint(r)) {
    case "]":
      l.emit("PUNCT");
      l.bracketOpen = false;
      l.gotColon = false;
      return lexStatements;
    case ":":
      l.emit("PUNCT");
      if (!l.gotDuration) return l.errorf("unexpected colon before duration in duration expression");
      if (l.gotColon) return l.errorf("unexpected repeated colon in duration expression");
      l.gotColon = true;
      return lexDurationExpr;
    case "(":
      l.emit("PUNCT");
      l.parenDepth++;
      return lexDurationExpr;
    case ")":
      l.emit("PUNCT");
      l.parenDepth--;
      if (l.parenDepth < 0) return l.errorf(`unexpected right parenthesis ${goQuoteRune(r)}`);
      return lexDurationExpr;
    case ",":
      l.emit("PUNCT");
      return lexDurationExpr;
    case "+":
    case "-":
    case "*":
    case "/":
    case "%":
    case "^":
      l.emit("OP");
      return lexDurationExpr;
  }
  return l.errorf(`unexpected character in duration expression: ${goQuoteRune(r)}`);
}

// ---------------------------------------------------------------------------------------
// Literals, as Prometheus reads them.

/** The seconds of a duration literal (model.ParseDuration), or its error message. */
function parseDuration(s: string): { seconds: number } | { error: string } {
  if (s === "0") return { seconds: 0 };
  if (s === "") return { error: "empty duration string" };
  const invalid = { error: `not a valid duration string: ${goQuote(s)}` };
  const units: Record<string, [bigint, number]> = {
    y: [31_536_000_000_000_000n, 1],
    w: [604_800_000_000_000n, 2],
    d: [86_400_000_000_000n, 3],
    h: [3_600_000_000_000n, 4],
    m: [60_000_000_000n, 5],
    s: [1_000_000_000n, 6],
    ms: [1_000_000n, 7],
  };
  const limit = 1n << 63n;
  let ns = 0n;
  let lastPos = 0;
  let rest = s;
  while (rest !== "") {
    const digits = /^[0-9]*/.exec(rest)?.[0] ?? "";
    if (digits === "") return invalid;
    const v = BigInt(digits);
    if (v >= 1n << 64n) return invalid;
    rest = rest.slice(digits.length);
    const u = /^[^0-9]*/.exec(rest)?.[0] ?? "";
    if (u === "") return invalid;
    rest = rest.slice(u.length);
    const unit = Object.hasOwn(units, u) ? units[u] : undefined;
    if (unit === undefined) return { error: `unknown unit ${goQuote(u)} in duration ${goQuote(s)}` };
    if (unit[1] <= lastPos) return invalid;
    lastPos = unit[1];
    if (v > limit / unit[0]) return { error: "duration out of range" };
    ns += v * unit[0];
    if (ns > limit - 1n) return { error: "duration out of range" };
  }
  // time.Duration.Seconds(): whole seconds plus the nanoseconds as a fraction.
  return { seconds: Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9 };
}

/** strconv's underscoreOK: underscores only between digits (or after a base prefix). */
function underscoreOK(s: string): boolean {
  let saw = "^";
  let i = 0;
  if (s.startsWith("+") || s.startsWith("-")) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === "0" && "box".includes(s[1].toLowerCase())) {
    i = 2;
    saw = "0";
    hex = s[1].toLowerCase() === "x";
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= "0" && c <= "9") || (hex && /[0-9a-fA-F]/.test(c))) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** strconv.ParseInt(s, 0, 64) as a double, or null when it fails (bad syntax or out of range). */
function goParseInt(s: string): number | null {
  let base = 10;
  let body = s;
  if (s[0] === "0" && s.length > 1) {
    const p = s[1].toLowerCase();
    if (s.length >= 3 && p === "x") [base, body] = [16, s.slice(2)];
    else if (s.length >= 3 && p === "o") [base, body] = [8, s.slice(2)];
    else if (s.length >= 3 && p === "b") [base, body] = [2, s.slice(2)];
    else [base, body] = [8, s.slice(1)];
  }
  if (s.includes("_") && !underscoreOK(s)) return null;
  let n = 0n;
  const b = BigInt(base);
  for (const c of body) {
    if (c === "_") continue;
    const d = digitVal(c.codePointAt(0) ?? 0);
    if (d >= base) return null;
    n = n * b + BigInt(d);
  }
  if (s.length === 0 || n > (1n << 63n) - 1n) return null;
  return Number(n);
}

/** Prometheus's parser.number(): ParseInt(s, 0, 64), else ParseFloat(s, 64). */
function goNumber(s: string): number | string {
  const i = goParseInt(s);
  if (i !== null) return i;
  const lower = s.toLowerCase();
  if (lower === "inf" || lower === "+inf" || lower === "infinity" || lower === "+infinity") return Infinity;
  if (lower === "-inf" || lower === "-infinity") return -Infinity;
  if (lower === "nan") return NaN;
  const syntax = `error parsing number: strconv.ParseFloat: parsing ${goQuote(s)}: invalid syntax`;
  if (!/^[+-]?(?:[0-9_]+(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?$/.test(s)) return syntax;
  if (s.includes("_") && !underscoreOK(s)) return syntax;
  const v = Number(s.replaceAll("_", ""));
  if (!Number.isFinite(v)) return `error parsing number: strconv.ParseFloat: parsing ${goQuote(s)}: value out of range`;
  return v;
}

/** strutil.Unquote of a string token the lexer accepted: Go escapes, \x and octal as raw bytes. */
function unquote(tok: string): string {
  return unquoteLiteral(tok).val;
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Lenient = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * unquote, also telling whether the bytes were valid UTF-8. Go keeps invalid bytes (from \x or
 * octal escapes, e.g. "\xff") as they are; a JavaScript string holds U+FFFD for them instead,
 * so invalidUTF8 is what tells such a string from one with a real U+FFFD.
 */
function unquoteLiteral(tok: string): { val: string; invalidUTF8: boolean } {
  const quote = tok[0];
  const body = tok.slice(1, -1);
  if (quote === "`" || !body.includes("\\")) return { val: body, invalidUTF8: false };
  const bytes: number[] = [];
  const pushRune = (cp: number): void => {
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    if (cp < 0x80) bytes.push(cp);
    else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  };
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92, "'": 39, '"': 34 };
  let i = 0;
  while (i < body.length) {
    const cp = body.codePointAt(i) ?? 0;
    if (cp !== 0x5c) {
      pushRune(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    if (Object.hasOwn(simple, e)) {
      bytes.push(simple[e]);
    } else if (e === "x") {
      bytes.push(parseInt(body.slice(i, i + 2), 16));
      i += 2;
    } else if (e === "u" || e === "U") {
      const n = e === "u" ? 4 : 8;
      pushRune(parseInt(body.slice(i, i + n), 16));
      i += n;
    } else {
      bytes.push(parseInt(body.slice(i - 1, i + 2), 8) & 0xff);
      i += 2;
    }
  }
  const raw = new Uint8Array(bytes);
  try {
    return { val: utf8Strict.decode(raw), invalidUTF8: false };
  } catch {
    return { val: utf8Lenient.decode(raw), invalidUTF8: true };
  }
}

// ---------------------------------------------------------------------------------------
// Rewrites that let the grammar accept what Prometheus accepts (positions unchanged).

// Numbers as the grammar spells them; other Prometheus numbers are given to lezer as "0".
const GRAMMAR_NUMBER = /^(?:(?:[0-9]+(?:_?[0-9])*(?:\.[0-9]+(?:_?[0-9])*)?|\.[0-9]+(?:_?[0-9])*)(?:[eE][+-]?[0-9]+(?:_?[0-9])*)?|0x[0-9a-fA-F]+)$/;

// Function names the grammar knows (FunctionIdentifier in promql.grammar).
const GRAMMAR_FUNCTIONS = new Set(
  (
    "abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max clamp_min " +
    "cos cosh count_over_time days_in_month day_of_month day_of_week day_of_year deg delta deriv exp first_over_time " +
    "floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_quantiles histogram_stddev " +
    "histogram_stdvar histogram_sum double_exponential_smoothing hour idelta increase info irate label_replace label_join " +
    "last_over_time ln log10 log2 mad_over_time max_over_time min_over_time ts_of_first_over_time ts_of_max_over_time " +
    "ts_of_min_over_time ts_of_last_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate " +
    "resets round scalar sgn sin sinh sort sort_desc sort_by_label sort_by_label_desc start start_timestamp end range step " +
    "sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh timestamp time vector year"
  ).split(" "),
);

const GROUPING_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

const isPunct = (t: Tok | undefined, v: string): boolean => t !== undefined && t.kind === "PUNCT" && t.val === v;
const isKw = (t: Tok | undefined, ...vs: string[]): boolean => t !== undefined && t.kind === "KW" && vs.includes(t.val.toLowerCase());

function normalizeForGrammar(input: string, toks: Tok[]): string {
  const out = input.split("");
  const put = (t: Tok, text: string): void => {
    for (let i = 0; i < text.length; i++) out[t.start + i] = text[i];
  };
  // Parens: whether each open one holds grouping labels, and whether it follows on/ignoring/group_x.
  const parens: { grouping: boolean; binop: boolean }[] = [];
  let lastClosed: { grouping: boolean; binop: boolean } | null = null;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    const prev = i > 0 ? toks[i - 1] : undefined;
    if (t.kind === "NUMBER" && !/^(?:inf|nan)$/i.test(t.val) && !GRAMMAR_NUMBER.test(t.val)) put(t, "0".padEnd(t.val.length));
    // (After `offset`, min_of/max_of are the grammar's duration functions.)
    if (t.kind === "IDENT" && isPunct(toks[i + 1], "(") && !isKw(prev, "offset") && !GRAMMAR_FUNCTIONS.has(t.val) && getFunction(t.val) !== undefined) {
      put(t, "abs".padEnd(t.val.length));
    }
    if (t.kind === "METRIC_IDENT" && parens.length > 0 && parens[parens.length - 1].grouping) put(t, t.val.replaceAll(":", "_"));
    // `offset` is a metric name where an expression starts (metric_identifier includes OFFSET).
    if (isKw(t, "offset")) {
      const exprStart =
        prev === undefined ||
        (prev.kind === "OP" && prev.val !== "@") ||
        isPunct(prev, "(") ||
        isPunct(prev, ",") ||
        isKw(prev, "bool", "group_left", "group_right") ||
        (isPunct(prev, ")") && lastClosed !== null && lastClosed.binop);
      if (exprStart) put(t, "_");
    }
    if (isPunct(t, "(")) {
      const g = prev !== undefined && prev.kind === "KW" && GROUPING_KEYWORDS.has(prev.val.toLowerCase());
      parens.push({ grouping: g, binop: g && !isKw(prev, "by", "without") });
    } else if (isPunct(t, ")")) {
      lastClosed = parens.pop() ?? null;
    }
  }
  return out.join("");
}

// ---------------------------------------------------------------------------------------
// Syntax errors: the first error of the lezer tree, told as Prometheus tells it.

function firstTreeError(tree: ReturnType<typeof parser.parse>): number | null {
  let first: number | null = null;
  tree.iterate({
    enter(n) {
      if (n.type.isError) {
        if (first === null || n.from < first) first = n.from;
        return false;
      }
      return first === null || n.from < first;
    },
  });
  return first;
}

function describeToken(t: Tok): string {
  // Item.desc() and Item.String() of lex.go.
  const q = (v: string): string => (utf8Length(v) > 10 ? goQuote(Array.from(v).slice(0, 10).join("")) + "..." : goQuote(v));
  switch (t.kind) {
    case "EOF":
      return "end of input";
    case "IDENT":
      return `identifier ${goQuote(t.val)}`;
    case "METRIC_IDENT":
      return `metric identifier ${goQuote(t.val)}`;
    case "NUMBER":
      return `number ${q(t.val)}`;
    case "DURATION":
      return `duration ${q(t.val)}`;
    case "STRING":
      return `string ${q(t.val)}`;
    case "OP":
      return `<op:${t.val}>`;
    case "KW":
      return `<${t.val}>`;
    case "AGGR":
      return `<aggr:${t.val}>`;
    case "PUNCT":
    case "PRE":
      return goQuote(t.val);
  }
}

function syntaxError(toks: Tok[], pos: number): { streamPos: number; err: PosError } {
  const idx = toks.findIndex((t) => t.end > pos || t.kind === "EOF");
  if (idx < 0) return { streamPos: pos, err: new PosError(pos, "unexpected end of input") };
  const tok = toks[idx];
  const prev = idx > 0 ? toks[idx - 1] : undefined;
  // An identifier accepted as a metric name, then "(": a call of a function that does not exist.
  if (isPunct(tok, "(") && prev?.kind === "IDENT") {
    return { streamPos: prev.start, err: new PosError(prev.start, `unknown function with name ${goQuote(prev.val)}`) };
  }
  // Where we are: inside braces, brackets, grouping parentheses.
  let inBraces = false;
  let bracket: { colon: boolean; value: boolean } | null = null;
  const parens: boolean[] = [];
  for (let i = 0; i < idx; i++) {
    const t = toks[i];
    if (t.kind === "PUNCT") {
      if (t.val === "{") inBraces = true;
      else if (t.val === "}") inBraces = false;
      else if (t.val === "[") bracket = { colon: false, value: false };
      else if (t.val === "]") bracket = null;
      else if (t.val === ":" && bracket) bracket.colon = true;
      else if (t.val === "(") parens.push(i > 0 && toks[i - 1].kind === "KW" && GROUPING_KEYWORDS.has(toks[i - 1].val.toLowerCase()));
      else if (t.val === ")") parens.pop();
    }
    if (bracket && (t.kind === "NUMBER" || t.kind === "DURATION" || isPunct(t, ")"))) bracket.value = true;
  }
  const inGrouping = parens.length > 0 && parens[parens.length - 1];
  if (isPunct(tok, ")") && isPunct(prev, ",") && prev && !inGrouping && !inBraces) {
    return { streamPos: prev.start, err: new PosError(prev.start, "trailing commas not allowed in function call args") };
  }
  let ctx = "";
  if (inBraces) {
    if (prev === undefined || isPunct(prev, "{") || isPunct(prev, ",")) ctx = ' in label matching, expected identifier or "}"';
    else if (isPunct(prev, "=") || (prev.kind === "OP" && ["!=", "=~", "!~"].includes(prev.val))) ctx = " in label matching, expected string";
    else if (prev.kind === "IDENT") ctx = " in label matching, expected label matching operator";
    else ctx = ' in label matching, expected "," or "}"';
  } else if (bracket) {
    if (isPunct(prev, ":")) ctx = ' in subquery selector, expected number, duration, step(), range(), or "]"';
    else if (!bracket.value) ctx = " in subquery or range selector, expected number, duration, step(), or range()";
    else if (prev && (prev.kind === "NUMBER" || prev.kind === "DURATION" || isPunct(prev, ")")))
      ctx = bracket.colon ? ' in subquery selector, expected "]"' : ' in subquery or range, expected ":" or "]"';
  } else if (inGrouping) {
    ctx = isPunct(prev, "(") || isPunct(prev, ",") ? " in grouping opts, expected label" : ' in grouping opts, expected "," or ")"';
  } else if (isKw(prev, "by", "without", "on", "ignoring") && !isPunct(tok, "(")) {
    ctx = ' in grouping opts, expected "("';
  } else if (isKw(prev, "offset")) {
    ctx = " in offset, expected number, duration, step(), or range()";
  } else if (prev?.kind === "OP" && prev.val === "@") {
    ctx = " in @, expected timestamp";
  }
  return { streamPos: tok.start, err: new PosError(tok.start, `unexpected ${describeToken(tok)}${ctx}`) };
}

// ---------------------------------------------------------------------------------------

function parse(input: string, opts: Required<ParseOptions>): Expr {
  const lexer = new Lexer(input);
  lexer.run();
  const toks = lexer.toks;
  if (lexer.err === null && toks[0]?.kind === "EOF") throw new PosError(0, "no expression found in input");

  // A bad duration token is reported where it stands (model.ParseDuration's messages).
  let durErr: PosError | null = null;
  for (const t of toks) {
    if (t.kind !== "DURATION") continue;
    const d = parseDuration(t.val);
    if ("error" in d) {
      durErr = new PosError(t.start, d.error);
      break;
    }
  }

  const tree = parser.parse(normalizeForGrammar(input, toks));
  const treeErr = firstTreeError(tree);
  // The error that comes first in the token stream wins, as in Prometheus's parser.
  const candidates: { streamPos: number; err: PosError }[] = [];
  if (lexer.err) candidates.push({ streamPos: lexer.err.streamPos, err: new PosError(lexer.err.pos, lexer.err.msg) });
  if (durErr) candidates.push({ streamPos: durErr.pos, err: durErr });
  if (treeErr !== null) candidates.push(syntaxError(toks, treeErr));
  if (candidates.length > 0) {
    let best = candidates[0];
    for (const c of candidates) if (c.streamPos < best.streamPos) best = c;
    throw best.err;
  }

  const conv = new Converter(input, toks, opts);
  let top = tree.topNode.firstChild;
  while (top !== null && top.name === "LineComment") top = top.nextSibling;
  if (top === null) throw new PosError(0, "no expression found in input");
  const expr = conv.expr(top);
  conv.check(expr);
  return expr;
}

type Item =
  | { k: "atom"; node: SyntaxNode }
  | { k: "num"; node: SyntaxNode; from: number }
  | { k: "prefix"; op: "-" | "+"; pos: number }
  | { k: "binop"; parts: SyntaxNode[] }
  | { k: "postfix"; node: SyntaxNode };

const BINARY_OPS: Record<string, BinaryOp> = {
  Pow: "^",
  Mul: "*",
  Div: "/",
  Mod: "%",
  Atan2: "atan2",
  Add: "+",
  Sub: "-",
  Eql: "==",
  Neq: "!=",
  Gtr: ">",
  Lss: "<",
  Gte: ">=",
  Lte: "<=",
  And: "and",
  Unless: "unless",
  Or: "or",
};

// generated_parser.y: %left LOR; %left LAND LUNLESS; %left EQLC GTE GTR LSS LTE NEQ;
// %left ADD SUB; %left MUL DIV MOD ATAN2; %right POW.
const PRECEDENCE: Record<BinaryOp, number> = {
  or: 1,
  and: 2,
  unless: 2,
  "==": 3,
  "!=": 3,
  ">": 3,
  "<": 3,
  ">=": 3,
  "<=": 3,
  "+": 4,
  "-": 4,
  "*": 5,
  "/": 5,
  "%": 5,
  atan2: 5,
  "^": 6,
};

const COMPARISONS = new Set<BinaryOp>(["==", "!=", ">", "<", ">=", "<="]);
const SET_OPS = new Set<BinaryOp>(["and", "or", "unless"]);
const PARAM_AGGREGATIONS = new Set<AggregateOp>(["topk", "bottomk", "count_values", "quantile", "limitk", "limit_ratio"]);

// time.Duration's range in seconds.
const MAX_DURATION_SECONDS = 2 ** 63 / 1e9;

const DOCUMENTED_TYPE: Record<ValueType, string> = { scalar: "scalar", vector: "instant vector", matrix: "range vector", string: "string" };

/** Go's math.Round: half away from zero. */
const goRound = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x));

/** Seconds → time.Duration (rounded ns) → ms as the engine takes them (truncated). */
const secondsToMs = (s: number): number => Math.trunc(goRound(s * 1e9) / 1e6);

class Converter {
  /** Start of each node in the input, for messages. */
  private readonly starts = new WeakMap<object, number>();
  /** Position of each binary operator, for messages about it. */
  private readonly opPos = new WeakMap<BinaryExpr, number>();
  /** The label selector of info(), which may match everything. */
  private readonly bypassEmptyCheck = new WeakSet<VectorSelector>();
  private readonly matchesEmpty = new WeakMap<LabelMatcher, boolean>();

  constructor(
    private readonly input: string,
    private readonly toks: Tok[],
    private readonly opts: Required<ParseOptions>,
  ) {}

  private fail(pos: number, msg: string): never {
    throw new PosError(pos, msg);
  }

  private text(n: SyntaxNode): string {
    return this.input.slice(n.from, n.to);
  }

  private kids(n: SyntaxNode): SyntaxNode[] {
    const out: SyntaxNode[] = [];
    for (let c = n.firstChild; c !== null; c = c.nextSibling) if (c.name !== "LineComment") out.push(c);
    return out;
  }

  private at<T extends Expr>(e: T, pos: number): T {
    this.starts.set(e, pos);
    e.pos = this.position(pos);
    return e;
  }

  /** UTF-8 byte offset of each UTF-16 index of the input (built on first use). */
  private byteOffsets: Int32Array | null = null;
  /** UTF-16 indexes where each line starts. */
  private lineStarts: number[] = [];

  /** Line and byte column (both 1-based) of a UTF-16 index, as Prometheus's StartPosInput prints them. */
  private position(pos: number): Pos {
    let bytes = this.byteOffsets;
    const input = this.input;
    if (bytes === null) {
      bytes = new Int32Array(input.length + 1);
      this.lineStarts = [0];
      let b = 0;
      for (let i = 0; i < input.length; i++) {
        bytes[i] = b;
        const c = input.charCodeAt(i);
        if (c === 0x0a) this.lineStarts.push(i + 1);
        // A surrogate pair is 4 bytes: 2 on each half; a lone surrogate is U+FFFD's 3.
        const pair = c >= 0xd800 && c <= 0xdbff && (input.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
        const low = c >= 0xdc00 && c <= 0xdfff && i > 0 && (input.charCodeAt(i - 1) & 0xfc00) === 0xd800;
        b += c < 0x80 ? 1 : c < 0x800 ? 2 : pair || low ? 2 : 3;
      }
      bytes[input.length] = b;
      this.byteOffsets = bytes;
    }
    const p = Math.max(0, Math.min(pos, input.length));
    const starts = this.lineStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= p) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: bytes[p] - bytes[starts[lo]] + 1 };
  }

  private startOf(e: object): number {
    return this.starts.get(e) ?? 0;
  }

  /** The first token starting at or after pos. */
  private tokenAfter(pos: number): Tok | undefined {
    let lo = 0;
    let hi = this.toks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.toks[mid].start < pos) lo = mid + 1;
      else hi = mid;
    }
    return this.toks[lo];
  }

  expr(node: SyntaxNode): Expr {
    const items = this.flatten(node);
    const cursor = { i: 0 };
    const e = this.parseChain(items, cursor, 0);
    if (cursor.i !== items.length) this.fail(node.from, "internal error: operands left over");
    return e;
  }

  /** The operands, prefix signs, binary operators and postfixes of an operator chain, in order. */
  private flatten(root: SyntaxNode): Item[] {
    const out: Item[] = [];
    const stack: (SyntaxNode | Item)[] = [root];
    while (stack.length > 0) {
      const top = stack.pop();
      if (top === undefined) break;
      if ("k" in top) {
        out.push(top);
        continue;
      }
      const ks = this.kids(top);
      switch (top.name) {
        case "BinaryExpr":
          stack.push(ks[ks.length - 1], { k: "binop", parts: ks.slice(1, -1) }, ks[0]);
          break;
        case "UnaryExpr":
          stack.push(ks[1], { k: "prefix", op: this.text(ks[0]) === "-" ? "-" : "+", pos: ks[0].from });
          break;
        case "OffsetExpr":
        case "StepInvariantExpr":
        case "MatrixSelector":
        case "SubqueryExpr":
        case "AnchoredExpr":
        case "SmoothedExpr":
          stack.push({ k: "postfix", node: top }, ks[0]);
          break;
        case "NumberDurationLiteral": {
          // Prometheus lexes the sign as a separate unary operator.
          const c = this.input[top.from];
          if (c === "-" || c === "+") {
            const digits = this.tokenAfter(top.from + 1);
            out.push({ k: "prefix", op: c, pos: top.from }, { k: "num", node: top, from: digits ? digits.start : top.from + 1 });
          } else {
            out.push({ k: "num", node: top, from: top.from });
          }
          break;
        }
        default:
          out.push({ k: "atom", node: top });
      }
    }
    return out;
  }

  private parseChain(items: Item[], cur: { i: number }, minPrec: number): Expr {
    let left = this.parseUnary(items, cur);
    for (;;) {
      const it = items[cur.i];
      if (it === undefined || it.k !== "binop") break;
      const op = this.binaryOp(it.parts[0]);
      const prec = PRECEDENCE[op];
      if (prec < minPrec) break;
      cur.i++;
      const right = this.parseChain(items, cur, op === "^" ? prec : prec + 1);
      left = this.binary(left, op, it.parts, right);
    }
    return left;
  }

  private parseUnary(items: Item[], cur: { i: number }): Expr {
    const it = items[cur.i];
    if (it?.k === "prefix") {
      cur.i++;
      // unary_expr has MUL's precedence: only ^ binds tighter.
      const operand = this.parseChain(items, cur, PRECEDENCE["^"]);
      if (operand.type === "NumberLiteral") {
        // Prometheus folds the sign into the literal.
        if (it.op === "-") operand.val = -operand.val;
        return this.at(operand, it.pos);
      }
      const u: UnaryExpr = { type: "UnaryExpr", op: it.op, expr: operand };
      return this.at(u, it.pos);
    }
    return this.parsePrimary(items, cur);
  }

  private parsePrimary(items: Item[], cur: { i: number }): Expr {
    const it = items[cur.i++];
    let e: Expr;
    if (it?.k === "num") e = this.at(this.literal(it.from), it.from);
    else if (it?.k === "atom") e = this.atom(it.node);
    else return this.fail(0, "internal error: operand expected");
    for (let p = items[cur.i]; p?.k === "postfix"; p = items[cur.i]) {
      cur.i++;
      e = this.postfix(e, p.node);
    }
    return e;
  }

  private binaryOp(n: SyntaxNode): BinaryOp {
    const op = Object.hasOwn(BINARY_OPS, n.name) ? BINARY_OPS[n.name] : undefined;
    // "</" and ">/" are in the UI's grammar only; Prometheus lexes "<" then "/".
    if (op === undefined) return this.fail(n.from + 1, "unexpected <op:/>");
    return op;
  }

  private binary(lhs: Expr, op: BinaryOp, parts: SyntaxNode[], rhs: Expr): BinaryExpr {
    let returnBool = false;
    const matching: VectorMatching = { card: "one-to-one", matchingLabels: [], on: false, include: [] };
    for (const m of parts.slice(1)) {
      if (m.name === "BoolModifier") {
        returnBool = true;
      } else if (m.name === "MatchingModifierClause") {
        const ks = this.kids(m);
        matching.on = ks[0].name === "On";
        matching.matchingLabels = this.groupingLabels(ks[1]);
        if (ks[2] !== undefined) {
          matching.card = ks[2].name === "GroupLeft" ? "many-to-one" : "one-to-many";
          if (ks[3] !== undefined) matching.include = this.groupingLabels(ks[3]);
        }
      } else if (m.name === "FillModifier") {
        this.fail(this.startOf(lhs), "binop fill modifiers are experimental and not enabled");
      }
    }
    const b: BinaryExpr = { type: "BinaryExpr", op, lhs, rhs, returnBool, matching };
    this.opPos.set(b, parts[0].from);
    return this.at(b, this.startOf(lhs));
  }

  /** The number or duration token at pos (read from the tokens: the grammar may have seen a stand-in). */
  private literal(pos: number): NumberLiteral {
    const tok = this.tokenAfter(pos);
    if (tok === undefined || tok.start !== pos) return this.fail(pos, "internal error: number expected");
    const text = tok.val;
    if (tok.kind === "DURATION") {
      const d = parseDuration(text);
      if ("error" in d) return this.fail(pos, d.error);
      return { type: "NumberLiteral", val: d.seconds, duration: true };
    }
    const v = goNumber(text);
    if (typeof v === "string") return this.fail(pos, v);
    return { type: "NumberLiteral", val: v };
  }

  private atom(n: SyntaxNode): Expr {
    switch (n.name) {
      case "VectorSelector":
        return this.at(this.vectorSelector(n), n.from);
      case "StringLiteral": {
        const { val, invalidUTF8 } = unquoteLiteral(this.text(n));
        const lit: StringLiteral = invalidUTF8 ? { type: "StringLiteral", val, invalidUTF8 } : { type: "StringLiteral", val };
        return this.at(lit, n.from);
      }
      case "ParenExpr":
        return this.at({ type: "ParenExpr", expr: this.expr(this.kids(n)[0]) }, n.from);
      case "FunctionCall":
        return this.at(this.call(n), n.from);
      case "AggregateExpr":
        return this.at(this.aggregate(n), n.from);
    }
    return this.fail(n.from, `internal error: unexpected ${n.name}`);
  }

  private vectorSelector(n: SyntaxNode): VectorSelector {
    let name: string | null = null;
    const matchers: LabelMatcher[] = [];
    for (const k of this.kids(n)) {
      if (k.name === "Identifier") name = this.text(k);
      else if (k.name === "LabelMatchers") for (const m of this.kids(k)) matchers.push(this.matcher(m));
    }
    if (name !== null) {
      // atan2 is an operator, not a metric_identifier, in Prometheus's grammar.
      if (name.toLowerCase() === "atan2") this.fail(n.from, `unexpected <op:${name}>`);
      matchers.push({ type: MatchType.EQ, name: "__name__", value: name });
    }
    return { type: "VectorSelector", name, matchers, offset: 0, at: null };
  }

  private matcher(n: SyntaxNode): LabelMatcher {
    const ks = this.kids(n);
    let m: LabelMatcher;
    if (n.name === "QuotedLabelName") {
      m = { type: MatchType.EQ, name: "__name__", value: unquote(this.text(n)) };
    } else {
      const name = n.name === "QuotedLabelMatcher" ? unquote(this.text(ks[0])) : this.text(ks[0]);
      const opName = ks[1].firstChild?.name;
      const type = opName === "Neq" ? MatchType.NEQ : opName === "EqlRegex" ? MatchType.RE : opName === "NeqRegex" ? MatchType.NRE : MatchType.EQ;
      m = { type, name, value: unquote(this.text(ks[2])) };
    }
    try {
      this.matchesEmpty.set(m, compileMatcher(m).matchesEmpty);
    } catch (e) {
      if (e instanceof MatcherError) this.fail(n.from, e.message);
      throw e;
    }
    return m;
  }

  private groupingLabels(n: SyntaxNode): string[] {
    const out: string[] = [];
    for (const k of this.kids(n)) {
      if (k.name === "LabelName") {
        out.push(this.text(k));
      } else if (k.name === "QuotedLabelName") {
        const v = unquote(this.text(k));
        if (v === "") this.fail(k.from, `invalid label name for grouping: ${goQuote(v)}`);
        out.push(v);
      }
    }
    return out;
  }

  private call(n: SyntaxNode): Call {
    const [ident, body] = this.kids(n);
    const args = this.kids(body).map((a) => this.expr(a));
    // The whole identifier token: the grammar may have been shown a shorter stand-in name.
    const tok = this.tokenAfter(ident.from);
    const name = tok !== undefined && tok.start === ident.from ? tok.val : this.text(ident);
    const sig = getFunction(name);
    if (sig === undefined) this.fail(n.from, `unknown function with name ${goQuote(name)}`);
    if (sig.experimental && !this.opts.enableExperimentalFunctions) this.fail(n.from, `function ${goQuote(name)} is not enabled`);
    return { type: "Call", func: name, args };
  }

  private aggregate(n: SyntaxNode): AggregateExpr {
    let op: AggregateOp = "sum";
    let grouping: string[] = [];
    let without = false;
    let args: Expr[] = [];
    for (const k of this.kids(n)) {
      if (k.name === "AggregateOp") {
        op = this.text(k).toLowerCase() as AggregateOp;
      } else if (k.name === "AggregateModifier") {
        const [kw, labels] = this.kids(k);
        without = kw.name === "Without";
        grouping = this.groupingLabels(labels);
      } else if (k.name === "FunctionCallBody") {
        args = this.kids(k).map((a) => this.expr(a));
      }
    }
    if (args.length === 0) this.fail(n.from, "no arguments for aggregate expression provided");
    let want = 1;
    let param: Expr | null = null;
    if (PARAM_AGGREGATIONS.has(op)) {
      if ((op === "limitk" || op === "limit_ratio") && !this.opts.enableExperimentalFunctions) {
        this.fail(n.from, `${op}() is experimental and must be enabled with --enable-feature=promql-experimental-functions`);
      }
      want = 2;
      param = args[0];
    }
    if (args.length !== want) this.fail(n.from, `wrong number of arguments for aggregate expression provided, expected ${want}, got ${args.length}`);
    return { type: "AggregateExpr", op, expr: args[want - 1], param, grouping, without };
  }

  private postfix(e: Expr, n: SyntaxNode): Expr {
    const ks = this.kids(n);
    switch (n.name) {
      case "OffsetExpr": {
        const ms = secondsToMs(this.duration(ks[2], false));
        const target = e.type === "VectorSelector" ? e : e.type === "MatrixSelector" ? e.vectorSelector : e.type === "SubqueryExpr" ? e : null;
        if (target === null) this.fail(this.startOf(e), "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery");
        if (target.offset !== 0) this.fail(this.startOf(e), "offset may not be set multiple times");
        target.offset = ms;
        return e;
      }
      case "StepInvariantExpr": {
        const v = ks[2];
        let at: VectorSelector["at"];
        if (v.name === "NumberDurationLiteral") {
          const text = this.text(v);
          const sign = text[0] === "-" ? -1 : 1;
          const from = text[0] === "-" || text[0] === "+" ? (this.tokenAfter(v.from + 1)?.start ?? v.from + 1) : v.from;
          const ts = sign * this.literal(from).val;
          if (!Number.isFinite(ts) || ts >= 2 ** 63 || ts <= -(2 ** 63)) {
            this.fail(this.startOf(e), `timestamp out of bounds for @ modifier: ${formatGoF(ts)}`);
          }
          at = { kind: "time", ms: goRound(ts * 1000) };
        } else {
          at = v.firstChild?.name === "AtEnd" ? { kind: "end" } : { kind: "start" };
        }
        const target = e.type === "VectorSelector" ? e : e.type === "MatrixSelector" ? e.vectorSelector : e.type === "SubqueryExpr" ? e : null;
        if (target === null) this.fail(this.startOf(e), "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery");
        if (target.at !== null) this.fail(this.startOf(e), "@ <timestamp> may not be set multiple times");
        target.at = at;
        return e;
      }
      case "MatrixSelector": {
        const range = secondsToMs(this.duration(ks[1], true));
        const bracket = this.tokenAfter(ks[0].to)?.start ?? ks[0].to;
        if (e.type !== "VectorSelector") return this.fail(bracket, "ranges only allowed for vector selectors");
        if (e.offset !== 0) this.fail(bracket, "no offset modifiers allowed before range");
        if (e.at !== null) this.fail(bracket, "no @ modifiers allowed before range");
        return this.at({ type: "MatrixSelector", vectorSelector: e, range }, this.startOf(e));
      }
      case "SubqueryExpr": {
        const range = secondsToMs(this.duration(ks[1], true));
        const step = ks[2] !== undefined ? secondsToMs(this.duration(ks[2], true)) : 0;
        const s: SubqueryExpr = { type: "SubqueryExpr", expr: e, range, step, offset: 0, at: null };
        return this.at(s, this.startOf(e));
      }
      case "AnchoredExpr":
        return this.fail(this.startOf(e), "anchored modifier is experimental and not enabled");
      case "SmoothedExpr":
        return this.fail(this.startOf(e), "smoothed modifier is experimental and not enabled");
    }
    return this.fail(n.from, `internal error: unexpected ${n.name}`);
  }

  /** The seconds of a duration expression (range, step or offset), folded to a constant. */
  private duration(n: SyntaxNode, positive: boolean): number {
    const v = this.durationValue(n);
    if (!(Math.abs(v) <= MAX_DURATION_SECONDS)) this.fail(n.from, "duration out of range");
    if (positive && v <= 0) this.fail(n.from, "duration must be greater than 0");
    return v;
  }

  private durationValue(n: SyntaxNode): number {
    if (n.name === "NumberDurationLiteralInDurationContext") {
      const v = this.literal(n.from).val;
      if (!(Math.abs(v) <= MAX_DURATION_SECONDS)) this.fail(n.from, "duration out of range");
      return v;
    }
    const ks = this.kids(n);
    const first = ks[0];
    switch (first.name) {
      case "NumberDurationLiteralInDurationContext":
        return this.durationValue(first);
      case "DurationExpr":
      case "OffsetDurationExpr":
        if (ks.length === 1) {
          // A parenthesized duration expression.
          if (!this.opts.experimentalDurationExpr) this.fail(first.from, "experimental duration expression is not enabled");
          return this.durationValue(first);
        }
        return this.durationBinary(ks);
      case "UnaryOp": {
        const v = this.durationValue(ks[1]);
        return this.text(first) === "-" ? -v : v;
      }
      case "DurationMinOf":
      case "DurationMaxOf": {
        if (!this.opts.experimentalDurationExpr) this.fail(first.from, "experimental duration expression is not enabled");
        const a = this.durationValue(ks[1]);
        const b = this.durationValue(ks[2]);
        return first.name === "DurationMinOf" ? Math.min(a, b) : Math.max(a, b);
      }
      case "DurationStep":
      case "DurationRange":
        // They depend on the query's step and range, which the AST has no place for.
        return this.fail(first.from, `${this.text(first)}() in duration expressions is not supported`);
    }
    return this.fail(n.from, `internal error: unexpected ${first.name}`);
  }

  private durationBinary(ks: SyntaxNode[]): number {
    const [l, op, r] = ks;
    if (!this.opts.experimentalDurationExpr) this.fail(l.from, "experimental duration expression is not enabled");
    const a = this.durationValue(l);
    const b = this.durationValue(r);
    switch (op.name) {
      case "Add":
        return a + b;
      case "Sub":
        return a - b;
      case "Mul":
        return a * b;
      case "Div":
        if (b === 0) this.fail(op.from, "division by zero");
        return a / b;
      case "Mod":
        if (b === 0) this.fail(op.from, "modulo by zero");
        return a % b;
      case "Pow":
        return a ** b;
    }
    return this.fail(op.from, `internal error: unexpected ${op.name}`);
  }

  // -------------------------------------------------------------------------------------
  // Type checks (parse.go checkAST), in Prometheus's order so the first error is its first.

  check(e: Expr): ValueType {
    const typ = exprType(e);
    switch (e.type) {
      case "AggregateExpr":
        this.expectType(e.expr, "vector", "aggregation expression");
        if (e.param !== null) this.expectType(e.param, e.op === "count_values" ? "string" : "scalar", "aggregation parameter");
        break;
      case "BinaryExpr":
        this.checkBinary(e);
        break;
      case "Call":
        this.checkCall(e);
        break;
      case "ParenExpr":
        this.check(e.expr);
        break;
      case "UnaryExpr": {
        const t = this.check(e.expr);
        if (t !== "scalar" && t !== "vector") {
          this.fail(this.startOf(e), `unary expression only allowed on expressions of type scalar or instant vector, got ${goQuote(DOCUMENTED_TYPE[t])}`);
        }
        break;
      }
      case "SubqueryExpr": {
        const t = this.check(e.expr);
        if (t !== "vector") this.fail(this.startOf(e), `subquery is only allowed on instant vector, got ${t} instead`);
        break;
      }
      case "MatrixSelector":
        this.check(e.vectorSelector);
        break;
      case "VectorSelector":
        this.checkSelector(e);
        break;
      case "NumberLiteral":
      case "StringLiteral":
        break;
    }
    return typ;
  }

  private expectType(e: Expr, want: ValueType, context: string): void {
    const t = this.check(e);
    if (t !== want) this.fail(this.startOf(e), `expected type ${DOCUMENTED_TYPE[want]} in ${context}, got ${DOCUMENTED_TYPE[t]}`);
  }

  private checkBinary(e: BinaryExpr): void {
    const lt = this.check(e.lhs);
    const rt = this.check(e.rhs);
    const opPos = this.opPos.get(e) ?? this.startOf(e);
    const isComparison = COMPARISONS.has(e.op);
    const isSet = SET_OPS.has(e.op);
    if (e.returnBool && !isComparison) this.fail(opPos, "bool modifier can only be used on comparison operators");
    if (isComparison && !e.returnBool && rt === "scalar" && lt === "scalar") this.fail(opPos, "comparisons between scalars must use BOOL modifier");
    const vm = e.matching;
    if (vm !== null) {
      if (isSet && vm.card === "one-to-one") vm.card = "many-to-many";
      if (vm.on) {
        for (const l of vm.matchingLabels) {
          if (vm.include.includes(l)) this.fail(opPos, `label ${goQuote(l)} must not occur in ON and GROUP clause at once`);
        }
      }
    }
    if (lt !== "scalar" && lt !== "vector") this.fail(this.startOf(e.lhs), "binary expression must contain only scalar and instant vector types");
    if (rt !== "scalar" && rt !== "vector") this.fail(this.startOf(e.rhs), "binary expression must contain only scalar and instant vector types");
    if (vm !== null) {
      if (lt !== "vector" || rt !== "vector") {
        if (vm.matchingLabels.length > 0) this.fail(this.startOf(e), "vector matching only allowed between instant vectors");
        e.matching = null;
      } else if (isSet) {
        if (vm.card === "one-to-many" || vm.card === "many-to-one") this.fail(this.startOf(e), `no grouping allowed for ${goQuote(e.op)} operation`);
        if (vm.card !== "many-to-many") this.fail(this.startOf(e), "set operations must always be many-to-many");
      }
    }
    if ((lt === "scalar" || rt === "scalar") && isSet) this.fail(this.startOf(e), `set operator ${goQuote(e.op)} not allowed in binary scalar expression`);
  }

  private checkCall(e: Call): void {
    const sig = getFunction(e.func);
    if (sig === undefined) return this.fail(this.startOf(e), `unknown function with name ${goQuote(e.func)}`);
    const name = goQuote(e.func);
    const nargs = sig.argTypes.length;
    if (sig.variadic === 0) {
      if (nargs !== e.args.length) this.fail(this.startOf(e), `expected ${nargs} argument(s) in call to ${name}, got ${e.args.length}`);
    } else {
      const na = nargs - 1;
      if (na > e.args.length) this.fail(this.startOf(e), `expected at least ${na} argument(s) in call to ${name}, got ${e.args.length}`);
      else if (sig.variadic > 0 && na + sig.variadic < e.args.length) {
        this.fail(this.startOf(e), `expected at most ${na + sig.variadic} argument(s) in call to ${name}, got ${e.args.length}`);
      }
    }
    if (e.func === "info" && e.args.length > 1) {
      const sel = e.args[1];
      const t = exprType(sel);
      if (t !== "vector") this.fail(this.startOf(e), `expected type ${DOCUMENTED_TYPE.vector} in call to function "info", got ${DOCUMENTED_TYPE[t]}`);
      if (sel.type === "VectorSelector" && sel.name !== null) this.fail(this.startOf(sel), "expected label selectors only, got vector selector instead");
      else if (sel.type === "VectorSelector") this.bypassEmptyCheck.add(sel);
      else this.fail(this.startOf(sel), "expected label selectors only");
    }
    for (let i = 0; i < e.args.length; i++) {
      let j = i;
      if (i >= nargs) {
        if (sig.variadic === 0) break;
        j = nargs - 1;
      }
      const t = this.check(e.args[i]);
      const want = sig.argTypes[j];
      if (t !== want) this.fail(this.startOf(e.args[i]), `expected type ${DOCUMENTED_TYPE[want]} in call to function ${name}, got ${DOCUMENTED_TYPE[t]}`);
    }
  }

  private checkSelector(e: VectorSelector): void {
    if (e.name !== null) {
      // The last matcher is the name written before the braces.
      for (const m of e.matchers.slice(0, -1)) {
        if (m.name === "__name__") this.fail(this.startOf(e), `metric name must not be set twice: ${goQuote(e.name)} or ${goQuote(m.value)}`);
      }
      return;
    }
    if (this.bypassEmptyCheck.has(e)) return;
    // At least one matcher that does not match the empty string, so no typo selects everything.
    if (!e.matchers.some((m) => this.matchesEmpty.get(m) === false)) this.fail(this.startOf(e), "vector selector must contain at least one non-empty matcher");
  }
}

/** fmt's %f of a float64 (only used for out-of-range @ timestamps). */
function formatGoF(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Math.abs(v) < 1e21) return v.toFixed(6);
  return BigInt(v).toString() + ".000000";
}
