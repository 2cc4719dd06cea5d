// The function table the evaluator dispatches on: every PromQL function Prometheus 3 knows
// (functions.go's FunctionCalls, plus the experimental start/end/range/step), except info(),
// which needs the storage and is not implemented.
//
// Calling convention (functions/types.ts): the impl runs once per step with the evaluated
// arguments; scalar-returning functions (time, pi, scalar, start, end, range, step) return
// one sample without labels whose v is the scalar.
//
// keepsMetricName follows Prometheus without delayed name removal: engine.go keeps __name__
// for last_over_time and first_over_time only among the range functions; sort*, label_replace
// and label_join return their input series as they are. Every other function drops it (the
// impls already return labels without __name__; the flag lets the evaluator rely on that).

import type { FunctionDef } from "./types";
import * as r from "./range";
import * as i from "./instant";

const keep = (impl: FunctionDef["impl"]): FunctionDef => ({ impl, keepsMetricName: true });
const drop = (impl: FunctionDef["impl"]): FunctionDef => ({ impl });

export const FUNCTIONS: Record<string, FunctionDef> = {
  abs: drop(i.abs),
  absent: drop(i.absent),
  absent_over_time: drop(r.absentOverTime),
  acos: drop(i.acos),
  acosh: drop(i.acosh),
  asin: drop(i.asin),
  asinh: drop(i.asinh),
  atan: drop(i.atan),
  atanh: drop(i.atanh),
  avg_over_time: drop(r.avgOverTime),
  ceil: drop(i.ceil),
  changes: drop(r.changes),
  clamp: drop(i.clamp),
  clamp_max: drop(i.clampMax),
  clamp_min: drop(i.clampMin),
  cos: drop(i.cos),
  cosh: drop(i.cosh),
  count_over_time: drop(r.countOverTime),
  days_in_month: drop(i.daysInMonth),
  day_of_month: drop(i.dayOfMonth),
  day_of_week: drop(i.dayOfWeek),
  day_of_year: drop(i.dayOfYear),
  deg: drop(i.deg),
  delta: drop(r.delta),
  deriv: drop(r.deriv),
  double_exponential_smoothing: drop(r.doubleExponentialSmoothing),
  end: drop(i.end),
  exp: drop(i.exp),
  first_over_time: keep(r.firstOverTime),
  floor: drop(i.floor),
  histogram_avg: drop(i.nativeHistogramOnly),
  histogram_count: drop(i.nativeHistogramOnly),
  histogram_fraction: drop(i.histogramFraction),
  histogram_quantile: drop(i.histogramQuantile),
  histogram_quantiles: drop(i.histogramQuantiles),
  histogram_stddev: drop(i.nativeHistogramOnly),
  histogram_stdvar: drop(i.nativeHistogramOnly),
  histogram_sum: drop(i.nativeHistogramOnly),
  hour: drop(i.hour),
  idelta: drop(r.idelta),
  increase: drop(r.increase),
  irate: drop(r.irate),
  label_join: keep(i.labelJoin),
  label_replace: keep(i.labelReplace),
  last_over_time: keep(r.lastOverTime),
  ln: drop(i.ln),
  log10: drop(i.log10),
  log2: drop(i.log2),
  mad_over_time: drop(r.madOverTime),
  max_over_time: drop(r.maxOverTime),
  min_over_time: drop(r.minOverTime),
  minute: drop(i.minute),
  month: drop(i.month),
  pi: drop(i.pi),
  predict_linear: drop(r.predictLinear),
  present_over_time: drop(r.presentOverTime),
  quantile_over_time: drop(r.quantileOverTime),
  rad: drop(i.rad),
  range: drop(i.range),
  rate: drop(r.rate),
  resets: drop(r.resets),
  round: drop(i.round),
  scalar: drop(i.scalar),
  sgn: drop(i.sgn),
  sin: drop(i.sin),
  sinh: drop(i.sinh),
  sort: keep(i.sort),
  sort_by_label: keep(i.sortByLabel),
  sort_by_label_desc: keep(i.sortByLabelDesc),
  sort_desc: keep(i.sortDesc),
  sqrt: drop(i.sqrt),
  start: drop(i.start),
  stddev_over_time: drop(r.stddevOverTime),
  stdvar_over_time: drop(r.stdvarOverTime),
  step: drop(i.step),
  sum_over_time: drop(r.sumOverTime),
  tan: drop(i.tan),
  tanh: drop(i.tanh),
  time: drop(i.time),
  timestamp: drop(i.timestamp),
  ts_of_first_over_time: drop(r.tsOfFirstOverTime),
  ts_of_last_over_time: drop(r.tsOfLastOverTime),
  ts_of_max_over_time: drop(r.tsOfMaxOverTime),
  ts_of_min_over_time: drop(r.tsOfMinOverTime),
  vector: drop(i.vector),
  year: drop(i.year),
};
