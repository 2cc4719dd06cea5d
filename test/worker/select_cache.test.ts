// The read path after a flush: heads leave out chunks already in R2 (no duplicate
// transfer), and chunk bytes read once are served from the isolate's chunk cache.

import { describe, expect, it } from "vitest";
import { env, SELF } from "cloudflare:test";
import { asMap, expected, pushV1, type TestSeries } from "./helpers";
import { select, selectFromIngesters, toSamples } from "../../src/querier/select";
import { Semaphore } from "../../src/model/concurrency";
import { MatchType } from "../../src/proto/types";

const NOW = Date.now();
const T0 = NOW - 3600_000;

function countingBucket(counts: { gets: number }): R2Bucket {
  return new Proxy(env.BLOCKS, {
    get(target, prop) {
      const v = Reflect.get(target, prop);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        if (prop === "get") counts.gets++;
        return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
}

describe("select after a flush", () => {
  it("reads flushed chunks from R2 once, then from the chunk cache, and the heads send none", async () => {
    const tenant = "select-cache";
    const d: TestSeries[] = Array.from({ length: 20 }, (_, i) => ({
      labels: { __name__: "cached", i: String(i) },
      samples: Array.from({ length: 30 }, (_, k) => [T0 + k * 60_000, i * 100 + k] as [number, number]),
    }));
    expect((await pushV1(d, { tenant })).status).toBe(204);
    expect((await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } })).status).toBe(204);
    const m = [{ type: MatchType.EQ, name: "__name__", value: "cached" }];

    // Every chunk is marked flushed (and retained): the heads leave them to R2.
    const head = await selectFromIngesters(env, tenant, m, 0, NOW, new Semaphore(6));
    expect(head.length).toBe(0);

    const counts = { gets: 0 };
    const e = { ...env, BLOCKS: countingBucket(counts) };
    const first = await select(e, tenant, m, 0, NOW, new Semaphore(6));
    expect(asMap(first.map((s) => toSamples(s, 0, NOW)))).toEqual(expected(d));
    const afterFirst = counts.gets;
    const second = await select(e, tenant, m, 0, NOW, new Semaphore(6));
    expect(asMap(second.map((s) => toSamples(s, 0, NOW)))).toEqual(expected(d));
    // Indexes and chunks are both cached in the isolate now: no GET at all.
    expect(counts.gets - afterFirst).toBe(0);
  });
});
