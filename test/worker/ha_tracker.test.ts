// HA-pair de-duplication (Cortex's HA tracker): two "Prometheus replicas" push the
// same series with different __replica__ labels; only the elected one's samples are
// stored (without the replica label), the other is answered 202. Failover after the
// failover timeout is driven with test clocks in the tenant DO and in this isolate's
// election cache; everything else (Worker, tenant DO, ingester DOs, SQLite) is real.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { asMap, eq, pushV1, pushV2, remoteRead, type TestSeries } from "./helpers";
import { haTracker } from "../../src/distributor/ha";
import { tenantRings, tenantStub } from "../../src/distributor/tenant_ring";
import type { TenantControl } from "../../durable-objects/tenant";
import type { SeriesSamples } from "../../src/proto/types";

const NOW = Date.now();
const T0 = NOW - 3600_000;
const SEC = 1000;

/** The simulated time of the HA tracker (tenant DO and this isolate); sample timestamps are separate. */
let clock = NOW;

async function setTenantClock(tenant: string): Promise<void> {
  await runInDurableObject(tenantStub(env, tenant), (inst: TenantControl) => {
    inst.clock = () => clock;
  });
}

beforeEach(async () => {
  clock = NOW;
  haTracker.clock = () => clock;
  haTracker.clear();
  await setTenantClock("ha");
});

afterEach(() => {
  haTracker.clock = () => Date.now();
  haTracker.clear();
});

function series(cluster: string, replica: string, t: number, v: number, extra: Record<string, string> = {}): TestSeries[] {
  return [
    { labels: { __name__: "up", cluster, __replica__: replica, job: "node", ...extra }, samples: [[t, v]] },
    { labels: { __name__: "scrape_samples", cluster, __replica__: replica, job: "node", ...extra }, samples: [[t, v * 10]] },
  ];
}

async function readCluster(tenant: string, label: string, cluster: string): Promise<SeriesSamples[]> {
  const [r] = await remoteRead([{ matchers: [eq(label, cluster)], startMs: 0, endMs: NOW + 3600_000 }], tenant);
  return r;
}

async function stats(tenant: string) {
  // A ring fetch carries this isolate's pending counts (refusals served from its cache) to the DO.
  await tenantRings.fresh(env, tenant);
  return tenantStub(env, tenant).haStats();
}

describe("HA tracker", () => {
  it("stores only the elected replica's samples, answers the other 202, and drops the replica label", async () => {
    const a = await pushV1(series("c1", "a", T0, 1), { tenant: "ha" });
    expect(a.status).toBe(204);
    const b = await pushV1(series("c1", "b", T0 + 5 * SEC, 2), { tenant: "ha" });
    expect(b.status).toBe(202);
    expect(await b.text()).toBe("replicas did not match, rejecting sample: replica=b, elected=a\n");
    // Remote write 2.0 is de-duplicated the same way, with an honest written count.
    const b2 = await pushV2(series("c1", "b", T0 + 6 * SEC, 3), { tenant: "ha" });
    expect(b2.status).toBe(202);
    expect(b2.headers.get("X-Prometheus-Remote-Write-Samples-Written")).toBe("0");
    expect((await pushV1(series("c1", "a", T0 + 15 * SEC, 4), { tenant: "ha" })).status).toBe(204);

    const got = asMap(await readCluster("ha", "cluster", "c1"));
    expect([...got.keys()]).toEqual([
      JSON.stringify(["__name__", "scrape_samples", "cluster", "c1", "job", "node"]),
      JSON.stringify(["__name__", "up", "cluster", "c1", "job", "node"]),
    ]);
    const up = got.get(JSON.stringify(["__name__", "up", "cluster", "c1", "job", "node"]))!;
    expect(up.map(([t]) => t)).toEqual([T0, T0 + 15 * SEC]);

    const s = await stats("ha");
    const c1 = s.clusters.find((c) => c.cluster === "c1")!;
    expect(c1.replica).toBe("a");
    // Two refused requests of two samples each.
    expect(c1.dedupedSamples).toBe(4);
    expect(c1.electedReplicaChanges).toBe(0);
  });

  it("fails over to the other replica once the elected one has been silent for the failover timeout", async () => {
    expect((await pushV1(series("c2", "a", T0, 1), { tenant: "ha" })).status).toBe(204);
    clock += 10 * SEC;
    expect((await pushV1(series("c2", "b", T0 + 10 * SEC, 2), { tenant: "ha" })).status).toBe(202);
    clock += 19 * SEC; // a silent for 29 s: not yet
    expect((await pushV1(series("c2", "b", T0 + 29 * SEC, 3), { tenant: "ha" })).status).toBe(202);
    clock += 2 * SEC; // 31 s
    expect((await pushV1(series("c2", "b", T0 + 31 * SEC, 4), { tenant: "ha" })).status).toBe(204);
    // The old replica is now the one refused, straight away.
    clock += 1 * SEC;
    const a = await pushV1(series("c2", "a", T0 + 32 * SEC, 5), { tenant: "ha" });
    expect(a.status).toBe(202);
    expect(await a.text()).toContain("replica=a, elected=b");
    clock += 10 * SEC;
    expect((await pushV1(series("c2", "b", T0 + 42 * SEC, 6), { tenant: "ha" })).status).toBe(204);

    const got = asMap(await readCluster("ha", "cluster", "c2"));
    const up = got.get(JSON.stringify(["__name__", "up", "cluster", "c2", "job", "node"]))!;
    // One series across the failover: a's sample, then b's.
    expect(up.map(([t]) => t)).toEqual([T0, T0 + 31 * SEC, T0 + 42 * SEC]);
    expect(got.size).toBe(2);

    const c2 = (await stats("ha")).clusters.find((c) => c.cluster === "c2")!;
    expect(c2.replica).toBe("b");
    expect(c2.electedReplicaChanges).toBe(1);
    expect(c2.dedupedSamples).toBe(6);
  });

  it("keeps the elected replica while both send, asking the tenant DO far less than once a push", async () => {
    const checksBefore = haTracker.checks;
    let pushes = 0;
    // Two minutes, both replicas sending every 10 s (4x the failover timeout).
    for (let i = 0; i < 12; i++) {
      const t = T0 + i * 10 * SEC;
      expect((await pushV1(series("c3", "a", t, i), { tenant: "ha" })).status).toBe(204);
      expect((await pushV1(series("c3", "b", t + 2 * SEC, 100 + i), { tenant: "ha" })).status).toBe(202);
      pushes += 2;
      clock += 10 * SEC;
    }
    const checks = haTracker.checks - checksBefore;
    expect(checks).toBeGreaterThan(0);
    expect(checks).toBeLessThan(pushes / 2);

    const got = asMap(await readCluster("ha", "cluster", "c3"));
    const up = got.get(JSON.stringify(["__name__", "up", "cluster", "c3", "job", "node"]))!;
    expect(up.map(([t]) => t)).toEqual(Array.from({ length: 12 }, (_, i) => T0 + i * 10 * SEC));
    const c3 = (await stats("ha")).clusters.find((c) => c.cluster === "c3")!;
    expect(c3.replica).toBe("a");
    expect(c3.electedReplicaChanges).toBe(0);
    expect(c3.dedupedSamples).toBe(24);
  });

  it("keeps elections in SQLite: a restarted tenant DO and a fresh isolate still refuse the other replica", async () => {
    expect((await pushV1(series("c4", "a", T0, 1), { tenant: "ha" })).status).toBe(204);
    await evictDurableObject(tenantStub(env, "ha"));
    await setTenantClock("ha");
    haTracker.clear();
    clock += 5 * SEC;
    expect((await pushV1(series("c4", "b", T0 + 5 * SEC, 2), { tenant: "ha" })).status).toBe(202);
    expect((await pushV1(series("c4", "a", T0 + 6 * SEC, 3), { tenant: "ha" })).status).toBe(204);
  });

  it("stores requests with only one of the labels unchanged, as Cortex does, and counts them as non-HA", async () => {
    const before = (await stats("ha")).nonHaSamples;
    const onlyReplica: TestSeries[] = [{ labels: { __name__: "solo", __replica__: "r1" }, samples: [[T0, 1]] }];
    const onlyCluster: TestSeries[] = [{ labels: { __name__: "solo", cluster: "c5" }, samples: [[T0, 2]] }];
    expect((await pushV1(onlyReplica, { tenant: "ha" })).status).toBe(204);
    expect((await pushV1(onlyCluster, { tenant: "ha" })).status).toBe(204);
    const got = asMap((await remoteRead([{ matchers: [eq("__name__", "solo")], startMs: 0, endMs: NOW }], "ha"))[0]);
    expect([...got.keys()].sort()).toEqual([JSON.stringify(["__name__", "solo", "__replica__", "r1"]), JSON.stringify(["__name__", "solo", "cluster", "c5"])].sort());
    expect((await stats("ha")).nonHaSamples - before).toBe(2);
  });

  it("decides by the first series only and removes the replica label from every series (Cortex)", async () => {
    const mixed: TestSeries[] = [
      { labels: { __name__: "first", cluster: "c6", __replica__: "a" }, samples: [[T0, 1]] },
      { labels: { __name__: "second", __replica__: "zzz" }, samples: [[T0, 2]] },
    ];
    expect((await pushV1(mixed, { tenant: "ha" })).status).toBe(204);
    const got = asMap((await remoteRead([{ matchers: [eq("__name__", "second")], startMs: 0, endMs: NOW }], "ha"))[0]);
    expect([...got.keys()]).toEqual([JSON.stringify(["__name__", "second"])]);
  });

  it("stores both replicas as separate series for a tenant without acceptHaSamples", async () => {
    expect((await pushV1(series("c7", "a", T0, 1), { tenant: "no-ha" })).status).toBe(204);
    expect((await pushV1(series("c7", "b", T0, 2), { tenant: "no-ha" })).status).toBe(204);
    const got = asMap(await readCluster("no-ha", "cluster", "c7"));
    expect(got.size).toBe(4);
  });

  it("uses the tenant's label names and refuses clusters beyond haMaxClusters with 400", async () => {
    await setTenantClock("ha_custom");
    const s = (cluster: string, replica: string, v: number): TestSeries[] => [
      { labels: { __name__: "up", prom_cluster: cluster, prom_replica: replica }, samples: [[T0 + v * SEC, v]] },
    ];
    expect((await pushV1(s("x", "1", 1), { tenant: "ha_custom" })).status).toBe(204);
    expect((await pushV1(s("x", "2", 2), { tenant: "ha_custom" })).status).toBe(202);
    const tooMany = await pushV1(s("y", "1", 3), { tenant: "ha_custom" });
    expect(tooMany.status).toBe(400);
    expect(await tooMany.text()).toContain("too many HA clusters (limit: 1, haMaxClusters)");
    const got = asMap(await readCluster("ha_custom", "prom_cluster", "x"));
    expect([...got.keys()]).toEqual([JSON.stringify(["__name__", "up", "prom_cluster", "x"])]);
    // A cluster silent for 30 min is forgotten and no longer counts (Cortex's cleanup).
    clock += 31 * 60 * SEC;
    expect((await pushV1(s("y", "1", 4), { tenant: "ha_custom" })).status).toBe(204);
  });
});
