// The LogQL syntax tree, shaped after Loki's pkg/logql/syntax/ast.go. Built from the
// @grafana/lezer-logql parse tree by parse.ts; run by pipeline/*.ts and engine.ts.
// Durations are milliseconds.

import type { LabelMatcher } from "../../proto/types";

/** Loki's ParseError: "parse error at line L, col C: msg", or "parse error : msg" without a position. */
export class LogQLParseError extends Error {
  override name = "LogQLParseError";
  constructor(
    readonly msg: string,
    readonly line: number,
    readonly col: number,
  ) {
    super(line === 0 && col === 0 ? `parse error : ${msg}` : `parse error at line ${line}, col ${col}: ${msg}`);
  }
}

export type LogQLExpr = LogExpr | SampleExpr;

// ---------------------------------------------------------------- log queries

export interface LogExpr {
  kind: "log";
  matchers: LabelMatcher[];
  stages: Stage[];
}

export type Stage =
  | LineFilterStage
  | ParserStage
  | LabelFilterStage
  | LineFormatStage
  | LabelFormatStage
  | DropKeepStage
  | DecolorizeStage;

export type LineFilterOp = "|=" | "!=" | "|~" | "!~" | "|>" | "!>";

/** One line filter; `or` alternatives share the operator (Loki: `|= "a" or "b"`). */
export interface LineFilter {
  op: LineFilterOp;
  values: string[];
}

/** A run of consecutive line filters, all of which must pass. */
export interface LineFilterStage {
  kind: "line_filter";
  filters: LineFilter[];
}

export interface ExtractionParam {
  /** The label to set. */
  name: string;
  /** json: the JSON path expression (`a.b[0]`); logfmt: the key. Defaults to the name. */
  expr: string;
}

export type ParserStage =
  | { kind: "json"; params: ExtractionParam[] }
  | { kind: "logfmt"; params: ExtractionParam[]; strict: boolean; keepEmpty: boolean }
  | { kind: "regexp"; pattern: string }
  | { kind: "pattern"; pattern: string }
  | { kind: "unpack" };

export type CmpOp = "==" | "!=" | ">" | ">=" | "<" | "<=";

export type LabelFilterExpr =
  | { kind: "matcher"; matcher: LabelMatcher }
  | { kind: "number"; name: string; op: CmpOp; value: number }
  | { kind: "duration"; name: string; op: CmpOp; value: number /* seconds */ }
  | { kind: "bytes"; name: string; op: CmpOp; value: number }
  | { kind: "and"; left: LabelFilterExpr; right: LabelFilterExpr }
  | { kind: "or"; left: LabelFilterExpr; right: LabelFilterExpr };

export interface LabelFilterStage {
  kind: "label_filter";
  filter: LabelFilterExpr;
}

export interface LineFormatStage {
  kind: "line_format";
  template: string;
}

/** `dst=src` renames, `dst="{{...}}"` templates. */
export interface LabelFormatItem {
  name: string;
  rename: string | null;
  template: string | null;
}

export interface LabelFormatStage {
  kind: "label_format";
  items: LabelFormatItem[];
}

/** `drop a, b="x"` / `keep a, b="x"`: a bare name, or a matcher on the label's value. */
export interface DropKeepStage {
  kind: "drop" | "keep";
  items: { name: string; matcher: LabelMatcher | null }[];
}

export interface DecolorizeStage {
  kind: "decolorize";
}

// ---------------------------------------------------------------- metric queries

export type SampleExpr = RangeAggregation | VectorAggregation | BinaryExpr | LiteralExpr | VectorExpr | LabelReplaceExpr;

export type RangeOp =
  | "count_over_time"
  | "rate"
  | "rate_counter"
  | "bytes_over_time"
  | "bytes_rate"
  | "avg_over_time"
  | "sum_over_time"
  | "min_over_time"
  | "max_over_time"
  | "stddev_over_time"
  | "stdvar_over_time"
  | "quantile_over_time"
  | "first_over_time"
  | "last_over_time"
  | "absent_over_time";

export interface Unwrap {
  label: string;
  /** "" (a plain number), "bytes", "duration" / "duration_seconds" (seconds). */
  conv: "" | "bytes" | "duration" | "duration_seconds";
  /** Label filters written after `| unwrap x` (`| unwrap x | __error__=""`). */
  postFilters: LabelFilterExpr[];
}

export interface LogRange {
  selector: LogExpr;
  rangeMs: number;
  offsetMs: number;
  unwrap: Unwrap | null;
}

export interface Grouping {
  without: boolean;
  labels: string[];
}

export interface RangeAggregation {
  kind: "range_agg";
  op: RangeOp;
  param: number | null;
  range: LogRange;
  grouping: Grouping | null;
}

export type VectorOp = "sum" | "avg" | "min" | "max" | "count" | "stddev" | "stdvar" | "topk" | "bottomk" | "sort" | "sort_desc";

export interface VectorAggregation {
  kind: "vector_agg";
  op: VectorOp;
  param: number | null;
  expr: SampleExpr;
  grouping: Grouping | null;
}

export type BinaryOp = "+" | "-" | "*" | "/" | "%" | "^" | "==" | "!=" | ">" | ">=" | "<" | "<=" | "and" | "or" | "unless";

export interface VectorMatching {
  on: boolean;
  labels: string[];
  card: "one-to-one" | "many-to-one" | "one-to-many";
  include: string[];
}

export interface BinaryExpr {
  kind: "binary";
  op: BinaryOp;
  lhs: SampleExpr;
  rhs: SampleExpr;
  returnBool: boolean;
  matching: VectorMatching | null;
}

export interface LiteralExpr {
  kind: "literal";
  value: number;
}

export interface VectorExpr {
  kind: "vector";
  value: number;
}

export interface LabelReplaceExpr {
  kind: "label_replace";
  expr: SampleExpr;
  dst: string;
  replacement: string;
  src: string;
  regex: string;
}

export function isLogExpr(e: LogQLExpr): e is LogExpr {
  return e.kind === "log";
}

export const COMPARISON_OPS: ReadonlySet<string> = new Set(["==", "!=", ">", ">=", "<", "<="]);
export const SET_OPS: ReadonlySet<string> = new Set(["and", "or", "unless"]);
