import { describe, expect, it } from "vitest";
import { compileMatcher, type CompiledMatcher } from "../../src/model/matchers";
import { compareLabels, getLabel, seriesKey, type FlatLabels } from "../../src/model/labels";
import { MatchType } from "../../src/proto/types";
import {
  BLOCK_VERSION,
  BlockCorruptError,
  ChunkEncoding,
  HEADER_SIZE,
  TOC_SIZE,
  chunkRecordSize,
  uvarintSize,
  type BlockMetaFields,
  type BlockSeries,
  type ChunkRef,
  type Toc,
} from "../../src/storage/block/format";
import { BlockIndex, memorySource, openBlock, readChunks, verifyBlock, type RangeSource } from "../../src/storage/block/reader";
import { BlockWriter, ulid, type ChunkInput } from "../../src/storage/block/writer";
import { mulberry32 as prng } from "../support/prng";

const FIELDS: BlockMetaFields = { tenant: "t1", shard: 3, walRange: { from: 10, to: 20 }, blockId: "01J00000000000000000000000" };


interface InputSeries {
  labels: FlatLabels;
  chunks: ChunkInput[];
}

const NAMES = ["__name__", "job", "instance", "le", "path", "ünï", "z"];
const VALUES = ["", "a", "b", "api", "node", "10.0.0.1:9100", "日本語", "🙂", "a\nb", "ÿ", "\uffff", "0.5", "+Inf"];
const METRICS = ["up", "http_requests_total", "node_cpu_seconds_total", "métrique_😀"];

function randomData(rnd: () => number, seed: number): InputSeries[] {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
  const seen = new Set<string>();
  const out: InputSeries[] = [];
  for (let tries = 0; out.length < seed; tries++) {
    const labels: FlatLabels = ["__name__", pick(METRICS)];
    for (const n of NAMES.slice(1)) if (rnd() < 0.5) labels.push(n, pick(VALUES));
    // Keep them sorted by name like real label sets (NAMES is not).
    const pairs: [string, string][] = [];
    for (let i = 0; i < labels.length; i += 2) pairs.push([labels[i], labels[i + 1]]);
    pairs.sort((x, y) => (x[0] < y[0] ? -1 : 1));
    const sorted = pairs.flat();
    const key = seriesKey(sorted);
    if (seen.has(key)) continue;
    seen.add(key);
    const chunks: ChunkInput[] = [];
    const n = 1 + Math.floor(rnd() * 4);
    for (let c = 0; c < n; c++) {
      const mint = Math.floor(rnd() * 10_000) - 2_000;
      const maxt = mint + Math.floor(rnd() * 3_000);
      const data = new Uint8Array(Math.floor(rnd() * 40));
      for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
      const log = rnd() >= 0.8;
      // Log chunk refs carry their uncompressed size (format version 2), up to and past 2^32.
      const size = log ? Math.floor(rnd() * (rnd() < 0.1 ? 2 ** 40 : 1 << 20)) : undefined;
      chunks.push({ mint, maxt, numSamples: Math.floor(rnd() * 200), encoding: log ? ChunkEncoding.LOG : ChunkEncoding.XOR, data, uncompressedBytes: size });
    }
    out.push({ labels: sorted, chunks });
  }
  return out;
}

function shuffled<T>(a: readonly T[], rnd: () => number): T[] {
  const b = a.slice();
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [b[i], b[j]] = [b[j], b[i]];
  }
  return b;
}

function build(series: readonly InputSeries[], rnd?: () => number): { bytes: Uint8Array; meta: ReturnType<BlockWriter["finish"]>["meta"] } {
  const w = new BlockWriter();
  for (const s of rnd ? shuffled(series, rnd) : series) w.addSeries(s.labels, s.chunks);
  return w.finish(FIELDS);
}

/** What select + readChunks must return, computed by brute force over the input. */
function expected(series: readonly InputSeries[], matchers: readonly CompiledMatcher[], mint: number, maxt: number) {
  return series
    .filter((s) => matchers.every((m) => m.matches(getLabel(s.labels, m.name))))
    .map((s) => ({
      labels: s.labels,
      chunks: s.chunks
        .filter((c) => c.maxt >= mint && c.mint <= maxt)
        .slice()
        .sort((a, b) => a.mint - b.mint || a.maxt - b.maxt)
        .map((c) => ({ mint: c.mint, maxt: c.maxt, numSamples: c.numSamples, encoding: c.encoding, uncompressedBytes: c.uncompressedBytes ?? -1, length: c.data.length, data: Array.from(c.data) })),
    }))
    .filter((s) => s.chunks.length > 0)
    .sort((a, b) => compareLabels(a.labels, b.labels));
}

async function actual(src: RangeSource, index: BlockIndex, matchers: readonly CompiledMatcher[], mint: number, maxt: number) {
  const sel = index.select(matchers, mint, maxt);
  const refs = sel.flatMap((s) => s.chunks);
  const data = await readChunks(src, refs);
  let k = 0;
  return sel.map((s) => ({
    labels: s.labels,
    chunks: s.chunks.map((c) => ({ mint: c.mint, maxt: c.maxt, numSamples: c.numSamples, encoding: c.encoding, uncompressedBytes: c.uncompressedBytes, length: c.length, data: Array.from(data[k++]) })),
  }));
}

function countingSource(bytes: Uint8Array): RangeSource & { reads: [number, number][] } {
  const inner = memorySource(bytes);
  const reads: [number, number][] = [];
  return {
    size: inner.size,
    reads,
    read(offset, length) {
      reads.push([offset, length]);
      return inner.read(offset, length);
    },
  };
}

const m = (type: MatchType, name: string, value: string) => compileMatcher({ type, name, value });
const ALL = [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY] as const;

describe("block format", () => {
  it("round-trips random series added in any order", async () => {
    const rnd = prng(1);
    const input = randomData(rnd, 400);
    const { bytes, meta } = build(input, rnd);
    const src = memorySource(bytes);
    const index = await openBlock(src);

    expect(meta.stats).toEqual({
      numSeries: input.length,
      numChunks: input.reduce((n, s) => n + s.chunks.length, 0),
      numSamples: input.reduce((n, s) => n + s.chunks.reduce((k, c) => k + c.numSamples, 0), 0),
      bytes: bytes.length,
    });
    expect(meta.minTime).toBe(Math.min(...input.flatMap((s) => s.chunks.map((c) => c.mint))));
    expect(meta.maxTime).toBe(Math.max(...input.flatMap((s) => s.chunks.map((c) => c.maxt))));
    expect(index.meta).toEqual(meta);
    expect(index.numSeries).toBe(input.length);
    expect(await actual(src, index, [], ...ALL)).toEqual(expected(input, [], ...ALL));
    await verifyBlock(src);

    // Label names and values, against the input.
    const names = [...new Set(input.flatMap((s) => s.labels.filter((_, i) => i % 2 === 0)))].sort();
    expect(index.labelNames()).toEqual(names);
    for (const n of [...names, "absent"]) {
      const values = [...new Set(input.map((s) => s.labels).filter((l) => l.includes(n) && l.indexOf(n) % 2 === 0).map((l) => l[l.indexOf(n) + 1]))].sort();
      expect(index.labelValues(n)).toEqual(values);
    }
  });

  it("select matches brute force for random =, !=, =~, !~ matchers and time ranges", async () => {
    const rnd = prng(2);
    const input = randomData(rnd, 300);
    const { bytes } = build(input, rnd);
    const src = memorySource(bytes);
    const index = await openBlock(src);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
    const regexps = [".*", ".+", "a|b", "a.*", "", "日.*|🙂", "(?i)API|node", ".*\\d.*", "up|métrique_😀", "x+"];
    const names = [...NAMES, "absent"];
    let nonEmpty = 0;
    for (let q = 0; q < 400; q++) {
      const matchers: CompiledMatcher[] = [];
      const k = 1 + Math.floor(rnd() * 3);
      for (let i = 0; i < k; i++) {
        const type = pick([MatchType.EQ, MatchType.NEQ, MatchType.RE, MatchType.NRE]);
        const name = pick(names);
        const value = type === MatchType.EQ || type === MatchType.NEQ ? pick(name === "__name__" ? [...METRICS, ""] : [...VALUES, "zz"]) : pick(regexps);
        matchers.push(m(type, name, value));
      }
      const mint = rnd() < 0.3 ? Number.NEGATIVE_INFINITY : Math.floor(rnd() * 14_000) - 3_000;
      const maxt = rnd() < 0.3 ? Number.POSITIVE_INFINITY : mint + Math.floor(rnd() * 4_000);
      const want = expected(input, matchers, mint, maxt);
      if (want.length > 0) nonEmpty++;
      expect(await actual(src, index, matchers, mint, maxt)).toEqual(want);
    }
    expect(nonEmpty).toBeGreaterThan(100); // the property is not vacuous
  });

  it("returns only chunk refs overlapping [mint, maxt], inclusive", async () => {
    const d = (n: number) => new Uint8Array([n]);
    const input: InputSeries[] = [
      {
        labels: ["__name__", "a"],
        chunks: [
          { mint: 200, maxt: 299, numSamples: 3, encoding: 1, data: d(3) },
          { mint: 0, maxt: 99, numSamples: 1, encoding: 1, data: d(1) },
          { mint: 100, maxt: 199, numSamples: 2, encoding: 1, data: d(2) },
        ],
      },
      { labels: ["__name__", "b"], chunks: [{ mint: 1000, maxt: 1000, numSamples: 1, encoding: 1, data: d(9) }] },
    ];
    const { bytes } = build(input);
    const index = await openBlock(memorySource(bytes));
    const span = (mint: number, maxt: number) => index.select([], mint, maxt).map((s) => [s.labels[1], s.chunks.map((c) => c.numSamples)]);
    expect(span(150, 250)).toEqual([["a", [2, 3]]]);
    expect(span(100, 100)).toEqual([["a", [2]]]);
    expect(span(99, 100)).toEqual([["a", [1, 2]]]);
    expect(span(-50, 0)).toEqual([["a", [1]]]);
    expect(span(300, 999)).toEqual([]);
    expect(span(300, 1000)).toEqual([["b", [1]]]);
    expect(span(1001, 5000)).toEqual([]);
    expect(span(250, 150)).toEqual([]);
    expect(span(...ALL)).toEqual([["a", [1, 2, 3]], ["b", [1]]]);
  });

  it("opens with exactly two reads and coalesces a query's chunk reads", async () => {
    const rnd = prng(3);
    const input = randomData(rnd, 400);
    const { bytes } = build(input, rnd);
    const src = countingSource(bytes);
    const index = await openBlock(src);
    expect(src.reads).toEqual([
      [bytes.length - TOC_SIZE, TOC_SIZE],
      [index.toc.symbols, index.toc.toc - index.toc.symbols],
    ]);
    expect(index.bytes.length).toBe(index.toc.toc - index.toc.symbols);

    // One metric's series are neighbours in label order, so their chunks are contiguous: one read even with no gap allowed.
    src.reads.length = 0;
    const up = index.select([m(MatchType.EQ, "__name__", "up")], ...ALL);
    const upRefs = up.flatMap((s) => s.chunks);
    expect(upRefs.length).toBeGreaterThan(20);
    const upData = await readChunks(src, upRefs, { maxGap: 0 });
    expect(src.reads.length).toBe(1);
    const span = upRefs.reduce((n, c) => n + chunkRecordSize(c.length), 0);
    expect(src.reads[0][1]).toBe(span); // exactly the records, nothing more
    expect(upData.map((d) => d.length)).toEqual(upRefs.map((c) => c.length));

    // Scattered series: without gaps allowed, one read per run of neighbours; with the default 16 KiB gap, one read for this small block.
    const scattered = index.select([m(MatchType.EQ, "job", "a")], ...ALL).flatMap((s) => s.chunks);
    src.reads.length = 0;
    await readChunks(src, scattered, { maxGap: 0 });
    const runs = src.reads.length;
    expect(runs).toBeGreaterThan(1);
    expect(runs).toBeLessThanOrEqual(scattered.length);
    src.reads.length = 0;
    const viaGap = await readChunks(src, scattered);
    expect(src.reads.length).toBe(1);

    // Order of refs is kept, duplicates allowed, result independent of read plan.
    const reversed = scattered.slice().reverse();
    reversed.push(scattered[0]);
    const r = await readChunks(src, reversed, { maxGap: 0 });
    expect(r.map((x) => Array.from(x))).toEqual([...viaGap.slice().reverse(), viaGap[0]].map((x) => Array.from(x)));
    expect(await readChunks(src, [])).toEqual([]);
  });

  it("rebuilds the index from cached bytes and TOC", async () => {
    const rnd = prng(4);
    const input = randomData(rnd, 100);
    const { bytes } = build(input, rnd);
    const src = memorySource(bytes);
    const index = await openBlock(src);
    const cachedToc = JSON.parse(JSON.stringify(index.toc)) as Toc;
    const copy = BlockIndex.fromBytes(index.bytes.slice(), cachedToc);
    const q = [m(MatchType.RE, "__name__", "up|http_requests_total"), m(MatchType.NEQ, "job", "a")];
    expect(copy.select(q, 0, 5000)).toEqual(index.select(q, 0, 5000));
    expect(copy.meta).toEqual(index.meta);
    expect(() => BlockIndex.fromBytes(index.bytes.subarray(1), cachedToc)).toThrow(BlockCorruptError);
    expect(() => BlockIndex.fromBytes(index.bytes, { ...cachedToc, series: cachedToc.series + 1 })).toThrow(BlockCorruptError);
    expect(() => BlockIndex.fromBytes(index.bytes, { ...cachedToc, version: 3 })).toThrow(BlockCorruptError);
    // A cached TOC naming another readable version than the block's own meta is refused too.
    expect(() => BlockIndex.fromBytes(index.bytes, { ...cachedToc, version: 1 })).toThrow(/block meta/);
  });

  it("writes and reads an empty block", async () => {
    const { bytes, meta } = new BlockWriter().finish(FIELDS);
    expect(meta.stats).toEqual({ numSeries: 0, numSamples: 0, numChunks: 0, bytes: bytes.length });
    expect([meta.minTime, meta.maxTime]).toEqual([0, -1]);
    const src = memorySource(bytes);
    const index = await openBlock(src);
    expect(index.select([], ...ALL)).toEqual([]);
    expect(index.select([m(MatchType.EQ, "a", "b")], 0, 10)).toEqual([]);
    expect(index.labelNames()).toEqual([]);
    expect(index.labelValues("a")).toEqual([]);
    expect(await readChunks(src, [])).toEqual([]);
    expect((await verifyBlock(src)).meta).toEqual(meta);
  });

  it("writes the same bytes for the same input, whatever the order", () => {
    const rnd = prng(5);
    const input = randomData(rnd, 50);
    expect(build(input, rnd).bytes).toEqual(build(input, rnd).bytes);
  });

  it("rejects invalid input", () => {
    const c: ChunkInput = { mint: 0, maxt: 1, numSamples: 1, encoding: 1, data: new Uint8Array(1) };
    expect(() => new BlockWriter().addSeries(["b", "1", "a", "2"], [c])).toThrow(/not sorted/);
    expect(() => new BlockWriter().addSeries(["a", "1", "a", "2"], [c])).toThrow(/not sorted/);
    expect(() => new BlockWriter().addSeries(["a"], [c])).toThrow(/odd/);
    expect(() => new BlockWriter().addSeries(["a", "\ud800"], [c])).toThrow(/Unicode/);
    expect(() => new BlockWriter().addSeries(["a", "1"], [{ ...c, maxt: -1 }])).toThrow(/time range/);
    expect(() => new BlockWriter().addSeries(["a", "1"], [{ ...c, encoding: 256 }])).toThrow(/encoding/);
    expect(() => new BlockWriter().addSeries(["a", "1"], [{ ...c, encoding: ChunkEncoding.LOG }])).toThrow(/a log chunk needs its uncompressed size/);
    expect(() => new BlockWriter().addSeries(["a", "1"], [{ ...c, encoding: ChunkEncoding.LOG, uncompressedBytes: -3 }])).toThrow(/uncompressed size/);
    const w = new BlockWriter();
    w.addSeries(["a", "1"], [c]);
    w.addSeries(["a", "1"], [c]);
    expect(() => w.finish(FIELDS)).toThrow(/added twice/);
    const done = new BlockWriter();
    done.finish(FIELDS);
    expect(() => done.addSeries(["a", "1"], [c])).toThrow(/after finish/);
  });

  it("copies chunk data, so callers may reuse their buffers", async () => {
    const data = new Uint8Array([1, 2, 3]);
    const w = new BlockWriter();
    w.addSeries(["a", "1"], [{ mint: 0, maxt: 1, numSamples: 1, encoding: 1, data }]);
    data.fill(9);
    const { bytes } = w.finish(FIELDS);
    const src = memorySource(bytes);
    const [s] = (await openBlock(src)).select([], ...ALL);
    expect(Array.from((await readChunks(src, s.chunks))[0])).toEqual([1, 2, 3]);
  });

  it("makes time-sortable ULIDs", () => {
    const a = ulid(1_700_000_000_000, new Uint8Array(10));
    const b = ulid(1_700_000_000_001, new Uint8Array(10).fill(255));
    expect(a).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(a.endsWith("0000000000000000")).toBe(true);
    expect(b.endsWith("ZZZZZZZZZZZZZZZZ")).toBe(true);
    expect(a < b).toBe(true);
    expect(build([]).meta.blockId).toBe(FIELDS.blockId);
    const w = new BlockWriter();
    expect(w.finish({ ...FIELDS, blockId: undefined }).meta.blockId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });
});

describe("block corruption", () => {
  const input: InputSeries[] = [
    { labels: ["__name__", "up", "job", "a"], chunks: [{ mint: 0, maxt: 10, numSamples: 2, encoding: 1, data: new Uint8Array([1, 2, 3]) }] },
    {
      labels: ["__name__", "up", "job", "b"],
      chunks: [
        { mint: 0, maxt: 10, numSamples: 2, encoding: 1, data: new Uint8Array([4, 5]) },
        { mint: 11, maxt: 20, numSamples: 2, encoding: 1, data: new Uint8Array([6, 7, 8, 9]) },
      ],
    },
    { labels: ["__name__", "x", "z", "日本"], chunks: [{ mint: 5, maxt: 6, numSamples: 1, encoding: 2, data: new Uint8Array([10]), uncompressedBytes: 300 }] },
  ];
  const { bytes } = build(input);

  it("detects every flipped byte, or returns the right data when the byte is not read", async () => {
    const good = await openBlock(memorySource(bytes));
    const all = good.select([], ...ALL);
    const refs = all.flatMap((s) => s.chunks);
    // Read every other chunk, so half the chunk records are never looked at by the query.
    const readRefs = refs.filter((_, i) => i % 2 === 0);
    const readData = (await readChunks(memorySource(bytes), readRefs)).map((d) => Array.from(d));
    const inRead = (p: number) => readRefs.some((c) => p >= c.offset && p < c.offset + chunkRecordSize(c.length));
    let caughtAtOpen = 0;
    let caughtAtRead = 0;
    let unread = 0;
    for (const flip of [0xff, 0x01, 0x80]) {
      for (let p = 0; p < bytes.length; p++) {
        const bad = bytes.slice();
        bad[p] ^= flip;
        const src = memorySource(bad);
        await expect(verifyBlock(src), `verify, byte ${p}`).rejects.toBeInstanceOf(BlockCorruptError);
        let index: BlockIndex;
        try {
          index = await openBlock(src);
        } catch (e) {
          expect(e, `open, byte ${p}`).toBeInstanceOf(BlockCorruptError);
          expect(p, "only the header and chunks are outside the TOC+index reads").toBeGreaterThanOrEqual(good.toc.symbols);
          caughtAtOpen++;
          continue;
        }
        // The index is checksummed: a successful open means the flip is outside it.
        expect(p).toBeLessThan(good.toc.symbols);
        expect(index.select([], ...ALL)).toEqual(all);
        let data: Uint8Array[];
        try {
          data = await readChunks(src, readRefs, { maxGap: 0 });
        } catch (e) {
          expect(e, `readChunks, byte ${p}`).toBeInstanceOf(BlockCorruptError);
          expect(inRead(p), `byte ${p} was not read but failed the read`).toBe(true);
          caughtAtRead++;
          continue;
        }
        expect(inRead(p), `flipped byte ${p} inside a read chunk went unnoticed`).toBe(false);
        expect(data.map((d) => Array.from(d))).toEqual(readData);
        unread++;
      }
    }
    expect(caughtAtOpen).toBeGreaterThan(0);
    expect(caughtAtRead).toBeGreaterThan(0);
    expect(unread).toBeGreaterThan(0);
  });

  it("detects truncation and extension at every length", async () => {
    for (let n = 0; n < bytes.length; n++) {
      await expect(openBlock(memorySource(bytes.subarray(0, n))), `length ${n}`).rejects.toBeInstanceOf(BlockCorruptError);
      await expect(verifyBlock(memorySource(bytes.subarray(0, n))), `length ${n}`).rejects.toBeInstanceOf(BlockCorruptError);
    }
    for (const extra of [1, 7, 64, 1000]) {
      const longer = new Uint8Array(bytes.length + extra);
      longer.set(bytes);
      await expect(openBlock(memorySource(longer))).rejects.toBeInstanceOf(BlockCorruptError);
      // The original block followed by garbage that happens to end in a copy of its TOC.
      longer.set(bytes.subarray(bytes.length - TOC_SIZE), longer.length - TOC_SIZE);
      await expect(openBlock(memorySource(longer))).rejects.toBeInstanceOf(BlockCorruptError);
    }
  });

  it("detects a source that returns short reads, and refs outside the chunks", async () => {
    const short: RangeSource = { size: bytes.length, read: async (o, l) => bytes.slice(o, o + l - 1) };
    await expect(openBlock(short)).rejects.toBeInstanceOf(BlockCorruptError);
    const src = memorySource(bytes);
    const [s] = (await openBlock(src)).select([], ...ALL);
    const ref = s.chunks[0];
    const shortChunks: RangeSource = { size: bytes.length, read: async (o, l) => bytes.slice(o, o + l - 2) };
    await expect(readChunks(shortChunks, [ref])).rejects.toBeInstanceOf(BlockCorruptError);
    const bad: ChunkRef[] = [
      { ...ref, offset: bytes.length },
      { ...ref, offset: 2 },
      { ...ref, offset: ref.offset + 1 },
      { ...ref, length: ref.length + 1 },
      { ...ref, encoding: 9 },
      { ...ref, offset: 1.5 },
    ];
    for (const b of bad) await expect(readChunks(src, [b]), JSON.stringify(b)).rejects.toBeInstanceOf(BlockCorruptError);
  });

  it("never lets a different exception escape from the byte-flip paths", async () => {
    // Flips of two bytes at once (header, chunks, index, TOC pairs) — a denser stress of the decoders.
    const rnd = prng(6);
    for (let t = 0; t < 2000; t++) {
      const bad = bytes.slice();
      bad[Math.floor(rnd() * bad.length)] ^= 1 + Math.floor(rnd() * 255);
      bad[Math.floor(rnd() * bad.length)] ^= 1 + Math.floor(rnd() * 255);
      const src = memorySource(bad);
      try {
        const index = await openBlock(src);
        const sel = index.select([m(MatchType.RE, "__name__", ".+")], ...ALL);
        await readChunks(src, sel.flatMap((s) => s.chunks));
      } catch (e) {
        expect(e).toBeInstanceOf(BlockCorruptError);
      }
    }
  });
});

// A block written by the version-1 writer, kept verbatim: whatever the format
// becomes, readers must keep decoding blocks already in R2.
const GOLDEN_V1 =
  "4549424b010000000301000211fd95525005010003aabbcc7a14d55b0401000222333d22714907085f5f6e616d655f5f" +
  "036a6f62046e6f64650470726f6d027570047a6f6e6506e69db1e4baac50de000e80a0abfef962021a03000401020506" +
  "020008b0ea01030102e0d40300e0d4030501030d020004010301001c9875040102d6bfebde0200010200010100010101" +
  "00995bd18303000104030102020301020501060267678caa7b2276657273696f6e223a312c22626c6f636b4964223a22" +
  "30314a3030303030303030303030303030303030303030303030222c226d696e54696d65223a31373030303030303030" +
  "3030302c226d617854696d65223a313730303030303132303030302c227374617473223a7b226e756d53657269657322" +
  "3a322c226e756d53616d706c6573223a372c226e756d4368756e6b73223a332c226279746573223a3435367d2c227465" +
  "6e616e74223a227431222c227368617264223a332c2277616c52616e6765223a7b2266726f6d223a31302c22746f223a" +
  "32307d7df12555a02600000000000000510000000000000085000000000000009500000000000000a800000000000000" +
  "880100000000000001000000000000000aecaff84549424b";

describe("golden block (format version 1)", () => {
  it("still decodes", async () => {
    const bytes = new Uint8Array(GOLDEN_V1.match(/../g)!.map((h) => parseInt(h, 16)));
    const src = memorySource(bytes);
    const index = await verifyBlock(src);
    expect(index.meta).toEqual({
      version: 1,
      blockId: "01J00000000000000000000000",
      minTime: 1700000000000,
      maxTime: 1700000120000,
      stats: { numSeries: 2, numSamples: 7, numChunks: 3, bytes: bytes.length },
      tenant: "t1",
      shard: 3,
      walRange: { from: 10, to: 20 },
    });
    expect(index.labelNames()).toEqual(["__name__", "job", "zone"]);
    expect(index.labelValues("zone")).toEqual(["東京"]);
    const sel = index.select([m(MatchType.RE, "job", "n.*")], 1700000060000, 1700000060000);
    expect(sel.map((s) => s.labels)).toEqual([["__name__", "up", "job", "node", "zone", "東京"]]);
    expect(sel[0].chunks.map((c) => [c.mint, c.maxt, c.numSamples, c.encoding])).toEqual([[1700000060000, 1700000120000, 3, 1]]);
    expect((await readChunks(src, sel[0].chunks)).map((d) => Array.from(d))).toEqual([[0, 3, 0xaa, 0xbb, 0xcc]]);
    const all = index.select([], ...ALL);
    expect(all.map((s) => s.chunks.length)).toEqual([2, 1]);
    expect((await readChunks(src, all.flatMap((s) => s.chunks))).map((d) => Array.from(d))).toEqual([
      [0, 2, 0x11],
      [0, 3, 0xaa, 0xbb, 0xcc],
      [0, 2, 0x22, 0x33],
    ]);
  });

  it("was written from this input (today's writer reads back the same)", async () => {
    const golden = await openBlock(memorySource(new Uint8Array(GOLDEN_V1.match(/../g)!.map((h) => parseInt(h, 16)))));
    const { bytes } = build(goldenInput());
    const now = await openBlock(memorySource(bytes));
    const strip = (ss: BlockSeries[]) => ss.map((s) => ({ labels: s.labels, chunks: s.chunks.map(({ offset: _o, ...c }) => c) }));
    expect(strip(now.select([], ...ALL))).toEqual(strip(golden.select([], ...ALL)));
    // Version 2 changed only log chunk refs: the rest of the meta is as it was.
    expect(now.meta.version).toBe(BLOCK_VERSION);
    expect({ ...now.meta, version: 1, stats: { ...now.meta.stats, bytes: 0 } }).toEqual({ ...golden.meta, stats: { ...golden.meta.stats, bytes: 0 } });
  });
});

// A version-2 block (log chunk refs carry their uncompressed size), kept verbatim.
const GOLDEN_V2 =
  "4549424b0200000005010003aabbcc7a14d55b0502434c494509e0c3fc5506085f5f6e616d655f5f0361706903617070" +
  "036a6f62046e6f6465027570e22c9e5a80a0abfef9620210020005030401e0d40308e0d4030501030f01020101001390" +
  "bf05050204f0a204138aafbc020001010001010100a255e1ba030001050302010102030104022a7073867b2276657273" +
  "696f6e223a322c22626c6f636b4964223a2230314a3030303030303030303030303030303030303030303032222c226d" +
  "696e54696d65223a313730303030303030303030302c226d617854696d65223a313730303030303132303030302c2273" +
  "74617473223a7b226e756d536572696573223a322c226e756d53616d706c6573223a372c226e756d4368756e6b73223a" +
  "322c226279746573223a3432347d2c2274656e616e74223a227432222c227368617264223a312c2277616c52616e6765" +
  "223a7b2266726f6d223a342c22746f223a387d7d94fc314c1e0000000000000040000000000000006c00000000000000" +
  "79000000000000008a00000000000000680100000000000002000000000000000df99ad04549424b";

describe("golden block (format version 2)", () => {
  const input = (): [FlatLabels, ChunkInput[]][] => [
    [["__name__", "up", "job", "node"], [{ mint: 1700000060000, maxt: 1700000120000, numSamples: 3, encoding: 1, data: new Uint8Array([0, 3, 0xaa, 0xbb, 0xcc]) }]],
    [["app", "api"], [{ mint: 1700000000000, maxt: 1700000090000, numSamples: 4, encoding: 2, data: new Uint8Array([0x43, 0x4c, 0x49, 0x45, 9]), uncompressedBytes: 70000 }]],
  ];

  it("still decodes: an XOR ref without a size, a log ref with its uncompressed size", async () => {
    const bytes = new Uint8Array(GOLDEN_V2.match(/../g)!.map((h) => parseInt(h, 16)));
    const src = memorySource(bytes);
    const index = await verifyBlock(src);
    expect(index.meta.version).toBe(2);
    expect(index.toc.version).toBe(2);
    const all = index.select([], ...ALL);
    expect(all.map((s) => [s.labels, s.chunks.map((c) => [c.encoding, c.numSamples, c.uncompressedBytes])])).toEqual([
      [["__name__", "up", "job", "node"], [[1, 3, -1]]],
      [["app", "api"], [[2, 4, 70000]]],
    ]);
    expect((await readChunks(src, all.flatMap((s) => s.chunks))).map((d) => Array.from(d))).toEqual([
      [0, 3, 0xaa, 0xbb, 0xcc],
      [0x43, 0x4c, 0x49, 0x45, 9],
    ]);
  });

  it("is what today's writer writes for the same input, byte for byte", () => {
    const w = new BlockWriter();
    for (const [labels, chunks] of input()) w.addSeries(labels, chunks);
    const { bytes } = w.finish({ tenant: "t2", shard: 1, walRange: { from: 4, to: 8 }, blockId: "01J00000000000000000000002" });
    expect(Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("")).toBe(GOLDEN_V2);
  });
});

function goldenInput(): InputSeries[] {
  return [
    {
      labels: ["__name__", "up", "job", "node", "zone", "東京"],
      chunks: [
        { mint: 1700000060000, maxt: 1700000120000, numSamples: 3, encoding: 1, data: new Uint8Array([0, 3, 0xaa, 0xbb, 0xcc]) },
        { mint: 1700000000000, maxt: 1700000030000, numSamples: 2, encoding: 1, data: new Uint8Array([0, 2, 0x11]) },
      ],
    },
    { labels: ["__name__", "up", "job", "prom"], chunks: [{ mint: 1700000000000, maxt: 1700000015000, numSamples: 2, encoding: 1, data: new Uint8Array([0, 2, 0x22, 0x33]) }] },
  ];
}

describe("block size", () => {
  it("stays compact for 10,000 node_exporter-like series of one chunk each", async () => {
    const input: InputSeries[] = [];
    const rnd = prng(7);
    const modes = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
    const base = 1_700_000_000_000;
    const add = (labels: Record<string, string>) => {
      const flat = Object.keys(labels).sort().flatMap((k) => [k, labels[k]]);
      const mint = base + Math.floor(rnd() * 15_000);
      const data = new Uint8Array(160);
      for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
      input.push({ labels: flat, chunks: [{ mint, maxt: mint + 7_185_000, numSamples: 480, encoding: 1, data }] });
    };
    for (let i = 0; i < 100; i++) {
      const common = { instance: `10.0.${i >> 4}.${(i * 7) % 256}:9100`, job: "node", env: i % 3 === 0 ? "staging" : "prod" };
      for (let cpu = 0; cpu < 8; cpu++) for (const mode of modes) add({ __name__: "node_cpu_seconds_total", cpu: String(cpu), mode, ...common });
      for (const dir of ["receive", "transmit"]) for (const device of ["eth0", "eth1", "lo", "docker0"]) add({ __name__: `node_network_${dir}_bytes_total`, device, ...common });
      for (const what of ["avail", "size"]) for (const [device, mountpoint] of [["/dev/sda1", "/"], ["/dev/sda2", "/boot"], ["/dev/nvme0n1p1", "/data"], ["tmpfs", "/run"]]) add({ __name__: `node_filesystem_${what}_bytes`, device, fstype: device === "tmpfs" ? "tmpfs" : "ext4", mountpoint, ...common });
      for (const dir of ["read", "written"]) for (const device of ["sda", "sdb", "nvme0n1", "nvme1n1"]) add({ __name__: `node_disk_${dir}_bytes_total`, device, ...common });
      for (const name of ["node_load1", "node_load5", "node_load15", "node_memory_MemFree_bytes", "node_memory_MemTotal_bytes", "node_memory_Cached_bytes", "node_memory_Buffers_bytes", "node_boot_time_seconds", "node_context_switches_total", "node_forks_total", "node_intr_total", "node_procs_running"]) add({ __name__: name, ...common });
    }
    expect(input.length).toBe(10_000);
    const { bytes } = build(input, rnd);
    const index = await openBlock(memorySource(bytes));
    const t = index.toc;
    const n = input.length;
    const labelsPerSeries = input.reduce((k, s) => k + s.labels.length / 2, 0) / n;
    const dataBytes = input.reduce((k, s) => k + s.chunks[0].data.length, 0);
    const perChunkOverhead = (t.symbols - HEADER_SIZE - dataBytes) / n;
    const report = {
      labelsPerSeries,
      blockBytes: bytes.length,
      indexBytesPerSeries: (t.toc - t.symbols) / n,
      symbolsBytes: t.series - t.symbols,
      seriesBytesPerSeries: (t.postings - t.series) / n,
      postingsBytesPerSeries: (t.postingsTable - t.postings) / n,
      postingsTableBytes: t.meta - t.postingsTable,
      metaBytes: t.toc - t.meta,
      chunkRecordOverhead: perChunkOverhead,
      overheadPerChunkAll: (bytes.length - dataBytes) / n,
      // The chunk-ref part of a series entry (first chunk of a series: absolute offset).
      indexBytesPerChunkRef:
        index
          .select([], ...ALL)
          .flatMap((s) => s.chunks)
          .reduce((k, c) => k + uvarintSize(c.mint - index.meta.minTime) + uvarintSize(c.offset) + uvarintSize(c.maxt - c.mint) + uvarintSize(c.length) + 1 + uvarintSize(c.numSamples), 0) / n,
    };
    console.log("block size report", JSON.stringify(report));
    // Regexp unions both small (sorted concatenation) and large (bitmap), against brute force.
    for (const q of [
      [m(MatchType.RE, "instance", "10\\.0\\.0\\.(0|7):9100"), m(MatchType.NEQ, "mode", "idle")],
      [m(MatchType.RE, "instance", "10\\.0\\.1\\..*"), m(MatchType.NRE, "mode", "idle|user")],
      [m(MatchType.NEQ, "device", ""), m(MatchType.EQ, "job", "node")],
    ]) {
      const got = index.select(q, ...ALL).map((s) => s.labels);
      const want = expected(input, q, ...ALL).map((s) => s.labels);
      expect(got.length).toBeGreaterThan(0);
      expect(got).toEqual(want);
    }
    expect(perChunkOverhead).toBe(7); // 2-byte length varint, encoding byte, CRC32C
    expect(report.indexBytesPerSeries).toBeLessThan(48);
  });
});
