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
