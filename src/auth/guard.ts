// The router's wrapper: every route but /ready goes through guard(), which
// authorizes the request for the route's scope and records the outcome, so that the
// handler gets its tenant from tenantOf(request, env) as before (src/http/tenant.ts).

import type { IRequest } from "itty-router";
import { authorize, type RouteAuth } from "./authorize";
import { setAuthorization, type Authorization, type Scope } from "./context";

type Handler<R extends IRequest> = (request: R, env: Env, ctx: ExecutionContext, auth: Authorization) => Response | Promise<Response>;

/** What each guarded handler needs, so the route table can be read back (src/http/routes.ts). */
const routeAuths = new WeakMap<object, RouteAuth>();

export function guard<R extends IRequest>(route: Scope | RouteAuth, handler: Handler<R>): (request: R, env: Env, ctx: ExecutionContext) => Promise<Response> {
  const r: RouteAuth = typeof route === "string" ? { scope: route } : route;
  const guarded = async (request: R, env: Env, ctx: ExecutionContext): Promise<Response> => {
    // A refusal's unread body is drained by the Worker's fetch (src/http/body.ts discardBody).
    const auth: Authorization = await authorize(request, env, r);
    setAuthorization(request, auth);
    return handler(request, env, ctx, auth);
  };
  routeAuths.set(guarded, r);
  return guarded;
}

/** The RouteAuth of a handler made by guard() (or marked by sameGuard()); undefined for unguarded handlers. */
export function routeAuthOf(handler: unknown): RouteAuth | undefined {
  return typeof handler === "function" ? routeAuths.get(handler) : undefined;
}

/** Marks a wrapper around a guarded handler (CORS, ?tenant=) as guarded the same way, for the route table. */
export function sameGuard<F extends object>(guarded: object, wrapper: F): F {
  const r = routeAuths.get(guarded);
  if (r === undefined) throw new Error("sameGuard: the wrapped handler was not made by guard()");
  routeAuths.set(wrapper, r);
  return wrapper;
}
