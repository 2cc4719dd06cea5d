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
import { seriesKey } from "../model/labels";
import type { ShardPush, ShardPushResult } from "../ingester/rpc";
import { seriesHash } from "./hash";
import { ringFor } from "./ring";
import { shardStub } from "./shards";
import { validateLabels, validateTimestamp } from "./validate";

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
  const batches = distribute(write, tenant, limits, Date.now(), outcome);
  const results = await Promise.all(
    batches.map((batch, shard) => (batch === null ? null : sendToShard(env, tenant, shard, batch))),
  );
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
 * then fill exact-size typed arrays), so no per-sample objects are made.
 */
function distribute(write: DecodedWrite, tenant: string, limits: Limits, now: number, outcome: Outcome): (ShardPush | null)[] {
  const ring = ringFor(limits.shards);
  const nSeries = write.series.length;
  const shardOf = new Int32Array(nSeries).fill(-1);
  const keys: string[] = new Array(nSeries);
  const okCount = new Uint32Array(nSeries);
  const ok = new Uint8Array(write.sampleCount);
  const shardSeries = new Uint32Array(limits.shards);
  const shardSamples = new Uint32Array(limits.shards);
  const anyCreated = new Uint8Array(limits.shards);

  const drop = (reason: Reason, count: number, message: string) => {
    outcome.dropped += count;
    outcome.reasons.set(reason, (outcome.reasons.get(reason) ?? 0) + count);
    if (outcome.firstError === null) outcome.firstError = message;
  };

  for (let i = 0; i < nSeries; i++) {
    const s = write.series[i];
    if (s.sampleCount === 0) continue;
    const bad = validateLabels(s.labels, limits);
    if (bad !== null) {
      drop(bad.reason, s.sampleCount, bad.message);
      continue;
    }
    let n = 0;
    for (let j = s.sampleStart; j < s.sampleStart + s.sampleCount; j++) {
      const badTime = validateTimestamp(write.timestamps[j], now, limits, s.labels);
      if (badTime !== null) drop(badTime.reason, 1, badTime.message);
      else {
        ok[j] = 1;
        n++;
      }
    }
    if (n === 0) continue;
    const key = seriesKey(s.labels);
    const shard = ring.shardFor(seriesHash(tenant, key));
    keys[i] = key;
    shardOf[i] = shard;
    okCount[i] = n;
    shardSeries[shard]++;
    shardSamples[shard] += n;
    if (s.createdTimestamp > 0) anyCreated[shard] = 1;
  }

  const batches: (ShardPush | null)[] = new Array(limits.shards).fill(null);
  const fill = new Uint32Array(limits.shards);
  const fillSamples = new Uint32Array(limits.shards);
  for (let shard = 0; shard < limits.shards; shard++) {
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
    };
  }
  for (let i = 0; i < nSeries; i++) {
    const shard = shardOf[i];
    if (shard < 0) continue;
    const b = batches[shard]!;
    const s = write.series[i];
    const k = fill[shard]++;
    b.keys[k] = keys[i];
    b.counts[k] = okCount[i];
    if (b.created !== null) b.created[k] = s.createdTimestamp;
    let o = fillSamples[shard];
    for (let j = s.sampleStart; j < s.sampleStart + s.sampleCount; j++) {
      if (!ok[j]) continue;
      b.timestamps[o] = write.timestamps[j];
      b.values[o] = write.values[j];
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
