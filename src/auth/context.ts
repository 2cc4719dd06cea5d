// What authorization decided for a request, kept beside the request (not on it) so
// that handlers written before authentication existed keep their signatures: they
// call tenantOf(request, env) (src/http/tenant.ts), which reads this.

/** The three scopes a credential may hold; a route needs exactly one. */
export type Scope = "write" | "read" | "admin";

export interface Principal {
  /** "open": no AUTH_CONFIG (local development); "credential": AUTH_CONFIG; "browserKey": runtime config. */
  kind: "open" | "credential" | "browserKey";
  /** The credential's or browser key's name, for messages and logs (never its secret). */
  name: string;
  /** Set for browser keys: their own rate limit (bytes/s, burst bytes). */
  browserKey?: { id: string; bytesPerSecond: number; burstBytes: number };
}

export interface Authorization {
  /** The tenant the route acts for; "A|B" for a federated read (tenants lists them). */
  tenant: string;
  /** The tenants, one unless federated. */
  tenants: string[];
  principal: Principal;
}

const byRequest = new WeakMap<Request, Authorization>();

export function setAuthorization(request: Request, auth: Authorization): void {
  byRequest.set(request, auth);
}

export function authorizationOf(request: Request): Authorization | undefined {
  return byRequest.get(request);
}
