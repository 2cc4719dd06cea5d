// The router's wrapper: every route but /ready goes through guard(), which
// authorizes the request for the route's scope and records the outcome, so that the
// handler gets its tenant from tenantOf(request, env) as before (src/http/tenant.ts).

import type { IRequest } from "itty-router";
import { authorize, type RouteAuth } from "./authorize";
import { setAuthorization, type Authorization, type Scope } from "./context";

type Handler<R extends IRequest> = (request: R, env: Env, ctx: ExecutionContext, auth: Authorization) => Response | Promise<Response>;

export function guard<R extends IRequest>(route: Scope | RouteAuth, handler: Handler<R>): (request: R, env: Env, ctx: ExecutionContext) => Promise<Response> {
  const r: RouteAuth = typeof route === "string" ? { scope: route } : route;
  return async (request, env, ctx) => {
    const auth = await authorize(request, env, r);
    setAuthorization(request, auth);
    return handler(request, env, ctx, auth);
  };
}
