// `?tenant=` on the push routes. navigator.sendBeacon cannot set headers, so a page
// cannot send X-Scope-OrgID; on the Loki push routes only, a `tenant` query parameter
// stands in for the header when the header is absent. It is turned into the header
// before authentication (src/auth/) runs, so it is exactly as trusted as the header:
// open mode accepts it, a credential must be allowed on that tenant, a browser key
// only on its own.

import { TENANT_HEADER } from "../../http/tenant";

/** The request, with X-Scope-OrgID set from `?tenant=` when the header is absent (else the request itself). */
export function withTenantParam<R extends Request>(request: R): R {
  const header = request.headers.get(TENANT_HEADER);
  if (header !== null && header !== "") return request;
  const param = new URL(request.url).searchParams.get("tenant");
  if (param === null || param === "") return request;
  const headers = new Headers(request.headers);
  headers.set(TENANT_HEADER, param);
  return new Request(request, { headers }) as R;
}
