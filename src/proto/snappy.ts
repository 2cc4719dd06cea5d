// Snappy block format (not the framed/stream format), as remote write and remote
// read bodies use it.
//
// Decompression is done here rather than by snappyjs.uncompress, because
// snappyjs 0.7.0 is lenient where Go's github.com/golang/snappy (what Prometheus
// uses) is strict: it does not check that a literal or copy stays inside the
// declared output length (writes past it are silently dropped by the typed
// array), nor that the output fills the declared length, and it reads past the
// input on a truncated 1-byte-offset copy. Corrupt input could then decode to
// zero-padded garbage that might even parse as protobuf. This decoder follows
// golang/snappy's decode: every such case is a SnappyError.
//
// As Prometheus's codec does, the uncompressed-length preamble is read first and
// checked against the caller's limit BEFORE anything is allocated or
// decompressed: BodyTooLargeError (the edge answers 413) is distinct from
// SnappyError (400). Compression is snappyjs's (its output is checked against
// this decoder and vice versa in test/unit/proto.test.ts).

import SnappyJS from "snappyjs";

/** Malformed snappy input; the HTTP edge answers 400 with the message. */
export class SnappyError extends Error {
  override name = "SnappyError";
}

/** The decompressed size declared by the body exceeds the limit; the HTTP edge answers 413. */
export class BodyTooLargeError extends Error {
  override name = "BodyTooLargeError";
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`decompressed body of ${size} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** The uncompressed length declared by a snappy block and the preamble's size in bytes. */
export function snappyDecodedLength(buf: Uint8Array): { length: number; headerBytes: number } {
  let v = 0;
  for (let i = 0; i < 5; i++) {
    if (i >= buf.length) throw new SnappyError(buf.length === 0 ? "snappy: empty input" : "snappy: truncated length preamble");
    const b = buf[i];
    v += (b & 0x7f) * 2 ** (7 * i);
    if (b < 0x80) {
      if (v > 0xffffffff) throw new SnappyError("snappy: corrupt input: length preamble exceeds 32 bits");
      return { length: v, headerBytes: i + 1 };
    }
  }
  throw new SnappyError("snappy: corrupt input: length preamble longer than 5 bytes");
}

/**
 * Decompresses a snappy block. Throws BodyTooLargeError, without decompressing,
 * when the declared length exceeds maxBytes; SnappyError when the input is corrupt.
 */
export function snappyDecompress(src: Uint8Array, maxBytes: number): Uint8Array {
  const { length, headerBytes } = snappyDecodedLength(src);
  if (length > maxBytes) throw new BodyTooLargeError(length, maxBytes);
  const dst = new Uint8Array(length);
  const n = src.length;
  let s = headerBytes;
  let d = 0;
  while (s < n) {
    const c = src[s];
    let len: number;
    let offset: number;
    switch (c & 3) {
      case 0: {
        // Literal: length-1 in the tag's upper 6 bits, or in the next 1-4 bytes.
        let x = c >>> 2;
        if (x < 60) s += 1;
        else {
          const extra = x - 59;
          if (s + 1 + extra > n) throw corrupt("truncated literal length", s);
          x = src[s + 1];
          if (extra > 1) x |= src[s + 2] << 8;
          if (extra > 2) x |= src[s + 3] << 16;
          if (extra > 3) x = (x | (src[s + 4] << 24)) >>> 0;
          s += 1 + extra;
        }
        len = x + 1;
        if (len > length - d) throw corrupt(`literal of ${len} bytes overruns the declared length of ${length}`, s);
        if (len > n - s) throw corrupt(`literal of ${len} bytes overruns the input`, s);
        if (len <= 16) for (let i = 0; i < len; i++) dst[d + i] = src[s + i];
        else dst.set(src.subarray(s, s + len), d);
        d += len;
        s += len;
        continue;
      }
      case 1:
        if (s + 2 > n) throw corrupt("truncated copy", s);
        len = 4 + ((c >>> 2) & 7);
        offset = ((c & 0xe0) << 3) | src[s + 1];
        s += 2;
        break;
      case 2:
        if (s + 3 > n) throw corrupt("truncated copy", s);
        len = 1 + (c >>> 2);
        offset = src[s + 1] | (src[s + 2] << 8);
        s += 3;
        break;
      default:
        if (s + 5 > n) throw corrupt("truncated copy", s);
        len = 1 + (c >>> 2);
        offset = (src[s + 1] | (src[s + 2] << 8) | (src[s + 3] << 16) | (src[s + 4] << 24)) >>> 0;
        s += 5;
    }
    if (offset === 0 || offset > d) throw corrupt(`copy offset ${offset} outside the ${d} bytes decoded so far`, s);
    if (len > length - d) throw corrupt(`copy of ${len} bytes overruns the declared length of ${length}`, s);
    if (offset >= len && len > 16) dst.copyWithin(d, d - offset, d - offset + len);
    else for (let i = 0; i < len; i++) dst[d + i] = dst[d - offset + i]; // may overlap: repeats the pattern
    d += len;
  }
  if (d !== length) throw new SnappyError(`snappy: corrupt input: decoded ${d} bytes, the preamble declared ${length}`);
  return dst;
}

function corrupt(what: string, at: number): SnappyError {
  return new SnappyError(`snappy: corrupt input: ${what} (input byte ${at})`);
}

/** Compresses to a snappy block (snappyjs). */
export function snappyCompress(buf: Uint8Array): Uint8Array {
  try {
    const out = SnappyJS.compress(buf);
    // In Node, snappyjs answers a Buffer for a Buffer; callers get a plain Uint8Array view either way.
    return out instanceof Uint8Array && out.constructor !== Uint8Array ? new Uint8Array(out.buffer, out.byteOffset, out.byteLength) : out;
  } catch (e) {
    throw new SnappyError(`snappy: compression failed: ${(e as Error).message}`);
  }
}
