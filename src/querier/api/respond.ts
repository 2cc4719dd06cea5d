// The Prometheus HTTP API's JSON, byte for byte as Prometheus writes it: the
// envelope ({"status","data","errorType","error","warnings","infos"} in that
// order), error types and their status codes, timestamps as seconds with three
// decimals, sample values as strings (util/jsonutil MarshalFloat), and Go's
// HTML-safe string escaping. Results are written as text, not through
// JSON.stringify of objects, because JSON numbers lose the ".500" of a timestamp.

import { MatcherError } from "../../model/matchers";
import { tenantOf } from "../../http/tenant";
import type { FlatLabels } from "../../model/labels";
import { PromQLParseError } from "../promql/ast";
import { PromQLExecError, PromQLTimeoutError, type Value } from "../promql/value";

export type ErrorType = "bad_data" | "execution" | "timeout" | "canceled" | "internal" | "unavailable" | "not_found";

/** Prometheus's respondError mapping; anything it does not list (unavailable) is a 500. */
const STATUS: Record<ErrorType, number> = {
  bad_data: 400,
  execution: 422,
  canceled: 499,
  timeout: 503,
  internal: 500,
  unavailable: 500,
  not_found: 404,
};

/** An API error: its type decides the status, its message is the "error" field. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly type: ErrorType,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return STATUS[this.type];
  }
}

/** Maps what a handler or the engine threw to an API error (Prometheus's returnAPIError). */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof PromQLParseError || e instanceof MatcherError) return new ApiError("bad_data", e.message);
  if (e instanceof PromQLExecError) return new ApiError("execution", e.message);
  if (e instanceof PromQLTimeoutError) return new ApiError("timeout", e.message);
  // Storage and our own failures: Prometheus's ErrStorage is "internal" too.
  console.error("query API internal error:", e);
  return new ApiError("internal", e instanceof Error ? e.message : String(e));
}

const HEADERS = { "Content-Type": "application/json" };

export function errorResponse(e: ApiError): Response {
  const body = `{"status":"error","errorType":${jsonString(e.type)},"error":${jsonString(e.message)}}`;
  return new Response(body, { status: e.status, headers: HEADERS });
}

/** A success envelope around `dataJson` (already JSON text); warnings and infos only when present. */
export function successResponse(dataJson: string, warnings: readonly string[] = [], infos: readonly string[] = []): Response {
  let body = `{"status":"success","data":${dataJson}`;
  if (warnings.length > 0) body += `,"warnings":${jsonArray(warnings)}`;
  if (infos.length > 0) body += `,"infos":${jsonArray(infos)}`;
  return new Response(body + "}", { status: 200, headers: HEADERS });
}

/** 204 with no body: what Prometheus answers when a handler has no data (query_exemplars without selectors). */
export function noContent(): Response {
  return new Response(null, { status: 204 });
}

const GO_ESCAPES: Record<string, string> = { "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029" };

/** A JSON string as Go's encoding/json writes it (it escapes <, > and & for HTML safety). */
export function jsonString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]);
}

export function jsonArray(items: readonly string[]): string {
  return "[" + items.map(jsonString).join(",") + "]";
}

/** Labels as a JSON object, keys in byte order (Go marshals labels as a map, whose keys it sorts). */
export function labelsJson(labels: FlatLabels): string {
  let sorted = true;
  for (let i = 2; i < labels.length; i += 2) if (labels[i - 2] > labels[i]) sorted = false;
  const pairs: [string, string][] = [];
  for (let i = 0; i < labels.length; i += 2) pairs.push([labels[i], labels[i + 1]]);
  if (!sorted) pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return "{" + pairs.map(([k, v]) => jsonString(k) + ":" + jsonString(v)).join(",") + "}";
}

/**
 * A sample value as Prometheus's jsonutil.MarshalFloat writes it:
 * strconv.FormatFloat(v, 'f', -1, 64), or 'e' below 1e-6 and from 1e21 up;
 * "NaN", "+Inf", "-Inf".
 */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const abs = Math.abs(v);
  if (abs < 1e-6 || abs >= 1e21) {
    // JavaScript's shortest round-trip digits are Go's; Go writes at least two exponent digits.
    const [mantissa, exp] = v.toExponential().split("e");
    const sign = exp.startsWith("-") ? "-" : "+";
    return `${mantissa}e${sign}${exp.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  // JavaScript switches to exponents exactly outside [1e-6, 1e21): in between it is Go's 'f'.
  return String(v);
}

/** A timestamp (ms) as Prometheus's jsonutil.MarshalTimestamp writes it: seconds, and ".ddd" unless whole. */
export function formatTimestamp(ms: number): string {
  let t = Math.trunc(ms);
  let sign = "";
  if (t < 0) {
    sign = "-";
    t = -t;
  }
  const frac = t % 1000;
  const sec = (t - frac) / 1000;
  return frac === 0 ? `${sign}${sec}` : `${sign}${sec}.${String(frac).padStart(3, "0")}`;
}

function point(t: number, v: number): string {
  return `[${formatTimestamp(t)},"${formatValue(v)}"]`;
}

/** The "result" of a query, by value type. */
export function resultJson(value: Value): string {
  switch (value.type) {
    case "scalar":
      return point(value.t, value.v);
    case "string":
      return `[${formatTimestamp(value.t)},${jsonString(value.v)}]`;
    case "vector": {
      const parts = new Array<string>(value.vector.length);
      for (let i = 0; i < value.vector.length; i++) {
        const s = value.vector[i];
        parts[i] = `{"metric":${labelsJson(s.labels)},"value":${point(s.t, s.v)}}`;
      }
      return "[" + parts.join(",") + "]";
    }
    case "matrix": {
      const parts = new Array<string>(value.matrix.length);
      for (let i = 0; i < value.matrix.length; i++) {
        const s = value.matrix[i];
        const pts = new Array<string>(s.timestamps.length);
        for (let j = 0; j < s.timestamps.length; j++) pts[j] = point(s.timestamps[j], s.values[j]);
        parts[i] = `{"metric":${labelsJson(s.labels)},"values":[${pts.join(",")}]}`;
      }
      return "[" + parts.join(",") + "]";
    }
  }
}

/** The "data" of /query and /query_range. */
export function queryDataJson(value: Value): string {
  return `{"resultType":${jsonString(value.type)},"result":${resultJson(value)}}`;
}

/**
 * Wraps an API handler: the tenant from X-Scope-OrgID (a bad one stays the router's
 * plain-text 400, as for every route), and every error as Prometheus's JSON error.
 */
export function apiHandler<R extends Request>(handler: (request: R, env: Env, tenant: string) => Promise<Response>): (request: R, env: Env) => Promise<Response> {
  return async (request, env) => {
    const tenant = tenantOf(request, env);
    try {
      return await handler(request, env, tenant);
    } catch (e) {
      return errorResponse(toApiError(e));
    }
  };
}
