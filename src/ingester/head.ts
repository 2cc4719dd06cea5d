// The in-memory head of one shard: series by key (collision-safe: the key is the
// full label set, not a hash), series by id, postings, and metadata by family.

import { labelsFromKey } from "../model/labels";
import type { MetricMetadata } from "../proto/types";
import { MemSeries } from "./series";
import { Postings } from "./postings";
import { DEFAULT_LIMITS } from "../config/limits";

export class Head {
  readonly byKey = new Map<string, MemSeries>();
  readonly byId: (MemSeries | undefined)[] = [];
  readonly postings = new Postings();
  readonly metadata = new Map<string, MetricMetadata>();
  nextId = 1;
  samplesAppended = 0;
  /** Memory held, maintained cheaply per push and recomputed at each flush. */
  bytesEstimate = 0;
  /** Chunk cut rules of the tenant, refreshed by every push (defaults until then, e.g. during replay). */
  maxSamplesPerChunk = DEFAULT_LIMITS.maxSamplesPerChunk;
  maxChunkAgeMs = DEFAULT_LIMITS.maxChunkAgeMs;

  get numSeries(): number {
    return this.byKey.size;
  }

  /** Registers a series under a known id (commit of a push, or WAL replay). */
  addSeries(id: number, key: string): MemSeries {
    const existing = this.byKey.get(key);
    if (existing) return existing;
    const s = new MemSeries(id, key, labelsFromKey(key));
    this.insertSeries(s);
    return s;
  }

  /** Registers a series created while staging a push, after its WAL row committed. */
  insertSeries(s: MemSeries): void {
    this.byKey.set(s.key, s);
    this.byId[s.id] = s;
    this.postings.add(s.id, s.labels);
    if (s.id >= this.nextId) this.nextId = s.id + 1;
  }

  removeSeries(s: MemSeries): void {
    this.byKey.delete(s.key);
    this.byId[s.id] = undefined;
    this.postings.remove(s.id, s.labels);
  }

  /** Bytes of chunk data in memory plus a per-series allowance for labels and maps. */
  bytes(): number {
    let n = 0;
    for (const s of this.byKey.values()) n += s.bytes() + 200 + s.key.length * 2;
    return n;
  }

  numChunks(): number {
    let n = 0;
    for (const s of this.byKey.values()) n += s.closed.length + (s.open && s.open.numSamples > 0 ? 1 : 0);
    return n;
  }
}
