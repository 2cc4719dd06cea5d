// Flushing the head to R2 as blocks: alarms driven with a test clock, idempotent
// repeats, injected R2 failures, interrupted flushes, reads from R2 alone, and the
// admin endpoints.

import { describe, expect, it } from "vitest";
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { asMap, expected, pushV1, readAll, type TestSeries } from "./helpers";
import { shardStub } from "../../src/distributor/shards";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { listBlocks } from "../../src/storage/blocks";
import { select, toSamples } from "../../src/querier/select";
import { Semaphore } from "../../src/model/concurrency";
import { MatchType } from "../../src/proto/types";

const NOW = Date.now();
const T0 = NOW - 3 * 3600_000;
const MIN = 60_000;

interface Inst {
  clock: () => number;
  bucket: R2Bucket;
  wal: { records: number };
  head: { numSeries: number };
}

function stubs(tenant: string, shards = DEFAULT_LIMITS.shards) {
  return Array.from({ length: shards }, (_, i) => shardStub(env, tenant, i));
}

async function onAll(tenant: string, fn: (i: Inst, state: DurableObjectState) => void | Promise<void>) {
  for (const stub of stubs(tenant)) await runInDurableObject(stub, (inst: unknown, state) => fn(inst as Inst, state));
}

/** Runs every shard's alarm at `at` (the shards' clocks are set to it). */
async function alarmsAt(tenant: string, at: number) {
  await onAll(tenant, (i) => {
    i.clock = () => at;
  });
  for (const stub of stubs(tenant)) await runDurableObjectAlarm(stub);
}

async function blocks(tenant: string) {
  return listBlocks(env.BLOCKS, tenant, -Infinity, Infinity);
}

function data(n: number, samples: number, name: string, step = 15_000): TestSeries[] {
  return Array.from({ length: n }, (_, i) => ({
    labels: { __name__: name, instance: `h${i}`, job: "node" },
    samples: Array.from({ length: samples }, (_, j) => [T0 + j * step, i + j] as [number, number]),
  }));
}

describe("flush to R2", () => {
  it("flushes full chunks at the next check, idle series after the idle period, and nothing twice", async () => {
    const tenant = "flush-rules";
    const full = data(20, 130, "full_metric"); // 130 > 120: one chunk closes at append
    expect((await pushV1(full, { tenant })).status).toBe(204);
    await alarmsAt(tenant, NOW);
    const first = await blocks(tenant);
    expect(first.length).toBeGreaterThan(0);
    // Only the closed chunks (120 samples each) went out; the open ones stay.
    expect(first.reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(20 * 120);
    expect(asMap(await readAll(tenant))).toEqual(expected(full));

    // A repeated alarm at the same time uploads nothing.
    await alarmsAt(tenant, NOW);
    expect((await blocks(tenant)).length).toBe(first.length);

    // After the idle period the open chunks close and flush too.
    await alarmsAt(tenant, NOW + 31 * MIN);
    const after = await blocks(tenant);
    expect(after.reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(20 * 130);
    await alarmsAt(tenant, NOW + 32 * MIN);
    expect((await blocks(tenant)).length).toBe(after.length);
    // Head and blocks overlap during the retain period: still every sample once.
    expect(asMap(await readAll(tenant))).toEqual(expected(full));

    // Past the retain period the head lets go; the data now comes from R2 alone.
    await alarmsAt(tenant, NOW + 31 * MIN + DEFAULT_LIMITS.retainPeriodMs + MIN);
    await onAll(tenant, (i) => expect(i.head.numSeries).toBe(0));
    expect(asMap(await readAll(tenant))).toEqual(expected(full));
  });

  it("closes a chunk whose span reaches the max chunk age (2h) and flushes it at the next check", async () => {
    const tenant = "flush-max-age";
    // One sample every 9 minutes for 3h: the chunk is cut when the next sample would make it span 2h.
    const d = data(3, 21, "slow", 9 * MIN);
    expect((await pushV1(d, { tenant })).status).toBe(204);
    await alarmsAt(tenant, NOW);
    const bs = await blocks(tenant);
    // 14 samples (0..117 min) per series closed by max age; the rest stays open.
    expect(bs.reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(3 * 14);
    expect(bs.every((b) => b.meta.maxTime - b.meta.minTime < 2 * 3600_000)).toBe(true);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
  });

  it("reads many blocks with at most 6 R2 calls in flight and a handful of GETs per block", async () => {
    const tenant = "flush-gate";
    const all: TestSeries[] = data(40, 0, "gated");
    for (let round = 0; round < 6; round++) {
      const part = all.map((s, i) => ({ labels: s.labels, samples: [[T0 + round * 15_000, i * 10 + round] as [number, number]] }));
      for (let i = 0; i < all.length; i++) all[i].samples.push(part[i].samples[0]);
      expect((await pushV1(part, { tenant })).status).toBe(204);
      expect((await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    }
    const nBlocks = (await blocks(tenant)).length;
    expect(nBlocks).toBe(6 * DEFAULT_LIMITS.shards);
    let inFlight = 0;
    let peak = 0;
    let gets = 0;
    const counted = new Proxy(env.BLOCKS, {
      get(target, prop) {
        const v = Reflect.get(target, prop);
        if (typeof v !== "function") return v;
        return async (...args: unknown[]) => {
          inFlight++;
          peak = Math.max(peak, inFlight);
          if (prop === "get") gets++;
          try {
            return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } finally {
            inFlight--;
          }
        };
      },
    });
    const gate = new Semaphore(6);
    const got = await select({ ...env, BLOCKS: counted }, tenant, [{ type: MatchType.EQ, name: "__name__", value: "gated" }], 0, NOW, gate);
    expect(peak).toBeLessThanOrEqual(6);
    expect(gate.peak).toBeLessThanOrEqual(6);
    // Indexes are cached in the isolate after the first open; chunks need one GET per block.
    expect(gets).toBeLessThanOrEqual(3 * nBlocks);
    expect(asMap(got.map((s) => toSamples(s, 0, NOW)))).toEqual(expected(all));
  });

  it("keeps one block per shard per flush, holding many series", async () => {
    const tenant = "flush-shape";
    expect((await pushV1(data(200, 5, "many"), { tenant })).status).toBe(204);
    const res = await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
    expect(res.status).toBe(204);
    const bs = await blocks(tenant);
    expect(bs.length).toBe(DEFAULT_LIMITS.shards);
    expect(new Set(bs.map((b) => b.meta.shard)).size).toBe(DEFAULT_LIMITS.shards);
    expect(bs.reduce((n, b) => n + b.meta.stats.numSeries, 0)).toBe(200);
  });

  it("loses nothing when R2 fails mid-flush, retries with backoff, then trims the WAL", async () => {
    const tenant = "flush-r2-fail";
    const d = data(30, 10, "r2fail");
    expect((await pushV1(d, { tenant })).status).toBe(204);
    let failing = true;
    await onAll(tenant, (i) => {
      const real = i.bucket;
      i.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "put" && failing) return async () => { throw new Error("injected R2 failure"); };
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    });
    const flush = await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
    expect(flush.status).toBe(503);
    expect(await flush.text()).toMatch(/injected R2 failure/);
    await alarmsAt(tenant, NOW + 31 * MIN);
    expect((await blocks(tenant)).length).toBe(0);
    // Nothing trimmed, everything readable, a retry scheduled.
    let walRecords = 0;
    await onAll(tenant, (i) => void (walRecords += i.wal.records));
    expect(walRecords).toBeGreaterThan(0);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
    const st = (await (await SELF.fetch("http://x/api/v1/status/ingesters", { headers: { "X-Scope-OrgID": tenant } })).json()) as {
      data: { shards: { nextAlarmAt: number | null; lastFlushError: string | null; series: number }[] };
    };
    for (const s of st.data.shards.filter((x) => x.series > 0)) {
      expect(s.nextAlarmAt).not.toBeNull();
      expect(s.lastFlushError).toMatch(/injected R2 failure/);
    }
    // R2 recovers: the retry flushes everything once and trims the WAL.
    failing = false;
    await alarmsAt(tenant, NOW + 32 * MIN);
    expect((await blocks(tenant)).reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(300);
    walRecords = 0;
    await onAll(tenant, (i) => void (walRecords += i.wal.records));
    expect(walRecords).toBe(0);
    for (const stub of stubs(tenant)) await evictDurableObject(stub);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
  });

  it("an interrupted flush (block written, shard lost before marking) leaves one copy", async () => {
    const tenant = "flush-interrupted";
    const d = data(10, 4, "interrupted");
    expect((await pushV1(d, { tenant })).status).toBe(204);
    await onAll(tenant, (i) => {
      const real = i.bucket;
      i.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "put") {
            return async (...args: Parameters<R2Bucket["put"]>) => {
              await target.put(...args);
              throw new Error("lost after the PUT");
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    });
    await alarmsAt(tenant, NOW + 31 * MIN);
    const orphans = (await blocks(tenant)).length;
    expect(orphans).toBeGreaterThan(0);
    // The shard restarts (memory gone, intent and WAL kept) and flushes again.
    for (const stub of stubs(tenant)) await evictDurableObject(stub);
    await alarmsAt(tenant, NOW + 32 * MIN);
    const bs = await blocks(tenant);
    expect(bs.length).toBe(orphans);
    expect(bs.reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(40);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
  });

  it("a checkpoint that fails after the PUT loses nothing: the shard restarts from storage and flushes again", async () => {
    const tenant = "flush-cp-fail";
    const d = data(12, 6, "cpfail");
    expect((await pushV1(d, { tenant })).status).toBe(204);
    type CpInst = { wal: { checkpoint: (parts: Uint8Array[]) => void } };
    await onAll(tenant, (i) => {
      (i as unknown as CpInst).wal.checkpoint = () => {
        throw new Error("injected SQLite failure in the checkpoint");
      };
    });
    // Each shard's PUT succeeds and its checkpoint (the WAL trim) does not: the alarm
    // fails (the platform retries it) and the object is reset.
    await onAll(tenant, (i) => {
      i.clock = () => NOW + 31 * MIN;
    });
    let failed = 0;
    for (const stub of stubs(tenant)) {
      await runDurableObjectAlarm(stub).catch((e: Error) => {
        expect(e.message).toMatch(/the checkpoint after the PUT failed \(injected SQLite failure/);
        failed++;
      });
    }
    expect(failed).toBeGreaterThan(0);
    const orphans = (await blocks(tenant)).length;
    expect(orphans).toBe(failed);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
    // The reset shards flush again (their alarm re-armed from storage), replacing each block.
    await alarmsAt(tenant, NOW + 32 * MIN);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
    const bs = await blocks(tenant);
    expect(bs.length).toBe(orphans);
    expect(bs.reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(12 * 6);
    // Past the retain period the heads let go: every sample from R2 alone.
    await alarmsAt(tenant, NOW + 32 * MIN + DEFAULT_LIMITS.retainPeriodMs + MIN);
    await onAll(tenant, (i) => expect(i.head.numSeries).toBe(0));
    for (const stub of stubs(tenant)) await evictDurableObject(stub);
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
  });

  it("serves all flushed data from R2 alone after every ingester's storage is wiped", async () => {
    const tenant = "flush-wipe";
    const d = data(100, 50, "wiped");
    expect((await pushV1(d, { tenant })).status).toBe(204);
    expect((await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    await onAll(tenant, async (_i, state) => {
      await state.storage.deleteAlarm();
      await state.storage.deleteAll();
    });
    for (const stub of stubs(tenant)) await evictDurableObject(stub);
    await onAll(tenant, (i) => expect(i.head.numSeries).toBe(0));
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
  });
});

describe("admin endpoints", () => {
  it("POST /flush?all=true flushes every tenant that has written", async () => {
    const tenants = ["all-a", "all-b"];
    for (const t of tenants) expect((await pushV1(data(8, 2, "everyone"), { tenant: t })).status).toBe(204);
    // Registration of a new shard happens in the background of its first push.
    await new Promise((r) => setTimeout(r, 50));
    expect((await SELF.fetch("http://x/flush?all=true", { method: "POST" })).status).toBe(204);
    for (const t of tenants) expect((await blocks(t)).reduce((n, b) => n + b.meta.stats.numSamples, 0)).toBe(16);
  });

  it("lists blocks as Thanos does", async () => {
    const tenant = "admin-blocks";
    expect((await pushV1(data(5, 3, "listed"), { tenant })).status).toBe(204);
    expect((await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    const res = await SELF.fetch("http://x/api/v1/blocks", { headers: { "X-Scope-OrgID": tenant } });
    const body = (await res.json()) as { status: string; data: { blocks: { tenant: string; minTime: number; maxTime: number; stats: { numSamples: number }; walRange: unknown }[] } };
    expect(body.status).toBe("success");
    expect(body.data.blocks.length).toBeGreaterThan(0);
    for (const b of body.data.blocks) {
      expect(b.tenant).toBe(tenant);
      expect(b.minTime).toBeLessThanOrEqual(b.maxTime);
      expect(b.walRange).toBeDefined();
    }
    expect(body.data.blocks.reduce((n, b) => n + b.stats.numSamples, 0)).toBe(15);
  });

  it("shutdown refuses writes with a retryable 503, flushes, releases memory; DELETE resumes", async () => {
    const tenant = "admin-shutdown";
    const d = data(10, 3, "shut");
    expect((await pushV1(d, { tenant })).status).toBe(204);
    expect((await SELF.fetch("http://x/shutdown", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    const refused = await pushV1(data(1, 1, "late"), { tenant });
    expect(refused.status).toBe(503);
    expect(await refused.text()).toMatch(/shut down.*DELETE \/shutdown/);
    await onAll(tenant, (i) => expect(i.head.numSeries).toBe(0));
    expect(asMap(await readAll(tenant))).toEqual(expected(d));
    // The state survives a restart.
    for (const stub of stubs(tenant)) await evictDurableObject(stub);
    expect((await pushV1(data(1, 1, "late"), { tenant })).status).toBe(503);
    expect((await SELF.fetch("http://x/shutdown", { method: "DELETE", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    expect((await pushV1(data(1, 1, "late"), { tenant })).status).toBe(204);
  });

  it("past the memory bound a shard answers 503 while R2 is down, and never drops acked data", async () => {
    const tenant = "tiny_head"; // maxHeadBytesPerShard 20,000, one shard (vitest.config.mts)
    const s = shardStub(env, tenant, 0);
    let refused: Response | null = null;
    const acked: TestSeries[] = [];
    for (let p = 0; p < 50 && refused === null; p++) {
      const part = data(50, 1, `bound_${p}`);
      const res = await pushV1(part, { tenant });
      if (res.status === 204) acked.push(...part);
      else refused = res;
      if (p === 0) {
        await runInDurableObject(s, (inst: unknown) => {
          const i = inst as Inst;
          i.bucket = new Proxy(i.bucket, {
            get(target, prop) {
              if (prop === "put") return async () => { throw new Error("R2 down"); };
              const v = Reflect.get(target, prop);
              return typeof v === "function" ? v.bind(target) : v;
            },
          });
        });
      }
    }
    expect(refused?.status).toBe(503);
    expect(await refused!.text()).toMatch(/maxHeadBytesPerShard/);
    expect(asMap(await readAll(tenant))).toEqual(expected(acked));
  });
});
