// Chunk bytes of R2 blocks cached in the isolate, so a dashboard that re-runs the same
// queries does not issue the same ranged GETs (and CRC checks) on every refresh.
// Blocks are immutable, so an entry never goes stale; the cache only bounds memory.
// Entries are grouped per block (LRU by block, bounded in bytes): a query reads a
// block's chunks together, so one map lookup per block keeps per-chunk overhead low.

/** Chunks of one block by the absolute offset of their record; data already CRC-checked. */
type BlockChunks = Map<number, Uint8Array>;

export class ChunkCache {
  private readonly blocks = new Map<string, { chunks: BlockChunks; bytes: number }>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {}

  /** The cached chunks of a block (touching it as recently used), or undefined. */
  block(key: string): BlockChunks | undefined {
    const e = this.blocks.get(key);
    if (!e) return undefined;
    this.blocks.delete(key);
    this.blocks.set(key, e);
    return e.chunks;
  }

  /**
   * Stores checked chunk data. Copies each chunk so that a cached chunk never pins
   * the (larger, coalesced) range buffer it was cut from, keeping the byte bound honest.
   */
  add(key: string, offsets: readonly number[], data: readonly Uint8Array[]): void {
    let e = this.blocks.get(key);
    if (!e) {
      e = { chunks: new Map(), bytes: 0 };
      this.blocks.set(key, e);
    }
    for (let i = 0; i < offsets.length; i++) {
      if (e.chunks.has(offsets[i])) continue;
      const d = data[i];
      if (this.bytes + d.length > this.maxBytes) this.evict(key, d.length);
      if (this.bytes + d.length > this.maxBytes) return; // larger than the whole budget: serve uncached
      e.chunks.set(offsets[i], d.slice());
      e.bytes += d.length;
      this.bytes += d.length;
    }
  }

  /** Drops least recently used blocks (never `keep`, the one being filled) until `need` bytes fit. */
  private evict(keep: string, need: number): void {
    for (const [k, v] of this.blocks) {
      if (this.bytes + need <= this.maxBytes) return;
      if (k === keep) continue;
      this.blocks.delete(k);
      this.bytes -= v.bytes;
    }
  }

  get size(): number {
    return this.bytes;
  }
}

/**
 * 32 MiB: with the 32 MiB index cache this stays well inside the 128 MB isolate,
 * and holds about a day of 1,000 series at 60 s (≈ 150 bytes per 120-sample chunk).
 */
export const chunkCache = new ChunkCache(32 << 20);
