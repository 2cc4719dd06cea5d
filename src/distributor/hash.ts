// 32-bit series hash for ring placement. Written by hand because it runs once per
// series per push: FNV-1a over UTF-16 code units (no encoding step), then
// murmur3's fmix32 finaliser so that nearby keys spread over the whole ring.

export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The placement hash of a series: tenant and series key, so tenants spread independently. */
export function seriesHash(tenant: string, key: string): number {
  return hash32(key, hash32(tenant));
}
