// The store side of select(): the tenant's blocks in R2 that overlap the range,
// read like Thanos's store gateway reads object storage: the TOC and the index
// (cached), then only the chunk byte ranges the matched series need, coalesced.
// Chunks already read by an earlier query come from the isolate's chunk cache
// (blocks are immutable), so repeated dashboard queries issue no chunk GETs.
// All R2 calls of a query share one gate of 6 (the Workers connection limit).
// A block deleted by retention between the list and the reads is skipped: it holds
// nothing older-than-retention queries may return (src/storage/retention.ts).

import type { Semaphore } from "../model/concurrency";
import type { SelectedSeries } from "../ingester/rpc";
import type { CompiledMatcher } from "../model/matchers";
import type { ChunkRef } from "../storage/block/format";
import { readChunks } from "../storage/block/reader";
import { BlockGoneError, indexCache, listBlocks, r2Source, type ListedBlock } from "../storage/blocks";
import { chunkCache } from "../storage/chunk_cache";

export async function selectFromBlocks(bucket: R2Bucket, tenant: string, matchers: CompiledMatcher[], mint: number, maxt: number, gate: Semaphore): Promise<SelectedSeries[]> {
  const blocks = await listBlocks(bucket, tenant, mint, maxt, gate);
  // Every R2 call below goes through `gate`, so blocks can be opened "all at once".
  const perBlock = await Promise.all(blocks.map((block) => fromBlock(bucket, block, matchers, mint, maxt, gate).catch((e: unknown) => {
    if (e instanceof BlockGoneError) return [];
    throw e;
  })));
  return perBlock.flat();
}

/** The series of one block matching, with the chunks the range needs. */
async function fromBlock(bucket: R2Bucket, block: ListedBlock, matchers: CompiledMatcher[], mint: number, maxt: number, gate: Semaphore): Promise<SelectedSeries[]> {
  const index = await indexCache.open(bucket, block, gate);
  const series = index.select(matchers, mint, maxt);
  if (series.length === 0) return [];
  const refs: ChunkRef[] = [];
  for (const s of series) for (const c of s.chunks) refs.push(c);
  const data = await chunksOf(bucket, block, refs, gate);
  let k = 0;
  const out = new Array<SelectedSeries>(series.length);
  for (let i = 0; i < series.length; i++) {
    const n = series[i].chunks.length;
    out[i] = { labels: series[i].labels, chunks: data.slice(k, k + n), ooo: null };
    k += n;
  }
  return out;
}

/** Chunk data for refs of one block, from the chunk cache where present, else R2 (then cached). */
async function chunksOf(bucket: R2Bucket, block: ListedBlock, refs: ChunkRef[], gate: Semaphore): Promise<Uint8Array[]> {
  const out = new Array<Uint8Array>(refs.length);
  const cached = chunkCache.block(block.key);
  const missing: number[] = [];
  for (let i = 0; i < refs.length; i++) {
    const hit = cached?.get(refs[i].offset);
    // A cached chunk was checked against the same immutable block, but compare the
    // length anyway: a ref from a different index can never be served wrong bytes.
    if (hit && hit.length === refs[i].length) out[i] = hit;
    else missing.push(i);
  }
  chunkCache.hits += refs.length - missing.length;
  chunkCache.misses += missing.length;
  if (missing.length === 0) return out;
  const missRefs = missing.map((i) => refs[i]);
  const data = await readChunks(r2Source(bucket, block.key, block.size, gate), missRefs);
  for (let j = 0; j < missing.length; j++) out[missing[j]] = data[j];
  chunkCache.add(block.key, missRefs.map((r) => r.offset), data);
  return out;
}
