import { describe, expect, it } from "vitest";
import { BitReader, BitWriter } from "../../src/storage/chunk/bstream";
import { ChunkCorruptError } from "../../src/storage/chunk/errors";
import { mulberry32 } from "../support/prng";


const u32 = (rnd: () => number) => Math.floor(rnd() * 4294967296) >>> 0;
const mask = (n: number) => (n === 32 ? 0xffffffff : (1 << n) - 1) >>> 0;
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

type Op =
  | { kind: "bit"; bit: number }
  | { kind: "bits"; value: number; n: number }
  | { kind: "bits64"; hi: number; lo: number; n: number }
  | { kind: "prefixed"; prefix: number; pn: number; hi: number; lo: number; n: number };

function randomOps(rnd: () => number, count: number): Op[] {
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const r = rnd();
    if (r < 0.25) ops.push({ kind: "bit", bit: rnd() < 0.5 ? 0 : 1 });
    else if (r < 0.6) ops.push({ kind: "bits", value: u32(rnd), n: Math.floor(rnd() * 33) });
    else if (r < 0.85) ops.push({ kind: "bits64", hi: u32(rnd), lo: u32(rnd), n: Math.floor(rnd() * 65) });
    else ops.push({ kind: "prefixed", prefix: u32(rnd), pn: 1 + Math.floor(rnd() * 13), hi: u32(rnd), lo: u32(rnd), n: Math.floor(rnd() * 65) });
  }
  return ops;
}

function write(w: BitWriter, op: Op): void {
  if (op.kind === "bit") w.writeBit(op.bit);
  else if (op.kind === "bits") w.writeBits(op.value, op.n);
  else if (op.kind === "bits64") w.writeBits64(op.hi, op.lo, op.n);
  else w.writePrefixed64(op.prefix, op.pn, op.hi, op.lo, op.n);
}

/** Reads one 64-bit field of width n (0..64) and returns its masked [hi, lo]. */
function read64(r: BitReader, n: number): [number, number] {
  if (n === 0) return [0, 0];
  r.readBits64(n);
  return [r.hi, r.lo];
}

function expected64(hi: number, lo: number, n: number): [number, number] {
  if (n === 0) return [0, 0];
  if (n <= 32) return [0, (lo & mask(n)) >>> 0];
  return [(hi & mask(n - 32)) >>> 0, lo >>> 0];
}

/** Go's bstream byte length: a width that is a multiple of 8 ends in a spare byte. */
function goLength(bitPos: number, lastWidth: number): number {
  return lastWidth > 0 && lastWidth % 8 === 0 ? (bitPos >> 3) + 1 : Math.ceil(bitPos / 8);
}

describe("BitWriter", () => {
  it("writes MSB first", () => {
    const w = new BitWriter();
    w.writeBits(0b101, 3);
    w.writeBit(1);
    w.writeBits(0b0011, 4);
    w.writeBits(0xabc, 12);
    expect(hex(w.bytes())).toBe("b3abc0");
  });

  it("keeps only the low nbits of the value", () => {
    const w = new BitWriter();
    w.writeBits(0xffffffff, 4);
    w.writeBits(0xfffffff0, 4);
    w.writeBits64(0xffffffff, 0x12345678, 36);
    expect(hex(w.bytes())).toBe("f0f123456780");
  });

  it("follows Go's byte length: a spare byte after byte-multiple writes", () => {
    const w = new BitWriter();
    expect(w.byteLength).toBe(0);
    w.writeBit(1);
    expect(w.byteLength).toBe(1);
    w.writeBits(0, 7);
    expect([w.bitLength, w.byteLength]).toEqual([8, 1]);
    w.writeBits(0xff, 8); // Go's writeByte appends the next byte eagerly
    expect([w.bitLength, w.byteLength]).toEqual([16, 3]);
    w.writeBit(1); // lands in the spare byte
    expect([w.bitLength, w.byteLength]).toEqual([17, 3]);
    w.writeBits(0, 0); // a no-op in Go, length included
    expect(w.byteLength).toBe(3);
    w.writeBits64(1, 2, 64);
    expect([w.bitLength, w.byteLength]).toEqual([81, 11]);
    w.writeBits(0, 7);
    expect([w.bitLength, w.byteLength]).toEqual([88, 11]);
    expect(hex(w.bytes())).toBe("80ff800000008000000100");
  });

  it("matches Go's byte length over random write sequences", () => {
    const rnd = mulberry32(7);
    for (let trial = 0; trial < 200; trial++) {
      const w = new BitWriter(1);
      let pos = 0;
      let len = 0;
      for (const op of randomOps(rnd, 40)) {
        write(w, op);
        if (op.kind === "bit") {
          pos += 1;
          len = goLength(pos, 1);
        } else if (op.kind === "prefixed") {
          pos += op.pn + op.n;
          len = goLength(pos, op.n === 0 ? op.pn : op.n);
        } else if (op.n > 0) {
          pos += op.n;
          len = goLength(pos, op.n);
        }
        expect(w.bitLength).toBe(pos);
        expect(w.byteLength).toBe(len);
      }
    }
  });

  it("reserveBytes adds a header without a spare byte, and setByte patches it", () => {
    const w = new BitWriter();
    w.reserveBytes(2);
    expect([w.bitLength, w.byteLength]).toEqual([16, 2]);
    w.writeBit(1);
    w.setByte(0, 0x12);
    w.setByte(1, 0x34);
    expect(hex(w.bytes())).toBe("123480");
    expect(() => w.reserveBytes(1)).toThrow();
    expect(() => w.setByte(3, 0)).toThrow(RangeError);
  });

  it("grows from a tiny capacity; bytes() is a view, trimmed() a copy", () => {
    const w = new BitWriter(1);
    for (let i = 0; i < 10_000; i++) w.writeBits(i & 0x1f, 5);
    const view = w.bytes();
    const copy = w.trimmed();
    expect(copy.length).toBe(Math.ceil(50_000 / 8));
    expect(hex(copy)).toBe(hex(view));
    copy[0] ^= 0xff;
    expect(w.bytes()[0]).toBe(view[0]);
    const r = new BitReader(w.bytes());
    for (let i = 0; i < 10_000; i++) expect(r.readBits(5)).toBe(i & 0x1f);
  });

  it("reset() empties the stream and clears old bits", () => {
    const w = new BitWriter(4);
    w.writeBits(0xffffffff, 32);
    w.writeBits(0xffffffff, 32);
    w.reset();
    expect(w.byteLength).toBe(0);
    w.writeBit(0);
    w.writeBits(0, 20);
    expect(hex(w.bytes())).toBe("000000");
  });
});

describe("BitReader", () => {
  it("reads back random write sequences exactly", () => {
    const rnd = mulberry32(1234);
    for (let trial = 0; trial < 300; trial++) {
      const ops = randomOps(rnd, 1 + Math.floor(rnd() * 60));
      const w = new BitWriter(1);
      for (const op of ops) write(w, op);
      const r = new BitReader(w.trimmed());
      for (const op of ops) {
        if (op.kind === "bit") {
          expect(r.readBit()).toBe(op.bit);
        } else if (op.kind === "bits") {
          if (op.n > 0) {
            expect(r.peekBits(Math.min(op.n, 24))).toBe((op.value & mask(op.n)) >>> (op.n - Math.min(op.n, 24)));
            expect(r.readBits(op.n)).toBe((op.value & mask(op.n)) >>> 0);
          }
        } else if (op.kind === "bits64") {
          expect(read64(r, op.n)).toEqual(expected64(op.hi, op.lo, op.n));
        } else {
          expect(r.readBits(op.pn)).toBe((op.prefix & mask(op.pn)) >>> 0);
          expect(read64(r, op.n)).toEqual(expected64(op.hi, op.lo, op.n));
        }
      }
      // Only padding (and Go's spare byte) is left.
      expect(r.bitsLeft).toBeLessThan(16);
    }
  });

  it("returns unsigned 32-bit values", () => {
    const r = new BitReader(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    expect(r.readBits(4)).toBe(15);
    expect(r.readBits(32)).toBe(0xffffffff);
    r.reset(new Uint8Array([0x80, 0, 0, 1, 0, 0, 0, 0]));
    r.readBits64(64);
    expect([r.hi, r.lo]).toEqual([0x80000001, 0]);
  });

  it("reads near the end of the buffer (byte-wise path) at every bit offset", () => {
    const bytes = new Uint8Array([0b10110011, 0b01011100, 0b11100011]);
    const bits = Array.from(bytes, (b) => b.toString(2).padStart(8, "0")).join("");
    for (let start = 0; start < 24; start++) {
      for (let n = 1; start + n <= 24; n++) {
        const r = new BitReader(bytes);
        if (start > 0) r.skip(start);
        expect(r.readBits(n)).toBe(parseInt(bits.slice(start, start + n), 2));
      }
    }
  });

  it("honours a byte sub-range", () => {
    const bytes = new Uint8Array([0xff, 0x12, 0x34, 0xff, 0xff, 0xff, 0xff]);
    const r = new BitReader(bytes, 1, 3);
    expect(r.bitsLeft).toBe(16);
    expect(r.peekBits(24)).toBe(0x123400); // past the range reads as zero
    expect(r.readBits(16)).toBe(0x1234);
    expect(() => r.readBit()).toThrow(ChunkCorruptError);
    expect(() => new BitReader(bytes, 2, 99)).toThrow(RangeError);
  });

  it("peekBits does not consume and zero-pads past the end", () => {
    const r = new BitReader(new Uint8Array([0b11010000]));
    expect(r.peekBits(4)).toBe(0b1101);
    expect(r.peekBits(4)).toBe(0b1101);
    r.skip(6);
    expect(r.peekBits(4)).toBe(0b0000);
    r.skip(2);
    expect(r.peekBits(3)).toBe(0);
    expect(() => r.skip(1)).toThrow(ChunkCorruptError);
  });

  it("throws ChunkCorruptError past the end, and keeps throwing", () => {
    const r = new BitReader(new Uint8Array([0xaa]));
    expect(() => r.readBits(9)).toThrow(ChunkCorruptError);
    expect(() => r.readBit()).toThrow(ChunkCorruptError);
    const r2 = new BitReader(new Uint8Array(8));
    r2.readBits(1);
    expect(() => r2.readBits64(64)).toThrow(/truncated/);
    expect(() => r2.readBits(1)).toThrow(ChunkCorruptError);
    const empty = new BitReader(new Uint8Array(0));
    expect(() => empty.readBit()).toThrow(ChunkCorruptError);
    expect(() => empty.readByte()).toThrow(ChunkCorruptError);
    const fresh = new BitReader();
    expect(() => fresh.readBit()).toThrow(ChunkCorruptError);
  });
});
