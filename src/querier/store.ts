// The store side of select(): the tenant's blocks in R2 that overlap the range,
// read like Thanos's store gateway reads object storage: the TOC and the index
// (cached), then only the chunk byte ranges the matched series need, coalesced.
// All R2 calls of a query share one gate of 6 (the Workers connection limit).

import type { Semaphore } from "../model/concurrency";
import type { SelectedSeries } from "../ingester/rpc";
import type { CompiledMatcher } from "../model/matchers";
import { readChunks } from "../storage/block/reader";
import { indexCache, listBlocks, r2Source } from "../storage/blocks";

export async function selectFromBlocks(bucket: R2Bucket, tenant: string, matchers: CompiledMatcher[], mint: number, maxt: number, gate: Semaphore): Promise<SelectedSeries[]> {
  const blocks = await listBlocks(bucket, tenant, mint, maxt, gate);
  // Every R2 call below goes through `gate`, so blocks can be opened "all at once".
  const perBlock = await Promise.all(blocks.map(async (block) => {
    const index = await indexCache.open(bucket, block, gate);
    const series = index.select(matchers, mint, maxt);
    if (series.length === 0) return [];
    const refs = series.flatMap((s) => s.chunks);
    const data = await readChunks(r2Source(bucket, block.key, block.size, gate), refs);
    let k = 0;
    return series.map((s): SelectedSeries => ({ labels: s.labels, chunks: s.chunks.map(() => data[k++]), ooo: null }));
  }));
  return perBlock.flat();
}
