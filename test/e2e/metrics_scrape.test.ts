// Our /metrics scraped by a real Prometheus (Debian's 2.42), and checked by its own
// linter (`promtool check metrics`):
//
//   1. `wrangler dev` runs a frozen bundle; Prometheus scrapes its /metrics every 2 s.
//   2. We push good samples and bad ones (refused by the distributor's validation and
//      by the shards' ordering rules) with remote write, as a client would.
//   3. Prometheus's API must report cortex_distributor_received_samples_total and
//      cortex_discarded_samples_total{reason} equal to exactly what was pushed and
//      refused: the exposition parsed, the names and labels are right, the values exact.
//   4. Queries through our Prometheus API are counted per tenant, by op and outcome
//      (kept in the tenant's control object: src/observability/queries.ts).
//   5. The runtime is SIGKILLed and restarted on the same state: the counters come
//      back unchanged (they live in the shards' and control objects' SQLite), so
//      Prometheus sees no reset.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPrometheus, waitUntil, type PrometheusHandle } from "../support/prometheus";
import { encodeWriteV1, type PromSeries } from "../support/promproto";
import { buildWorkerBundle, startWrangler, type WranglerHandle } from "../support/wrangler";
import { snappyCompress } from "../../src/proto/snappy";

const PROMTOOL = "/usr/bin/promtool";
const TENANT = "scrape-e2e";
const NOW = Date.now();

let bundle: string;
let wrangler: WranglerHandle | null = null;
let prometheus: PrometheusHandle | null = null;

async function push(series: PromSeries[]): Promise<Response> {
  return fetch(`${wrangler!.url}/api/v1/push`, {
    method: "POST",
    body: snappyCompress(encodeWriteV1(series)),
    headers: { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-OrgID": TENANT },
    signal: AbortSignal.timeout(30_000),
  });
}

/** The value Prometheus holds now for an instant query (NaN when it has no series). */
async function promValue(expr: string): Promise<number> {
  const result = await prometheus!.query(expr);
  return result.length === 0 ? NaN : Number(result[0].value[1]);
}

function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(PROMTOOL, ["check", "metrics"], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, output: stdout + stderr });
    });
    child.stdin!.end(text);
  });
}

const good: PromSeries[] = Array.from({ length: 50 }, (_, i) => ({
  labels: { __name__: "scrape_test_metric", idx: String(i) },
  samples: [
    [NOW - 40_000, i],
    [NOW - 30_000, i + 1],
    [NOW - 20_000, i + 2],
    [NOW - 10_000, i + 3],
  ],
}));

beforeAll(async () => {
  expect(existsSync("/usr/bin/prometheus"), "Debian's prometheus is required").toBe(true);
  bundle = await buildWorkerBundle();
  wrangler = await startWrangler({ bundle });
  prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${wrangler.port}`], scrapeInterval: "2s" });
});

afterAll(async () => {
  await prometheus?.stop().catch(() => undefined);
  await wrangler?.stop().catch(() => undefined);
});

describe("Prometheus scrapes /metrics", () => {
  it("reports exactly the samples pushed and the ones discarded, by reason", async () => {
    expect((await push(good)).status).toBe(204); // 200 samples
    const bad: PromSeries[] = [
      { labels: { __name__: "scrape_bad", "bad-label": "x" }, samples: [[NOW - 5000, 1], [NOW - 4000, 1], [NOW - 3000, 1], [NOW - 2000, 1], [NOW - 1000, 1]] },
      { labels: { __name__: "scrape_old", a: "b" }, samples: [[NOW - 30 * 86_400_000, 1], [NOW - 29 * 86_400_000, 1], [NOW - 28 * 86_400_000, 1]] },
      // Older than the series' newest: refused by its shard.
      { labels: { __name__: "scrape_test_metric", idx: "7" }, samples: [[NOW - 35_000, 0], [NOW - 25_000, 0]] },
    ];
    expect((await push(bad)).status).toBe(400);

    const user = `user="${TENANT}"`;
    await waitUntil(
      async () => (await promValue(`sum(cortex_distributor_received_samples_total{${user}})`)) === 202 && (await promValue(`sum(cortex_discarded_samples_total{${user}})`)) === 10,
      60_000,
      async () => `Prometheus holds received=${await promValue(`sum(cortex_distributor_received_samples_total{${user}})`)}, discarded=${await promValue(`sum(cortex_discarded_samples_total{${user}})`)}; log: ${prometheus!.logTail(10)}`,
    );
    expect(await promValue(`cortex_distributor_received_samples_total{${user}}`)).toBe(202);
    expect(await promValue(`cortex_discarded_samples_total{${user},reason="label_name_invalid"}`)).toBe(5);
    expect(await promValue(`cortex_discarded_samples_total{${user},reason="sample_too_old"}`)).toBe(3);
    expect(await promValue(`cortex_discarded_samples_total{${user},reason="sample_out_of_order"}`)).toBe(2);
    expect(await promValue(`sum(cortex_ingester_ingested_samples_total{${user}})`)).toBe(200);
    expect(await promValue(`sum(cortex_ingester_memory_series{${user}})`)).toBe(50);
    // The scrape itself is healthy, and our requests were counted by route.
    expect(await promValue(`up{job="targets"}`)).toBe(1);
    expect(await promValue(`sum(cortex_request_duration_seconds_count{route="api_v1_push",status_code="204"})`)).toBeGreaterThanOrEqual(1);
  });

  it("counts our tenant's queries by op and outcome, as Prometheus scrapes them", async () => {
    const query = async (path: string, status: number) => {
      const res = await fetch(`${wrangler!.url}${path}`, { headers: { "X-Scope-OrgID": TENANT }, signal: AbortSignal.timeout(30_000) });
      expect(res.status, await res.text()).toBe(status);
    };
    const t = (NOW - 10_000) / 1000;
    for (let i = 0; i < 3; i++) await query(`/api/v1/query?query=scrape_test_metric&time=${t}`, 200);
    await query(`/api/v1/query?query=${encodeURIComponent("rate(")}`, 400);
    await query(`/api/v1/query_range?query=scrape_test_metric&start=${t - 60}&end=${t}&step=15`, 200);
    const user = `user="${TENANT}"`;
    await waitUntil(
      async () => (await promValue(`sum(cortex_query_frontend_queries_total{${user}})`)) === 5,
      60_000,
      async () => `Prometheus holds ${await promValue(`sum(cortex_query_frontend_queries_total{${user}})`)} queries; log: ${prometheus!.logTail(10)}`,
    );
    expect(await promValue(`cortex_query_frontend_queries_total{${user},op="query"}`)).toBe(4);
    expect(await promValue(`cortex_query_frontend_queries_total{${user},op="query_range"}`)).toBe(1);
    expect(await promValue(`cortex_querier_request_duration_seconds_count{${user},route="api_v1_query",status_code="2xx"}`)).toBe(3);
    expect(await promValue(`cortex_querier_request_duration_seconds_count{${user},route="api_v1_query",status_code="4xx"}`)).toBe(1);
    // Cortex's error-ratio alerts match status_code=~"5..": the class values fit them.
    expect(await promValue(`sum(cortex_querier_request_duration_seconds_count{${user},status_code=~"4.."})`)).toBe(1);
  });

  it("promtool check metrics accepts the exposition", async () => {
    const res = await fetch(`${wrangler!.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    expect(text).toContain("# TYPE cortex_request_duration_seconds histogram");
    expect(text).toContain("# TYPE cortex_querier_request_duration_seconds histogram");
    const { code, output } = await promtoolCheck(text);
    expect(output.trim(), output).toBe("");
    expect(code).toBe(0);
  });

  it("counters survive a SIGKILL of the runtime: Prometheus sees the same values, no reset", async () => {
    const persistDir = wrangler!.persistDir;
    const port = wrangler!.port;
    await wrangler!.kill9();
    wrangler = await startWrangler({ bundle, persistDir, port });
    const user = `user="${TENANT}"`;
    // Newer scrapes than the restart: the series is up again with the same value.
    const restartedAt = Date.now() / 1000;
    await waitUntil(
      async () => {
        const r = await prometheus!.query(`timestamp(cortex_distributor_received_samples_total{${user}})`);
        return r.length > 0 && Number(r[0].value[1]) > restartedAt + 1;
      },
      60_000,
      () => `no scrape after the restart; ${prometheus!.logTail(10)}`,
    );
    expect(await promValue(`cortex_distributor_received_samples_total{${user}}`)).toBe(202);
    expect(await promValue(`cortex_discarded_samples_total{${user},reason="label_name_invalid"}`)).toBe(5);
    expect(await promValue(`resets(cortex_distributor_received_samples_total{${user}}[5m])`)).toBe(0);
    expect(await promValue(`sum(resets(cortex_discarded_samples_total{${user}}[5m]))`)).toBe(0);
    expect(await promValue(`sum(cortex_query_frontend_queries_total{${user}})`)).toBe(5);
    expect(await promValue(`sum(resets(cortex_query_frontend_queries_total{${user}}[5m]))`)).toBe(0);
  });
});
