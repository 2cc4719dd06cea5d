// The Worker's route table, read back. src/index.ts hands ROUTE_TABLE to itty-router
// as its `routes` array, so every route registered there lands here, with the handler
// guard() made for it. routeTable() says, per method and path, which scope (and
// which tenants) the route needs: test/worker/auth_matrix.test.ts checks that every
// guarded route has a row, so a route added without one fails the test.

import type { IRequest, RouteEntry } from "itty-router";
import { routeAuthOf } from "../auth/guard";
import type { RouteAuth } from "../auth/authorize";

/** Filled by the router in src/index.ts, in registration order (the order routes are matched). */
export const ROUTE_TABLE: RouteEntry<IRequest, [Env, ExecutionContext]>[] = [];

export interface RouteInfo {
  /** "GET", "POST", …; "ALL" for the 405 answers and the 404 catch-all. */
  method: string;
  /** The path as registered, e.g. "/api/v1/label/:name/values". */
  path: string;
  /** itty-router's compiled pattern for the path. */
  match: RegExp;
  /** What guard() requires; null for unguarded routes (/ready, CORS preflights, 405 and 404 answers). */
  auth: RouteAuth | null;
}

export function routeTable(): RouteInfo[] {
  return ROUTE_TABLE.map(([method, match, handlers, path]) => {
    const guarded = handlers.map(routeAuthOf).filter((a) => a !== undefined);
    return { method, path: path ?? "", match, auth: guarded[0] ?? null };
  });
}
