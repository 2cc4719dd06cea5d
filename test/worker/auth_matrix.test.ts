// Authentication and authorization through the Worker, with AUTH_CONFIG set (the
// "auth" vitest project; credentials in test/support/auth_config.ts): every route
// x {no credential, wrong tenant, wrong scope, right one}, bearer and basic, tenant
// federation, and browser keys (origin, scope, revocation).
//
//   writer  bearer  team-a           write
//   reader  bearer  team-a, team-b   read
//   grafana basic   team-a           read
//   ops     bearer  *                write, read, admin
//   admin-a bearer  team-a           admin
//   hashed  bearer  team-c           write, read (configured as tokenSha256)

import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { snappyCompress } from "../../src/proto/snappy";
import { encodeReadRequest, encodeWriteRequestV1 } from "../support/wire";
import { GRAFANA, TOKENS } from "../support/auth_config";
import { eq, toSeriesSamples } from "./helpers";

type Scope = "write" | "read" | "admin";

interface Route {
  method: string;
  path: string;
  scope: Scope;
  body?: () => BodyInit;
  headers?: Record<string, string>;
  /** The status when authorized; null: only "not 401/403" is asserted (the handler's own answer). */
  ok: number | null;
  /** Acts on every tenant: the credential must be allowed on "*". */
  allTenants?: boolean;
}

const NOW = Date.now();

function remoteWriteBody(name = "up"): Uint8Array {
  return snappyCompress(encodeWriteRequestV1([toSeriesSamples({ labels: { __name__: name, job: "auth" }, samples: [[NOW - 1000, 1]] })], []));
}
const RW_HEADERS = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0" };
const RR_HEADERS = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Read-Version": "0.1.0" };
const readBody = () => snappyCompress(encodeReadRequest([{ matchers: [eq("__name__", "up")], startMs: 0, endMs: NOW + 60_000 }]));
const lokiBody = () => JSON.stringify({ streams: [{ stream: { app: "auth" }, values: [[`${NOW}000000`, "hello"]] }] });
/** Loki's legacy push shape (/api/prom/push): labels as a string, entries with RFC 3339 times. */
const legacyLokiBody = () => JSON.stringify({ streams: [{ labels: '{app="auth"}', entries: [{ ts: new Date(NOW).toISOString(), line: "hello" }] }] });
const JSON_HEADERS = { "Content-Type": "application/json" };
const range = `start=${Math.floor(NOW / 1000) - 600}&end=${Math.floor(NOW / 1000)}`;

const ROUTES: Route[] = [
  { method: "POST", path: "/api/v1/push", scope: "write", body: () => remoteWriteBody(), headers: RW_HEADERS, ok: 204 },
  { method: "POST", path: "/api/v1/write", scope: "write", body: () => remoteWriteBody(), headers: RW_HEADERS, ok: 204 },
  { method: "POST", path: "/loki/api/v1/push", scope: "write", body: lokiBody, headers: JSON_HEADERS, ok: 204 },
  { method: "POST", path: "/api/prom/push", scope: "write", body: legacyLokiBody, headers: JSON_HEADERS, ok: 204 },
  { method: "POST", path: "/api/v1/read", scope: "read", body: readBody, headers: RR_HEADERS, ok: 200 },
  { method: "POST", path: "/prometheus/api/v1/read", scope: "read", body: readBody, headers: RR_HEADERS, ok: 200 },
  { method: "GET", path: "/api/v1/query?query=up", scope: "read", ok: 200 },
  { method: "POST", path: "/api/v1/query", scope: "read", body: () => "query=up", headers: { "Content-Type": "application/x-www-form-urlencoded" }, ok: 200 },
  { method: "GET", path: `/api/v1/query_range?query=up&${range}&step=60`, scope: "read", ok: 200 },
  { method: "GET", path: "/api/v1/series?match[]=up", scope: "read", ok: 200 },
  { method: "GET", path: "/api/v1/labels", scope: "read", ok: 200 },
  { method: "GET", path: "/api/v1/label/job/values", scope: "read", ok: 200 },
  { method: "GET", path: "/api/v1/metadata", scope: "read", ok: 200 },
  { method: "GET", path: "/api/v1/status/buildinfo", scope: "read", ok: 200 },
  { method: "GET", path: `/api/v1/query_exemplars?query=up&${range}`, scope: "read", ok: 200 },
  { method: "GET", path: "/api/v1/format_query?query=up", scope: "read", ok: 200 },
  { method: "GET", path: "/prometheus/api/v1/query?query=up", scope: "read", ok: 200 },
  { method: "GET", path: "/prometheus/api/v1/labels", scope: "read", ok: 200 },
  { method: "GET", path: `/loki/api/v1/query?query=${encodeURIComponent('count_over_time({app="auth"}[5m])')}`, scope: "read", ok: 200 },
  { method: "GET", path: `/loki/api/v1/query_range?query=${encodeURIComponent('{app="auth"}')}`, scope: "read", ok: 200 },
  { method: "GET", path: "/loki/api/v1/labels", scope: "read", ok: 200 },
  { method: "GET", path: "/loki/api/v1/label/app/values", scope: "read", ok: 200 },
  { method: "GET", path: `/loki/api/v1/series?match[]=${encodeURIComponent('{app="auth"}')}`, scope: "read", ok: 200 },
  { method: "GET", path: `/loki/api/v1/index/stats?query=${encodeURIComponent('{app="auth"}')}`, scope: "read", ok: 200 },
  // Without an Upgrade header the tail answers 400 (websocket required): past authorization.
  { method: "GET", path: `/loki/api/v1/tail?query=${encodeURIComponent('{app="auth"}')}`, scope: "read", ok: 400 },
  { method: "POST", path: "/flush", scope: "admin", ok: 204 },
  { method: "POST", path: "/flush?all=true", scope: "admin", ok: 204, allTenants: true },
  { method: "POST", path: "/shutdown", scope: "admin", ok: 204 },
  { method: "DELETE", path: "/shutdown", scope: "admin", ok: 204 },
  { method: "GET", path: "/api/v1/status/ingesters", scope: "admin", ok: 200 },
  { method: "GET", path: "/api/v1/status/r2", scope: "admin", ok: 200, allTenants: true },
  { method: "GET", path: "/api/v1/blocks", scope: "admin", ok: 200 },
  { method: "GET", path: "/api/v1/runtime_config", scope: "admin", ok: 200, allTenants: true },
  { method: "PUT", path: "/api/v1/runtime_config", scope: "admin", body: () => "{}", ok: 200, allTenants: true },
  { method: "GET", path: "/metrics", scope: "admin", ok: null, allTenants: true },
  { method: "GET", path: "/status", scope: "admin", ok: null, allTenants: true },
  { method: "GET", path: "/api/v1/user_stats", scope: "admin", ok: null },
  { method: "GET", path: "/distributor/all_user_stats", scope: "admin", ok: null, allTenants: true },
  { method: "GET", path: "/api/v1/shards?tenant=team-admin", scope: "admin", ok: null, allTenants: true },
];

function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}
function basic(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${btoa(`${user}:${password}`)}` };
}

function call(route: Route, headers: Record<string, string>): Promise<Response> {
  return SELF.fetch(`http://ingester${route.path}`, { method: route.method, body: route.body?.(), headers: { ...route.headers, ...headers } });
}

/** A credential with the route's scope, allowed on team-a only (so team-b is the wrong tenant). */
const RIGHT_SCOPE_ONE_TENANT: Record<Scope, { name: string; headers: Record<string, string> }> = {
  write: { name: "writer", headers: bearer(TOKENS.writer) },
  read: { name: "grafana", headers: basic(GRAFANA.username, GRAFANA.password) },
  admin: { name: "admin-a", headers: bearer(TOKENS.adminA) },
};
/** A credential allowed on team-a without the route's scope. */
const WRONG_SCOPE: Record<Scope, { name: string; headers: Record<string, string>; has: string }> = {
  write: { name: "reader", headers: bearer(TOKENS.reader), has: "scope read" },
  read: { name: "writer", headers: bearer(TOKENS.writer), has: "scope write" },
  admin: { name: "writer", headers: bearer(TOKENS.writer), has: "scope write" },
};

describe("every route x {no credential, wrong tenant, wrong scope, right}", () => {
  for (const route of ROUTES) {
    it(`${route.method} ${route.path} needs ${route.scope}${route.allTenants ? " on every tenant" : ""}`, async () => {
      const none = await call(route, { "X-Scope-OrgID": "team-a" });
      expect(none.status, `${route.path} without credentials`).toBe(401);
      expect(none.headers.get("WWW-Authenticate")).toMatch(/Bearer realm=.*Basic realm=/);
      expect(await none.text()).toContain("authentication required");

      const one = RIGHT_SCOPE_ONE_TENANT[route.scope];
      const wrongTenant = await call(route, { ...one.headers, "X-Scope-OrgID": "team-b" });
      const wrongTenantText = await wrongTenant.text();
      expect(wrongTenant.status, wrongTenantText).toBe(403);
      expect(wrongTenantText).toContain(route.allTenants ? `credential "${one.name}" must be allowed on all tenants ("*")` : `tenant team-b not allowed for credential "${one.name}"`);

      const ws = WRONG_SCOPE[route.scope];
      const wrongScope = await call(route, { ...ws.headers, "X-Scope-OrgID": "team-a" });
      const wrongScopeText = await wrongScope.text();
      expect(wrongScope.status, wrongScopeText).toBe(403);
      expect(wrongScopeText).toContain(`scope ${route.scope} required: credential "${ws.name}" has ${ws.has}`);

      const tenant = route.scope === "admin" ? "team-admin" : "team-a";
      const right = await call(route, { ...bearer(TOKENS.ops), ...(route.allTenants ? {} : { "X-Scope-OrgID": tenant }) });
      const rightText = await right.text();
      if (route.ok !== null) expect(right.status, rightText).toBe(route.ok);
      else expect([401, 403], rightText).not.toContain(right.status);
    });
  }

  it("leaves /ready open", async () => {
    expect((await SELF.fetch("http://ingester/ready")).status).toBe(200);
  });
});

describe("credentials", () => {
  const push = ROUTES[0];
  const query = ROUTES.find((r) => r.path === "/api/v1/query?query=up")!;

  it("takes the only tenant of a one-tenant credential when X-Scope-OrgID is absent", async () => {
    const r = await call(push, bearer(TOKENS.writer));
    expect(r.status, await r.text()).toBe(204);
    const read = await call(query, bearer(TOKENS.reader));
    expect(read.status).toBe(400);
    expect(await read.text()).toContain('X-Scope-OrgID is required: credential "reader" may use several tenants');
  });

  it("accepts basic auth and refuses a wrong password or user with 401, never echoing the secret", async () => {
    const ok = await call(query, basic(GRAFANA.username, GRAFANA.password));
    expect(ok.status, await ok.text()).toBe(200);
    for (const headers of [basic(GRAFANA.username, "wrong-password-0123"), basic("nobody", GRAFANA.password)]) {
      const r = await call(query, headers);
      const text = await r.text();
      expect(r.status).toBe(401);
      expect(r.headers.get("WWW-Authenticate")).toContain("Basic");
      expect(text).toContain("invalid credentials");
      expect(text).not.toContain("password-0123");
    }
    const malformed = await call(query, { Authorization: "Basic !!!not-base64" });
    expect(malformed.status).toBe(401);
  });

  it("refuses an unknown bearer token with 401 and does not echo it", async () => {
    const r = await call(push, bearer("unknown-token-secret-xyz"));
    const text = await r.text();
    expect(r.status).toBe(401);
    expect(text).toContain("invalid credentials");
    expect(text).not.toContain("unknown-token-secret-xyz");
  });

  it("accepts a token configured only as its SHA-256", async () => {
    const r = await call(push, bearer(TOKENS.hashed));
    expect(r.status, await r.text()).toBe(204);
    const other = await call(push, { ...bearer(TOKENS.hashed), "X-Scope-OrgID": "team-a" });
    expect(other.status).toBe(403);
  });

  it("refuses an unsupported scheme with 401", async () => {
    const r = await call(push, { Authorization: "Token abc" });
    expect(r.status).toBe(401);
    expect(await r.text()).toContain("unsupported Authorization scheme");
  });
});

describe("tenant federation (X-Scope-OrgID: A|B)", () => {
  async function instant(query: string, headers: Record<string, string>) {
    const r = await SELF.fetch(`http://ingester/api/v1/query?query=${encodeURIComponent(query)}&time=${NOW / 1000}`, { headers });
    return { status: r.status, text: await r.text() };
  }

  it("merges both tenants' series with __tenant_id__ when the credential may read both", async () => {
    for (const tenant of ["team-a", "team-b"]) {
      const r = await SELF.fetch("http://ingester/api/v1/push", {
        method: "POST",
        body: remoteWriteBody("fed_metric"),
        headers: { ...RW_HEADERS, ...bearer(TOKENS.ops), "X-Scope-OrgID": tenant },
      });
      expect(r.status, await r.text()).toBe(204);
    }
    const both = await instant("fed_metric", { ...bearer(TOKENS.reader), "X-Scope-OrgID": "team-a|team-b" });
    expect(both.status, both.text).toBe(200);
    const result = JSON.parse(both.text).data.result as { metric: Record<string, string> }[];
    expect(result.map((s) => s.metric.__tenant_id__).sort()).toEqual(["team-a", "team-b"]);

    // A matcher on __tenant_id__ picks the tenants.
    const onlyB = await instant('fed_metric{__tenant_id__="team-b"}', { ...bearer(TOKENS.reader), "X-Scope-OrgID": "team-a|team-b" });
    expect(JSON.parse(onlyB.text).data.result.map((s: { metric: Record<string, string> }) => s.metric.__tenant_id__)).toEqual(["team-b"]);

    // One tenant: no label, as Cortex.
    const one = await instant("fed_metric", { ...bearer(TOKENS.reader), "X-Scope-OrgID": "team-a" });
    expect(JSON.parse(one.text).data.result[0].metric.__tenant_id__).toBeUndefined();
  });

  it("refuses federation over a tenant the credential may not read (403 naming it)", async () => {
    const r = await instant("fed_metric", { ...basic(GRAFANA.username, GRAFANA.password), "X-Scope-OrgID": "team-a|team-b" });
    expect(r.status).toBe(403);
    expect(r.text).toContain('tenant team-b not allowed for credential "grafana"');
  });

  it("refuses federation on routes that do not support it (400)", async () => {
    const r = await SELF.fetch("http://ingester/api/v1/labels", { headers: { ...bearer(TOKENS.reader), "X-Scope-OrgID": "team-a|team-b" } });
    expect(r.status).toBe(400);
    expect(await r.text()).toContain("tenant federation");
    const w = await SELF.fetch("http://ingester/api/v1/push", { method: "POST", body: remoteWriteBody(), headers: { ...RW_HEADERS, ...bearer(TOKENS.ops), "X-Scope-OrgID": "team-a|team-b" } });
    expect(w.status).toBe(400);
  });
});

describe("browser keys", () => {
  const SHOP_KEY = "shop-browser-key-0123456789";
  const OLD_KEY = "old-browser-key-0123456789";
  const ORIGIN = "https://shop.example";

  async function putConfig(config: unknown): Promise<Response> {
    return SELF.fetch("http://ingester/api/v1/runtime_config", { method: "PUT", body: JSON.stringify(config), headers: bearer(TOKENS.ops) });
  }
  function lokiPush(query: string, headers: Record<string, string>): Promise<Response> {
    return SELF.fetch(`http://ingester/loki/api/v1/push${query}`, { method: "POST", body: lokiBody(), headers: { ...JSON_HEADERS, ...headers } });
  }

  it("pushes logs with ?key= or Bearer from an allowed origin; refuses other origins, no Origin, revoked and unknown keys", async () => {
    const put = await putConfig({
      // CORS (src/http/cors.ts) must let the origin push to the tenant too.
      overrides: { "team-a": { corsAllowedOrigins: [ORIGIN] } },
      browserKeys: [
        { id: "shop", key: SHOP_KEY, tenant: "team-a", origins: [ORIGIN] },
        { id: "old", key: OLD_KEY, tenant: "team-a", origins: [ORIGIN], revoked: true },
      ],
    });
    const stored = await put.text();
    expect(put.status, stored).toBe(200);
    expect(stored).not.toContain(SHOP_KEY);

    const viaQuery = await lokiPush(`?key=${SHOP_KEY}`, { Origin: ORIGIN });
    expect(viaQuery.status, await viaQuery.text()).toBe(204);
    const viaBearer = await lokiPush("", { Origin: ORIGIN, ...bearer(SHOP_KEY) });
    expect(viaBearer.status, await viaBearer.text()).toBe(204);

    const cases: [string, Record<string, string>, number, string][] = [
      [`?key=${SHOP_KEY}`, {}, 403, 'browser key "shop" requires an Origin header'],
      [`?key=${SHOP_KEY}`, { Origin: "https://evil.example" }, 403, 'origin https://evil.example is not allowed for browser key "shop"'],
      [`?key=${SHOP_KEY}`, { Origin: ORIGIN, "X-Scope-OrgID": "team-b" }, 403, 'tenant team-b not allowed for browser key "shop"'],
      [`?key=${OLD_KEY}`, { Origin: ORIGIN }, 403, 'browser key "old" has been revoked'],
      ["?key=never-issued-key-0123456789", { Origin: ORIGIN }, 401, "unknown browser key"],
    ];
    for (const [query, headers, status, message] of cases) {
      const r = await lokiPush(query, headers);
      const text = await r.text();
      expect(r.status, `${query} ${JSON.stringify(headers)}: ${text}`).toBe(status);
      expect(text).toContain(message);
      expect(text).not.toContain(SHOP_KEY);
    }
  });

  it("can never read or write metrics (403 on every other route)", async () => {
    for (const route of ROUTES) {
      if (route.path.startsWith("/loki/api/v1/push") || route.path.startsWith("/api/prom/push")) continue;
      for (const headers of [bearer(SHOP_KEY), {}]) {
        const sep = route.path.includes("?") ? "&" : "?";
        const path = Object.keys(headers).length === 0 ? `${route.path}${sep}key=${SHOP_KEY}` : route.path;
        const r = await SELF.fetch(`http://ingester${path}`, { method: route.method, body: route.body?.(), headers: { ...route.headers, ...headers, Origin: ORIGIN } });
        const text = await r.text();
        expect(r.status, `${route.method} ${path}: ${text}`).toBe(403);
        expect(text).toContain('browser key "shop" is write-only');
      }
    }
  });

  it("stops working once removed from the runtime config, without a deploy", async () => {
    const put = await putConfig({ overrides: { "team-a": { corsAllowedOrigins: [ORIGIN] } }, browserKeys: [] });
    expect(put.status).toBe(200);
    const r = await lokiPush(`?key=${SHOP_KEY}`, { Origin: ORIGIN });
    expect(r.status).toBe(401);
    expect(await r.text()).toContain("unknown browser key");
  });
});
