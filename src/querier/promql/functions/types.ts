// The contract between the evaluator (engine.ts) and the function implementations
// (functions/*.ts), after Prometheus's FunctionCall in promql/functions.go:
//   func(vals []parser.Value, args parser.Expressions, enh *EvalNodeHelper) Vector
// The evaluator calls a function once per evaluation step.

import type { Expr } from "../ast";
import type { Annotations, Sample, Vector } from "../value";
import type { FlatLabels } from "../../../model/labels";

/** The points of one series inside the current step's window of a range-vector argument. */
export interface WindowSeries {
  labels: FlatLabels;
  /** Timestamps and values of the points in the window, ascending (views; do not keep). */
  timestamps: Float64Array;
  values: Float64Array;
  /**
   * Optional fast path, filled by engine.ts: the series' whole arrays and the window's
   * bounds in them, [lo, hi). Reading these avoids creating two typed-array views per
   * series per step (`timestamps`/`values` are made lazily from them).
   */
  readonly srcTimestamps?: Float64Array;
  readonly srcValues?: Float64Array;
  readonly lo?: number;
  readonly hi?: number;
  /**
   * The input series' pending __name__ drop (a subquery over a name-dropping expression).
   * Functions that keep the name (last_over_time, first_over_time) carry it into their
   * output Sample.dropName, as Prometheus's engine.go does.
   */
  readonly dropName?: boolean;
}

/**
 * An evaluated argument: an instant vector (Vector), a scalar (number), a string, or,
 * for a range-vector argument, the windows of the input series at this step. The engine
 * calls range functions one series at a time, as Prometheus does (the array then holds one
 * window; steps without points in the window are not called), except absent_over_time,
 * which gets every series with points at each step.
 */
export type FunctionArg = Vector | number | string | WindowSeries[];

export interface FunctionContext {
  /** The evaluation time of this step (ms). */
  ts: number;
  /**
   * For a function whose range-vector argument is a matrix selector or subquery:
   * the window's bounds in ms, (rangeStart, rangeEnd], after offset and @ were applied.
   * rate/increase/delta extrapolate against these.
   */
  rangeStart: number;
  rangeEnd: number;
  annotations: Annotations;
  /** The expressions as written (for messages, absent()'s labels, and which argument was a selector). */
  args: Expr[];
  /**
   * The query's own start, end and step in ms, for the experimental scalar functions start(),
   * end(), range() and step(). For an instant query start = end = the evaluation time and
   * step = 0. When absent, start()/end() fall back to ts and range()/step() to 0.
   */
  queryStart?: number;
  queryEnd?: number;
  queryStep?: number;
  /**
   * Set when the range argument is a matrix selector with Prometheus 3's experimental
   * `anchored` / `smoothed` modifier (rate, increase, delta; anchored also resets, changes).
   * The window must then also hold the last point at or before rangeStart and, for smoothed,
   * the first point after rangeEnd, as Prometheus's engine provides them; the functions then
   * pick or interpolate boundary values instead of extrapolating.
   */
  anchored?: boolean;
  smoothed?: boolean;
}

export type FunctionImpl = (vals: FunctionArg[], ctx: FunctionContext) => Sample[];

export interface FunctionDef {
  impl: FunctionImpl;
  /** Whether the result keeps __name__ (false for most functions: Prometheus drops it). */
  keepsMetricName?: boolean;
}
