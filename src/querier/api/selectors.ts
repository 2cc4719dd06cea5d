// PromQL text in API parameters: `query` expressions and `match[]` series selectors,
// parsed with the engine's parser and checked as Prometheus's API checks them.

import { compileMatcher, MatcherError } from "../../model/matchers";
import type { LabelMatcher } from "../../proto/types";
import { PromQLParseError, type Expr } from "../promql/ast";
import { parseExpr } from "../promql/parse";
import { ApiError } from "./respond";
import { invalidParam, type Form } from "./params";

/** The `query` parameter parsed; a parse error is `invalid parameter "query": <parser message>`. */
export function parseQueryParam(form: Form): Expr {
  try {
    return parseExpr(form.value("query"));
  } catch (e) {
    if (e instanceof PromQLParseError) throw invalidParam("query", e.message);
    throw e;
  }
}

/** One series selector (parser.ParseMetricSelector): a bare vector selector, no offset or @. */
export function parseMetricSelector(input: string): LabelMatcher[] {
  let e = parseExpr(input);
  while (e.type === "ParenExpr") e = e.expr;
  if (e.type !== "VectorSelector") {
    throw new PromQLParseError(`1:1: parse error: expected a series selector such as up{job="x"}, got ${describe(e)}`);
  }
  if (e.offset !== 0 || e.at !== null) throw new PromQLParseError(`1:1: parse error: a series selector takes no offset or @ modifier`);
  // A regexp JavaScript cannot compile is a parse error here, as Prometheus's parser reports it.
  for (const m of e.matchers) compileMatcher(m);
  return e.matchers;
}

function describe(e: Expr): string {
  switch (e.type) {
    case "MatrixSelector":
      return "a range selector";
    case "NumberLiteral":
      return "a number";
    case "StringLiteral":
      return "a string";
    case "Call":
      return `a call to ${e.func}()`;
    default:
      return "an expression";
  }
}

/**
 * The match[] parameters (Prometheus's parseMatchersParam): each parsed, and each
 * set must hold a matcher that does not match the empty string, so no selector
 * means "every series". /series reports errors as `invalid parameter "match[]": ...`
 * (`wrapAs`), /labels and /label/<name>/values bare.
 */
export function parseMatchersParam(values: string[], wrapAs: string | null): LabelMatcher[][] {
  const fail = (msg: string) => (wrapAs === null ? new ApiError("bad_data", msg) : invalidParam(wrapAs, msg));
  try {
    const sets = values.map(parseMetricSelector);
    for (const set of sets) {
      if (!set.some((m) => !compileMatcher(m).matchesEmpty)) throw fail("match[] must contain at least one non-empty matcher");
    }
    return sets;
  } catch (e) {
    if (e instanceof PromQLParseError || e instanceof MatcherError) throw fail(e.message);
    throw e;
  }
}

/** Every vector selector's matchers in an expression (parser.ExtractSelectors). */
export function extractSelectors(expr: Expr): LabelMatcher[][] {
  const out: LabelMatcher[][] = [];
  const walk = (e: Expr): void => {
    switch (e.type) {
      case "VectorSelector":
        out.push(e.matchers);
        break;
      case "MatrixSelector":
        out.push(e.vectorSelector.matchers);
        break;
      case "SubqueryExpr":
      case "UnaryExpr":
      case "ParenExpr":
        walk(e.expr);
        break;
      case "AggregateExpr":
        if (e.param) walk(e.param);
        walk(e.expr);
        break;
      case "BinaryExpr":
        walk(e.lhs);
        walk(e.rhs);
        break;
      case "Call":
        for (const a of e.args) walk(a);
        break;
      case "NumberLiteral":
      case "StringLiteral":
        break;
    }
  };
  walk(expr);
  return out;
}
