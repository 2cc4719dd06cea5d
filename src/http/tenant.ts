// The tenant of a request. Authorization (src/auth/guard.ts, wrapped around every
// route in src/index.ts) decides it from the credential and X-Scope-OrgID, as
// Cortex, Mimir and Loki read it behind their auth proxies; handlers ask here. With
// no credentials configured (local development) and no authorization recorded, it is
// X-Scope-OrgID or the default tenant (DEFAULT_TENANT, "anonymous"). Tenant IDs
// follow Cortex's rules.

import { HttpError } from "./errors";
import { authorizationOf } from "../auth/context";

export const TENANT_HEADER = "X-Scope-OrgID";
const MAX_TENANT_LENGTH = 150;

export function tenantOf(request: Request, env: { DEFAULT_TENANT?: string; AUTH_CONFIG?: string }): string {
  const auth = authorizationOf(request);
  if (auth !== undefined) return auth.tenant;
  // Fail closed: with credentials configured, a route that skipped guard() must not
  // trust X-Scope-OrgID. This is our bug, not the client's.
  if (env.AUTH_CONFIG) throw new HttpError(500, `route ${new URL(request.url).pathname} is not behind authorization (wrap it with guard() in src/index.ts)`);
  const header = request.headers.get(TENANT_HEADER);
  const tenant = header === null || header === "" ? env.DEFAULT_TENANT || "anonymous" : header;
  validateTenant(tenant);
  return tenant;
}

/** Cortex's tenant.ValidTenantID: [a-zA-Z0-9!-_.*'()], at most 150 characters, not "." or "..". */
export function validateTenant(tenant: string): void {
  if (tenant.length > MAX_TENANT_LENGTH) {
    throw new HttpError(400, `tenant ID is ${tenant.length} characters long, more than the limit of ${MAX_TENANT_LENGTH}`);
  }
  if (tenant === "." || tenant === "..") throw new HttpError(400, `tenant ID ${JSON.stringify(tenant)} is not allowed`);
  if (!/^[a-zA-Z0-9!\-_.*'()]+$/.test(tenant)) {
    throw new HttpError(400, `tenant ID ${JSON.stringify(tenant)} contains unsupported characters (allowed: a-z A-Z 0-9 ! - _ . * ' ( ))`);
  }
}
