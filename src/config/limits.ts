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
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new Error(`LIMITS["${tenant}"].${key} must be a non-negative number`);
      limits[key as keyof Limits] = v;
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
