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
  rejectOldLogsMaxAgeMs: 7 * 24 * HOUR,
  logChunkBlockSize: 256 * 1024,
  logChunkTargetSize: 1_572_864,
  maxEntriesLimitPerQuery: 5000,
  maxLogQuerySeries: 500,
  allowBeaconPush: 1,
  corsAllowedOrigins: [],
});

type Overrides = Record<string, Partial<Limits>>;

let cachedSource: string | undefined;
let cachedOverrides: Overrides = {};
const cachedLimits = new Map<string, Limits>();

/**
 * Limits for a tenant: defaults, then env.SHARDS, then the LIMITS JSON var
 * ({"*": {...}, "<tenant>": {...}}), most specific last. Parsed once per isolate.
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
    Object.assign(limits, cachedOverrides["*"], cachedOverrides[tenant]);
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
  if (typeof parsed !== "object" || parsed === null) throw new Error("LIMITS must be a JSON object of tenant -> limits");
  const out: Overrides = {};
  for (const [tenant, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value !== "object" || value === null) throw new Error(`LIMITS["${tenant}"] must be an object`);
    const limits: Partial<Limits> = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (!(key in DEFAULT_LIMITS)) throw new Error(`LIMITS["${tenant}"].${key} is not a known limit (see docs/configuration.md)`);
      if (Array.isArray(DEFAULT_LIMITS[key as keyof Limits])) {
        if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`LIMITS["${tenant}"].${key} must be an array of strings`);
        (limits as Record<string, unknown>)[key] = v;
        continue;
      }
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new Error(`LIMITS["${tenant}"].${key} must be a non-negative number`);
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
