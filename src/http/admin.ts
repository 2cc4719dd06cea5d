// Admin endpoints, after Cortex's FlushHandler and ShutdownHandler and Thanos's block
// listing. They act on the request's tenant; `?all=true` on /flush acts on every
// tenant that has written (admin scope once authentication exists).

import { shardStub } from "../distributor/shards";
import { allShards } from "../distributor/tenant_ring";
import { MAX_CONCURRENT_SUBREQUESTS, mapLimit } from "../model/concurrency";
import { listBlocks, listTenants } from "../storage/blocks";
import { HttpError } from "./errors";

async function onEveryShard<R>(env: Env, tenants: string[], fn: (stub: ReturnType<typeof shardStub>) => Promise<R>): Promise<R[]> {
  // LEAVING shards too (src/distributor/tenant_ring.ts): they may hold unflushed data.
  const perTenant = await Promise.all(tenants.map(async (t) => (await allShards(env, t)).map((s) => shardStub(env, t, s))));
  const targets = perTenant.flat();
  try {
    return await mapLimit(targets, MAX_CONCURRENT_SUBREQUESTS, fn);
  } catch (e) {
    throw new HttpError(503, `flush did not complete (nothing is lost; retry): ${(e as Error).message}`, { "Retry-After": "5" });
  }
}

/** POST /flush: every chunk of the tenant (or all tenants) to R2; 204 once the blocks are there. */
export async function handleFlush(request: Request, env: Env, tenant: string): Promise<Response> {
  const all = new URL(request.url).searchParams.get("all") === "true";
  const tenants = all ? await listTenants(env.BLOCKS) : [tenant];
  await onEveryShard(env, tenants, (stub) => stub.flushAll());
  return new Response(null, { status: 204 });
}

/** POST /shutdown: the tenant's shards refuse writes (503), flush everything and release memory. */
export async function handleShutdown(env: Env, tenant: string): Promise<Response> {
  await onEveryShard(env, [tenant], (stub) => stub.shutdownShard());
  return new Response(null, { status: 204 });
}

/** DELETE /shutdown: writes are accepted again. */
export async function handleResume(env: Env, tenant: string): Promise<Response> {
  await onEveryShard(env, [tenant], (stub) => stub.resume());
  return new Response(null, { status: 204 });
}

/** GET /api/v1/blocks: the tenant's blocks, as Thanos lists loaded blocks. */
export async function handleListBlocks(request: Request, env: Env, tenant: string): Promise<Response> {
  const url = new URL(request.url);
  const mint = Number(url.searchParams.get("start") ?? -Infinity) * (url.searchParams.has("start") ? 1000 : 1);
  const maxt = Number(url.searchParams.get("end") ?? Infinity) * (url.searchParams.has("end") ? 1000 : 1);
  if (Number.isNaN(mint) || Number.isNaN(maxt)) throw new HttpError(400, "start and end must be Unix timestamps in seconds");
  const blocks = await listBlocks(env.BLOCKS, tenant, mint, maxt);
  return Response.json({ status: "success", data: { blocks: blocks.map((b) => ({ ...b.meta, key: b.key, size: b.size })) } });
}
