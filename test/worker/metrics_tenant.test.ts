// The tenant control objects' counts on /metrics and the status page, inside workerd
// with the real Worker, tenant Durable Objects, shards and R2: the HA tracker's
// elections and counts after pushes from two replicas (failover driven by test
// clocks, as test/worker/ha_tracker.test.ts does), the retention sweep's deletions
// and failures (test/worker/retention.test.ts), and open live tails
// (test/worker/tail_limit.test.ts); query counts and latencies sent by the isolates
// (src/observability/queries.ts); a control object that does not answer is left
// out and counted, and the scrape still answers.
//
// Tenants and their limits come from vitest.config.mts (storage is per test file, so
// the other files' tenants are reused): "ha" (acceptHaSamples), "ret_sweep" (24 h
// retention, 2 shards), "tail_cap" (2 tails, 1 shard).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { pushV1, remoteRead, eq, type TestSeries } from "./helpers";
import { scrape, scrapeWithTenant, value, type ParsedFamily } from "./exposition_reader";
import { haTracker } from "../../src/distributor/ha";
import { tenantStub } from "../../src/distributor/tenant_ring";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { listBlocks, listBlocksUnder, r2Ops, type ListedBlock } from "../../src/storage/blocks";
import { tenantLogBlocksPrefix } from "../../src/storage/logs/blocks";
import { duration } from "../../src/http/status_page";
import type { TenantControl } from "../../durable-objects/tenant";
import { QueryAccumulator, queryAccumulator, SEND_EVERY_MS } from "../../src/observability/queries";

const SEC = 1000;
const HOUR = 3600_000;
const NOW = Date.now();
const T0 = NOW - HOUR;
const ns = (ms: number): string => (BigInt(Math.floor(ms)) * 1_000_000n).toString();

/** The HA tracker's simulated time (tenant DO and this isolate's election cache). */
let clock = NOW;

function haSeries(cluster: string, replica: string, t: number): TestSeries[] {
  return [
    { labels: { __name__: "up", cluster, __replica__: replica, job: "node" }, samples: [[t, 1]] },
    { labels: { __name__: "scrape_samples", cluster, __replica__: replica, job: "node" }, samples: [[t, 10]] },
  ];
}

async function push(tenant: string, series: TestSeries[], status: number): Promise<void> {
  const res = await pushV1(series, { tenant });
  expect(res.status, await res.text()).toBe(status);
}

async function pushLogs(tenant: string, streams: { stream: Record<string, string>; values: [string, string][] }[]): Promise<void> {
  const res = await SELF.fetch("http://x/loki/api/v1/push", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant },
    body: JSON.stringify({ streams }),
  });
  expect(res.status, await res.text()).toBe(204);
}

async function flush(tenant: string): Promise<void> {
  const res = await SELF.fetch("http://x/flush", { method: "POST", headers: { "X-Scope-OrgID": tenant } });
  expect(res.status, await res.text()).toBe(204);
}

async function statusPage(): Promise<string> {
  const res = await SELF.fetch("http://x/status");
  expect(res.status).toBe(200);
  return res.text();
}

/** A family's samples of one tenant, as label sets with values (sorted), for exact comparisons. */
function samplesOf(f: Map<string, ParsedFamily>, name: string, tenant: string, label = "user"): [Record<string, string>, number][] {
  return (f.get(name)?.samples ?? [])
    .filter((s) => s.labels[label] === tenant)
    .map((s): [Record<string, string>, number] => [s.labels, s.value])
    .sort((a, b) => (JSON.stringify(a[0]) < JSON.stringify(b[0]) ? -1 : 1));
}

/** The cells of the tenant's HA row for `cluster` on the status page. */
function haRow(html: string, tenant: string, cluster: string): string[] {
  const row = new RegExp(`<tr class="ha-row" data-tenant="${tenant}" data-cluster="${cluster}">([\\s\\S]*?)</tr>`).exec(html);
  expect(row, `HA row ${tenant}/${cluster}`).not.toBeNull();
  return [...row![1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => m[1]);
}

function controlPanel(html: string, tenant: string): string {
  // The panel ends where the tenant's recent errors begin.
  const m = new RegExp(`<div class="control" data-tenant="${tenant}">([\\s\\S]*?)</div>(?=<p class="dim small">No recent errors|<details class="errors")`).exec(html);
  expect(m, `control panel of ${tenant}`).not.toBeNull();
  return m![1];
}

const HA_FAMILIES = [
  "cortex_distributor_deduped_samples_total",
  "cortex_distributor_non_ha_samples_received_total",
  "cortex_ha_tracker_elected_replica_changes_total",
  "cortex_ha_tracker_elected_replica_timestamp_seconds",
  "cortex_ha_tracker_elected_replica_status",
];

describe("HA tracker on /metrics", () => {
  const tenant = "ha";

  beforeAll(async () => {
    clock = NOW;
    haTracker.clock = () => clock;
    haTracker.clear();
    await runInDurableObject(tenantStub(env, tenant), (inst: TenantControl) => {
      inst.clock = () => clock;
    });
  });

  afterAll(() => {
    haTracker.clock = () => Date.now();
    haTracker.clear();
  });

  it("counts deduped samples per cluster, elected replica changes, non-HA samples, and shows each cluster's elected replica and when it was last heard", async () => {
    // Cluster c1: replica a elected at NOW; b refused (2 samples) from this isolate's cache.
    await push(tenant, haSeries("c1", "a", T0), 204);
    await push(tenant, haSeries("c1", "b", T0), 202);
    // Cluster c2, as test/worker/ha_tracker.test.ts drives a failover: a elected at NOW,
    // b refused at +10 s (cache) and +29 s (the DO), elected at +31 s; then a refused at +32 s (cache).
    await push(tenant, haSeries("c2", "a", T0), 204);
    clock = NOW + 10 * SEC;
    await push(tenant, haSeries("c2", "b", T0 + 10 * SEC), 202);
    clock = NOW + 29 * SEC;
    await push(tenant, haSeries("c2", "b", T0 + 29 * SEC), 202);
    clock = NOW + 31 * SEC;
    await push(tenant, haSeries("c2", "b", T0 + 31 * SEC), 204);
    clock = NOW + 32 * SEC;
    await push(tenant, haSeries("c2", "a", T0 + 32 * SEC), 202);
    // Without the replica label, and without either label: accepted as they are, counted as non-HA (3 samples).
    await push(tenant, [{ labels: { __name__: "up", cluster: "c1", job: "solo" }, samples: [[T0, 1], [T0 + SEC, 1]] }], 204);
    await push(tenant, [{ labels: { __name__: "lonely", job: "solo" }, samples: [[T0, 1]] }], 204);

    const f = await scrapeWithTenant(tenant);
    const c1 = { user: tenant, cluster: "c1" };
    const c2 = { user: tenant, cluster: "c2" };
    expect(samplesOf(f, "cortex_distributor_deduped_samples_total", tenant)).toEqual([
      [c1, 2],
      [c2, 6],
    ]);
    expect(samplesOf(f, "cortex_ha_tracker_elected_replica_changes_total", tenant)).toEqual([
      [c1, 0],
      [c2, 1],
    ]);
    // Cortex's gauge is the elected replica's ReceivedAt in whole seconds.
    expect(samplesOf(f, "cortex_ha_tracker_elected_replica_timestamp_seconds", tenant)).toEqual([
      [c1, Math.floor(NOW / 1000)],
      [c2, Math.floor((NOW + 31 * SEC) / 1000)],
    ]);
    expect(samplesOf(f, "cortex_ha_tracker_elected_replica_status", tenant)).toEqual([
      [{ ...c1, replica: "a" }, 1],
      [{ ...c2, replica: "b" }, 1],
    ]);
    expect(samplesOf(f, "cortex_distributor_non_ha_samples_received_total", tenant)).toEqual([[{ user: tenant }, 3]]);
    // Cortex counts samples_in before the HA tracker: the 9 stored and the 8 deduped.
    expect(value(f, "cortex_distributor_samples_in_total", { user: tenant })).toBe(9 + 8);
    expect(f.get("cortex_distributor_deduped_samples_total")!.type).toBe("counter");
    expect(f.get("cortex_ha_tracker_elected_replica_timestamp_seconds")!.type).toBe("gauge");
    // Stored: a's first samples of each cluster, b's after the failover, and the non-HA ones; none of the refused.
    expect(value(f, "cortex_distributor_received_samples_total", { user: tenant })).toBe(2 + 2 + 2 + 3);
    // Retention is off for this tenant; its control object reports no tails.
    expect(value(f, "edge_ingester_retention_period_seconds", { user: tenant })).toBe(0);
    expect(samplesOf(f, "loki_querier_tail_active", tenant, "tenant")).toEqual([[{ tenant }, 0]]);
    expect(value(f, "edge_ingester_metrics_collection_failed_shards", { kind: "control" })).toBe(0);

    const html = await statusPage();
    const row1 = haRow(html, tenant, "c1");
    expect(row1[0]).toBe("c1");
    expect(row1[1]).toBe("a");
    expect(row1[2]).toContain(`data-ms="${NOW}"`);
    expect(row1.slice(3)).toEqual(["0", "2"]);
    const row2 = haRow(html, tenant, "c2");
    expect(row2[1]).toBe("b");
    expect(row2[2]).toContain(`data-ms="${NOW + 31 * SEC}"`);
    expect(row2.slice(3)).toEqual(["1", "6"]);
    const panel = controlPanel(html, tenant);
    expect(panel).toContain(`<span class="non-ha">3</span>`);
    expect(panel).toContain(`<span class="retention-period">forever</span>`);
  });

  it("keeps every HA count across the eviction of the tenant's control object", async () => {
    const before = await scrape();
    await evictDurableObject(tenantStub(env, tenant));
    const after = await scrape();
    for (const name of HA_FAMILIES) expect(samplesOf(after, name, tenant), name).toEqual(samplesOf(before, name, tenant));
    expect(samplesOf(after, "cortex_distributor_deduped_samples_total", tenant).length).toBe(2);
  });

  it("leaves out what a control object does not answer, counts it, and still answers; nothing is lost once it answers again", async () => {
    const before = await scrape();
    // haStats fails (its elections are gone from memory); retention and tail stats still answer.
    let saved: unknown = null;
    await runInDurableObject(tenantStub(env, tenant), (inst: TenantControl) => {
      const i = inst as unknown as { elections: unknown };
      saved = i.elections;
      i.elections = null;
    });
    let f = await scrape();
    expect(value(f, "edge_ingester_metrics_collection_failed_shards", { kind: "control" })).toBe(1);
    for (const name of HA_FAMILIES) expect(samplesOf(f, name, tenant), name).toEqual([]);
    expect(samplesOf(f, "loki_querier_tail_active", tenant, "tenant")).toEqual([[{ tenant }, 0]]);
    expect(value(f, "cortex_distributor_received_samples_total", { user: tenant })).toBe(9);
    let html = await statusPage();
    expect(controlPanel(html, tenant)).toMatch(/did not answer in full: <code>tenant control: haStats: [^<]+<\/code>/);
    expect(html).toContain("1 tenant control object(s) did not answer in full");
    expect(html).not.toContain(`class="ha-row" data-tenant="${tenant}"`);

    // The ring itself cannot be read: the configured shards stand in, the scrape answers, user_stats says 503.
    let entries: unknown = null;
    await runInDurableObject(tenantStub(env, tenant), (inst: TenantControl) => {
      const i = inst as unknown as { elections: unknown; entries: unknown };
      i.elections = saved;
      entries = i.entries;
      i.entries = null;
    });
    f = await scrape();
    expect(value(f, "edge_ingester_metrics_collection_failed_shards", { kind: "control" })).toBe(1);
    expect(samplesOf(f, "cortex_ingester_memory_series", tenant).map(([l]) => l.shard).sort()).toEqual(
      Array.from({ length: DEFAULT_LIMITS.shards }, (_, i) => String(i)),
    );
    expect(value(f, "cortex_distributor_received_samples_total", { user: tenant })).toBe(9);
    html = await statusPage();
    expect(controlPanel(html, tenant)).toContain("The tenant's ring could not be read; its configured shard count is shown: <code>the shard ring of tenant ha could not be read (retry): ");
    const stats = await SELF.fetch("http://x/api/v1/user_stats", { headers: { "X-Scope-OrgID": tenant } });
    expect(stats.status).toBe(503);
    expect(await stats.text()).toMatch(/tenant ring\(s\) could not be read \(retry\): ha: /);

    await runInDurableObject(tenantStub(env, tenant), (inst: TenantControl) => {
      (inst as unknown as { entries: unknown }).entries = entries;
    });
    const back = await scrape();
    expect(value(back, "edge_ingester_metrics_collection_failed_shards", { kind: "control" })).toBe(0);
    for (const name of HA_FAMILIES) expect(samplesOf(back, name, tenant), name).toEqual(samplesOf(before, name, tenant));
  });
});

describe("retention on /metrics", () => {
  const tenant = "ret_sweep"; // retentionPeriodMs 24 h, 2 shards
  const OLD = NOW - 48 * HOUR;
  const NEW = NOW - HOUR;
  const series = (name: string, t0: number): TestSeries[] =>
    Array.from({ length: 3 }, (_, i) => ({ labels: { __name__: name, instance: `h${i}` }, samples: [[t0, i], [t0 + 15_000, i + 1]] }));
  const sum = (blocks: ListedBlock[]) => blocks.reduce((n, b) => n + b.size, 0);

  it("counts blocks and bytes deleted by kind, the last successful and next sweep, and failed sweeps with their error", async () => {
    await push(tenant, series("m_old", OLD), 204);
    await pushLogs(tenant, [{ stream: { app: "old" }, values: [[ns(OLD), "old line 1"], [ns(OLD + 1000), "old line 2"]] }]);
    await flush(tenant);
    await push(tenant, series("m_new", NEW), 204);
    await pushLogs(tenant, [{ stream: { app: "new" }, values: [[ns(NEW), "new line"]] }]);
    await flush(tenant);

    // Before any sweep: nothing deleted, nothing failed, the period is exposed, no last run yet.
    let f = await scrapeWithTenant(tenant);
    expect(samplesOf(f, "cortex_compactor_blocks_cleaned_total", tenant)).toEqual([
      [{ user: tenant, kind: "logs" }, 0],
      [{ user: tenant, kind: "metrics" }, 0],
    ]);
    expect(samplesOf(f, "cortex_compactor_block_cleanup_failed_total", tenant)).toEqual([[{ user: tenant }, 0]]);
    expect(samplesOf(f, "cortex_compactor_block_cleanup_last_successful_run_timestamp_seconds", tenant)).toEqual([]);
    expect(value(f, "edge_ingester_retention_period_seconds", { user: tenant })).toBe(86_400);
    const armed = (await tenantStub(env, tenant).retentionStats()).nextSweepAt;
    expect(armed).not.toBeNull();
    expect(value(f, "edge_ingester_retention_next_sweep_timestamp_seconds", { user: tenant })).toBe(armed! / 1000);

    const cutoff = Date.now() - 24 * HOUR;
    const oldMetrics = (await listBlocks(env.BLOCKS, tenant, -Infinity, Infinity)).filter((b) => b.meta.maxTime < cutoff);
    const oldLogs = (await listBlocksUnder(env.BLOCKS, tenantLogBlocksPrefix(tenant), -Infinity, Infinity)).filter((b) => b.meta.maxTime < cutoff);
    expect(oldMetrics.length).toBeGreaterThan(0);
    expect(oldLogs.length).toBeGreaterThan(0);

    const r2 = (m: Map<string, ParsedFamily>, op: string, family = "cortex_r2_operations_total") => value(m, family, { component: "compactor", op });
    const r2Before = { list: r2(f, "list"), delete: r2(f, "delete"), failed: r2(f, "list", "cortex_r2_operation_failures_total") };
    const isolateLists = r2Ops.lists;
    expect(await runDurableObjectAlarm(tenantStub(env, tenant))).toBe(true);
    // The sweep's R2 calls are not this isolate's querier reads (the object may share the test's isolate).
    expect(r2Ops.lists).toBe(isolateLists);
    const st = await tenantStub(env, tenant).retentionStats();
    expect(st.lastSweepAt).not.toBeNull();
    f = await scrape();
    expect(samplesOf(f, "cortex_compactor_blocks_cleaned_total", tenant)).toEqual([
      [{ user: tenant, kind: "logs" }, oldLogs.length],
      [{ user: tenant, kind: "metrics" }, oldMetrics.length],
    ]);
    expect(samplesOf(f, "cortex_compactor_blocks_cleaned_bytes_total", tenant)).toEqual([
      [{ user: tenant, kind: "logs" }, sum(oldLogs)],
      [{ user: tenant, kind: "metrics" }, sum(oldMetrics)],
    ]);
    expect(value(f, "cortex_compactor_block_cleanup_failed_total", { user: tenant })).toBe(0);
    expect(value(f, "cortex_compactor_block_cleanup_last_successful_run_timestamp_seconds", { user: tenant })).toBe(st.lastSweepAt! / 1000);
    expect(value(f, "edge_ingester_retention_next_sweep_timestamp_seconds", { user: tenant })).toBe(st.nextSweepAt! / 1000);
    // Per kind one list (its first page reaches the newer blocks) and one delete of the expired ones.
    expect([r2(f, "list") - r2Before.list, r2(f, "delete") - r2Before.delete]).toEqual([2, 2]);

    let html = await statusPage();
    let panel = controlPanel(html, tenant);
    expect(panel).toContain(`<span class="retention-period">1d</span>`);
    expect(panel).toContain(`data-metrics-blocks="${oldMetrics.length}" data-logs-blocks="${oldLogs.length}"`);
    expect(panel).toContain(`data-ms="${st.lastSweepAt}"`);
    expect(panel).toContain(`data-ms="${st.nextSweepAt}"`);
    // Retention and tails, but no HA table: this tenant has HA tracking off and no cluster.
    expect(panel).not.toContain(`<table class="ha">`);

    // R2 refuses the next sweep: counted, the error shown; the last success stays.
    let failing = true;
    await runInDurableObject(tenantStub(env, tenant), (inst: TenantControl) => {
      const real = inst.bucket;
      inst.bucket = new Proxy(real, {
        get(target, prop) {
          if (prop === "list" && failing) return async () => { throw new Error("injected R2 list failure"); };
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    });
    try {
      expect(await runDurableObjectAlarm(tenantStub(env, tenant))).toBe(true);
      const failed = await tenantStub(env, tenant).retentionStats();
      expect(failed.failures).toBe(1);
      f = await scrape();
      expect(value(f, "cortex_compactor_block_cleanup_failed_total", { user: tenant })).toBe(1);
      expect(value(f, "cortex_compactor_block_cleanup_last_successful_run_timestamp_seconds", { user: tenant })).toBe(st.lastSweepAt! / 1000);
      expect(value(f, "edge_ingester_retention_next_sweep_timestamp_seconds", { user: tenant })).toBe(failed.nextSweepAt! / 1000);
      expect(value(f, "cortex_compactor_blocks_cleaned_total", { user: tenant })).toBe(oldMetrics.length + oldLogs.length);
      // The refused list was counted (before it was made) and as failed; nothing was deleted.
      expect([r2(f, "list") - r2Before.list, r2(f, "delete") - r2Before.delete, r2(f, "list", "cortex_r2_operation_failures_total") - r2Before.failed]).toEqual([3, 2, 1]);
      // Persisted in the control object: its eviction loses none of them.
      await evictDurableObject(tenantStub(env, tenant));
      const evicted = await scrape();
      expect([r2(evicted, "list") - r2Before.list, r2(evicted, "delete") - r2Before.delete, r2(evicted, "list", "cortex_r2_operation_failures_total") - r2Before.failed]).toEqual([3, 2, 1]);
      html = await statusPage();
      panel = controlPanel(html, tenant);
      expect(panel).toMatch(/sweeps failed<\/span> <span class="warn">1<\/span>/);
      expect(panel).toContain("injected R2 list failure");
    } finally {
      failing = false;
    }
  });
});

describe("live tails on /metrics", () => {
  const tenant = "tail_cap"; // maxConcurrentTailRequests 2, 1 shard

  const openCount = async (): Promise<number> => (await tenantStub(env, tenant).tailStats()).open;
  async function untilOpen(n: number): Promise<void> {
    // A bound on event-loop turns (the close reaches the tenant DO after the socket's close event), not a timing assertion.
    for (let i = 0; i < 500 && (await openCount()) !== n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await openCount()).toBe(n);
  }

  it("shows the tenant's open tails against its cap, and 0 once they close", async () => {
    // The tenant is listed once a shard has written.
    await push(tenant, [{ labels: { __name__: "tailing", job: "x" }, samples: [[NOW - 10_000, 1]] }], 204);
    await scrapeWithTenant(tenant);

    const res = await SELF.fetch(`http://x/loki/api/v1/tail?query=${encodeURIComponent('{app="metrics-tenant"}')}`, { headers: { Upgrade: "websocket", "X-Scope-OrgID": tenant } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
    ws.accept();
    try {
      await untilOpen(1);
      const f = await scrape();
      expect(samplesOf(f, "loki_querier_tail_active", tenant, "tenant")).toEqual([[{ tenant }, 1]]);
      expect(f.get("loki_querier_tail_active")!.type).toBe("gauge");
      // HA tracking is off for this tenant and it has no cluster: no HA series.
      for (const name of HA_FAMILIES) expect(samplesOf(f, name, tenant), name).toEqual([]);
      const panel = controlPanel(await statusPage(), tenant);
      expect(panel).toContain(`<span class="tails" data-open="1" data-limit="2">1 / 2</span>`);
    } finally {
      ws.close(1000, "done");
      await closed;
    }
    await untilOpen(0);
    expect(samplesOf(await scrape(), "loki_querier_tail_active", tenant, "tenant")).toEqual([[{ tenant }, 0]]);
  });
});

describe("status page durations", () => {
  it("writes a retention period in its two largest units", () => {
    expect([duration(0), duration(30 * SEC), duration(15 * 60 * SEC), duration(24 * HOUR), duration(7 * 24 * HOUR), duration(36 * HOUR), duration(HOUR + 90 * SEC), duration(1500)]).toEqual([
      "0",
      "30s",
      "15m",
      "1d",
      "7d",
      "1d12h",
      "1h1m",
      "1s",
    ]);
  });
});

describe("queries on /metrics", () => {
  const tenant = "q_live";
  const other = "q_two";
  const get = async (path: string, status: number, orgId = tenant): Promise<void> => {
    const res = await SELF.fetch(`http://x${path}`, { headers: { "X-Scope-OrgID": orgId } });
    expect(res.status, `${path}: ${await res.text()}`).toBe(status);
  };
  const q = encodeURIComponent;

  beforeAll(async () => {
    // Only listed tenants are scraped: both write once.
    await push(tenant, [{ labels: { __name__: "up", job: "q" }, samples: [[NOW - 60_000, 1]] }], 204);
    await push(other, [{ labels: { __name__: "up", job: "q2" }, samples: [[NOW - 60_000, 1]] }], 204);
    await scrapeWithTenant(tenant);
    await scrapeWithTenant(other);
  });

  it("counts every query of a tenant by API and outcome, sends once per interval per isolate, and a scrape sees them all", async () => {

    let clockNow = NOW;
    queryAccumulator.clock = () => clockNow;
    const sendsBefore = queryAccumulator.sends;
    try {
      const t = (NOW - 30_000) / 1000;
      await get(`/api/v1/query?query=up&time=${t}`, 200);
      await get(`/api/v1/query?query=${q("sum(")}`, 400);
      await get(`/api/v1/query_range?query=up&start=${t - 300}&end=${t}&step=15`, 200);
      await get(`/api/v1/labels`, 200);
      await get(`/api/v1/series?${q("match[]")}=up`, 200);
      expect((await remoteRead([{ matchers: [eq("__name__", "up")], startMs: NOW - 3_600_000, endMs: NOW }], tenant))[0].length).toBe(1);
      await get(`/loki/api/v1/query_range?query=${q('{app="none"}')}`, 200);
      await get(`/loki/api/v1/query?query=${q("{app=")}`, 400);
      // Federated: counted for the joined user (tenants sorted, as Mimir's JoinTenantIDs), kept by the first tenant's object.
      await get(`/api/v1/query?query=up&time=${t}`, 200, `${other}|${tenant}`);
      // Not queries: a 405 on a query path, an admin route.
      expect((await SELF.fetch("http://x/api/v1/query", { method: "PUT", headers: { "X-Scope-OrgID": tenant } })).status).toBe(405);
      // The first query sent (with ctx.waitUntil), the other nine are held: one request to the control object, not ten.
      expect(queryAccumulator.sends - sendsBefore).toBe(1);

      const f = await scrape();
      const user = { user: tenant };
      expect(samplesOf(f, "cortex_query_frontend_queries_total", tenant)).toEqual([
        [{ ...user, op: "label_names_and_values" }, 1],
        [{ ...user, op: "other" }, 1],
        [{ ...user, op: "query" }, 3],
        [{ ...user, op: "query_range" }, 2],
        [{ ...user, op: "remote_read" }, 1],
      ]);
      expect(samplesOf(f, "cortex_query_frontend_queries_total", `${tenant}|${other}`)).toEqual([[{ user: `${tenant}|${other}`, op: "query" }, 1]]);
      const counts = (f.get("cortex_querier_request_duration_seconds")?.samples ?? [])
        .filter((s) => s.name === "cortex_querier_request_duration_seconds_count" && s.labels.user === tenant)
        .map((s) => `${s.labels.route} ${s.labels.status_code} ${s.value}`)
        .sort();
      expect(counts).toEqual([
        "api_v1_labels 2xx 1",
        "api_v1_query 2xx 1",
        "api_v1_query 4xx 1",
        "api_v1_query_range 2xx 1",
        "api_v1_read 2xx 1",
        "api_v1_series 2xx 1",
        "loki_api_v1_query 4xx 1",
        "loki_api_v1_query_range 2xx 1",
      ]);
      expect(value(f, "cortex_querier_request_duration_seconds_bucket", { ...user, le: "+Inf" })).toBe(8);
      expect(f.get("cortex_querier_request_duration_seconds")!.type).toBe("histogram");
      // The scrape handed over what this isolate held: nothing left to send.
      expect(queryAccumulator.take(tenant)).toBeNull();

      // Within the interval a query is held; once it has passed, the next one sends.
      await get(`/api/v1/labels`, 200);
      expect(queryAccumulator.sends - sendsBefore).toBe(1);
      clockNow += SEND_EVERY_MS;
      await get(`/api/v1/labels`, 200);
      expect(queryAccumulator.sends - sendsBefore).toBe(2);
      await queryAccumulator.settled(tenant);
      expect(queryAccumulator.take(tenant)).toBeNull();
      const stored = await tenantStub(env, tenant).queryStats(null);
      expect(stored.series.find((s) => s.user === tenant && s.route === "api_v1_labels")!.count).toBe(3);
    } finally {
      queryAccumulator.clock = () => Date.now();
    }

    // Persisted: the control object's eviction loses nothing.
    const before = samplesOf(await scrape(), "cortex_query_frontend_queries_total", tenant);
    await evictDurableObject(tenantStub(env, tenant));
    const after = await scrape();
    expect(samplesOf(after, "cortex_query_frontend_queries_total", tenant)).toEqual(before);
    expect(value(after, "cortex_query_frontend_queries_total", { user: tenant, op: "label_names_and_values" })).toBe(3);
  });

  it("adds up the counts of two isolates, bucket by bucket", async () => {
    const a = new QueryAccumulator();
    const b = new QueryAccumulator();
    // Isolate a: 3 instant queries of 3 ms (bucket 0.005), a refused range query of 0.3 s (bucket 0.5).
    for (let i = 0; i < 3; i++) a.observe(other, other, "api_v1_query", 200, 0.003);
    a.observe(other, other, "api_v1_query_range", 400, 0.3);
    // Isolate b: 2 instant queries of 20 ms (bucket 0.025), a Loki range query failing after 30 s (bucket 50).
    for (let i = 0; i < 2; i++) b.observe(other, other, "api_v1_query", 200, 0.02);
    b.observe(other, other, "loki_api_v1_query_range", 503, 30);
    expect(a.due(other) && b.due(other)).toBe(true);
    await Promise.all([a.send(env, other), b.send(env, other)]);
    expect([a.sends, b.sends]).toEqual([1, 1]);

    const f = await scrape();
    const at = (route: string, status: string, le?: string) => ({ user: other, route, status_code: status, ...(le ? { le } : {}) });
    const h = "cortex_querier_request_duration_seconds";
    expect(value(f, `${h}_count`, at("api_v1_query", "2xx"))).toBe(5);
    expect([0.005, 0.01, 0.025, 0.05].map((le) => value(f, `${h}_bucket`, at("api_v1_query", "2xx", String(le))))).toEqual([3, 3, 5, 5]);
    expect(value(f, `${h}_sum`, at("api_v1_query", "2xx"))).toBeCloseTo(3 * 0.003 + 2 * 0.02, 12);
    expect([0.25, 0.5].map((le) => value(f, `${h}_bucket`, at("api_v1_query_range", "4xx", String(le))))).toEqual([0, 1]);
    expect([25, 50, 100].map((le) => value(f, `${h}_bucket`, at("loki_api_v1_query_range", "5xx", String(le))))).toEqual([0, 1, 1]);
    expect(value(f, `${h}_sum`, at("loki_api_v1_query_range", "5xx"))).toBe(30);
    expect(samplesOf(f, "cortex_query_frontend_queries_total", other)).toEqual([
      [{ user: other, op: "query" }, 5],
      [{ user: other, op: "query_range" }, 2],
    ]);
  });
});
