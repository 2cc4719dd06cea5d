// The `data` object of Loki's query responses (pkg/loghttp/query.go), JSON-ready:
// streams with [ns-string, line] values, or matrix/vector/scalar with [seconds, "value"].

export interface EntryCategories {
  structuredMetadata?: Record<string, string>;
  parsed?: Record<string, string>;
}

export type StreamValue = [string, string] | [string, string, EntryCategories];

export interface LokiStream {
  stream: Record<string, string>;
  values: StreamValue[];
}

export interface LokiMatrixSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

export interface LokiVectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

export type LokiQueryData =
  | { resultType: "streams"; result: LokiStream[] }
  | { resultType: "matrix"; result: LokiMatrixSeries[] }
  | { resultType: "vector"; result: LokiVectorSample[] }
  | { resultType: "scalar"; result: [number, string] };

/** A query that parsed but cannot be answered as asked (limits, pipeline errors). Loki answers 400. */
export class LogQLEvalError extends Error {
  override name = "LogQLEvalError";
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}
