// One push's log streams for one shard, as bytes: built by the distributor, sent as
// the shard RPC's single argument (one structured-clone copy, no object per entry)
// and stored unchanged as the WAL record, so the ingester never re-encodes it.
//
//   batch  := 0x4c 'L' | version u8 (1) | uvarint streams | stream*
//   stream := string labels (canonical {a="b", c="d"}) | uvarint entries | entry*
//   entry  := varint ms | uvarint ns (0..999,999) | uvarint len | line bytes (UTF-8)
//             | uvarint metaPairs | (string name | string value)*
//   string := uvarint len | UTF-8 bytes

import { ByteReader, ByteWriter, CorruptDataError } from "../../model/bytes";

const MAGIC = 0x4c;
const VERSION = 1;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

export class LogBatchWriter {
  private w = new ByteWriter(64 * 1024);
  private streams = 0;
  private entriesPos = -1;
  private entries = 0;
  private streamsPos = 0;

  constructor() {
    this.reset();
  }

  reset(): void {
    this.w.reset();
    this.w.u8(MAGIC);
    this.w.u8(VERSION);
    // Stream count is patched in finish(): a fixed 4-byte varint slot.
    this.streamsPos = this.w.pos;
    this.w.u32(0);
    this.streams = 0;
    this.entriesPos = -1;
  }

  get streamCount(): number {
    return this.streams;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.w.pos;
  }

  beginStream(labels: string): void {
    this.endStream();
    this.w.string(labels);
    this.entriesPos = this.w.pos;
    this.w.u32(0);
    this.entries = 0;
    this.streams++;
  }

  /** One entry. `line` as bytes (protobuf push) or string (JSON push). `meta` is [name, value, ...] or null. */
  entry(ms: number, ns: number, line: Uint8Array | string, meta: readonly string[] | null): void {
    const w = this.w;
    w.varint(ms);
    w.uvarint(ns);
    if (typeof line === "string") line = encoder.encode(line);
    w.uvarint(line.length);
    w.bytes(line);
    const n = meta ? meta.length >> 1 : 0;
    w.uvarint(n);
    for (let i = 0; i < n * 2; i++) w.string(meta![i]);
    this.entries++;
  }

  private endStream(): void {
    if (this.entriesPos >= 0) patchVarint4(this.w.buf, this.entriesPos, this.entries);
    this.entriesPos = -1;
  }

  /** The batch as an exact-size copy; the writer may be reset and reused. */
  finish(): Uint8Array {
    this.endStream();
    patchVarint4(this.w.buf, this.streamsPos, this.streams);
    return this.w.finish();
  }
}

/** A varint in a fixed 4-byte slot (padded with continuation bytes): up to 2^28 - 1. */
function patchVarint4(b: Uint8Array, pos: number, v: number): void {
  if (v >= 1 << 28) throw new RangeError(`count ${v} does not fit a batch`);
  b[pos] = (v & 0x7f) | 0x80;
  b[pos + 1] = ((v >>> 7) & 0x7f) | 0x80;
  b[pos + 2] = ((v >>> 14) & 0x7f) | 0x80;
  b[pos + 3] = (v >>> 21) & 0x7f;
}

/**
 * Reads a batch without an object per entry: call nextStream(), then nextEntry()
 * until it returns false; the fields describe the current entry. `line()` decodes
 * the current line; `lineBytes()` is a view into the batch.
 */
export class LogBatchReader {
  private r: ByteReader;
  private streamsLeft: number;
  private entriesLeft = 0;
  labels = "";
  entryCount = 0;
  ms = 0;
  ns = 0;
  private lineStart = 0;
  private lineEnd = 0;
  /** Structured metadata of the current entry, [name, value, ...]; null when it has none. */
  meta: string[] | null = null;

  constructor(readonly buf: Uint8Array) {
    this.r = new ByteReader(buf, "log batch");
    if (buf.length < 2 || buf[0] !== MAGIC) throw new CorruptDataError("corrupt log batch: bad magic");
    if (buf[1] !== VERSION) throw new CorruptDataError(`corrupt log batch: unknown version ${buf[1]}`);
    this.r.pos = 2;
    this.streamsLeft = this.r.uvarint();
  }

  nextStream(): boolean {
    while (this.entriesLeft > 0) this.nextEntry();
    if (this.streamsLeft === 0) {
      if (!this.r.done) throw new CorruptDataError("corrupt log batch: bytes after the last stream");
      return false;
    }
    this.streamsLeft--;
    this.labels = this.r.string();
    this.entryCount = this.entriesLeft = this.r.uvarint();
    return true;
  }

  nextEntry(): boolean {
    if (this.entriesLeft === 0) return false;
    this.entriesLeft--;
    const r = this.r;
    this.ms = r.varint();
    this.ns = r.uvarint();
    if (this.ns >= 1_000_000) throw new CorruptDataError(`corrupt log batch: ns ${this.ns} out of range`);
    const len = r.uvarint();
    this.lineStart = r.pos;
    r.bytes(len);
    this.lineEnd = r.pos;
    const pairs = r.uvarint();
    if (pairs === 0) this.meta = null;
    else {
      const meta = new Array<string>(pairs * 2);
      for (let i = 0; i < pairs * 2; i++) meta[i] = r.string();
      this.meta = meta;
    }
    return true;
  }

  lineBytes(): Uint8Array {
    return this.buf.subarray(this.lineStart, this.lineEnd);
  }

  line(): string {
    return decoder.decode(this.buf.subarray(this.lineStart, this.lineEnd));
  }

  get lineLength(): number {
    return this.lineEnd - this.lineStart;
  }
}
