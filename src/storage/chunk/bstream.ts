// Bit streams for the chunk encodings, MSB-first within each byte like
// Prometheus's tsdb/chunkenc/bstream.go. Values are passed as uint32 words
// (64-bit quantities as hi/lo pairs) because JS bitwise ops are 32-bit and
// BigInt would allocate on the hot path.

import { ChunkCorruptError } from "./errors";

const EMPTY = new Uint8Array(0);

/**
 * Append-only bit writer over a growable byte buffer.
 *
 * Byte length follows Go's bstream exactly, so chunks are byte-identical to
 * Prometheus's: Go writes widths that are a multiple of 8 byte-by-byte
 * (`writeByte`), and each `writeByte` appends the next byte eagerly. So after a
 * write whose width is a multiple of 8 the stream ends with one spare zero
 * byte; after any other write it ends at the last partially filled byte.
 * Each `writeBit`/`writeBits`/`writeBits64` call here stands for one Go call.
 */
export class BitWriter {
  private buf: Uint8Array;
  /** Bits written so far; every bit at or after it is zero (writes OR into place). */
  private pos = 0;
  /** Byte length in Go's accounting (see class comment). */
  private len = 0;

  constructor(initialCapacity = 128) {
    this.buf = new Uint8Array(Math.max(16, Math.ceil(initialCapacity)));
  }

  /** Number of bits written. */
  get bitLength(): number {
    return this.pos;
  }

  /** Number of bytes in the stream, including Go's spare trailing byte if any. */
  get byteLength(): number {
    return this.len;
  }

  /**
   * Appends n zero bytes as a fixed prefix (a chunk header) that the caller
   * fills later with setByte. Like Go's `make([]byte, n)` stream start, this
   * leaves no spare byte, so it is only allowed at a clean byte boundary.
   */
  reserveBytes(n: number): void {
    if (this.pos !== this.len * 8) throw new Error("BitWriter.reserveBytes: not at a clean byte boundary");
    this.ensure(this.len + n + 5);
    this.len += n;
    this.pos = this.len * 8;
  }

  /** Overwrites an already written byte, e.g. a header patched after the payload. */
  setByte(index: number, value: number): void {
    if (index < 0 || index >= this.len) throw new RangeError(`BitWriter.setByte: index ${index} outside 0..${this.len - 1}`);
    this.buf[index] = value;
  }

  writeBit(bit: number): void {
    const p = this.pos;
    const i = p >>> 3;
    if (i + 5 > this.buf.length) this.ensure(i + 5);
    if (bit !== 0) this.buf[i] |= 0x80 >>> (p & 7);
    this.pos = p + 1;
    this.len = (p + 8) >>> 3;
  }

  /** Writes the low `nbits` (0..32) bits of `value`, most significant first. */
  writeBits(value: number, nbits: number): void {
    if (nbits === 0) return; // Go's writeBits(_, 0) is a no-op, length included.
    this.put(value, nbits);
    this.len = (nbits & 7) === 0 ? (this.pos >>> 3) + 1 : (this.pos + 7) >>> 3;
  }

  /** Writes the low `nbits` (0..64) bits of the 64-bit word hi:lo (uint32 halves). */
  writeBits64(hi: number, lo: number, nbits: number): void {
    if (nbits === 0) return;
    if (nbits > 32) {
      this.put(hi, nbits - 32);
      this.put(lo, 32);
    } else {
      this.put(lo, nbits);
    }
    this.len = (nbits & 7) === 0 ? (this.pos >>> 3) + 1 : (this.pos + 7) >>> 3;
  }

  /**
   * Same stream and byte length as writeBits(prefix, prefixBits) followed by
   * writeBits64(hi, lo, nbits), in fewer stores: a control prefix and its
   * payload usually fit one 32-bit write. prefixBits is 1..32.
   */
  writePrefixed64(prefix: number, prefixBits: number, hi: number, lo: number, nbits: number): void {
    if (nbits > 32) {
      const h = nbits - 32;
      if (prefixBits + h <= 32) {
        this.put((prefix << h) | (hi & ((1 << h) - 1)), prefixBits + h);
      } else {
        this.put(prefix, prefixBits);
        this.put(hi, h);
      }
      this.put(lo, 32);
    } else if (prefixBits + nbits <= 32) {
      // nbits <= 31 here, so the mask is exact.
      this.put(nbits === 0 ? prefix : (prefix << nbits) | (lo & ((1 << nbits) - 1)), prefixBits + nbits);
    } else {
      this.put(prefix, prefixBits);
      this.put(lo, nbits);
    }
    // Go's length is decided by the last call, the payload's; an empty payload leaves the prefix's.
    const last = nbits === 0 ? prefixBits : nbits;
    this.len = (last & 7) === 0 ? (this.pos >>> 3) + 1 : (this.pos + 7) >>> 3;
  }

  writeByte(byte: number): void {
    this.writeBits(byte, 8);
  }

  /** View of the written bytes; valid until the next write (the buffer may move). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** Exact-size copy of the written bytes, independent of this writer. */
  trimmed(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  /** Empties the stream, keeping the buffer for reuse. */
  reset(): void {
    // Only bytes below len can be non-zero, so this restores the all-zero tail invariant.
    this.buf.fill(0, 0, this.len);
    this.pos = 0;
    this.len = 0;
  }

  /**
   * Writes 1..32 bits without updating len. Stores a 40-bit window (5 bytes)
   * unconditionally: the first byte is ORed, the other four can be assigned
   * because everything past `pos` is zero.
   */
  private put(value: number, n: number): void {
    const p = this.pos;
    const i = p >>> 3;
    if (i + 5 > this.buf.length) this.ensure(i + 5);
    const s = p & 7;
    const v = value << (32 - n); // top-align; also drops bits above n
    const b = this.buf;
    b[i] |= v >>> (24 + s);
    b[i + 1] = v >>> (16 + s);
    b[i + 2] = v >>> (8 + s);
    b[i + 3] = v >>> s;
    b[i + 4] = v << (8 - s);
    this.pos = p + n;
  }

  private ensure(min: number): void {
    if (min <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < min) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf);
    this.buf = next;
  }
}

/**
 * Bit reader over a byte range. Reading past the end throws ChunkCorruptError
 * (Go returns io.EOF), and after that every further read throws too.
 */
export class BitReader {
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private end = 0;
  /** High word of the last readBits64 result (uint32). */
  hi = 0;
  /** Low word of the last readBits64 result (uint32). */
  lo = 0;

  constructor(bytes?: Uint8Array, byteOffset = 0, byteEnd?: number) {
    if (bytes !== undefined) this.reset(bytes, byteOffset, byteEnd);
  }

  /** Re-targets the reader at bytes[byteOffset, byteEnd) without allocating. */
  reset(bytes: Uint8Array, byteOffset = 0, byteEnd: number = bytes.length): void {
    if (byteOffset < 0 || byteEnd > bytes.length || byteOffset > byteEnd) {
      throw new RangeError(`BitReader: range ${byteOffset}..${byteEnd} outside 0..${bytes.length}`);
    }
    this.buf = bytes;
    this.pos = byteOffset * 8;
    this.end = byteEnd * 8;
    this.hi = 0;
    this.lo = 0;
  }

  /** Absolute bit position in the underlying bytes. */
  get bitPosition(): number {
    return this.pos;
  }

  get bitsLeft(): number {
    return this.end - this.pos;
  }

  readBit(): number {
    const p = this.pos;
    if (p >= this.end) throw this.eof(1);
    this.pos = p + 1;
    return (this.buf[p >>> 3] >>> (7 - (p & 7))) & 1;
  }

  /** Reads 1..32 bits as an unsigned number. */
  readBits(n: number): number {
    const p = this.pos;
    const q = p + n;
    if (q > this.end) throw this.eof(n);
    this.pos = q;
    const b = this.buf;
    const i = p >>> 3;
    if (i + 4 < b.length) {
      // 5 bytes hold any 32-bit field at any bit offset; bytes past `end` are
      // fetched but shifted out, never used.
      const s = p & 7;
      let x = ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) << s;
      if (s + n > 32) x |= b[i + 4] >>> (8 - s);
      return x >>> (32 - n);
    }
    return this.readSlow(p, n);
  }

  /**
   * Returns the next 1..24 bits without consuming them; bits past the end read
   * as 0. Lets a decoder look at a variable-length prefix and then consume
   * prefix and payload in one readBits.
   */
  peekBits(n: number): number {
    const p = this.pos;
    const b = this.buf;
    const i = p >>> 3;
    if (i + 4 <= this.end >>> 3) {
      // 4 bytes hold at least 25 bits from any bit offset.
      return ((((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) << (p & 7)) >>> (32 - n));
    }
    const left = this.end - p;
    if (left >= n) return this.readSlow(p, n);
    return left <= 0 ? 0 : this.readSlow(p, left) << (n - left);
  }

  /** Consumes n bits, e.g. ones already looked at with peekBits. */
  skip(n: number): void {
    if (this.pos + n > this.end) throw this.eof(n);
    this.pos += n;
  }

  /** Reads 1..64 bits into `hi`/`lo` (uint32 halves, hi = 0 when n <= 32). */
  readBits64(n: number): void {
    if (this.pos + n > this.end) throw this.eof(n);
    if (n > 32) {
      this.hi = this.readBits(n - 32);
      this.lo = this.readBits(32);
    } else {
      this.hi = 0;
      this.lo = this.readBits(n);
    }
  }

  readByte(): number {
    return this.readBits(8);
  }

  /** Makes every further read fail; used when the caller found the data corrupt. */
  exhaust(): void {
    this.pos = this.end;
  }

  // Near the end of the buffer: byte at a time, never indexing out of range.
  private readSlow(p: number, n: number): number {
    const b = this.buf;
    let v = 0;
    while (n > 0) {
      const avail = 8 - (p & 7);
      const take = n < avail ? n : avail;
      v = (v << take) | ((b[p >>> 3] >>> (avail - take)) & ((1 << take) - 1));
      p += take;
      n -= take;
    }
    return v >>> 0;
  }

  private eof(n: number): ChunkCorruptError {
    const left = this.end - this.pos;
    this.pos = this.end;
    return new ChunkCorruptError(`bit stream truncated: needed ${n} bits, ${left} left`);
  }
}
