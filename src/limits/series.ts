// A tenant-wide limit on series (or log streams) enforced by each shard as its share,
// as Mimir does: each ingester applies max_global_series_per_user divided by the
// ingesters the tenant is spread over (convertGlobalToLocalLimit). Consistent hashing
// spreads series unevenly, so a tenant may be refused somewhat before the global
// figure; Mimir has the same tolerance.

/** A shard's share of a tenant-wide limit: floor(limit / shards), at least 1; 0 (no limit) stays 0. */
export function perShardLimit(globalLimit: number, shards: number): number {
  if (globalLimit <= 0) return 0;
  return Math.max(1, Math.floor(globalLimit / Math.max(1, shards)));
}
