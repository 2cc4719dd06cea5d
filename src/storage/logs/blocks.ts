// Log blocks in R2, beside the metric blocks and under the same key scheme
// (src/storage/blocks.ts): `tenants/<tenant>/logs/<maxTime>-<minTime>-<shard>-<blockId>`,
// times in ms, so a query lists from its start (R2 lists in key order) and reads
// each block's meta from customMetadata without a GET. Opening, index caching and
// ranged reads are the metric blocks' own.

import type { Semaphore } from "../../model/concurrency";
import type { FlatLabels } from "../../model/labels";
import type { LogSelectParams } from "../../model/logs";
import { compileMatcher } from "../../model/matchers";
import { canonicalString } from "../../distributor/logs/stream_labels";
import type { BlockMeta } from "../block/format";
import type { BlockIndex } from "../block/reader";
import { BlockGoneError, deleteBlock, indexCache, listBlocksUnder, putBlock, r2Source, timeKey, type IndexCache, type ListedBlock } from "../blocks";
import { msRange, readLogStreams } from "./block";
import type { StreamChunks } from "./merge";

export function tenantLogBlocksPrefix(tenant: string): string {
  return `tenants/${tenant}/logs/`;
}

export function logBlockKey(tenant: string, meta: Pick<BlockMeta, "minTime" | "maxTime" | "shard" | "blockId">): string {
  return `${tenantLogBlocksPrefix(tenant)}${timeKey(meta.maxTime)}-${timeKey(meta.minTime)}-${meta.shard}-${meta.blockId}`;
}

/** One PUT, the meta in customMetadata (counted in r2Ops like metric blocks). */
export function putLogBlock(bucket: R2Bucket, key: string, bytes: Uint8Array, meta: BlockMeta): Promise<void> {
  return putBlock(bucket, key, bytes, meta);
}

export function deleteLogBlock(bucket: R2Bucket, key: string): Promise<void> {
  return deleteBlock(bucket, key);
}

/** The tenant's log blocks that may hold entries in [start, end), in key (maxTime) order. */
export function listLogBlocks(
  bucket: R2Bucket,
  tenant: string,
  startMs: number,
  startNs: number,
  endMs: number,
  endNs: number,
  gate?: Semaphore,
): Promise<ListedBlock[]> {
  const { mint, maxt } = msRange(startMs, startNs, endMs, endNs);
  if (mint > maxt) return Promise.resolve([]);
  return listBlocksUnder(bucket, tenantLogBlocksPrefix(tenant), mint, maxt, gate);
}

export interface LogBlockQueryOptions {
  /** The query's connection gate (6 in flight on Workers). */
  gate?: Semaphore;
  /** Defaults to the isolate's shared index cache. */
  cache?: IndexCache;
}

/** The indexes (TOC + index reads, or cached) of the tenant's log blocks overlapping [start, end). */
export async function openLogBlocks(
  bucket: R2Bucket,
  tenant: string,
  startMs: number,
  startNs: number,
  endMs: number,
  endNs: number,
  opts: LogBlockQueryOptions = {},
): Promise<{ block: ListedBlock; index: BlockIndex }[]> {
  const blocks = await listLogBlocks(bucket, tenant, startMs, startNs, endMs, endNs, opts.gate);
  const cache = opts.cache ?? indexCache;
  const opened = await Promise.all(blocks.map(async (block) => skipGone(async () => ({ block, index: await cache.open(bucket, block, opts.gate) }))));
  return opened.filter((x) => x !== null);
}

/** A block deleted by retention (src/storage/retention.ts) between the list and a read is skipped, not a failed query. */
async function skipGone<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof BlockGoneError) return null;
    throw e;
  }
}

/**
 * Streams matching the selector with their chunks that may hold entries in the
 * range, from every log block of the tenant: list, open (cached), select, then
 * ranged reads of the chunks. Feed the result to streamsFromChunks (merge.ts),
 * together with the ingesters' chunks, for the exact range and de-duplication.
 */
export async function queryLogBlocks(bucket: R2Bucket, tenant: string, params: LogSelectParams, opts: LogBlockQueryOptions = {}): Promise<StreamChunks[]> {
  const matchers = params.matchers.map(compileMatcher);
  const { startMs, startNs, endMs, endNs } = params;
  const opened = await openLogBlocks(bucket, tenant, startMs, startNs, endMs, endNs, opts);
  const perBlock = await Promise.all(
    opened.map(({ block, index }) =>
      skipGone(() => readLogStreams(index, r2Source(bucket, block.key, block.size, opts.gate), matchers, startMs, startNs, endMs, endNs)),
    ),
  );
  const out: StreamChunks[] = [];
  const labelStrings = new Map<string, string>();
  for (const streams of perBlock) {
    if (streams === null) continue;
    for (const s of streams) out.push({ labels: labelString(labelStrings, s.labels), flat: s.labels, chunks: s.chunks });
  }
  return out;
}

/** The canonical string once per label set per query (blocks repeat the same streams). */
function labelString(memo: Map<string, string>, flat: FlatLabels): string {
  const key = flat.join("\u0000");
  let s = memo.get(key);
  if (s === undefined) memo.set(key, (s = canonicalString(flat)));
  return s;
}
