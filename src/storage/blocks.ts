// Blocks in R2: one object per flush per shard, keyed so that a tenant's blocks list
// in order of their maxTime. A query for [mint, maxt] lists from the first key whose
// maxTime >= mint (startAfter), reads the minTime from the key to skip blocks that
// start after maxt, and never lists older blocks: recent-range queries (dashboards)
// read few list pages. The block's meta rides in the object's customMetadata, which
// R2 returns with list(), so listing costs no GETs.

import type { BlockMeta } from "./block/format";
import { BlockIndex, openBlock, type RangeSource } from "./block/reader";
import type { Toc } from "./block/format";
import type { Semaphore } from "../model/concurrency";

/** Timestamps in keys: offset so negative times sort correctly, fixed width. */
const TIME_OFFSET = 1e15;
const TIME_WIDTH = 16;

export function timeKey(t: number): string {
  return String(Math.max(0, Math.min(t + TIME_OFFSET, 9.999e15))).padStart(TIME_WIDTH, "0");
}

export function tenantBlocksPrefix(tenant: string): string {
  return `tenants/${tenant}/blocks/`;
}

export function blockKey(tenant: string, meta: Pick<BlockMeta, "minTime" | "maxTime" | "shard" | "blockId">): string {
  return `${tenantBlocksPrefix(tenant)}${timeKey(meta.maxTime)}-${timeKey(meta.minTime)}-${meta.shard}-${meta.blockId}`;
}

export interface ListedBlock {
  key: string;
  size: number;
  meta: BlockMeta;
}

/** R2 operation counts of this isolate, for the benchmark and /metrics. */
export const r2Ops = { puts: 0, gets: 0, lists: 0, deletes: 0, bytesRead: 0, bytesWritten: 0 };

export async function putBlock(bucket: R2Bucket, key: string, bytes: Uint8Array, meta: BlockMeta): Promise<void> {
  r2Ops.puts++;
  r2Ops.bytesWritten += bytes.length;
  await bucket.put(key, bytes, { customMetadata: { meta: JSON.stringify(meta) } });
}

export async function deleteBlock(bucket: R2Bucket, key: string): Promise<void> {
  r2Ops.deletes++;
  await bucket.delete(key);
}

/** The tenant's blocks overlapping [mint, maxt], in key order. */
export async function listBlocks(bucket: R2Bucket, tenant: string, mint: number, maxt: number, gate?: Semaphore): Promise<ListedBlock[]> {
  return listBlocksUnder(bucket, tenantBlocksPrefix(tenant), mint, maxt, gate);
}

/** Blocks keyed `${prefix}${timeKey(maxTime)}-${timeKey(minTime)}-...` overlapping [mint, maxt] (log blocks share the scheme). */
export async function listBlocksUnder(bucket: R2Bucket, prefix: string, mint: number, maxt: number, gate?: Semaphore): Promise<ListedBlock[]> {
  const out: ListedBlock[] = [];
  let cursor: string | undefined;
  const startAfter = mint === -Infinity ? undefined : `${prefix}${timeKey(mint - 1)}~`;
  for (;;) {
    r2Ops.lists++;
    // `include` is in R2's list API but missing from this workers-types release.
    const options = { prefix, startAfter: cursor ? undefined : startAfter, cursor, include: ["customMetadata"] } as R2ListOptions;
    const page = gate ? await gate.run(() => bucket.list(options)) : await bucket.list(options);
    for (const obj of page.objects) {
      const raw = obj.customMetadata?.meta;
      if (!raw) continue; // not a block of ours
      const meta = JSON.parse(raw) as BlockMeta;
      if (meta.maxTime < mint || meta.minTime > maxt) continue;
      out.push({ key: obj.key, size: obj.size, meta });
    }
    if (!page.truncated) break;
    cursor = page.cursor;
  }
  return out;
}

/**
 * A listed block that is no longer in R2 (deleted by retention, src/storage/retention.ts,
 * between a query's list and its reads): readers skip it rather than fail the query.
 */
export class BlockGoneError extends Error {}

/** Ranged GETs on one R2 object, through the query's connection gate when given. */
export function r2Source(bucket: R2Bucket, key: string, size: number, gate?: Semaphore): RangeSource {
  const get = async (offset: number, length: number): Promise<Uint8Array> => {
    r2Ops.gets++;
    const obj = await bucket.get(key, { range: { offset, length } });
    if (obj === null) throw new BlockGoneError(`block ${key} disappeared from R2`);
    const b = new Uint8Array(await obj.arrayBuffer());
    r2Ops.bytesRead += b.length;
    return b;
  };
  return { size, read: (offset, length) => (gate ? gate.run(() => get(offset, length)) : get(offset, length)) };
}

/**
 * Block indexes cached in the isolate (LRU by bytes). Blocks are immutable, so an
 * index never goes stale; the cache only bounds memory. The Cache API, where it
 * exists, keeps the index bytes across isolates of the same location.
 */
export class IndexCache {
  private readonly entries = new Map<string, BlockIndex>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  async open(bucket: R2Bucket, block: ListedBlock, gate?: Semaphore): Promise<BlockIndex> {
    const hit = this.entries.get(block.key);
    if (hit) {
      this.entries.delete(block.key);
      this.entries.set(block.key, hit);
      return hit;
    }
    const index = (await fromCacheApi(block.key, gate)) ?? (await openBlock(r2Source(bucket, block.key, block.size, gate)));
    void toCacheApi(block.key, index, gate);
    this.entries.set(block.key, index);
    this.bytes += index.bytes.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.bytes.length;
    }
    return index;
  }
}

export const indexCache = new IndexCache(32 << 20);

// The Cache API keeps index bytes per location, shared by isolates; blocks are
// immutable, so entries never go stale. Absent (or failing) caches are skipped.
const CACHE_ORIGIN = "https://block-index.cache.internal/";

async function fromCacheApi(key: string, gate?: Semaphore): Promise<BlockIndex | null> {
  if (typeof caches === "undefined") return null;
  try {
    const lookup = () => caches.default.match(CACHE_ORIGIN + encodeURIComponent(key));
    const res = gate ? await gate.run(lookup) : await lookup();
    if (!res) return null;
    const toc = JSON.parse(res.headers.get("X-Block-Toc") ?? "null") as Toc | null;
    if (!toc) return null;
    return BlockIndex.fromBytes(new Uint8Array(await res.arrayBuffer()), toc);
  } catch {
    return null;
  }
}

async function toCacheApi(key: string, index: BlockIndex, gate?: Semaphore): Promise<void> {
  if (typeof caches === "undefined") return;
  try {
    const res = new Response(index.bytes, {
      headers: { "X-Block-Toc": JSON.stringify(index.toc), "Cache-Control": "public, max-age=31536000, immutable" },
    });
    const store = () => caches.default.put(CACHE_ORIGIN + encodeURIComponent(key), res);
    await (gate ? gate.run(store) : store());
  } catch {
    // A cache is an optimisation; R2 stays the source of truth.
  }
}

/**
 * Marks that a tenant has a shard, once per shard's lifetime (an R2 PUT, at its first
 * flush), so admins can list tenants (`tenants/` with delimiter "/") without a registry.
 */
export async function registerShard(bucket: R2Bucket, tenant: string, shard: number): Promise<void> {
  r2Ops.puts++;
  await bucket.put(`tenants/${tenant}/shards/${shard}`, "");
}

export async function listTenants(bucket: R2Bucket): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    r2Ops.lists++;
    const page = await bucket.list({ prefix: "tenants/", delimiter: "/", cursor });
    for (const p of page.delimitedPrefixes) out.push(p.slice("tenants/".length, -1));
    if (!page.truncated) break;
    cursor = page.cursor;
  }
  return out;
}
