// Log blocks: the metric block format (docs/block-format.md) with streams as its
// series and log chunks as its chunks (chunk encoding 2, ChunkEncoding.LOG). One
// object per shard per flush, like Loki's chunks would be if they were batched
// the way Thanos batches series. Reusing the format reuses its index (symbols,
// postings, matcher selection), its range reads that coalesce neighbouring
// chunks, its CRCs and the isolate's index cache. Why not a sibling format:
// docs/log-format.md.
//
// The index keeps chunk time ranges in milliseconds: [floor ms of the first
// entry, ms of the last], inclusive, so it never drops a chunk a nanosecond
// range needs; readLogChunk applies the exact nanosecond range.

import type { FlatLabels } from "../../model/labels";
import type { CompiledMatcher } from "../../model/matchers";
import { ChunkEncoding, type BlockMeta, type BlockMetaFields, type ChunkRef } from "../block/format";
import { readChunks, type BlockIndex, type RangeSource, type ReadChunksOptions } from "../block/reader";
import { BlockWriter, type ChunkInput } from "../block/writer";
import { logChunkMeta } from "./chunk";
import { logChunkUncompressedBytes } from "./chunk_stats";

export interface LogBlockStreamInput {
  /** Stream labels, sorted by name. */
  labels: FlatLabels;
  /** Chunks as finish() (or snapshot()) bytes. Chunks without entries are left out. */
  chunks: readonly Uint8Array[];
  /**
   * Each chunk's uncompressed line + structured metadata bytes, as the head counted
   * them (kept in the block index from format version 2); counted from the chunk's raw
   * blocks when absent.
   */
  uncompressedBytes?: readonly number[];
}

/**
 * Builds one log block from streams and their chunks. Throws CorruptDataError
 * when a chunk's header is bad (a chunk is checked before it is stored).
 */
export function writeLogBlock(streams: Iterable<LogBlockStreamInput>, fields: BlockMetaFields): { bytes: Uint8Array; meta: BlockMeta } {
  const w = new BlockWriter();
  const inputs: ChunkInput[] = [];
  for (const s of streams) {
    inputs.length = 0;
    for (let i = 0; i < s.chunks.length; i++) {
      const data = s.chunks[i];
      const m = logChunkMeta(data);
      if (m.entries === 0) continue;
      const uncompressedBytes = s.uncompressedBytes?.[i] ?? logChunkUncompressedBytes(data);
      inputs.push({ mint: m.minMs, maxt: m.maxMs, numSamples: m.entries, encoding: ChunkEncoding.LOG, data, uncompressedBytes });
    }
    w.addSeries(s.labels, inputs);
  }
  return w.finish(fields);
}

/**
 * The inclusive millisecond range of the block index that covers the nanosecond
 * range [start, end): an end at ns 0 excludes its whole millisecond.
 */
export function msRange(startMs: number, startNs: number, endMs: number, endNs: number): { mint: number; maxt: number } {
  return { mint: startMs, maxt: endNs > 0 ? endMs : endMs - 1 };
}

/** One stream of a block with the refs of its chunks that may hold entries in the range. */
export interface LogBlockSeries {
  labels: FlatLabels;
  refs: ChunkRef[];
}

/** Streams matching every matcher with a log chunk in [start, end); from the index alone (no I/O). */
export function selectLogSeries(
  index: BlockIndex,
  matchers: readonly CompiledMatcher[],
  startMs: number,
  startNs: number,
  endMs: number,
  endNs: number,
): LogBlockSeries[] {
  const { mint, maxt } = msRange(startMs, startNs, endMs, endNs);
  const out: LogBlockSeries[] = [];
  for (const s of index.select(matchers, mint, maxt)) {
    // A block holds only log chunks; skipping other encodings keeps a stray metric block harmless.
    const refs = s.chunks.filter((c) => c.encoding === ChunkEncoding.LOG);
    if (refs.length > 0) out.push({ labels: s.labels, refs });
  }
  return out;
}

export interface LogBlockStream {
  labels: FlatLabels;
  /** Log chunk bytes (views into the read buffers), for readLogChunk / streamsFromChunks. */
  chunks: Uint8Array[];
}

/**
 * Streams matching the matchers with their chunks overlapping [start, end):
 * selection from the index, then one ranged read per run of neighbouring chunks
 * (readChunks, which checks each record's CRC).
 */
export async function readLogStreams(
  index: BlockIndex,
  src: RangeSource,
  matchers: readonly CompiledMatcher[],
  startMs: number,
  startNs: number,
  endMs: number,
  endNs: number,
  opts?: ReadChunksOptions,
): Promise<LogBlockStream[]> {
  const series = selectLogSeries(index, matchers, startMs, startNs, endMs, endNs);
  const refs: ChunkRef[] = [];
  for (const s of series) for (const r of s.refs) refs.push(r);
  if (refs.length === 0) return [];
  const data = await readChunks(src, refs, opts);
  const out: LogBlockStream[] = [];
  let k = 0;
  for (const s of series) {
    out.push({ labels: s.labels, chunks: data.slice(k, k + s.refs.length) });
    k += s.refs.length;
  }
  return out;
}
