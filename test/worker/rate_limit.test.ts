// Ingestion rate limits (src/limits/rate.ts, durable-objects/rate_limiter.ts) and the
// per-tenant series limit (src/ingester/append.ts), through the Worker as a client
// sees them. Tenants and their limits: vitest.config.mts (LIMITS).
//
//   rl_small:     ingestionRate 100 samples/s, ingestionBurstSize 500
//   rl_logs:      logIngestionRateBytes 1000, logIngestionBurstBytes 4000
//   series_small: maxGlobalSeriesPerUser 8 over 2 shards (4 per shard)

import { SELF, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { post, pushV1, readAll } from "./helpers";
import { LeaseBook, admitSamples } from "../../src/limits/rate";
import { DEFAULT_LIMITS, type Limits } from "../../src/config/limits";
import { HttpError } from "../../src/http/errors";

const RATE = 100;
const BURST = 500;
const PUSH_SAMPLES = 20;
/** What one isolate may lease beyond a push (src/limits/rate.ts: a tenth of a second of the rate, at most a tenth of the burst). */
const LEASE = Math.floor(Math.min(RATE * 0.1, BURST * 0.1));

function samples(n: number, start: number): [number, number][] {
  return Array.from({ length: n }, (_, j) => [start + j * 1000, j] as [number, number]);
}

describe("ingestion rate limit (samples)", () => {
  it("admits at most rate x time + burst of 50 concurrent pushes; the rest are 429 with Retry-After and write nothing", async () => {
    const t0 = Date.now();
    const base = t0 - 60_000;
    const pushes = Array.from({ length: 50 }, (_, i) => pushV1([{ labels: { __name__: "rl_test", push: String(i) }, samples: samples(PUSH_SAMPLES, base) }], { tenant: "rl_small" }));
    const responses = await Promise.all(pushes);
    const elapsedS = (Date.now() - t0) / 1000;

    const accepted = new Set<string>();
    let refused = 0;
    for (let i = 0; i < responses.length; i++) {
      const r = responses[i];
      const text = await r.text();
      if (r.status === 204) {
        accepted.add(String(i));
        continue;
      }
      expect(r.status, text).toBe(429);
      refused++;
      const retryAfter = Number(r.headers.get("Retry-After"));
      expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
      expect(text).toContain("ingestion rate limit exceeded for tenant rl_small");
      expect(text).toContain("ingestionRate");
      expect(text).toContain("rate_limited");
    }
    // The stated tolerance: never more than rate x time + burst; refused early by at most
    // one lease and one push's worth of tokens (one isolate here).
    const admitted = accepted.size * PUSH_SAMPLES;
    expect(admitted).toBeLessThanOrEqual(RATE * elapsedS + BURST);
    expect(admitted).toBeGreaterThanOrEqual(BURST - LEASE - PUSH_SAMPLES);
    expect(refused).toBeGreaterThan(0);

    // Nothing half-written: exactly the accepted pushes' series, each whole.
    const stored = await readAll("rl_small");
    const got = new Map(stored.map((s) => [s.labels[s.labels.indexOf("push") + 1], s.timestamps.length]));
    expect(new Set(got.keys())).toEqual(accepted);
    for (const n of got.values()) expect(n).toBe(PUSH_SAMPLES);

    // The refusals are counted for /metrics, by Cortex's reason name.
    const stats = await env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName("rl_small")).stats();
    expect(stats.discarded.rate_limited.samples).toBe(refused * PUSH_SAMPLES);
    expect(stats.refusals).toBe(refused);
  });

  it("refuses a push larger than the burst, saying it can never be accepted", async () => {
    const r = await pushV1([{ labels: { __name__: "rl_big" }, samples: samples(BURST + 1, Date.now() - 3_600_000) }], { tenant: "rl_small" });
    const text = await r.text();
    expect(r.status).toBe(429);
    expect(text).toContain("can never be accepted");
    expect(text).toContain("ingestionBurstSize");
    expect(r.headers.get("Retry-After")).not.toBeNull();
    expect((await readAll("rl_small")).some((s) => s.labels.includes("rl_big"))).toBe(false);
  });

  it("does not limit a tenant under its rate", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await pushV1([{ labels: { __name__: "rl_free", i: String(i) }, samples: samples(100, Date.now() - 3_600_000) }], { tenant: "rl_free" });
      expect(r.status, await r.text()).toBe(204);
    }
  });
});

describe("ingestion rate limit (log bytes)", () => {
  it("refuses log pushes past the tenant's bytes/s with 429 naming the limit", async () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const line = "x".repeat(500);
    const statuses: number[] = [];
    let message = "";
    for (let i = 0; i < 12; i++) {
      const body = JSON.stringify({ streams: [{ stream: { app: "rl", i: String(i) }, values: [[String(now + BigInt(i)), line]] }] });
      const r = await post("/loki/api/v1/push", body, { "Content-Type": "application/json", "X-Scope-OrgID": "rl_logs" });
      statuses.push(r.status);
      const text = await r.text();
      if (r.status === 429) {
        message = text;
        expect(r.headers.get("Retry-After")).not.toBeNull();
      }
    }
    // 4000 bytes of burst hold about 7 pushes of ~510 bytes; 12 in quick succession cannot all pass.
    expect(statuses).toContain(429);
    expect(statuses.filter((s) => s !== 429).every((s) => s === 204)).toBe(true);
    expect(message).toContain("Ingestion rate limit exceeded for user rl_logs");
    expect(message).toContain("logIngestionRateBytes");
    const stats = await env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName("rl_logs")).stats();
    expect(stats.discarded.rate_limited.lines).toBe(statuses.filter((s) => s === 429).length);
  });
});

describe("browser key rate limit", () => {
  it("refuses a browser key past its own bytes/s while the tenant's other pushes go on", async () => {
    const key = "rl-browser-key-0123456789";
    const origin = "https://rl.example";
    const put = await SELF.fetch("http://ingester/api/v1/runtime_config", {
      method: "PUT",
      body: JSON.stringify({
        overrides: { rl_bk: { corsAllowedOrigins: [origin] } },
        browserKeys: [{ id: "bk", key, tenant: "rl_bk", origins: [origin], bytesPerSecond: 100, burstBytes: 1500 }],
      }),
    });
    expect(put.status, await put.text()).toBe(200);
    const now = BigInt(Date.now()) * 1_000_000n;
    const push = (i: number, headers: Record<string, string>, query: string) =>
      post(`/loki/api/v1/push${query}`, JSON.stringify({ streams: [{ stream: { app: "bk", i: String(i) }, values: [[String(now + BigInt(i)), "y".repeat(400)]] }] }), {
        "Content-Type": "application/json",
        ...headers,
      });
    const statuses: number[] = [];
    let message = "";
    for (let i = 0; i < 6; i++) {
      const r = await push(i, { Origin: origin }, `?key=${key}`);
      statuses.push(r.status);
      const text = await r.text();
      if (r.status === 429) message = text;
    }
    // 1500 bytes of burst hold about 3 pushes of ~410 bytes.
    expect(statuses.slice(0, 2)).toEqual([204, 204]);
    expect(statuses).toContain(429);
    expect(message).toContain('browser key bk exceeded its rate limit (limit: 100 bytes/sec, burst 1500 bytes');
    // The tenant's own bucket (4 MiB/s) is far from empty: a server push for it passes.
    const server = await push(99, { "X-Scope-OrgID": "rl_bk" }, "");
    expect(server.status, await server.text()).toBe(204);
    expect((await SELF.fetch("http://ingester/api/v1/runtime_config", { method: "PUT", body: "{}" })).status).toBe(200);
  });
});

describe("max series per tenant", () => {
  it("refuses new series past each shard's share of maxGlobalSeriesPerUser (per_user_series_limit), keeping the rest", async () => {
    const t = Date.now() - 60_000;
    const series = Array.from({ length: 20 }, (_, i) => ({ labels: { __name__: "many", i: String(i) }, samples: [[t, i]] as [number, number][] }));
    const r = await pushV1(series, { tenant: "series_small" });
    const text = await r.text();
    expect(r.status).toBe(400);
    expect(text).toContain("per_user_series_limit");
    expect(text).toContain("maxGlobalSeriesPerUser");
    const stored = await readAll("series_small");
    // 8 over 2 shards: 4 per shard, so at most 8 (exactly 4 on a shard that got 4 or more).
    expect(stored.length).toBeLessThanOrEqual(8);
    expect(stored.length).toBeGreaterThanOrEqual(4);
    expect(text).toContain(`${20 - stored.length} of 20 samples in this request were dropped`);

    // Existing series still take samples; new ones are still refused.
    const again = await pushV1(
      stored.map((s) => ({ labels: Object.fromEntries(Array.from({ length: s.labels.length / 2 }, (_, k) => [s.labels[2 * k], s.labels[2 * k + 1]])), samples: [[t + 1000, 1]] as [number, number][] })),
      { tenant: "series_small" },
    );
    expect(again.status, await again.text()).toBe(204);
  });
});

// Several isolates share one tenant's RateLimiter: each LeaseBook below stands for one
// isolate's leases (src/limits/rate.ts), calling the real Durable Object.
describe("rate limit leases across isolates", () => {
  const limiterOf = (tenant: string) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenant));
  const limitsOf = (rate: number, burst: number): Limits => ({ ...DEFAULT_LIMITS, ingestionRate: rate, ingestionBurstSize: burst });

  it("keeps leasing after a burst of concurrent pushes (one limiter call per lease, not per push)", async () => {
    const tenant = "rl_lease_burst";
    const limits = limitsOf(10_000, 200_000); // Mimir's defaults: a lease is 1,000 samples
    const book = new LeaseBook();
    // 20 pushes at once: none is covered yet, so each asks (only the first for a lease).
    await Promise.all(Array.from({ length: 20 }, () => admitSamples(env, tenant, limits, 10, book)));
    const afterBurst = (await limiterOf(tenant).stats()).takes;
    expect(afterBurst).toBe(20);
    // Then 50 pushes of 10 samples, one after another: 500 samples, within the lease the
    // burst's first call took (1,000), so at most one more call to the limiter.
    for (let i = 0; i < 50; i++) await admitSamples(env, tenant, limits, 10, book);
    expect((await limiterOf(tenant).stats()).takes - afterBurst).toBeLessThanOrEqual(1);
    expect(book.tokens(tenant, "samples")).toBeGreaterThanOrEqual(1000 - 500 - 10);
  });

  it("holds the tolerance with three isolates pushing at once", async () => {
    const tenant = "rl_three_isolates";
    const RATE3 = 100;
    const BURST3 = 500;
    const PUSH = 20;
    const LEASE3 = Math.floor(Math.min(RATE3 * 0.1, BURST3 * 0.1));
    const limits = limitsOf(RATE3, BURST3);
    const books = [new LeaseBook(), new LeaseBook(), new LeaseBook()];
    const t0 = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        admitSamples(env, tenant, limits, PUSH, books[i % 3]).then(
          () => true,
          (e: unknown) => {
            expect(e).toBeInstanceOf(HttpError);
            expect((e as HttpError).status).toBe(429);
            return false;
          },
        ),
      ),
    );
    const elapsedS = (Date.now() - t0) / 1000;
    const admitted = outcomes.filter(Boolean).length * PUSH;
    // Never more than rate x time + burst. Refused early by at most what the isolates hold
    // unspent (each: less than one push plus one lease) and what is left in the bucket (less than a push).
    expect(admitted).toBeLessThanOrEqual(RATE3 * elapsedS + BURST3);
    expect(admitted).toBeGreaterThanOrEqual(BURST3 - books.length * (LEASE3 + PUSH) - PUSH);
    expect(outcomes).toContain(false);
    const stats = await limiterOf(tenant).stats();
    expect(stats.refusals).toBe(outcomes.filter((o) => !o).length);
  });
});
