// Consistent-hash ring of virtual tokens over a tenant's shards, as the Cortex ring
// does over ingesters: each shard owns TOKENS_PER_SHARD pseudo-random points; a series
// belongs to the shard owning the first token at or after its hash. Tokens depend
// only on (shard, i), so adding shard N moves only the series whose hash falls just
// before one of its new tokens: about 1/(N+1) of them.

import { hash32 } from "./hash";

export const TOKENS_PER_SHARD = 128;

export class Ring {
  readonly tokens: Uint32Array;
  readonly owners: Uint16Array;

  constructor(readonly shards: number) {
    const n = shards * TOKENS_PER_SHARD;
    const pairs: [number, number][] = new Array(n);
    for (let s = 0; s < shards; s++) {
      for (let i = 0; i < TOKENS_PER_SHARD; i++) {
        pairs[s * TOKENS_PER_SHARD + i] = [hash32(`shard-${s}-token-${i}`), s];
      }
    }
    // Ties (vanishingly rare) break by shard so every isolate builds the same ring.
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.tokens = new Uint32Array(n);
    this.owners = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      this.tokens[i] = pairs[i][0];
      this.owners[i] = pairs[i][1];
    }
  }

  /** The shard that owns a 32-bit hash. */
  shardFor(hash: number): number {
    const t = this.tokens;
    let lo = 0;
    let hi = t.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (t[mid] < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === t.length ? 0 : lo];
  }
}

const rings = new Map<number, Ring>();

/** Rings are pure functions of the shard count; build each once per isolate. */
export function ringFor(shards: number): Ring {
  let ring = rings.get(shards);
  if (!ring) {
    ring = new Ring(shards);
    rings.set(shards, ring);
  }
  return ring;
}

// ---- Ring history: run-time resharding ----
//
// A tenant's shard count can change at run time (PUT /api/v1/shards). As in the Cortex
// ring, a shard is ACTIVE (it owns tokens: new samples are placed on it) or LEAVING
// (it owns no tokens but still holds data, which it flushes to R2 as usual, and still
// answers reads). Shard indexes are always 0..N-1, so one shard count describes a
// ring, and the history of counts, each with the time it took effect, tells which
// shards may hold what. A LEAVING shard whose data is all in R2 (its head and WAL empty)
// is retired by the tenant DO: LEFT, as in the Cortex ring, it is no longer asked by
// reads, flushes, status or scrapes, and refuses writes placed by a ring older than its
// retirement (durable-objects/tenant.ts, src/ingester/retire.ts). Growing the ring over
// a LEFT shard makes it ACTIVE again.

export type ShardState = "ACTIVE" | "LEAVING" | "LEFT";

/** One ring of a tenant's history: `shards` shards, in effect from `since` (ms, the tenant DO's clock). */
export interface RingEntry {
  shards: number;
  since: number;
}

/** A tenant's ring as its control DO keeps it: the history and the LEFT shards. */
export interface RingState {
  entries: RingEntry[];
  retired: number[];
}

/** At most this many entries are kept; older ones are merged (merging only ever widens reads). */
export const MAX_RING_ENTRIES = 64;

/**
 * A tenant's rings over time, oldest first. Writes use the newest ring. A shard that
 * left the ring at time L (the first change after the last ring listing it) still
 * gets samples from distributors whose cached ring is older, for at most the cache's
 * TTL, and those samples are no newer than the distributor's clock plus the creation
 * grace period. So it can hold no sample newer than L + slack, with slack = ring
 * cache TTL + creationGracePeriodMs + a clock-skew margin, and a read whose range
 * starts after that need not ask it. Nothing bounds a shard's samples from below
 * (samples may arrive up to rejectOldSamplesMaxAgeMs late), so `maxt` prunes nothing.
 */
export class RingHistory {
  readonly entries: readonly RingEntry[];
  /** LEFT shards: LEAVING shards retired once everything they held was in R2. */
  readonly retired: ReadonlySet<number>;
  /** Per shard: when it last left the ring; Infinity while ACTIVE. */
  private readonly leftAtByShard: Float64Array;

  constructor(entries: readonly RingEntry[], retired: Iterable<number> = []) {
    if (entries.length === 0) throw new Error("a ring history has at least one entry");
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (!Number.isInteger(e.shards) || e.shards < 1 || e.shards > MAX_SHARDS) throw new Error(`ring entry ${i}: shards must be an integer from 1 to ${MAX_SHARDS}, got ${e.shards}`);
      if (i > 0 && e.since < entries[i - 1].since) throw new Error(`ring entry ${i}: entries must be in time order`);
    }
    this.entries = entries;
    let max = 0;
    for (const e of entries) if (e.shards > max) max = e.shards;
    const leftAt = new Float64Array(max).fill(-Infinity);
    // Walk forward: a shard listed by entry i and not by entry i+1 left at i+1's start.
    for (let i = 0; i < entries.length; i++) {
      const until = i + 1 < entries.length ? entries[i + 1].since : Infinity;
      for (let s = 0; s < entries[i].shards; s++) leftAt[s] = until;
    }
    this.leftAtByShard = leftAt;
    const shards = entries[entries.length - 1].shards;
    // Only LEAVING shards can be LEFT: a shard the newest ring lists is ACTIVE whatever was retired.
    this.retired = new Set([...retired].filter((s) => Number.isInteger(s) && s >= shards && s < max));
  }

  /** When the newest ring took effect: a push carries it, so a LEFT shard can tell a stale ring from one that re-added it. */
  get since(): number {
    return this.entries[this.entries.length - 1].since;
  }

  /** Shards of the newest ring: where writes go. */
  get shards(): number {
    return this.entries[this.entries.length - 1].shards;
  }

  /** Every shard ever listed: 0..maxShards-1. */
  get maxShards(): number {
    return this.leftAtByShard.length;
  }

  /** The ring writes are placed on. */
  ring(): Ring {
    return ringFor(this.shards);
  }

  state(shard: number): ShardState | null {
    if (shard < 0 || shard >= this.maxShards) return null;
    if (shard < this.shards) return "ACTIVE";
    return this.retired.has(shard) ? "LEFT" : "LEAVING";
  }

  /** When the shard last left the ring (Infinity: ACTIVE; -Infinity: never listed). */
  leftAt(shard: number): number {
    return shard >= 0 && shard < this.maxShards ? this.leftAtByShard[shard] : -Infinity;
  }

  /** The shards a read of samples at or after `mint` must ask, ascending (see the class comment for `slackMs`). */
  readShards(mint: number, slackMs: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.maxShards; s++) if (this.leftAtByShard[s] + slackMs >= mint && !this.retired.has(s)) out.push(s);
    return out;
  }

  /** Every shard that may hold data not yet in R2 (ACTIVE and LEAVING, not LEFT), whatever its time: for flush, shutdown and status. */
  allShards(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.maxShards; s++) if (!this.retired.has(s)) out.push(s);
    return out;
  }

  /** LEAVING shards that left at least `afterMs` before `now`: the ones the tenant DO may try to retire. */
  retirable(now: number, afterMs: number): number[] {
    const out: number[] = [];
    for (let s = this.shards; s < this.maxShards; s++) if (!this.retired.has(s) && this.leftAtByShard[s] + afterMs <= now) out.push(s);
    return out;
  }

  /** The history with `shard` LEFT (itself unless it is LEAVING). */
  withRetired(shard: number): RingHistory {
    if (this.state(shard) !== "LEAVING") return this;
    return new RingHistory(this.entries, [...this.retired, shard]);
  }

  /** The history with the shard count changed at `now` (itself when unchanged); LEFT shards the new ring lists are ACTIVE again. */
  withShards(shards: number, now: number): RingHistory {
    if (shards === this.shards) return this;
    const last = this.entries[this.entries.length - 1];
    // A clock that went backwards must not reorder the history.
    const since = Math.max(now, last.since);
    return new RingHistory(compactRingEntries([...this.entries, { shards, since }], MAX_RING_ENTRIES), [...this.retired].filter((s) => s >= shards));
  }
}

/** Highest shard count a ring may have (owners are stored as Uint16; SHARDS allows up to 1024). */
export const MAX_SHARDS = 1024;

/**
 * Keeps at most `max` entries by merging the two oldest into one ring of the larger
 * count starting at the older time: every shard either listed is listed by the merged
 * entry until the third entry's start, which is no earlier than before, so reads only
 * widen. The newest entry (where writes go) is never merged.
 */
export function compactRingEntries(entries: RingEntry[], max: number): RingEntry[] {
  const out = entries.slice();
  while (out.length > Math.max(2, max)) {
    const [a, b] = out;
    out.splice(0, 2, { shards: Math.max(a.shards, b.shards), since: a.since });
  }
  return out;
}
