// The PromQL function table of Prometheus 3 (promql/parser/functions.go): argument types,
// how many optional trailing arguments a function takes, and what it returns. The parser
// checks calls against it; the return types feed exprType() in ast.ts.

import { FUNCTION_RETURN_TYPES, type ValueType } from "./ast";

export interface FunctionSignature {
  name: string;
  argTypes: ValueType[];
  /**
   * 0: exactly argTypes.length arguments. -1: the last argument type repeats without
   * limit. n > 0: up to n arguments beyond argTypes.length - 1 (so the last one, and
   * further ones of its type, are optional), as Prometheus's Function.Variadic.
   */
  variadic: number;
  returnType: ValueType;
  /** Behind Prometheus's --enable-feature=promql-experimental-functions. */
  experimental: boolean;
}

const V: ValueType = "vector";
const M: ValueType = "matrix";
const S: ValueType = "scalar";
const STR: ValueType = "string";

function fn(name: string, argTypes: ValueType[], returnType: ValueType, opts: { variadic?: number; experimental?: boolean } = {}): FunctionSignature {
  return { name, argTypes, variadic: opts.variadic ?? 0, returnType, experimental: opts.experimental ?? false };
}

const exp = { experimental: true };

const TABLE: FunctionSignature[] = [
  fn("abs", [V], V),
  fn("absent", [V], V),
  fn("absent_over_time", [M], V),
  fn("acos", [V], V),
  fn("acosh", [V], V),
  fn("asin", [V], V),
  fn("asinh", [V], V),
  fn("atan", [V], V),
  fn("atanh", [V], V),
  fn("avg_over_time", [M], V),
  fn("ceil", [V], V),
  fn("changes", [M], V),
  fn("clamp", [V, S, S], V),
  fn("clamp_max", [V, S], V),
  fn("clamp_min", [V, S], V),
  fn("cos", [V], V),
  fn("cosh", [V], V),
  fn("count_over_time", [M], V),
  fn("days_in_month", [V], V, { variadic: 1 }),
  fn("day_of_month", [V], V, { variadic: 1 }),
  fn("day_of_week", [V], V, { variadic: 1 }),
  fn("day_of_year", [V], V, { variadic: 1 }),
  fn("deg", [V], V),
  fn("delta", [M], V),
  fn("deriv", [M], V),
  fn("double_exponential_smoothing", [M, S, S], V, exp),
  fn("end", [], S, exp),
  fn("exp", [V], V),
  // Stable since Prometheus 3.14.
  fn("first_over_time", [M], V),
  fn("floor", [V], V),
  fn("histogram_avg", [V], V),
  fn("histogram_count", [V], V),
  fn("histogram_fraction", [S, S, V], V),
  fn("histogram_quantile", [S, V], V),
  fn("histogram_quantiles", [V, STR, S, S], V, { variadic: 9, experimental: true }),
  fn("histogram_stddev", [V], V),
  fn("histogram_stdvar", [V], V),
  fn("histogram_sum", [V], V),
  fn("hour", [V], V, { variadic: 1 }),
  fn("idelta", [M], V),
  fn("increase", [M], V),
  fn("info", [V, V], V, { variadic: 1, experimental: true }),
  fn("integral", [M, S], V, { variadic: 1, experimental: true }),
  fn("irate", [M], V),
  fn("label_join", [V, STR, STR, STR], V, { variadic: -1 }),
  fn("label_replace", [V, STR, STR, STR, STR], V),
  fn("last_over_time", [M], V),
  fn("ln", [V], V),
  fn("log10", [V], V),
  fn("log2", [V], V),
  fn("mad_over_time", [M], V, exp),
  fn("max_of", [S, S], S, exp),
  fn("max_over_time", [M], V),
  fn("min_of", [S, S], S, exp),
  fn("min_over_time", [M], V),
  fn("minute", [V], V, { variadic: 1 }),
  fn("month", [V], V, { variadic: 1 }),
  fn("pi", [], S),
  fn("predict_linear", [M, S], V),
  fn("present_over_time", [M], V),
  fn("quantile_over_time", [S, M], V),
  fn("rad", [V], V),
  fn("range", [], S, exp),
  fn("rate", [M], V),
  fn("resets", [M], V),
  fn("round", [V, S], V, { variadic: 1 }),
  fn("scalar", [V], S),
  fn("sgn", [V], V),
  fn("sin", [V], V),
  fn("sinh", [V], V),
  fn("sort", [V], V),
  fn("sort_by_label", [V, STR], V, { variadic: -1, experimental: true }),
  fn("sort_by_label_desc", [V, STR], V, { variadic: -1, experimental: true }),
  fn("sort_desc", [V], V),
  fn("sqrt", [V], V),
  fn("start", [], S, exp),
  fn("start_timestamp", [V], V, exp),
  fn("stddev_over_time", [M], V),
  fn("stdvar_over_time", [M], V),
  fn("step", [], S, exp),
  fn("sum_over_time", [M], V),
  fn("tan", [V], V),
  fn("tanh", [V], V),
  fn("time", [], S),
  fn("timestamp", [V], V),
  fn("ts_of_first_over_time", [M], V, exp),
  fn("ts_of_last_over_time", [M], V, exp),
  fn("ts_of_max_over_time", [M], V, exp),
  fn("ts_of_min_over_time", [M], V, exp),
  fn("vector", [S], V),
  fn("year", [V], V, { variadic: 1 }),
];

/** Every function by name (a Map, so names like "constructor" are not found on a prototype). */
export const FUNCTIONS: ReadonlyMap<string, FunctionSignature> = new Map(TABLE.map((f) => [f.name, f]));

export function getFunction(name: string): FunctionSignature | undefined {
  return FUNCTIONS.get(name);
}

for (const f of TABLE) FUNCTION_RETURN_TYPES[f.name] = f.returnType;
