// The ingestion rate limiter: one Durable Object per tenant, holding token buckets
// (the tenant's samples/s, its log bytes/s, and one per browser key). Mimir and
// Loki keep a local limiter per distributor and divide the tenant's rate by the
// number of distributors ("global" strategy); Workers have no fixed set of
// distributors, so the bucket lives in one place and isolates lease tokens from it
// (src/limits/rate.ts). A lease is taken out of the bucket, so leasing can only
// refuse too early, never admit more than rate x time + burst.
//
// State survives eviction (SQLite): otherwise an evicted limiter would come back
// with a full burst. Refusals are counted here, by what was refused, under Cortex's
// discard reason "rate_limited", for the /metrics endpoint (stats()).

import { DurableObject } from "cloudflare:workers";

/** One bucket's part of a take: `amount` now, plus up to `lease` more for the caller to spend later. */
export interface BucketTake {
  /** "samples", "logBytes" or "browserKey:<id>". */
  name: string;
  /** Tokens per second; > 0. */
  rate: number;
  /** Bucket size: the most that can be taken at once. */
  burst: number;
  amount: number;
  lease: number;
}

/** What a refused push held: counted as discarded with reason rate_limited. */
export interface DiscardCounts {
  samples: number;
  lines: number;
  bytes: number;
}

export interface TakeRequest {
  buckets: BucketTake[];
  /** Counted only if the take is refused. */
  discard: DiscardCounts;
}

export interface TakeResult {
  ok: boolean;
  /** Per bucket: tokens leased beyond `amount` (0 when refused). */
  leased: number[];
  /** Index of the bucket that refused, -1 when ok. */
  refused: number;
  /** Tokens the refusing bucket held. */
  available: number;
  /** When the refusing bucket will hold `amount` tokens; Infinity when amount > burst (never). */
  retryAfterMs: number;
}

export interface RateLimiterStats {
  /** Discarded by reason (Cortex's discarded_samples_total / Loki's discarded_bytes_total reason label). */
  discarded: { rate_limited: DiscardCounts };
  /** Pushes refused. */
  refusals: number;
  /** take() calls since the object started (in memory): what leasing saves, for tests and the benchmark. */
  takes: number;
  buckets: Record<string, { tokens: number; rate: number; burst: number }>;
}

interface Bucket {
  tokens: number;
  /** Date.now() of the last refill. */
  at: number;
  rate: number;
  burst: number;
}

export class RateLimiter extends DurableObject<Env> {
  private readonly buckets = new Map<string, Bucket>();
  private discarded: DiscardCounts = { samples: 0, lines: 0, bytes: 0 };
  private refusals = 0;
  private takes = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS bucket (name TEXT PRIMARY KEY, tokens REAL, at REAL, rate REAL, burst REAL)");
    sql.exec("CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value REAL)");
    for (const r of sql.exec<{ name: string; tokens: number; at: number; rate: number; burst: number }>("SELECT * FROM bucket")) {
      this.buckets.set(r.name, { tokens: r.tokens, at: r.at, rate: r.rate, burst: r.burst });
    }
    for (const r of sql.exec<{ name: string; value: number }>("SELECT * FROM counter")) {
      if (r.name === "refusals") this.refusals = r.value;
      else if (r.name in this.discarded) this.discarded[r.name as keyof DiscardCounts] = r.value;
    }
  }

  /** Takes `amount` (and a lease) from every bucket, or nothing at all. */
  take(req: TakeRequest): TakeResult {
    this.takes++;
    const now = Date.now();
    const buckets = req.buckets.map((b) => this.refill(b, now));
    for (let i = 0; i < buckets.length; i++) {
      const want = req.buckets[i];
      const b = buckets[i];
      if (want.amount > b.tokens) {
        this.refusals++;
        this.discarded.samples += req.discard.samples;
        this.discarded.lines += req.discard.lines;
        this.discarded.bytes += req.discard.bytes;
        this.save(req.buckets, buckets, true);
        const retryAfterMs = want.amount > b.burst ? Infinity : Math.ceil(((want.amount - b.tokens) / b.rate) * 1000);
        return { ok: false, leased: req.buckets.map(() => 0), refused: i, available: Math.floor(b.tokens), retryAfterMs };
      }
    }
    const leased = buckets.map((b, i) => {
      b.tokens -= req.buckets[i].amount;
      const lease = Math.max(0, Math.min(req.buckets[i].lease, Math.floor(b.tokens)));
      b.tokens -= lease;
      return lease;
    });
    this.save(req.buckets, buckets, false);
    return { ok: true, leased, refused: -1, available: 0, retryAfterMs: 0 };
  }

  stats(): RateLimiterStats {
    const now = Date.now();
    const buckets: RateLimiterStats["buckets"] = {};
    for (const [name, b] of this.buckets) {
      buckets[name] = { tokens: Math.floor(Math.min(b.burst, b.tokens + ((now - b.at) / 1000) * b.rate)), rate: b.rate, burst: b.burst };
    }
    return { discarded: { rate_limited: { ...this.discarded } }, refusals: this.refusals, takes: this.takes, buckets };
  }

  /** The bucket refilled to now, with the caller's (current) rate and burst: a limit change applies at once. */
  private refill(want: BucketTake, now: number): Bucket {
    let b = this.buckets.get(want.name);
    if (b === undefined) {
      b = { tokens: want.burst, at: now, rate: want.rate, burst: want.burst };
      this.buckets.set(want.name, b);
    }
    // The clock may step back between machines; never refill for negative time.
    const elapsed = Math.max(0, now - b.at);
    b.rate = want.rate;
    b.burst = want.burst;
    b.tokens = Math.min(b.burst, b.tokens + (elapsed / 1000) * b.rate);
    b.at = now;
    return b;
  }

  /** One small transaction; the reply waits for it (output gate), so state is never behind what was granted. */
  private save(wants: BucketTake[], buckets: Bucket[], counters: boolean): void {
    const sql = this.ctx.storage.sql;
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i];
      sql.exec("INSERT OR REPLACE INTO bucket (name, tokens, at, rate, burst) VALUES (?, ?, ?, ?, ?)", wants[i].name, b.tokens, b.at, b.rate, b.burst);
    }
    if (counters) {
      sql.exec("INSERT OR REPLACE INTO counter (name, value) VALUES ('refusals', ?)", this.refusals);
      for (const k of ["samples", "lines", "bytes"] as const) sql.exec("INSERT OR REPLACE INTO counter (name, value) VALUES (?, ?)", k, this.discarded[k]);
    }
  }
}
