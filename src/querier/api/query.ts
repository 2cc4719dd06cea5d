// GET|POST /api/v1/query, /api/v1/query_range, /api/v1/format_query and
// /api/v1/query_exemplars, as Prometheus's web/api/v1 handles them: parameters
// checked in Prometheus's order with its messages, the expression parsed (400),
// evaluated by the engine over a StorageQueryable (422 execution errors, 503
// timeouts), `limit` applied to the result, annotations returned as warnings/infos.

import type { Limits } from "../../config/limits";
import { queryLimitsFor } from "../federation";
import { exprType, type Expr } from "../promql/ast";
import { instantQuery, rangeQuery } from "../promql/engine";
import { formatExpr } from "../promql/format";
import { PromQLExecError, PromQLTimeoutError, type Annotations, type Value } from "../promql/value";
import { StorageQueryable } from "../queryable";
import { ApiError, jsonString, noContent, queryDataJson, successResponse } from "./respond";
import { durationParam, Form, invalidParam, limitParam, MAX_TIME_MS, MIN_TIME_MS, parseDuration, ParamError, requiredTime, timeParam } from "./params";
import { extractSelectors, parseQueryParam } from "./selectors";
import { TRUNCATED_WARNING } from "./labels";

/** Prometheus caps the annotations of one answer at 10 of each kind. */
const MAX_ANNOTATIONS = 10;

/** Prometheus's range-query guard: points per series. */
const MAX_POINTS = 11000;

interface Common {
  limit: number;
  timeoutMs: number;
  lookbackDeltaMs: number | undefined;
}

/** `timeout` (capped by the tenant's queryTimeoutMs, as -query.timeout caps it) and `lookback_delta`. */
function readCommon(form: Form, limits: Limits, limit: number): Common {
  let timeoutMs = limits.queryTimeoutMs;
  const to = form.value("timeout");
  if (to !== "") timeoutMs = Math.min(timeoutMs, durationParam(form, "timeout"));
  let lookbackDeltaMs: number | undefined;
  const lb = form.value("lookback_delta");
  if (lb !== "") {
    try {
      lookbackDeltaMs = parseDuration(lb);
    } catch (e) {
      if (e instanceof ParamError) throw new ApiError("bad_data", `error parsing lookback delta duration: ${e.message}`);
      throw e;
    }
  }
  // Zero or negative: the engine's default (5m), as Prometheus treats them.
  return { limit, timeoutMs, lookbackDeltaMs: lookbackDeltaMs !== undefined && lookbackDeltaMs > 0 ? lookbackDeltaMs : undefined };
}

/** GET|POST /api/v1/query */
export async function handleQuery(request: Request, env: Env, tenant: string): Promise<Response> {
  const form = await Form.from(request);
  const limit = limitParam(form);
  const time = timeParam(form, "time", Date.now());
  const limits = queryLimitsFor(env, tenant);
  const common = readCommon(form, limits, limit);
  const expr = parseQueryParam(form);
  const q = new StorageQueryable(env, tenant, limits.maxSeriesPerQuery);
  const result = await run(common, limits, (opts) => instantQuery(q, expr, time, opts));
  return answer(result.value, result.annotations, common.limit);
}

/** GET|POST /api/v1/query_range */
export async function handleQueryRange(request: Request, env: Env, tenant: string): Promise<Response> {
  const form = await Form.from(request);
  const limit = limitParam(form);
  const start = requiredTime(form, "start");
  const end = requiredTime(form, "end");
  if (end < start) throw invalidParam("end", "end timestamp must not be before start time");
  const step = durationParam(form, "step");
  if (step <= 0) throw invalidParam("step", "zero or negative query resolution step widths are not accepted. Try a positive integer");
  // Go divides durations in ns: whole points, rounded down.
  if (Math.trunc(((end - start) * 1e6) / Math.round(step * 1e6)) > MAX_POINTS) {
    throw new ApiError("bad_data", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)");
  }
  const limits = queryLimitsFor(env, tenant);
  const common = readCommon(form, limits, limit);
  const expr = parseQueryParam(form);
  const type = exprType(expr);
  if (type !== "vector" && type !== "scalar") {
    throw invalidParam("query", `invalid expression type ${jsonString(documentedType(type))} for range query, must be Scalar or instant Vector`);
  }
  const q = new StorageQueryable(env, tenant, limits.maxSeriesPerQuery);
  // The engine steps in whole ms, as Prometheus's evaluator does; never 0.
  const stepMs = Math.max(1, Math.trunc(step));
  const result = await run(common, limits, (opts) => rangeQuery(q, expr, start, end, stepMs, opts));
  return answer(result.value, result.annotations, common.limit);
}

/** parser.DocumentedType */
function documentedType(t: string): string {
  if (t === "vector") return "instant vector";
  if (t === "matrix") return "range vector";
  return t;
}

type EngineOpts = { lookbackDeltaMs?: number; maxSamples?: number; timeoutMs?: number };
type EngineResult = { value: Value; annotations: Annotations };

/**
 * Runs the engine within the timeout. The engine checks the deadline itself; the
 * timer here also covers time spent waiting on storage. A timeout of zero or less
 * has expired before the query starts, as Go's context deadline would have.
 */
async function run(common: Common, limits: Limits, exec: (opts: EngineOpts) => Promise<EngineResult>): Promise<EngineResult> {
  if (!(common.timeoutMs > 0)) throw new PromQLTimeoutError("query timed out in query queue");
  const opts: EngineOpts = { maxSamples: limits.maxSamplesPerQuery, timeoutMs: common.timeoutMs };
  if (common.lookbackDeltaMs !== undefined) opts.lookbackDeltaMs = common.lookbackDeltaMs;
  const running = exec(opts);
  // The engine may fail after the timer won: that rejection is expected, not unhandled.
  running.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PromQLTimeoutError("query timed out in expression evaluation")), common.timeoutMs);
  });
  try {
    return await Promise.race([running, expired]);
  } catch (e) {
    throw nameLimit(e, limits);
  } finally {
    clearTimeout(timer);
  }
}

/** Prometheus's "too many samples" error, with the limit named so the tenant knows which knob it hit. */
function nameLimit(e: unknown, limits: Limits): unknown {
  if (e instanceof PromQLExecError && e.message.includes("too many samples") && !e.message.includes("maxSamplesPerQuery")) {
    return new PromQLExecError(`${e.message} (limit: ${limits.maxSamplesPerQuery} samples, maxSamplesPerQuery)`);
  }
  return e;
}

/** The success answer: `limit` applied to vectors and matrices, annotations capped as Prometheus caps them. */
function answer(value: Value, annotations: Annotations, limit: number): Response {
  const warnings = capped([...annotations.warnings], "warning");
  const infos = capped([...annotations.infos], "info");
  let v = value;
  if (limit > 0) {
    if (v.type === "vector" && v.vector.length > limit) {
      v = { type: "vector", vector: v.vector.slice(0, limit) };
      warnings.push(TRUNCATED_WARNING);
    } else if (v.type === "matrix" && v.matrix.length > limit) {
      v = { type: "matrix", matrix: v.matrix.slice(0, limit) };
      warnings.push(TRUNCATED_WARNING);
    }
  }
  return successResponse(queryDataJson(v), warnings, infos);
}

function capped(items: string[], kind: string): string[] {
  if (items.length <= MAX_ANNOTATIONS) return items;
  const out = items.slice(0, MAX_ANNOTATIONS);
  out.push(`${items.length - MAX_ANNOTATIONS} more ${kind} annotations omitted`);
  return out;
}

/** GET|POST /api/v1/format_query: the expression, parsed and printed back. */
export async function handleFormatQuery(request: Request): Promise<Response> {
  const form = await Form.from(request);
  const expr: Expr = parseQueryParam(form);
  return successResponse(jsonString(formatExpr(expr)));
}

/**
 * GET|POST /api/v1/query_exemplars. Exemplars are counted at ingest but not stored
 * yet, so a valid request with selectors answers an empty list; without selectors
 * Prometheus answers 204.
 */
export async function handleQueryExemplars(request: Request): Promise<Response> {
  const form = await Form.from(request);
  const start = timeParam(form, "start", MIN_TIME_MS);
  const end = timeParam(form, "end", MAX_TIME_MS);
  if (end < start) throw new ApiError("bad_data", "end timestamp must not be before start timestamp");
  let expr: Expr;
  try {
    expr = parseQueryParam(form);
  } catch (e) {
    // Here Prometheus reports the parser's message without naming the parameter.
    if (e instanceof ApiError) throw new ApiError("bad_data", e.message.replace(/^invalid parameter "query": /, ""));
    throw e;
  }
  if (extractSelectors(expr).length === 0) return noContent();
  return successResponse("[]");
}
