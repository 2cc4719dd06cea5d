// Wire types of the Prometheus remote write / remote read protocols, declared once.
// Decoders turn the protobuf bytes into these columnar shapes directly: one
// Float64Array for all timestamps and one for all values of a request, so that
// decoding allocates per series, never per sample.

/** prometheus.MetricMetadata.MetricType (remote write 1.0) and io.prometheus.write.v2.Metadata.MetricType share numbering. */
export const enum MetricType {
  UNKNOWN = 0,
  COUNTER = 1,
  GAUGE = 2,
  HISTOGRAM = 3,
  GAUGEHISTOGRAM = 4,
  SUMMARY = 5,
  INFO = 6,
  STATESET = 7,
}

export interface MetricMetadata {
  type: MetricType;
  /** Metric family name (remote write 1.0), or the series' __name__ for 2.0. */
  metricFamilyName: string;
  help: string;
  unit: string;
}

export interface DecodedSeries {
  /** Label names and values as sent, flattened: [name0, value0, name1, value1, ...]. */
  labels: string[];
  /** Index of this series' first sample in DecodedWrite.timestamps/values. */
  sampleStart: number;
  sampleCount: number;
  /** Native histograms and exemplars are counted, not stored (refused with a 4xx). */
  histogramCount: number;
  exemplarCount: number;
  /** Remote write 2.0 created timestamp in ms; 0 when absent. */
  createdTimestamp: number;
}

export interface DecodedWrite {
  series: DecodedSeries[];
  /** Milliseconds since the epoch (int64 on the wire; exact in a double up to 2^53). */
  timestamps: Float64Array;
  values: Float64Array;
  /** Samples decoded; timestamps/values may be longer (reused capacity). */
  sampleCount: number;
  metadata: MetricMetadata[];
  histogramCount: number;
  exemplarCount: number;
}

/** prometheus.LabelMatcher.Type */
export const enum MatchType {
  EQ = 0,
  NEQ = 1,
  RE = 2,
  NRE = 3,
}

export interface LabelMatcher {
  type: MatchType;
  name: string;
  value: string;
}

/** prometheus.Query (remote read). */
export interface ReadQuery {
  startMs: number;
  endMs: number;
  matchers: LabelMatcher[];
}

/** prometheus.ReadRequest.ResponseType */
export const enum ReadResponseType {
  SAMPLES = 0,
  STREAMED_XOR_CHUNKS = 1,
}

export interface ReadRequest {
  queries: ReadQuery[];
  acceptedResponseTypes: ReadResponseType[];
}

/** One series of a remote read answer: flat labels (sorted) and its samples. */
export interface SeriesSamples {
  labels: string[];
  timestamps: Float64Array;
  values: Float64Array;
}

/** Thrown by every decoder on malformed input; the HTTP edge answers 400 with the message. */
export class ProtoError extends Error {
  override name = "ProtoError";
}
