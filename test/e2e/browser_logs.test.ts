// End to end with a real browser: Debian's Chromium loads examples/browser/index.html
// from a page server on another port (so every push is cross-origin and CORS is
// real), pushes lines with fetch (X-Scope-OrgID: a preflight first) and, when the page
// goes away, queued errors with navigator.sendBeacon (text/plain, ?tenant=). The
// lines are read back through /loki/api/v1/query_range, exactly. A page served from
// an origin the tenant does not allow gets neither push stored: its preflight is
// refused (the POST is never sent) and its beacon is answered 403.
//
// A recording proxy between the browser and wrangler dev lets the test wait for the
// beacons (they leave the browser asynchronously) and see each preflight's answer.

import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { launchChromium } from "../support/chromium";
import { entriesOf, lokiGet, startRecordingProxy, type LokiStream, type RecordedRequest, type RecordingProxy } from "../support/loki";
import { buildWorkerBundle, freePort, PROJECT_ROOT, sleep, startWrangler, type WranglerHandle } from "../support/wrangler";

const TENANT = "web-e2e";
const PAGE_HTML = readFileSync(join(PROJECT_ROOT, "examples/browser/index.html"));

/** Serves the example page at /index.html. */
async function startPageServer(): Promise<{ origin: string; server: Server }> {
  const port = await freePort();
  const server = createServer((req, res) => {
    if ((req.url ?? "").split("?")[0] === "/index.html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(PAGE_HTML);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${port}`, server };
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("browser logs: the example page in Chromium against wrangler dev", () => {
  let wrangler: WranglerHandle | undefined;
  let proxy: RecordingProxy | undefined;
  let allowed: { origin: string; server: Server } | undefined;
  let refused: { origin: string; server: Server } | undefined;
  let browser: BrowserContext | undefined;
  const started = Date.now();

  beforeAll(async () => {
    allowed = await startPageServer();
    refused = await startPageServer();
    const bundle = await buildWorkerBundle();
    wrangler = await startWrangler({ bundle, vars: { LIMITS: JSON.stringify({ [TENANT]: { corsAllowedOrigins: [allowed.origin], allowBeaconPush: 1 } }) } });
    proxy = await startRecordingProxy(wrangler.url);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await wrangler?.stop();
    allowed?.server.close();
    refused?.server.close();
  });

  async function openPage(origin: string): Promise<Page> {
    const page = await browser!.newPage();
    const push = `${proxy!.url}/loki/api/v1/push`;
    await page.goto(`${origin}/index.html?push=${encodeURIComponent(push)}&tenant=${TENANT}`);
    await page.locator("#status").getByText("ready").waitFor();
    return page;
  }

  async function sendLine(page: Page, line: string): Promise<string> {
    const before = (await page.locator("#status").textContent()) ?? "";
    await page.fill("#line", line);
    await page.click("#send");
    const status = await waitForStatus(page, before);
    return status;
  }

  /** The status line the page printed after `before`. */
  async function waitForStatus(page: Page, before: string): Promise<string> {
    for (let i = 0; i < 300; i++) {
      const now = (await page.locator("#status").textContent()) ?? "";
      if (now.length > before.length) return now.slice(before.length).trim();
      await sleep(100);
    }
    throw new Error("the page printed no status");
  }

  const pushesFrom = (origin: string): RecordedRequest[] => proxy!.requests.filter((r) => r.path.startsWith("/loki/api/v1/push") && r.headers.origin === origin);

  async function storedLines(): Promise<{ labels: string; line: string }[]> {
    const res = await lokiGet(wrangler!.url, "/loki/api/v1/query_range", { query: '{app="browser-example"}', start: String((started - 60_000) * 1e6), end: String((Date.now() + 60_000) * 1e6), direction: "forward", limit: "1000" }, TENANT);
    return entriesOf(res.data.result as LokiStream[]).map((e) => ({ labels: e.labels, line: e.line }));
  }

  it("pushes with fetch (preflight + POST) and with sendBeacon on pagehide; the lines come back exactly", async () => {
    const page = await openPage(allowed!.origin);
    const lines = ["first line from the browser", 'quotes " and \\ and unicode ✓', "third line"];
    for (const line of lines) expect(await sendLine(page, line)).toBe(`sent: ${line}`);

    // The preflight passed and the POSTs carried the tenant header.
    const fromPage = pushesFrom(allowed!.origin);
    expect(fromPage.filter((r) => r.method === "OPTIONS").every((r) => r.status === 204)).toBe(true);
    expect(fromPage.filter((r) => r.method === "POST").map((r) => [r.status, r.headers["x-scope-orgid"]])).toEqual(lines.map(() => [204, TENANT]));

    // Errors are queued: console.error and an uncaught exception; leaving the page sends them with sendBeacon.
    await page.evaluate(() => console.error("console error", 42));
    await page.click("#boom");
    await page.locator("#status").getByText("queued: window.onerror:").waitFor();
    await page.goto("about:blank");
    const beacon = await waitFor("the beacon", () => pushesFrom(allowed!.origin).find((r) => r.method === "POST" && r.path.includes("tenant=")));
    expect(beacon.status).toBe(204);
    expect(String(beacon.headers["content-type"])).toMatch(/^text\/plain/);
    await page.close();

    const stored = await storedLines();
    const formLines = stored.filter((e) => e.labels.includes('source="form"')).map((e) => e.line);
    expect(formLines).toEqual(lines);
    const beaconLines = stored.filter((e) => e.labels.includes('source="beacon"')).map((e) => e.line);
    expect(beaconLines).toHaveLength(2);
    expect(beaconLines[0]).toBe("console.error: console error 42");
    expect(beaconLines[1]).toMatch(new RegExp(`^window\\.onerror: Uncaught Error: boom from the example page at ${allowed!.origin}/index\\.html\\?[^ ]*:\\d+:\\d+$`));
    for (const e of stored) expect(e.labels).toContain('page="/index.html"');
  });

  it("a page from an origin the tenant does not allow cannot push: preflight refused, beacon answered 403", async () => {
    const before = await storedLines();
    const page = await openPage(refused!.origin);
    expect(await sendLine(page, "must not be stored")).toBe("failed: TypeError: Failed to fetch");
    const fromPage = pushesFrom(refused!.origin);
    // The browser asked, was refused, and never sent the POST.
    expect(fromPage.map((r) => [r.method, r.status])).toEqual([["OPTIONS", 403]]);

    await page.evaluate(() => console.error("beacon that must not be stored"));
    await page.goto("about:blank");
    const beacon = await waitFor("the refused origin's beacon", () => pushesFrom(refused!.origin).find((r) => r.method === "POST"));
    expect(beacon.status).toBe(403);
    await page.close();

    expect(await storedLines()).toEqual(before);
  });
});
