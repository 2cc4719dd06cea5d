import { describe, expect, it } from "vitest";
import { Ring, TOKENS_PER_SHARD } from "../../src/distributor/ring";
import { hash32, seriesHash } from "../../src/distributor/hash";
import { seriesKey } from "../../src/model/labels";

function keys(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(seriesKey(["__name__", `metric_${i % 97}`, "instance", `host-${i % 1013}:9100`, "job", "node", "n", String(i)]));
  }
  return out;
}

describe("ring", () => {
  it("builds the same tokens every time, sorted, TOKENS_PER_SHARD per shard", () => {
    const a = new Ring(5);
    const b = new Ring(5);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    for (let i = 1; i < a.tokens.length; i++) expect(a.tokens[i]).toBeGreaterThanOrEqual(a.tokens[i - 1]);
    const perShard = new Array(5).fill(0);
    for (const o of a.owners) perShard[o]++;
    expect(perShard).toEqual(new Array(5).fill(TOKENS_PER_SHARD));
  });

  it("places hashes beyond the last token on the first token's owner (wrap-around)", () => {
    const r = new Ring(3);
    expect(r.shardFor(0xffffffff)).toBe(r.tokens[r.tokens.length - 1] === 0xffffffff ? r.owners[r.tokens.length - 1] : r.owners[0]);
    expect(r.shardFor(0)).toBe(r.owners[0]);
  });

  it("spreads series evenly (each shard within 25% of its fair share)", () => {
    const ks = keys(50_000);
    for (const shards of [2, 4, 8, 16]) {
      const r = new Ring(shards);
      const counts = new Array(shards).fill(0);
      for (const k of ks) counts[r.shardFor(seriesHash("tenant-a", k))]++;
      const fair = ks.length / shards;
      for (const c of counts) {
        expect(c).toBeGreaterThan(fair * 0.75);
        expect(c).toBeLessThan(fair * 1.25);
      }
    }
  });

  it("moves only about 1/(N+1) of series when shard N+1 is added, and only onto the new shard", () => {
    const ks = keys(50_000);
    for (const n of [1, 3, 4, 7, 15]) {
      const before = new Ring(n);
      const after = new Ring(n + 1);
      let moved = 0;
      for (const k of ks) {
        const h = seriesHash("tenant-a", k);
        const a = before.shardFor(h);
        const b = after.shardFor(h);
        if (a !== b) {
          moved++;
          // A series only ever moves to the new shard: the old tokens keep their order.
          expect(b).toBe(n);
        }
      }
      const expected = ks.length / (n + 1);
      expect(moved).toBeGreaterThan(expected * 0.75);
      expect(moved).toBeLessThan(expected * 1.25);
    }
  });

  it("hashes the tenant into placement: tenants spread independently", () => {
    const r = new Ring(8);
    const ks = keys(2_000);
    let same = 0;
    for (const k of ks) if (r.shardFor(seriesHash("a", k)) === r.shardFor(seriesHash("b", k))) same++;
    // Independent placement agrees about 1/8 of the time.
    expect(same / ks.length).toBeLessThan(0.25);
  });

  it("hash32 avalanches: one character changes about half the bits", () => {
    let bits = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const x = hash32(`series-${i}`) ^ hash32(`series-${i}x`);
      bits += popcount(x);
    }
    expect(bits / n).toBeGreaterThan(14);
    expect(bits / n).toBeLessThan(18);
  });
});

function popcount(x: number): number {
  let c = 0;
  while (x) {
    x &= x - 1;
    c++;
  }
  return c;
}
