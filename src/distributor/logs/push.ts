// The Loki push handler (POST /loki/api/v1/push, /api/prom/push): decode, validate as
// Loki's distributor does (pkg/distributor/distributor.go, validator.go), place each
// stream on the tenant's ring, and send one RPC per shard, in parallel, each carrying
// one binary batch (src/ingester/logs/batch.ts).
//
// Partial errors as Loki's: valid entries are kept when others are refused; the answer
// is then 400 listing the distinct refusals as Loki's util.GroupedErrors does (at most
// max_returned_stream_errors of them), then a line counting what was dropped. A shard
// that fails answers 503 (retryable): the sender retries the whole push, and entries
// that other shards already stored come back as exact duplicates, which the ingester
// drops (Loki drops an entry identical in time and line to the stream's last one).
// Nothing the sender cannot fix by retrying gets a 5xx: an entry too large for a shard
// RPC is a 413 before anything is written.
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
import { countIfRateLimited, logDiscardList, recordLogDistributorDiscards } from "../../observability/distributor";
import { admitBrowserKeyBody, admitLogs, batchBytes } from "../../limits/rate";
import { perShardLimit } from "../../limits/series";
import { logShardStub } from "../shards";
import { decompressBody, protobufHint, pushEncoding, pushFormat, PushFormat } from "./body";
import { decodeJsonPush } from "./decode_json";
import { StreamLabels, streamOfLabelString, streamOfPairs, utf8Length } from "./stream_labels";
import { checkMetadataNames, lineTooLong, metadataBytes, metadataTooLarge, metadataTooMany, tooFarInFuture, tooOld, utf8LineLength } from "./validate";

/** Loki's answer to a push without streams (validation.MissingStreamsErrorMsg), with its status, 422. */
const MISSING_STREAMS = "error at least one valid stream is required for ingestion";

/**
 * A shard's batch is cut into several RPCs before it would pass this size: a
 * structured-clone RPC carries at most 32 MiB, and the ingester's WAL rows are better
 * kept moderate. Only a single entry larger than this makes a larger batch.
 */
const MAX_BATCH_BYTES = 8 << 20;

/**
 * The largest batch one RPC may carry: workerd refuses serialized RPC arguments past
 * 32 MiB ("Serialized RPC arguments or return values are limited to 32MiB"); 1 MiB is
 * left for the rest of the call (limits, discard counts, a clipped message). An entry
 * that cannot fit (possible only with maxLineSize or maxStructuredMetadataSize 0 or
 * huge) refuses the push with 413: a 503 would be retried forever.
 */
export const MAX_RPC_BATCH_BYTES = 31 << 20;

/** Bytes a batch spends on an entry beyond its line and metadata strings, at most (varints: ms, ns, length, pairs). */
const ENTRY_FRAMING = 10 + 3 + 5 + 5;
/** The same per metadata string (its length varint), and per stream record (labels length, entry count). */
const STRING_FRAMING = 5;
const STREAM_FRAMING = 5 + 4;
/** The batch's own header (magic, version, stream count). */
const BATCH_HEADER = 6;

/** Loki's max_returned_stream_errors (10): distinct refusals listed in a 400 body. */
export const MAX_RETURNED_ERRORS = 10;
/** Refusal messages are clipped past this (a label string that does not parse is quoted in its message, and may be megabytes). */
const MAX_ERROR_CHARS = 4096;

/** Tally of one push across validation and shards. */
interface Outcome {
  total: number;
  dropped: number;
  /** By reason id: the distributor's (Reason) and the shards' (LogReason). */
  reasons: Map<string, number>;
  /** Entry bytes (line and structured metadata, as Loki counts them) of the distributor's discards, by reason (loki_discarded_bytes_total). */
  discardedBytes: Map<string, number>;
  firstError: string | null;
  /** Distinct refusal messages, in the order first seen, with how often each was seen; at most MAX_RETURNED_ERRORS. */
  errors: Map<string, number>;
  /** Refusals whose message did not fit in `errors`. */
  unlisted: number;
}

/** Records a refusal's message (Loki: validationErrors.Add, once per refused stream or entry). */
function addError(outcome: Outcome, message: string): void {
  if (message.length > MAX_ERROR_CHARS) message = `${message.slice(0, MAX_ERROR_CHARS)}… (${message.length - MAX_ERROR_CHARS} more characters)`;
  if (outcome.firstError === null) outcome.firstError = message;
  const n = outcome.errors.get(message);
  if (n !== undefined) outcome.errors.set(message, n + 1);
  else if (outcome.errors.size < MAX_RETURNED_ERRORS) outcome.errors.set(message, 1);
  else outcome.unlisted++;
}

/**
 * The 400 body: first Loki's util.GroupedErrors text (each distinct message once,
 * "N errors like: " before each when there are several or one came more than once,
 * joined by "; "), then a line counting the dropped entries. Clients print only the
 * first line (Promtail's and Alloy's clients scan one line of an error body), so that
 * line is Loki's.
 */
function partialErrorBody(outcome: Outcome): string {
  const { errors, unlisted } = outcome;
  const grouped = errors.size > 1 || unlisted > 0;
  const parts: string[] = [];
  for (const [message, n] of errors) parts.push(grouped || n > 1 ? `${n} errors like: ${message}` : message);
  if (unlisted > 0) parts.push(`${unlisted} more errors not listed (max_returned_stream_errors: ${MAX_RETURNED_ERRORS})`);
  const written = outcome.total - outcome.dropped;
  const reasons = [...outcome.reasons].map(([r, n]) => `${r}: ${n}`).join(", ");
  return `${parts.join("; ")}\n${outcome.dropped} of ${outcome.total} entries in this request were dropped (${reasons}); ${written} were written\n`;
}

export async function handleLokiPush(request: Request, env: Env, tenant: string): Promise<Response> {
  checkPushOrigin(request, env, tenant);
  const limits = limitsFor(env, tenant);
  const contentType = request.headers.get("Content-Type");
  const format = pushFormat(contentType, limits.allowBeaconPush === 1);
  const encoding = pushEncoding(request.headers.get("Content-Encoding"));
  let body = await readBody(request, limits.maxRequestBodyBytes);
  // A browser key (a credential any page may hold) is charged for the body as it came,
  // before decoding: else invalid pushes, which validation refuses before the rate
  // limit, would cost it nothing. Its own bucket only; the tenant's pays for valid bytes, as Loki's.
  const keyPaid = await admitBrowserKeyBody(request, env, tenant, body.byteLength);
  if (encoding !== "") body = await decompressBody(body, encoding, limits.maxDecompressedBytes);
  // Loki reads the legacy JSON shape on every path but /loki/api/v1 (loghttp.GetVersion).
  const legacy = !new URL(request.url).pathname.startsWith("/loki/api/v1/");
  const push = format === PushFormat.Protobuf ? decodeProtobuf(body, limits, protobufHint(contentType, tenant)) : decodeJsonPush(body, legacy);
  if (push.streams.length === 0) throw new HttpError(422, MISSING_STREAMS);

  const outcome: Outcome = { total: push.entryCount, dropped: 0, reasons: new Map(), discardedBytes: new Map(), firstError: null, errors: new Map(), unlisted: 0 };
  // Placement on the tenant's newest ring (cached per isolate; src/distributor/tenant_ring.ts),
  // as metric series are placed: run-time resharding moves streams the same way.
  const { ring, since: ringSince } = await writeRing(env, tenant);
  const batches = distribute(push, tenant, limits, ring, Date.now(), outcome);
  // Validation's discards ride with the request's first shard RPC to that shard's
  // persisted counters, or, when nothing reached a shard, go to log shard 0 alone
  // (src/observability/distributor.ts), awaited so they are counted before the 400.
  const discards = logDiscardList(outcome.reasons, outcome.discardedBytes);
  // Loki's ingestion rate limit (and a browser key's own), before any shard write: a refused push writes
  // nothing (429); its validation discards are counted first, as Loki's distributor counts them before rate_limited.
  await countIfRateLimited(admitLogs(request, env, tenant, limits, outcome.total - outcome.dropped, batchBytes(batches), keyPaid), () =>
    recordLogDistributorDiscards(env, tenant, discards, outcome.firstError),
  );
  const shardLimits = logShardLimits(limits, ring.shards);
  const carrier = batches.findIndex((b) => b.length > 0);
  if (carrier < 0) await recordLogDistributorDiscards(env, tenant, discards, outcome.firstError);
  const calls: Promise<LogShardPushResult>[] = [];
  for (let shard = 0; shard < batches.length; shard++) {
    if (batches[shard].length > 0) calls.push(sendToShard(env, tenant, shard, batches[shard], shardLimits, ringSince, shard === carrier ? { discards, error: outcome.firstError } : null));
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
    // The shard's message is Loki's ingester text (pkg/ingester/stream.go), one per shard.
    if (r.firstError !== null) addError(outcome, r.firstError);
  }
  if (outcome.errors.size > 0 || outcome.unlisted > 0) {
    return new Response(partialErrorBody(outcome), { status: 400, headers: { "Content-Type": "text/plain; charset=utf-8" } });
  }
  return new Response(null, { status: 204 });
}

function decodeProtobuf(body: Uint8Array, limits: Limits, hint: string): DecodedLogPush {
  let raw: Uint8Array;
  try {
    raw = snappyDecompress(body, limits.maxDecompressedBytes);
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new HttpError(413, `${e.message} (maxDecompressedBytes)`);
    throw new HttpError(400, `request body is not valid snappy block-format data (a protobuf push must be snappy-compressed): ${(e as Error).message}${hint}`);
  }
  try {
    return decodePushRequest(raw);
  } catch (e) {
    if (e instanceof ProtoError) throw new HttpError(400, `request body is not a valid logproto.PushRequest protobuf message: ${e.message}${hint}`);
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
 * cut before MAX_BATCH_BYTES). Streams are looked up in the isolate's label cache, so
 * a stream sent again costs a Map lookup; entries cost a few number comparisons and
 * the copy of their line into the batch. Throws 413 for an entry no RPC can carry.
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
    addError(outcome, message);
  };
  const { tsMs, tsNs, lineStart, lineLen, metaStart, metaPairs, meta } = push;
  /** Line bytes of entry i, only on a refusal (the accepted path never needs a JSON line's UTF-8 length). */
  const lineBytes = (i: number): number => (push.lines === null ? push.lineLen[i] : utf8LineLength(push.lines[i]));
  /** Loki's util.EntryTotalSize (line and structured metadata bytes), what its discarded bytes count; only on a refusal. */
  const entryBytes = (i: number): number => lineBytes(i) + metadataBytes(meta, metaStart[i], metaPairs[i]);
  const streamBytes = (from: number, count: number): number => {
    let n = 0;
    for (let i = from; i < from + count; i++) n += entryBytes(i);
    return n;
  };

  // The bounds of the checks, hoisted; messages are built only on failure.
  const minMs = limits.rejectOldLogsMaxAgeMs > 0 ? now - limits.rejectOldLogsMaxAgeMs : -Infinity;
  const maxMs = now + limits.creationGracePeriodMs;
  const maxLine = limits.maxLineSize;
  const maxMetaBytes = limits.maxStructuredMetadataSize;
  const maxMetaPairs = limits.maxStructuredMetadataEntriesCount;
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
    // At most what the stream's record costs a batch before its entries (UTF-8 is at most 3 bytes a UTF-16 unit).
    const streamRecord = 3 * found.canonical.length + STREAM_FRAMING;
    const end = st.entryStart + st.entryCount;
    for (let i = st.entryStart; i < end; i++) {
      const ms = tsMs[i];
      const ns = tsNs[i];
      // Loki's order of checks (validator.go ValidateEntry): too old, too new, line too long, metadata.
      if (ms < minMs) {
        drop(Reason.GreaterThanMaxSampleAge, 1, entryBytes(i), tooOld(found.canonical, ms, minMs));
        continue;
      }
      if (ms > maxMs || (ms === maxMs && ns > 0)) {
        drop(Reason.TooFarInFuture, 1, entryBytes(i), tooFarInFuture(found.canonical, ms));
        continue;
      }
      let line: Uint8Array | string;
      /** At most the line's bytes in the batch. */
      let lineBound: number;
      if (lines === null) {
        const len = lineLen[i];
        if (maxLine > 0 && len > maxLine) {
          drop(Reason.LineTooLong, 1, entryBytes(i), lineTooLong(found.canonical, maxLine, len));
          continue;
        }
        line = buf!.subarray(lineStart[i], lineStart[i] + len);
        lineBound = len;
      } else {
        line = lines[i];
        // A UTF-16 unit is 1 to 3 UTF-8 bytes (a surrogate pair: 4 for 2): count bytes only near the limit.
        if (maxLine > 0 && line.length * 3 > maxLine && (line.length > maxLine || utf8LineLength(line) > maxLine)) {
          drop(Reason.LineTooLong, 1, entryBytes(i), lineTooLong(found.canonical, maxLine, utf8LineLength(line)));
          continue;
        }
        lineBound = 3 * line.length;
      }
      let entryMeta: string[] | null = null;
      /** At most the metadata's bytes in the batch. */
      let metaBound = 0;
      const pairs = metaPairs[i];
      if (pairs > 0) {
        const from = metaStart[i];
        let units = 0;
        for (let k = from; k < from + 2 * pairs; k++) units += meta[k].length;
        metaBound = 3 * units + 2 * pairs * STRING_FRAMING;
        // Loki's max_structured_metadata_size, then max_structured_metadata_entries_count (0: off).
        // UTF-8 bytes are at least the UTF-16 units and at most 3 times them: count them only near the limit.
        if (maxMetaBytes > 0 && 3 * units > maxMetaBytes) {
          const size = metadataBytes(meta, from, pairs);
          if (size > maxMetaBytes) {
            drop(Reason.StructuredMetadataTooLarge, 1, lineBytes(i) + size, metadataTooLarge(found.canonical, size, maxMetaBytes));
            continue;
          }
        }
        if (maxMetaPairs > 0 && pairs > maxMetaPairs) {
          drop(Reason.StructuredMetadataTooMany, 1, entryBytes(i), metadataTooMany(found.canonical, pairs, maxMetaPairs));
          continue;
        }
        const bad = checkMetadataNames(meta, from, pairs, found.canonical);
        if (bad !== null) {
          drop(Reason.InvalidStructuredMetadata, 1, entryBytes(i), bad);
          continue;
        }
        entryMeta = meta.slice(from, from + 2 * pairs);
      }
      const entryBound = ENTRY_FRAMING + lineBound + metaBound;
      if (BATCH_HEADER + streamRecord + entryBound > MAX_RPC_BATCH_BYTES) tooLargeForRpc(found.canonical, entryBytes(i), pairs);
      // Cut the batch before this entry would take it past MAX_BATCH_BYTES (a batch of one entry may be larger).
      if (w.streamCount > 0 && w.size + entryBound + (open[shard] === si ? 0 : streamRecord) > MAX_BATCH_BYTES) {
        batches[shard].push(w.finish());
        w.reset();
        open[shard] = -1;
      }
      if (open[shard] !== si) {
        w.beginStream(found.canonical);
        open[shard] = si;
      }
      w.entry(ms, ns, line, entryMeta);
    }
  }
  for (let s = 0; s < shards; s++) {
    const w = writerFor(s);
    if (w.streamCount > 0) batches[s].push(w.finish());
    w.reset();
  }
  return batches;
}

/**
 * Throws 413 when an entry of `entry` bytes (line and metadata) cannot travel in one
 * shard RPC even alone (the bound that called this may be up to 3 times too high for
 * a JSON line; this is the exact test). Nothing is written: Loki's limits would have
 * refused the entry by itself, but with them off the whole push is refused.
 */
function tooLargeForRpc(stream: string, entry: number, pairs: number): void {
  const batch = BATCH_HEADER + utf8Length(stream) + STREAM_FRAMING + ENTRY_FRAMING + 2 * pairs * STRING_FRAMING + entry;
  if (batch <= MAX_RPC_BATCH_BYTES) return;
  throw new HttpError(
    413,
    `entry for stream '${stream.length > MAX_ERROR_CHARS ? `${stream.slice(0, MAX_ERROR_CHARS)}…` : stream}' is ${entry} bytes, more than one shard RPC carries (${MAX_RPC_BATCH_BYTES} bytes; Durable Object RPC messages are limited to 32 MiB); set maxLineSize, maxStructuredMetadataSize (0 = unlimited) so that such entries are refused one by one (400), or send smaller entries`,
  );
}

/** A shard's batches, in order (entries of a stream keep their order across them); results summed. */
async function sendToShard(
  env: Env,
  tenant: string,
  shard: number,
  batches: Uint8Array[],
  limits: LogShardLimits,
  /** `since` of the ring that placed the batch: a LEFT shard refuses a stale ring's writes. */
  ringSince: number,
  /** The request's validation discards, on one shard's first RPC only. */
  distributor: { discards: LogDiscardCount[]; error: string | null } | null,
): Promise<LogShardPushResult> {
  const total: LogShardPushResult = { accepted: 0, acceptedBytes: 0, duplicates: 0, rejected: [], firstError: null };
  const stub = logShardStub(env, tenant, shard);
  for (let i = 0; i < batches.length; i++) {
    const batch = batches[i];
    let r: LogShardPushResult;
    try {
      const push: LogShardPush = { tenant, shard, batch, limits, ringSince };
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
