// Status endpoints. GET /api/v1/status/ingesters: the tenant's shards as the
// ingesters see them (series, chunks, samples, WAL size, RPCs received), used by the
// benchmark and by operators; the per-tenant stats API and the status page below;
// the system's /metrics is src/observability/metrics.ts.

import { allShards } from "../distributor/tenant_ring";
import { logShardStub, shardStub } from "../distributor/shards";
import { r2Ops } from "../storage/blocks";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../model/concurrency";
import { HttpError } from "./errors";
import { blocksByShard, collectCluster, type ClusterSnapshot, type ShardBlocks, type TenantSnapshot } from "../observability/collect";
import { ratePerSecond } from "../observability/shard";
import { isolate } from "../observability/requests";
import { escapeHtml, renderStatusPage } from "./status_page";

/** GET /api/v1/status/ingesters: `shards` the metrics shards' stats, `logShards` the log shards' (src/ingester/logs/rpc.ts LogShardStats). */
export async function handleIngesterStatus(env: Env, tenant: string): Promise<Response> {
  const ids = await allShards(env, tenant);
  const gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);
  const [stats, logStats] = await Promise.all([
    Promise.all(ids.map((shard) => gate.run(async () => ({ ...(await shardStub(env, tenant, shard).stats()), shard })))),
    Promise.all(ids.map((shard) => gate.run(async () => ({ ...(await logShardStub(env, tenant, shard).stats()), shard })))),
  ]);
  return Response.json({ status: "success", data: { tenant, shards: stats, logShards: logStats } });
}

/** GET /api/v1/status/r2: R2 operations made by this isolate (the querier's reads, for the benchmark). */
export function handleR2Status(): Response {
  return Response.json({ status: "success", data: { ...r2Ops } });
}

// ---- Per-tenant stats (Cortex's UserStats / AllUserStats) and the status page ----
// Admin scope, like /metrics: they read every tenant's shards (all_user_stats, /status)
// or the caller's own (user_stats).

/** Cortex distributor.UserStats, with Cortex's JSON field names. */
export interface UserStats {
  /** Samples/s over the last minute (API + rule; we have no ruler, so = apiIngestionRate). */
  ingestionRate: number;
  numSeries: number;
  APIIngestionRate: number;
  RuleIngestionRate: number;
}

/** Cortex distributor.UserIDStats ({userID, stats}), plus series (and streams) per shard. */
export interface UserIDStats {
  userID: string;
  stats: UserStats;
  shards: { shard: number; numSeries: number; numStreams: number | null }[];
}

function userStats(t: TenantSnapshot, now: number): UserIDStats {
  let numSeries = 0;
  let rate = 0;
  const shards: UserIDStats["shards"] = [];
  for (const sh of t.shards) {
    const series = sh.metrics?.series ?? 0;
    numSeries += series;
    if (sh.metrics) rate += ratePerSecond(sh.metrics.observations.history, now);
    shards.push({ shard: sh.shard, numSeries: series, numStreams: typeof sh.logs?.streams === "number" ? sh.logs.streams : null });
  }
  return { userID: t.tenant, stats: { ingestionRate: rate, numSeries, APIIngestionRate: rate, RuleIngestionRate: 0 }, shards };
}

function unavailable(snapshot: ClusterSnapshot): void {
  // Without its ring a tenant's shards are only guessed (the configured count): its series may be undercounted.
  const ringless = snapshot.tenants.filter((t) => t.ringError !== null);
  if (ringless.length > 0) {
    throw new HttpError(503, `${ringless.length} tenant ring(s) could not be read (retry): ${ringless.slice(0, 3).map((t) => `${t.tenant}: ${t.ringError}`).join("; ")}`, { "Retry-After": "1" });
  }
  if (snapshot.failures.metrics > 0) {
    const why = snapshot.tenants.flatMap((t) => t.shards.filter((s) => s.error !== null).map((s) => `${t.tenant}/${s.shard}: ${s.error}`));
    throw new HttpError(503, `${snapshot.failures.metrics} ingester shard(s) did not answer (retry): ${why.slice(0, 3).join("; ")}`, { "Retry-After": "1" });
  }
}

/** GET /api/v1/user_stats: the request's tenant, as Cortex's distributor answers it. */
export async function handleUserStats(env: Env, tenant: string): Promise<Response> {
  const snapshot = await collectCluster(env, undefined, { tenants: [tenant], logs: false, control: false });
  unavailable(snapshot);
  return Response.json(userStats(snapshot.tenants[0], Date.now()).stats);
}

/**
 * GET /distributor/all_user_stats: every tenant, sorted by series (most first) as
 * Cortex sorts them; JSON, or Cortex's HTML table when the client asks for text/html.
 */
export async function handleAllUserStats(request: Request, env: Env): Promise<Response> {
  // Series and rates only: the tenant control objects (HA, retention, tails) are not asked.
  const snapshot = await collectCluster(env, undefined, { control: false });
  unavailable(snapshot);
  const now = Date.now();
  const stats = snapshot.tenants.map((t) => userStats(t, now));
  stats.sort((a, b) => b.stats.numSeries - a.stats.numSeries || (a.userID < b.userID ? -1 : a.userID > b.userID ? 1 : 0));
  if (!(request.headers.get("Accept") ?? "").includes("text/html")) return Response.json(stats);
  const rows = stats
    .map(
      (s) =>
        `<tr><td>${escapeHtml(s.userID)}</td><td class="n">${s.stats.numSeries}</td><td class="n">${s.stats.ingestionRate.toFixed(2)}</td><td class="n">${s.stats.APIIngestionRate.toFixed(2)}</td><td class="n">${s.stats.RuleIngestionRate.toFixed(2)}</td><td>${s.shards.map((x) => x.numSeries).join(" / ")}</td></tr>`,
    )
    .join("");
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ingester stats</title><style>body{font:13px system-ui,sans-serif;margin:16px}table{border-collapse:collapse}th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}</style></head><body><h1>Ingester stats</h1><p>Stats at ${new Date(now).toISOString()}</p><table><thead><tr><th>User</th><th># Series</th><th>Total Ingest Rate</th><th>API Ingest Rate</th><th>Rule Ingest Rate</th><th>Series per shard</th></tr></thead><tbody>${rows}</tbody></table></body></html>`;
  return new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } });
}

/** GET /status: the HTML status page (src/http/status_page.ts). */
export async function handleStatusPage(env: Env): Promise<Response> {
  const gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);
  const snapshot = await collectCluster(env, gate);
  const blocks = new Map<string, Map<number, ShardBlocks>>();
  const logBlocks = new Map<string, Map<number, ShardBlocks>>();
  const blockErrors = new Map<string, string>();
  await Promise.all(
    snapshot.tenants.map(async (t) => {
      try {
        // Metric and log blocks, each listed from its own prefix.
        const [m, l] = await Promise.all([blocksByShard(env, t.tenant, gate, "metrics"), blocksByShard(env, t.tenant, gate, "logs")]);
        blocks.set(t.tenant, m);
        logBlocks.set(t.tenant, l);
      } catch (e) {
        blockErrors.set(t.tenant, (e as Error).message);
      }
    }),
  );
  const html = renderStatusPage({ snapshot, blocks, logBlocks, blockErrors, now: Date.now(), isolate: isolate() });
  return new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" } });
}
