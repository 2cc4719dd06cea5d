// The I/O of a log flush (as src/ingester/flusher.ts for metrics): the shard's
// closed chunks become ONE log block in R2, and only after R2 confirmed the write
// are they marked flushed and the WAL trimmed by a checkpoint. Idempotent under
// repeated or interrupted alarms:
// - the block's key is recorded (flush_intent) before the PUT; a flush that finds
//   an intent left by an interrupted attempt deletes that object first, since its
//   chunks were never marked flushed and go into the new block;
// - chunks marked flushed are never uploaded again (Loki's flushed chunk desc);
// - readers drop exact duplicates (time and line), so a head/R2 overlap never shows twice.

import { logBlockKey, putLogBlock } from "../../storage/logs/blocks";
import { writeLogBlock } from "../../storage/logs/block";
import { afterPut, dropInterruptedBlock, setFlushIntent, walRangeSinceCheckpoint } from "../flusher";
import type { Wal } from "../wal";
import { collectLogFlush, dropRetainedLogs, markLogFlushed, type LogFlushRules } from "./flush";
import type { LogHead } from "./head";
import { encodeLogCheckpoint } from "./wal";
import type { LogFlushReason } from "./stream";

export interface LogFlushTarget {
  head: LogHead;
  wal: Wal;
  bucket: R2Bucket;
  tenant: string;
  shard: number;
}

export interface LogFlushResult {
  /** The R2 key of the block written, or null when there was nothing to flush. */
  key: string | null;
  streams: number;
  chunks: number;
  entries: number;
  /** Chunks flushed, by the reason they were closed (full, max_age, idle, forced). */
  reasons: Partial<Record<LogFlushReason, number>>;
  streamsDropped: number;
}

export async function flushLogHead(target: LogFlushTarget, rules: LogFlushRules, now: number, force: boolean): Promise<LogFlushResult> {
  const { head, wal, bucket, tenant, shard } = target;
  await dropInterruptedBlock(wal, bucket);

  const plan = collectLogFlush(head, now, rules, force);
  let key: string | null = null;
  let entries = 0;
  if (plan.numChunks > 0) {
    const streams = plan.streams.map((s, i) => ({ labels: s.flat, chunks: plan.chunks[i].map((c) => c.data), uncompressedBytes: plan.chunks[i].map((c) => c.bytes) }));
    for (const list of plan.chunks) for (const c of list) entries += c.entries;
    const { bytes, meta } = writeLogBlock(streams, { tenant, shard, walRange: walRangeSinceCheckpoint(wal) });
    key = logBlockKey(tenant, meta);
    setFlushIntent(wal, key);
    // The only await: pushes may append meanwhile; what they add is not in `plan`.
    await putLogBlock(bucket, key, bytes, meta);
  }

  // Confirmed (or nothing to write): synchronous from here, so these writes commit together.
  // A failure in this section leaves memory ahead of storage: HeadDivergedError (../flusher).
  let streamsDropped = 0;
  afterPut(key, () => {
    markLogFlushed(plan, now);
    streamsDropped = dropRetainedLogs(head, now, rules);
    if (plan.numChunks > 0 || streamsDropped > 0) wal.checkpoint(encodeLogCheckpoint(head));
    setFlushIntent(wal, null);
  });
  head.bytesEstimate = head.bytes();
  return { key, streams: plan.streams.length, chunks: plan.numChunks, entries, reasons: plan.reasons, streamsDropped };
}

