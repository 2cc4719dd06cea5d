import { describe, expect, it } from "vitest";
import { CorruptDataError } from "../../src/model/bytes";
import type { LogStreamData } from "../../src/model/logs";
import { cmpCodePoints, LogChunkBuilder, LogChunkEncoding, logChunkMeta, readLogChunk, type LogEntrySink } from "../../src/storage/logs/chunk";
import { mergeLogStreamData, streamsFromChunks } from "../../src/storage/logs/merge";
import { mulberry32 } from "../support/prng";

type Entry = [ms: number, ns: number, line: string, meta: string[] | null];

const enc = new TextEncoder();
const ENCODINGS = [LogChunkEncoding.None, LogChunkEncoding.Gzip, LogChunkEncoding.DeflateRaw, LogChunkEncoding.Snappy, LogChunkEncoding.Brotli];

function cmpEntry(a: Entry, b: Entry): number {
  return a[0] - b[0] || a[1] - b[1] || cmpCodePoints(a[2], b[2]);
}

/** What a reader must return: sorted by (time, line), exact duplicates dropped (the first appended kept), within [start, end). */
function expected(entries: Entry[], start: [number, number] = [-Infinity, 0], end: [number, number] = [Infinity, 0]): Entry[] {
  const sorted = entries
    .map((e, i) => [e, i] as const)
    .sort((x, y) => cmpEntry(x[0], y[0]) || x[1] - y[1])
    .map((x) => x[0]);
  const out: Entry[] = [];
  for (const e of sorted) {
    if (e[0] < start[0] || (e[0] === start[0] && e[1] < start[1])) continue;
    if (e[0] > end[0] || (e[0] === end[0] && e[1] >= end[1])) continue;
    const p = out[out.length - 1];
    if (p && p[0] === e[0] && p[1] === e[1] && p[2] === e[2]) continue;
    out.push(e);
  }
  return out;
}

function read(bytes: Uint8Array, startMs = -Infinity, startNs = 0, endMs = Infinity, endNs = 0): Entry[] {
  const out: Entry[] = [];
  const sink: LogEntrySink = { entry: (ms, ns, line, meta) => out.push([ms, ns, line, meta]) };
  readLogChunk(bytes, startMs, startNs, endMs, endNs, sink);
  return out;
}

const WORDS = ["GET", "POST", "/api/v1/push", "200", "500", "", "é", "ünïcödé", "✓", "😀", "\uff21", "\ud83d\ude00x", "tab\there", "new\nline", "{\"k\":1}"];

function randomLine(rand: () => number): string {
  const r = rand();
  if (r < 0.05) return "";
  if (r < 0.08) return "x".repeat(Math.floor(rand() * 5000)); // longer than a varint byte
  let s = "";
  const n = Math.floor(rand() * 12);
  for (let i = 0; i < n; i++) s += WORDS[Math.floor(rand() * WORDS.length)] + (rand() < 0.7 ? " " : "");
  return s;
}

function randomEntries(rand: () => number, n: number, opts: { ordered: boolean; meta: boolean }): Entry[] {
  const out: Entry[] = [];
  let ms = 1_700_000_000_000 + Math.floor(rand() * 1e6) - (rand() < 0.1 ? 1_800_000_000_000 : 0);
  let ns = Math.floor(rand() * 1e6);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.5) ms += Math.floor(rand() * 3);
    if (r < 0.9) ns = Math.floor(rand() * 1e6);
    const meta = opts.meta && rand() < 0.4 ? ["trace_id", (rand() * 1e6).toFixed(0), ...(rand() < 0.3 ? ["user", "ü😀"] : [])] : null;
    const line = randomLine(rand);
    out.push([ms, ns, line, meta]);
    // Exact duplicates (Loki drops them), same metadata so either copy is the answer.
    if (rand() < 0.05) out.push([ms, ns, line, meta]);
  }
  if (!opts.ordered) {
    for (let i = out.length - 1; i > 0; i--) {
      if (rand() < 0.3) {
        const j = Math.floor(rand() * (i + 1));
        [out[i], out[j]] = [out[j], out[i]];
      }
    }
  }
  return out;
}

function build(entries: Entry[], blockSize: number, encoding: LogChunkEncoding): LogChunkBuilder {
  const b = new LogChunkBuilder({ blockSize, encoding });
  for (const [ms, ns, line, meta] of entries) b.append(ms, ns, enc.encode(line), meta);
  return b;
}

describe("log chunk", () => {
  it("round-trips random entries, in and out of order, with metadata and unicode, for every encoding", () => {
    const rand = mulberry32(11);
    for (const encoding of ENCODINGS) {
      for (let round = 0; round < 12; round++) {
        const ordered = round % 2 === 0;
        const entries = randomEntries(rand, Math.floor(rand() * 800), { ordered, meta: round % 3 !== 0 });
        const b = build(entries, 256 + Math.floor(rand() * 8192), encoding);
        const bytes = b.finish();
        const want = expected(entries);
        expect(read(bytes)).toEqual(want);
        const meta = logChunkMeta(bytes);
        // Stored entries: duplicates are dropped within a block, not across blocks (the reader drops those).
        expect(meta.entries).toBeGreaterThanOrEqual(want.length);
        expect(b.entries).toBe(meta.entries);
        expect(meta.encoding).toBe(encoding);
        if (want.length > 0) {
          expect([meta.minMs, meta.minNs]).toEqual([want[0][0], want[0][1]]);
          expect([meta.maxMs, meta.maxNs]).toEqual([want[want.length - 1][0], want[want.length - 1][1]]);
          expect([b.minMs, b.minNs, b.maxMs, b.maxNs]).toEqual([meta.minMs, meta.minNs, meta.maxMs, meta.maxNs]);
        }
      }
    }
  });

  it("decodes blocks of every size around workerd's 64 KiB output steps, for every encoding", () => {
    // workerd's node:zlib refused Brotli blocks of e.g. 100,000 bytes when the output
    // cap equalled their exact length ("Memory limit exceeded"); found by bench/logs.mjs.
    const rand = mulberry32(64);
    for (const encoding of [LogChunkEncoding.Gzip, LogChunkEncoding.DeflateRaw, LogChunkEncoding.Snappy, LogChunkEncoding.Brotli]) {
      for (const target of [65_535, 65_536, 100_000, 131_073, 200_000, 262_144]) {
        const b = new LogChunkBuilder({ blockSize: 1 << 30, encoding });
        const enc = new TextEncoder();
        let ms = 1_700_000_000_000;
        let n = 0;
        while (b.uncompressedBytes < target) {
          b.append(ms++, 0, enc.encode(`10.0.${Math.floor(rand() * 256)}.${n} GET /api/${Math.floor(rand() * 1000)} 200`), null);
          n++;
        }
        const bytes = b.finish();
        let seen = 0;
        readLogChunk(bytes, 0, 0, 8.64e15, 0, { entry: () => void seen++ });
        expect(seen, `${LogChunkEncoding[encoding]} block of ~${target} bytes`).toBe(n);
      }
    }
  });

  it("cuts the head at blockSize and keeps counters Loki-like", () => {
    const b = new LogChunkBuilder({ blockSize: 1000, encoding: LogChunkEncoding.DeflateRaw });
    const line = enc.encode("a".repeat(99));
    for (let i = 0; i < 10; i++) b.append(1000 + i, 0, line, null);
    // 990 bytes: still one raw head block, counted at its raw size.
    expect(logChunkMeta(b.snapshot()).blocks).toBe(1);
    expect(b.compressedBytes).toBe(990);
    expect(b.uncompressedBytes).toBe(990);
    b.append(2000, 0, line, ["k", "v"]); // 1091 >= 1000: cut
    expect(b.headBytes).toBe(0);
    expect(b.uncompressedBytes).toBe(1091);
    expect(b.compressedBytes).toBeLessThan(200); // 11 near-identical lines compress well
    b.append(3000, 5, line, null);
    expect(b.compressedBytes).toBeGreaterThan(99);
    expect(b.entries).toBe(12);
    expect(b.memoryBytes).toBeGreaterThan(b.compressedBytes);
    const bytes = b.finish();
    expect(logChunkMeta(bytes)).toMatchObject({ blocks: 2, entries: 12, minMs: 1000, minNs: 0, maxMs: 3000, maxNs: 5 });
  });

  it("releases the head's buffers at a cut (an idle stream holds its compressed blocks, not a block of raw space)", () => {
    const rand = mulberry32(2);
    const b = new LogChunkBuilder({ blockSize: 64 * 1024, encoding: LogChunkEncoding.Brotli });
    let n = 0;
    while (b.headBytes + 200 < 64 * 1024) {
      b.append(1000 + n++, 0, enc.encode(randomLine(rand).slice(0, 150).padEnd(150, "-") + n), null);
    }
    expect(b.memoryBytes).toBeGreaterThan(64 * 1024);
    b.cutBlock();
    expect(b.headBytes).toBe(0);
    expect(b.memoryBytes).toBeLessThan(b.compressedBytes + 8 * 1024);
  });

  it("filters [start, end) exactly at nanosecond boundaries", () => {
    const entries: Entry[] = [];
    for (let ms = 10; ms < 14; ms++) for (const ns of [0, 1, 499_999, 999_999]) entries.push([ms, ns, `l${ms}.${ns}`, null]);
    for (const blockSize of [1, 40, 1 << 20]) {
      const bytes = build(entries, blockSize, LogChunkEncoding.Snappy).finish();
      const bounds: [number, number][] = [];
      for (let ms = 9; ms < 15; ms++) for (const ns of [0, 1, 2, 499_999, 500_000, 999_999]) bounds.push([ms, ns]);
      for (const s of bounds) {
        for (const e of bounds) {
          expect(read(bytes, s[0], s[1], e[0], e[1])).toEqual(expected(entries, s, e));
        }
      }
    }
  });

  it("negative timestamps (before 1970) round-trip", () => {
    const entries: Entry[] = [
      [-5, 999_999, "a", null],
      [-5, 0, "b", null],
      [0, 0, "c", null],
      [-1_700_000_000_000, 3, "d", ["x", "y"]],
    ];
    expect(read(build(entries, 2, LogChunkEncoding.Gzip).finish())).toEqual(expected(entries));
  });

  it("snapshot() is readable and equals finish() content, before and after cuts", () => {
    const rand = mulberry32(3);
    for (const encoding of [LogChunkEncoding.DeflateRaw, LogChunkEncoding.Snappy]) {
      const entries = randomEntries(rand, 600, { ordered: false, meta: true });
      const b = new LogChunkBuilder({ blockSize: 4096, encoding });
      const sofar: Entry[] = [];
      for (const e of entries) {
        b.append(e[0], e[1], enc.encode(e[2]), e[3]);
        sofar.push(e);
        if (sofar.length % 97 === 0) {
          const snap = b.snapshot();
          expect(read(snap)).toEqual(expected(sofar));
          expect(logChunkMeta(snap).encoding).toBe(encoding);
        }
      }
      const snap = b.snapshot();
      const before = b.entries;
      const fin = b.finish();
      expect(read(snap)).toEqual(read(fin));
      expect(logChunkMeta(snap).entries).toBe(logChunkMeta(fin).entries);
      expect(b.entries).toBeLessThanOrEqual(before);
      // A snapshot of a builder with an empty head is the finished chunk itself.
      expect(b.snapshot()).toEqual(fin);
    }
  });

  it("fromBytes rebuilds a builder from a snapshot (checkpoint) that goes on appending", () => {
    const rand = mulberry32(5);
    const entries = randomEntries(rand, 400, { ordered: false, meta: true });
    const b = build(entries.slice(0, 300), 2048, LogChunkEncoding.DeflateRaw);
    const snap = b.snapshot();
    const c = LogChunkBuilder.fromBytes(snap, { blockSize: 2048 });
    expect(c.entries).toBe(logChunkMeta(snap).entries);
    expect(read(c.snapshot())).toEqual(read(snap));
    for (const e of entries.slice(300)) c.append(e[0], e[1], enc.encode(e[2]), e[3]);
    expect(read(c.finish())).toEqual(expected(entries));
  });

  it("an empty chunk has no entries", () => {
    const b = new LogChunkBuilder({ blockSize: 100 });
    expect(b.minMs).toBe(Infinity);
    const bytes = b.finish();
    expect(read(bytes)).toEqual([]);
    expect(logChunkMeta(bytes)).toMatchObject({ entries: 0, blocks: 0 });
  });

  it("detects every byte flip and every truncation with CorruptDataError", () => {
    const rand = mulberry32(9);
    for (const encoding of ENCODINGS) {
      const entries = randomEntries(rand, 40, { ordered: false, meta: true }).map((e): Entry => [e[0], e[1], e[2].slice(0, 80), e[3]]);
      const b = build(entries, 300, encoding);
      const variants = [b.snapshot(), b.finish()];
      b.append(1, 2, enc.encode("head"), null);
      variants.push(b.snapshot());
      for (const bytes of variants) {
        expect(read(bytes).length).toBeGreaterThan(0);
        // Plain loops, one expect at the end: expect() per byte dominates the run time.
        const missed: string[] = [];
        const check = (bad: Uint8Array, what: string) => {
          try {
            read(bad);
            missed.push(`${what}: no error`);
          } catch (e) {
            if (!(e instanceof CorruptDataError)) missed.push(`${what}: ${String(e)}`);
          }
        };
        for (let i = 0; i < bytes.length; i++) {
          const bad = bytes.slice();
          bad[i] ^= 1 + Math.floor(rand() * 255);
          check(bad, `flip at byte ${i} of ${bytes.length} (${LogChunkEncoding[encoding]})`);
        }
        for (let n = 0; n < bytes.length; n++) check(bytes.subarray(0, n), `truncated to ${n} (${LogChunkEncoding[encoding]})`);
        expect(missed).toEqual([]);
        const longer = new Uint8Array(bytes.length + 1);
        longer.set(bytes);
        expect(() => read(longer)).toThrow(CorruptDataError);
        expect(() => LogChunkBuilder.fromBytes(bytes.subarray(0, bytes.length - 1), { blockSize: 300 })).toThrow(CorruptDataError);
      }
    }
  });

  it("skips blocks outside the range without decompressing them (a damaged data byte there goes unnoticed, as in Prometheus blocks)", () => {
    const entries: Entry[] = [];
    for (let i = 0; i < 100; i++) entries.push([i, 0, `line ${i}`, null]);
    const bytes = build(entries, 200, LogChunkEncoding.DeflateRaw).finish();
    expect(logChunkMeta(bytes).blocks).toBeGreaterThan(3);
    // Damage the last byte of the last block's data (before its CRC).
    const bad = bytes.slice();
    bad[bad.length - 5] ^= 0xff;
    expect(read(bad, 0, 0, 10, 0)).toEqual(expected(entries, [0, 0], [10, 0]));
    expect(() => read(bad, 90, 0, 100, 0)).toThrow(CorruptDataError);
  });

  it("refuses bad timestamps at append", () => {
    const b = new LogChunkBuilder({ blockSize: 100 });
    expect(() => b.append(1.5, 0, enc.encode("x"), null)).toThrow(/bad timestamp/);
    expect(() => b.append(1, 1_000_000, enc.encode("x"), null)).toThrow(/bad timestamp/);
    expect(() => b.append(1, -1, enc.encode("x"), null)).toThrow(/bad timestamp/);
  });

  it("orders lines by code point (UTF-8 byte order), not UTF-16 units", () => {
    expect(cmpCodePoints("\uff21", "😀")).toBeLessThan(0);
    expect("\uff21" < "😀").toBe(false); // what JS's < says
    expect(cmpCodePoints("a", "ab")).toBeLessThan(0);
    expect(cmpCodePoints("b", "a")).toBeGreaterThan(0);
    const entries: Entry[] = [
      [1, 0, "😀", null],
      [1, 0, "\uff21", null],
      [1, 0, "z", null],
    ];
    expect(read(build(entries, 1 << 20, LogChunkEncoding.None).finish()).map((e) => e[2])).toEqual(["z", "\uff21", "😀"]);
  });
});

describe("log chunk format version 1 (golden bytes)", () => {
  // Written by this code when the format shipped (a snapshot: one Brotli block and
  // the raw head block). Readers must keep decoding them; if this fails, the format
  // changed: bump LOG_CHUNK_VERSION and keep a version 1 decoder.
  const NONE = "45494c4301000205f4a1abfef962004ebf843de31e40970004f4a1abfef962004ebf843d880188014316a039030874726163655f6964036162630364656600000fc3bc6ec3af63c3b664c3a920e29c9301000101d5f01b166c6576656c3d696e666f206d73673d2268656c6c6f22000101396c6576656c3d7761726e206d73673d22776f726c642220616e642061206c6f6e676572206c696e6520746f20706173732036342062797465730100024cbf843d0000b3336bf70001faa1abfef9620200020909f3d5dffd00000204686561640062af1aa7";
  const BROTLI =
    "45494c4301040205f4a1abfef962004ebf843d0a3db1c20404f4a1abfef962004ebf843d88018801ce11df431b870000e4ffbf77f7b62d1bfb9e07dc986081ff31b60796061265d158c08104146cc0992404e10030d072ae6a752d37e2509014ce90cb822895654505687eaeeee72c7d2ef2e744bfe30101f1fbefb70652bbade1aa1e3991b665ba62db1e03c4652513425736fe64eac29540b6e76a4a48b6e12a147be40b5144b3098945ac4408a5dd63bf0500c0715e890001faa1abfef9620200020909f3d5dffd00000204686561640062af1aa7";
  const want: Entry[] = [
    [1_700_000_000_122, 0, "ünïcödé ✓", ["trace_id", "abc"]],
    [1_700_000_000_123, 456_789, 'level=info msg="hello"', null],
    [1_700_000_000_124, 1, 'level=warn msg="world" and a longer line to pass 64 bytes', ["trace_id", "def"]],
    [1_700_000_000_125, 2, "head", null],
    [1_700_000_000_200, 999_999, "", null],
  ];
  const hex = (h: string) => Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));

  it("decodes the version 1 chunks", () => {
    for (const [h, encoding] of [[NONE, LogChunkEncoding.None], [BROTLI, LogChunkEncoding.Brotli]] as const) {
      const bytes = hex(h);
      expect(read(bytes)).toEqual(want);
      expect(logChunkMeta(bytes)).toEqual({ minMs: 1_700_000_000_122, minNs: 0, maxMs: 1_700_000_000_200, maxNs: 999_999, entries: 5, encoding, blocks: 2 });
    }
  });

  it("writes the raw (None) chunk byte for byte as version 1 did", () => {
    const b = new LogChunkBuilder({ blockSize: 64, encoding: LogChunkEncoding.None });
    b.append(1_700_000_000_123, 456_789, enc.encode('level=info msg="hello"'), null);
    b.append(1_700_000_000_122, 0, enc.encode("ünïcödé ✓"), ["trace_id", "abc"]);
    b.append(1_700_000_000_200, 999_999, enc.encode(""), null);
    b.append(1_700_000_000_124, 1, enc.encode('level=warn msg="world" and a longer line to pass 64 bytes'), ["trace_id", "def"]);
    b.append(1_700_000_000_125, 2, enc.encode("head"), null);
    expect(b.snapshot()).toEqual(hex(NONE));
  });
});

describe("merge", () => {
  function data(labels: string, entries: Entry[]): LogStreamData {
    return {
      labels,
      flat: ["app", labels],
      tsMs: Float64Array.from(entries.map((e) => e[0])),
      tsNs: Uint32Array.from(entries.map((e) => e[1])),
      lines: entries.map((e) => e[2]),
      metadata: entries.some((e) => e[3]) ? entries.map((e) => e[3]) : null,
    };
  }
  function entriesOf(d: LogStreamData): Entry[] {
    return d.lines.map((l, i) => [d.tsMs[i], d.tsNs[i], l, d.metadata ? d.metadata[i] : null]);
  }

  it("merges a head snapshot and a flushed chunk of the same stream without returning a line twice", () => {
    const rand = mulberry32(21);
    const all = randomEntries(rand, 500, { ordered: false, meta: true });
    // The flushed chunk holds the first 300; the head (mid-flush) still holds 200..500.
    const flushed = build(all.slice(0, 300), 4096, LogChunkEncoding.DeflateRaw).finish();
    const head = build(all.slice(200), 4096, LogChunkEncoding.DeflateRaw).snapshot();
    const other = build([[5, 5, "other", null]], 4096, LogChunkEncoding.DeflateRaw).finish();
    const out = streamsFromChunks(
      [
        { labels: '{app="b"}', flat: ["app", "b"], chunks: [head] },
        { labels: '{app="a"}', flat: ["app", "a"], chunks: [other] },
        { labels: '{app="b"}', flat: ["app", "b"], chunks: [flushed] },
        { labels: '{app="c"}', flat: ["app", "c"], chunks: [] },
      ],
      -Infinity,
      0,
      Infinity,
      0,
    );
    expect(out.map((s) => s.labels)).toEqual(['{app="a"}', '{app="b"}']);
    expect(entriesOf(out[1])).toEqual(expected(all));
    expect(out[0].metadata).toBeNull();
    expect(entriesOf(out[0])).toEqual([[5, 5, "other", null]]);
  });

  it("applies the time range across chunks", () => {
    const a: Entry[] = [[1, 0, "a", null], [2, 0, "b", null], [3, 0, "c", null]];
    const c1 = build(a, 10, LogChunkEncoding.Snappy).finish();
    const out = streamsFromChunks([{ labels: "{}", flat: [], chunks: [c1, c1] }], 2, 0, 3, 0);
    expect(entriesOf(out[0])).toEqual([[2, 0, "b", null]]);
    expect(streamsFromChunks([{ labels: "{}", flat: [], chunks: [c1] }], 4, 0, 5, 0)).toEqual([]);
  });

  it("merges decoded results by label string, sorted by (time, line), duplicates removed", () => {
    const x: Entry[] = [[1, 0, "a", null], [3, 0, "c", ["k", "v"]]];
    const y: Entry[] = [[1, 0, "a", null], [2, 0, "b", null], [3, 0, "c", ["k", "v"]], [3, 0, "b", null]];
    const out = mergeLogStreamData([data('{app="q"}', x), data('{app="p"}', [[9, 9, "p", null]]), data('{app="q"}', y)]);
    expect(out.map((s) => s.labels)).toEqual(['{app="p"}', '{app="q"}']);
    expect(entriesOf(out[1])).toEqual([[1, 0, "a", null], [2, 0, "b", null], [3, 0, "b", null], [3, 0, "c", ["k", "v"]]]);
  });
});
