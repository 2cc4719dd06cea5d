// The Loki HTTP API (/loki/api/v1/*), as Loki 3's querier serves it
// (pkg/querier/http.go): query, query_range, labels, label values, series, index
// stats, volumes (./volume.ts), build info and the live tail. Every query route takes
// GET and POST, as Loki registers them (querier.InitWorkerService: Methods("GET", "POST")). Parameters: ./params.ts; JSON: ./respond.ts; the engine
// and the store behind one seam: ./backend.ts. Errors are Loki's plain-text 400s.

import type { IRequest } from "itty-router";
import { limitsFor } from "../../config/limits";
import { HttpError } from "../../http/errors";
import { tenantOf } from "../../http/tenant";
import type { LabelMatcher } from "../../proto/types";
import * as backend from "./backend";
import { bounds, checkEntriesLimit, instantParams, nowNs, rangeParams, readForm, seriesMatchers } from "./params";
import { indexStatsResponse, jsonResponse, seriesResponse, statsJson, stringListResponse, successResponse } from "./respond";
import { handleTail } from "./tail";

type Handler = (request: IRequest, env: Env, ctx: ExecutionContext) => Promise<Response>;

/** GET/POST /loki/api/v1/query: an instant metric query (Loki refuses log selectors here). */
export const lokiQuery: Handler = async (request, env) => {
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  const p = instantParams(form, nowNs());
  const q = backend.parseQuery(p.query);
  if (q.kind === "log") {
    // Loki's query frontend (queryrange/roundtrip.go): instant log queries are refused.
    throw new HttpError(400, "log queries are not supported as an instant query type, please change your query to a range query type");
  }
  const limits = limitsFor(env, tenant);
  const started = Date.now();
  const processed: backend.Processed = { lines: 0, bytes: 0 };
  const data = await backend.evalQuery(env, tenant, q, {
    start: p.time,
    end: p.time,
    stepNs: 0,
    intervalNs: 0,
    limit: p.limit,
    direction: p.direction,
    maxSeries: limits.maxLogQuerySeries,
    categorizeLabels: categorize(request),
  }, processed);
  return dataResponse(data, started, processed, categorize(request));
};

/** GET/POST /loki/api/v1/query_range: log queries (streams) and metric queries (matrix). */
export const lokiQueryRange: Handler = async (request, env) => {
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  const p = rangeParams(form, nowNs());
  const q = backend.parseQuery(p.query);
  const limits = limitsFor(env, tenant);
  // Loki's validateMaxEntriesLimits: only log queries return entries.
  if (q.kind === "log") checkEntriesLimit(p.limit, limits.maxEntriesLimitPerQuery);
  const started = Date.now();
  const processed: backend.Processed = { lines: 0, bytes: 0 };
  const data = await backend.evalQuery(env, tenant, q, {
    start: p.start,
    end: p.end,
    stepNs: p.stepNs,
    intervalNs: p.intervalNs,
    limit: p.limit,
    direction: p.direction,
    maxSeries: limits.maxLogQuerySeries,
    categorizeLabels: categorize(request),
  }, processed);
  return dataResponse(data, started, processed, categorize(request));
};

/** GET/POST /loki/api/v1/labels (and /label): label names of the streams in range, optionally of a selector (?query=). */
export const lokiLabels: Handler = async (request, env) => {
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  const { start, end } = bounds(form, nowNs());
  const matchers = optionalSelector(form.value("query"));
  const names = await backend.labelNames(env, tenant, matchers, start, end);
  return stringListResponse(sortedUnique(names));
};

/** GET/POST /loki/api/v1/label/<name>/values. */
export const lokiLabelValues: Handler = async (request, env) => {
  const tenant = tenantOf(request, env);
  const name = labelNameParam(String(request.params.name ?? ""));
  const form = await readForm(request);
  const { start, end } = bounds(form, nowNs());
  const matchers = optionalSelector(form.value("query"));
  const values = await backend.labelValues(env, tenant, name, matchers, start, end);
  return stringListResponse(sortedUnique(values));
};

/** GET/POST /loki/api/v1/series: the label sets of streams matching any match[] (none: every stream). */
export const lokiSeries: Handler = async (request, env) => {
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  const { start, end } = bounds(form, nowNs());
  const groups: LabelMatcher[][] = [];
  for (const m of seriesMatchers(form)) {
    const matchers = backend.parseSelector(m);
    if (matchers.length === 0) throw new HttpError(400, `0 matchers in group: ${m}`);
    groups.push(matchers);
  }
  const found = await backend.series(env, tenant, groups, start, end);
  return seriesResponse(found);
};

/** GET/POST /loki/api/v1/index/stats?query={...}&start&end: {streams, chunks, entries, bytes} of the selected streams. */
export const lokiIndexStats: Handler = async (request, env) => {
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  // Loki's ParseIndexStatsQuery is ParseRangeQuery: the same bounds and checks.
  const p = rangeParams(form, nowNs());
  if (p.query === "") throw new HttpError(400, "query parameter is required: a stream selector such as {app=\"x\"}");
  const matchers = backend.parseSelector(p.query);
  const stats = await backend.indexStats(env, tenant, matchers, p.start, p.end);
  return indexStatsResponse(stats);
};

/**
 * The Loki HTTP API version this server answers as: Loki 3's query API (structured
 * metadata, categorize-labels, the volume API). Not later: Grafana's Logs Drilldown
 * reads newer versions as promising patterns and detected fields, which are not served.
 */
export const LOKI_API_VERSION = "3.0.0";

/**
 * GET /loki/api/v1/status/buildinfo: Loki's versionHandler, Prometheus's
 * PrometheusVersion fields as a bare object (no {"status","data"} envelope).
 */
export const lokiBuildInfo: Handler = async () =>
  jsonResponse(
    JSON.stringify({
      version: LOKI_API_VERSION,
      revision: "edge-ingester",
      branch: "main",
      buildUser: "edge-ingester",
      buildDate: "",
      goVersion: "none (TypeScript on Cloudflare Workers)",
    }),
  );

/** GET /loki/api/v1/tail (WebSocket): ./tail.ts. */
export const lokiTail: Handler = async (request, env, ctx) => handleTail(request, env, ctx);

/** The <name> path segment, percent-decoded; a malformed escape is the client's 400, not our 500. */
function labelNameParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `label name ${JSON.stringify(raw)} in the path is not valid percent-encoding`);
  }
}

function optionalSelector(query: string): LabelMatcher[] {
  return query === "" ? [] : backend.parseSelector(query);
}

function sortedUnique(xs: string[]): string[] {
  return [...new Set(xs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Loki's X-Loki-Response-Encoding-Flags: categorize-labels (Grafana sends it): stream
 * labels stay the stream's, and each entry carries its structured metadata and parsed
 * labels as a third element.
 */
function categorize(request: Request): boolean {
  const flags = request.headers.get("X-Loki-Response-Encoding-Flags") ?? "";
  return flags.split(",").some((f) => f.trim() === "categorize-labels");
}

/**
 * The query envelope, with a stats block when the engine gave none (Grafana reads
 * data.stats), and, for categorized streams, Loki's "encodingFlags" that tell the
 * client how to read the entries.
 */
function dataResponse(data: backend.QueryData, startedMs: number, processed: backend.Processed, categorized: boolean): Response {
  const stats =
    data.stats ?? JSON.parse(statsJson({ entriesReturned: entriesIn(data), linesProcessed: processed.lines, bytesProcessed: processed.bytes, execTimeS: (Date.now() - startedMs) / 1000 }));
  const body: Record<string, unknown> = { resultType: data.resultType, result: data.result, stats };
  if (categorized && data.resultType === "streams") body.encodingFlags = ["categorize-labels"];
  return successResponse(JSON.stringify(body));
}

function entriesIn(data: backend.QueryData): number {
  if (data.resultType !== "streams" || !Array.isArray(data.result)) return 0;
  let n = 0;
  for (const s of data.result as { values?: unknown[] }[]) n += s.values?.length ?? 0;
  return n;
}
