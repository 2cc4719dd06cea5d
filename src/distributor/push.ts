// The distributor's remote write handler: decode, validate, place each series on
// the tenant's ring, and send one RPC per shard, in parallel. Valid samples are kept
// when others are refused (Cortex's partial errors): the answer is then 400 naming
// the first refused sample and how many were dropped.

import { limitsFor, type Limits } from "../config/limits";
import { HttpError } from "../http/errors";
import { readBody, remoteWriteVersion, requireSnappy, RemoteWriteVersion } from "../http/body";
import { snappyDecompress, BodyTooLargeError } from "../proto/snappy";
import { decodeWriteRequestV1, decodeWriteRequestV2 } from "../proto/remote_write";
import { ProtoError, type DecodedWrite, type MetricMetadata } from "../proto/types";
import { Reason } from "../model/errors";
import { seriesKey, type FlatLabels } from "../model/labels";
import type { ShardPush, ShardPushResult } from "../ingester/rpc";
import { fmix32, hash32, seriesHash } from "./hash";
import type { Ring } from "./ring";
import { dedupeHaPair } from "./ha";
import { writeRing } from "./tenant_ring";
import { shardStub } from "./shards";
import { validateLabels, validateTimestamp } from "./validate";
import { countIfRateLimited, forwardDistributorDiscards, withUnsupported } from "../observability/distributor";
import { perShardLimit } from "../limits/series";
import { admitSamples } from "../limits/rate";

/** Tally of one push across validation and shards. */
interface Outcome {
  total: number;
  written: number;
  dropped: number;
  reasons: Map<Reason, number>;
  firstError: string | null;
}

export async function handleRemoteWrite(request: Request, env: Env, tenant: string): Promise<Response> {
  const limits = limitsFor(env, tenant);
  const version = remoteWriteVersion(request.headers.get("Content-Type"));
  requireSnappy(request);
  const body = await readBody(request, limits.maxRequestBodyBytes);
  const write = decode(body, version, limits);

  const outcome: Outcome = { total: write.sampleCount, written: 0, dropped: 0, reasons: new Map(), firstError: null };
  // Cortex's order: the HA tracker first (a non-elected replica's request is answered
  // 202 and costs nothing more), then placement on the tenant's newest ring (cached
  // per isolate; src/distributor/tenant_ring.ts). Both are usually cache hits.
  const [deduped, { ring, since: ringSince }] = await Promise.all([dedupeHaPair(env, tenant, limits, write), writeRing(env, tenant)]);
  if (deduped !== null) {
    const h: Record<string, string> = version === RemoteWriteVersion.V2 ? { "X-Prometheus-Remote-Write-Samples-Written": "0" } : {};
    return new Response(deduped + "\n", { status: 202, headers: h });
  }
  const batches = distribute(write, tenant, limits, ring, Date.now(), outcome);
  for (const b of batches) if (b !== null) b.ringSince = ringSince;
  // Validation's discards, and the native histogram samples and exemplars refused below, are counted
  // (src/observability/distributor.ts): they ride with a batch to a shard's persisted counters.
  const discards = withUnsupported(outcome.reasons, write.histogramCount, write.exemplarCount);
  const firstDiscard = outcome.firstError ?? unsupportedParts(write);
  // Mimir's ingestion rate limit, on the valid samples, before any shard write: a refused push writes
  // nothing (429); its validation discards are counted first, as Mimir counts them before rate_limited.
  await countIfRateLimited(admitSamples(env, tenant, limits, outcome.total - outcome.dropped), () => forwardDistributorDiscards(env, tenant, [], discards, firstDiscard));
  const counted = forwardDistributorDiscards(env, tenant, batches, discards, firstDiscard);
  const results = await Promise.all(
    batches.map((batch, shard) => (batch === null ? null : sendToShard(env, tenant, shard, batch))),
  );
  await counted;
  for (const r of results) {
    if (r === null) continue;
    outcome.written += r.written;
    for (const { reason, count } of r.rejected) {
      outcome.dropped += count;
      outcome.reasons.set(reason, (outcome.reasons.get(reason) ?? 0) + count);
    }
    if (outcome.firstError === null && r.firstError !== null) outcome.firstError = r.firstError;
  }

  const headers: Record<string, string> = {};
  if (version === RemoteWriteVersion.V2) {
    // Honest counts: only what was stored. Histograms and exemplars are not stored yet.
    headers["X-Prometheus-Remote-Write-Samples-Written"] = String(outcome.written);
    headers["X-Prometheus-Remote-Write-Histograms-Written"] = "0";
    headers["X-Prometheus-Remote-Write-Exemplars-Written"] = "0";
  }
  const unsupported = unsupportedParts(write);
  if (outcome.firstError !== null || unsupported !== null) {
    const parts: string[] = [];
    if (outcome.firstError !== null) {
      parts.push(`${outcome.firstError}; ${outcome.dropped} of ${outcome.total} samples in this request were dropped, ${outcome.written} were written`);
    }
    if (unsupported !== null) parts.push(unsupported);
    return new Response(parts.join("\n") + "\n", { status: 400, headers });
  }
  return new Response(null, { status: 204, headers });
}

function decode(body: Uint8Array, version: RemoteWriteVersion, limits: Limits): DecodedWrite {
  let raw: Uint8Array;
  try {
    raw = snappyDecompress(body, limits.maxDecompressedBytes);
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new HttpError(413, `${e.message} (maxDecompressedBytes)`);
    throw new HttpError(400, `request body is not valid snappy block-format data: ${(e as Error).message}`);
  }
  try {
    return version === RemoteWriteVersion.V2 ? decodeWriteRequestV2(raw) : decodeWriteRequestV1(raw);
  } catch (e) {
    if (e instanceof ProtoError) {
      const msg = version === RemoteWriteVersion.V2 ? "io.prometheus.write.v2.Request" : "prometheus.WriteRequest";
      throw new HttpError(400, `request body is not a valid ${msg} protobuf message: ${e.message}`);
    }
    throw e;
  }
}

function unsupportedParts(write: DecodedWrite): string | null {
  const parts: string[] = [];
  if (write.histogramCount > 0) parts.push(`${write.histogramCount} native histogram samples were not written: native histograms are not supported yet`);
  if (write.exemplarCount > 0) parts.push(`${write.exemplarCount} exemplars were not written: exemplars are not supported yet (set send_exemplars: false)`);
  return parts.length > 0 ? parts.join("; ") : null;
}

/**
 * Validates and groups the request by shard: two passes over the series (count,
 * then fill exact-size typed arrays), so no per-sample objects are made. Series
 * this isolate has seen recently skip validation, key building and hashing
 * (KnownSeries below).
 */
function distribute(write: DecodedWrite, tenant: string, limits: Limits, ring: Ring, now: number, outcome: Outcome): (ShardPush | null)[] {
  const shards = ring.shards;
  const nSeries = write.series.length;
  const shardOf = new Int32Array(nSeries).fill(-1);
  const keys: string[] = new Array(nSeries);
  const okCount = new Uint32Array(nSeries);
  const ok = new Uint8Array(write.sampleCount);
  const shardSeries = new Uint32Array(shards);
  const shardSamples = new Uint32Array(shards);
  const anyCreated = new Uint8Array(shards);

  const drop = (reason: Reason, count: number, message: string) => {
    outcome.dropped += count;
    outcome.reasons.set(reason, (outcome.reasons.get(reason) ?? 0) + count);
    if (outcome.firstError === null) outcome.firstError = message;
  };

  const seed = hash32(tenant);
  // The bounds validateTimestamp checks, hoisted: it is called only to name a failure.
  const maxT = now + limits.creationGracePeriodMs;
  const minT = limits.rejectOldSamplesMaxAgeMs > 0 ? now - limits.rejectOldSamplesMaxAgeMs : -Infinity;
  const timestamps = write.timestamps;
  for (let i = 0; i < nSeries; i++) {
    const s = write.series[i];
    if (s.sampleCount === 0) continue;
    const labels = s.labels;
    const useCache = cacheTurn();
    let known = useCache ? lookup(seed, labels, limits) : null;
    if (known === null) {
      const bad = validateLabels(labels, limits);
      if (bad !== null) {
        drop(bad.reason, s.sampleCount, bad.message);
        continue;
      }
    }
    let n = 0;
    const end = s.sampleStart + s.sampleCount;
    for (let j = s.sampleStart; j < end; j++) {
      const t = timestamps[j];
      if (t > maxT || t < minT) {
        const badTime = validateTimestamp(t, now, limits, labels)!;
        drop(badTime.reason, 1, badTime.message);
      } else {
        ok[j] = 1;
        n++;
      }
    }
    if (n === 0) continue;
    let key: string;
    let shard: number;
    if (known === null) {
      key = seriesKey(labels);
      // seriesHash(tenant, key); hashing flattens the rope once, for the RPC and the cache.
      const hash = hash32(key, seed);
      shard = ring.shardFor(hash);
      if (useCache) remember(seed, hash, labels, key, shard, shards);
    } else {
      key = known.key;
      if (known.shards !== shards) {
        known.shard = ring.shardFor(known.hash);
        known.shards = shards;
      }
      shard = known.shard;
    }
    keys[i] = key;
    shardOf[i] = shard;
    okCount[i] = n;
    shardSeries[shard]++;
    shardSamples[shard] += n;
    if (s.createdTimestamp > 0) anyCreated[shard] = 1;
  }

  const batches: (ShardPush | null)[] = new Array(shards).fill(null);
  const fill = new Uint32Array(shards);
  const fillSamples = new Uint32Array(shards);
  for (let shard = 0; shard < shards; shard++) {
    if (shardSeries[shard] === 0) continue;
    batches[shard] = {
      tenant,
      shard,
      keys: new Array(shardSeries[shard]),
      counts: new Uint32Array(shardSeries[shard]),
      created: anyCreated[shard] ? new Float64Array(shardSeries[shard]) : null,
      timestamps: new Float64Array(shardSamples[shard]),
      values: new Float64Array(shardSamples[shard]),
      metadata: [],
      outOfOrderTimeWindowMs: limits.outOfOrderTimeWindowMs,
      maxSamplesPerChunk: limits.maxSamplesPerChunk,
      maxChunkAgeMs: limits.maxChunkAgeMs,
      maxSeriesPerShard: perShardLimit(limits.maxGlobalSeriesPerUser, shards),
    };
  }
  // Values are copied as their two 32-bit words, never as numbers: V8 may quiet a
  // signalling NaN (the stale marker) that travels as a number.
  const from = new Uint32Array(write.values.buffer, write.values.byteOffset, write.values.length * 2);
  const to = batches.map((b) => (b === null ? null : new Uint32Array(b.values.buffer)));
  for (let i = 0; i < nSeries; i++) {
    const shard = shardOf[i];
    if (shard < 0) continue;
    const b = batches[shard]!;
    const words = to[shard]!;
    const s = write.series[i];
    const k = fill[shard]++;
    b.keys[k] = keys[i];
    b.counts[k] = okCount[i];
    if (b.created !== null) b.created[k] = s.createdTimestamp;
    let o = fillSamples[shard];
    const end = s.sampleStart + s.sampleCount;
    for (let j = s.sampleStart; j < end; j++) {
      if (!ok[j]) continue;
      b.timestamps[o] = timestamps[j];
      words[2 * o] = from[2 * j];
      words[2 * o + 1] = from[2 * j + 1];
      o++;
    }
    fillSamples[shard] = o;
  }

  // Metadata goes to the shard its family name hashes to, so one family has one home.
  for (const m of write.metadata) {
    if (!m.metricFamilyName) continue;
    const shard = ring.shardFor(seriesHash(tenant, "__metadata__" + m.metricFamilyName));
    (batches[shard] ??= emptyBatch(tenant, shard, limits)).metadata.push(m as MetricMetadata);
  }
  return batches;
}

/**
 * A series seen recently by this isolate: its key, placement and the label sizes
 * its validation depended on. Senders push the same series every scrape, so a
 * known series skips validation, key building, hashing and the ring lookup, and
 * its key is one flat string rather than a fresh rope that the RPC would flatten.
 */
class KnownSeries {
  readonly maxNameLength: number;
  readonly maxValueLength: number;

  constructor(
    /** hash32 of the tenant: placement depends on it. */
    readonly seed: number,
    /** The placement hash, seriesHash(tenant, key). */
    readonly hash: number,
    /** The decoder's array (a fresh one per series, never changed afterwards). */
    readonly labels: FlatLabels,
    readonly key: string,
    public shard: number,
    /** Shard count `shard` was computed for (the ring is a function of it). */
    public shards: number,
  ) {
    let name = 0;
    let value = 0;
    for (let i = 0; i < labels.length; i += 2) {
      if (labels[i].length > name) name = labels[i].length;
      if (labels[i + 1].length > value) value = labels[i + 1].length;
    }
    this.maxNameLength = name;
    this.maxValueLength = value;
  }

  /** Whether the size limits validateLabels applies hold (its other rules do not depend on limits). */
  fits(limits: Limits): boolean {
    return (
      this.labels.length >> 1 <= limits.maxLabelNamesPerSeries &&
      this.maxNameLength <= limits.maxLabelNameLength &&
      this.maxValueLength <= limits.maxLabelValueLength
    );
  }
}

/**
 * Bounded so that the isolate's memory stays small whatever the tenants send:
 * ~250 bytes an entry for node_exporter-like series (key, labels array; the label
 * strings themselves are mostly the decoder's interned ones), so ~4 MB when full;
 * series with longer keys are not cached, so never more than ~20 MB.
 */
const SERIES_CACHE_SIZE = 16384;
const SERIES_CACHE_MAX_KEY = 512;
/** Map keys are 30-bit so that they stay small integers (no boxing). */
const SMI_MASK = 0x3fffffff;
const seriesCache = new Map<number, KnownSeries>();
/** Insertion order of the cache's keys, for first-in first-out eviction without iterators. */
const cacheOrder = new Int32Array(SERIES_CACHE_SIZE).fill(-1);
let cacheNext = 0;

/**
 * The cache is found by the label values' ids rather than by the placement hash:
 * hashing a series' ~100 characters in JS costs more than everything else a known
 * series needs, whereas a Map lookup of a string the decoder interned (the same
 * object every request) reuses the hash V8 cached in the string. Longer values
 * are not given ids (their series are not cached), which bounds the memory held.
 */
const STRING_IDS_MAX = 65536;
const STRING_ID_MAX_LENGTH = 64;
const stringIds = new Map<string, number>();
/** Not reused after a clear, so that clearing only orphans cache entries (evicted in time). */
let nextStringId = 0;

/** The id of a label value; -1 when it has none (and `assign` is false, or it is too long). */
function stringId(s: string, assign: boolean): number {
  let id = stringIds.get(s);
  if (id === undefined) {
    if (!assign || s.length > STRING_ID_MAX_LENGTH) return -1;
    if (stringIds.size >= STRING_IDS_MAX) stringIds.clear();
    id = nextStringId = (nextStringId + 1) & SMI_MASK;
    stringIds.set(s, id);
  }
  return id;
}

/**
 * The cache key of a label set for a tenant, or -1 when it is not cached. Made
 * of the values only (names rarely tell series apart, and sameLabels checks them
 * anyway), which halves the lookups. A lookup does not `assign` ids: a value never
 * seen means a miss, and only series entering the cache give their values ids.
 */
function cacheSlot(seed: number, labels: FlatLabels, assign: boolean): number {
  let h = seed ^ labels.length;
  for (let i = 1; i < labels.length; i += 2) {
    const value = labels[i];
    const at = i >> 1;
    let id: number;
    // Consecutive series of a request mostly share values (instance, job, metric
    // name) at the same position: the previous series' ids save most Map lookups.
    if (at < MEMO && lastValues[at] === value) id = lastIds[at];
    else {
      id = stringId(value, assign);
      if (id < 0) return -1;
      if (at < MEMO) {
        lastValues[at] = value;
        lastIds[at] = id;
      }
    }
    h = Math.imul(h ^ id, 0x9e3779b1);
  }
  return fmix32(h) & SMI_MASK;
}

/** Ids of the values of the last series looked up, by label position. */
const MEMO = 32;
const lastValues: string[] = new Array<string>(MEMO).fill("");
const lastIds = new Int32Array(MEMO);

/**
 * Sampling: when most lookups miss (a tenant with more series than the cache
 * holds), looking up and caching every series costs more than it saves: lookups
 * are random memory accesses, and entries live long enough to be promoted, so
 * churning them costs the GC. Then one series in SAMPLE_EVERY uses the cache,
 * enough to notice (and warm up) a working set that fits.
 */
const SAMPLE_EVERY = 8;
/** Lookups between two decisions. */
const WINDOW = 4096;
let sampling = false;
let turn = 0;
let windowLookups = 0;
let windowHits = 0;

/** Whether this series uses the cache (always, unless sampling). */
function cacheTurn(): boolean {
  return !sampling || (++turn & (SAMPLE_EVERY - 1)) === 0;
}

/** The cached series with these labels for this tenant (if it fits the limits), or null. */
function lookup(seed: number, labels: FlatLabels, limits: Limits): KnownSeries | null {
  if (++windowLookups === WINDOW) {
    sampling = windowHits * 2 < WINDOW;
    windowLookups = windowHits = 0;
  }
  const slot = cacheSlot(seed, labels, false);
  if (slot < 0) return null;
  const known = seriesCache.get(slot);
  if (known === undefined || known.seed !== seed || !sameLabels(known.labels, labels) || !known.fits(limits)) return null;
  windowHits++;
  return known;
}

/** Caches a validated series (unless its key or one of its values is too long). `key` is flat (hashed). */
function remember(seed: number, hash: number, labels: FlatLabels, key: string, shard: number, shards: number): void {
  if (key.length > SERIES_CACHE_MAX_KEY) return;
  const slot = cacheSlot(seed, labels, true);
  if (slot < 0) return;
  if (!seriesCache.has(slot)) {
    const old = cacheOrder[cacheNext];
    if (old >= 0) seriesCache.delete(old);
    cacheOrder[cacheNext] = slot;
    cacheNext = (cacheNext + 1) % SERIES_CACHE_SIZE;
  }
  seriesCache.set(slot, new KnownSeries(seed, hash, labels, key, shard, shards));
}

/** Label strings are mostly the decoder's interned ones, so this is mostly pointer comparisons. */
function sameLabels(a: FlatLabels, b: FlatLabels): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function emptyBatch(tenant: string, shard: number, limits: Limits): ShardPush {
  return {
    tenant,
    shard,
    keys: [],
    counts: new Uint32Array(0),
    created: null,
    timestamps: new Float64Array(0),
    values: new Float64Array(0),
    metadata: [],
    outOfOrderTimeWindowMs: limits.outOfOrderTimeWindowMs,
    maxSamplesPerChunk: limits.maxSamplesPerChunk,
    maxChunkAgeMs: limits.maxChunkAgeMs,
  };
}

async function sendToShard(env: Env, tenant: string, shard: number, batch: ShardPush): Promise<ShardPushResult> {
  try {
    return await shardStub(env, tenant, shard).push(batch);
  } catch (e) {
    // Nothing of this shard's part is acked; the sender retries the whole request,
    // and samples already written come back as harmless exact duplicates.
    const err = e as Error & { overloaded?: boolean; retryable?: boolean };
    const status = err.overloaded ? 429 : 503;
    throw new HttpError(status, `ingester shard ${shard} of tenant ${tenant} could not write this request (retry): ${err.message}`, { "Retry-After": "1" });
  }
}
