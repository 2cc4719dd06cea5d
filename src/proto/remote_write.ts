// Remote write request decoders: prometheus.WriteRequest (remote write 1.0) and
// io.prometheus.write.v2.Request (remote write 2.0), straight into DecodedWrite.
//
// Why hand-written rather than protobufjs: protobufjs cannot decode inside workerd
// (it generates its decoders with new Function(), i.e. compiles code from strings,
// which workerd forbids), and decoding remote write is the hot path of every push.
// These decoders write samples straight into two columnar Float64Arrays (all
// timestamps, all values of the request) with no per-sample allocation; the only
// allocations are one DecodedSeries and one label array per series (label strings
// are interned by the reader). protobufjs is used only Node-side, in tests and the
// benchmark, as the independent reference encoder/decoder
// (test/node/proto_reference.test.ts, test/support/promproto.ts).
//
// Schemas (field numbers checked against prometheus/prometheus prompb/):
//
//   prometheus.WriteRequest { repeated TimeSeries timeseries = 1; reserved 2;
//                             repeated MetricMetadata metadata = 3; }
//   prometheus.TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//                             repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//   prometheus.Label        { string name = 1; string value = 2; }
//   prometheus.Sample       { double value = 1; int64 timestamp = 2; }
//   prometheus.MetricMetadata { MetricType type = 1; string metric_family_name = 2;
//                             string help = 4; string unit = 5; }
//
//   io.prometheus.write.v2.Request    { reserved 1 to 3; repeated string symbols = 4;
//                                       repeated TimeSeries timeseries = 5; }
//   io.prometheus.write.v2.TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2;
//                                       repeated Histogram histograms = 3; repeated Exemplar exemplars = 4;
//                                       Metadata metadata = 5; int64 created_timestamp = 6; }
//   io.prometheus.write.v2.Sample     { double value = 1; int64 timestamp = 2; int64 start_timestamp = 3; }
//   io.prometheus.write.v2.Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
//
// The created timestamp moved between 2.0 release candidates: up to v2.0-rc.3 it
// is TimeSeries.created_timestamp = 6; from v2.0-rc.4 TimeSeries field 6 is
// reserved and each Sample carries start_timestamp = 3 ("the same as created
// timestamp"). Both are accepted: a series' createdTimestamp is its field 6 when
// set, otherwise the first non-zero start_timestamp of its samples.
//
// Unknown fields are skipped (groups refused); a known field with the wrong wire
// type, any truncation or overrun throws ProtoError. Histograms and exemplars are
// counted and skipped, not decoded.

import { ProtoReader, WireType } from "./reader";
import { ProtoError, type DecodedSeries, type DecodedWrite, type MetricMetadata, type MetricType } from "./types";

/**
 * Optional reusable output capacity. When given, the decoder writes samples into
 * these arrays (replacing them with larger ones when they are too small), so the
 * returned DecodedWrite's timestamps/values are views of them: they are valid
 * only until the next decode with the same scratch.
 */
export interface DecodeScratch {
  timestamps: Float64Array;
  values: Float64Array;
}

/** A fresh, empty scratch; capacity grows to the largest request decoded with it. */
export function newDecodeScratch(capacity = 1024): DecodeScratch {
  return { timestamps: new Float64Array(capacity), values: new Float64Array(capacity) };
}

// Field keys: (field number << 3) | wire type.
const K1_LEN = (1 << 3) | WireType.LEN;
const K1_I64 = (1 << 3) | WireType.I64;
const K1_VARINT = (1 << 3) | WireType.VARINT;
const K2_LEN = (2 << 3) | WireType.LEN;
const K2_VARINT = (2 << 3) | WireType.VARINT;
const K3_LEN = (3 << 3) | WireType.LEN;
const K3_VARINT = (3 << 3) | WireType.VARINT;
const K4_LEN = (4 << 3) | WireType.LEN;
const K4_VARINT = (4 << 3) | WireType.VARINT;
const K5_LEN = (5 << 3) | WireType.LEN;
const K6_VARINT = (6 << 3) | WireType.VARINT;

/** Whether Float64Array's byte order is the wire's (little-endian); true on every platform Workers run on. */
const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/**
 * Growable sample columns. Values are copied from the wire as their 8 bytes,
 * never as a JS number: V8 may quiet a signalling NaN (the stale marker
 * 0x7ff0000000000002) that travels as a number, and Prometheus recognises stale
 * markers by their exact bits.
 */
class Columns {
  ts: Float64Array;
  vs: Float64Array;
  /** The bytes of vs. */
  vb: Uint8Array;
  n = 0;
  constructor(
    private readonly scratch: DecodeScratch | undefined,
    estimate: number,
  ) {
    if (scratch !== undefined && scratch.timestamps.length === scratch.values.length) {
      this.ts = scratch.timestamps;
      this.vs = scratch.values;
    } else {
      this.ts = new Float64Array(estimate);
      this.vs = new Float64Array(estimate);
    }
    this.vb = new Uint8Array(this.vs.buffer, this.vs.byteOffset, this.vs.byteLength);
  }

  /** Appends a sample: timestamp t, value the 8 little-endian bytes at buf[at] (0 when at < 0). */
  push(t: number, buf: Uint8Array, at: number): void {
    const n = this.n;
    if (n === this.ts.length) this.grow();
    this.ts[n] = t;
    const vb = this.vb;
    const o = n * 8;
    if (at < 0) {
      this.vs[n] = 0;
    } else if (LITTLE_ENDIAN) {
      vb[o] = buf[at];
      vb[o + 1] = buf[at + 1];
      vb[o + 2] = buf[at + 2];
      vb[o + 3] = buf[at + 3];
      vb[o + 4] = buf[at + 4];
      vb[o + 5] = buf[at + 5];
      vb[o + 6] = buf[at + 6];
      vb[o + 7] = buf[at + 7];
    } else {
      for (let i = 0; i < 8; i++) vb[o + i] = buf[at + 7 - i];
    }
    this.n = n + 1;
  }

  private grow(): void {
    const cap = Math.max(64, this.ts.length * 2);
    const ts = new Float64Array(cap);
    const vs = new Float64Array(cap);
    ts.set(this.ts);
    vs.set(this.vs); // a typed-array copy: bytes, not numbers
    this.ts = ts;
    this.vs = vs;
    this.vb = new Uint8Array(vs.buffer);
  }

  finish(): { timestamps: Float64Array; values: Float64Array } {
    if (this.scratch !== undefined) {
      this.scratch.timestamps = this.ts;
      this.scratch.values = this.vs;
    }
    return { timestamps: this.ts.subarray(0, this.n), values: this.vs.subarray(0, this.n) };
  }
}

/**
 * Initial capacity without a scratch: a guess of one sample per 48 bytes of
 * request, doubled as needed. A node_exporter-like series of ~10 labels and one
 * sample is ~225 bytes, so this rarely grows and over-allocates ~5x the sample
 * count (16 bytes a sample). Measured on 2,000 such series: a counting pre-pass
 * to size the arrays exactly costs ~6% of a decode, and a reused scratch saves
 * ~7%, so guessing is kept and the scratch is optional.
 */
function estimateSamples(bytes: number): number {
  return Math.max(64, Math.ceil(bytes / 48));
}

// ---------------------------------------------------------------------------
// Remote write 1.0

/** Decodes a prometheus.WriteRequest (remote write 1.0). Throws ProtoError on malformed input. */
export function decodeWriteRequestV1(buf: Uint8Array, scratch?: DecodeScratch): DecodedWrite {
  const r = new ProtoReader(buf);
  const cols = new Columns(scratch, estimateSamples(buf.length));
  const series: DecodedSeries[] = [];
  const metadata: MetricMetadata[] = [];
  let histogramCount = 0;
  let exemplarCount = 0;
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_LEN) {
      const s = readSeriesV1(r, cols);
      histogramCount += s.histogramCount;
      exemplarCount += s.exemplarCount;
      series.push(s);
    } else if (tag === K3_LEN) {
      metadata.push(readMetadataV1(r));
    } else {
      const f = tag >>> 3;
      if (f === 1) r.wrongType("WriteRequest.timeseries", tag, keyAt);
      if (f === 3) r.wrongType("WriteRequest.metadata", tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  const { timestamps, values } = cols.finish();
  return { series, timestamps, values, sampleCount: cols.n, metadata, histogramCount, exemplarCount };
}

function readSeriesV1(r: ProtoReader, cols: Columns): DecodedSeries {
  const outer = r.enter();
  const labels: string[] = [];
  const sampleStart = cols.n;
  let histogramCount = 0;
  let exemplarCount = 0;
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    switch (tag) {
      case K1_LEN:
        readLabel(r, labels);
        break;
      case K2_LEN:
        readSample(r, cols, false);
        break;
      case K3_LEN:
        exemplarCount++;
        r.skipField(WireType.LEN);
        break;
      case K4_LEN:
        histogramCount++;
        r.skipField(WireType.LEN);
        break;
      default: {
        const f = tag >>> 3;
        if (f >= 1 && f <= 4) r.wrongType(["", "TimeSeries.labels", "TimeSeries.samples", "TimeSeries.exemplars", "TimeSeries.histograms"][f], tag, keyAt);
        r.skipField(tag & 7);
      }
    }
  }
  r.leave(outer);
  return { labels, sampleStart, sampleCount: cols.n - sampleStart, histogramCount, exemplarCount, createdTimestamp: 0 };
}

function readLabel(r: ProtoReader, labels: string[]): void {
  // Fast path for the shape every sender writes: name (key 0x0a) then value (key
  // 0x12), each shorter than 128 bytes, exactly filling a Label shorter than 128
  // bytes. Anything else takes the general path below.
  const buf = r.buf;
  const p = r.pos;
  const len = buf[p];
  if (len < 0x80 && p + 1 + len <= r.end && buf[p + 1] === 0x0a) {
    const nlen = buf[p + 2];
    if (nlen < 0x80 && buf[p + 3 + nlen] === 0x12) {
      const vlen = buf[p + 4 + nlen];
      if (vlen < 0x80 && 4 + nlen + vlen === len) {
        labels.push(r.stringAt(p + 3, nlen), r.stringAt(p + 5 + nlen, vlen));
        r.pos = p + 1 + len;
        return;
      }
    }
  }
  const outer = r.enter();
  let name = "";
  let value = "";
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_LEN) name = r.string();
    else if (tag === K2_LEN) value = r.string();
    else {
      const f = tag >>> 3;
      if (f === 1 || f === 2) r.wrongType(f === 1 ? "Label.name" : "Label.value", tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  labels.push(name, value);
}

/**
 * Reads a Sample into the columns. For v2 (withStart) also reads start_timestamp
 * (field 3) and returns it (0 when absent); returns 0 for v1.
 */
function readSample(r: ProtoReader, cols: Columns, withStart: boolean): number {
  const outer = r.enter();
  let valueAt = -1;
  let t = 0;
  let st = 0;
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_I64) {
      valueAt = r.pos;
      r.skipField(WireType.I64); // bounds-checked; the bytes are copied by cols.push
    } else if (tag === K2_VARINT) t = r.int64();
    else if (withStart && tag === K3_VARINT) st = r.int64();
    else {
      const f = tag >>> 3;
      if (f === 1 || f === 2 || (withStart && f === 3)) r.wrongType(["", "Sample.value", "Sample.timestamp", "Sample.start_timestamp"][f], tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  cols.push(t, r.buf, valueAt);
  return st;
}

function readMetadataV1(r: ProtoReader): MetricMetadata {
  const outer = r.enter();
  let type = 0;
  let metricFamilyName = "";
  let help = "";
  let unit = "";
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    switch (tag) {
      case K1_VARINT:
        type = r.int32();
        break;
      case K2_LEN:
        metricFamilyName = r.string();
        break;
      case K4_LEN:
        help = r.string();
        break;
      case K5_LEN:
        unit = r.string();
        break;
      default: {
        const f = tag >>> 3;
        if (f === 1 || f === 2 || f === 4 || f === 5) {
          r.wrongType(["", "MetricMetadata.type", "MetricMetadata.metric_family_name", "", "MetricMetadata.help", "MetricMetadata.unit"][f], tag, keyAt);
        }
        r.skipField(tag & 7);
      }
    }
  }
  r.leave(outer);
  return { type: type as MetricType, metricFamilyName, help, unit };
}

// ---------------------------------------------------------------------------
// Remote write 2.0

/**
 * Decodes an io.prometheus.write.v2.Request (remote write 2.0). Label and metadata
 * references are resolved against the symbols table: a reference out of range, an
 * odd number of label references, or a symbols table not starting with "" throws
 * ProtoError. Series metadata (when its type, help or unit is set) becomes a
 * MetricMetadata named after the series' __name__, once per distinct value.
 */
export function decodeWriteRequestV2(buf: Uint8Array, scratch?: DecodeScratch): DecodedWrite {
  const r = new ProtoReader(buf);
  // Pass 1: the symbols table. Fields may come in any order, so the series
  // (which reference symbols) are decoded in a second pass; skipping them here
  // costs one length varint each.
  const symbols: string[] = [];
  let firstSymbolAt = -1;
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K4_LEN) {
      if (firstSymbolAt < 0) firstSymbolAt = r.pos;
      symbols.push(r.string());
    } else {
      const f = tag >>> 3;
      if (f === 4) r.wrongType("Request.symbols", tag, keyAt);
      if (f === 5 && tag !== K5_LEN) r.wrongType("Request.timeseries", tag, keyAt);
      r.skipField(tag & 7);
    }
  }
  if (symbols.length > 0 && symbols[0] !== "") {
    throw new ProtoError(`symbols table must start with the empty string, starts with ${JSON.stringify(symbols[0].slice(0, 64))} at byte offset ${firstSymbolAt}`);
  }

  // Pass 2: the series.
  r.pos = 0;
  const cols = new Columns(scratch, estimateSamples(buf.length));
  const series: DecodedSeries[] = [];
  const metadata: MetricMetadata[] = [];
  const seenMetadata = new Map<string, MetricMetadata>();
  let histogramCount = 0;
  let exemplarCount = 0;
  while (r.pos < r.end) {
    const tag = r.tag();
    if (tag === K5_LEN) {
      const s = readSeriesV2(r, cols, symbols, metadata, seenMetadata);
      histogramCount += s.histogramCount;
      exemplarCount += s.exemplarCount;
      series.push(s);
    } else {
      r.skipField(tag & 7);
    }
  }
  const { timestamps, values } = cols.finish();
  return { series, timestamps, values, sampleCount: cols.n, metadata, histogramCount, exemplarCount };
}

function symbol(r: ProtoReader, symbols: string[], ref: number, what: string, at: number): string {
  if (ref >= symbols.length) r.fail(`${what} ${ref} out of range of the symbols table (${symbols.length} symbols)`, at);
  return symbols[ref];
}

function readSeriesV2(
  r: ProtoReader,
  cols: Columns,
  symbols: string[],
  metadata: MetricMetadata[],
  seen: Map<string, MetricMetadata>,
): DecodedSeries {
  const seriesAt = r.pos;
  const outer = r.enter();
  const labels: string[] = [];
  const sampleStart = cols.n;
  let histogramCount = 0;
  let exemplarCount = 0;
  let created = 0;
  let firstStart = 0;
  let mdType = 0;
  let helpRef = 0;
  let unitRef = 0;
  let hasMetadata = false;
  while (r.pos < r.end) {
    const keyAt = r.pos;
    const tag = r.tag();
    switch (tag) {
      case K1_LEN: {
        // Packed labels_refs (what every sender sends).
        const inner = r.enter();
        while (r.pos < r.end) {
          const at = r.pos;
          labels.push(symbol(r, symbols, r.uint32(), "label reference", at));
        }
        r.leave(inner);
        break;
      }
      case K1_VARINT: {
        // Unpacked labels_refs: also valid protobuf for a repeated uint32.
        const at = r.pos;
        labels.push(symbol(r, symbols, r.uint32(), "label reference", at));
        break;
      }
      case K2_LEN: {
        const st = readSample(r, cols, true);
        if (firstStart === 0) firstStart = st;
        break;
      }
      case K3_LEN:
        histogramCount++;
        r.skipField(WireType.LEN);
        break;
      case K4_LEN:
        exemplarCount++;
        r.skipField(WireType.LEN);
        break;
      case K5_LEN: {
        // A non-repeated message field sent more than once merges: later values win.
        hasMetadata = true;
        const inner = r.enter();
        while (r.pos < r.end) {
          const k = r.pos;
          const t = r.tag();
          if (t === K1_VARINT) mdType = r.int32();
          else if (t === K3_VARINT) {
            const at = r.pos;
            helpRef = r.uint32();
            symbol(r, symbols, helpRef, "help reference", at);
          } else if (t === K4_VARINT) {
            const at = r.pos;
            unitRef = r.uint32();
            symbol(r, symbols, unitRef, "unit reference", at);
          } else {
            const f = t >>> 3;
            if (f === 1 || f === 3 || f === 4) r.wrongType(["", "Metadata.type", "", "Metadata.help_ref", "Metadata.unit_ref"][f], t, k);
            r.skipField(t & 7);
          }
        }
        r.leave(inner);
        break;
      }
      case K6_VARINT:
        created = r.int64();
        break;
      default: {
        const f = tag >>> 3;
        if (f >= 1 && f <= 6) {
          r.wrongType(["", "TimeSeries.labels_refs", "TimeSeries.samples", "TimeSeries.histograms", "TimeSeries.exemplars", "TimeSeries.metadata", "TimeSeries.created_timestamp"][f], tag, keyAt);
        }
        r.skipField(tag & 7);
      }
    }
  }
  r.leave(outer);
  if ((labels.length & 1) !== 0) r.fail(`odd number of label references (${labels.length}) in TimeSeries`, seriesAt);

  if (hasMetadata && (mdType !== 0 || helpRef !== 0 || unitRef !== 0)) {
    const help = symbols[helpRef] ?? "";
    const unit = symbols[unitRef] ?? "";
    if (mdType !== 0 || help !== "" || unit !== "") {
      let name = "";
      for (let i = 0; i < labels.length; i += 2) {
        if (labels[i] === "__name__") {
          name = labels[i + 1];
          break;
        }
      }
      const prev = seen.get(name);
      if (prev === undefined || prev.type !== mdType || prev.help !== help || prev.unit !== unit) {
        const m: MetricMetadata = { type: mdType as MetricType, metricFamilyName: name, help, unit };
        seen.set(name, m);
        metadata.push(m);
      }
    }
  }

  return {
    labels,
    sampleStart,
    sampleCount: cols.n - sampleStart,
    histogramCount,
    exemplarCount,
    createdTimestamp: created !== 0 ? created : firstStart,
  };
}
