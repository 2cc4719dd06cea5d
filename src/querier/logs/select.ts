// The log store as the querier sees it: a tenant's log ingester shards (recent,
// unflushed data) and its log blocks in R2 (flushed data), merged per stream and
// de-duplicated, so a line is never returned twice. The LogQL engine and the Loki
// HTTP API (src/querier/logql/, src/querier/loki/) call the functions below.
//
// Shards first, R2 after, as for metrics (src/querier/select.ts): a shard leaves
// out chunks already marked flushed, and a chunk is marked only after R2
// confirmed its block, so a list started after every shard answered is sure to
// include that block (R2 lists are strongly consistent). Entries present in both
// (an interrupted flush's block, or the retain period) are dropped as exact
// duplicates (same time and line) by the merge.
//
// Every Durable Object and R2 call goes through one gate of 6 (the Workers
// connection limit), shared by the whole query when the caller passes one.
//
// Which shards: every shard of the tenant's ring history that may hold entries at
// or after the query's start (src/distributor/tenant_ring.ts readShards), LEAVING
// ones included. After a reshard a stream's entries may sit on two shards; the
// merge joins them per stream and drops exact duplicates.

import { limitsFor } from "../../config/limits";
import { logShardStub } from "../../distributor/shards";
import { readShards } from "../../distributor/tenant_ring";
import { HttpError } from "../../http/errors";
import { parseStreamLabels } from "../../ingester/logs/labels";
import type { LogIndexQuery, LogIndexStats, SelectedLogStream } from "../../ingester/logs/rpc";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../../model/concurrency";
import { compareLabels, seriesKey, type FlatLabels } from "../../model/labels";
import type { LogSelectParams, LogStreamData } from "../../model/logs";
import { compileMatcher, MatcherError, type CompiledMatcher } from "../../model/matchers";
import type { LabelMatcher } from "../../proto/types";
import { ChunkEncoding, type ChunkRef } from "../../storage/block/format";
import { readChunks, type BlockIndex } from "../../storage/block/reader";
import { BlockGoneError, r2Source, type ListedBlock } from "../../storage/blocks";
import { msRange } from "../../storage/logs/block";
import { openLogBlocks, queryLogBlocks } from "../../storage/logs/blocks";
import { factorOfTime, logChunkUncompressedBytes, type NsPoint } from "../../storage/logs/chunk_stats";
import { streamsFromChunks, type StreamChunks } from "../../storage/logs/merge";

export type { LogIndexQuery, LogIndexStats } from "../../ingester/logs/rpc";

/** Compiles matchers in this Worker, so a bad regexp is a 400 here rather than an RPC error. */
function compile(matchers: LabelMatcher[]): CompiledMatcher[] {
  try {
    return matchers.map(compileMatcher);
  } catch (e) {
    if (e instanceof MatcherError) throw new HttpError(400, e.message);
    throw e;
  }
}

/**
 * Runs fn on every shard that may hold entries at or after `startMs`, through the
 * gate; results in shard order. Entries are at most creationGracePeriodMs ahead of
 * the distributor's clock (src/distributor/logs/push.ts refuses later ones), the
 * bound readShards needs to leave out shards that left the ring before the range.
 */
async function onShards<R>(env: Env, tenant: string, startMs: number, gate: Semaphore, fn: (stub: ReturnType<typeof logShardStub>, shard: number) => Promise<R>): Promise<R[]> {
  const shards = await gate.run(() => readShards(env, tenant, startMs, limitsFor(env, tenant).creationGracePeriodMs));
  return Promise.all(shards.map((shard) => gate.run(() => fn(logShardStub(env, tenant, shard), shard))));
}

/**
 * Every stream matching `params.matchers` with its entries in [start, end) from
 * the ingesters and R2: one LogStreamData per stream (sorted by label string),
 * entries sorted by (time, line), exact duplicates removed. Limits and direction
 * are the caller's (the LogQL engine's).
 */
export async function selectLogs(
  env: Env,
  tenant: string,
  params: LogSelectParams,
  gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS),
): Promise<LogStreamData[]> {
  compile(params.matchers);
  const { matchers, startMs, startNs, endMs, endNs } = params;
  const perShard = await onShards(env, tenant, startMs, gate, (stub, shard) => stub.selectLogs({ tenant, shard, matchers, startMs, startNs, endMs, endNs }));
  const stored = await queryLogBlocks(env.BLOCKS, tenant, params, { gate });
  return streamsFromChunks(concat(headChunks(perShard), stored), startMs, startNs, endMs, endNs);
}

function* headChunks(perShard: SelectedLogStream[][]): Iterable<StreamChunks> {
  for (const list of perShard) for (const s of list) yield { labels: s.labels, flat: parseStreamLabels(s.labels), chunks: s.chunks };
}

function* concat<T>(a: Iterable<T>, b: Iterable<T>): Iterable<T> {
  yield* a;
  yield* b;
}

/** The R2 side of an index query: each overlapping block (and its index) with the ms range to select. */
async function blockIndexes(env: Env, tenant: string, q: LogIndexQuery, gate: Semaphore): Promise<{ blocks: { block: ListedBlock; index: BlockIndex }[]; indexes: BlockIndex[]; mint: number; maxt: number }> {
  const blocks = await openLogBlocks(env.BLOCKS, tenant, q.startMs, q.startNs, q.endMs, q.endNs, { gate });
  const { mint, maxt } = msRange(q.startMs, q.startNs, q.endMs, q.endNs);
  return { blocks, indexes: blocks.map((o) => o.index), mint, maxt };
}

/** Calls fn once per stream of a block index matching any set (all streams when there are no sets). */
function eachBlockStream(index: BlockIndex, sets: CompiledMatcher[][], mint: number, maxt: number, fn: (labels: FlatLabels, chunks: ChunkRef[]) => void): void {
  const seen = sets.length > 1 ? new Set<string>() : null;
  for (const set of sets.length > 0 ? sets : [[]]) {
    for (const s of index.select(set, mint, maxt)) {
      if (seen !== null) {
        const k = seriesKey(s.labels);
        if (seen.has(k)) continue;
        seen.add(k);
      }
      fn(s.labels, s.chunks);
    }
  }
}

/** Label names of the tenant's streams with data in the range (matching `q.matcherSets` when given), sorted. */
export async function logLabelNames(env: Env, tenant: string, q: LogIndexQuery, gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS)): Promise<string[]> {
  const sets = q.matcherSets.map(compile);
  const names = new Set<string>();
  for (const list of await onShards(env, tenant, q.startMs, gate, (stub) => stub.labels(q))) for (const n of list) names.add(n);
  const { indexes, mint, maxt } = await blockIndexes(env, tenant, q, gate);
  for (const index of indexes) {
    if (sets.length === 0) for (const n of index.labelNames()) names.add(n);
    else eachBlockStream(index, sets, mint, maxt, (labels) => {
      for (let i = 0; i < labels.length; i += 2) names.add(labels[i]);
    });
  }
  return [...names].sort();
}

/** Values of label `name` over the tenant's streams with data in the range (matching `q.matcherSets` when given), sorted. */
export async function logLabelValues(env: Env, tenant: string, name: string, q: LogIndexQuery, gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS)): Promise<string[]> {
  const sets = q.matcherSets.map(compile);
  const values = new Set<string>();
  for (const list of await onShards(env, tenant, q.startMs, gate, (stub) => stub.labelValues(name, q))) for (const v of list) values.add(v);
  const { indexes, mint, maxt } = await blockIndexes(env, tenant, q, gate);
  for (const index of indexes) {
    if (sets.length === 0) for (const v of index.labelValues(name)) values.add(v);
    else eachBlockStream(index, sets, mint, maxt, (labels) => {
      for (let i = 0; i < labels.length; i += 2) if (labels[i] === name && labels[i + 1] !== "") values.add(labels[i + 1]);
    });
  }
  return [...values].sort();
}

/** Label sets of the tenant's streams matching any of `q.matcherSets` (all when empty) with data in the range, each once, sorted. */
export async function logSeries(env: Env, tenant: string, q: LogIndexQuery, gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS)): Promise<FlatLabels[]> {
  const sets = q.matcherSets.map(compile);
  const byKey = new Map<string, FlatLabels>();
  for (const list of await onShards(env, tenant, q.startMs, gate, (stub) => stub.series(q))) for (const l of list) byKey.set(seriesKey(l), l);
  const { indexes, mint, maxt } = await blockIndexes(env, tenant, q, gate);
  for (const index of indexes) eachBlockStream(index, sets, mint, maxt, (labels) => void byKey.set(seriesKey(labels), labels));
  return [...byKey.values()].sort(compareLabels);
}

/**
 * Uncompressed bytes of log chunks in version-1 blocks (whose index keeps only
 * compressed lengths), by block key and chunk offset: blocks are immutable, so a size
 * once read (which costs the chunk's bytes and a decompression) stays right for the
 * isolate's life. Bounded in entries; the oldest are forgotten first. From format
 * version 2 on the ref carries the size and no chunk is read.
 */
const uncompressedMemo = new Map<string, number>();
const UNCOMPRESSED_MEMO_MAX = 50_000;

/** The uncompressed size of each ref's chunk (line + structured metadata bytes), in refs order. */
async function uncompressedSizes(bucket: R2Bucket, block: ListedBlock, refs: readonly ChunkRef[], gate: Semaphore): Promise<number[]> {
  const out = new Array<number>(refs.length);
  const missing: number[] = [];
  for (let i = 0; i < refs.length; i++) {
    if (refs[i].uncompressedBytes >= 0) {
      out[i] = refs[i].uncompressedBytes;
      continue;
    }
    const hit = uncompressedMemo.get(`${block.key}#${refs[i].offset}`);
    if (hit === undefined) missing.push(i);
    else out[i] = hit;
  }
  if (missing.length === 0) return out;
  const data = await readChunks(r2Source(bucket, block.key, block.size, gate), missing.map((i) => refs[i]));
  for (let k = 0; k < missing.length; k++) {
    const size = logChunkUncompressedBytes(data[k]);
    out[missing[k]] = size;
    if (uncompressedMemo.size >= UNCOMPRESSED_MEMO_MAX) uncompressedMemo.delete(uncompressedMemo.keys().next().value as string);
    uncompressedMemo.set(`${block.key}#${refs[missing[k]].offset}`, size);
  }
  return out;
}

/** One chunk as index statistics and volumes count it: its span, entries and uncompressed bytes. */
export interface ChunkFacts {
  min: NsPoint;
  max: NsPoint;
  entries: number;
  bytes: number;
}

/** A stream with its chunks from the heads and R2 that overlap a range. */
export interface StreamFacts {
  labels: FlatLabels;
  chunks: ChunkFacts[];
}

/**
 * Every stream matching any of `q.matcherSets` (all when empty) with its chunks
 * overlapping the range: the heads' unflushed chunks (bounds to the nanosecond) and
 * the R2 blocks' chunks (the index's millisecond bounds and sizes; a version-1 block's sizes are read once per chunk),
 * one entry per stream, sorted by labels. Volumes (src/querier/loki/volume.ts) are
 * computed from these, as Loki's GetVolume walks its ingesters' and index's chunks.
 */
export async function logChunkFacts(env: Env, tenant: string, q: LogIndexQuery, gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS)): Promise<StreamFacts[]> {
  const sets = q.matcherSets.map(compile);
  const byKey = new Map<string, StreamFacts>();
  const streamOf = (labels: FlatLabels): StreamFacts => {
    const k = seriesKey(labels);
    let s = byKey.get(k);
    if (s === undefined) byKey.set(k, (s = { labels, chunks: [] }));
    return s;
  };
  for (const list of await onShards(env, tenant, q.startMs, gate, (stub) => stub.chunkFacts(q))) {
    for (const h of list) {
      const s = streamOf(parseStreamLabels(h.labels));
      for (const c of h.chunks) s.chunks.push({ min: { ms: c.minMs, ns: c.minNs }, max: { ms: c.maxMs, ns: c.maxNs }, entries: c.entries, bytes: c.bytes });
    }
  }
  for (const picked of await blockChunks(env, tenant, q, sets, gate)) {
    for (const p of picked) {
      const s = streamOf(p.labels);
      for (let i = 0; i < p.refs.length; i++) {
        const r = p.refs[i];
        s.chunks.push({ min: { ms: r.mint, ns: 0 }, max: { ms: r.maxt, ns: 0 }, entries: r.numSamples, bytes: p.sizes[i] });
      }
    }
  }
  return [...byKey.values()].sort((a, b) => compareLabels(a.labels, b.labels));
}

/** Per overlapping block: the matching streams' log chunk refs in the range with their uncompressed sizes. */
async function blockChunks(env: Env, tenant: string, q: LogIndexQuery, sets: CompiledMatcher[][], gate: Semaphore): Promise<{ labels: FlatLabels; refs: ChunkRef[]; sizes: number[] }[][]> {
  const { blocks, mint, maxt } = await blockIndexes(env, tenant, q, gate);
  const perBlock = await Promise.all(
    blocks.map(async ({ block, index }) => {
      const picked: { labels: FlatLabels; refs: ChunkRef[]; sizes: number[] }[] = [];
      eachBlockStream(index, sets, mint, maxt, (labels, chunks) => {
        const refs = chunks.filter((c) => c.encoding === ChunkEncoding.LOG);
        if (refs.length > 0) picked.push({ labels, refs, sizes: [] });
      });
      try {
        const sizes = await uncompressedSizes(env.BLOCKS, block, picked.flatMap((p) => p.refs), gate);
        let k = 0;
        for (const p of picked) for (let i = 0; i < p.refs.length; i++) p.sizes.push(sizes[k++]);
        return picked;
      } catch (e) {
        // Deleted by retention between the list and the read: not a failed query.
        if (e instanceof BlockGoneError) return [];
        throw e;
      }
    }),
  );
  return perBlock;
}

/**
 * Loki's /index/stats: streams matching (counted once across shards and blocks),
 * chunks overlapping the range, and their entries and UNCOMPRESSED bytes (line +
 * structured metadata, Loki's UncompressedSize), each scaled by the share of the
 * chunk's time span the range covers (util.GetFactorOfTime) and truncated, as Loki's
 * ingesters and index do.
 */
export async function logIndexStats(env: Env, tenant: string, q: LogIndexQuery, gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS)): Promise<LogIndexStats> {
  const sets = q.matcherSets.map(compile);
  const streams = new Set<string>();
  const out: LogIndexStats = { streams: 0, chunks: 0, entries: 0, bytes: 0 };
  for (const s of await onShards(env, tenant, q.startMs, gate, (stub) => stub.indexStats(q))) {
    out.chunks += s.chunks;
    out.entries += s.entries;
    out.bytes += s.bytes;
    for (const l of s.streamLabels) streams.add(seriesKey(parseStreamLabels(l)));
  }
  const from = { ms: q.startMs, ns: q.startNs };
  const through = { ms: q.endMs, ns: q.endNs };
  for (const picked of await blockChunks(env, tenant, q, sets, gate)) {
    for (const p of picked) {
      streams.add(seriesKey(p.labels));
      for (let i = 0; i < p.refs.length; i++) {
        const r = p.refs[i];
        const f = factorOfTime(from, through, { ms: r.mint, ns: 0 }, { ms: r.maxt, ns: 0 });
        out.chunks++;
        out.entries += Math.floor(f * r.numSamples);
        out.bytes += Math.floor(f * p.sizes[i]);
      }
    }
  }
  out.streams = streams.size;
  return out;
}
