// Counting a shard's R2 calls in its persisted counters (cortex_r2_operations_total).
// The bucket is wrapped at each use rather than once, because tests replace the
// Durable Object's `bucket` to inject failures and those calls must count too.

//
// Whoever counts must persist: a shard's ShardObserver, or the tenant control object's
// retention state (the retention sweep's lists and deletes, durable-objects/tenant.ts).

import { COUNTER } from "./shard";

const OPS: Record<string, string> = { put: "put", delete: "delete", get: "get", head: "head", list: "list" };

/** Persisted counters (ShardObserver is one): commit() writes what inc() changed. */
export interface R2Counter {
  inc(key: string, by?: number): void;
  commit(): void;
}

export function countingBucket(bucket: R2Bucket, obs: R2Counter): R2Bucket {
  return new Proxy(bucket, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      const op = typeof prop === "string" ? OPS[prop] : undefined;
      if (op === undefined || typeof value !== "function") return value;
      return (...args: unknown[]) => {
        // Counted (and committed) before the call, in the caller's synchronous
        // section: the call is made whether or not the Durable Object survives it.
        obs.inc(`${COUNTER.r2Ops}/${op}`);
        if (op === "put") obs.inc(COUNTER.r2BytesWritten, byteLength(args[1]));
        obs.commit();
        const result = (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        return result.catch((e: unknown) => {
          obs.inc(`${COUNTER.r2Failures}/${op}`);
          obs.commit();
          throw e;
        });
      };
    },
  });
}

function byteLength(body: unknown): number {
  if (typeof body === "string") return new TextEncoder().encode(body).length;
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  return 0;
}
