// The Worker: the front door for writes (distributor) and reads (querier).
// Routes are thin: each handler lives with the part of the system it belongs to.

import { Router, type IRequest } from "itty-router";
import { handleRemoteWrite } from "./distributor/push";
import { handleRemoteRead } from "./querier/remote_read";
import { handleIngesterStatus, handleR2Status } from "./http/status";
import { tenantOf } from "./http/tenant";
import { toResponse } from "./http/respond";
import { handleFlush, handleListBlocks, handleResume, handleShutdown } from "./http/admin";
import { apiHandler } from "./querier/api/respond";
import { handleFormatQuery, handleQuery, handleQueryExemplars, handleQueryRange } from "./querier/api/query";
import { handleLabelNames, handleLabelValues, handleSeries } from "./querier/api/labels";
import { handleMetadata } from "./querier/api/metadata";
import { handleBuildInfo } from "./querier/api/buildinfo";
import { handleLokiPush } from "./distributor/logs/push";
import { lokiIndexStats, lokiLabelValues, lokiLabels, lokiQuery, lokiQueryRange, lokiSeries, lokiTail } from "./querier/loki/routes";

export { Ingester } from "../durable-objects/ingester";
export { LogIngester } from "../durable-objects/log_ingester";

type Args = [Env, ExecutionContext];

const router = Router<IRequest, Args>({
  catch: (err) => toResponse(err),
});

router
  .get("/ready", () => new Response("ready\n"))
  .post("/api/v1/push", (req, env) => handleRemoteWrite(req, env, tenantOf(req, env)))
  .post("/api/v1/write", (req, env) => handleRemoteWrite(req, env, tenantOf(req, env)))
  .post("/api/v1/read", (req, env) => handleRemoteRead(req, env, tenantOf(req, env)))
  .post("/prometheus/api/v1/read", (req, env) => handleRemoteRead(req, env, tenantOf(req, env)))
  .get("/api/v1/status/ingesters", (req, env) => handleIngesterStatus(env, tenantOf(req, env)))
  .post("/flush", (req, env) => handleFlush(req, env, tenantOf(req, env)))
  .post("/shutdown", (req, env) => handleShutdown(env, tenantOf(req, env)))
  .delete("/shutdown", (req, env) => handleResume(env, tenantOf(req, env)))
  .get("/api/v1/status/r2", () => handleR2Status())
  .get("/api/v1/blocks", (req, env) => handleListBlocks(req, env, tenantOf(req, env)))
  .all("/api/v1/push", methodNotAllowed("POST"))
  .all("/api/v1/write", methodNotAllowed("POST"))
  .all("/api/v1/read", methodNotAllowed("POST"));

// The Prometheus HTTP API (src/querier/api/), also under /prometheus as Mimir and
// Cortex serve it, so a Grafana data source URL may end in either.
for (const p of ["/api/v1", "/prometheus/api/v1"]) {
  const query = apiHandler(handleQuery);
  const queryRange = apiHandler(handleQueryRange);
  const series = apiHandler(handleSeries);
  const labels = apiHandler(handleLabelNames);
  const exemplars = apiHandler(handleQueryExemplars);
  const formatQuery = apiHandler(handleFormatQuery);
  router
    .get(`${p}/query`, query)
    .post(`${p}/query`, query)
    .get(`${p}/query_range`, queryRange)
    .post(`${p}/query_range`, queryRange)
    .get(`${p}/series`, series)
    .post(`${p}/series`, series)
    .get(`${p}/labels`, labels)
    .post(`${p}/labels`, labels)
    .get(`${p}/label/:name/values`, apiHandler((req: IRequest, env, tenant) => handleLabelValues(req, env, tenant, req.params.name)))
    .get(`${p}/metadata`, apiHandler(handleMetadata))
    .get(`${p}/status/buildinfo`, apiHandler(async () => handleBuildInfo()))
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
router
  .post("/loki/api/v1/push", (req, env) => handleLokiPush(req, env, tenantOf(req, env)))
  .post("/api/prom/push", (req, env) => handleLokiPush(req, env, tenantOf(req, env)))
  .all("/loki/api/v1/push", methodNotAllowed("POST"))
  .get("/loki/api/v1/query", lokiQuery)
  .post("/loki/api/v1/query", lokiQuery)
  .get("/loki/api/v1/query_range", lokiQueryRange)
  .post("/loki/api/v1/query_range", lokiQueryRange)
  .get("/loki/api/v1/labels", lokiLabels)
  .get("/loki/api/v1/label", lokiLabels)
  .get("/loki/api/v1/label/:name/values", lokiLabelValues)
  .get("/loki/api/v1/series", lokiSeries)
  .post("/loki/api/v1/series", lokiSeries)
  .get("/loki/api/v1/index/stats", lokiIndexStats)
  .get("/loki/api/v1/tail", lokiTail);

router.all("*", (req) => new Response(`no route for ${req.method} ${new URL(req.url).pathname}\n`, { status: 404 }));

function methodNotAllowed(allow: string) {
  return (req: IRequest) =>
    new Response(`method ${req.method} is not allowed on ${new URL(req.url).pathname}; use ${allow}\n`, { status: 405, headers: { Allow: allow } });
}

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
