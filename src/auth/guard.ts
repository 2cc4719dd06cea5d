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
    let auth: Authorization;
    try {
      auth = await authorize(request, env, r);
    } catch (e) {
      await discardBody(request);
      throw e;
    }
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

/** Beyond this, a refused body is cancelled rather than read (a client sending that much unauthenticated gets no courtesy). */
const DRAIN_LIMIT_BYTES = 16 << 20;

/**
 * Reads and drops the body of a refused request. Answering a POST before its body is
 * read breaks the next request on the connection under `wrangler dev` (its proxy
 * answers 503 "Your worker restarted mid-request"): a Prometheus queue with a wrong
 * password made other clients' pushes fail, and winston-loki does not retry those.
 * Cancelling the stream is not enough there; reading it is.
 */
async function discardBody(request: Request): Promise<void> {
  if (request.body === null || request.bodyUsed) return;
  try {
    const reader = request.body.getReader();
    let read = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
      if (read > DRAIN_LIMIT_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The client went away: nothing left to drain.
  }
}
