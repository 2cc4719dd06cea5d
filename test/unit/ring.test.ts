import { describe, expect, it } from "vitest";
import { compactRingEntries, Ring, RingHistory, ringFor, TOKENS_PER_SHARD, type RingEntry } from "../../src/distributor/ring";
import { hash32, seriesHash } from "../../src/distributor/hash";
import { seriesKey } from "../../src/model/labels";
import { mulberry32 } from "../support/prng";

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

describe("ring history (run-time resharding)", () => {
  const SLACK = 1000;
  // 4 shards from the start, 6 from t=100, 2 from t=200, 5 from t=300.
  const h = new RingHistory([
    { shards: 4, since: 0 },
    { shards: 6, since: 100_000 },
    { shards: 2, since: 200_000 },
    { shards: 5, since: 300_000 },
  ]);

  it("places writes on the newest ring, exactly as a ring of that many shards", () => {
    expect(h.shards).toBe(5);
    expect(h.ring()).toBe(ringFor(5));
    const five = new Ring(5);
    for (const k of keys(2000)) {
      const hash = seriesHash("t", k);
      expect(h.ring().shardFor(hash)).toBe(five.shardFor(hash));
    }
  });

  it("names shards ACTIVE (in the newest ring) or LEAVING (listed before, not now), with when they left", () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((s) => h.state(s))).toEqual(["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "LEAVING", null]);
    expect(h.maxShards).toBe(6);
    expect(h.leftAt(0)).toBe(Infinity);
    expect(h.leftAt(4)).toBe(Infinity);
    // Shard 5 was listed only by the 6-shard ring, which ended at t=200.
    expect(h.leftAt(5)).toBe(200_000);
    expect(h.leftAt(6)).toBe(-Infinity);
  });

  it("reads every shard that may hold samples at or after mint: ACTIVE ones always, LEAVING ones until they left plus the slack", () => {
    expect(h.readShards(-Infinity, SLACK)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(h.readShards(0, SLACK)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(h.readShards(200_000 + SLACK, SLACK)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(h.readShards(200_000 + SLACK + 1, SLACK)).toEqual([0, 1, 2, 3, 4]);
    expect(h.allShards()).toEqual([0, 1, 2, 3, 4, 5]);
    // Scaled down to 2 for good: 2..5 are LEAVING and pruned once the range starts after their departure.
    const down = h.withShards(2, 400_000);
    expect(down.readShards(400_000 + SLACK, SLACK)).toEqual([0, 1, 2, 3, 4]);
    expect(down.readShards(400_000 + SLACK + 1, SLACK)).toEqual([0, 1]);
    expect(down.readShards(200_000 + SLACK + 1, SLACK)).toEqual([0, 1, 2, 3, 4]);
  });

  it("retires LEAVING shards (LEFT): no longer read, flushed or listed; growing the ring over one makes it ACTIVE again", () => {
    const down = h.withShards(2, 400_000); // 2..5 LEAVING from t=400 (5 since t=200)
    expect(down.retirable(400_000 + 9_999, 10_000)).toEqual([5]);
    expect(down.retirable(410_000, 10_000)).toEqual([2, 3, 4, 5]);
    const left = down.withRetired(3).withRetired(5);
    expect([0, 1, 2, 3, 4, 5].map((s) => left.state(s))).toEqual(["ACTIVE", "ACTIVE", "LEAVING", "LEFT", "LEAVING", "LEFT"]);
    expect(left.allShards()).toEqual([0, 1, 2, 4]);
    expect(left.readShards(-Infinity, SLACK)).toEqual([0, 1, 2, 4]);
    expect(left.retirable(410_000, 10_000)).toEqual([2, 4]);
    // Only LEAVING shards can be retired; the entries (and placement) are unchanged.
    expect(left.withRetired(0)).toBe(left);
    expect(left.withRetired(3)).toBe(left);
    expect(left.ring()).toBe(ringFor(2));
    expect(new RingHistory(left.entries, left.retired).allShards()).toEqual([0, 1, 2, 4]);
    // Scaled up to 4: 3 is ACTIVE again (written to, read), 5 stays LEFT; the newest ring's since moves on.
    const up = left.withShards(4, 500_000);
    expect([0, 1, 2, 3, 4, 5].map((s) => up.state(s))).toEqual(["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "LEAVING", "LEFT"]);
    expect(up.allShards()).toEqual([0, 1, 2, 3, 4]);
    expect(up.since).toBe(500_000);
    expect(left.since).toBe(400_000);
    // A retired list naming ACTIVE or unknown shards is ignored (only LEAVING shards can be LEFT).
    expect([...new RingHistory(up.entries, [0, 3, 5, 9]).retired]).toEqual([5]);
  });

  it("finds, for random histories, every shard a series was ever placed on within the read set", () => {
    const rnd = mulberry32(7);
    const ks = keys(300);
    for (let trial = 0; trial < 50; trial++) {
      const entries: RingEntry[] = [{ shards: 1 + Math.floor(rnd() * 8), since: 0 }];
      let hist = new RingHistory(entries);
      // Every write: (time, shard) under the ring in effect, plus writes from stale
      // caches up to SLACK after a change (the slack's worst case).
      const writes: { t: number; shard: number }[] = [];
      let now = 0;
      for (let step = 0; step < 20; step++) {
        const prev = hist;
        now += 1 + Math.floor(rnd() * 5000);
        if (rnd() < 0.3) hist = hist.withShards(1 + Math.floor(rnd() * 8), now);
        for (const k of ks.slice(0, 30)) {
          const hash = seriesHash("t", k);
          writes.push({ t: now, shard: hist.ring().shardFor(hash) });
          if (prev !== hist) writes.push({ t: now + Math.floor(rnd() * SLACK), shard: prev.ring().shardFor(hash) });
        }
      }
      for (let q = 0; q < 20; q++) {
        const mint = Math.floor(rnd() * (now + 2 * SLACK));
        const read = new Set(hist.readShards(mint, SLACK));
        const missed = writes.filter((w) => w.t >= mint && !read.has(w.shard));
        expect(missed).toEqual([]);
      }
    }
  });

  it("is unchanged by a no-op change and keeps time order when the clock goes back", () => {
    expect(h.withShards(5, 999_999)).toBe(h);
    const back = h.withShards(3, 10);
    expect(back.entries[back.entries.length - 1]).toEqual({ shards: 3, since: 300_000 });
  });

  it("refuses empty, out-of-order and out-of-range histories", () => {
    expect(() => new RingHistory([])).toThrow(/at least one entry/);
    expect(() => new RingHistory([{ shards: 2, since: 5 }, { shards: 3, since: 4 }])).toThrow(/time order/);
    expect(() => new RingHistory([{ shards: 0, since: 0 }])).toThrow(/shards must be an integer/);
    expect(() => new RingHistory([{ shards: 1.5, since: 0 }])).toThrow(/shards must be an integer/);
  });

  it("compacts long histories only by widening reads: every shard is read at least as long as before", () => {
    const rnd = mulberry32(11);
    const entries: RingEntry[] = [];
    for (let i = 0; i < 200; i++) entries.push({ shards: 1 + Math.floor(rnd() * 16), since: i * 1000 });
    const full = new RingHistory(entries);
    const compacted = new RingHistory(compactRingEntries(entries, 10));
    expect(compacted.entries.length).toBe(10);
    expect(compacted.shards).toBe(full.shards);
    expect(compacted.maxShards).toBe(full.maxShards);
    for (let s = 0; s < full.maxShards; s++) expect(compacted.leftAt(s)).toBeGreaterThanOrEqual(full.leftAt(s));
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
