// The Loki push handler (POST /loki/api/v1/push, /api/prom/push): decode, validate as
// Loki's distributor does (pkg/distributor/distributor.go, validator.go), place each
// stream on the tenant's ring, and send one RPC per shard, in parallel, each carrying
// one binary batch (src/ingester/logs/batch.ts).
//
// Partial errors as Loki's: valid entries are kept when others are refused; the answer
// is then 400 naming the first refused entry and how many were dropped. A shard that
// fails answers 503 (retryable): the sender retries the whole push, and entries that
// other shards already stored come back as exact duplicates, which the ingester drops
// (Loki drops an entry identical in time and line to the stream's last one).
//
// The tenant comes from the caller (src/index.ts), where an authenticated principal
// will be checked.

import { limitsFor, type Limits } from "../../config/limits";
import { HttpError } from "../../http/errors";
import { readBody } from "../../http/body";
import { snappyDecompress, BodyTooLargeError } from "../../proto/snappy";
import { decodePushRequest, type DecodedLogPush } from "../../proto/logproto";
import { ProtoError } from "../../proto/types";
import { Reason } from "../../model/errors";
import { LogBatchWriter } from "../../ingester/logs/batch";
import type { LogDiscardCount, LogShardLimits, LogShardPush, LogShardPushResult } from "../../ingester/logs/rpc";
import { checkPushOrigin } from "../../http/cors";
import { hash32 } from "../hash";
import type { Ring } from "../ring";
import { writeRing } from "../tenant_ring";
import { logDiscardList, recordLogDistributorDiscards } from "../../observability/distributor";
import { admitLogs, batchBytes } from "../../limits/rate";
import { perShardLimit } from "../../limits/series";
import { logShardStub } from "../shards";
import { decompressBody, pushEncoding, pushFormat, PushFormat } from "./body";
import { decodeJsonPush } from "./decode_json";
import { StreamLabels, streamOfLabelString, streamOfPairs } from "./stream_labels";
import { checkMetadataNames, lineTooLong, tooFarInFuture, tooOld, utf8LineLength } from "./validate";

/** Loki's answer to a push without streams (validation.MissingStreamsErrorMsg), with its status, 422. */
const MISSING_STREAMS = "error at least one valid stream is required for ingestion";

/**
 * A shard's batch is cut into several RPCs past this size: a structured-clone RPC
 * carries at most 32 MiB, and the ingester's WAL rows are better kept moderate.
 */
const MAX_BATCH_BYTES = 8 << 20;

/** Tally of one push across validation and shards. */
interface Outcome {
  total: number;
  dropped: number;
  /** By reason id: the distributor's (Reason) and the shards' (LogReason). */
  reasons: Map<string, number>;
  /** Line bytes of the distributor's discards, by reason (loki_discarded_bytes_total). */
  discardedBytes: Map<string, number>;
  firstError: string | null;
}

export async function handleLokiPush(request: Request, env: Env, tenant: string): Promise<Response> {
  checkPushOrigin(request, env, tenant);
  const limits = limitsFor(env, tenant);
  const format = pushFormat(request.headers.get("Content-Type"), limits.allowBeaconPush === 1, tenant);
  const encoding = pushEncoding(request.headers.get("Content-Encoding"));
  let body = await readBody(request, limits.maxRequestBodyBytes);
  if (encoding !== "") body = await decompressBody(body, encoding, limits.maxDecompressedBytes);
  // Loki reads the legacy JSON shape on every path but /loki/api/v1 (loghttp.GetVersion).
  const legacy = !new URL(request.url).pathname.startsWith("/loki/api/v1/");
  const push = format === PushFormat.Protobuf ? decodeProtobuf(body, limits) : decodeJsonPush(body, legacy);
  if (push.streams.length === 0) throw new HttpError(422, MISSING_STREAMS);

  const outcome: Outcome = { total: push.entryCount, dropped: 0, reasons: new Map(), discardedBytes: new Map(), firstError: null };
  // Placement on the tenant's newest ring (cached per isolate; src/distributor/tenant_ring.ts),
  // as metric series are placed: run-time resharding moves streams the same way.
  const ring = await writeRing(env, tenant);
  const batches = distribute(push, tenant, limits, ring, Date.now(), outcome);
  // Loki's ingestion rate limit (and a browser key's own), before any shard write: a refused push writes nothing (429).
  await admitLogs(request, env, tenant, limits, outcome.total - outcome.dropped, batchBytes(batches));
  const shardLimits = logShardLimits(limits, ring.shards);
  // Validation's discards ride with the request's first shard RPC to that shard's
  // persisted counters, or, when nothing reached a shard, go to log shard 0 alone
  // (src/observability/distributor.ts), awaited so they are counted before the 400.
  const discards = logDiscardList(outcome.reasons, outcome.discardedBytes);
  const carrier = batches.findIndex((b) => b.length > 0);
  if (carrier < 0) await recordLogDistributorDiscards(env, tenant, discards, outcome.firstError);
  const calls: Promise<LogShardPushResult>[] = [];
  for (let shard = 0; shard < batches.length; shard++) {
    if (batches[shard].length > 0) calls.push(sendToShard(env, tenant, shard, batches[shard], shardLimits, shard === carrier ? { discards, error: outcome.firstError } : null));
  }
  // Every call is awaited before answering, so a failure does not cut short the others' writes.
  const settled = await Promise.allSettled(calls);
  for (const s of settled) if (s.status === "rejected") throw s.reason;
  for (const s of settled) {
    const r = (s as PromiseFulfilledResult<LogShardPushResult>).value;
    for (const { reason, count } of r.rejected) {
      outcome.dropped += count;
      outcome.reasons.set(reason, (outcome.reasons.get(reason) ?? 0) + count);
    }
    if (outcome.firstError === null && r.firstError !== null) outcome.firstError = r.firstError;
  }
  if (outcome.firstError !== null) {
    const written = outcome.total - outcome.dropped;
    const reasons = [...outcome.reasons].map(([r, n]) => `${r}: ${n}`).join(", ");
    return new Response(`${outcome.firstError}\n${outcome.dropped} of ${outcome.total} entries in this request were dropped (${reasons}); ${written} were written\n`, {
      status: 400,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  return new Response(null, { status: 204 });
}

function decodeProtobuf(body: Uint8Array, limits: Limits): DecodedLogPush {
  let raw: Uint8Array;
  try {
    raw = snappyDecompress(body, limits.maxDecompressedBytes);
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new HttpError(413, `${e.message} (maxDecompressedBytes)`);
    throw new HttpError(400, `request body is not valid snappy block-format data (a protobuf push must be snappy-compressed): ${(e as Error).message}`);
  }
  try {
    return decodePushRequest(raw);
  } catch (e) {
    if (e instanceof ProtoError) throw new HttpError(400, `request body is not a valid logproto.PushRequest protobuf message: ${e.message}`);
    throw e;
  }
}

/** The limits a log shard applies; `shards` is the ring's shard count (the stream limit's per-shard share). */
export function logShardLimits(limits: Limits, shards: number): LogShardLimits {
  return {
    // Loki 3's unordered writes: an entry may be up to max_chunk_age / 2 older than its stream's newest.
    outOfOrderWindowMs: limits.maxChunkAgeMs / 2,
    chunkBlockSize: limits.logChunkBlockSize,
    chunkTargetSize: limits.logChunkTargetSize,
    maxChunkAgeMs: limits.maxChunkAgeMs,
    idlePeriodMs: limits.idlePeriodMs,
    retainPeriodMs: limits.retainPeriodMs,
    maxHeadBytesPerShard: limits.maxHeadBytesPerShard,
    maxStreamsPerShard: perShardLimit(limits.maxGlobalStreamsPerUser, shards),
  };
}

/** One batch writer per shard index, reused by every push in the isolate (written and finished without an await between). */
const writers: LogBatchWriter[] = [];

function writerFor(shard: number): LogBatchWriter {
  return (writers[shard] ??= new LogBatchWriter());
}

/**
 * Validates the push and writes the valid entries into one batch per shard (or a few,
 * past MAX_BATCH_BYTES). Streams are looked up in the isolate's label cache, so a
 * stream sent again costs a Map lookup; entries cost a few number comparisons and
 * the copy of their line into the batch.
 */
function distribute(push: DecodedLogPush, tenant: string, limits: Limits, ring: Ring, now: number, outcome: Outcome): Uint8Array[][] {
  const shards = ring.shards;
  const seed = hash32(tenant);
  const batches: Uint8Array[][] = [];
  for (let s = 0; s < shards; s++) {
    batches.push([]);
    writerFor(s).reset();
  }
  /** The stream index each shard's writer has begun; -1 for none. */
  const open = new Int32Array(shards).fill(-1);

  const drop = (reason: Reason, count: number, bytes: number, message: string) => {
    outcome.dropped += count;
    outcome.reasons.set(reason, (outcome.reasons.get(reason) ?? 0) + count);
    outcome.discardedBytes.set(reason, (outcome.discardedBytes.get(reason) ?? 0) + bytes);
    if (outcome.firstError === null) outcome.firstError = message;
  };
  /** Line bytes of entry i, only on a refusal (the accepted path never needs a JSON line's UTF-8 length). */
  const lineBytes = (i: number): number => (push.lines === null ? push.lineLen[i] : utf8LineLength(push.lines[i]));
  const streamBytes = (from: number, count: number): number => {
    let n = 0;
    for (let i = from; i < from + count; i++) n += lineBytes(i);
    return n;
  };

  // The bounds of the timestamp checks, hoisted; messages are built only on failure.
  const minMs = limits.rejectOldLogsMaxAgeMs > 0 ? now - limits.rejectOldLogsMaxAgeMs : -Infinity;
  const maxMs = now + limits.creationGracePeriodMs;
  const maxLine = limits.maxLineSize;
  const { tsMs, tsNs, lineStart, lineLen, metaStart, metaPairs, meta } = push;
  const buf = push.buf;
  const lines = push.lines;

  for (let si = 0; si < push.streams.length; si++) {
    const st = push.streams[si];
    // Loki skips a stream without entries before looking at its labels.
    if (st.entryCount === 0) continue;
    const found = st.labels !== null ? streamOfLabelString(st.labels) : streamOfPairs(st.pairs!);
    if (!(found instanceof StreamLabels)) {
      drop(found.reason, st.entryCount, streamBytes(st.entryStart, st.entryCount), found.message);
      continue;
    }
    const overLimit = found.checkLimits(limits, st.labels ?? found.canonical);
    if (overLimit !== null) {
      drop(overLimit.reason, st.entryCount, streamBytes(st.entryStart, st.entryCount), overLimit.message);
      continue;
    }
    const shard = found.shardFor(seed, shards);
    const w = writerFor(shard);
    const end = st.entryStart + st.entryCount;
    for (let i = st.entryStart; i < end; i++) {
      const ms = tsMs[i];
      const ns = tsNs[i];
      // Loki's order of checks (validator.go ValidateEntry): too old, too new, line too long, metadata.
      if (ms < minMs) {
        drop(Reason.GreaterThanMaxSampleAge, 1, lineBytes(i), tooOld(found.canonical, ms, minMs));
        continue;
      }
      if (ms > maxMs || (ms === maxMs && ns > 0)) {
        drop(Reason.TooFarInFuture, 1, lineBytes(i), tooFarInFuture(found.canonical, ms));
        continue;
      }
      let line: Uint8Array | string;
      if (lines === null) {
        const len = lineLen[i];
        if (maxLine > 0 && len > maxLine) {
          drop(Reason.LineTooLong, 1, len, lineTooLong(found.canonical, maxLine, len));
          continue;
        }
        line = buf!.subarray(lineStart[i], lineStart[i] + len);
      } else {
        line = lines[i];
        // A UTF-16 unit is 1 to 3 UTF-8 bytes (a surrogate pair: 4 for 2): count bytes only near the limit.
        if (maxLine > 0 && line.length * 3 > maxLine && (line.length > maxLine || utf8LineLength(line) > maxLine)) {
          const len = utf8LineLength(line);
          drop(Reason.LineTooLong, 1, len, lineTooLong(found.canonical, maxLine, len));
          continue;
        }
      }
      let entryMeta: string[] | null = null;
      const pairs = metaPairs[i];
      if (pairs > 0) {
        const from = metaStart[i];
        const bad = checkMetadataNames(meta, from, pairs, found.canonical);
        if (bad !== null) {
          drop(Reason.InvalidStructuredMetadata, 1, lineBytes(i), bad);
          continue;
        }
        entryMeta = meta.slice(from, from + 2 * pairs);
      }
      if (open[shard] !== si) {
        w.beginStream(found.canonical);
        open[shard] = si;
      }
      w.entry(ms, ns, line, entryMeta);
      if (w.size > MAX_BATCH_BYTES) {
        batches[shard].push(w.finish());
        w.reset();
        open[shard] = -1;
      }
    }
  }
  for (let s = 0; s < shards; s++) {
    const w = writerFor(s);
    if (w.streamCount > 0) batches[s].push(w.finish());
    w.reset();
  }
  return batches;
}

/** A shard's batches, in order (entries of a stream keep their order across them); results summed. */
async function sendToShard(
  env: Env,
  tenant: string,
  shard: number,
  batches: Uint8Array[],
  limits: LogShardLimits,
  /** The request's validation discards, on one shard's first RPC only. */
  distributor: { discards: LogDiscardCount[]; error: string | null } | null,
): Promise<LogShardPushResult> {
  const total: LogShardPushResult = { accepted: 0, acceptedBytes: 0, duplicates: 0, rejected: [], firstError: null };
  const stub = logShardStub(env, tenant, shard);
  for (let i = 0; i < batches.length; i++) {
    const batch = batches[i];
    let r: LogShardPushResult;
    try {
      const push: LogShardPush = { tenant, shard, batch, limits };
      if (i === 0 && distributor !== null && distributor.discards.length > 0) {
        push.distributorDiscards = distributor.discards;
        if (distributor.error !== null) push.distributorError = distributor.error;
      }
      r = await stub.pushLogs(push);
    } catch (e) {
      // Nothing of this shard's part is acked: the sender retries the whole push.
      const err = e as Error & { overloaded?: boolean };
      const status = err.overloaded ? 429 : 503;
      throw new HttpError(status, `log ingester shard ${shard} of tenant ${tenant} could not write this push (retry): ${err.message}`, { "Retry-After": "1" });
    }
    total.accepted += r.accepted;
    total.acceptedBytes += r.acceptedBytes;
    total.duplicates += r.duplicates;
    total.rejected.push(...r.rejected);
    if (total.firstError === null) total.firstError = r.firstError;
  }
  return total;
}
