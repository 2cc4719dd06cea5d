// GET /api/v1/status/ingesters: the tenant's shards as the ingesters see them
// (series, chunks, samples, WAL size, RPCs received). Used by the benchmark and by
// operators; the system's full /metrics comes with the tenancy issue.

import { limitsFor } from "../config/limits";
import { shardStub } from "../distributor/shards";
import { r2Ops } from "../storage/blocks";
import { MAX_CONCURRENT_SUBREQUESTS, mapLimit } from "../model/concurrency";

export async function handleIngesterStatus(env: Env, tenant: string): Promise<Response> {
  const shards = limitsFor(env, tenant).shards;
  const ids = Array.from({ length: shards }, (_, i) => i);
  const stats = await mapLimit(ids, MAX_CONCURRENT_SUBREQUESTS, async (shard) => ({ shard, ...(await shardStub(env, tenant, shard).stats()) }));
  return Response.json({ status: "success", data: { tenant, shards: stats } });
}

/** GET /api/v1/status/r2: R2 operations made by this isolate (the querier's reads, for the benchmark). */
export function handleR2Status(): Response {
  return Response.json({ status: "success", data: { ...r2Ops } });
}
