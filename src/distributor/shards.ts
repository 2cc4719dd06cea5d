// Addressing a tenant's ingester shards: one Durable Object per (tenant, shard).

export function shardStub(env: Env, tenant: string, shard: number): DurableObjectStub<import("../../durable-objects/ingester").Ingester> {
  return env.INGESTER.get(env.INGESTER.idFromName(`${tenant}/${shard}`));
}
