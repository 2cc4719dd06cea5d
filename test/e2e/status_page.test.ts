// The status page in a real browser (Debian's Chromium via playwright-core): two
// tenants push through `wrangler dev` (metrics; beta logs too), both flush, then push
// again; /status must show both tenants, one row per shard, the ingestion-rate chart
// as inline SVG paths, the metric and log blocks in R2, and nothing fetched from
// elsewhere. A screenshot goes to test-results/status.png for a person to look at.
// A missing /usr/bin/chromium fails the test (CI installs it), never skips it.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_BIN } from "../support/chromium";
import { encodeWriteV1, type PromSeries } from "../support/promproto";
import { waitUntil } from "../support/prometheus";
import { buildWorkerBundle, PROJECT_ROOT, startWrangler, type WranglerHandle } from "../support/wrangler";
import { snappyCompress } from "../../src/proto/snappy";

const TENANTS = ["team-alpha", "team-beta"];
const SHARDS = 4;
const NOW = Date.now();

let wrangler: WranglerHandle | null = null;
let browser: Browser | null = null;

async function push(tenant: string, series: PromSeries[]): Promise<Response> {
  return fetch(`${wrangler!.url}/api/v1/push`, {
    method: "POST",
    body: snappyCompress(encodeWriteV1(series)),
    headers: { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-OrgID": tenant },
    signal: AbortSignal.timeout(30_000),
  });
}

async function pushLogs(tenant: string, lines: string[], t: number): Promise<Response> {
  const values = lines.map((line, i) => [String(BigInt(t + i) * 1_000_000n), line]);
  return fetch(`${wrangler!.url}/loki/api/v1/push`, {
    method: "POST",
    body: JSON.stringify({ streams: [{ stream: { app: "beta", level: "info" }, values }] }),
    headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant },
    signal: AbortSignal.timeout(30_000),
  });
}

async function flush(tenant: string): Promise<void> {
  const res = await fetch(`${wrangler!.url}/flush`, { method: "POST", headers: { "X-Scope-OrgID": tenant }, signal: AbortSignal.timeout(60_000) });
  expect(res.status, await res.text()).toBe(204);
}

async function blockCount(tenant: string, kind: string): Promise<number> {
  const res = await fetch(`${wrangler!.url}/api/v1/blocks?kind=${kind}`, { headers: { "X-Scope-OrgID": tenant } });
  return ((await res.json()) as { data: { blocks: unknown[] } }).data.blocks.length;
}

function series(n: number, name: string, t: number): PromSeries[] {
  return Array.from({ length: n }, (_, i) => ({ labels: { __name__: name, instance: `host-${i}` }, samples: [[t, i]] }));
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`${CHROMIUM_BIN} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)`);
  const bundle = await buildWorkerBundle();
  wrangler = await startWrangler({ bundle });
  browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: 60_000 });
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await wrangler?.stop().catch(() => undefined);
});

describe("GET /status in Chromium", () => {
  it("shows both tenants, a row per shard, the ingestion chart and recent errors", async () => {
    // Several pushes a few seconds apart, different sizes per tenant, so the chart has two distinct lines.
    for (let k = 0; k < 5; k++) {
      expect((await push(TENANTS[0], series(120, "alpha_requests_total", NOW - 60_000 + k * 1000))).status).toBe(204);
      expect((await push(TENANTS[1], series(40, "beta_queue_depth", NOW - 60_000 + k * 1000))).status).toBe(204);
    }
    // One refused push, so the page has a recent error to show.
    expect((await push(TENANTS[1], series(3, "beta_queue_depth", NOW - 30 * 86_400_000))).status).toBe(400);
    // Beta's logs; both tenants flush (metric and log blocks in R2), then write on.
    expect((await pushLogs(TENANTS[1], Array.from({ length: 30 }, (_, i) => `request ${i} served in ${i * 3} ms`), NOW - 50_000)).status).toBe(204);
    for (const t of TENANTS) await flush(t);
    expect((await push(TENANTS[0], series(120, "alpha_requests_total", NOW - 50_000))).status).toBe(204);
    expect((await pushLogs(TENANTS[1], ["after the flush"], NOW - 40_000)).status).toBe(204);
    let metricBlocks = 0;
    let logBlocks = 0;
    for (const t of TENANTS) {
      metricBlocks += await blockCount(t, "metrics");
      logBlocks += await blockCount(t, "logs");
    }
    expect(metricBlocks).toBeGreaterThan(0);
    expect(logBlocks).toBeGreaterThan(0);

    // Tenants are listed once their shards registered in R2 (right after their first write).
    await waitUntil(
      async () => {
        const html = await (await fetch(`${wrangler!.url}/status`)).text();
        return TENANTS.every((t) => html.includes(`data-tenant="${t}"`));
      },
      30_000,
      () => `tenants never listed on /status; ${wrangler!.logTail(20)}`,
    );

    const page = await browser!.newPage({ viewport: { width: 1400, height: 1100 } });
    const outside: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(wrangler!.url)) outside.push(r.url());
    });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const res = await page.goto(`${wrangler!.url}/status`, { waitUntil: "load" });
    expect(res?.status()).toBe(200);

    for (const t of TENANTS) {
      await expect.poll(() => page.locator(`tr.tenant-row[data-tenant="${t}"]`).count()).toBe(1);
      expect(await page.locator(`tr.shard-row[data-tenant="${t}"]`).count()).toBe(SHARDS);
      expect(await page.locator(`section.tenant h2`, { hasText: t }).count()).toBe(1);
    }
    // Series per tenant as pushed: 120 and 40 (the refused push added none).
    const seriesCell = (t: string) => page.locator(`tr.tenant-row[data-tenant="${t}"] td`).nth(2).innerText();
    expect(await seriesCell(TENANTS[0])).toBe("120");
    expect(await seriesCell(TENANTS[1])).toBe("40");

    // The chart: an inline SVG with one 60-point path per tenant (samples/s), and a dashed
    // one for beta's log lines/s, drawn with a real size.
    const paths = page.locator("svg#rate-chart path.series");
    expect(await paths.count()).toBe(3);
    expect(await page.locator("svg#rate-chart path.series[stroke-dasharray]").count()).toBe(1);
    for (let i = 0; i < 3; i++) {
      const d = (await paths.nth(i).getAttribute("d")) ?? "";
      expect(d).toMatch(/^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){59}$/);
    }
    const box = await page.locator("svg#rate-chart").boundingBox();
    expect(box!.width).toBeGreaterThan(600);
    expect(box!.height).toBeGreaterThan(150);
    // The newest point of alpha's line is above beta's (more samples this minute): y grows downwards.
    const lastY = async (i: number) => Number(((await paths.nth(i).getAttribute("d")) ?? "").split(",").pop());
    expect(await lastY(0)).toBeLessThan(await lastY(1));

    // Blocks in R2, both kinds, as the blocks API lists them.
    const tile = page.locator(".tile .sub");
    expect(await tile.getAttribute("data-metric-blocks")).toBe(String(metricBlocks));
    expect(await tile.getAttribute("data-log-blocks")).toBe(String(logBlocks));
    expect(await tile.innerText()).toBe(`${metricBlocks} metric · ${logBlocks} log`);

    // The inline script ran: relative times instead of ISO clock times.
    await expect.poll(() => page.locator("header time").innerText()).toMatch(/ago$/);
    // The refused push is in beta's recent errors.
    await page.locator(`section.tenant:has(h2:has-text("${TENANTS[1]}")) details.errors summary`).click();
    expect(await page.locator(`section.tenant:has(h2:has-text("${TENANTS[1]}")) details.errors li`).first().innerText()).toMatch(/sample_too_old|too old/);

    mkdirSync(join(PROJECT_ROOT, "test-results"), { recursive: true });
    await page.screenshot({ path: join(PROJECT_ROOT, "test-results", "status.png"), fullPage: true });
    expect(outside, "no external assets").toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
