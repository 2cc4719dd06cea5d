// Worker-side request metrics: cortex_request_duration_seconds{method,route,
// status_code} as Cortex's and Loki's HTTP middleware records it (weaveworks/common
// middleware.Instrument), held in this isolate's memory.
//
// Per isolate, on purpose: counting each request in a Durable Object would add a
// request per request. Every series carries an `isolate` label (a random id drawn at
// the isolate's first request), so series of different isolates never merge into
// one counter that would appear to go backwards; a new isolate is a new series,
// which rate() handles like a restart. A scrape reaches one isolate, so with many
// isolates (production) these are a sample of the traffic; under `wrangler dev` there
// is one. (The label is not `instance`, which Prometheus sets on every scraped series.)
//
// Inside workerd the clock advances only across I/O (Spectre mitigation), so a
// duration is the time spent waiting on subrequests and the client, not CPU time.

// Queries are also counted per tenant in the tenants' control objects, right across
// isolates (src/observability/queries.ts): this histogram is the per-isolate view.

import type { Registry } from "./exposition";
import { authorizationOf } from "../auth/context";
import { REQUEST_BUCKETS, bucketOf } from "./buckets";
import { observeQuery } from "./queries";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

interface Series {
  method: string;
  route: string;
  status: string;
  counts: Float64Array;
  sum: number;
  count: number;
}

const series = new Map<string, Series>();
let isolateId: string | null = null;
let isolateStartedAt = 0;

/** This isolate's id (drawn at its first request: workerd forbids random values at start-up). */
export function isolate(): string {
  if (isolateId === null) {
    isolateId = crypto.randomUUID().slice(0, 8);
    isolateStartedAt = Date.now();
  }
  return isolateId;
}

/**
 * A route's label value as Cortex makes it from the mux route (middleware.MakeLabelValue):
 * runs of characters other than [a-zA-Z0-9] become "_", trimmed, lower-cased; "/" is
 * "root". Requests no route matched (the catch-all) are "other", so unknown paths
 * cannot create series.
 */
export function routeLabel(route: string | undefined): string {
  if (route === undefined || route === "*" || route === "/*") return "other";
  const v = route.replace(/[^a-zA-Z0-9]+/g, "_").replace(/^_+|_+$/g, "").toLowerCase();
  return v === "" ? "root" : v;
}

/** Counts a request in this isolate; returns its route label. */
export function observeRequest(method: string, route: string | undefined, status: number, seconds: number): string {
  const m = METHODS.has(method) ? method : "OTHER";
  const r = routeLabel(route);
  const s = String(status);
  const key = `${m} ${r} ${s}`;
  let entry = series.get(key);
  if (!entry) series.set(key, (entry = { method: m, route: r, status: s, counts: new Float64Array(REQUEST_BUCKETS.length + 1), sum: 0, count: 0 }));
  entry.counts[bucketOf(seconds)]++;
  entry.sum += seconds;
  entry.count++;
  return r;
}

type Fetch = (request: Request, env: Env, ctx: ExecutionContext) => Promise<Response>;

/**
 * Wraps the Worker's fetch to record every request. The route is the pattern the
 * router matched (itty-router sets `request.route`), so label values stay bounded.
 * A query of an authorized tenant is counted for that tenant too (queries.ts).
 */
export function instrumented(fetch: Fetch): Fetch {
  return async (request, env, ctx) => {
    isolate();
    const start = Date.now();
    let status = 500;
    try {
      const res = await fetch(request, env, ctx);
      status = res.status;
      return res;
    } finally {
      const route = (request as Request & { route?: string }).route;
      const seconds = (Date.now() - start) / 1000;
      const label = observeRequest(request.method, route, status, seconds);
      observeQuery(env, ctx, authorizationOf(request), request.method, route, label, status, seconds);
    }
  };
}

/** Writes this isolate's request metrics. */
export function collectRequests(reg: Registry): void {
  const id = isolate();
  const hist = reg.histogram("cortex_request_duration_seconds", "Time (in seconds) spent serving HTTP requests, in this Worker isolate.", REQUEST_BUCKETS);
  for (const s of series.values()) hist.observeMany({ method: s.method, route: s.route, status_code: s.status, isolate: id }, s.counts, s.sum, s.count);
  reg.gauge("edge_ingester_isolate_start_time_seconds", "When this Worker isolate served its first request (Unix seconds); per-isolate series restart with it.").set({ isolate: id }, isolateStartedAt / 1000);
}

/** For tests: forget every observation. */
export function resetRequestMetrics(): void {
  series.clear();
}
