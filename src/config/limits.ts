// Per-tenant limits, one type with documented defaults (docs/configuration.md).
// Defaults follow Cortex/Mimir unless a comment says otherwise; every rejection
// names the limit that caused it.

export interface Limits {
  /** Ingester Durable Objects a tenant's series are spread over. */
  shards: number;
  /** Mimir -validation.max-label-names-per-series. */
  maxLabelNamesPerSeries: number;
  /** Mimir -validation.max-length-label-name. */
  maxLabelNameLength: number;
  /** Mimir -validation.max-length-label-value. */
  maxLabelValueLength: number;
  /** Samples older than now - this are rejected; 0 disables (Cortex reject_old_samples_max_age, 2w). */
  rejectOldSamplesMaxAgeMs: number;
  /** Samples newer than now + this are rejected (Mimir creation_grace_period, 10m). */
  creationGracePeriodMs: number;
  /** Samples older than the series' newest by at most this are accepted (Prometheus out_of_order_time_window, 0 = off). */
  outOfOrderTimeWindowMs: number;
  /** Largest compressed request body accepted (HTTP 413 above). */
  maxRequestBodyBytes: number;
  /** Largest decompressed request accepted (HTTP 413 above), checked before decompressing. */
  maxDecompressedBytes: number;
  /** Samples kept in one head chunk before it is cut (Prometheus: 120). */
  maxSamplesPerChunk: number;
  /** A head chunk spanning more than this is cut (Loki/Cortex max_chunk_age, 2h). */
  maxChunkAgeMs: number;
  /** A series with no samples for this long has its open chunk closed and flushed (Loki chunk_idle_period, 30m). */
  idlePeriodMs: number;
  /** Flushed chunks stay in memory this long, so queries see no gap (Loki chunk_retain_period, 15m). */
  retainPeriodMs: number;
  /** How often an ingester checks for chunks to flush (Loki flush_check_period, 30s). */
  flushCheckPeriodMs: number;
  /** Past this many bytes of head data a shard refuses writes with 503 until a flush frees memory. */
  maxHeadBytesPerShard: number;
  /** Samples a query may hold in memory at once (Prometheus -query.max-samples, 50,000,000); beyond: 422. */
  maxSamplesPerQuery: number;
  /** Series a query may select, summed over its selectors (Mimir max_fetched_series_per_query); beyond: 422. Also caps /api/v1/series. */
  maxSeriesPerQuery: number;
  /** Longest a query may run (Prometheus -query.timeout, 2m); a shorter `timeout` parameter wins. Beyond: 503. */
  queryTimeoutMs: number;

  // ---- Logs (Loki's limits_config names and defaults) ----
  /** Loki max_label_names_per_series: label names a stream may have (15). */
  maxLogLabelNamesPerStream: number;
  /** Loki max_line_size: longest log line in bytes (256 KiB); longer lines are refused. */
  maxLineSize: number;
  /** Loki max_structured_metadata_size (64 KB): name + value bytes of one entry's structured metadata; 0 = unlimited. */
  maxStructuredMetadataSize: number;
  /** Loki max_structured_metadata_entries_count (128): structured metadata pairs of one entry; 0 = unlimited. */
  maxStructuredMetadataEntriesCount: number;
  /** Loki reject_old_samples_max_age: entries older than now - this are refused (1 week). */
  rejectOldLogsMaxAgeMs: number;
  /** Loki chunk_block_size: uncompressed bytes of a log chunk block before compression (256 KiB). */
  logChunkBlockSize: number;
  /** Loki chunk_target_size: compressed size at which a log chunk is cut (1.5 MB). */
  logChunkTargetSize: number;
  /** Loki max_entries_limit_per_query (5,000): the largest `limit` a log query may ask for. */
  maxEntriesLimitPerQuery: number;
  /** Loki max_query_series (500): streams/series a metric query may return. */
  maxLogQuerySeries: number;
  /** Whether `navigator.sendBeacon` bodies (Content-Type text/plain holding Loki JSON) are accepted for this tenant (1) or not (0). */
  allowBeaconPush: number;
  /** Origins whose pages may push (CORS), e.g. ["https://shop.example"]; ["*"] allows any. Empty: no browser access. */
  corsAllowedOrigins: string[];

  // ---- Ingestion rate and tenant size (src/limits/, durable-objects/rate_limiter.ts) ----
  /** Mimir ingestion_rate: samples/s a tenant may push, over all Workers (10,000); 0 = unlimited. */
  ingestionRate: number;
  /** Mimir ingestion_burst_size: samples a tenant may push at once above the rate (200,000). */
  ingestionBurstSize: number;
  /** Loki ingestion_rate_mb (4 MB/s), in bytes/s of log lines (and structured metadata); 0 = unlimited. */
  logIngestionRateBytes: number;
  /** Loki ingestion_burst_size_mb (6 MB), in bytes. */
  logIngestionBurstBytes: number;
  /** Mimir max_global_series_per_user (150,000), enforced per shard as limit / shards; 0 = unlimited. */
  maxGlobalSeriesPerUser: number;
  /** Loki max_global_streams_per_user (5,000), enforced per shard as limit / shards; 0 = unlimited. */
  maxGlobalStreamsPerUser: number;
  /**
   * Mimir compactor_blocks_retention_period / Loki retention_period (0 = keep forever):
   * blocks (metrics and logs) whose maxTime is older than now - this are deleted from R2
   * by the tenant's hourly sweep (src/storage/retention.ts), and queries never return
   * data older than that, even before the sweep ran.
   */
  retentionPeriodMs: number;
  /** Loki max_concurrent_tail_requests (10): live tails a tenant may have open at once, over all Workers; 0 refuses every tail, as Loki does. */
  maxConcurrentTailRequests: number;

  // ---- HA-pair de-duplication (Cortex HA tracker; src/distributor/ha.ts) ----
  /** Cortex accept_ha_samples: 1 turns on de-duplication of Prometheus HA pairs for this tenant (0: off). */
  acceptHaSamples: number;
  /** Cortex ha_cluster_label: the label naming the HA pair ("cluster"); kept on stored series. */
  haClusterLabel: string;
  /** Cortex ha_replica_label: the label naming the replica ("__replica__"); removed before storage. */
  haReplicaLabel: string;
  /** Cortex ha_tracker failover_timeout (30 s): silence of the elected replica after which another is elected. */
  haFailoverTimeoutMs: number;
  /** Cortex ha_tracker update_timeout (15 s): how long an isolate trusts a cached election of the elected replica. */
  haUpdateTimeoutMs: number;
  /** Cortex ha_tracker update_timeout_jitter_max (5 s): random extra on the above, so isolates do not ask in step. */
  haUpdateTimeoutJitterMaxMs: number;
  /** Cortex ha_max_clusters: clusters a tenant may have (0: no limit); a new one beyond is refused with 400. */
  haMaxClusters: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const MiB = 1 << 20;

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  shards: 4,
  maxLabelNamesPerSeries: 30,
  maxLabelNameLength: 1024,
  maxLabelValueLength: 2048,
  rejectOldSamplesMaxAgeMs: 14 * 24 * HOUR,
  creationGracePeriodMs: 10 * MINUTE,
  outOfOrderTimeWindowMs: 0,
  maxRequestBodyBytes: 10 * MiB,
  maxDecompressedBytes: 64 * MiB,
  maxSamplesPerChunk: 120,
  maxChunkAgeMs: 2 * HOUR,
  idlePeriodMs: 30 * MINUTE,
  retainPeriodMs: 15 * MINUTE,
  flushCheckPeriodMs: 30_000,
  maxHeadBytesPerShard: 48 * MiB,
  maxSamplesPerQuery: 50_000_000,
  maxSeriesPerQuery: 100_000,
  queryTimeoutMs: 2 * MINUTE,
  maxLogLabelNamesPerStream: 15,
  maxLineSize: 256 * 1024,
  maxStructuredMetadataSize: 64 * 1024,
  maxStructuredMetadataEntriesCount: 128,
  rejectOldLogsMaxAgeMs: 7 * 24 * HOUR,
  logChunkBlockSize: 256 * 1024,
  logChunkTargetSize: 1_572_864,
  maxEntriesLimitPerQuery: 5000,
  maxLogQuerySeries: 500,
  allowBeaconPush: 1,
  corsAllowedOrigins: [],
  ingestionRate: 10_000,
  ingestionBurstSize: 200_000,
  logIngestionRateBytes: 4 * MiB,
  logIngestionBurstBytes: 6 * MiB,
  maxGlobalSeriesPerUser: 150_000,
  maxGlobalStreamsPerUser: 5000,
  retentionPeriodMs: 0,
  maxConcurrentTailRequests: 10,
  acceptHaSamples: 0,
  haClusterLabel: "cluster",
  haReplicaLabel: "__replica__",
  haFailoverTimeoutMs: 30_000,
  haUpdateTimeoutMs: 15_000,
  haUpdateTimeoutJitterMaxMs: 5000,
  haMaxClusters: 0,
});

export type Overrides = Record<string, Partial<Limits>>;

let cachedSource: string | undefined;
let cachedOverrides: Overrides = {};
const cachedLimits = new Map<string, Limits>();
/** Runtime overrides (src/config/runtime.ts, R2 config/runtime.json), layered over LIMITS. */
let runtimeOverrides: Overrides = {};

/** Installs the runtime config's overrides (loaded once per request by the router); limitsFor sees them at once. */
export function setRuntimeOverrides(overrides: Overrides): void {
  if (overrides === runtimeOverrides) return;
  runtimeOverrides = overrides;
  cachedLimits.clear();
}

/**
 * Limits for a tenant: defaults, then env.SHARDS, then the LIMITS JSON var
 * ({"*": {...}, "<tenant>": {...}}), then the runtime config's overrides the same way,
 * most specific last. Parsed once per isolate.
 */
export function limitsFor(env: { SHARDS?: string; LIMITS?: string }, tenant: string): Limits {
  const source = `${env.SHARDS ?? ""}\u0000${env.LIMITS ?? ""}`;
  if (source !== cachedSource) {
    cachedOverrides = parseOverrides(env.LIMITS);
    cachedLimits.clear();
    cachedSource = source;
  }
  let limits = cachedLimits.get(tenant);
  if (!limits) {
    limits = { ...DEFAULT_LIMITS };
    if (env.SHARDS) limits.shards = positiveInt(env.SHARDS, "SHARDS");
    Object.assign(limits, cachedOverrides["*"], cachedOverrides[tenant], runtimeOverrides["*"], runtimeOverrides[tenant]);
    cachedLimits.set(tenant, limits);
  }
  return limits;
}

function parseOverrides(json: string | undefined): Overrides {
  if (!json) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new Error(`LIMITS is not valid JSON: ${(e as Error).message}`);
  }
  return checkOverrides(parsed, "LIMITS");
}

/** Checks an object of tenant -> limit overrides; errors name the path (`${what}["tenant"].key`). */
export function checkOverrides(parsed: unknown, what: string): Overrides {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`${what} must be a JSON object of tenant -> limits`);
  const out: Overrides = {};
  for (const [tenant, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what}["${tenant}"] must be an object`);
    const limits: Partial<Limits> = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (!(key in DEFAULT_LIMITS)) throw new Error(`${what}["${tenant}"].${key} is not a known limit (see docs/configuration.md)`);
      if (Array.isArray(DEFAULT_LIMITS[key as keyof Limits])) {
        if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`${what}["${tenant}"].${key} must be an array of strings`);
        (limits as Record<string, unknown>)[key] = v;
        continue;
      }
      if (typeof DEFAULT_LIMITS[key as keyof Limits] === "string") {
        if (typeof v !== "string" || v === "") throw new Error(`${what}["${tenant}"].${key} must be a non-empty string`);
        (limits as Record<string, unknown>)[key] = v;
        continue;
      }
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new Error(`${what}["${tenant}"].${key} must be a non-negative number`);
      (limits as Record<string, unknown>)[key] = v;
    }
    out[tenant] = limits;
  }
  return out;
}

function positiveInt(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`${name} must be an integer from 1 to 1024, got "${s}"`);
  return n;
}

/**
 * Every source's parsed overrides (LIMITS, then the runtime config), each {"*": {...},
 * "<tenant>": {...}}: for settings read across tenants, such as the CORS preflight,
 * which names no tenant (src/http/cors.ts).
 */
export function limitOverrides(env: { SHARDS?: string; LIMITS?: string }): readonly Readonly<Overrides>[] {
  limitsFor(env, "*"); // re-parses LIMITS when it changed
  return [cachedOverrides, runtimeOverrides];
}
