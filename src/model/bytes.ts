// Byte writer/reader for our own binary formats (WAL records, later blocks):
// unsigned and zigzag varints over JS safe integers, little-endian float64 and
// length-prefixed UTF-8 strings. The writer reuses one growing buffer, so encoding
// a record allocates only its final copy.

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initial = 1024) {
    this.buf = new Uint8Array(initial);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Makes room for n more bytes, so that the *Unchecked writers below may follow. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    const b = this.buf;
    b[this.pos++] = v & 0xff;
    b[this.pos++] = (v >>> 8) & 0xff;
    b[this.pos++] = (v >>> 16) & 0xff;
    b[this.pos++] = (v >>> 24) & 0xff;
  }

  /** u32 (little-endian) after ensure(4). */
  u32Unchecked(v: number): void {
    const b = this.buf;
    const pos = this.pos;
    b[pos] = v & 0xff;
    b[pos + 1] = (v >>> 8) & 0xff;
    b[pos + 2] = (v >>> 16) & 0xff;
    b[pos + 3] = (v >>> 24) & 0xff;
    this.pos = pos + 4;
  }

  /** Unsigned varint of a non-negative safe integer (up to 2^53). */
  uvarint(v: number): void {
    this.ensure(8);
    this.uvarintUnchecked(v);
  }

  /** uvarint after ensure(8) (at most 8 bytes: 2^53 needs 54 bits). */
  uvarintUnchecked(v: number): void {
    const b = this.buf;
    let pos = this.pos;
    // Bit operations while the value fits in 31 bits (ids, counts, deltas); division beyond.
    while (v >= 0x80 && v <= 0x7fffffff) {
      b[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    while (v >= 0x80) {
      b[pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[pos++] = v;
    this.pos = pos;
  }

  /** Zigzag varint of a safe integer: small magnitudes of either sign stay short. */
  varint(v: number): void {
    this.ensure(8);
    this.uvarintUnchecked(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  /** varint after ensure(8). */
  varintUnchecked(v: number): void {
    this.uvarintUnchecked(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  f64(v: number): void {
    this.ensure(8);
    this.f64Unchecked(v);
  }

  /** f64 after ensure(8). Byte stores rather than TypedArray.set, a call per value. */
  f64Unchecked(v: number): void {
    f64[0] = v;
    const b = this.buf;
    const pos = this.pos;
    b[pos] = f64Bytes[0];
    b[pos + 1] = f64Bytes[1];
    b[pos + 2] = f64Bytes[2];
    b[pos + 3] = f64Bytes[3];
    b[pos + 4] = f64Bytes[4];
    b[pos + 5] = f64Bytes[5];
    b[pos + 6] = f64Bytes[6];
    b[pos + 7] = f64Bytes[7];
    this.pos = pos + 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(s: string): void {
    // ASCII fast path: label names and most values.
    let ascii = true;
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) { ascii = false; break; }
    if (ascii) {
      this.uvarint(s.length);
      this.ensure(s.length);
      for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
    } else {
      const b = encoder.encode(s);
      this.uvarint(b.length);
      this.bytes(b);
    }
  }

  /** The written bytes as a view (valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** The written bytes as an exact-size copy. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

export class CorruptDataError extends Error {
  override name = "CorruptDataError";
}

export class ByteReader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly what = "record") {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  private fail(msg: string): never {
    throw new CorruptDataError(`corrupt ${this.what}: ${msg} at byte ${this.pos} of ${this.buf.length}`);
  }

  u8(): number {
    if (this.pos >= this.buf.length) this.fail("unexpected end");
    return this.buf[this.pos++];
  }

  uvarint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.buf.length) this.fail("truncated varint");
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
    }
    this.fail("varint too long");
  }

  varint(): number {
    const z = this.uvarint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  f64(): number {
    if (this.pos + 8 > this.buf.length) this.fail("truncated float64");
    for (let i = 0; i < 8; i++) f64Bytes[i] = this.buf[this.pos + i];
    this.pos += 8;
    return f64[0];
  }

  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) this.fail(`length ${n} past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    const n = this.uvarint();
    const b = this.bytes(n);
    let ascii = true;
    for (let i = 0; i < b.length; i++) if (b[i] > 0x7f) { ascii = false; break; }
    if (ascii && b.length < 512) return String.fromCharCode.apply(null, b as unknown as number[]);
    return decoder.decode(b);
  }
}

/** The parts joined into one array (the single part itself when there is one). */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
