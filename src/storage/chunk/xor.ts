// Prometheus's XOR chunk (tsdb/chunkenc/xor.go, Gorilla compression), byte for
// byte, so chunks are interchangeable with Prometheus. Layout: docs/chunk-format.md.
//
// Go works on int64 timestamps and float64 bits. Here timestamps are JS
// numbers restricted to safe integers, and values are handled as their raw
// bits in two uint32 words, never as floats, so NaN payloads (the stale
// marker 0x7ff0000000000002) and -0 survive.

import { BitReader, BitWriter } from "./bstream";
import { ChunkCorruptError } from "./errors";

// Float64 <-> bits scratch. Word order follows platform endianness.
const F64 = new Float64Array(1);
// Int32 words, not Uint32: XOR and shifts yield int32 anyway, and uint32
// values above 2^31 would make V8 fall back to doubles.
const I32 = new Int32Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = LITTLE_ENDIAN ? 0 : 1;

const TWO32 = 4294967296;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** The header is a uint16 sample count. */
export const XOR_MAX_SAMPLES = 0xffff;
/** Prometheus's stale marker, value.StaleNaN = 0x7ff0000000000002, as words. */
export const STALE_NAN_HI = 0x7ff00000;
export const STALE_NAN_LO = 0x00000002;
/** The stale marker with the quiet bit set, which is what V8 may turn it into. */
const QUIETED_STALE_NAN_HI = 0x7ff80000;
/** Bytes before the bit stream: the big-endian sample count. */
const HEADER_BYTES = 2;
/** `leading` value meaning "no XOR window chosen yet" (Go uses the same 0xff). */
const NO_WINDOW = 0xff;

function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** Go's binary.PutUvarint of the uint64 hi:lo, one writeByte per byte as Go does. */
function writeUvarint64(w: BitWriter, hi: number, lo: number): void {
  hi >>>= 0;
  lo >>>= 0;
  while (hi !== 0 || lo >= 0x80) {
    w.writeBits((lo & 0x7f) | 0x80, 8);
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  w.writeBits(lo, 8);
}

/** Go's binary.PutVarint (zigzag) of a safe integer. */
function writeVarint(w: BitWriter, x: number): void {
  // Two's complement words; floor division keeps hi right for negatives.
  const hi = Math.floor(x / TWO32) | 0;
  const lo = x >>> 0;
  const sign = hi >> 31;
  writeUvarint64(w, ((hi << 1) | (lo >>> 31)) ^ sign, (lo << 1) ^ sign);
}

// readUvarint64's result; module scratch so decoding does not allocate.
let varHi = 0;
let varLo = 0;

/** Go's binary.ReadUvarint into varHi:varLo, with its overflow rule (at most 10 bytes, the 10th <= 1). */
function readUvarint64(r: BitReader): void {
  let hi = 0;
  let lo = 0;
  for (let i = 0, s = 0; i < 10; i++, s += 7) {
    const b = r.readBits(8);
    const bits = b & 0x7f;
    if (s < 28) lo |= bits << s;
    else if (s === 28) {
      lo |= bits << 28;
      hi |= bits >>> 4;
    } else hi |= bits << (s - 32);
    if (b < 0x80) {
      if (i === 9 && b > 1) break;
      varHi = hi >>> 0;
      varLo = lo >>> 0;
      return;
    }
  }
  r.exhaust();
  throw new ChunkCorruptError("XOR chunk: varint overflows 64 bits");
}

/** int64 hi:lo as a number; throws if outside the safe-integer range, which this port cannot represent. */
function int64ToSafe(r: BitReader, hi: number, lo: number, what: string): number {
  hi |= 0;
  // |hi| < 2^21 keeps hi * 2^32 + lo exact; the bound check then trims to ±(2^53 - 1).
  const x = hi >= -0x200000 && hi < 0x200000 ? hi * TWO32 + (lo >>> 0) : NaN;
  if (!(x >= -MAX_SAFE && x <= MAX_SAFE)) {
    r.exhaust();
    throw new ChunkCorruptError(`XOR chunk: ${what} is outside the safe-integer range`);
  }
  return x;
}

/**
 * Builds one XOR chunk. Appends must come in increasing timestamp order (as
 * Prometheus's head enforces); the chunk format itself does not check it.
 */
export class XorAppender {
  private readonly w: BitWriter;
  private n = 0;
  private t = 0;
  private tDelta = 0;
  private vHi = 0;
  private vLo = 0;
  private leading = NO_WINDOW;
  private trailing = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;

  /** initialCapacity: starting buffer size in bytes; it doubles as needed. */
  constructor(initialCapacity = 128) {
    this.w = new BitWriter(initialCapacity);
    this.w.reserveBytes(HEADER_BYTES);
  }

  get numSamples(): number {
    return this.n;
  }

  /** Smallest appended timestamp; +Infinity when empty. */
  get minTime(): number {
    return this.min;
  }

  /** Largest appended timestamp; -Infinity when empty. */
  get maxTime(): number {
    return this.max;
  }

  /**
   * Appends a sample. `t` must be a safe integer and, together with the
   * previous samples, give deltas and delta-of-deltas within ±(2^53 - 1).
   * Throws RangeError (chunk unchanged) otherwise, or when the chunk is full.
   *
   * The stale marker is a signalling NaN, and V8 (workerd's in particular)
   * may set its quiet bit while the number is passed around, giving
   * 0x7ff8000000000002. That pattern is taken back to the stale marker here;
   * no Prometheus producer emits it otherwise. Other signalling NaN payloads
   * are only kept exactly through appendBits.
   */
  append(t: number, v: number): void {
    F64[0] = v;
    let hi = I32[HI];
    const lo = I32[LO];
    if (lo === STALE_NAN_LO && hi === QUIETED_STALE_NAN_HI) hi = STALE_NAN_HI;
    this.appendBits(t, hi, lo);
  }

  /** Appends a sample given the value's IEEE 754 bits (hi:lo words); bit-exact for every pattern. */
  appendBits(t: number, hi: number, lo: number): void {
    const n = this.n;
    const d = t - this.t;
    // Kept small so V8 inlines it: the first two samples and anything to
    // reject go to appendSlow.
    if (n < 2 || n === XOR_MAX_SAMPLES || !Number.isSafeInteger(t) || !(d >= -MAX_SAFE && d <= MAX_SAFE)) {
      this.appendSlow(t, hi | 0, lo | 0);
      return;
    }
    this.writeDod(t, d - this.tDelta);
    this.writeValue(hi | 0, lo | 0);
    this.commit(t, d, hi | 0, lo | 0);
  }

  private appendSlow(t: number, hi: number, lo: number): void {
    const n = this.n;
    if (n === XOR_MAX_SAMPLES) throw new RangeError(`XOR chunk is full (${XOR_MAX_SAMPLES} samples)`);
    if (!Number.isSafeInteger(t)) throw new RangeError(`XOR chunk: timestamp ${t} is not a safe integer`);
    const w = this.w;
    if (n === 0) {
      writeVarint(w, t);
      w.writeBits64(hi, lo, 64);
      this.commit(t, 0, hi, lo);
      return;
    }
    const d = t - this.t;
    if (!(d >= -MAX_SAFE && d <= MAX_SAFE)) throw new RangeError(`XOR chunk: timestamp delta ${t} - ${this.t} too large`);
    if (n === 1) {
      // Go writes uint64(delta): a negative delta becomes a 10-byte varint.
      writeUvarint64(w, Math.floor(d / TWO32), d >>> 0);
    } else {
      this.writeDod(t, d - this.tDelta);
    }
    this.writeValue(hi, lo);
    this.commit(t, d, hi, lo);
  }

  private commit(t: number, tDelta: number, hi: number, lo: number): void {
    this.t = t;
    this.tDelta = tDelta;
    this.vHi = hi;
    this.vLo = lo;
    this.n++;
    if (t < this.min) this.min = t;
    if (t > this.max) this.max = t;
  }

  private writeDod(t: number, dod: number): void {
    const w = this.w;
    // Bucket bounds are xor.go's bitRange(dod, n): -(2^(n-1) - 1) <= dod <= 2^(n-1).
    // Prefix and payload go in one write; only the sample's final write
    // decides Go's byte length, and that is the value's.
    if (dod === 0) {
      w.writeBit(0);
    } else if (dod >= -8191 && dod <= 8192) {
      w.writeBits((0b10 << 14) | (dod & 0x3fff), 16);
    } else if (dod >= -65535 && dod <= 65536) {
      w.writeBits((0b110 << 17) | (dod & 0x1ffff), 20);
    } else if (dod >= -524287 && dod <= 524288) {
      w.writeBits((0b1110 << 20) | (dod & 0xfffff), 24);
    } else {
      // Checked before anything is written, so a rejected append leaves the chunk as it was.
      if (!(dod >= -MAX_SAFE && dod <= MAX_SAFE)) throw new RangeError(`XOR chunk: delta of delta at ${t} too large`);
      w.writePrefixed64(0b1111, 4, Math.floor(dod / TWO32), dod >>> 0, 64);
    }
  }

  /** Current chunk bytes including the header: a view, valid until the next append. */
  bytes(): Uint8Array {
    this.writeHeader();
    return this.w.bytes();
  }

  /** Exact-size copy of the chunk; the appender stays usable. */
  finish(): Uint8Array {
    this.writeHeader();
    return this.w.trimmed();
  }

  /** Empties the appender for a new chunk, keeping its buffer. */
  reset(): void {
    this.w.reset();
    this.w.reserveBytes(HEADER_BYTES);
    this.n = 0;
    this.t = 0;
    this.tDelta = 0;
    this.vHi = 0;
    this.vLo = 0;
    this.leading = NO_WINDOW;
    this.trailing = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
  }

  // Go rewrites the count on every append; writing it when bytes are asked
  // for gives the same bytes for less work.
  private writeHeader(): void {
    this.w.setByte(0, this.n >>> 8);
    this.w.setByte(1, this.n & 0xff);
  }

  private writeValue(hi: number, lo: number): void {
    const w = this.w;
    const xh = hi ^ this.vHi;
    const xl = lo ^ this.vLo;
    if ((xh | xl) === 0) {
      w.writeBit(0);
      return;
    }
    let leading = xh !== 0 ? Math.clz32(xh) : 32 + Math.clz32(xl);
    const trailing = xl !== 0 ? ctz32(xl) : 32 + ctz32(xh);
    // Go clamps to 31 so it fits the 5-bit field.
    if (leading > 31) leading = 31;

    let prefix: number;
    let prefixBits: number;
    let shift: number;
    let nbits: number;
    if (this.leading !== NO_WINDOW && leading >= this.leading && trailing >= this.trailing) {
      // '10': the XOR fits the previous window.
      prefix = 0b10;
      prefixBits = 2;
      shift = this.trailing;
      nbits = 64 - this.leading - shift;
    } else {
      // '11' + 5 bits leading + 6 bits significant count (64 wraps to 0, as in Go).
      this.leading = leading;
      this.trailing = trailing;
      shift = trailing;
      nbits = 64 - leading - trailing;
      prefix = (0b11 << 11) | (leading << 6) | (nbits & 63);
      prefixBits = 13;
    }
    // Payload: (xh:xl) >>> shift, nbits wide.
    if (shift === 0) {
      w.writePrefixed64(prefix, prefixBits, xh, xl, nbits);
    } else if (shift < 32) {
      w.writePrefixed64(prefix, prefixBits, xh >>> shift, (xl >>> shift) | (xh << (32 - shift)), nbits);
    } else {
      w.writePrefixed64(prefix, prefixBits, 0, xh >>> (shift - 32), nbits);
    }
  }
}

/**
 * Iterates an XOR chunk without allocating per sample; reuse one iterator
 * across chunks with reset(). next() throws ChunkCorruptError on bytes that
 * cannot be a valid chunk; after that the iterator only throws until reset.
 */
export class XorIterator {
  private readonly r = new BitReader();
  private total = 0;
  private read = 0;
  private _t = 0;
  private tDelta = 0;
  private vHi = 0;
  private vLo = 0;
  private leading = NO_WINDOW;
  private trailing = 0;

  constructor(chunk: Uint8Array) {
    this.reset(chunk);
  }

  /** Starts over on another chunk (or the same one). The bytes are not copied. */
  reset(chunk: Uint8Array): void {
    if (chunk.length < HEADER_BYTES) {
      throw new ChunkCorruptError(`XOR chunk is ${chunk.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
    }
    this.total = (chunk[0] << 8) | chunk[1];
    this.r.reset(chunk, HEADER_BYTES);
    this.read = 0;
    this._t = 0;
    this.tDelta = 0;
    this.vHi = 0;
    this.vLo = 0;
    this.leading = NO_WINDOW;
    this.trailing = 0;
  }

  /** Sample count from the header. */
  get numSamples(): number {
    return this.total;
  }

  /** Timestamp of the current sample. */
  get t(): number {
    return this._t;
  }

  /**
   * Value of the current sample. The number is built from the exact bits, but
   * V8 may quiet a signalling NaN (the stale marker) once it travels as a
   * number; use valueHi/valueLo where the bits matter.
   */
  get v(): number {
    I32[HI] = this.vHi;
    I32[LO] = this.vLo;
    return F64[0];
  }

  /** High 32 bits of the current value's IEEE 754 representation. */
  get valueHi(): number {
    return this.vHi >>> 0;
  }

  /** Low 32 bits of the current value's IEEE 754 representation. */
  get valueLo(): number {
    return this.vLo >>> 0;
  }

  /** Advances to the next sample; false when the header's count is reached. */
  next(): boolean {
    const read = this.read;
    if (read >= this.total) return false;
    if (read < 2) return this.nextHead(read);
    const r = this.r;
    // Peek the up-to-4-bit bucket prefix, then take prefix and payload in one read.
    const prefix = r.peekBits(4);
    let dod: number;
    if (prefix < 0b1000) {
      r.skip(1);
      dod = 0;
    } else if (prefix < 0b1100) {
      dod = r.readBits(2 + 14) & 0x3fff;
      if (dod > 8192) dod -= 16384;
    } else if (prefix < 0b1110) {
      dod = r.readBits(3 + 17) & 0x1ffff;
      if (dod > 65536) dod -= 131072;
    } else if (prefix === 0b1110) {
      dod = r.readBits(4 + 20) & 0xfffff;
      if (dod > 524288) dod -= 1048576;
    } else {
      r.skip(4);
      r.readBits64(64);
      dod = int64ToSafe(r, r.hi, r.lo, "delta of delta");
    }
    this.advance(this.tDelta + dod);
    this.readValue();
    this.read = read + 1;
    return true;
  }

  // First and second sample: varints, once per chunk.
  private nextHead(read: number): boolean {
    const r = this.r;
    readUvarint64(r);
    if (read === 0) {
      // Zigzag decode: (u >>> 1) ^ -(u & 1).
      const m = -(varLo & 1);
      this._t = int64ToSafe(r, (varHi >>> 1) ^ m, ((varLo >>> 1) | (varHi << 31)) ^ m, "first timestamp");
      r.readBits64(64);
      this.vHi = r.hi | 0;
      this.vLo = r.lo | 0;
    } else {
      this.advance(int64ToSafe(r, varHi, varLo, "first timestamp delta"));
      this.readValue();
    }
    this.read = read + 1;
    return true;
  }

  private advance(tDelta: number): void {
    const t = this._t + tDelta;
    // Sums of safe integers that leave the safe range can round, but never back into it.
    if (!(t >= -MAX_SAFE && t <= MAX_SAFE && tDelta >= -MAX_SAFE && tDelta <= MAX_SAFE)) {
      this.r.exhaust();
      throw new ChunkCorruptError(`XOR chunk: timestamp of sample ${this.read} is outside the safe-integer range`);
    }
    this.tDelta = tDelta;
    this._t = t;
  }

  private readValue(): void {
    const r = this.r;
    const prefix = r.peekBits(2);
    if (prefix < 0b10) {
      r.skip(1); // '0': same value as before
      return;
    }
    if (prefix === 0b11) {
      // '11' + 5 bits leading + 6 bits significant count, read as one field.
      const field = r.readBits(2 + 5 + 6);
      const leading = (field >>> 6) & 31;
      const mbits = (field & 63) === 0 ? 64 : field & 63;
      const trailing = 64 - leading - mbits;
      if (trailing < 0) {
        r.exhaust();
        throw new ChunkCorruptError(`XOR chunk: value window of ${leading} leading + ${mbits} significant bits exceeds 64`);
      }
      this.leading = leading;
      this.trailing = trailing;
    } else if (this.leading === NO_WINDOW) {
      // An encoder always opens a window with '11' before reusing it with '10'.
      r.exhaust();
      throw new ChunkCorruptError(`XOR chunk: sample ${this.read} reuses a value window that was never set`);
    } else {
      r.skip(2);
    }
    const trailing = this.trailing;
    const mbits = 64 - this.leading - trailing;
    let hi = 0;
    let lo: number;
    if (mbits > 32) {
      hi = r.readBits(mbits - 32);
      lo = r.readBits(32);
    } else {
      lo = r.readBits(mbits);
    }
    if (trailing === 0) {
      this.vHi ^= hi;
      this.vLo ^= lo;
    } else if (trailing < 32) {
      this.vHi ^= (hi << trailing) | (lo >>> (32 - trailing));
      this.vLo ^= lo << trailing;
    } else {
      this.vHi ^= lo << (trailing - 32);
    }
  }
}

/** Sample count from an XOR chunk's header. */
export function xorNumSamples(chunk: Uint8Array): number {
  if (chunk.length < HEADER_BYTES) {
    throw new ChunkCorruptError(`XOR chunk is ${chunk.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  }
  return (chunk[0] << 8) | chunk[1];
}

/** Decodes a whole chunk into columns; values are copied bit-exactly. */
export function decodeXor(chunk: Uint8Array): { timestamps: Float64Array; values: Float64Array } {
  const it = new XorIterator(chunk);
  const n = it.numSamples;
  const timestamps = new Float64Array(n);
  const values = new Float64Array(n);
  // Copy raw words, not numbers, so NaN payloads cannot be canonicalized on the way.
  const words = new Uint32Array(values.buffer);
  let i = 0;
  while (it.next()) {
    timestamps[i] = it.t;
    words[2 * i + HI] = it.valueHi;
    words[2 * i + LO] = it.valueLo;
    i++;
  }
  return { timestamps, values };
}
