// Loki push request decoder: logproto.PushRequest (Loki's pkg/push/push.proto), straight
// into columns (DecodedLogPush). Hand-written for the reasons remote_write.ts gives
// (protobufjs cannot run in workerd; this is the hot path of every log push).
//
//   logproto.PushRequest      { repeated StreamAdapter streams = 1; }
//   logproto.StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//   logproto.EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//                               repeated LabelPairAdapter structuredMetadata = 3;
//                               repeated LabelPairAdapter parsed = 4; (query responses only: skipped) }
//   logproto.LabelPairAdapter { string name = 1; string value = 2; }
//   google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }
//
// Lines are never decoded to strings: an entry is a byte range of the request (the
// ingester stores the bytes as sent, as Loki's Go strings carry them). The only
// allocations are one DecodedLogStream per stream, the raw label string per stream,
// and two strings per structured metadata pair (interned by the reader when short).
// The stream `hash` is skipped: Loki's distributor recomputes it from the labels.
//
// Timestamps are checked as gogo-protobuf's StdTimeUnmarshal checks them
// (types.TimestampFromProto): nanos in [0, 1e9), seconds within years 0001..9999.
// An absent timestamp is the Unix epoch (refused later as too old).

import { ProtoReader, WireType } from "./reader";
import { ProtoError } from "./types";
import { NS_PER_MS } from "../model/logtime";

/** One stream of a push: its labels as sent, and its entries' range in the columns. */
export interface DecodedLogStream {
  /** Loki's label string as sent ({app="x", env="prod"}), or null for a JSON stream (then `pairs`). */
  labels: string | null;
  /** JSON pushes: the `stream` object as [name, value, ...] in the order sent; null otherwise. */
  pairs: string[] | null;
  entryStart: number;
  entryCount: number;
}

/**
 * A decoded push, columnar: entry i has time (tsMs[i], tsNs[i]) (src/model/logtime.ts),
 * its line at buf[lineStart[i] .. lineStart[i] + lineLen[i]) (protobuf) or lines[i]
 * (JSON), and its structured metadata at meta[metaStart[i] .. metaStart[i] + 2 * metaPairs[i]).
 * The arrays may be longer than entryCount (capacity).
 */
export interface DecodedLogPush {
  streams: DecodedLogStream[];
  entryCount: number;
  tsMs: Float64Array;
  tsNs: Uint32Array;
  /** Protobuf: the decompressed request the line ranges point into; null for JSON. */
  buf: Uint8Array | null;
  lineStart: Uint32Array;
  lineLen: Uint32Array;
  /** JSON: the lines as strings; null for protobuf. */
  lines: string[] | null;
  metaStart: Uint32Array;
  metaPairs: Uint32Array;
  /** All entries' structured metadata, flat: [name, value, ...]. */
  meta: string[];
}

/** Growable entry columns, shared by the protobuf and JSON decoders. */
export class LogColumns {
  n = 0;
  tsMs: Float64Array;
  tsNs: Uint32Array;
  lineStart: Uint32Array;
  lineLen: Uint32Array;
  metaStart: Uint32Array;
  metaPairs: Uint32Array;
  readonly meta: string[] = [];
  readonly streams: DecodedLogStream[] = [];

  constructor(capacity: number) {
    const c = Math.max(16, capacity | 0);
    this.tsMs = new Float64Array(c);
    this.tsNs = new Uint32Array(c);
    this.lineStart = new Uint32Array(c);
    this.lineLen = new Uint32Array(c);
    this.metaStart = new Uint32Array(c);
    this.metaPairs = new Uint32Array(c);
  }

  /** Appends an entry; its metadata pairs are meta[metaFrom ..] (already pushed). */
  push(ms: number, ns: number, lineStart: number, lineLen: number, metaFrom: number): void {
    const n = this.n;
    if (n === this.tsMs.length) this.grow();
    this.tsMs[n] = ms;
    this.tsNs[n] = ns;
    this.lineStart[n] = lineStart;
    this.lineLen[n] = lineLen;
    this.metaStart[n] = metaFrom;
    this.metaPairs[n] = (this.meta.length - metaFrom) >> 1;
    this.n = n + 1;
  }

  private grow(): void {
    const cap = this.tsMs.length * 2;
    const g = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.tsMs = g(this.tsMs, (n) => new Float64Array(n));
    this.tsNs = g(this.tsNs, (n) => new Uint32Array(n));
    this.lineStart = g(this.lineStart, (n) => new Uint32Array(n));
    this.lineLen = g(this.lineLen, (n) => new Uint32Array(n));
    this.metaStart = g(this.metaStart, (n) => new Uint32Array(n));
    this.metaPairs = g(this.metaPairs, (n) => new Uint32Array(n));
  }

  finish(buf: Uint8Array | null, lines: string[] | null): DecodedLogPush {
    return {
      streams: this.streams,
      entryCount: this.n,
      tsMs: this.tsMs,
      tsNs: this.tsNs,
      buf,
      lineStart: this.lineStart,
      lineLen: this.lineLen,
      lines,
      metaStart: this.metaStart,
      metaPairs: this.metaPairs,
      meta: this.meta,
    };
  }
}

const K1_LEN = (1 << 3) | WireType.LEN;
const K1_VARINT = (1 << 3) | WireType.VARINT;
const K2_LEN = (2 << 3) | WireType.LEN;
const K2_VARINT = (2 << 3) | WireType.VARINT;
const K3_LEN = (3 << 3) | WireType.LEN;
const K3_VARINT = (3 << 3) | WireType.VARINT;

/** Go's time range for protobuf Timestamps (0001-01-01 .. 9999-12-31), in seconds. */
const MIN_SECONDS = -62135596800;
const MAX_SECONDS = 253402300800;

/** Decodes a logproto.PushRequest (already snappy-decompressed). Throws ProtoError on malformed input. */
export function decodePushRequest(buf: Uint8Array): DecodedLogPush {
  const r = new ProtoReader(buf);
  // ~1 entry per 128 bytes of request, at most 64Ki entries to start: the columns double as needed,
  // so a large request of long lines does not reserve columns for entries it does not have.
  const cols = new LogColumns(Math.min(buf.length >> 7, 1 << 16));
  while (r.more()) {
    const keyAt = r.pos;
    const tag = r.tag();
    if (tag === K1_LEN) decodeStream(r, cols);
    else if (tag >>> 3 === 1) r.wrongType("PushRequest.streams", tag, keyAt);
    else r.skipField(tag & 7);
  }
  return cols.finish(buf, null);
}

function decodeStream(r: ProtoReader, cols: LogColumns): void {
  const outer = r.enter();
  let labels = "";
  const entryStart = cols.n;
  while (r.more()) {
    const keyAt = r.pos;
    const tag = r.tag();
    switch (tag) {
      case K1_LEN:
        labels = r.string();
        break;
      case K2_LEN:
        decodeEntry(r, cols);
        break;
      case K3_VARINT:
        r.skipField(WireType.VARINT);
        break;
      default:
        if (tag >>> 3 <= 3) r.wrongType(["", "StreamAdapter.labels", "StreamAdapter.entries", "StreamAdapter.hash"][tag >>> 3], tag, keyAt);
        r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  cols.streams.push({ labels, pairs: null, entryStart, entryCount: cols.n - entryStart });
}

function decodeEntry(r: ProtoReader, cols: LogColumns): void {
  const outer = r.enter();
  const entryAt = r.pos;
  let seconds = 0;
  let nanos = 0;
  let lineStart = 0;
  let lineLen = 0;
  const metaFrom = cols.meta.length;
  while (r.more()) {
    const keyAt = r.pos;
    const tag = r.tag();
    switch (tag) {
      case K1_LEN: {
        // Repeated occurrences of a message field merge (protobuf); the last value of each scalar wins.
        const o = r.enter();
        while (r.more()) {
          const at = r.pos;
          const t = r.tag();
          if (t === K1_VARINT) seconds = r.int64();
          else if (t === K2_VARINT) nanos = r.int32();
          else if (t >>> 3 <= 2) r.wrongType(t >>> 3 === 1 ? "Timestamp.seconds" : "Timestamp.nanos", t, at);
          else r.skipField(t & 7);
        }
        r.leave(o);
        break;
      }
      case K2_LEN:
        lineLen = r.len();
        lineStart = r.pos;
        r.pos += lineLen;
        break;
      case K3_LEN: {
        const o = r.enter();
        let name = "";
        let value = "";
        while (r.more()) {
          const at = r.pos;
          const t = r.tag();
          if (t === K1_LEN) name = r.string();
          else if (t === K2_LEN) value = r.string();
          else if (t >>> 3 <= 2) r.wrongType(t >>> 3 === 1 ? "LabelPairAdapter.name" : "LabelPairAdapter.value", t, at);
          else r.skipField(t & 7);
        }
        r.leave(o);
        cols.meta.push(name, value);
        break;
      }
      default:
        if (tag >>> 3 <= 3) r.wrongType(["", "EntryAdapter.timestamp", "EntryAdapter.line", "EntryAdapter.structuredMetadata"][tag >>> 3], tag, keyAt);
        r.skipField(tag & 7);
    }
  }
  r.leave(outer);
  if (nanos < 0 || nanos >= 1e9) r.fail(`timestamp: nanos ${nanos} not in range [0, 1e9)`, entryAt);
  if (seconds < MIN_SECONDS) r.fail(`timestamp: seconds ${seconds} before 0001-01-01`, entryAt);
  if (seconds >= MAX_SECONDS) r.fail(`timestamp: seconds ${seconds} after 10000-01-01`, entryAt);
  const msInNanos = Math.floor(nanos / NS_PER_MS);
  cols.push(seconds * 1000 + msInNanos, nanos - msInNanos * NS_PER_MS, lineStart, lineLen, metaFrom);
}

/** Entry i's line as a view of the request (protobuf) or its string (JSON). */
export function entryLine(push: DecodedLogPush, i: number): Uint8Array | string {
  if (push.lines !== null) return push.lines[i];
  const start = push.lineStart[i];
  return push.buf!.subarray(start, start + push.lineLen[i]);
}

/** Entry i's structured metadata as [name, value, ...], or null when it has none. */
export function entryMeta(push: DecodedLogPush, i: number): string[] | null {
  const n = push.metaPairs[i];
  if (n === 0) return null;
  const from = push.metaStart[i];
  return push.meta.slice(from, from + 2 * n);
}

export { ProtoError };
