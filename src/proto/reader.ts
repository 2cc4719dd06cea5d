// A minimal protobuf wire-format reader over a Uint8Array, for the hand-written
// decoders of this directory (see remote_write.ts for why they are hand-written).
//
// Positions are byte offsets into `buf`. `end` bounds the message being read:
// entering a length-delimited sub-message narrows it (enter/leave), so reading
// past a sub-message's end is caught like reading past the buffer's end. Every
// overrun, truncation, over-long varint or bad wire type throws ProtoError naming
// what was being read and the byte offset; nothing else is thrown for any input.
//
// Numbers: varints are read as two 32-bit halves. uint64/int64 come back as JS
// numbers, exact up to 2^53 in magnitude (timestamps in ms are ~2^41); negative
// int64 values (10-byte two's-complement varints) come back negative.
//
// Strings: protobuf strings are UTF-8. Short all-ASCII strings (the usual label
// names and values) go through an interning cache checked against the bytes, so
// the label names and common values repeated in every series of a request share
// one string and cost no allocation after the first; strings are made by
// TextDecoder with fatal: false, i.e. invalid UTF-8 becomes U+FFFD rather than
// failing the whole message. That matches the Go receivers (gogo-protobuf does not
// check UTF-8 when unmarshalling); Prometheus then refuses invalid UTF-8 label
// values at validation, and so do we: src/distributor/validate.ts refuses label
// values containing U+FFFD. (A sender's genuine, validly encoded U+FFFD is refused
// too; that is the price of not scanning twice.)

import { ProtoError } from "./types";

/** Protobuf wire types. Groups (3, 4) are deprecated and refused. */
export const enum WireType {
  VARINT = 0,
  I64 = 1,
  LEN = 2,
  SGROUP = 3,
  EGROUP = 4,
  I32 = 5,
}

const TWO32 = 4294967296;

/** Longest string looked up in the interning cache (longer ones are rarely repeated). */
const ASCII_MAX = 48;
/**
 * Interning cache: direct-mapped by an FNV-1a hash of the bytes; shared by all
 * readers (strings are immutable). 16384 slots keep the ~2,000 distinct label
 * names and values of a typical 2,000-series request mostly collision-free
 * (4096 slots missed ~19% of them); at most ~1 MB of strings.
 */
const CACHE_SIZE = 16384;
const cache: string[] = new Array<string>(CACHE_SIZE).fill("");
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export class ProtoReader {
  buf: Uint8Array;
  /** Offset of the next byte to read. */
  pos: number;
  /** End (exclusive) of the message being read. */
  end: number;
  private view: DataView;
  /** Halves of the last varint read by the slow path. */
  private lo = 0;
  private hi = 0;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Whether the current message has more bytes. */
  more(): boolean {
    return this.pos < this.end;
  }

  fail(what: string, at: number = this.pos): never {
    throw new ProtoError(`${what} at byte offset ${at}`);
  }

  /**
   * Reads a field key: (field number << 3) | wire type. Field number 0 and keys
   * longer than 32 bits are refused, as Go's protowire refuses them.
   */
  tag(): number {
    const pos = this.pos;
    if (pos < this.end) {
      const b = this.buf[pos];
      if (b < 0x80) {
        if (b < 8) this.fail(`invalid field number 0 (key byte ${b})`, pos);
        this.pos = pos + 1;
        return b;
      }
    }
    this.varintParts("field key");
    if (this.hi !== 0) this.fail("field number out of range", pos);
    const t = this.lo >>> 0;
    if (t < 8) this.fail("invalid field number 0", pos);
    return t;
  }

  /** A varint as uint32 (higher bits of a longer varint are dropped, as protobuf does for uint32/int32/enum fields). */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos + 5 <= this.end) {
      let b = buf[pos++];
      let v = b & 0x7f;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
      b = buf[pos++];
      v |= (b & 0x7f) << 7;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
      b = buf[pos++];
      v |= (b & 0x7f) << 14;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
      b = buf[pos++];
      v |= (b & 0x7f) << 21;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
      b = buf[pos++];
      v |= b << 28;
      if (b < 0x80) {
        this.pos = pos;
        return v >>> 0;
      }
    }
    this.varintParts("varint");
    return this.lo >>> 0;
  }

  /** A varint as int32 (enum values; negative ones are sign-extended 10-byte varints). */
  int32(): number {
    return this.uint32() | 0;
  }

  /** An int64 varint as a number: negative values come back negative; exact within ±2^53. */
  int64(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos + 10 <= this.end) {
      let b = buf[pos++];
      let lo = b & 0x7f;
      if (b < 0x80) {
        this.pos = pos;
        return lo;
      }
      b = buf[pos++];
      lo |= (b & 0x7f) << 7;
      if (b < 0x80) {
        this.pos = pos;
        return lo;
      }
      b = buf[pos++];
      lo |= (b & 0x7f) << 14;
      if (b < 0x80) {
        this.pos = pos;
        return lo;
      }
      b = buf[pos++];
      lo |= (b & 0x7f) << 21;
      if (b < 0x80) {
        this.pos = pos;
        return lo;
      }
      b = buf[pos++];
      lo |= b << 28;
      let hi = (b & 0x7f) >> 4;
      if (b < 0x80) {
        this.pos = pos;
        return hi * TWO32 + (lo >>> 0);
      }
      b = buf[pos++];
      hi |= (b & 0x7f) << 3;
      if (b < 0x80) {
        this.pos = pos;
        return hi * TWO32 + (lo >>> 0);
      }
      b = buf[pos++];
      hi |= (b & 0x7f) << 10;
      if (b < 0x80) {
        this.pos = pos;
        return hi * TWO32 + (lo >>> 0);
      }
      b = buf[pos++];
      hi |= (b & 0x7f) << 17;
      if (b < 0x80) {
        this.pos = pos;
        return hi * TWO32 + (lo >>> 0);
      }
      b = buf[pos++];
      hi |= (b & 0x7f) << 24;
      if (b < 0x80) {
        this.pos = pos;
        return (hi | 0) * TWO32 + (lo >>> 0);
      }
      b = buf[pos++];
      if (b > 1) this.fail("varint overflows 64 bits", this.pos);
      hi |= b << 31;
      this.pos = pos;
      return (hi | 0) * TWO32 + (lo >>> 0);
    }
    this.varintParts("varint");
    return (this.hi | 0) * TWO32 + (this.lo >>> 0);
  }

  /** A uint64 varint as a number (exact up to 2^53). */
  uint64(): number {
    this.varintParts("varint");
    return (this.hi >>> 0) * TWO32 + (this.lo >>> 0);
  }

  /** A zigzag-encoded sint32. */
  sint32(): number {
    const n = this.uint32();
    return (n >>> 1) ^ -(n & 1);
  }

  /** A zigzag-encoded sint64 as a number (exact within ±2^53). */
  sint64(): number {
    this.varintParts("varint");
    const neg = -(this.lo & 1);
    const lo = ((this.lo >>> 1) | (this.hi << 31)) ^ neg;
    const hi = (this.hi >>> 1) ^ neg;
    return (hi | 0) * TWO32 + (lo >>> 0);
  }

  bool(): boolean {
    this.varintParts("varint");
    return (this.lo | this.hi) !== 0;
  }

  /** A little-endian IEEE 754 double (wire type 1); NaN payloads are kept bit for bit. */
  double(): number {
    const pos = this.pos;
    if (pos + 8 > this.end) this.fail(`truncated double: 8 bytes needed, ${this.end - pos} left`, pos);
    this.pos = pos + 8;
    return this.view.getFloat64(pos, true);
  }

  /** A little-endian fixed64 as a number (exact up to 2^53). */
  fixed64(): number {
    const pos = this.pos;
    if (pos + 8 > this.end) this.fail(`truncated fixed64: 8 bytes needed, ${this.end - pos} left`, pos);
    this.pos = pos + 8;
    return this.view.getUint32(pos + 4, true) * TWO32 + this.view.getUint32(pos, true);
  }

  fixed32(): number {
    const pos = this.pos;
    if (pos + 4 > this.end) this.fail(`truncated fixed32: 4 bytes needed, ${this.end - pos} left`, pos);
    this.pos = pos + 4;
    return this.view.getUint32(pos, true);
  }

  /**
   * Reads a length prefix and checks that many bytes remain in the current
   * message; returns the length, leaving pos at the first byte of the payload.
   */
  len(): number {
    const at = this.pos;
    const buf = this.buf;
    let n: number;
    if (at < this.end && buf[at] < 0x80) {
      n = buf[at];
      this.pos = at + 1;
    } else {
      this.varintParts("length");
      if (this.hi !== 0 || this.lo < 0) this.fail("length-delimited field longer than 2^31 bytes", at);
      n = this.lo;
    }
    if (n > this.end - this.pos) {
      this.fail(`length-delimited field of ${n} bytes overruns its message (${this.end - this.pos} bytes left)`, at);
    }
    return n;
  }

  /**
   * Enters a length-delimited sub-message: narrows `end` to it and returns the
   * outer end, to be handed back to leave().
   */
  enter(): number {
    const n = this.len();
    const outer = this.end;
    this.end = this.pos + n;
    return outer;
  }

  /** Leaves a sub-message entered with enter(); pos must be at its end. */
  leave(outer: number): void {
    if (this.pos !== this.end) this.fail(`sub-message not fully read (ends at ${this.end})`);
    this.end = outer;
  }

  /** The payload of a length-delimited field, as a view (no copy). */
  bytes(): Uint8Array {
    const n = this.len();
    const start = this.pos;
    this.pos = start + n;
    return this.buf.subarray(start, start + n);
  }

  /** A length-delimited UTF-8 string (invalid UTF-8 becomes U+FFFD; see the header). */
  string(): string {
    const n = this.len();
    const start = this.pos;
    this.pos = start + n;
    return this.stringAt(start, n);
  }

  /**
   * The UTF-8 string of the n bytes at start (which the caller has bounds-checked);
   * does not move pos.
   */
  stringAt(start: number, n: number): string {
    if (n === 0) return "";
    const buf = this.buf;
    const end = start + n;
    if (n <= ASCII_MAX) {
      let h = 0x811c9dc5 | 0;
      let any = 0;
      for (let i = start; i < end; i++) {
        const c = buf[i];
        any |= c;
        h = Math.imul(h ^ c, 16777619);
      }
      if (any < 0x80) {
        const slot = h & (CACHE_SIZE - 1);
        const hit = cache[slot];
        if (hit.length === n) {
          let i = 0;
          while (i < n && hit.charCodeAt(i) === buf[start + i]) i++;
          if (i === n) return hit;
        }
        // TextDecoder makes a flat string; building it with += would leave a rope
        // that every later charCodeAt comparison above walks (2x slower overall).
        const s = utf8.decode(buf.subarray(start, end));
        cache[slot] = s;
        return s;
      }
    }
    return utf8.decode(buf.subarray(start, end));
  }

  /** Skips the value of a field of the given wire type (tag & 7); groups and wire types 6/7 are refused. */
  skipField(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varintParts("varint");
        return;
      case WireType.I64:
        if (this.pos + 8 > this.end) this.fail(`truncated fixed64: 8 bytes needed, ${this.end - this.pos} left`);
        this.pos += 8;
        return;
      case WireType.LEN: {
        const n = this.len();
        this.pos += n;
        return;
      }
      case WireType.I32:
        if (this.pos + 4 > this.end) this.fail(`truncated fixed32: 4 bytes needed, ${this.end - this.pos} left`);
        this.pos += 4;
        return;
      case WireType.SGROUP:
      case WireType.EGROUP:
        this.fail(`group (wire type ${wireType}) not supported`, this.pos - 1);
      default:
        this.fail(`invalid wire type ${wireType}`, this.pos - 1);
    }
  }

  /** Throws the error for a known field sent with the wrong wire type. */
  wrongType(field: string, tag: number, keyAt: number): never {
    this.fail(`field ${field} (number ${tag >>> 3}) has wire type ${tag & 7}`, keyAt);
  }

  /**
   * The general varint path: bounds-checked, at most 10 bytes, the 10th at most 1;
   * leaves the value's low and high 32 bits in this.lo / this.hi.
   */
  private varintParts(what: string): void {
    const buf = this.buf;
    const end = this.end;
    const start = this.pos;
    let pos = start;
    let lo = 0;
    let hi = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (pos >= end) this.fail(`truncated ${what}`, start);
      const b = buf[pos++];
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= b << 28;
        hi = (b & 0x7f) >> 4;
      } else if (shift < 63) hi |= (b & 0x7f) << (shift - 32);
      else {
        if (b > 1) this.fail(`${what} overflows 64 bits`, start);
        hi |= b << 31;
      }
      if (b < 0x80) {
        this.pos = pos;
        this.lo = lo;
        this.hi = hi;
        return;
      }
    }
    this.fail(`${what} longer than 10 bytes`, start);
  }
}
