// A minimal protobuf wire-format writer into one growable buffer, reused across
// messages (reset() ... finish()).
//
// Field methods take the field number first and write key and value, always
// (proto3 default-value omission is the caller's choice): w.string(4, ""),
// w.int64(2, -1), w.message(5, () => ...). raw* methods write a bare value.
//
// Nested messages are written in place: fork() reserves one byte for the length,
// ldelim() patches it and, for sub-messages of 128 bytes or more, shifts the
// payload right by the extra length bytes. That is one memmove per large
// sub-message instead of a size-computing pass over every message, and the output
// is the canonical (minimal-varint) encoding. message(field, fn) wraps the two for
// tests and tools; the encoders' loops use fork/ldelim (no closure per message).

import { WireType } from "./reader";

const TWO32 = 4294967296;
/** Capacity above which finish() lets go of the buffer, so one huge message does not pin memory. */
const KEEP_MAX = 4 << 20;
const utf8 = new TextEncoder();

export class ProtoWriter {
  buf: Uint8Array;
  pos = 0;
  private view: DataView;
  private readonly initial: number;
  private lo = 0;
  private hi = 0;

  constructor(initialCapacity = 4096) {
    this.initial = Math.max(16, initialCapacity);
    this.buf = new Uint8Array(this.initial);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  reset(): this {
    this.pos = 0;
    return this;
  }

  /** A copy of the bytes written; the writer is reset and may be reused. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    if (this.buf.length > KEEP_MAX) {
      this.buf = new Uint8Array(this.initial);
      this.view = new DataView(this.buf.buffer);
    }
    return out;
  }

  /** A view of the bytes written so far, no copy (valid until the next write or reset). */
  written(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** Makes room for n more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  // -- Fields: key then value -------------------------------------------------

  /** A field key: (field << 3) | wireType. */
  tag(field: number, wireType: WireType): this {
    return this.rawVarint32(((field << 3) | wireType) >>> 0);
  }

  uint32(field: number, v: number): this {
    return this.tag(field, WireType.VARINT).rawVarint32(v);
  }
  /** int32 and enums: negative values are sign-extended to 10 bytes, as protobuf requires. */
  int32(field: number, v: number): this {
    return this.tag(field, WireType.VARINT).rawInt32(v);
  }
  /** int64 from a number (an integer within ±2^53); negatives as 10-byte two's complement. */
  int64(field: number, v: number): this {
    return this.tag(field, WireType.VARINT).rawInt64(v);
  }
  /** uint64 from a non-negative integer number (exact up to 2^53). */
  uint64(field: number, v: number): this {
    return this.tag(field, WireType.VARINT).rawInt64(v);
  }
  sint32(field: number, v: number): this {
    return this.tag(field, WireType.VARINT).rawVarint32(((v << 1) ^ (v >> 31)) >>> 0);
  }
  sint64(field: number, v: number): this {
    return this.tag(field, WireType.VARINT).rawSint64(v);
  }
  bool(field: number, v: boolean): this {
    return this.tag(field, WireType.VARINT).rawVarint32(v ? 1 : 0);
  }
  /** A little-endian double; NaN payloads (Prometheus stale markers) are kept bit for bit. */
  double(field: number, v: number): this {
    return this.tag(field, WireType.I64).rawDouble(v);
  }
  /**
   * A double given as its two little-endian 32-bit words. Read paths use this: a
   * signalling NaN (the stale marker) can be quieted by V8 when it travels as a number.
   */
  doubleWords(field: number, lo: number, hi: number): this {
    this.tag(field, WireType.I64);
    this.ensure(8);
    this.view.setUint32(this.pos, lo, true);
    this.view.setUint32(this.pos + 4, hi, true);
    this.pos += 8;
    return this;
  }
  fixed64(field: number, v: number): this {
    this.tag(field, WireType.I64);
    this.ensure(8);
    this.split(v);
    this.view.setUint32(this.pos, this.lo, true);
    this.view.setUint32(this.pos + 4, this.hi, true);
    this.pos += 8;
    return this;
  }
  fixed32(field: number, v: number): this {
    this.tag(field, WireType.I32);
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
    return this;
  }
  /** A UTF-8 string. */
  string(field: number, s: string): this {
    return this.tag(field, WireType.LEN).rawString(s);
  }
  bytes(field: number, b: Uint8Array): this {
    return this.tag(field, WireType.LEN).rawBytes(b);
  }
  /** A packed repeated uint32 (written even when empty, as an empty field). */
  packedUint32(field: number, values: ArrayLike<number>): this {
    const m = this.fork(field);
    for (let i = 0; i < values.length; i++) this.rawVarint32(values[i]);
    return this.ldelim(m);
  }
  /** A packed repeated int32/enum. */
  packedInt32(field: number, values: ArrayLike<number>): this {
    const m = this.fork(field);
    for (let i = 0; i < values.length; i++) this.rawInt32(values[i]);
    return this.ldelim(m);
  }
  /** A sub-message whose fields `write` writes. */
  message(field: number, write: () => void): this {
    const m = this.fork(field);
    write();
    return this.ldelim(m);
  }

  /**
   * Starts a length-delimited field (key, then one reserved length byte); returns
   * the mark to hand to ldelim() once its payload is written.
   */
  fork(field: number): number {
    this.tag(field, WireType.LEN);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the field started at `mark`: writes its length, shifting the payload if the length needs more than 1 byte. */
  ldelim(mark: number): this {
    const len = this.pos - mark - 1;
    if (len < 0x80) {
      this.buf[mark] = len;
      return this;
    }
    const size = varintSize(len);
    this.ensure(size - 1);
    const buf = this.buf;
    buf.copyWithin(mark + size, mark + 1, this.pos);
    let v = len;
    let p = mark;
    while (v >= 0x80) {
      buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[p] = v;
    this.pos += size - 1;
    return this;
  }

  // -- Bare values ---------------------------------------------------------------

  /** A varint of an unsigned 32-bit value (v is taken modulo 2^32). */
  rawVarint32(v: number): this {
    this.ensure(5);
    const buf = this.buf;
    let pos = this.pos;
    v >>>= 0;
    while (v >= 0x80) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
    return this;
  }

  rawInt32(v: number): this {
    if (v >= 0) return this.rawVarint32(v);
    return this.varint64(v | 0, -1);
  }

  rawInt64(v: number): this {
    if (v >= 0 && v < TWO32) return this.rawVarint32(v);
    this.split(v);
    return this.varint64(this.lo, this.hi);
  }

  rawSint64(v: number): this {
    this.split(v);
    const lo = this.lo;
    const hi = this.hi;
    const sign = hi >> 31;
    return this.varint64((lo << 1) ^ sign, ((hi << 1) | (lo >>> 31)) ^ sign);
  }

  rawDouble(v: number): this {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
    return this;
  }

  /** Length-prefixed UTF-8: short ASCII strings are copied char by char, anything else goes through TextEncoder. */
  rawString(s: string): this {
    const n = s.length;
    if (n < 0x80) {
      this.ensure(n + 1);
      const buf = this.buf;
      const start = this.pos;
      let pos = start + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[pos++] = c;
      }
      if (i === n) {
        buf[start] = n;
        this.pos = pos;
        return this;
      }
    }
    return this.rawBytes(utf8.encode(s));
  }

  /** Length-prefixed bytes. */
  rawBytes(b: Uint8Array): this {
    this.rawVarint32(b.length);
    return this.raw(b);
  }

  /** Bytes as they are, no prefix. */
  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Two's complement halves of an integer number (exact within ±2^53) into this.lo / this.hi, as uint32s. */
  private split(v: number): void {
    const a = Math.abs(Math.trunc(v));
    let lo = a % TWO32 >>> 0;
    let hi = Math.floor(a / TWO32) >>> 0;
    if (v < 0) {
      lo = (~lo + 1) >>> 0;
      hi = lo === 0 ? (~hi + 1) >>> 0 : ~hi >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
  }

  private varint64(lo: number, hi: number): this {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    lo >>>= 0;
    hi >>>= 0;
    while (hi !== 0 || lo >= 0x80) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
    return this;
  }
}

/** Bytes of the varint encoding of a non-negative 32-bit value. */
export function varintSize(v: number): number {
  v >>>= 0;
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}
