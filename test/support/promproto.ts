// The independent client side of our protocols, for Node-side tests (reference
// cross-checks, e2e) and the benchmark: protobufjs with the .proto files in
// ./proto (subsets of Prometheus's prompb). Nothing here uses src/proto, so a bug
// there cannot hide itself. Node only: protobufjs compiles code from strings,
// which workerd forbids (in-runtime tests use src/proto's own encoders).
//
// Samples are [timestampMs, value] pairs, or, where NaN payloads must survive bit
// for bit (the stale marker 0x7ff0000000000002), columns of typed arrays: V8
// quiets signalling NaNs stored in a JS array of doubles, so a stale marker in a
// [t, v] tuple arrives as 0x7ff8000000000002.

import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const dir = fileURLToPath(new URL("./proto/", import.meta.url));

/** The reference schemas: prometheus.* (remote.proto, types.proto) and io.prometheus.write.v2.* (write_v2.proto). */
export const root: protobuf.Root = protobuf.loadSync([dir + "remote.proto", dir + "write_v2.proto"]);
export const WriteRequest = root.lookupType("prometheus.WriteRequest");
export const ReadRequest = root.lookupType("prometheus.ReadRequest");
export const ReadResponse = root.lookupType("prometheus.ReadResponse");
export const WriteRequestV2 = root.lookupType("io.prometheus.write.v2.Request");

/** Plain objects out of protobufjs: int64 as numbers, enums as numbers, defaults filled in. */
export const toObjectOptions: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true, arrays: true };

export type Samples = [number, number][] | { timestamps: ArrayLike<number>; values: Float64Array };

export interface PromSeries {
  labels: Record<string, string>;
  samples: Samples;
}

export interface PromMetadata {
  /** MetricType number: 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info, 7 stateset. */
  type: number;
  metricFamilyName: string;
  help: string;
  unit: string;
}

export interface PromSeriesV2 extends PromSeries {
  /** Metadata of this series (2.0 carries metadata per series). */
  metadata?: { type: number; help?: string; unit?: string };
  /** Created timestamp in ms, sent where `createdTimestampAs` says. */
  createdTimestamp?: number;
  /** Native histograms and exemplars to attach (counted by the receiver, not stored). */
  histograms?: number;
  exemplars?: number;
}

export interface PromMatcher {
  /** 0 EQ, 1 NEQ, 2 RE, 3 NRE */
  type: number;
  name: string;
  value: string;
}

export interface PromQuery {
  startMs: number;
  endMs: number;
  matchers: PromMatcher[];
}

export interface PromReadSeries {
  labels: Record<string, string>;
  /** Flat [name0, value0, ...] in wire order. */
  flatLabels: string[];
  timestamps: Float64Array;
  /** Bit-exact values. */
  values: Float64Array;
  /** [timestampMs, value] pairs (NaN payloads may be quieted, see the header). */
  samples: [number, number][];
}

/** Label pairs sorted by name, as Prometheus sends them. */
export function sortedLabels(labels: Record<string, string>): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function columns(s: Samples): { timestamps: ArrayLike<number>; values: Float64Array } {
  if (!Array.isArray(s)) return s;
  const values = new Float64Array(s.length);
  const timestamps = new Float64Array(s.length);
  for (let i = 0; i < s.length; i++) {
    timestamps[i] = s[i][0];
    values[i] = s[i][1];
  }
  return { timestamps, values };
}

/** Sample objects for protobufjs; each value is read straight from the Float64Array into an object field (bit-exact). */
function sampleObjects(s: Samples, extra?: Record<string, number>): Record<string, number>[] {
  const { timestamps, values } = columns(s);
  const out: Record<string, number>[] = [];
  for (let i = 0; i < values.length; i++) out.push({ value: values[i], timestamp: timestamps[i], ...extra });
  return out;
}

function encode(type: protobuf.Type, obj: Record<string, unknown>): Uint8Array {
  const err = type.verify(obj);
  if (err !== null) throw new Error(`${type.fullName}: ${err}`);
  const bytes = type.encode(type.create(obj)).finish();
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A prometheus.WriteRequest (remote write 1.0), uncompressed. */
export function encodeWriteV1(series: PromSeries[], metadata?: PromMetadata[]): Uint8Array {
  return encode(WriteRequest, {
    timeseries: series.map((s) => ({
      labels: sortedLabels(s.labels).map(([name, value]) => ({ name, value })),
      samples: sampleObjects(s.samples),
    })),
    metadata: (metadata ?? []).map((m) => ({ type: m.type, metricFamilyName: m.metricFamilyName, help: m.help, unit: m.unit })),
  });
}

/**
 * An io.prometheus.write.v2.Request, uncompressed: symbols table starting with "",
 * label refs packed. createdTimestampAs: "sample" (default) sends
 * Sample.start_timestamp (v2.0-rc.4 and later), "series" sends
 * TimeSeries.created_timestamp (up to rc.3).
 */
export function encodeWriteV2(series: PromSeriesV2[], options: { createdTimestampAs?: "sample" | "series" } = {}): Uint8Array {
  const perSample = (options.createdTimestampAs ?? "sample") === "sample";
  const symbols: string[] = [""];
  const index = new Map<string, number>([["", 0]]);
  const ref = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = symbols.length;
      symbols.push(s);
      index.set(s, i);
    }
    return i;
  };
  const timeseries = series.map((s) => {
    const labelsRefs: number[] = [];
    for (const [n, v] of sortedLabels(s.labels)) labelsRefs.push(ref(n), ref(v));
    const created = s.createdTimestamp ?? 0;
    const ts: Record<string, unknown> = {
      labelsRefs,
      samples: sampleObjects(s.samples, perSample && created !== 0 ? { startTimestamp: created } : undefined),
    };
    if (!perSample && created !== 0) ts.createdTimestamp = created;
    if (s.metadata !== undefined) {
      ts.metadata = {
        type: s.metadata.type,
        helpRef: s.metadata.help ? ref(s.metadata.help) : 0,
        unitRef: s.metadata.unit ? ref(s.metadata.unit) : 0,
      };
    }
    if (s.histograms) ts.histograms = Array.from({ length: s.histograms }, (_, i) => ({ countInt: i + 1, sum: 1.5, schema: 0, timestamp: 1 }));
    if (s.exemplars) ts.exemplars = Array.from({ length: s.exemplars }, () => ({ labelsRefs: [ref("trace_id"), ref("abc")], value: 1, timestamp: 1 }));
    return ts;
  });
  return encode(WriteRequestV2, { symbols, timeseries });
}

/** A prometheus.ReadRequest, uncompressed. */
export function encodeReadRequest(queries: PromQuery[], acceptedResponseTypes: number[] = []): Uint8Array {
  return encode(ReadRequest, {
    queries: queries.map((q) => ({
      startTimestampMs: q.startMs,
      endTimestampMs: q.endMs,
      matchers: q.matchers.map((m) => ({ type: m.type, name: m.name, value: m.value })),
    })),
    acceptedResponseTypes,
  });
}

interface DecodedSampleObject {
  value: number;
  timestamp: number;
}

/** Decodes a prometheus.ReadResponse (uncompressed): one array of series per query. */
export function decodeReadResponse(bytes: Uint8Array): PromReadSeries[][] {
  const msg = ReadResponse.decode(bytes);
  const obj = ReadResponse.toObject(msg, toObjectOptions) as {
    results: { timeseries: { labels: { name: string; value: string }[]; samples: DecodedSampleObject[] }[] }[];
  };
  return obj.results.map((r) =>
    r.timeseries.map((ts) => {
      const labels: Record<string, string> = {};
      const flatLabels: string[] = [];
      for (const l of ts.labels) {
        labels[l.name] = l.value;
        flatLabels.push(l.name, l.value);
      }
      const timestamps = new Float64Array(ts.samples.length);
      const values = new Float64Array(ts.samples.length);
      const samples: [number, number][] = [];
      ts.samples.forEach((s, i) => {
        timestamps[i] = s.timestamp;
        values[i] = s.value;
        samples.push([s.timestamp, s.value]);
      });
      return { labels, flatLabels, timestamps, values, samples };
    }),
  );
}
