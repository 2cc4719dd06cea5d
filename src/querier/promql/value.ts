// Values the engine computes, as Prometheus's promql/value.go. Labels are flat sorted
// arrays (src/model/labels.ts). Times are ms; values float64 (native histograms are not
// supported yet).

import type { FlatLabels } from "../../model/labels";

/** One element of an instant vector. `t` is the evaluation time (or, inside functions like timestamp(), the sample's time). */
export interface Sample {
  labels: FlatLabels;
  t: number;
  v: number;
  /** Prometheus 3 delays dropping __name__ until the end of evaluation in some cases; see name_label_dropping.test. */
  dropName?: boolean;
}

export type Vector = Sample[];

/** One series of a range vector (matrix): parallel arrays of timestamps and values, ascending. */
export interface Series {
  labels: FlatLabels;
  timestamps: Float64Array;
  values: Float64Array;
  dropName?: boolean;
}

export type Matrix = Series[];

export type Value =
  | { type: "scalar"; t: number; v: number }
  | { type: "string"; t: number; v: string }
  | { type: "vector"; vector: Vector }
  | { type: "matrix"; matrix: Matrix };

/** Warnings and infos returned with a result, as Prometheus's annotations. */
export class Annotations {
  readonly warnings = new Set<string>();
  readonly infos = new Set<string>();
  warn(msg: string): void {
    this.warnings.add(msg);
  }
  info(msg: string): void {
    this.infos.add(msg);
  }
  merge(o: Annotations): void {
    for (const w of o.warnings) this.warnings.add(w);
    for (const i of o.infos) this.infos.add(i);
  }
}

/** Where the engine reads data: select() over ingesters and R2 in production, memory in tests. */
export interface Queryable {
  /** Series matching all matchers with their samples in [mint, maxt] (inclusive), sorted by labels; samples ascending by time. */
  select(matchers: import("../../proto/types").LabelMatcher[], mint: number, maxt: number): Promise<Series[]>;
}

/** Thrown for execution errors (HTTP 422 "execution"), e.g. too many samples, vector cannot contain metrics with the same labelset. */
export class PromQLExecError extends Error {
  override name = "PromQLExecError";
}

/** Thrown when the query exceeds its time limit (HTTP 503 "timeout"). */
export class PromQLTimeoutError extends Error {
  override name = "PromQLTimeoutError";
}
