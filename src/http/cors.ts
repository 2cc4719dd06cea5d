// CORS for the Loki push routes, so that browser pages can push logs.
//
// A preflight (OPTIONS) carries no header values: no X-Scope-OrgID, no credentials,
// only Origin and the names of the headers the page wants to send. It cannot name a
// tenant, so an origin passes the preflight when ANY tenant's corsAllowedOrigins lists
// it (or "*"). The actual POST then names its tenant, and that tenant's list must
// contain the origin (403 otherwise). Every push answer to an allowed origin, success
// or error, carries Access-Control-Allow-Origin, so the page can read the status and
// the message (a refused origin gets no grant, so its page cannot), and may read
// Retry-After (not a CORS-safelisted response header, so exposed by name: a page backing
// off a 429 needs it). Requests without Origin (servers, curl) are unaffected.
//
// sendBeacon posts text/plain without a preflight (a CORS-safelisted request): the
// tenant check on the POST still applies.

import { limitOverrides, limitsFor } from "../config/limits";
import { HttpError } from "./errors";
import { toResponse } from "./respond";

export const CORS_ALLOW_METHODS = "POST, OPTIONS";
export const CORS_ALLOW_HEADERS = "content-type, content-encoding, x-scope-orgid, authorization";
/** Response headers a page may read beyond the CORS-safelisted ones. */
export const CORS_EXPOSE_HEADERS = "Retry-After";
/** Browsers cap it lower (Chrome 2 h, Firefox 24 h); 24 h spares repeated preflights where allowed. */
export const CORS_MAX_AGE = "86400";

let originsOf: readonly unknown[] = [];
let origins: ReadonlySet<string> = new Set();

/** Every origin some tenant's corsAllowedOrigins lists ("*" included), from LIMITS and the runtime config. */
export function configuredOrigins(env: { SHARDS?: string; LIMITS?: string }): ReadonlySet<string> {
  const sources = limitOverrides(env);
  // Recomputed only when a source object changed (LIMITS re-parsed, runtime config reloaded).
  if (sources.length !== originsOf.length || sources.some((s, i) => s !== originsOf[i])) {
    const set = new Set<string>();
    for (const overrides of sources) {
      for (const tenant in overrides) for (const o of overrides[tenant].corsAllowedOrigins ?? []) set.add(o);
    }
    origins = set;
    originsOf = sources;
  }
  return origins;
}

/** Whether a preflight from `origin` passes: some tenant allows it, or some tenant allows "*". */
export function preflightAllows(env: { SHARDS?: string; LIMITS?: string }, origin: string): boolean {
  const set = configuredOrigins(env);
  return set.has(origin) || set.has("*");
}

/** Whether `tenant` allows pushes from pages of `origin`. */
export function tenantAllows(env: { SHARDS?: string; LIMITS?: string }, tenant: string, origin: string): boolean {
  const list = limitsFor(env, tenant).corsAllowedOrigins;
  return list.includes(origin) || list.includes("*");
}

/** OPTIONS on a push route: 204 with the CORS grant, or 403 naming the origin. */
export function handlePushPreflight(request: Request, env: Env): Response {
  const origin = request.headers.get("Origin");
  if (origin === null) {
    // Not a CORS preflight: just say what the route takes.
    return new Response(null, { status: 204, headers: { Allow: CORS_ALLOW_METHODS } });
  }
  if (!preflightAllows(env, origin)) {
    return new Response(`origin ${origin} is not allowed to push logs here: no tenant lists it in corsAllowedOrigins (LIMITS)\n`, {
      status: 403,
      headers: { "Content-Type": "text/plain; charset=utf-8", Vary: "Origin" },
    });
  }
  return new Response(null, {
    status: 204,
    headers: {
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
      "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
      "Access-Control-Max-Age": CORS_MAX_AGE,
      Vary: "Origin",
    },
  });
}

/**
 * The POST's own check, once its tenant is known (the handler's first step): a request
 * with an Origin that the tenant's corsAllowedOrigins does not list is refused, 403.
 */
export function checkPushOrigin(request: Request, env: Env, tenant: string): void {
  const origin = request.headers.get("Origin");
  if (origin !== null && !tenantAllows(env, tenant, origin)) {
    throw new HttpError(403, `origin ${origin} is not allowed to push for tenant ${tenant}; add it to corsAllowedOrigins`);
  }
}

/**
 * Runs a push route under CORS: its answer, success or error (authentication's
 * included), carries Access-Control-Allow-Origin for an origin that passes the
 * preflight, so the page can read it; the tenant's own list is enforced by
 * checkPushOrigin in the handler. Errors become responses here, to carry the headers.
 */
export async function withPushCors(request: Request, env: Env, run: () => Promise<Response>): Promise<Response> {
  const origin = request.headers.get("Origin");
  if (origin === null) return run();
  let res: Response;
  try {
    res = await run();
  } catch (e) {
    res = toResponse(e);
  }
  return preflightAllows(env, origin) ? withCorsHeaders(res, origin) : withVary(res);
}

function withCorsHeaders(res: Response, origin: string): Response {
  const out = mutable(res);
  out.headers.set("Access-Control-Allow-Origin", origin);
  out.headers.set("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
  out.headers.append("Vary", "Origin");
  return out;
}

function withVary(res: Response): Response {
  const out = mutable(res);
  out.headers.append("Vary", "Origin");
  return out;
}

/** A copy whose headers can be changed (the body is passed on, not copied). */
function mutable(res: Response): Response {
  return new Response(res.body, res);
}
