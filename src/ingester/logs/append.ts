// Appending one push to a log shard's head, in the order Prometheus's head appender
// and Loki's stream.Push give: validate every entry against its stream's state
// (without changing it), write the accepted entries to the WAL, and only then
// apply them. Everything runs synchronously, so the Durable Object's output gate
// holds the reply until SQLite committed the row: an ack means durable. If the
// insert throws, the head is untouched and the distributor answers 503.
//
// Loki's rules (pkg/ingester/stream.go validateEntries):
// - an entry with the same timestamp and line as the stream's last one is dropped
//   silently (counted as a duplicate);
// - with unordered writes, an entry older than the stream's newest minus the
//   out-of-order window (max_chunk_age / 2) is refused: "entry too far behind".

import { cmpNs } from "../../model/logtime";
import { LogBatchReader, LogBatchWriter } from "./batch";
import type { LogHead } from "./head";
import { LogReason, type LogReasonCount, type LogShardPush, type LogShardPushResult } from "./rpc";
import type { LogStream } from "./stream";
import { encodeBatchRecord, encodeObservedBatchRecord } from "./wal";
import type { Wal } from "../wal";

const enum Decision {
  Accept = 0,
  Duplicate = 1,
  TooFarBehind = 2,
  StreamLimit = 3,
}

let epoch = 0;
// Per-entry decisions of the current push, reused across pushes.
let decisions: Uint8Array = new Uint8Array(4096);
const filtered = new LogBatchWriter();

export interface AppendOutcome {
  result: LogShardPushResult;
  /** The batch as committed (accepted entries only), for live tail; null when nothing was accepted. */
  committed: Uint8Array | null;
  /** Entries in the push, and their line bytes (what the shard received: lines_received, bytes_received). */
  entries: number;
  bytes: number;
}

/**
 * Called with the push's outcome after staging, before its WAL row is written: returns
 * the shard's counter changes to write into that row (src/observability/shard.ts), so
 * that they commit with the lines they count without a row of their own; or null.
 * Unused when nothing was accepted (no row).
 */
export type BeforeLogCommit = (result: LogShardPushResult, entries: number, bytes: number) => Uint8Array | null;

export function appendLogPush(head: LogHead, wal: Wal, push: LogShardPush, now: number, beforeCommit?: BeforeLogCommit): AppendOutcome {
  const limits = push.limits;
  epoch++;
  const window = limits.outOfOrderWindowMs;
  const pending = new Map<string, LogStream>();
  let total = 0;
  let totalBytes = 0;
  let accepted = 0;
  let acceptedBytes = 0;
  let duplicates = 0;
  let refused = 0;
  let refusedBytes = 0;
  let overLimit = 0;
  let overLimitBytes = 0;
  let firstError: string | null = null;

  // 1. Stage: decide every entry against the stream state as it would be.
  const maxStreams = limits.maxStreamsPerShard ?? 0;
  let refusedStreams: Set<string> | null = null;
  const r = new LogBatchReader(push.batch);
  while (r.nextStream()) {
    let s = head.byKey.get(r.labels) ?? pending.get(r.labels);
    if (s === undefined && maxStreams > 0 && (refusedStreams?.has(r.labels) || head.numStreams + pending.size >= maxStreams)) {
      // Loki's stream limit: entries of a stream that would be new are refused; existing streams go on.
      (refusedStreams ??= new Set()).add(r.labels);
      while (r.nextEntry()) {
        decisions = ensure(decisions, total);
        decisions[total++] = Decision.StreamLimit;
        overLimit++;
        overLimitBytes += r.lineLength;
        totalBytes += r.lineLength;
      }
      firstError ??= streamLimitMessage(r.labels, push.tenant);
      continue;
    }
    if (s === undefined) {
      s = head.newStream(r.labels);
      pending.set(r.labels, s);
    }
    s.beginStage(epoch);
    let streamRefused = 0;
    while (r.nextEntry()) {
      const k = total++;
      decisions = ensure(decisions, k);
      const ms = r.ms;
      const ns = r.ns;
      const line = r.lineBytes();
      totalBytes += line.length;
      if (s.stageHasLast && ms === s.stageLastMs && ns === s.stageLastNs && sameBytes(line, s.stageLastLine)) {
        decisions[k] = Decision.Duplicate;
        duplicates++;
        continue;
      }
      // Loki: cutoff = highestTs - window; an entry before the cutoff is refused.
      if (s.stageHighMs !== Number.NEGATIVE_INFINITY && cmpNs(ms, ns, s.stageHighMs - window, s.stageHighNs) < 0) {
        decisions[k] = Decision.TooFarBehind;
        refused++;
        refusedBytes += line.length;
        streamRefused++;
        if (firstError === null) firstError = tooFarBehind(ms, ns, s.stageHighMs - window);
        continue;
      }
      decisions[k] = Decision.Accept;
      accepted++;
      acceptedBytes += line.length;
      s.stageHasLast = true;
      s.stageLastMs = ms;
      s.stageLastNs = ns;
      s.stageLastLine = line;
      if (cmpNs(ms, ns, s.stageHighMs, s.stageHighNs) > 0) {
        s.stageHighMs = ms;
        s.stageHighNs = ns;
      }
    }
    // Loki's 400 body names, per stream, the ignored entries and how many of how many.
    if (streamRefused > 0 && firstError !== null && !firstError.includes("\n")) {
      firstError += `\nuser '${push.tenant}', total ignored: ${streamRefused} out of ${r.entryCount} for stream: ${r.labels}`;
    }
  }

  const rejected: LogReasonCount[] = [];
  if (refused > 0) rejected.push({ reason: LogReason.TooFarBehind, count: refused, bytes: refusedBytes });
  if (overLimit > 0) rejected.push({ reason: LogReason.StreamLimit, count: overLimit, bytes: overLimitBytes });
  const result: LogShardPushResult = { accepted, acceptedBytes, duplicates, rejected, firstError };
  const observations = beforeCommit?.(result, total, totalBytes) ?? null;

  // 2. Commit: the accepted entries, as one WAL row. The push's own bytes when all were accepted.
  let committed: Uint8Array | null = null;
  if (accepted > 0) {
    committed = accepted === total ? push.batch : filter(push.batch);
    wal.append(observations === null ? encodeBatchRecord(committed) : encodeObservedBatchRecord(committed, observations));
  }

  // 3. Apply, now that the row is durable.
  if (committed !== null) {
    for (const s of pending.values()) head.insert(s);
    applyBatch(head, committed, now);
    head.bytesEstimate += acceptedBytes + accepted * 16;
  }
  head.duplicates += duplicates;
  head.rejected += refused + overLimit;
  return { result, committed, entries: total, bytes: totalBytes };
}

/** The push's batch with only the accepted entries (streams left empty are omitted). */
function filter(batch: Uint8Array): Uint8Array {
  const w = filtered;
  w.reset();
  const r = new LogBatchReader(batch);
  let k = 0;
  while (r.nextStream()) {
    let begun = false;
    while (r.nextEntry()) {
      if (decisions[k++] !== Decision.Accept) continue;
      if (!begun) {
        w.beginStream(r.labels);
        begun = true;
      }
      w.entry(r.ms, r.ns, r.lineBytes(), r.meta);
    }
  }
  return w.finish();
}

/** Appends a committed batch to the head: after a push's WAL row, and in replay. */
export function applyBatch(head: LogHead, batch: Uint8Array, now: number): number {
  const rules = head.rules;
  const r = new LogBatchReader(batch);
  let n = 0;
  while (r.nextStream()) {
    const s = head.getOrCreate(r.labels);
    while (r.nextEntry()) {
      s.append(r.ms, r.ns, r.lineBytes(), r.meta, rules);
      n++;
    }
    s.settle();
    s.lastAppendAt = now;
  }
  head.entriesAppended += n;
  return n;
}

function ensure(d: Uint8Array, k: number): Uint8Array {
  if (k < d.length) return d;
  const next = new Uint8Array(d.length * 2);
  next.set(d);
  return next;
}

/** Loki's validation.StreamLimitErrorMsg. */
function streamLimitMessage(labels: string, tenant: string): string {
  return `Maximum active stream limit exceeded when trying to create stream ${labels}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '${tenant}' (maxStreamsPerShard)`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Go's time.Time.String() in UTC: "2006-01-02 15:04:05.999999999 +0000 UTC". */
export function goTimeString(ms: number, ns: number): string {
  const d = new Date(ms - (((ms % 1000) + 1000) % 1000));
  const sub = ((((ms % 1000) + 1000) % 1000) * 1_000_000 + ns).toString().padStart(9, "0").replace(/0+$/, "");
  const base = d.toISOString().slice(0, 19).replace("T", " ");
  return `${base}${sub ? "." + sub : ""} +0000 UTC`;
}

/** Go's time.RFC3339 in UTC: "2006-01-02T15:04:05Z". */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19) + "Z";
}

/** Loki's per-entry line of the 400 body (stream.go) with chunkenc.ErrTooFarBehind's reason. */
function tooFarBehind(ms: number, ns: number, cutoffMs: number): string {
  return `entry with timestamp ${goTimeString(ms, ns)} ignored, reason: 'entry too far behind, entry timestamp is: ${rfc3339(ms)}, oldest acceptable timestamp is: ${rfc3339(cutoffMs)}',`;
}
