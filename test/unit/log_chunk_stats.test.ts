// What index stats and volumes count for a log chunk (src/storage/logs/chunk_stats.ts):
// the uncompressed line + structured metadata bytes read back from a chunk's raw
// blocks, against the sum computed here from the appended entries, for every codec;
// and Loki's GetFactorOfTime on hand-worked spans.

import { describe, expect, it } from "vitest";
import { CorruptDataError } from "../../src/model/bytes";
import { LogChunkBuilder, LogChunkEncoding } from "../../src/storage/logs/chunk";
import { factorOfTime, logChunkUncompressedBytes } from "../../src/storage/logs/chunk_stats";
import { mulberry32 } from "../support/prng";

const enc = new TextEncoder();
const utf8 = (s: string): number => enc.encode(s).length;
const ENCODINGS = [LogChunkEncoding.None, LogChunkEncoding.Gzip, LogChunkEncoding.DeflateRaw, LogChunkEncoding.Snappy, LogChunkEncoding.Brotli];
const WORDS = ["GET", "naïve", "ünïcode", "😀 emoji", "status=200", "trace", ""];

describe("logChunkUncompressedBytes", () => {
  for (const encoding of ENCODINGS) {
    it(`sums line and metadata UTF-8 bytes over every block (encoding ${encoding})`, () => {
      const rnd = mulberry32(7 + encoding);
      // A small block size cuts many blocks; entries out of order and some with metadata.
      const b = new LogChunkBuilder({ blockSize: 2048, encoding });
      let want = 0;
      const seen = new Set<string>();
      for (let i = 0; i < 600; i++) {
        const ms = 1_700_000_000_000 + Math.floor(rnd() * 100_000);
        const ns = Math.floor(rnd() * 1_000_000);
        const line = Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(" ");
        const meta = rnd() < 0.3 ? ["trace_id", `t${Math.floor(rnd() * 5)}`, "user", WORDS[Math.floor(rnd() * WORDS.length)] || "x"] : null;
        const key = `${ms}/${ns}/${line}`;
        // An exact duplicate in one block is dropped when the block is cut; keep the data free of them.
        if (seen.has(key)) continue;
        seen.add(key);
        b.append(ms, ns, enc.encode(line), meta);
        want += utf8(line) + (meta === null ? 0 : meta.reduce((n, s) => n + utf8(s), 0));
      }
      // The open chunk's snapshot (raw head block) and the finished chunk agree with the builder.
      expect(logChunkUncompressedBytes(b.snapshot())).toBe(want);
      expect(b.uncompressedBytes).toBe(want);
      const done = b.finish();
      expect(logChunkUncompressedBytes(done)).toBe(want);
    });
  }

  it("an empty chunk has no bytes; corrupt bytes are refused", () => {
    const b = new LogChunkBuilder({ blockSize: 1024, encoding: LogChunkEncoding.Snappy });
    expect(logChunkUncompressedBytes(b.finish())).toBe(0);
    b.append(1000, 0, enc.encode("hello world, hello world"), ["k", "v"]);
    const bytes = b.finish();
    const bad = bytes.slice();
    bad[bad.length - 6] ^= 0xff;
    expect(() => logChunkUncompressedBytes(bad)).toThrow(CorruptDataError);
    expect(() => logChunkUncompressedBytes(bytes.subarray(0, bytes.length - 3))).toThrow(CorruptDataError);
  });
});

describe("factorOfTime (Loki's util.GetFactorOfTime)", () => {
  const p = (ms: number, ns = 0) => ({ ms, ns });
  it.each([
    // [from, through] covering the whole chunk [1000, 2000]
    [p(0), p(5000), p(1000), p(2000), 1],
    // the second half
    [p(1500), p(5000), p(1000), p(2000), 0.5],
    // the first quarter
    [p(0), p(1250), p(1000), p(2000), 0.25],
    // inside: 1200..1700 of 1000..2000
    [p(1200), p(1700), p(1000), p(2000), 0.5],
    // nanoseconds count: 1 ns of a 4 ns span
    [p(10, 3), p(20), p(10, 2), p(10, 6), 0.75],
    // outside
    [p(2001), p(3000), p(1000), p(2000), 0],
    [p(0), p(999), p(1000), p(2000), 0],
    // a chunk of one timestamp counts whole
    [p(0), p(5000), p(1000), p(1000), 1],
  ])("from %j through %j of [%j, %j] -> %d", (from, through, min, max, want) => {
    expect(factorOfTime(from, through, min, max)).toBe(want);
  });
});
