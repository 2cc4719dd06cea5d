// The shapes log data takes between the parts of the system, declared once.
// Entries are columnar (typed arrays of timestamps, arrays of lines), never an
// object per entry. Timestamps: src/model/logtime.ts.

import type { FlatLabels } from "./labels";

/** One stream's entries as a query sees them: sorted by (time, line) ascending, without repeats. */
export interface LogStreamData {
  /** Loki's canonical label string: {a="b", c="d"}, names sorted, values Go-quoted. */
  labels: string;
  /** The same labels as [name, value, ...] sorted by name. */
  flat: FlatLabels;
  tsMs: Float64Array;
  tsNs: Uint32Array;
  lines: string[];
  /** Structured metadata per entry ([name, value, ...]); null for entries without, or for the whole stream when none has any. */
  metadata: (FlatLabels | null)[] | null;
}

export type Direction = "forward" | "backward";

/** What the querier asks of the log store (ingester shards, then R2). Range is [start, end) as Loki's. */
export interface LogSelectParams {
  /** Stream matchers of the selector ({app="x", env=~"p.*"}). */
  matchers: import("../proto/types").LabelMatcher[];
  startMs: number;
  startNs: number;
  endMs: number;
  endNs: number;
}
