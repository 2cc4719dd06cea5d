// The PromQL syntax tree, as Prometheus's promql/parser/ast.go has it. Built from the
// @prometheus-io/lezer-promql parse tree by parse.ts; evaluated by engine.ts.
// Times and durations are milliseconds.

import type { LabelMatcher } from "../../proto/types";

export type ValueType = "scalar" | "vector" | "matrix" | "string";

/**
 * Where a node starts in the query, as Prometheus's PositionRange.StartPosInput prints it:
 * 1-based line, 1-based column counted in bytes (UTF-8). Set by parse.ts; absent on nodes
 * built elsewhere. Annotations end with " (line:column)" of the node they are about.
 */
export interface Pos {
  line: number;
  column: number;
}

export type Expr =
  | NumberLiteral
  | StringLiteral
  | VectorSelector
  | MatrixSelector
  | SubqueryExpr
  | AggregateExpr
  | BinaryExpr
  | UnaryExpr
  | Call
  | ParenExpr;

export interface NumberLiteral {
  type: "NumberLiteral";
  pos?: Pos;
  val: number;
  /** Written as a duration (`5m` = 300): only changes how formatExpr prints it. Absent otherwise. */
  duration?: boolean;
}

export interface StringLiteral {
  type: "StringLiteral";
  pos?: Pos;
  val: string;
  /**
   * Set when the literal's bytes are not valid UTF-8 (e.g. "\xff"): Go keeps such bytes raw,
   * `val` holds U+FFFD for them. label_replace/label_join refuse such a label name as Prometheus does.
   */
  invalidUTF8?: boolean;
}

/** The `@` modifier: a fixed time, or start()/end() of the query. */
export type AtModifier = { kind: "time"; ms: number } | { kind: "start" } | { kind: "end" } | null;

export interface VectorSelector {
  type: "VectorSelector";
  pos?: Pos;
  /** The metric name if written before the braces, else null (it is also among matchers). */
  name: string | null;
  /** All matchers, including __name__="name" when a name was written. */
  matchers: LabelMatcher[];
  /** `offset` in ms (negative offsets allowed). */
  offset: number;
  at: AtModifier;
}

export interface MatrixSelector {
  type: "MatrixSelector";
  pos?: Pos;
  vectorSelector: VectorSelector;
  /** Range in ms. */
  range: number;
}

export interface SubqueryExpr {
  type: "SubqueryExpr";
  pos?: Pos;
  expr: Expr;
  range: number;
  /** Resolution in ms; 0 means the default evaluation interval (the engine's, 1m by default). */
  step: number;
  offset: number;
  at: AtModifier;
}

export type AggregateOp =
  | "sum"
  | "avg"
  | "min"
  | "max"
  | "count"
  | "group"
  | "stddev"
  | "stdvar"
  | "topk"
  | "bottomk"
  | "quantile"
  | "count_values"
  | "limitk"
  | "limit_ratio";

export interface AggregateExpr {
  type: "AggregateExpr";
  pos?: Pos;
  op: AggregateOp;
  expr: Expr;
  /** The parameter of topk, bottomk, quantile, count_values, limitk, limit_ratio. */
  param: Expr | null;
  grouping: string[];
  /** `without (...)` rather than `by (...)`. */
  without: boolean;
}

export type BinaryOp =
  | "+"
  | "-"
  | "*"
  | "/"
  | "%"
  | "^"
  | "atan2"
  | "=="
  | "!="
  | ">"
  | "<"
  | ">="
  | "<="
  | "and"
  | "or"
  | "unless";

export interface VectorMatching {
  card: "one-to-one" | "many-to-one" | "one-to-many" | "many-to-many";
  /** Labels of on(...) or ignoring(...). */
  matchingLabels: string[];
  /** on(...) when true, ignoring(...) when false. */
  on: boolean;
  /** Labels of group_left(...)/group_right(...). */
  include: string[];
}

export interface BinaryExpr {
  type: "BinaryExpr";
  pos?: Pos;
  op: BinaryOp;
  lhs: Expr;
  rhs: Expr;
  /** Comparison with `bool`. */
  returnBool: boolean;
  /** Set when both sides are vectors (defaults to one-to-one, or many-to-many for set operators). */
  matching: VectorMatching | null;
}

export interface UnaryExpr {
  type: "UnaryExpr";
  pos?: Pos;
  op: "-" | "+";
  expr: Expr;
}

export interface Call {
  type: "Call";
  pos?: Pos;
  func: string;
  args: Expr[];
}

export interface ParenExpr {
  type: "ParenExpr";
  pos?: Pos;
  expr: Expr;
}

/**
 * Prometheus ends an annotation with the position of the node it is about, " (line:column)"
 * (annotations.go's annoErr.Error with PositionRange.StartPosInput). parse.ts sets `pos`.
 */
export function posSuffix(e: Expr | null | undefined): string {
  const p = e?.pos;
  return p === undefined ? "" : ` (${p.line}:${p.column})`;
}

/** The value type an expression evaluates to (Prometheus's Expr.Type()). */
export function exprType(e: Expr): ValueType {
  switch (e.type) {
    case "NumberLiteral":
      return "scalar";
    case "StringLiteral":
      return "string";
    case "VectorSelector":
    case "AggregateExpr":
      return "vector";
    case "MatrixSelector":
    case "SubqueryExpr":
      return "matrix";
    case "BinaryExpr":
      return exprType(e.lhs) === "scalar" && exprType(e.rhs) === "scalar" ? "scalar" : "vector";
    case "UnaryExpr":
    case "ParenExpr":
      return exprType(e.expr);
    case "Call":
      return FUNCTION_RETURN_TYPES[e.func] ?? "vector";
  }
}

/** Filled by signatures.ts (the function table the parser checks calls against). */
export const FUNCTION_RETURN_TYPES: Record<string, ValueType> = {};

/** A parse or type error, with Prometheus's message and position ("1:5: parse error: ..."). */
export class PromQLParseError extends Error {
  override name = "PromQLParseError";
  constructor(
    message: string,
    readonly position: { line: number; column: number } | null = null,
  ) {
    super(message);
  }
}
