// Who may do what, for which tenant. A request presents a credential from
// AUTH_CONFIG (Authorization: Bearer <token> or Basic user:password, as Prometheus's
// authorization / basic_auth, Grafana, vmagent and Loki clients send them) or, on the
// Loki push routes only, a browser key (Bearer or ?key=, since sendBeacon cannot set
// headers). The route names the scope it needs; X-Scope-OrgID names the tenant and is
// honoured only where the credential allows it; "A|B" federates reads (Cortex) where
// the route supports it and the credential may read every listed tenant.
//
// Without AUTH_CONFIG (open mode, local development only) there are no credentials:
// the tenant is X-Scope-OrgID or DEFAULT_TENANT, as before authentication existed.
// Browser keys are checked in both modes, so a revoked key never works.
//
// 401 (with WWW-Authenticate): no or unknown credential. 403: a valid credential
// used outside its tenants or scopes; the message says which. Secrets never appear
// in messages or logs.

import { HttpError } from "../http/errors";
import { TENANT_HEADER, validateTenant } from "../http/tenant";
import { runtimeConfig, type BrowserKey } from "../config/runtime";
import { TENANT_SEPARATOR } from "../querier/federation";
import { authConfig, type Credential } from "./config";
import type { Authorization, Principal, Scope } from "./context";
import { sameDigest, sha256 } from "./secrets";

export interface RouteAuth {
  scope: Scope;
  /** "A|B" in X-Scope-OrgID reads every listed tenant (routes built on select(): query, query_range, remote read). */
  federation?: boolean;
  /** Browser keys are accepted (the Loki push routes). */
  browserKeys?: boolean;
  /** The route acts on every tenant (runtime config, /flush?all=true): the credential must be allowed on "*". */
  allTenants?: (request: Request) => boolean;
}

const REALM = 'realm="edge-ingester"';
/** Both schemes the server accepts, as RFC 9110 lets a 401 list several challenges. */
const CHALLENGE = `Bearer ${REALM}, Basic ${REALM}, charset="UTF-8"`;

type Presented = { kind: "bearer"; secret: string } | { kind: "basic"; username: string; password: string };

export async function authorize(request: Request, env: Env, route: RouteAuth): Promise<Authorization> {
  const config = await authConfig(env);
  let presented: Presented | null;
  try {
    presented = parseAuthorization(request.headers.get("Authorization"));
  } catch (e) {
    // Open mode ignores what it cannot use (a dev instance behind a proxy that adds its own Authorization).
    if (config !== null) throw e;
    presented = null;
  }
  const queryKey = new URL(request.url).searchParams.get("key");

  // Browser keys: `?key=` or a bearer token that is not a credential's.
  let bearerDigest: Uint8Array | null = null;
  if (presented?.kind === "bearer") bearerDigest = await sha256(presented.secret);
  const credential = config === null || presented === null ? null : findCredential(config.credentials, presented, bearerDigest, await passwordDigest(presented));
  if (credential === null) {
    const keyDigest = queryKey !== null ? await sha256(queryKey) : bearerDigest;
    const key = keyDigest === null ? null : findBrowserKey(runtimeConfig().browserKeys, keyDigest);
    if (key !== null) return browserKeyAuthorization(request, key, route);
    if (queryKey !== null && route.browserKeys) {
      throw new HttpError(401, "unknown browser key (?key=): it was never issued or has been removed from the runtime config", { "WWW-Authenticate": CHALLENGE });
    }
  }

  if (config === null) {
    // Open mode: every scope, any tenant.
    return resolveTenants(request, env, route, { kind: "open", name: "anonymous" }, null);
  }
  if (presented === null) {
    throw new HttpError(401, "authentication required: send Authorization: Bearer <token> or HTTP basic credentials", { "WWW-Authenticate": CHALLENGE });
  }
  if (credential === null) {
    throw new HttpError(401, `invalid credentials (${presented.kind === "bearer" ? "bearer token" : `basic user ${JSON.stringify(presented.username)}`} not accepted)`, {
      "WWW-Authenticate": CHALLENGE,
    });
  }
  if (!credential.scopes.has(route.scope)) {
    throw new HttpError(403, `scope ${route.scope} required: credential "${credential.name}" has scope${credential.scopes.size > 1 ? "s" : ""} ${[...credential.scopes].join(", ")}`);
  }
  return resolveTenants(request, env, route, { kind: "credential", name: credential.name }, credential.tenants);
}

/** The tenant(s) of the request, checked against the ones the principal may use (null: all). */
function resolveTenants(request: Request, env: Env, route: RouteAuth, principal: Principal, allowed: Set<string> | null): Authorization {
  const who = principal.kind === "open" ? "" : ` for credential "${principal.name}"`;
  if (route.allTenants?.(request)) {
    if (allowed !== null) throw new HttpError(403, `this request acts on every tenant: credential "${principal.name}" must be allowed on all tenants ("*")`);
    return { tenant: "*", tenants: ["*"], principal };
  }
  const header = request.headers.get(TENANT_HEADER);
  let tenants: string[];
  if (header === null || header === "") {
    if (allowed === null) {
      if (principal.kind === "open") tenants = [env.DEFAULT_TENANT || "anonymous"];
      else throw new HttpError(400, `${TENANT_HEADER} is required: credential "${principal.name}" may use any tenant, so the request must name one`);
    } else if (allowed.size === 1) tenants = [...allowed];
    else throw new HttpError(400, `${TENANT_HEADER} is required: credential "${principal.name}" may use several tenants (${[...allowed].join(", ")}), so the request must name one`);
  } else {
    // Cortex's tenant.TenantIDs: split on "|", sorted, duplicates dropped.
    tenants = [...new Set(header.split(TENANT_SEPARATOR))].sort();
    if (tenants.length > 1 && !route.federation) {
      throw new HttpError(400, `tenant federation (${TENANT_HEADER}: "${header}") is supported only on the Prometheus query API (query, query_range) and remote read; name one tenant`);
    }
    for (const t of tenants) validateTenant(t);
    if (allowed !== null) {
      for (const t of tenants) if (!allowed.has(t)) throw new HttpError(403, `tenant ${t} not allowed${who}`);
    }
  }
  return { tenant: tenants.join(TENANT_SEPARATOR), tenants, principal };
}

function browserKeyAuthorization(request: Request, key: BrowserKey, route: RouteAuth): Authorization {
  const name = `browser key "${key.id}"`;
  if (!route.browserKeys) {
    throw new HttpError(403, `${name} is write-only: it may only push logs (POST /loki/api/v1/push), not ${request.method} ${new URL(request.url).pathname}`);
  }
  if (key.revoked) throw new HttpError(403, `${name} has been revoked`);
  const origin = request.headers.get("Origin");
  if (origin === null || origin === "null") {
    throw new HttpError(403, `${name} requires an Origin header: browser keys are for pages on the key's origins; servers should use a credential`);
  }
  if (!key.origins.includes(origin)) throw new HttpError(403, `origin ${origin} is not allowed for ${name}`);
  const header = request.headers.get(TENANT_HEADER);
  if (header !== null && header !== "" && header !== key.tenant) throw new HttpError(403, `tenant ${header} not allowed for ${name}`);
  return {
    tenant: key.tenant,
    tenants: [key.tenant],
    principal: { kind: "browserKey", name: key.id, browserKey: { id: key.id, bytesPerSecond: key.bytesPerSecond, burstBytes: key.burstBytes } },
  };
}

function parseAuthorization(header: string | null): Presented | null {
  if (header === null || header.trim() === "") return null;
  const m = /^\s*(\S+)\s+(\S.*?)\s*$/.exec(header);
  const scheme = m?.[1].toLowerCase();
  if (m !== null && scheme === "bearer") return { kind: "bearer", secret: m[2] };
  if (m !== null && scheme === "basic") {
    let decoded: string;
    try {
      decoded = new TextDecoder().decode(Uint8Array.from(atob(m[2]), (c) => c.charCodeAt(0)));
    } catch {
      throw new HttpError(401, "Authorization: Basic must carry base64 of user:password", { "WWW-Authenticate": CHALLENGE });
    }
    const colon = decoded.indexOf(":");
    if (colon < 0) throw new HttpError(401, "Authorization: Basic must carry base64 of user:password (no ':' found)", { "WWW-Authenticate": CHALLENGE });
    return { kind: "basic", username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  throw new HttpError(401, `unsupported Authorization scheme ${JSON.stringify(m?.[1] ?? "")}: use Bearer or Basic`, { "WWW-Authenticate": CHALLENGE });
}

async function passwordDigest(p: Presented | null): Promise<Uint8Array | null> {
  return p?.kind === "basic" ? sha256(p.password) : null;
}

/** Every candidate is compared (no early exit), each in constant time. */
function findCredential(list: Credential[], p: Presented, tokenDigest: Uint8Array | null, pwDigest: Uint8Array | null): Credential | null {
  let found: Credential | null = null;
  for (const c of list) {
    const ok =
      p.kind === "bearer"
        ? c.tokenDigest !== null && sameDigest(c.tokenDigest, tokenDigest!)
        : c.username === p.username && c.passwordDigest !== null && sameDigest(c.passwordDigest, pwDigest!);
    if (ok && found === null) found = c;
  }
  return found;
}

function findBrowserKey(keys: BrowserKey[], digest: Uint8Array): BrowserKey | null {
  let found: BrowserKey | null = null;
  for (const k of keys) if (sameDigest(k.digest, digest) && found === null) found = k;
  return found;
}
