// Remote read (prometheus.ReadRequest in, prometheus.ReadResponse out), and the
// remote write encoders used by in-runtime tests and tools to produce requests.
// Hand-written for the reasons given at the top of remote_write.ts.
//
//   prometheus.ReadRequest  { repeated Query queries = 1; repeated ResponseType accepted_response_types = 2; }
//   prometheus.Query        { int64 start_timestamp_ms = 1; int64 end_timestamp_ms = 2;
//                             repeated LabelMatcher matchers = 3; ReadHints hints = 4; }
//   prometheus.LabelMatcher { Type type = 1; string name = 2; string value = 3; }
//   prometheus.ReadResponse { repeated QueryResult results = 1; }
//   prometheus.QueryResult  { repeated TimeSeries timeseries = 1; }
//   prometheus.TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; ... }
//
// The encoders write proto3's canonical form: fields holding their default value
// (empty strings, a +0 value, a 0 timestamp) are left out; -0 and NaN values
// (stale markers) are written bit for bit.

import { ProtoReader, WireType } from "./reader";
import { ProtoWriter } from "./writer";
import type { LabelMatcher, MatchType, MetricMetadata, ReadQuery, ReadRequest, ReadResponseType, SeriesSamples } from "./types";

const K1_LEN = (1 << 3) | WireType.LEN;
const K1_VARINT = (1 << 3) | WireType.VARINT;
const K2_LEN = (2 << 3) | WireType.LEN;
const K2_VARINT = (2 << 3) | WireType.VARINT;
const K3_LEN = (3 << 3) | WireType.LEN;
const K1_I64 = (1 << 3) | WireType.I64;


function grown(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(Math.max(16, a.length * 2));
  b.set(a);
  return b;
}

/** Decodes a prometheus.ReadRequest; hints are skipped. Throws ProtoError on malformed input. */
export function decodeReadRequest(buf: Uint8Array): ReadRequest {
  const r = new ProtoReader(buf);
  const queries: ReadQuery[] = [];
  const acceptedResponseTypes: ReadResponseType[] = [];
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_LEN) queries.push(readQuery(r));
    else if (tag === K2_LEN) {
      // Packed (what proto3 senders send).
      const outer = r.enter();
      while (r.pos < r.end) acceptedResponseTypes.push(r.int32() as ReadResponseType);
      r.leave(outer);
    } else if (tag === K2_VARINT) acceptedResponseTypes.push(r.int32() as ReadResponseType);
    else {
      const f = tag >>> 3;
      if (f === 1) r.wrongType("ReadRequest.queries", tag, keyAt);
      if (f === 2) r.wrongType("ReadRequest.accepted_response_types", tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  return { queries, acceptedResponseTypes };
}

function readQuery(r: ProtoReader): ReadQuery {
  const outer = r.enter();
  let startMs = 0;
  let endMs = 0;
  const matchers: LabelMatcher[] = [];
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_VARINT) startMs = r.int64();
    else if (tag === K2_VARINT) endMs = r.int64();
    else if (tag === K3_LEN) matchers.push(readMatcher(r));
    else {
      const f = tag >>> 3;
      if (f >= 1 && f <= 4 && !(f === 4 && (tag & 7) === WireType.LEN)) {
        r.wrongType(["", "Query.start_timestamp_ms", "Query.end_timestamp_ms", "Query.matchers", "Query.hints"][f], tag, keyAt);
      }
      r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  return { startMs, endMs, matchers };
}

function readMatcher(r: ProtoReader): LabelMatcher {
  const outer = r.enter();
  let type = 0;
  let name = "";
  let value = "";
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_VARINT) type = r.int32();
    else if (tag === K2_LEN) name = r.string();
    else if (tag === K3_LEN) value = r.string();
    else {
      const f = tag >>> 3;
      if (f >= 1 && f <= 3) r.wrongType(["", "LabelMatcher.type", "LabelMatcher.name", "LabelMatcher.value"][f], tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  return { type: type as MatchType, name, value };
}

// ---------------------------------------------------------------------------
// Read response decoding (for in-runtime tests and tools)

/** Decodes a prometheus.ReadResponse: one SeriesSamples[] per QueryResult. Throws ProtoError on malformed input. */
export function decodeReadResponse(buf: Uint8Array): SeriesSamples[][] {
  const r = new ProtoReader(buf);
  const results: SeriesSamples[][] = [];
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_LEN) {
      const outer = r.enter();
      const series: SeriesSamples[] = [];
      while (r.pos < r.end) {
        const k = r.pos;
        const t = r.tag();
        if (t === K1_LEN) series.push(readSeries(r));
        else {
          if (t >>> 3 === 1) r.wrongType("QueryResult.timeseries", t, k);
          r.skipField(t & 7);
        }
      }
      r.leave(outer);
      results.push(series);
    } else {
      if (tag >>> 3 === 1) r.wrongType("ReadResponse.results", tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  return results;
}

function readSeries(r: ProtoReader): SeriesSamples {
  const outer = r.enter();
  const labels: string[] = [];
  // Values are kept as their bytes, never as JS numbers: V8 may quiet a signalling
  // NaN (the stale marker 0x7ff0000000000002 would become 0x7ff8000000000002).
  let ts = new Float64Array(16);
  let vs = new Float64Array(16);
  let vb = new Uint8Array(vs.buffer);
  let n = 0;
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_LEN) {
      const o = r.enter();
      let name = "";
      let value = "";
      while (r.pos < r.end) {
        const k = r.pos;
        const t = r.tag();
        if (t === K1_LEN) name = r.string();
        else if (t === K2_LEN) value = r.string();
        else {
          if (t >>> 3 === 1 || t >>> 3 === 2) r.wrongType(t >>> 3 === 1 ? "Label.name" : "Label.value", t, k);
          r.skipField(t & 7);
        }
      }
      r.leave(o);
      labels.push(name, value);
    } else if (tag === K2_LEN) {
      const o = r.enter();
      let valueAt = -1;
      let t = 0;
      while (r.pos < r.end) {
        const k = r.pos;
        const key = r.tag();
        if (key === K1_I64) {
          valueAt = r.pos;
          r.skipField(WireType.I64);
        } else if (key === K2_VARINT) t = r.int64();
        else {
          if (key >>> 3 === 1 || key >>> 3 === 2) r.wrongType(key >>> 3 === 1 ? "Sample.value" : "Sample.timestamp", key, k);
          r.skipField(key & 7);
        }
      }
      r.leave(o);
      if (n === ts.length) {
        ts = grown(ts);
        vs = grown(vs);
        vb = new Uint8Array(vs.buffer);
      }
      ts[n] = t;
      if (valueAt >= 0) vb.set(r.buf.subarray(valueAt, valueAt + 8), n * 8); // little-endian hosts
      n++;
    } else {
      const f = tag >>> 3;
      if (f === 1 || f === 2) r.wrongType(f === 1 ? "TimeSeries.labels" : "TimeSeries.samples", tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  return { labels, timestamps: ts.slice(0, n), values: vs.slice(0, n) };
}

// ---------------------------------------------------------------------------
// Encoders

/** One writer for every encoder: JS is single-threaded and encoding is synchronous; finish() copies out. */
const shared = new ProtoWriter(64 * 1024);

/** The body of a prometheus.TimeSeries: labels, then samples (v1 layout, shared by write 1.0 and read). */
function writeSeriesV1Body(w: ProtoWriter, s: SeriesSamples): void {
  const labels = s.labels;
  for (let i = 0; i + 1 < labels.length; i += 2) {
    const m = w.fork(1);
    if (labels[i] !== "") w.string(1, labels[i]);
    if (labels[i + 1] !== "") w.string(2, labels[i + 1]);
    w.ldelim(m);
  }
  const ts = s.timestamps;
  // Values as raw words (see ProtoWriter.doubleWords): the stale marker keeps its bits.
  const vw = new Uint32Array(s.values.buffer, s.values.byteOffset, s.values.length * 2);
  for (let j = 0; j < ts.length; j++) {
    const m = w.fork(2);
    const lo = vw[2 * j];
    const hi = vw[2 * j + 1];
    if (lo !== 0 || hi !== 0) w.doubleWords(1, lo, hi); // +0 is proto3's default and is omitted
    if (ts[j] !== 0) w.int64(2, ts[j]);
    w.ldelim(m);
  }
}

/** Encodes a prometheus.ReadResponse with one QueryResult per query, in order. */
export function encodeReadResponse(results: SeriesSamples[][]): Uint8Array {
  const w = shared.reset();
  for (const result of results) {
    const qr = w.fork(1);
    for (const s of result) {
      const m = w.fork(1);
      writeSeriesV1Body(w, s);
      w.ldelim(m);
    }
    w.ldelim(qr);
  }
  return w.finish();
}

/** Encodes a prometheus.ReadRequest (for tests and tools); accepted types are written packed. */
export function encodeReadRequest(queries: ReadQuery[], acceptedResponseTypes: ReadResponseType[] = []): Uint8Array {
  const w = shared.reset();
  for (const q of queries) {
    const qm = w.fork(1);
    if (q.startMs !== 0) w.int64(1, q.startMs);
    if (q.endMs !== 0) w.int64(2, q.endMs);
    for (const m of q.matchers) {
      const mm = w.fork(3);
      if (m.type !== 0) w.int32(1, m.type);
      if (m.name !== "") w.string(2, m.name);
      if (m.value !== "") w.string(3, m.value);
      w.ldelim(mm);
    }
    w.ldelim(qm);
  }
  if (acceptedResponseTypes.length > 0) w.packedInt32(2, acceptedResponseTypes);
  return w.finish();
}

/** Encodes a prometheus.WriteRequest (remote write 1.0). Labels are written as given (senders sort them). */
export function encodeWriteRequestV1(series: SeriesSamples[], metadata?: MetricMetadata[]): Uint8Array {
  const w = shared.reset();
  for (const s of series) {
    const m = w.fork(1);
    writeSeriesV1Body(w, s);
    w.ldelim(m);
  }
  if (metadata !== undefined) {
    for (const md of metadata) {
      const m = w.fork(3);
      if (md.type !== 0) w.int32(1, md.type);
      if (md.metricFamilyName !== "") w.string(2, md.metricFamilyName);
      if (md.help !== "") w.string(4, md.help);
      if (md.unit !== "") w.string(5, md.unit);
      w.ldelim(m);
    }
  }
  return w.finish();
}

/** A series for encodeWriteRequestV2: SeriesSamples plus optional 2.0 extras. */
export interface WriteSeriesV2 extends SeriesSamples {
  /** Created (start) timestamp in ms; 0 or absent means none. */
  createdTimestamp?: number;
  /** This series' metadata (its metricFamilyName is ignored); overrides the metadata argument's. */
  metadata?: MetricMetadata | null;
}

export interface EncodeV2Options {
  /**
   * Where a series' createdTimestamp goes: "sample" (default) writes it as every
   * Sample's start_timestamp = 3 (v2.0-rc.4 and later, what current Prometheus
   * sends); "series" writes TimeSeries.created_timestamp = 6 (v2.0-rc.3 and earlier).
   */
  createdTimestampAs?: "sample" | "series";
}

/**
 * Encodes an io.prometheus.write.v2.Request. The symbols table starts with "" and
 * holds each distinct string once (built with a Map). Metadata goes, as 2.0 has
 * it, on the series: a series' own `metadata`, else the entry of the `metadata`
 * argument whose metricFamilyName is the series' __name__.
 */
export function encodeWriteRequestV2(series: WriteSeriesV2[], metadata?: MetricMetadata[], options?: EncodeV2Options): Uint8Array {
  const perSample = (options?.createdTimestampAs ?? "sample") === "sample";
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
  const byName = new Map<string, MetricMetadata>();
  if (metadata !== undefined) for (const m of metadata) byName.set(m.metricFamilyName, m);

  // The series go first into a writer of their own (they fill the symbols table),
  // then the request is the symbols followed by those bytes.
  const body = new ProtoWriter(64 * 1024);
  const refs: number[] = [];
  for (const s of series) {
    const sm = body.fork(5);
    const labels = s.labels;
    refs.length = 0;
    for (let i = 0; i < labels.length; i++) refs.push(ref(labels[i]));
    if (refs.length > 0) body.packedUint32(1, refs);
    const created = s.createdTimestamp ?? 0;
    const ts = s.timestamps;
    const vw = new Uint32Array(s.values.buffer, s.values.byteOffset, s.values.length * 2);
    for (let j = 0; j < ts.length; j++) {
      const m = body.fork(2);
      const lo = vw[2 * j];
      const hi = vw[2 * j + 1];
      if (lo !== 0 || hi !== 0) body.doubleWords(1, lo, hi); // as in writeSeriesV1Body
      if (ts[j] !== 0) body.int64(2, ts[j]);
      if (perSample && created !== 0) body.int64(3, created);
      body.ldelim(m);
    }
    let md = s.metadata ?? undefined;
    if (md === undefined && s.metadata !== null && byName.size > 0) {
      for (let i = 0; i + 1 < labels.length; i += 2) if (labels[i] === "__name__") md = byName.get(labels[i + 1]);
    }
    if (md !== undefined) {
      const mm = body.fork(5);
      if (md.type !== 0) body.int32(1, md.type);
      if (md.help !== "") body.uint32(3, ref(md.help));
      if (md.unit !== "") body.uint32(4, ref(md.unit));
      body.ldelim(mm);
    }
    if (!perSample && created !== 0) body.int64(6, created);
    body.ldelim(sm);
  }

  const w = shared.reset();
  for (const s of symbols) w.string(4, s);
  w.raw(body.written());
  return w.finish();
}
