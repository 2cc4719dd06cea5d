// Addressing a tenant's ingester shards: one Durable Object per (tenant, shard).

export function shardStub(env: Env, tenant: string, shard: number): DurableObjectStub<import("../../durable-objects/ingester").Ingester> {
  return env.INGESTER.get(env.INGESTER.idFromName(`${tenant}/${shard}`));
}

/**
 * Runs fn over items with at most `limit` in flight: a Worker invocation may hold
 * only 6 connections open at once, and more are queued by the runtime anyway.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers: Promise<void>[] = [];
  for (let w = 0; w < Math.min(limit, items.length); w++) {
    workers.push(
      (async () => {
        while (next < items.length) {
          const i = next++;
          out[i] = await fn(items[i], i);
        }
      })(),
    );
  }
  await Promise.all(workers);
  return out;
}

export const MAX_CONCURRENT_SUBREQUESTS = 6;
