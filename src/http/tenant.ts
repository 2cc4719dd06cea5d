// The tenant of a request: X-Scope-OrgID, as Cortex, Mimir and Loki read it. With no
// credentials configured (local development) a missing header means the default
// tenant (DEFAULT_TENANT, "anonymous"). Tenant IDs follow Cortex's rules.

import { HttpError } from "./errors";

export const TENANT_HEADER = "X-Scope-OrgID";
const MAX_TENANT_LENGTH = 150;

export function tenantOf(request: Request, env: { DEFAULT_TENANT?: string }): string {
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
