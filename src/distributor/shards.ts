// Addressing a tenant's ingester shards: one Durable Object per (tenant, shard).

export function shardStub(env: Env, tenant: string, shard: number): DurableObjectStub<import("../../durable-objects/ingester").Ingester> {
  return env.INGESTER.get(env.INGESTER.idFromName(`${tenant}/${shard}`));
}

/** The log ingester of a tenant shard: same naming, sibling class. */
export function logShardStub(env: Env, tenant: string, shard: number): DurableObjectStub<import("../../durable-objects/log_ingester").LogIngester> {
  return env.LOGS.get(env.LOGS.idFromName(`${tenant}/${shard}`));
}
