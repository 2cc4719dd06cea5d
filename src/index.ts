// The Worker: the front door for writes (distributor) and reads (querier).
// Routes are thin: each handler lives with the part of the system it belongs to.

import { Router, type IRequest } from "itty-router";
import { handleRemoteWrite } from "./distributor/push";
import { handleRemoteRead } from "./querier/remote_read";
import { handleAllUserStats, handleIngesterStatus, handleR2Status, handleStatusPage, handleUserStats } from "./http/status";
import { handleMetrics } from "./observability/metrics";
import { instrumented } from "./observability/requests";
import { guard, sameGuard } from "./auth/guard";
import { ROUTE_TABLE } from "./http/routes";
import { handleGetRuntimeConfig, handlePutRuntimeConfig, refreshRuntimeConfig } from "./config/runtime";
import { toResponse } from "./http/respond";
import { discardBody } from "./http/body";
import { handleFlush, handleListBlocks, handleResume, handleShutdown } from "./http/admin";
import { apiHandler } from "./querier/api/respond";
import { handleFormatQuery, handleQuery, handleQueryExemplars, handleQueryRange } from "./querier/api/query";
import { handleLabelNames, handleLabelValues, handleSeries } from "./querier/api/labels";
import { handleMetadata } from "./querier/api/metadata";
import { handleBuildInfo } from "./querier/api/buildinfo";
import { handleLokiPush } from "./distributor/logs/push";
import { withTenantParam } from "./distributor/logs/tenant";
import { handlePushPreflight, withPushCors } from "./http/cors";
import { handleGetShards, handlePutShards } from "./distributor/tenant_ring";
import { lokiBuildInfo, lokiIndexStats, lokiLabelValues, lokiLabels, lokiQuery, lokiQueryRange, lokiSeries, lokiTail } from "./querier/loki/routes";
import { lokiVolume, lokiVolumeRange } from "./querier/loki/volume";

export { Ingester } from "../durable-objects/ingester";
export { LogIngester } from "../durable-objects/log_ingester";
export { RateLimiter } from "../durable-objects/rate_limiter";
export { TenantControl } from "../durable-objects/tenant";

type Args = [Env, ExecutionContext];

const router = Router<IRequest, Args>({
  // The route table is kept where tests can read it back (src/http/routes.ts).
  routes: ROUTE_TABLE,
  catch: (err) => toResponse(err),
});

// Every route but /ready (and 404/405 answers) goes through guard() (src/auth/): it
// needs the scope named here and yields the tenant the credential may act for.
// Handlers that take no tenant argument read it with tenantOf(request, env).
const federated = { federation: true } as const;
const everyTenant = () => true;
const flushAll = (req: Request) => new URL(req.url).searchParams.get("all") === "true";

router
  .get("/ready", () => new Response("ready\n"))
  .post("/api/v1/push", guard("write", (req, env, _ctx, auth) => handleRemoteWrite(req, env, auth.tenant)))
  .post("/api/v1/write", guard("write", (req, env, _ctx, auth) => handleRemoteWrite(req, env, auth.tenant)))
  .post("/api/v1/read", guard({ scope: "read", ...federated }, (req, env, _ctx, auth) => handleRemoteRead(req, env, auth.tenant)))
  .post("/prometheus/api/v1/read", guard({ scope: "read", ...federated }, (req, env, _ctx, auth) => handleRemoteRead(req, env, auth.tenant)))
  .get("/api/v1/status/ingesters", guard("admin", (_req, env, _ctx, auth) => handleIngesterStatus(env, auth.tenant)))
  .post("/flush", guard({ scope: "admin", allTenants: flushAll }, (req, env, _ctx, auth) => handleFlush(req, env, auth.tenant)))
  .post("/shutdown", guard("admin", (_req, env, _ctx, auth) => handleShutdown(env, auth.tenant)))
  .delete("/shutdown", guard("admin", (_req, env, _ctx, auth) => handleResume(env, auth.tenant)))
  .get("/api/v1/status/r2", guard({ scope: "admin", allTenants: everyTenant }, () => handleR2Status()))
  .get("/api/v1/blocks", guard("admin", (req, env, _ctx, auth) => handleListBlocks(req, env, auth.tenant)))
  // Mimir's runtime config (src/config/runtime.ts): limit overrides and browser keys, changed without a deploy.
  .get("/api/v1/runtime_config", guard({ scope: "admin", allTenants: everyTenant }, (_req, env) => handleGetRuntimeConfig(env)))
  .put("/api/v1/runtime_config", guard({ scope: "admin", allTenants: everyTenant }, (req, env) => handlePutRuntimeConfig(req, env)))
  .all("/api/v1/runtime_config", methodNotAllowed("GET, PUT"))
  // Run-time resharding (src/distributor/tenant_ring.ts): the ring history of the tenant named by ?tenant=.
  .get("/api/v1/shards", guard({ scope: "admin", allTenants: everyTenant }, (req, env) => handleGetShards(req, env)))
  .put("/api/v1/shards", guard({ scope: "admin", allTenants: everyTenant }, (req, env) => handlePutShards(req, env)))
  .all("/api/v1/shards", methodNotAllowed("GET, PUT"))
  .all("/api/v1/push", methodNotAllowed("POST"))
  .all("/api/v1/write", methodNotAllowed("POST"))
  .all("/api/v1/read", methodNotAllowed("POST"));

// The Prometheus HTTP API (src/querier/api/), also under /prometheus as Mimir and
// Cortex serve it, so a Grafana data source URL may end in either.
for (const p of ["/api/v1", "/prometheus/api/v1"]) {
  const query = guard({ scope: "read", ...federated }, apiHandler(handleQuery));
  const queryRange = guard({ scope: "read", ...federated }, apiHandler(handleQueryRange));
  const series = guard("read", apiHandler(handleSeries));
  const labels = guard("read", apiHandler(handleLabelNames));
  const exemplars = guard("read", apiHandler(handleQueryExemplars));
  const formatQuery = guard({ scope: "read", ...federated }, apiHandler(handleFormatQuery));
  router
    .get(`${p}/query`, query)
    .post(`${p}/query`, query)
    .get(`${p}/query_range`, queryRange)
    .post(`${p}/query_range`, queryRange)
    .get(`${p}/series`, series)
    .post(`${p}/series`, series)
    .get(`${p}/labels`, labels)
    .post(`${p}/labels`, labels)
    .get(`${p}/label/:name/values`, guard("read", apiHandler((req: IRequest, env, tenant) => handleLabelValues(req, env, tenant, req.params.name))))
    .get(`${p}/metadata`, guard("read", apiHandler(handleMetadata)))
    .get(`${p}/status/buildinfo`, guard({ scope: "read", ...federated }, apiHandler(async () => handleBuildInfo())))
    .get(`${p}/query_exemplars`, exemplars)
    .post(`${p}/query_exemplars`, exemplars)
    .get(`${p}/format_query`, formatQuery)
    .post(`${p}/format_query`, formatQuery)
    .all(`${p}/query`, methodNotAllowed("GET, POST"))
    .all(`${p}/query_range`, methodNotAllowed("GET, POST"))
    .all(`${p}/series`, methodNotAllowed("GET, POST"))
    .all(`${p}/labels`, methodNotAllowed("GET, POST"))
    .all(`${p}/label/:name/values`, methodNotAllowed("GET"))
    .all(`${p}/metadata`, methodNotAllowed("GET"))
    .all(`${p}/status/buildinfo`, methodNotAllowed("GET"))
    .all(`${p}/query_exemplars`, methodNotAllowed("GET, POST"))
    .all(`${p}/format_query`, methodNotAllowed("GET, POST"));
}

// Loki: push (src/distributor/logs/) and the query API (src/querier/loki/).
// Pushes run under CORS (src/http/cors.ts): browser pages may push, and read the answer;
// `?tenant=` stands in for X-Scope-OrgID (sendBeacon cannot set headers) before guard() checks it.
const lokiPushGuarded = guard({ scope: "write", browserKeys: true }, (req, env, _ctx, auth) => handleLokiPush(req, env, auth.tenant));
const lokiPush = sameGuard(lokiPushGuarded, (req: IRequest, env: Env, ctx: ExecutionContext) => withPushCors(req, env, () => lokiPushGuarded(withTenantParam(req), env, ctx)));
router
  // Browser keys (Bearer or ?key=, bound to a tenant and origins) are accepted here and nowhere else.
  .post("/loki/api/v1/push", lokiPush)
  .post("/api/prom/push", lokiPush)
  .options("/loki/api/v1/push", (req, env) => handlePushPreflight(req, env))
  .options("/api/prom/push", (req, env) => handlePushPreflight(req, env))
  .all("/loki/api/v1/push", methodNotAllowed("POST, OPTIONS"))
  .all("/api/prom/push", methodNotAllowed("POST, OPTIONS"))
  .get("/loki/api/v1/query", guard("read", lokiQuery))
  .post("/loki/api/v1/query", guard("read", lokiQuery))
  .get("/loki/api/v1/query_range", guard("read", lokiQueryRange))
  .post("/loki/api/v1/query_range", guard("read", lokiQueryRange))
  // Loki registers every query route for GET and POST (querier.InitWorkerService).
  .get("/loki/api/v1/labels", guard("read", lokiLabels))
  .post("/loki/api/v1/labels", guard("read", lokiLabels))
  .get("/loki/api/v1/label", guard("read", lokiLabels))
  .post("/loki/api/v1/label", guard("read", lokiLabels))
  .get("/loki/api/v1/label/:name/values", guard("read", lokiLabelValues))
  .post("/loki/api/v1/label/:name/values", guard("read", lokiLabelValues))
  .get("/loki/api/v1/series", guard("read", lokiSeries))
  .post("/loki/api/v1/series", guard("read", lokiSeries))
  .get("/loki/api/v1/index/stats", guard("read", lokiIndexStats))
  .post("/loki/api/v1/index/stats", guard("read", lokiIndexStats))
  .get("/loki/api/v1/index/volume", guard("read", lokiVolume))
  .post("/loki/api/v1/index/volume", guard("read", lokiVolume))
  .get("/loki/api/v1/index/volume_range", guard("read", lokiVolumeRange))
  .post("/loki/api/v1/index/volume_range", guard("read", lokiVolumeRange))
  .get("/loki/api/v1/status/buildinfo", guard("read", lokiBuildInfo))
  .get("/loki/api/v1/tail", guard("read", lokiTail));

// The system's own metrics, per-tenant stats and the status page (src/observability/,
// src/http/status.ts). Admin scope: they show every tenant's counts (user_stats only
// the caller's tenant, but it is Cortex's admin/distributor API too).
router
  .get("/metrics", guard({ scope: "admin", allTenants: everyTenant }, (_req, env) => handleMetrics(env)))
  .get("/api/v1/user_stats", guard("admin", (_req, env, _ctx, auth) => handleUserStats(env, auth.tenant)))
  .get("/distributor/all_user_stats", guard({ scope: "admin", allTenants: everyTenant }, (req, env) => handleAllUserStats(req, env)))
  .get("/status", guard({ scope: "admin", allTenants: everyTenant }, (_req, env) => handleStatusPage(env)));

router.all("*", (req) => new Response(`no route for ${req.method} ${new URL(req.url).pathname}\n`, { status: 404 }));

function methodNotAllowed(allow: string) {
  return (req: IRequest) =>
    new Response(`method ${req.method} is not allowed on ${new URL(req.url).pathname}; use ${allow}\n`, { status: 405, headers: { Allow: allow } });
}

export default {
  // instrumented: cortex_request_duration_seconds by the route the router matched (src/observability/requests.ts).
  fetch: instrumented(async (request: Request, env: Env, ctx: ExecutionContext) => {
    // Once per request, before routing: limitsFor() and the browser keys then read the cached copy (10 s TTL).
    await refreshRuntimeConfig(env);
    const response = await router.fetch(request, env, ctx);
    // A body the route left unread (refused before reading it) is drained: see discardBody.
    await discardBody(request);
    return response;
  }),
} satisfies ExportedHandler<Env>;
