// Per-tenant query metrics, right across isolates: how many queries each tenant ran,
// per query API and outcome, and how long they took.
//
//   cortex_query_frontend_queries_total{op,user}            Mimir's query-frontend counter
//                                                           (querymiddleware newQueryCountTripperware), its op values
//   cortex_querier_request_duration_seconds{route,status_code,user}
//                                                           Cortex's querier histogram, per tenant here;
//                                                           status_code is the class: 2xx, 4xx, 5xx
//
// The counts are kept in the tenant's TenantControl Durable Object (durable-objects/
// tenant.ts, persisted in its SQLite), so a scrape reaching any isolate sees every
// isolate's queries and a restart resets nothing. A query costs no Durable Object
// request of its own: each isolate accumulates (QueryAccumulator) and sends a
// tenant's pending counts with ctx.waitUntil at most once per SEND_EVERY_MS, on the
// first query after that interval; a scrape served by the isolate sends what it holds
// first (collect.ts). What an isolate holds when it is recycled before either is lost
// (at most SEND_EVERY_MS of its queries), as its pending HA counts are
// (src/distributor/tenant_ring.ts PendingReports).
//
// A federated query (X-Scope-OrgID "a|b") counts under user "a|b" as Mimir's
// (tenant.JoinTenantIDs), kept by the first tenant's object. Requests refused by
// authentication are not counted (no tenant is known; Mimir counts after its auth
// middleware too): cortex_request_duration_seconds has them.

import type { Authorization } from "../auth/context";
import { tenantStub } from "../distributor/tenant_ring";
import type { Registry } from "./exposition";
import { REQUEST_BUCKETS, bucketOf } from "./buckets";

/** At most one send per tenant per isolate in this interval. */
export const SEND_EVERY_MS = 10_000;

// Mimir's op values (pkg/frontend/querymiddleware/roundtrip.go): it classifies by path
// suffix, so the Loki API's query, query_range and labels fall in the same ops.
const LABELS = "label_names_and_values";
const OPS: readonly [path: string, op: string][] = [
  ["/api/v1/query", "query"],
  ["/api/v1/query_range", "query_range"],
  ["/api/v1/read", "remote_read"],
  ["/api/v1/labels", LABELS],
  ["/api/v1/label/:name/values", LABELS],
  ["/api/v1/series", "other"],
  ["/api/v1/metadata", "other"],
  ["/api/v1/query_exemplars", "other"],
];
const LOKI_OPS: readonly [path: string, op: string][] = [
  ["/loki/api/v1/query", "query"],
  ["/loki/api/v1/query_range", "query_range"],
  ["/loki/api/v1/labels", LABELS],
  ["/loki/api/v1/label", LABELS],
  ["/loki/api/v1/label/:name/values", LABELS],
  ["/loki/api/v1/series", "other"],
  ["/loki/api/v1/index/stats", "other"],
];

/** Query route patterns (as the router registered them) -> Mimir's op. The live tail is not a query here. */
const ROUTE_OPS = new Map<string, string>([...OPS, ...OPS.map(([p, op]): [string, string] => ["/prometheus" + p, op]), ...LOKI_OPS]);

/** The op of a route label value (routeLabel of a pattern above), for cortex_query_frontend_queries_total. */
const LABEL_OPS = new Map<string, string>([...ROUTE_OPS].map(([p, op]) => [p.replace(/[^a-zA-Z0-9]+/g, "_").replace(/^_+|_+$/g, "").toLowerCase(), op]));

/** Whether a request to this route pattern with this method is a query we count. */
export function isQueryRoute(method: string, route: string | undefined): boolean {
  return route !== undefined && (method === "GET" || method === "POST") && ROUTE_OPS.has(route);
}

/** Mimir's op for a route label; "other" for one it does not name. */
export function opOf(routeLabel: string): string {
  return LABEL_OPS.get(routeLabel) ?? "other";
}

/** The outcome of a status code: its class, "2xx", "4xx", "5xx" (Cortex's alerts match status_code=~"5.."). */
export function statusClass(status: number): string {
  return `${Math.min(9, Math.max(1, Math.floor(status / 100)))}xx`;
}

/** One histogram: queries of one user, route and outcome. */
export interface QuerySeries {
  user: string;
  /** The route label, as cortex_request_duration_seconds names it (api_v1_query_range, loki_api_v1_query). */
  route: string;
  /** "2xx", "4xx", "5xx". */
  status: string;
  /** Non-cumulative count per bucket of REQUEST_BUCKETS, then +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/** What an isolate sends to a tenant's control object (and what the object answers for /metrics). */
export interface QueryReport {
  series: QuerySeries[];
}

export function seriesKey(user: string, route: string, status: string): string {
  return `${user}\u0000${route}\u0000${status}`;
}

/** Adds `from` into `into` (same key). Returns false when their bucket layouts differ (nothing is added). */
export function addSeries(into: QuerySeries, from: QuerySeries): boolean {
  if (into.counts.length !== from.counts.length) return false;
  for (let i = 0; i < from.counts.length; i++) into.counts[i] += from.counts[i];
  into.sum += from.sum;
  into.count += from.count;
  return true;
}

/** A series with no counts yet, in this deploy's bucket layout. */
export function emptySeries(user: string, route: string, status: string): QuerySeries {
  return { user, route, status, counts: new Array<number>(REQUEST_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
}

/**
 * One isolate's query counts not yet in the tenants' control objects, by the tenant
 * whose object keeps them. Tests make several to stand for several isolates.
 */
export class QueryAccumulator {
  /** This isolate's clock (the send interval only); tests replace it. */
  clock: () => number = () => Date.now();
  /** Sends made (tests check the batching). */
  sends = 0;
  private readonly pending = new Map<string, Map<string, QuerySeries>>();
  private readonly lastSentAt = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<void>>();

  /** Counts one query of `user` (kept by `home`'s object). */
  observe(home: string, user: string, route: string, status: number, seconds: number): void {
    let byKey = this.pending.get(home);
    if (!byKey) this.pending.set(home, (byKey = new Map()));
    const cls = statusClass(status);
    const key = seriesKey(user, route, cls);
    let s = byKey.get(key);
    if (!s) byKey.set(key, (s = emptySeries(user, route, cls)));
    s.counts[bucketOf(seconds)]++;
    s.sum += seconds;
    s.count++;
  }

  /** Whether `home`'s counts may be sent now: none sent in the last SEND_EVERY_MS, none in flight. */
  due(home: string): boolean {
    if (!this.pending.has(home) || this.inflight.has(home)) return false;
    const last = this.lastSentAt.get(home);
    return last === undefined || this.clock() - last >= SEND_EVERY_MS;
  }

  /** What is owed to `home`'s object, now considered sent (give it back with restore() if the call fails). */
  take(home: string): QueryReport | null {
    const byKey = this.pending.get(home);
    if (!byKey) return null;
    this.pending.delete(home);
    return { series: [...byKey.values()] };
  }

  restore(home: string, report: QueryReport | null): void {
    if (!report) return;
    let byKey = this.pending.get(home);
    if (!byKey) this.pending.set(home, (byKey = new Map()));
    for (const s of report.series) {
      const key = seriesKey(s.user, s.route, s.status);
      const have = byKey.get(key);
      if (have) addSeries(have, s);
      else byKey.set(key, s);
    }
  }

  /** Sends `home`'s pending counts to its control object. Never rejects: a failed send is kept for the next. */
  send(env: Env, home: string): Promise<void> {
    const report = this.take(home);
    if (report === null) return Promise.resolve();
    this.lastSentAt.set(home, this.clock());
    this.sends++;
    const p = tenantStub(env, home)
      .recordQueries(report)
      .then(
        () => undefined,
        (e: unknown) => {
          this.restore(home, report);
          console.error(`could not send query counts of tenant ${home}: ${e instanceof Error ? e.message : String(e)}`);
        },
      )
      .finally(() => this.inflight.delete(home));
    this.inflight.set(home, p);
    return p;
  }

  /** Resolves once no send to `home` is in flight (a scrape then reads what it carried). */
  async settled(home: string): Promise<void> {
    for (let p = this.inflight.get(home); p !== undefined; p = this.inflight.get(home)) await p;
  }

  /** Forgets everything (tests: a fresh isolate). */
  clear(): void {
    this.pending.clear();
    this.lastSentAt.clear();
    this.inflight.clear();
  }
}

/** This isolate's accumulator. */
export const queryAccumulator = new QueryAccumulator();

/**
 * Counts a request if it is a query of an authorized tenant, and sends the tenant's
 * pending counts if due. Called by the request instrumentation (requests.ts) with the
 * route pattern the router matched.
 */
export function observeQuery(env: Env, ctx: ExecutionContext, auth: Authorization | undefined, method: string, route: string | undefined, label: string, status: number, seconds: number): void {
  if (auth === undefined || !isQueryRoute(method, route)) return;
  const home = auth.tenants[0];
  if (home === undefined || home === "*") return;
  queryAccumulator.observe(home, auth.tenant, label, status, seconds);
  if (queryAccumulator.due(home)) ctx.waitUntil(queryAccumulator.send(env, home));
}

/** Writes the tenants' query counts (as their control objects answered) into a scrape. */
export function writeQueryMetrics(reg: Registry, stats: QueryReport[]): void {
  const queries = reg.counter("cortex_query_frontend_queries_total", "Total queries sent per tenant.");
  const duration = reg.histogram(
    "cortex_querier_request_duration_seconds",
    "Time (in seconds) spent serving query requests, per tenant (user) and route; status_code is the status class (2xx, 4xx, 5xx).",
    REQUEST_BUCKETS,
  );
  for (const r of stats) {
    for (const s of r.series) {
      if (s.counts.length !== REQUEST_BUCKETS.length + 1) continue; // another layout: cannot be summed into these buckets
      queries.add({ user: s.user, op: opOf(s.route) }, s.count);
      duration.observeMany({ user: s.user, route: s.route, status_code: s.status }, s.counts, s.sum, s.count);
    }
  }
}
