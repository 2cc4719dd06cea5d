// Flushing log shards to R2: alarms driven with a test clock, Loki's cut reasons
// (full, max_age, idle), idempotent repeats, injected R2 failures, an interrupted
// flush, reads from R2 alone after the shard's storage is wiped, and the querier's
// merge of heads and blocks (selectLogs and the index lookups).

import { describe, expect, it } from "vitest";
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { listLogBlocks } from "../../src/storage/logs/blocks";
import { logChunkBlocks } from "../../src/storage/logs/chunk";
import { logChunkUncompressedBytes } from "../../src/storage/logs/chunk_stats";
import { memorySource, openBlock, readChunks } from "../../src/storage/block/reader";
import { logIndexStats, logLabelNames, logLabelValues, logSeries, selectLogs } from "../../src/querier/logs/select";
import { Semaphore } from "../../src/model/concurrency";
import { mulberry32 } from "../support/prng";
import { ALL, HOUR, MIN, T0, asMap, eq, expected, push, re, stub, type Entry, type Streams } from "./log_support";
import type { LogShardLimits } from "../../src/ingester/logs/rpc";

const NOW = Date.now();

interface Inst {
  clock: () => number;
  bucket: R2Bucket;
  wal: { records: number };
  head: { numStreams: number };
}

async function onShard(tenant: string, fn: (i: Inst, state: DurableObjectState) => void | Promise<void>) {
  await runInDurableObject(stub(tenant), (inst: unknown, state) => fn(inst as Inst, state));
}

async function setClock(tenant: string, at: number) {
  await onShard(tenant, (i) => {
    i.clock = () => at;
  });
}

/** Runs the shard's alarm with its clock at `at`; false when no alarm was set. */
async function alarmAt(tenant: string, at: number): Promise<boolean> {
  await setClock(tenant, at);
  return runDurableObjectAlarm(stub(tenant));
}

async function blocks(tenant: string) {
  return listLogBlocks(env.BLOCKS, tenant, -8.64e15, 0, 8.64e15, 0);
}

async function readAll(tenant: string, matchers = [re("app", ".+")], gate?: Semaphore) {
  const [startMs, startNs, endMs, endNs] = ALL;
  return asMap(await selectLogs(env, tenant, { matchers, startMs, startNs, endMs, endNs }, gate));
}

/** POST /flush's RPC, awaited inside an async function (a bare RPC promise that rejects is also reported as unhandled). */
async function flushAll(tenant: string) {
  return await stub(tenant).flushAll();
}

async function lastFlush(tenant: string) {
  return (await stub(tenant).stats()).lastFlush;
}

/** Random-ish lines (they compress about as well as real logs do: not very). */
function lines(seed: number, stream: string, n: number, t0: number, stepMs: number): Streams {
  const rand = mulberry32(seed);
  return [[stream, Array.from({ length: n }, (_, j): Entry => [t0 + j * stepMs, j % 1000, `${j} ${rand().toString(36)} ${rand().toString(36)} level=info msg="request done"`])]];
}

describe("log flush to R2", () => {
  it("closes chunks full at append, by max age, and idle at the flush check; uploads each once", async () => {
    const tenant = "lflush-rules";
    await setClock(tenant, NOW);
    const small: Partial<LogShardLimits> = { chunkBlockSize: 1024, chunkTargetSize: 4096 };
    const full = lines(1, '{app="full"}', 400, T0, 10);
    const aged: Streams = [['{app="aged"}', [[T0, 0, "start"], [T0 + HOUR, 0, "middle"], [T0 + 2 * HOUR + 1, 0, "past max age"]]]];
    expect((await push(tenant, [...full, ...aged], small)).accepted).toBe(403);
    const all = [...full, ...aged];

    expect(await alarmAt(tenant, NOW)).toBe(true);
    const first = await lastFlush(tenant);
    expect(first?.reasons.full).toBeGreaterThan(1);
    expect(first?.reasons.max_age).toBe(1);
    expect(first?.reasons.idle).toBeUndefined();
    expect(await blocks(tenant)).toHaveLength(1);
    expect(await readAll(tenant)).toEqual(expected(all));

    // A repeated alarm at the same time uploads nothing.
    expect(await alarmAt(tenant, NOW)).toBe(true);
    expect((await lastFlush(tenant))?.key).toBeNull();
    expect(await blocks(tenant)).toHaveLength(1);

    // Idle: both open chunks close and go out in one more block.
    expect(await alarmAt(tenant, NOW + 31 * MIN)).toBe(true);
    expect((await lastFlush(tenant))?.reasons).toEqual({ idle: 2 });
    const bs = await blocks(tenant);
    expect(bs).toHaveLength(2);
    expect(bs.reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(403);
    expect(await alarmAt(tenant, NOW + 32 * MIN)).toBe(true);
    expect(await blocks(tenant)).toHaveLength(2);
    // Retained in the head and in R2: every entry once.
    expect(await readAll(tenant)).toEqual(expected(all));

    // Past the retain period the head lets go; R2 alone answers.
    await alarmAt(tenant, NOW + 31 * MIN + DEFAULT_LIMITS.retainPeriodMs + MIN);
    await onShard(tenant, (i) => expect(i.head.numStreams).toBe(0));
    expect(await readAll(tenant)).toEqual(expected(all));
  });

  it("replays the checkpoint written by a flush: open chunks, unflushed chunks and the push rules' state", async () => {
    const tenant = "lflush-checkpoint";
    await setClock(tenant, NOW);
    const small: Partial<LogShardLimits> = { chunkBlockSize: 512, chunkTargetSize: 2048 };
    const first = lines(2, '{app="a"}', 100, T0, 5);
    await push(tenant, first, small);
    // The flush uploads the closed chunks and checkpoints the open one, trimming the WAL.
    await alarmAt(tenant, NOW);
    await onShard(tenant, (i) => expect(i.wal.records).toBe(0));
    const second = lines(3, '{app="a"}', 30, T0 + 1000, 7);
    await push(tenant, second, small);
    await evictDurableObject(stub(tenant));
    expect(await readAll(tenant)).toEqual(expected([...first, ...second]));
    const last = second[0][1][second[0][1].length - 1];
    expect(await push(tenant, [['{app="a"}', [last]]], small)).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await push(tenant, [['{app="a"}', [[T0 - 2 * HOUR, 0, "too far behind"]]]], small)).rejected).toEqual([{ reason: "too_far_behind", count: 1, bytes: 14 }]);
    // And a second eviction replays the same checkpoint + WAL again.
    await evictDurableObject(stub(tenant));
    expect(await readAll(tenant)).toEqual(expected([...first, ...second]));
  });

  it("an open chunk with cut blocks restored from a checkpoint keeps its exact line + metadata bytes", async () => {
    const tenant = "lflush-restore-bytes";
    await setClock(tenant, NOW);
    const small: Partial<LogShardLimits> = { chunkBlockSize: 512, chunkTargetSize: 1 << 20 };
    const data = lines(15, '{app="rb"}', 120, T0, 5); // several 512-byte blocks cut, chunk still open
    const aged: Streams = [['{app="aged"}', [[T0, 0, "start"], [T0 + 2 * HOUR + 1, 0, "past max age"]]]];
    await push(tenant, [...data, ...aged], small);
    const want = data[0][1].reduce((n, e) => n + new TextEncoder().encode(e[2]).length, 0);
    const [startMs, startNs, endMs, endNs] = ALL;
    const q = { matcherSets: [[eq("app", "rb")]], startMs, startNs, endMs, endNs };
    expect((await stub(tenant).indexStats(q)).bytes).toBe(want);
    // A flush of the aged stream writes a checkpoint holding the open chunk's snapshot; the WAL is trimmed.
    await alarmAt(tenant, NOW);
    await onShard(tenant, (i) => expect(i.wal.records).toBe(0));
    await evictDurableObject(stub(tenant));
    expect((await stub(tenant).indexStats(q)).bytes).toBe(want);
    expect(await readAll(tenant, [eq("app", "rb")])).toEqual(expected(data));
  });

  it("writes each chunk's line + metadata bytes into its block ref (format version 2), as the head counted them", async () => {
    const tenant = "lflush-ref-sizes";
    await setClock(tenant, NOW);
    const small: Partial<LogShardLimits> = { chunkBlockSize: 512, chunkTargetSize: 2048 };
    const rand = mulberry32(16);
    const entries: Entry[] = Array.from({ length: 300 }, (_, j): Entry =>
      j % 3 === 0 ? [T0 + j, j, `${j} ünï ${rand().toString(36)}`, ["trace_id", rand().toString(36), "span", "✓"]] : [T0 + j, j, `${j} ${rand().toString(36)} msg="done"`],
    );
    expect((await push(tenant, [['{app="sz"}', entries]], small)).accepted).toBe(300);
    await flushAll(tenant);
    const utf8 = (x: string) => new TextEncoder().encode(x).length;
    const want = entries.reduce((n, e) => n + utf8(e[2]) + (e[3] ?? []).reduce((m, x) => m + utf8(x), 0), 0);
    let total = 0;
    let chunks = 0;
    for (const b of await blocks(tenant)) {
      const bytes = new Uint8Array(await (await env.BLOCKS.get(b.key))!.arrayBuffer());
      const src = memorySource(bytes);
      const index = await openBlock(src);
      expect(index.meta.version).toBe(2);
      const refs = index.select([], -Infinity, Infinity).flatMap((s) => s.chunks);
      const data = await readChunks(src, refs);
      for (let i = 0; i < refs.length; i++) {
        // Each ref's size is its chunk's own count, recomputed here from the raw blocks.
        expect(refs[i].uncompressedBytes).toBe(logChunkUncompressedBytes(data[i]));
        total += refs[i].uncompressedBytes;
        chunks++;
      }
    }
    expect(chunks).toBeGreaterThan(2);
    expect(total).toBe(want);
  });

  it("replays a checkpoint larger than one SQLite row (STREAMS fragments)", async () => {
    const tenant = "lflush-big-checkpoint";
    await setClock(tenant, NOW);
    // About 4 MB of lines that compress poorly stay in open chunks (a large target size),
    // so the checkpoint's snapshots of them cannot fit one 2 MB row.
    const big: Partial<LogShardLimits> = { chunkTargetSize: 64 * 1024 * 1024 };
    const rand = mulberry32(12);
    const noisy: Streams = Array.from({ length: 4 }, (_, k): [string, Entry[]] => [
      `{app="big", part="${k}"}`,
      Array.from({ length: 1000 }, (_, j): Entry => [T0 + j, 0, Array.from({ length: 40 }, () => rand().toString(36).slice(2)).join(" ")]),
    ]);
    const aged: Streams = [['{app="aged"}', [[T0, 0, "start"], [T0 + 2 * HOUR + 1, 0, "past max age"]]]];
    await push(tenant, [...noisy, ...aged], big);
    // The flush uploads the one closed chunk and checkpoints every open one.
    await alarmAt(tenant, NOW);
    expect(await blocks(tenant)).toHaveLength(1);
    let parts = 0;
    await onShard(tenant, (i, state) => {
      expect(i.wal.records).toBe(0);
      parts = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM checkpoint").one().n;
    });
    expect(parts).toBeGreaterThan(1);
    await evictDurableObject(stub(tenant));
    expect(await readAll(tenant)).toEqual(expected([...noisy, ...aged]));
    // The push rules' state came back with it: the newest entry again is a duplicate.
    const last = noisy[3][1][999];
    expect(await push(tenant, [[noisy[3][0], [last]]], big)).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it("with the default rules, cuts blocks at 256 KiB uncompressed and closes chunks at 1.5 MB compressed", async () => {
    const tenant = "lflush-defaults";
    const rand = mulberry32(14);
    // Lines of random words: about 3.6 MB raw that compress poorly, so the chunk passes the target size.
    const entries = Array.from({ length: 9000 }, (_, j): Entry => [T0 + j, 0, Array.from({ length: 50 }, () => rand().toString(36).slice(2, 9)).join(" ")]);
    await push(tenant, [['{app="defaults"}', entries]]);
    const [startMs, startNs, endMs, endNs] = ALL;
    const sel = await stub(tenant).selectLogs({ tenant, shard: 0, matchers: [eq("app", "defaults")], startMs, startNs, endMs, endNs });
    const chunks = sel[0].chunks;
    expect(chunks.length).toBeGreaterThan(1);
    const closed = chunks[0];
    const blocks = logChunkBlocks(closed);
    // Every block but the last of a closed chunk was cut when its lines reached 256 KiB
    // (rawLen adds each entry's timestamp and length framing, at most 16 bytes).
    for (const b of blocks.slice(0, -1)) {
      expect(b.rawLen).toBeGreaterThanOrEqual(DEFAULT_LIMITS.logChunkBlockSize);
      expect(b.rawLen).toBeLessThan(DEFAULT_LIMITS.logChunkBlockSize + 400 + 16 * b.entries);
    }
    // The chunk closed once its compressed blocks reached Loki's chunk_target_size (1.5 MB).
    const compressed = blocks.reduce((n, b) => n + (b.dataEnd - b.dataAt), 0);
    expect(DEFAULT_LIMITS.logChunkTargetSize).toBe(1_572_864);
    expect(compressed).toBeGreaterThanOrEqual(DEFAULT_LIMITS.logChunkTargetSize - DEFAULT_LIMITS.logChunkBlockSize);
    expect(compressed).toBeLessThan(DEFAULT_LIMITS.logChunkTargetSize + DEFAULT_LIMITS.logChunkBlockSize);
    expect(await readAll(tenant)).toEqual(expected([['{app="defaults"}', entries]]));
  });

  it("refuses to serve from a WAL row whose checksum is wrong, rather than serve wrong data", async () => {
    const tenant = "lflush-corrupt-wal";
    await push(tenant, lines(13, '{app="c"}', 20, T0, 5));
    await onShard(tenant, (_i, state) => {
      const row = state.storage.sql.exec<{ seq: number; rec: ArrayBuffer }>("SELECT seq, rec FROM wal ORDER BY seq DESC LIMIT 1").one();
      const bytes = new Uint8Array(row.rec.slice(0));
      bytes[bytes.length - 3] ^= 0x40;
      state.storage.sql.exec("UPDATE wal SET rec = ? WHERE seq = ?", bytes, row.seq);
    });
    await evictDurableObject(stub(tenant));
    await expect(readAll(tenant)).rejects.toThrow(/corrupt log WAL record: checksum [0-9a-f]+ does not match/);
  });

  it("serves every acked entry from R2 alone after the shard's storage is wiped", async () => {
    const tenant = "lflush-wipe";
    const data = [...lines(4, '{app="x", env="a"}', 200, T0, 3), ...lines(5, '{app="y", env="b"}', 50, T0, 11)];
    await push(tenant, data);
    const result = await flushAll(tenant);
    expect(result?.reasons).toEqual({ forced: 2 });
    await onShard(tenant, async (_i, state) => {
      await state.storage.deleteAlarm();
      await state.storage.deleteAll();
    });
    await evictDurableObject(stub(tenant));
    await onShard(tenant, (i) => expect(i.head.numStreams).toBe(0));
    expect(await readAll(tenant)).toEqual(expected(data));
    expect(await readAll(tenant, [eq("env", "b")])).toEqual(expected(data.slice(1)));
  });

  it("loses nothing when R2 fails, retries with backoff, then trims the WAL", async () => {
    const tenant = "lflush-r2-fail";
    const data = lines(6, '{app="r2"}', 300, T0, 2);
    await setClock(tenant, NOW);
    await push(tenant, data);
    let failing = true;
    await onShard(tenant, (i) => {
      const real = i.bucket;
      i.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "put" && failing) return async () => { throw new Error("injected R2 failure"); };
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    });
    // Through POST /flush (which reaches log shards too): a 503, nothing lost. (A flushAll
    // RPC rejected straight into the test would keep the object referenced and unevictable.)
    const flush = await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
    expect(flush.status).toBe(503);
    expect(await flush.text()).toMatch(/injected R2 failure/);
    expect(await alarmAt(tenant, NOW + 31 * MIN)).toBe(true);
    expect(await blocks(tenant)).toHaveLength(0);
    const st = await stub(tenant).stats();
    expect(st.lastFlushError).toMatch(/injected R2 failure/);
    // The retry is scheduled under our control: backoff from the failure, not the 30 s check.
    expect(st.nextAlarmAt).toBeGreaterThan(NOW + 31 * MIN);
    expect(st.nextAlarmAt).toBeLessThanOrEqual(NOW + 31 * MIN + 300_000);
    expect(st.walRecords).toBeGreaterThan(0);
    expect(await readAll(tenant)).toEqual(expected(data));

    failing = false;
    expect(await alarmAt(tenant, NOW + 32 * MIN)).toBe(true);
    const bs = await blocks(tenant);
    expect(bs).toHaveLength(1);
    expect(bs[0].meta.stats.numSamples).toBe(300);
    expect((await stub(tenant).stats()).walRecords).toBe(0);
    await evictDurableObject(stub(tenant));
    expect(await readAll(tenant)).toEqual(expected(data));
    // The last flush that wrote a block is kept in storage (the status page shows it after a restart).
    expect((await stub(tenant).stats()).lastFlushAt).toBe(NOW + 32 * MIN);
  });

  it("an interrupted flush (block written, shard lost before marking) is read once and leaves one copy", async () => {
    const tenant = "lflush-interrupted";
    const data = [...lines(7, '{app="i1"}', 80, T0, 4), ...lines(8, '{app="i2"}', 40, T0, 9)];
    await setClock(tenant, NOW);
    await push(tenant, data);
    await onShard(tenant, (i) => {
      const real = i.bucket;
      i.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "put") {
            return async (...args: Parameters<R2Bucket["put"]>) => {
              await target.put(...args);
              throw new Error("lost after the PUT");
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    });
    await alarmAt(tenant, NOW + 31 * MIN);
    expect(await blocks(tenant)).toHaveLength(1);
    // The chunks are in the orphan block and still unflushed in the head: each entry once.
    expect(await readAll(tenant)).toEqual(expected(data));
    // The shard restarts (memory gone, intent and WAL kept) and flushes again.
    await evictDurableObject(stub(tenant));
    await alarmAt(tenant, NOW + 32 * MIN);
    const bs = await blocks(tenant);
    expect(bs).toHaveLength(1);
    expect(bs[0].meta.stats.numSamples).toBe(120);
    expect(await readAll(tenant)).toEqual(expected(data));
  });

  it("a checkpoint that fails after the PUT loses nothing: the shard restarts from storage and flushes again", async () => {
    const tenant = "lflush-cp-fail";
    const data = [...lines(10, '{app="c1"}', 90, T0, 3), ...lines(11, '{app="c2"}', 30, T0, 7)];
    await setClock(tenant, NOW);
    await push(tenant, data);
    type CpInst = { wal: { checkpoint: (parts: Uint8Array[]) => void } };
    await onShard(tenant, (i) => {
      const wal = (i as unknown as CpInst).wal;
      wal.checkpoint = () => {
        throw new Error("injected SQLite failure in the checkpoint");
      };
    });
    // The PUT succeeds, the checkpoint (the WAL trim) does not: the alarm fails (the
    // platform retries it) and the object is reset.
    await expect(alarmAt(tenant, NOW + 31 * MIN)).rejects.toThrow(/the checkpoint after the PUT failed \(injected SQLite failure/);
    expect(await blocks(tenant)).toHaveLength(1);
    expect(await readAll(tenant)).toEqual(expected(data));
    // Later flushes (the injected failure is gone with the reset object) must not lose the
    // block's lines: the head was rebuilt from storage, where they are still unflushed.
    expect(await alarmAt(tenant, NOW + 32 * MIN)).toBe(true);
    expect(await readAll(tenant)).toEqual(expected(data));
    const bs = await blocks(tenant);
    expect(bs).toHaveLength(1);
    expect(bs[0].meta.stats.numSamples).toBe(120);
    expect((await stub(tenant).stats()).walRecords).toBe(0);
    // Past the retain period the head lets go: every line from R2 alone.
    await alarmAt(tenant, NOW + 32 * MIN + DEFAULT_LIMITS.retainPeriodMs + MIN);
    await onShard(tenant, (i) => expect(i.head.numStreams).toBe(0));
    await evictDurableObject(stub(tenant));
    expect(await readAll(tenant)).toEqual(expected(data));
  });

  it("keeps the open chunk's snapshot and R2 apart: an entry in both is returned once", async () => {
    const tenant = "lflush-overlap";
    const data = lines(9, '{app="o"}', 50, T0, 1);
    await push(tenant, data);
    await flushAll(tenant);
    // Re-push an overlapping tail (the stream's last entry is a duplicate and dropped;
    // older ones within the window are accepted again into a new open chunk).
    const again = data[0][1].slice(10);
    const res = await push(tenant, [['{app="o"}', again]]);
    expect(res.duplicates + res.accepted).toBe(again.length);
    expect(await readAll(tenant)).toEqual(expected(data));
  });

  it("merges label names, values, series and index stats of heads and blocks", async () => {
    const tenant = "lflush-index";
    await setClock(tenant, NOW);
    await push(tenant, [['{app="old", env="prod", region="eu"}', [[T0, 0, "flushed"], [T0 + 1, 0, "flushed too"]]]]);
    await flushAll(tenant);
    await push(tenant, [
      ['{app="new", env="dev"}', [[T0 + 10, 0, "in the head"]]],
      ['{app="old", env="prod", region="eu"}', [[T0 + 11, 0, "head part of a flushed stream"]]],
    ]);
    const q = { matcherSets: [], startMs: T0 - HOUR, startNs: 0, endMs: T0 + HOUR, endNs: 0 };
    const gate = new Semaphore(6);
    expect(await logLabelNames(env, tenant, q, gate)).toEqual(["app", "env", "region"]);
    expect(await logLabelValues(env, tenant, "app", q, gate)).toEqual(["new", "old"]);
    expect(await logLabelValues(env, tenant, "env", { ...q, matcherSets: [[eq("app", "new")]] }, gate)).toEqual(["dev"]);
    expect(await logSeries(env, tenant, { ...q, matcherSets: [[eq("env", "prod")], [eq("app", "new")]] }, gate)).toEqual([
      ["app", "new", "env", "dev"],
      ["app", "old", "env", "prod", "region", "eu"],
    ]);
    const stats = await logIndexStats(env, tenant, { ...q, matcherSets: [[re("app", ".+")]] }, gate);
    expect(stats).toMatchObject({ streams: 2, chunks: 3, entries: 4 });
    expect(stats.bytes).toBeGreaterThan(0);
    expect(gate.peak).toBeLessThanOrEqual(6);
    // A range before everything: nothing.
    expect(await logSeries(env, tenant, { ...q, startMs: T0 - 2 * HOUR, endMs: T0 - HOUR })).toEqual([]);
  });
});
