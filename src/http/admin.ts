// Admin endpoints, after Cortex's FlushHandler and ShutdownHandler and Thanos's block
// listing. They act on the request's tenant; `?all=true` on /flush acts on every
// tenant that has written (admin scope once authentication exists). Each reaches
// both ingesters of every shard the tenant's ring ever listed: the metrics
// Ingester and the LogIngester (Loki's /flush and /ingester/shutdown act on its
// one ingester kind the same way).

import { logShardStub, shardStub } from "../distributor/shards";
import { allShards } from "../distributor/tenant_ring";
import { MAX_CONCURRENT_SUBREQUESTS, mapLimit } from "../model/concurrency";
import { listBlocks, listTenants, type ListedBlock } from "../storage/blocks";
import { listLogBlocks } from "../storage/logs/blocks";
import { HttpError } from "./errors";

/** What /flush, /shutdown and DELETE /shutdown call on a shard; both ingester classes offer them. */
type AdminOp = "flushAll" | "shutdownShard" | "resume";

async function onEveryShard(env: Env, tenants: string[], op: AdminOp, what: string): Promise<void> {
  // LEAVING shards too (src/distributor/tenant_ring.ts): they may hold unflushed data.
  const perTenant = await Promise.all(tenants.map(async (t) => (await allShards(env, t)).map((s) => ({ tenant: t, shard: s }))));
  const targets = perTenant.flat();
  // Metrics and log shards alike; a log shard that never received a push answers at once.
  const calls: (() => Promise<unknown>)[] = [];
  for (const { tenant, shard } of targets) {
    calls.push(() => shardStub(env, tenant, shard)[op]());
    calls.push(() => logShardStub(env, tenant, shard)[op]());
  }
  try {
    await mapLimit(calls, MAX_CONCURRENT_SUBREQUESTS, (call) => call());
  } catch (e) {
    throw new HttpError(503, `${what} did not complete (nothing is lost; retry): ${(e as Error).message}`, { "Retry-After": "5" });
  }
}

/** POST /flush: every chunk (samples and log lines) of the tenant (or all tenants) to R2; 204 once the blocks are there. */
export async function handleFlush(request: Request, env: Env, tenant: string): Promise<Response> {
  const all = new URL(request.url).searchParams.get("all") === "true";
  const tenants = all ? await listTenants(env.BLOCKS) : [tenant];
  await onEveryShard(env, tenants, "flushAll", "flush");
  return new Response(null, { status: 204 });
}

/** POST /shutdown: the tenant's shards refuse writes (503), flush everything and release memory. */
export async function handleShutdown(env: Env, tenant: string): Promise<Response> {
  await onEveryShard(env, [tenant], "shutdownShard", "shutdown");
  return new Response(null, { status: 204 });
}

/** DELETE /shutdown: writes are accepted again. */
export async function handleResume(env: Env, tenant: string): Promise<Response> {
  await onEveryShard(env, [tenant], "resume", "resume");
  return new Response(null, { status: 204 });
}

/** A block as GET /api/v1/blocks lists it: its meta (minTime, maxTime, stats, shard, ...), key and size. */
function blockJson(b: ListedBlock, kind: "metrics" | "logs"): Record<string, unknown> {
  if (kind === "metrics") return { ...b.meta, key: b.key, size: b.size };
  // Log blocks use the metric block format with streams as its series and entries
  // as its samples (src/storage/logs/block.ts): the stats say so.
  const { numSeries, numSamples, numChunks, bytes } = b.meta.stats;
  return { ...b.meta, stats: { numStreams: numSeries, numChunks, numEntries: numSamples, bytes }, key: b.key, size: b.size };
}

/**
 * GET /api/v1/blocks[?kind=metrics|logs][&start=&end=]: the tenant's blocks, as
 * Thanos lists loaded blocks; `kind=logs` lists its log blocks in the same shape.
 */
export async function handleListBlocks(request: Request, env: Env, tenant: string): Promise<Response> {
  const url = new URL(request.url);
  const kind = url.searchParams.get("kind") ?? "metrics";
  if (kind !== "metrics" && kind !== "logs") throw new HttpError(400, `kind must be "metrics" or "logs", got ${JSON.stringify(kind)}: /api/v1/blocks?kind=logs`);
  const mint = Number(url.searchParams.get("start") ?? -Infinity) * (url.searchParams.has("start") ? 1000 : 1);
  const maxt = Number(url.searchParams.get("end") ?? Infinity) * (url.searchParams.has("end") ? 1000 : 1);
  if (Number.isNaN(mint) || Number.isNaN(maxt)) throw new HttpError(400, "start and end must be Unix timestamps in seconds");
  // A log block's index covers whole milliseconds; [mint, maxt] inclusive is [mint ms, maxt ms + 1 ms) in ns.
  const blocks = kind === "metrics" ? await listBlocks(env.BLOCKS, tenant, mint, maxt) : await listLogBlocks(env.BLOCKS, tenant, mint, 0, maxt + 1, 0);
  return Response.json({ status: "success", data: { blocks: blocks.map((b) => blockJson(b, kind)) } });
}
