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
//
// Then the same page against a wrangler dev started with AUTH_CONFIG, holding a
// browser key in the runtime config (PUT /api/v1/runtime_config): fetch sends the key
// as Authorization: Bearer (so the preflight asks for that header), sendBeacon as
// ?key=; the lines read back exactly with a read credential. A page at an origin the
// key does not list is refused (403, which the page can read when the tenant's CORS
// list has its origin; a refused preflight when no tenant lists it), and the key
// cannot read: a query from the page is answered 403.

import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { launchChromium } from "../support/chromium";
import { entriesOf, lokiGet, startRecordingProxy, type LokiQueryResponse, type LokiStream, type RecordedRequest, type RecordingProxy } from "../support/loki";
import { buildWorkerBundle, freePort, PROJECT_ROOT, sleep, startWrangler, type WranglerHandle } from "../support/wrangler";

const TENANT = "web-e2e";
const PAGE_HTML = readFileSync(join(PROJECT_ROOT, "examples/browser/index.html"));

/** One bundle for both wrangler devs of this file. */
let bundle: Promise<string> | undefined;
const workerBundle = (): Promise<string> => (bundle ??= buildWorkerBundle());

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
    wrangler = await startWrangler({ bundle: await workerBundle(), vars: { LIMITS: JSON.stringify({ [TENANT]: { corsAllowedOrigins: [allowed.origin], allowBeaconPush: 1 } }) } });
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

describe("browser keys: the example page in Chromium against wrangler dev with AUTH_CONFIG", () => {
  // Test-only secrets. The browser key is in the page's URL, as it would be in a page's source.
  const KEY_TENANT = "web-keyed";
  const BROWSER_KEY = "example-page-browser-key-0123";
  const ADMIN_TOKEN = "browser-e2e-admin-token-0123";
  const READ_TOKEN = "browser-e2e-read-token-01234";
  const AUTH_CONFIG = {
    credentials: [
      { name: "admin", token: ADMIN_TOKEN, tenants: "*", scopes: ["admin"] },
      { name: "reader", token: READ_TOKEN, tenants: [KEY_TENANT], scopes: ["read"] },
    ],
  };
  let wrangler: WranglerHandle | undefined;
  let proxy: RecordingProxy | undefined;
  /** Listed for the key and in the tenant's CORS origins. */
  let keyed: { origin: string; server: Server } | undefined;
  /** In the tenant's CORS origins, not the key's. */
  let unlisted: { origin: string; server: Server } | undefined;
  /** Listed nowhere. */
  let stranger: { origin: string; server: Server } | undefined;
  let browser: BrowserContext | undefined;
  const started = Date.now();

  beforeAll(async () => {
    keyed = await startPageServer();
    unlisted = await startPageServer();
    stranger = await startPageServer();
    wrangler = await startWrangler({ bundle: await workerBundle(), vars: { AUTH_CONFIG: JSON.stringify(AUTH_CONFIG) } });
    // Keys and CORS origins without a deploy: the runtime config.
    const put = await fetch(`${wrangler.url}/api/v1/runtime_config`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        overrides: { [KEY_TENANT]: { corsAllowedOrigins: [keyed.origin, unlisted.origin], allowBeaconPush: 1 } },
        browserKeys: [{ id: "example-page", key: BROWSER_KEY, tenant: KEY_TENANT, origins: [keyed.origin] }],
      }),
    });
    const stored = await put.text();
    expect(put.status, stored).toBe(200);
    expect(stored).not.toContain(BROWSER_KEY);
    proxy = await startRecordingProxy(wrangler.url);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await wrangler?.stop();
    for (const s of [keyed, unlisted, stranger]) s?.server.close();
  });

  /** The example page with the key and an empty tenant field: the key names the tenant. */
  async function openPage(origin: string): Promise<Page> {
    const page = await browser!.newPage();
    const push = `${proxy!.url}/loki/api/v1/push`;
    await page.goto(`${origin}/index.html?${new URLSearchParams({ push, tenant: "", key: BROWSER_KEY })}`);
    await page.locator("#status").getByText("ready").waitFor();
    return page;
  }

  async function sendLine(page: Page, line: string): Promise<string> {
    const before = (await page.locator("#status").textContent()) ?? "";
    await page.fill("#line", line);
    await page.click("#send");
    for (let i = 0; i < 300; i++) {
      const now = (await page.locator("#status").textContent()) ?? "";
      if (now.length > before.length) return now.slice(before.length).trim();
      await sleep(100);
    }
    throw new Error("the page printed no status");
  }

  const fromOrigin = (origin: string, path: string): RecordedRequest[] => proxy!.requests.filter((r) => r.path.startsWith(path) && r.headers.origin === origin);

  async function storedLines(): Promise<{ labels: string; line: string }[]> {
    const url = new URL("/loki/api/v1/query_range", wrangler!.url);
    const params = { query: '{app="browser-example"}', start: String((started - 60_000) * 1e6), end: String((Date.now() + 60_000) * 1e6), direction: "forward", limit: "1000" };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    // A read credential with one tenant: no X-Scope-OrgID needed.
    const res = await fetch(url, { headers: { Authorization: `Bearer ${READ_TOKEN}` } });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return entriesOf((JSON.parse(text) as LokiQueryResponse).data.result as LokiStream[]).map((e) => ({ labels: e.labels, line: e.line }));
  }

  it("pushes with fetch (Bearer key, after a preflight) and sendBeacon (?key=); the lines read back exactly with a read credential", async () => {
    const page = await openPage(keyed!.origin);
    const lines = ["keyed line one", "keyed line two ✓"];
    for (const line of lines) expect(await sendLine(page, line)).toBe(`sent: ${line}`);

    const pushes = fromOrigin(keyed!.origin, "/loki/api/v1/push");
    const preflights = pushes.filter((r) => r.method === "OPTIONS");
    expect(preflights.length).toBeGreaterThan(0);
    for (const p of preflights) {
      expect(p.status).toBe(204);
      expect(String(p.headers["access-control-request-headers"]).split(",").map((h) => h.trim()).sort()).toEqual(["authorization", "content-type"]);
    }
    // The key in Authorization, no tenant header: the key names its tenant.
    expect(pushes.filter((r) => r.method === "POST").map((r) => [r.status, r.headers.authorization, r.headers["x-scope-orgid"]])).toEqual(lines.map(() => [204, `Bearer ${BROWSER_KEY}`, undefined]));

    await page.evaluate(() => console.error("keyed beacon", 7));
    await page.goto("about:blank");
    const beacon = await waitFor("the keyed beacon", () => fromOrigin(keyed!.origin, "/loki/api/v1/push").find((r) => r.method === "POST" && r.path.includes("key=")));
    expect(beacon.status).toBe(204);
    expect(new URL(beacon.path, "http://x").searchParams.get("key")).toBe(BROWSER_KEY);
    expect(beacon.headers.authorization).toBeUndefined();
    await page.close();

    const stored = await storedLines();
    expect(stored.filter((e) => e.labels.includes('source="form"')).map((e) => e.line)).toEqual(lines);
    expect(stored.filter((e) => e.labels.includes('source="beacon"')).map((e) => e.line)).toEqual(["console.error: keyed beacon 7"]);
  });

  it("the key cannot read: a query from the page is answered 403, and the page gets nothing", async () => {
    const page = await openPage(keyed!.origin);
    const query = `${proxy!.url}/loki/api/v1/query_range?${new URLSearchParams({ query: '{app="browser-example"}', key: BROWSER_KEY })}`;
    // A simple GET (no custom header): no preflight, so the request reaches the server.
    const outcome = await page.evaluate(async (url) => {
      try {
        const res = await fetch(url);
        return `answered ${res.status}: ${await res.text()}`;
      } catch (e) {
        return String(e);
      }
    }, query);
    // The 403 carries no CORS grant (query routes serve no browsers): the page cannot read even the refusal.
    expect(outcome).toBe("TypeError: Failed to fetch");
    expect(fromOrigin(keyed!.origin, "/loki/api/v1/query_range").map((r) => [r.method, r.status])).toEqual([["GET", 403]]);
    await page.close();

    // What the server said, asked the same way from here.
    const res = await fetch(query, { headers: { Origin: keyed!.origin } });
    const text = await res.text();
    expect(res.status, text).toBe(403);
    expect(text).toBe('browser key "example-page" is write-only: it may only push logs (POST /loki/api/v1/push), not GET /loki/api/v1/query_range\n');
  });

  it("pages at origins the key does not list are refused: 403 the page can read, or a refused preflight; their beacons 403; nothing stored", async () => {
    const before = await storedLines();

    // The tenant's CORS list has this origin (preflight passes, the page reads the answer); the key's list does not.
    const page = await openPage(unlisted!.origin);
    expect(await sendLine(page, "must not be stored (unlisted)")).toBe(`failed: Error: push answered 403: origin ${unlisted!.origin} is not allowed for browser key "example-page"`);
    expect(fromOrigin(unlisted!.origin, "/loki/api/v1/push").map((r) => [r.method, r.status])).toEqual([
      ["OPTIONS", 204],
      ["POST", 403],
    ]);
    await page.evaluate(() => console.error("beacon that must not be stored (unlisted)"));
    await page.goto("about:blank");
    const beacon = await waitFor("the unlisted origin's beacon", () => fromOrigin(unlisted!.origin, "/loki/api/v1/push").find((r) => r.method === "POST" && r.path.includes("key=")));
    expect(beacon.status).toBe(403);
    await page.close();

    // No tenant lists this one: the browser is refused at the preflight and never sends the POST.
    const strange = await openPage(stranger!.origin);
    expect(await sendLine(strange, "must not be stored (stranger)")).toBe("failed: TypeError: Failed to fetch");
    expect(fromOrigin(stranger!.origin, "/loki/api/v1/push").map((r) => [r.method, r.status])).toEqual([["OPTIONS", 403]]);
    await strange.evaluate(() => console.error("beacon that must not be stored (stranger)"));
    await strange.goto("about:blank");
    const strangeBeacon = await waitFor("the stranger's beacon", () => fromOrigin(stranger!.origin, "/loki/api/v1/push").find((r) => r.method === "POST"));
    expect(strangeBeacon.status).toBe(403);
    await strange.close();

    expect(await storedLines()).toEqual(before);
  });
});
