// Authentication and authorization through the Worker, with AUTH_CONFIG set (the
// "auth" vitest project; credentials in test/support/auth_config.ts): every guarded
// route of the router x {no credential, wrong tenant, wrong scope, right one}, bearer
// and basic, tenant federation (and its limits), and browser keys (origin, scope,
// revocation). The route table is read back from the router (src/http/routes.ts): a
// route added without a row here fails "the matrix covers the route table".
//
//   writer    bearer  team-a           write
//   reader    bearer  team-a, team-b   read
//   grafana   basic   team-a           read
//   ops       bearer  *                write, read, admin
//   admin-a   bearer  team-a           admin
//   admin-all bearer  *                admin
//   hashed    bearer  team-c           write, read (configured as tokenSha256)
//
// Data in team-a, pushed in beforeAll: auth_probe{job="auth"} 7 at T (with gauge
// metadata) and the log line "hello" in {app="auth"} at NOW; the push rows send the
// series up{job="auth"} 1 at T and the same log line again (a duplicate, dropped).

import "../../src/index"; // registers the routes, filling ROUTE_TABLE
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { snappyCompress, snappyDecompress } from "../../src/proto/snappy";
import { MetricType, type SeriesSamples } from "../../src/proto/types";
import { routeTable } from "../../src/http/routes";
import { EXPOSITION_CONTENT_TYPE } from "../../src/observability/exposition";
import { decodeReadResponse, encodeReadRequest, encodeWriteRequestV1 } from "../support/wire";
import { GRAFANA, TOKENS } from "../support/auth_config";
import { eq, re, toSeriesSamples } from "./helpers";
import { parseStrict, value } from "./exposition_reader";

type Scope = "write" | "read" | "admin";

interface Route {
  method: string;
  path: string;
  scope: Scope;
  body?: () => BodyInit;
  headers?: Record<string, string>;
  /** Acts on every tenant: the credential must be allowed on "*". */
  allTenants?: boolean;
  /** The status when authorized. */
  ok: number;
  /** Checks the authorized answer beyond its status (exact values from the data above). */
  check?: (text: string, res: Response) => void | Promise<void>;
  /** Runs (with the ops credential) before the authorized call. */
  before?: () => Promise<void>;
  /** The authorized answer is not text (remote read, a websocket): check reads it. */
  binary?: boolean;
}

const NOW = Date.now();
/** The samples' time: a whole second, so every API's seconds are exact. */
const T = Math.floor(NOW / 1000) * 1000 - 1000;
const TS = T / 1000;

function remoteWriteBody(name = "up", value = 1, t = T, metadata: { type: MetricType; metricFamilyName: string; help: string; unit: string }[] = []): Uint8Array {
  return snappyCompress(encodeWriteRequestV1([toSeriesSamples({ labels: { __name__: name, job: "auth" }, samples: [[t, value]] })], metadata));
}
const RW_HEADERS = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0" };
const RR_HEADERS = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Read-Version": "0.1.0" };
const readBody = () => snappyCompress(encodeReadRequest([{ matchers: [eq("__name__", "auth_probe")], startMs: 0, endMs: NOW + 60_000 }]));
const lokiBody = () => JSON.stringify({ streams: [{ stream: { app: "auth" }, values: [[`${NOW}000000`, "hello"]] }] });
/** Loki's legacy push shape (/api/prom/push): labels as a string, entries with RFC 3339 times. */
const legacyLokiBody = () => JSON.stringify({ streams: [{ labels: '{app="auth"}', entries: [{ ts: new Date(NOW).toISOString(), line: "hello" }] }] });
const JSON_HEADERS = { "Content-Type": "application/json" };
const FORM = { "Content-Type": "application/x-www-form-urlencoded" };
const form = (params: Record<string, string>) => () => new URLSearchParams(params).toString();
const qs = (params: Record<string, string>) => new URLSearchParams(params).toString();
const range = { start: String(TS - 600), end: String(TS) };
const LOG_SELECTOR = '{app="auth"}';

function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}
function basic(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${btoa(`${user}:${password}`)}` };
}
const OPS = bearer(TOKENS.ops);

async function opsCall(method: string, path: string, tenant: string | null, body?: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return SELF.fetch(`http://ingester${path}`, { method, body, headers: { ...OPS, ...headers, ...(tenant === null ? {} : { "X-Scope-OrgID": tenant }) } });
}
async function opsJson(method: string, path: string, tenant: string | null): Promise<unknown> {
  const r = await opsCall(method, path, tenant);
  const text = await r.text();
  expect(r.status, `${method} ${path}: ${text}`).toBe(200);
  return JSON.parse(text);
}
/** POST /flush for team-a: its shards are then listed in R2 (a flush awaits the registration), so cluster-wide views show it. */
const flushTeamA = async () => {
  const r = await opsCall("POST", "/flush", "team-a");
  expect(r.status, await r.text()).toBe(204);
};
async function pushUp(tenant: string): Promise<number> {
  const r = await opsCall("POST", "/api/v1/push", tenant, remoteWriteBody(), RW_HEADERS);
  await r.text();
  return r.status;
}

function decodeRead(bytes: ArrayBuffer): SeriesSamples[][] {
  return decodeReadResponse(snappyDecompress(new Uint8Array(bytes), 1 << 30));
}
/** Remote read answers as plain data: labels and [t, v] pairs. */
function readAnswer(results: SeriesSamples[][]): { labels: string[]; samples: [number, number][] }[][] {
  return results.map((r) => r.map((s) => ({ labels: [...s.labels], samples: Array.from(s.timestamps, (t, i) => [t, s.values[i]] as [number, number]) })));
}

const PROBE = { __name__: "auth_probe", job: "auth" };
const PROBE_HELP = "A probe for the authentication matrix.";
const success = (data: unknown) => (text: string) => expect(JSON.parse(text)).toEqual({ status: "success", data });
const probeVector = success({ resultType: "vector", result: [{ metric: PROBE, value: [TS, "7"] }] });
const probeMatrix = success({ resultType: "matrix", result: [{ metric: PROBE, values: [[TS, "7"]] }] });
const probeSeries = success([PROBE]);
const probeLabels = success(["__name__", "job"]);
const jobValues = success(["auth"]);
const probeMetadata = success({ auth_probe: [{ type: "gauge", help: PROBE_HELP, unit: "" }] });
const buildInfo = (text: string) => {
  const info = JSON.parse(text);
  expect(info.status).toBe("success");
  // Grafana picks its Prometheus features from the major version.
  expect(info.data.version).toMatch(/^3\./);
};
const noExemplars = (text: string) => expect(text).toBe('{"status":"success","data":[]}');
// Prometheus's formatting of `sum(auth_probe)by(job)` (promql/parser printer.go).
const formatted = (text: string) => expect(text).toBe('{"status":"success","data":"sum by (job) (auth_probe)"}');
const readsProbe = async (_text: string, res: Response) => {
  expect(readAnswer(decodeRead(await res.arrayBuffer()))).toEqual([[{ labels: ["__name__", "auth_probe", "job", "auth"], samples: [[T, 7]] }]]);
};
const lokiSuccess = (data: (d: Record<string, unknown>) => void) => (text: string) => {
  const body = JSON.parse(text);
  expect(body.status).toBe("success");
  data(body.data);
};
const lokiCount = lokiSuccess((d) => {
  expect(d.resultType).toBe("vector");
  expect((d.result as { metric: unknown; value: [number, string] }[]).map((r) => [r.metric, r.value[1]])).toEqual([[{ app: "auth" }, "1"]]);
});
const lokiStreams = lokiSuccess((d) => {
  expect(d.resultType).toBe("streams");
  expect(d.result).toEqual([{ stream: { app: "auth" }, values: [[`${NOW}000000`, "hello"]] }]);
});
const lokiList = (values: string[]) => (text: string) => expect(JSON.parse(text)).toEqual({ status: "success", data: values });
const lokiSeries = (text: string) => expect(JSON.parse(text)).toEqual({ status: "success", data: [{ app: "auth" }] });
/** /index/volume(_range) of {app="auth"}: the one line's 5 bytes, in one vector entry or (an hour split in two buckets) one series. */
const lokiVolume = (kind: "vector" | "any") =>
  lokiSuccess((d) => {
    const r = d.result as { metric: unknown; value?: [number, string]; values?: [number, string][] }[];
    expect(r.map((x) => x.metric)).toEqual([{ app: "auth" }]);
    const values = r[0].value !== undefined ? [r[0].value[1]] : r[0].values!.map((v) => v[1]);
    if (kind === "vector") expect(values).toEqual(["5"]);
    else expect(values.filter((v) => v !== "0")).toEqual(["5"]);
  });
const ringOf = (tenant: string, shards: number) => (text: string) => {
  const r = JSON.parse(text);
  expect(r.status).toBe("success");
  expect([r.data.tenant, r.data.shards]).toEqual([tenant, shards]);
};
const EMPTY_RUNTIME_CONFIG = (text: string) => expect(JSON.parse(text)).toEqual({ overrides: {}, browserKeys: [] });

/** The number of series team-a holds, as /api/v1/series counts them (user_stats must agree). */
async function teamASeries(): Promise<number> {
  const r = (await opsJson("GET", `/api/v1/series?${qs({ "match[]": '{__name__=~".+"}' })}`, "team-a")) as { data: unknown[] };
  return r.data.length;
}

const ROUTES: Route[] = [
  // ---- writes ----
  { method: "POST", path: "/api/v1/push", scope: "write", body: () => remoteWriteBody(), headers: RW_HEADERS, ok: 204 },
  { method: "POST", path: "/api/v1/write", scope: "write", body: () => remoteWriteBody(), headers: RW_HEADERS, ok: 204 },
  { method: "POST", path: "/loki/api/v1/push", scope: "write", body: lokiBody, headers: JSON_HEADERS, ok: 204 },
  { method: "POST", path: "/api/prom/push", scope: "write", body: legacyLokiBody, headers: JSON_HEADERS, ok: 204 },
  // ---- remote read and the Prometheus API, under /api/v1 and /prometheus/api/v1 ----
  ...["/api/v1", "/prometheus/api/v1"].flatMap((p): Route[] => [
    { method: "POST", path: `${p}/read`, scope: "read", body: readBody, headers: RR_HEADERS, ok: 200, binary: true, check: readsProbe },
    { method: "GET", path: `${p}/query?${qs({ query: "auth_probe", time: String(TS) })}`, scope: "read", ok: 200, check: probeVector },
    { method: "POST", path: `${p}/query`, scope: "read", body: form({ query: "auth_probe", time: String(TS) }), headers: FORM, ok: 200, check: probeVector },
    { method: "GET", path: `${p}/query_range?${qs({ query: "auth_probe", start: String(TS - 60), end: String(TS), step: "60" })}`, scope: "read", ok: 200, check: probeMatrix },
    { method: "POST", path: `${p}/query_range`, scope: "read", body: form({ query: "auth_probe", start: String(TS - 60), end: String(TS), step: "60" }), headers: FORM, ok: 200, check: probeMatrix },
    { method: "GET", path: `${p}/series?${qs({ "match[]": "auth_probe" })}`, scope: "read", ok: 200, check: probeSeries },
    { method: "POST", path: `${p}/series`, scope: "read", body: form({ "match[]": "auth_probe" }), headers: FORM, ok: 200, check: probeSeries },
    { method: "GET", path: `${p}/labels?${qs({ "match[]": "auth_probe" })}`, scope: "read", ok: 200, check: probeLabels },
    { method: "POST", path: `${p}/labels`, scope: "read", body: form({ "match[]": "auth_probe" }), headers: FORM, ok: 200, check: probeLabels },
    { method: "GET", path: `${p}/label/job/values`, scope: "read", ok: 200, check: jobValues },
    { method: "GET", path: `${p}/metadata?${qs({ metric: "auth_probe" })}`, scope: "read", ok: 200, check: probeMetadata },
    { method: "GET", path: `${p}/status/buildinfo`, scope: "read", ok: 200, check: buildInfo },
    { method: "GET", path: `${p}/query_exemplars?${qs({ query: "auth_probe", ...range })}`, scope: "read", ok: 200, check: noExemplars },
    { method: "POST", path: `${p}/query_exemplars`, scope: "read", body: form({ query: "auth_probe", ...range }), headers: FORM, ok: 200, check: noExemplars },
    { method: "GET", path: `${p}/format_query?${qs({ query: "sum(auth_probe)by(job)" })}`, scope: "read", ok: 200, check: formatted },
    { method: "POST", path: `${p}/format_query`, scope: "read", body: form({ query: "sum(auth_probe)by(job)" }), headers: FORM, ok: 200, check: formatted },
  ]),
  // ---- the Loki query API ----
  { method: "GET", path: `/loki/api/v1/query?${qs({ query: `count_over_time(${LOG_SELECTOR}[5m])` })}`, scope: "read", ok: 200, check: lokiCount },
  { method: "POST", path: "/loki/api/v1/query", scope: "read", body: form({ query: `count_over_time(${LOG_SELECTOR}[5m])` }), headers: FORM, ok: 200, check: lokiCount },
  { method: "GET", path: `/loki/api/v1/query_range?${qs({ query: LOG_SELECTOR })}`, scope: "read", ok: 200, check: lokiStreams },
  { method: "POST", path: "/loki/api/v1/query_range", scope: "read", body: form({ query: LOG_SELECTOR }), headers: FORM, ok: 200, check: lokiStreams },
  { method: "GET", path: "/loki/api/v1/labels", scope: "read", ok: 200, check: lokiList(["app"]) },
  { method: "GET", path: "/loki/api/v1/label", scope: "read", ok: 200, check: lokiList(["app"]) },
  { method: "GET", path: "/loki/api/v1/label/app/values", scope: "read", ok: 200, check: lokiList(["auth"]) },
  { method: "GET", path: `/loki/api/v1/series?${qs({ "match[]": LOG_SELECTOR })}`, scope: "read", ok: 200, check: lokiSeries },
  { method: "POST", path: "/loki/api/v1/series", scope: "read", body: form({ "match[]": LOG_SELECTOR }), headers: FORM, ok: 200, check: lokiSeries },
  {
    method: "GET",
    path: `/loki/api/v1/index/stats?${qs({ query: LOG_SELECTOR })}`,
    scope: "read",
    ok: 200,
    check: (text) => {
      const s = JSON.parse(text);
      expect([s.streams, s.entries, s.bytes]).toEqual([1, 1, "hello".length]);
    },
  },
  { method: "POST", path: "/loki/api/v1/labels", scope: "read", body: form({}), headers: FORM, ok: 200, check: lokiList(["app"]) },
  { method: "POST", path: "/loki/api/v1/label", scope: "read", body: form({}), headers: FORM, ok: 200, check: lokiList(["app"]) },
  { method: "POST", path: "/loki/api/v1/label/app/values", scope: "read", body: form({}), headers: FORM, ok: 200, check: lokiList(["auth"]) },
  {
    method: "POST",
    path: "/loki/api/v1/index/stats",
    scope: "read",
    body: form({ query: LOG_SELECTOR }),
    headers: FORM,
    ok: 200,
    check: (text) => expect(JSON.parse(text)).toMatchObject({ streams: 1, entries: 1, bytes: "hello".length }),
  },
  { method: "GET", path: `/loki/api/v1/index/volume?${qs({ query: LOG_SELECTOR })}`, scope: "read", ok: 200, check: lokiVolume("vector") },
  { method: "POST", path: "/loki/api/v1/index/volume", scope: "read", body: form({ query: LOG_SELECTOR }), headers: FORM, ok: 200, check: lokiVolume("vector") },
  { method: "GET", path: `/loki/api/v1/index/volume_range?${qs({ query: LOG_SELECTOR, step: "3600" })}`, scope: "read", ok: 200, check: lokiVolume("any") },
  { method: "POST", path: "/loki/api/v1/index/volume_range", scope: "read", body: form({ query: LOG_SELECTOR, step: "3600" }), headers: FORM, ok: 200, check: lokiVolume("any") },
  { method: "GET", path: "/loki/api/v1/status/buildinfo", scope: "read", ok: 200, check: (text) => expect(JSON.parse(text).version).toBe("3.0.0") },
  {
    // A real live tail: the upgrade is the success (Loki's tail is a websocket).
    method: "GET",
    path: `/loki/api/v1/tail?${qs({ query: LOG_SELECTOR })}`,
    scope: "read",
    headers: { Upgrade: "websocket" },
    ok: 101,
    binary: true,
    check: (_text, res) => {
      const ws = res.webSocket!;
      expect(ws).not.toBeNull();
      ws.accept();
      ws.close(1000, "done");
    },
  },
  // ---- admin: one tenant ----
  {
    method: "GET",
    path: "/api/v1/status/ingesters",
    scope: "admin",
    ok: 200,
    check: (text) => {
      const s = JSON.parse(text);
      expect([s.status, s.data.tenant, s.data.shards.length]).toEqual(["success", "team-a", 4]);
    },
  },
  {
    method: "GET",
    path: "/api/v1/user_stats",
    scope: "admin",
    ok: 200,
    check: async (text) => expect(JSON.parse(text).numSeries).toBe(await teamASeries()),
  },
  { method: "POST", path: "/flush", scope: "admin", ok: 204 },
  {
    method: "GET",
    path: `/api/v1/blocks?${qs({ kind: "logs" })}`,
    scope: "admin",
    ok: 200,
    before: flushTeamA,
    // The flush above wrote team-a's one log line to R2.
    check: (text) => {
      const blocks = JSON.parse(text).data.blocks as { stats: { numEntries: number } }[];
      expect(blocks.reduce((n, b) => n + b.stats.numEntries, 0)).toBe(1);
    },
  },
  // ---- admin: every tenant ----
  { method: "POST", path: "/flush?all=true", scope: "admin", allTenants: true, ok: 204 },
  {
    method: "GET",
    path: "/api/v1/status/r2",
    scope: "admin",
    allTenants: true,
    ok: 200,
    check: (text) => expect(JSON.parse(text).status).toBe("success"),
  },
  { method: "GET", path: "/api/v1/runtime_config", scope: "admin", allTenants: true, ok: 200, check: EMPTY_RUNTIME_CONFIG },
  { method: "PUT", path: "/api/v1/runtime_config", scope: "admin", allTenants: true, body: () => "{}", ok: 200, check: EMPTY_RUNTIME_CONFIG },
  { method: "GET", path: `/api/v1/shards?${qs({ tenant: "team-ring" })}`, scope: "admin", allTenants: true, ok: 200, check: ringOf("team-ring", 4) },
  { method: "PUT", path: `/api/v1/shards?${qs({ tenant: "team-ring", shards: "3" })}`, scope: "admin", allTenants: true, ok: 200, check: ringOf("team-ring", 3) },
  {
    method: "GET",
    path: "/metrics",
    scope: "admin",
    allTenants: true,
    ok: 200,
    before: flushTeamA,
    check: async (text, res) => {
      expect(res.headers.get("Content-Type")).toBe(EXPOSITION_CONTENT_TYPE);
      // One more sample for team-a shows in the next scrape, exactly.
      const before = value(parseStrict(text), "cortex_distributor_received_samples_total", { user: "team-a" });
      expect(await pushUp("team-a")).toBe(204);
      const again = await opsCall("GET", "/metrics", null);
      expect(value(parseStrict(await again.text()), "cortex_distributor_received_samples_total", { user: "team-a" })).toBe(before + 1);
    },
  },
  {
    method: "GET",
    path: "/distributor/all_user_stats",
    scope: "admin",
    allTenants: true,
    ok: 200,
    before: flushTeamA,
    check: async (text) => {
      const all = JSON.parse(text) as { userID: string; stats: { numSeries: number } }[];
      expect(all.find((u) => u.userID === "team-a")?.stats.numSeries).toBe(await teamASeries());
    },
  },
  {
    method: "GET",
    path: "/status",
    scope: "admin",
    allTenants: true,
    ok: 200,
    before: flushTeamA,
    check: (text, res) => {
      expect(res.headers.get("Content-Type")).toBe("text/html; charset=utf-8");
      expect(text).toContain('<tr class="tenant-row" data-tenant="team-a">');
    },
  },
  // ---- last: shutdown stops team-a's writes, resume starts them again ----
  {
    method: "POST",
    path: "/shutdown",
    scope: "admin",
    ok: 204,
    check: async () => expect(await pushUp("team-a")).toBe(503),
  },
  {
    method: "DELETE",
    path: "/shutdown",
    scope: "admin",
    ok: 204,
    check: async () => expect(await pushUp("team-a")).toBe(204),
  },
];

function call(route: Route, headers: Record<string, string>): Promise<Response> {
  return SELF.fetch(`http://ingester${route.path}`, { method: route.method, body: route.body?.(), headers: { ...route.headers, ...headers } });
}

/** A credential with exactly the route's scope, allowed on team-a only (so team-b is the wrong tenant). */
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

beforeAll(async () => {
  const metadata = [{ type: MetricType.GAUGE, metricFamilyName: "auth_probe", help: PROBE_HELP, unit: "" }];
  const m = await opsCall("POST", "/api/v1/push", "team-a", remoteWriteBody("auth_probe", 7, T, metadata), RW_HEADERS);
  expect(m.status, await m.text()).toBe(204);
  const l = await opsCall("POST", "/loki/api/v1/push", "team-a", lokiBody(), JSON_HEADERS);
  expect(l.status, await l.text()).toBe(204);
});

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

      // The right one: exactly the route's scope, on team-a alone (or on "*" where the route acts on every tenant).
      await route.before?.();
      const right = await call(route, route.allTenants ? bearer(TOKENS.adminAll) : { ...one.headers, "X-Scope-OrgID": "team-a" });
      const rightText = route.binary ? "" : await right.text();
      expect(right.status, rightText).toBe(route.ok);
      await route.check?.(rightText, right);
    });
  }

  it("leaves /ready open", async () => {
    expect((await SELF.fetch("http://ingester/ready")).status).toBe(200);
  });
});

describe("the matrix covers the route table", () => {
  const table = routeTable();
  /** The route itty-router would run for a row: the first whose method and pattern match. */
  const routeOf = (row: Route) => table.find((r) => (r.method === row.method || r.method === "ALL") && r.match.test(new URL(`http://ingester${row.path}`).pathname));
  const key = (method: string, path: string) => `${method} ${path}`;

  it("has a row for every guarded method and path", () => {
    const covered = new Set(ROUTES.map(routeOf).map((r) => (r === undefined ? "" : key(r.method, r.path))));
    const guarded = table.filter((r) => r.auth !== null).map((r) => key(r.method, r.path));
    expect(guarded.length).toBeGreaterThanOrEqual(61);
    expect(guarded.filter((g) => !covered.has(g))).toEqual([]);
  });

  it("reaches a guarded route with every row, needing the row's scope and tenants", () => {
    for (const row of ROUTES) {
      const r = routeOf(row);
      expect(r === undefined ? "no route" : key(r.method, r.path), row.path).toBe(key(row.method, r?.path ?? ""));
      expect(r!.auth, `${row.method} ${row.path} is not guarded`).not.toBeNull();
      expect(r!.auth!.scope, `${row.method} ${row.path}`).toBe(row.scope);
      const allTenants = r!.auth!.allTenants?.(new Request(`http://ingester${row.path}`, { method: row.method })) ?? false;
      expect(allTenants, `${row.method} ${row.path} acts on every tenant`).toBe(row.allTenants ?? false);
    }
  });

  it("leaves only /ready, CORS preflights and 404/405 answers unguarded", () => {
    const guardedPaths = new Set(table.filter((r) => r.auth !== null).map((r) => r.path));
    const open = table.filter((r) => r.auth === null && !(r.method === "ALL" && (r.path === "*" || guardedPaths.has(r.path))));
    expect(open.map((r) => key(r.method, r.path))).toEqual(["GET /ready", "OPTIONS /loki/api/v1/push", "OPTIONS /api/prom/push"]);
  });
});

describe("credentials", () => {
  const push = ROUTES[0];
  const query = ROUTES.find((r) => r.method === "GET" && r.path.startsWith("/api/v1/query?"))!;

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

describe("federated limits: a tenant's stricter limit holds when it is federated", () => {
  // Mimir reads a federated query's limits as the smallest over its tenants
  // (pkg/util/validation SmallestPositiveIntPerTenant); limitsFor("A|B") alone would give the defaults.
  const BIG = "fed-big";
  const SMALL = "fed-small"; // maxSeriesPerQuery 2, holds 3 series
  const FEW = "fed-few"; // maxSamplesPerQuery 2, one series of 3 samples
  const SLOW = "fed-slow"; // queryTimeoutMs 0: every query times out before it starts
  const TINY = "fed-tiny"; // maxRequestBodyBytes 32
  const SERIES_ERROR = "the query exceeded the maximum number of series (limit: 2 series, maxSeriesPerQuery)";
  const SAMPLES_ERROR = "query processing would load too many samples into memory in query execution (limit: 2 samples, maxSamplesPerQuery)";

  function pushSeries(tenant: string, series: { labels: Record<string, string>; samples: [number, number][] }[]): Promise<Response> {
    return opsCall("POST", "/api/v1/push", tenant, snappyCompress(encodeWriteRequestV1(series.map(toSeriesSamples), [])), RW_HEADERS);
  }
  async function api(path: string, params: Record<string, string>, tenant: string) {
    const r = await opsCall("GET", `${path}?${qs(params)}`, tenant);
    const text = await r.text();
    return { status: r.status, body: JSON.parse(text) as { status: string; errorType?: string; error?: string; data?: { result: unknown[] } } };
  }
  const instant = (query: string, tenant: string) => api("/api/v1/query", { query, time: String(TS) }, tenant);
  const rangeQuery = (query: string, tenant: string) => api("/api/v1/query_range", { query, start: String(TS - 60), end: String(TS), step: "30" }, tenant);
  async function remoteRead(tenant: string, matchers = [eq("__name__", "fedlim")]) {
    const body = snappyCompress(encodeReadRequest([{ matchers, startMs: 0, endMs: NOW + 60_000 }]));
    const r = await opsCall("POST", "/api/v1/read", tenant, body, RR_HEADERS);
    if (r.status !== 200) return { status: r.status, text: await r.text(), series: [] };
    return { status: r.status, text: "", series: readAnswer(decodeRead(await r.arrayBuffer())) };
  }

  beforeAll(async () => {
    const put = await opsCall(
      "PUT",
      "/api/v1/runtime_config",
      null,
      JSON.stringify({ overrides: { [SMALL]: { maxSeriesPerQuery: 2 }, [FEW]: { maxSamplesPerQuery: 2 }, [SLOW]: { queryTimeoutMs: 0 }, [TINY]: { maxRequestBodyBytes: 32 } } }),
    );
    expect(put.status, await put.text()).toBe(200);
    const one = (i: number, v: number) => ({ labels: { __name__: "fedlim", job: "auth", i: String(i) }, samples: [[T, v]] as [number, number][] });
    for (const [tenant, series] of [
      [BIG, [one(0, 10)]],
      [SMALL, [one(0, 20), one(1, 21), one(2, 22)]],
      [FEW, [{ labels: { __name__: "fedlim", job: "auth", i: "0" }, samples: [[T - 20_000, 30], [T - 10_000, 31], [T, 32]] as [number, number][] }]],
      // fed-tiny holds nothing: its body limit refuses pushes too.
      [SLOW, [one(0, 40)]],
    ] as const) {
      const r = await pushSeries(tenant, [...series]);
      expect(r.status, await r.text()).toBe(204);
    }
  });

  it("maxSeriesPerQuery: 422 federated as alone, on query and query_range", async () => {
    expect(await instant("fedlim", BIG)).toEqual({ status: 200, body: { status: "success", data: { resultType: "vector", result: [{ metric: { __name__: "fedlim", i: "0", job: "auth" }, value: [TS, "10"] }] } } });
    for (const tenant of [SMALL, `${BIG}|${SMALL}`]) {
      for (const r of [await instant("fedlim", tenant), await rangeQuery("fedlim", tenant)]) {
        expect([r.status, r.body.errorType], tenant).toEqual([422, "execution"]);
        expect(r.body.error).toContain(SERIES_ERROR);
      }
    }
    // Choosing fed-big with __tenant_id__ stays within the limit of 2.
    const chosen = await instant('fedlim{__tenant_id__="fed-big"}', `${BIG}|${SMALL}`);
    expect(chosen.status).toBe(200);
    expect(chosen.body.data!.result).toEqual([{ metric: { __name__: "fedlim", __tenant_id__: BIG, i: "0", job: "auth" }, value: [TS, "10"] }]);
  });

  it("maxSamplesPerQuery: 422 federated as alone", async () => {
    expect((await instant("count_over_time(fedlim[1m])", BIG)).status).toBe(200);
    for (const tenant of [FEW, `${BIG}|${FEW}`]) {
      const r = await instant("count_over_time(fedlim[1m])", tenant);
      expect([r.status, r.body.errorType], tenant).toEqual([422, "execution"]);
      expect(r.body.error).toBe(SAMPLES_ERROR);
    }
  });

  it("queryTimeoutMs: 503 federated as alone, on query and query_range", async () => {
    expect((await rangeQuery("fedlim", BIG)).status).toBe(200);
    for (const tenant of [SLOW, `${SLOW}|${BIG}`]) {
      for (const r of [await instant("fedlim", tenant), await rangeQuery("fedlim", tenant)]) {
        expect(r, tenant).toEqual({ status: 503, body: { status: "error", errorType: "timeout", error: "query timed out in query queue" } });
      }
    }
  });

  it("query_range merges the tenants' series, each labelled with __tenant_id__", async () => {
    const r = await rangeQuery('fedlim{i="0"}', `${BIG}|${SMALL}`);
    expect(r).toEqual({
      status: 200,
      body: {
        status: "success",
        data: {
          resultType: "matrix",
          result: [
            { metric: { __name__: "fedlim", __tenant_id__: BIG, i: "0", job: "auth" }, values: [[TS, "10"]] },
            { metric: { __name__: "fedlim", __tenant_id__: SMALL, i: "0", job: "auth" }, values: [[TS, "20"]] },
          ],
        },
      },
    });
  });

  it("remote read merges the tenants' series with __tenant_id__, and the smallest body limit holds", async () => {
    const both = await remoteRead(`${BIG}|${SMALL}`);
    expect(both.status, both.text).toBe(200);
    const labels = (tenant: string, i: number) => ["__name__", "fedlim", "__tenant_id__", tenant, "i", String(i), "job", "auth"];
    expect(both.series).toEqual([
      [
        { labels: labels(BIG, 0), samples: [[T, 10]] },
        { labels: labels(SMALL, 0), samples: [[T, 20]] },
        { labels: labels(SMALL, 1), samples: [[T, 21]] },
        { labels: labels(SMALL, 2), samples: [[T, 22]] },
      ],
    ]);
    const chosen = await remoteRead(`${BIG}|${SMALL}`, [eq("__name__", "fedlim"), eq("__tenant_id__", SMALL), re("i", "[01]")]);
    expect(chosen.series).toEqual([[{ labels: labels(SMALL, 0), samples: [[T, 20]] }, { labels: labels(SMALL, 1), samples: [[T, 21]] }]]);

    // A body over fed-tiny's 32 bytes: 413 alone and federated, 200 for fed-big alone.
    const big = [eq("__name__", "fedlim"), re("job", "auth|a-longer-alternative-to-pass-32-bytes")];
    expect((await remoteRead(BIG, big)).status).toBe(200);
    for (const tenant of [TINY, `${BIG}|${TINY}`]) {
      const r = await remoteRead(tenant, big);
      expect(r.status, tenant).toBe(413);
      expect(r.text).toContain("exceeds the limit of 32 bytes (maxRequestBodyBytes)");
    }
  });
});

describe("browser keys", () => {
  const SHOP_KEY = "shop-browser-key-0123456789";
  const OLD_KEY = "old-browser-key-0123456789";
  const ORIGIN = "https://shop.example";

  async function putConfig(config: unknown): Promise<Response> {
    const body = typeof config === "string" ? config : JSON.stringify(config);
    return SELF.fetch("http://ingester/api/v1/runtime_config", { method: "PUT", body, headers: bearer(TOKENS.ops) });
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

  it("a bad runtime config body is refused with its line and column, never echoing a key in it", async () => {
    const secret = "leaky-browser-key-0123456789";
    const cases: [string, string][] = [
      // V8's JSON.parse message would quote the text around the unquoted key.
      [`{"browserKeys": [{"id": "k", "key": ${secret}, "tenant": "team-a"}]}`, `unexpected character at line 1, column ${'{"browserKeys": [{"id": "k", "key": '.length + 1}`],
      [`{"browserKeys": [\n  {"id": "k", "key": "${secret}"`, `unexpected end at line 2, column ${`  {"id": "k", "key": "${secret}"`.length + 1}`],
      [`{"browserKeys": [{"id": "k", "key": "${secret}"}]}}`, `unexpected character at line 1, column ${`{"browserKeys": [{"id": "k", "key": "${secret}"}]}`.length + 1}`],
    ];
    for (const [body, where] of cases) {
      const r = await putConfig(body);
      const text = await r.text();
      expect(r.status, text).toBe(400);
      expect(text).toBe(`runtime config is not valid JSON: ${where}\n`);
      expect(text).not.toContain(secret.slice(0, 6));
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
