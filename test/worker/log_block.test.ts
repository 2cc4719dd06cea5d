// Log blocks in real local R2 (env.BLOCKS in workerd): write, list by tenant and
// time, open with ranged reads, select streams by matchers, read chunks, and
// decode exactly the nanosecond range.

import { describe, expect, it } from "vitest";
import { env, SELF } from "cloudflare:test";
import { CorruptDataError } from "../../src/model/bytes";
import { compileMatcher } from "../../src/model/matchers";
import { MatchType, type LabelMatcher } from "../../src/proto/types";
import { BlockCorruptError, chunkRecordSize } from "../../src/storage/block/format";
import { memorySource, openBlock, verifyBlock, type RangeSource } from "../../src/storage/block/reader";
import { listBlocks } from "../../src/storage/blocks";
import { cmpCodePoints, LogChunkBuilder, LogChunkEncoding } from "../../src/storage/logs/chunk";
import { readLogStreams, selectLogSeries, writeLogBlock } from "../../src/storage/logs/block";
import { listLogBlocks, logBlockKey, putLogBlock, queryLogBlocks } from "../../src/storage/logs/blocks";
import { streamsFromChunks } from "../../src/storage/logs/merge";
import { logChunkFacts, logIndexStats } from "../../src/querier/logs/select";
import { mulberry32 } from "../support/prng";

type Entry = [ms: number, ns: number, line: string, meta: string[] | null];
const enc = new TextEncoder();
const T0 = 1_780_000_000_000;

interface Stream {
  flat: string[];
  labels: string;
  entries: Entry[];
}

function labelString(flat: string[]): string {
  const parts: string[] = [];
  for (let i = 0; i < flat.length; i += 2) parts.push(`${flat[i]}=${JSON.stringify(flat[i + 1])}`);
  return `{${parts.join(", ")}}`;
}

/** Streams of a fake flush: apps x envs x pods, each with entries over 10 minutes from `from`. */
function makeStreams(seed: number, from: number): Stream[] {
  const rand = mulberry32(seed);
  const out: Stream[] = [];
  for (const app of ["api", "web", "db"]) {
    for (const envName of ["prod", "dev"]) {
      for (let pod = 0; pod < 4; pod++) {
        const flat = ["app", app, "env", envName, "pod", `${app}-${pod}`];
        const entries: Entry[] = [];
        const n = 20 + Math.floor(rand() * 200);
        for (let i = 0; i < n; i++) {
          const ms = from + Math.floor(rand() * 600_000);
          const ns = Math.floor(rand() * 1e6);
          entries.push([ms, ns, `${app} ${envName} line ${i} ${"é✓".repeat(i % 3)}`, i % 5 === 0 ? ["trace_id", String(i)] : null]);
        }
        out.push({ flat, labels: labelString(flat), entries });
      }
    }
  }
  return out;
}

/** Each stream's entries as 1 to 3 chunks (small blocks so chunks have several), the last sometimes a snapshot. */
function chunksOf(s: Stream, rand: () => number): Uint8Array[] {
  const parts = 1 + Math.floor(rand() * 3);
  const size = Math.ceil(s.entries.length / parts);
  const out: Uint8Array[] = [];
  for (let p = 0; p < parts; p++) {
    const b = new LogChunkBuilder({ blockSize: 512, encoding: LogChunkEncoding.DeflateRaw });
    for (const [ms, ns, line, meta] of s.entries.slice(p * size, (p + 1) * size)) b.append(ms, ns, enc.encode(line), meta);
    out.push(p === parts - 1 && rand() < 0.5 ? b.snapshot() : b.finish());
  }
  return out;
}

function expected(streams: Stream[], matchers: LabelMatcher[], start: [number, number], end: [number, number]) {
  const ms = matchers.map(compileMatcher);
  const out: { labels: string; entries: Entry[] }[] = [];
  for (const s of streams) {
    const get = (n: string) => {
      const i = s.flat.indexOf(n);
      return i >= 0 && i % 2 === 0 ? s.flat[i + 1] : "";
    };
    if (!ms.every((m) => m.matches(get(m.name)))) continue;
    const entries = s.entries
      .filter((e) => (e[0] > start[0] || (e[0] === start[0] && e[1] >= start[1])) && (e[0] < end[0] || (e[0] === end[0] && e[1] < end[1])))
      .sort((a, b) => a[0] - b[0] || a[1] - b[1] || cmpCodePoints(a[2], b[2]));
    if (entries.length > 0) out.push({ labels: s.labels, entries });
  }
  return out.sort((a, b) => (a.labels < b.labels ? -1 : 1));
}

function decoded(streams: ReturnType<typeof streamsFromChunks>) {
  return streams.map((s) => ({
    labels: s.labels,
    entries: s.lines.map((l, i): Entry => [s.tsMs[i], s.tsNs[i], l, s.metadata ? s.metadata[i] : null]),
  }));
}

function counting(src: RangeSource): RangeSource & { reads: number } {
  const c = {
    size: src.size,
    reads: 0,
    read(offset: number, length: number) {
      c.reads++;
      return src.read(offset, length);
    },
  };
  return c;
}

const eq = (name: string, value: string): LabelMatcher => ({ type: MatchType.EQ, name, value });
const re = (name: string, value: string): LabelMatcher => ({ type: MatchType.RE, name, value });
const neq = (name: string, value: string): LabelMatcher => ({ type: MatchType.NEQ, name, value });

describe("log blocks", () => {
  it("round-trip through R2: list, open, select by matchers, read chunks, exact range", async () => {
    const tenant = "logblock-rt";
    const rand = mulberry32(1);
    const streams = makeStreams(2, T0);
    const { bytes, meta } = writeLogBlock(
      streams.map((s) => ({ labels: s.flat, chunks: chunksOf(s, rand) })),
      { tenant, shard: 3, walRange: { from: 1, to: 9 } },
    );
    expect(meta.stats.numSeries).toBe(streams.length);
    expect(meta.stats.numSamples).toBe(streams.reduce((n, s) => n + s.entries.length, 0));
    await verifyBlock(memorySource(bytes));
    const key = logBlockKey(tenant, meta);
    expect(key.startsWith(`tenants/${tenant}/logs/`)).toBe(true);
    await putLogBlock(env.BLOCKS, key, bytes, meta);

    const cases: [LabelMatcher[], [number, number], [number, number]][] = [
      [[eq("app", "api")], [T0, 0], [T0 + 600_000, 0]],
      [[re("app", "api|db"), neq("env", "dev")], [T0 + 100_000, 123], [T0 + 300_000, 456_789]],
      [[re("pod", ".*-[02]")], [0, 0], [T0 + 10 ** 7, 0]],
      [[eq("app", "none")], [T0, 0], [T0 + 600_000, 0]],
      [[eq("app", "web")], [T0 + 700_000, 0], [T0 + 800_000, 0]],
    ];
    for (const [matchers, start, end] of cases) {
      const got = await queryLogBlocks(env.BLOCKS, tenant, { matchers, startMs: start[0], startNs: start[1], endMs: end[0], endNs: end[1] });
      const merged = streamsFromChunks(got, start[0], start[1], end[0], end[1]);
      expect(decoded(merged)).toEqual(expected(streams, matchers, start, end));
    }
  });

  it("lists only the tenant's log blocks overlapping the range, apart from metric blocks", async () => {
    const tenant = "logblock-list";
    const rand = mulberry32(4);
    const keys: string[] = [];
    for (let k = 0; k < 3; k++) {
      const from = T0 + k * 3_600_000;
      const streams = makeStreams(10 + k, from);
      const { bytes, meta } = writeLogBlock(
        streams.map((s) => ({ labels: s.flat, chunks: chunksOf(s, rand) })),
        { tenant, shard: k, walRange: { from: k, to: k } },
      );
      const key = logBlockKey(tenant, meta);
      keys.push(key);
      await putLogBlock(env.BLOCKS, key, bytes, meta);
    }
    const list = async (a: number, b: number) => (await listLogBlocks(env.BLOCKS, tenant, a, 0, b, 0)).map((x) => x.key);
    expect(await list(T0, T0 + 3 * 3_600_000)).toEqual(keys);
    expect(await list(T0 + 3_600_000, T0 + 3_600_000 + 600_000)).toEqual([keys[1]]);
    expect(await list(T0 + 700_000, T0 + 3_600_000)).toEqual([]); // between blocks; the end is exclusive
    expect(await list(T0 - 10_000, T0)).toEqual([]);
    expect(await listBlocks(env.BLOCKS, tenant, -Infinity, Infinity)).toEqual([]); // metric listing sees none
    expect(await listLogBlocks(env.BLOCKS, "logblock-other", T0, 0, T0 + 10 ** 8, 0)).toEqual([]);
  });

  it("opens with two reads and fetches one stream group's chunks with one ranged read", async () => {
    const rand = mulberry32(6);
    const streams = makeStreams(7, T0);
    const { bytes } = writeLogBlock(
      streams.map((s) => ({ labels: s.flat, chunks: chunksOf(s, rand) })),
      { tenant: "t", shard: 0, walRange: { from: 0, to: 0 } },
    );
    const src = counting(memorySource(bytes));
    const index = await openBlock(src);
    expect(src.reads).toBe(2);
    const m = [eq("app", "db"), eq("env", "prod")].map(compileMatcher);
    const sel = selectLogSeries(index, m, T0, 0, T0 + 600_000, 0);
    expect(sel.map((s) => s.labels[5])).toEqual(["db-0", "db-1", "db-2", "db-3"]);
    expect(src.reads).toBe(2);
    const got = await readLogStreams(index, src, m, T0, 0, T0 + 600_000, 0, { maxGap: 0 });
    expect(src.reads).toBe(3); // neighbours in label order: one range
    expect(got.length).toBe(4);
    expect(index.labelNames()).toEqual(["app", "env", "pod"]);
    expect(index.labelValues("app")).toEqual(["api", "db", "web"]);
  });

  it("keeps chunk ranges exact at nanosecond boundaries (index in ms, chunk in ns)", async () => {
    const b = new LogChunkBuilder({ blockSize: 1 << 16 });
    b.append(T0, 500, enc.encode("a"), null);
    b.append(T0 + 1, 0, enc.encode("b"), null);
    b.append(T0 + 1, 999_999, enc.encode("c"), null);
    const { bytes } = writeLogBlock([{ labels: ["app", "x"], chunks: [b.finish()] }], { tenant: "t", shard: 0, walRange: { from: 0, to: 0 } });
    const index = await openBlock(memorySource(bytes));
    const src = memorySource(bytes);
    const lines = async (s: [number, number], e: [number, number]) => {
      const got = await readLogStreams(index, src, [], s[0], s[1], e[0], e[1]);
      const m = streamsFromChunks(got.map((g) => ({ labels: "{}", flat: g.labels, chunks: g.chunks })), s[0], s[1], e[0], e[1]);
      return m.length ? m[0].lines : [];
    };
    expect(await lines([T0, 500], [T0, 501])).toEqual(["a"]);
    expect(await lines([T0, 0], [T0, 500])).toEqual([]);
    expect(await lines([T0, 501], [T0 + 1, 0])).toEqual([]);
    expect(await lines([T0, 501], [T0 + 1, 1])).toEqual(["b"]);
    expect(await lines([T0 + 1, 1], [T0 + 2, 0])).toEqual(["c"]);
    expect(await lines([T0 - 5, 0], [T0 + 2, 0])).toEqual(["a", "b", "c"]);
    // An end at ns 0 excludes the whole millisecond: the index must not even select it.
    expect(selectLogSeries(index, [], T0 + 2, 0, T0 + 3, 0)).toEqual([]);
    expect(selectLogSeries(index, [], T0 - 10, 0, T0, 0)).toEqual([]);
    expect(selectLogSeries(index, [], T0 - 10, 0, T0, 1).length).toBe(1);
  });

  it("detects damage: a flipped chunk byte in R2 fails the read that needs it", async () => {
    const tenant = "logblock-corrupt";
    const rand = mulberry32(8);
    const streams = makeStreams(9, T0);
    const { bytes, meta } = writeLogBlock(
      streams.map((s) => ({ labels: s.flat, chunks: chunksOf(s, rand) })),
      { tenant, shard: 0, walRange: { from: 0, to: 0 } },
    );
    const bad = bytes.slice();
    bad[200] ^= 0x10; // inside the first chunk records (series sorted: app="api" first)
    await expect(verifyBlock(memorySource(bad))).rejects.toThrow(BlockCorruptError);
    const key = logBlockKey(tenant, meta);
    await putLogBlock(env.BLOCKS, key, bad, meta);
    const q = (v: string) => queryLogBlocks(env.BLOCKS, tenant, { matchers: [eq("app", v)], startMs: T0, startNs: 0, endMs: T0 + 600_000, endNs: 0 });
    await expect(q("api")).rejects.toThrow(BlockCorruptError);
    expect((await q("web")).length).toBeGreaterThan(0);
  });

  it("refuses to store a chunk whose header is damaged", () => {
    const b = new LogChunkBuilder({ blockSize: 1024 });
    b.append(T0, 0, enc.encode("x"), null);
    const c = b.finish();
    c[7] ^= 1;
    expect(() => writeLogBlock([{ labels: ["a", "b"], chunks: [c] }], { tenant: "t", shard: 0, walRange: { from: 0, to: 0 } })).toThrow(CorruptDataError);
  });

  it("leaves out empty chunks and streams, and an empty block lists as an empty range", async () => {
    const empty = new LogChunkBuilder({ blockSize: 1024 }).finish();
    const { bytes, meta } = writeLogBlock([{ labels: ["a", "b"], chunks: [empty] }], { tenant: "t", shard: 0, walRange: { from: 0, to: 0 } });
    expect(meta.stats.numSeries).toBe(0);
    expect([meta.minTime, meta.maxTime]).toEqual([0, -1]);
    await verifyBlock(memorySource(bytes));
  });

  it("reads a log block written in format version 1 (no sizes in its index): streams, lines, and index stats and volumes from the chunks", async () => {
    const tenant = "logblock-v1";
    const bytes = new Uint8Array(GOLDEN_V1_LOG.match(/../g)!.map((h) => parseInt(h, 16)));
    const index = await verifyBlock(memorySource(bytes));
    expect(index.meta.version).toBe(1);
    const refs = index.select([], -Infinity, Infinity).flatMap((s) => s.chunks);
    expect(refs.map((c) => [c.encoding, c.numSamples, c.uncompressedBytes])).toEqual([
      [2, 3, -1],
      [2, 1, -1],
    ]);
    await putLogBlock(env.BLOCKS, logBlockKey(tenant, index.meta), bytes, index.meta);
    // Through the Worker, as Grafana asks: the lines, then stats and volumes counted from the chunks.
    const range = { start: "1699999999000000000", end: "1700000003000000000" };
    const get = async (path: string, params: Record<string, string>) => {
      const res = await SELF.fetch(`http://ingester${path}?${new URLSearchParams({ ...range, ...params })}`, { headers: { "X-Scope-OrgID": tenant } });
      expect(res.status, await res.clone().text()).toBe(200);
      return res.json();
    };
    const lines = (await get("/loki/api/v1/query_range", { query: '{app=~".+"}', direction: "forward", limit: "100" })) as { data: { result: { stream: Record<string, string>; values: string[][] }[] } };
    // (The entry with structured metadata answers in a stream of its own, its metadata among the labels, as Loki 3 does.)
    const got = lines.data.result.flatMap((r) => r.values.map((v) => `${v[0]} ${r.stream.app} ${r.stream.trace_id ?? "-"} ${v[1]}`)).sort();
    expect(got).toEqual([
      "1700000000000000005 api - GET /a 200",
      "1700000000500000000 web - level=info msg=started",
      "1700000001000000000 api abc GET /b 500 ☃",
      "1700000002000000007 api - POST /c 201",
    ]);
    const utf8 = (x: string) => enc.encode(x).length;
    const api = utf8("GET /a 200") + utf8("GET /b 500 ☃") + utf8("trace_id") + utf8("abc") + utf8("POST /c 201");
    const web = utf8("level=info msg=started");
    // The index of a version-1 block has no sizes: the first stats read the chunk records
    // (the fallback), later ones answer from the isolate's memo. GETs are recorded by a
    // bucket passed straight to the querier, so no other reader's GETs are counted.
    const records = refs.map((c) => [c.offset, c.offset + chunkRecordSize(c.length)]);
    const chunkGets: string[] = [];
    const bucket = new Proxy(env.BLOCKS, {
      get(target, prop) {
        if (prop === "get") {
          return async (key: string, opts?: R2GetOptions) => {
            const r = opts?.range as { offset?: number; length?: number; suffix?: number } | undefined;
            const from = r?.suffix !== undefined ? bytes.length - r.suffix : (r?.offset ?? 0);
            const to = r?.length !== undefined ? from + r.length : bytes.length;
            for (const [a, b] of records) if (from < b && to > a) chunkGets.push(`[${from}, ${to}) has chunk record [${a}, ${b})`);
            return target.get(key, opts);
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const recording = { ...env, BLOCKS: bucket };
    const q = { matcherSets: [], startMs: 1699999999000, startNs: 0, endMs: 1700000003000, endNs: 0 };
    expect(await logIndexStats(recording, tenant, q)).toEqual({ streams: 2, chunks: 2, entries: 4, bytes: api + web });
    // Both records, neighbours, in one coalesced GET.
    expect(chunkGets).toEqual(records.map(([a, b]) => expect.stringContaining(`has chunk record [${a}, ${b})`)));
    chunkGets.length = 0;
    const facts = await logChunkFacts(recording, tenant, q);
    expect(facts.map((f) => [f.labels[f.labels.indexOf("app") + 1], f.chunks.map((c) => c.bytes)])).toEqual([
      ["api", [api]],
      ["web", [web]],
    ]);
    expect(chunkGets).toEqual([]);
    // And through the Worker, as Grafana asks.
    expect(await get("/loki/api/v1/index/stats", { query: '{app=~".+"}' })).toEqual({ streams: 2, chunks: 2, entries: 4, bytes: api + web });
    expect(await get("/loki/api/v1/index/stats", { query: '{app="api"}' })).toEqual({ streams: 1, chunks: 1, entries: 3, bytes: api });
    const volume = (await get("/loki/api/v1/index/volume", { query: '{app=~".+"}' })) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    expect(volume.data.result).toEqual([
      { metric: { app: "api" }, value: [1700000003, String(api)] },
      { metric: { app: "web" }, value: [1700000003, String(web)] },
    ]);
  });
});

// A log block written by the version-1 writer (two streams, snappy log chunks, one
// entry with structured metadata), kept verbatim: blocks already in R2 stay readable.
const GOLDEN_V1_LOG =
  "4549424b010000006d0245494c430103010380a0abfef96205d00f079fbcb134030380a0abfef96205d00f0741415c96" +
  "7623417c020874726163655f69640361626300050a474554202f612032303000e807000e050f6c622035303020e29883" +
  "010001e807070b504f5354202f6320323031005aa45729722e22a7470245494c4301030101e8a7abfef9620000009743" +
  "dba70301e8a7abfef9620000001b1d3051129a1b68000000166c6576656c3d696e666f206d73673d7374617274656400" +
  "c3dd85a9c3cd7b3a05036170690361707003656e760470726f6403776562b9e9789180a0abfef962020d020100020301" +
  "0008d00f6d02030b01010401f4037b004702019be68957020001010001010100a255e1ba0201020003040202010302a9" +
  "7a31127b2276657273696f6e223a312c22626c6f636b4964223a2230314a303030303030303030303030303030303030" +
  "3030303030222c226d696e54696d65223a313730303030303030303030302c226d617854696d65223a31373030303030" +
  "3030323030302c227374617473223a7b226e756d536572696573223a322c226e756d53616d706c6573223a342c226e75" +
  "6d4368756e6b73223a322c226279746573223a3537377d2c2274656e616e74223a227431222c227368617264223a312c" +
  "2277616c52616e6765223a7b2266726f6d223a332c22746f223a397d7d94215bbec800000000000000e2000000000000" +
  "0007010000000000001401000000000000230100000000000001020000000000000100000000000000a9da1d88454942" +
  "4b";

