// The I/O of a flush: the head's closed chunks become one block in R2, and only
// after R2 confirmed the write are they marked flushed and the WAL trimmed (by a
// checkpoint). Idempotent under repeated or interrupted alarms:
// - the block's key is recorded (flush_intent) before the PUT; a flush that finds an
//   intent left by an interrupted attempt deletes that object first, since its chunks
//   were never marked flushed and go into the new block;
// - chunks marked flushed are never uploaded again;
// - readers de-duplicate samples by timestamp, so the retain period's overlap of head
//   and block never counts twice.

import { BlockWriter } from "../storage/block/writer";
import { ChunkEncoding, type BlockMeta } from "../storage/block/format";
import { blockKey, deleteBlock, putBlock } from "../storage/blocks";
import { encodeCheckpoint } from "./checkpoint";
import { collectFlush, dropRetained, markFlushed, type FlushReason, type FlushRules } from "./flush";
import type { Head } from "./head";
import type { Wal } from "./wal";

export interface FlushTarget {
  head: Head;
  wal: Wal;
  bucket: R2Bucket;
  tenant: string;
  shard: number;
}

export interface FlushResult {
  block: BlockMeta | null;
  key: string | null;
  reasons: Partial<Record<FlushReason, number>>;
  seriesDropped: number;
}

const INTENT = "flush_intent";

/**
 * The flush_intent protocol, shared with the log flusher (src/ingester/logs/flusher.ts):
 * a key left by an interrupted attempt names an object whose chunks were never marked
 * flushed; it is deleted before they go into a new block.
 */
export async function dropInterruptedBlock(wal: Wal, bucket: R2Bucket): Promise<void> {
  const intent = wal.getKv(INTENT);
  if (typeof intent === "string") {
    await deleteBlock(bucket, intent);
    wal.setKv(INTENT, null);
  }
}

/** Records the block's key before its PUT; cleared (null) in the same commit as the checkpoint that follows it. */
export function setFlushIntent(wal: Wal, key: string | null): void {
  wal.setKv(INTENT, key);
}

/** The WAL rows a block covers: those since the last checkpoint. */
export function walRangeSinceCheckpoint(wal: Wal): { from: number; to: number } {
  const cp = wal.getKv("checkpoint_seq");
  return { from: (typeof cp === "number" ? cp : 0) + 1, to: wal.lastSeq };
}

export async function flushHead(target: FlushTarget, rules: FlushRules, now: number, force: boolean): Promise<FlushResult> {
  const { head, wal, bucket, tenant, shard } = target;
  await dropInterruptedBlock(wal, bucket);

  const plan = collectFlush(head, now, rules, force);
  let block: BlockMeta | null = null;
  let key: string | null = null;
  if (plan.numChunks > 0) {
    const writer = new BlockWriter();
    for (let i = 0; i < plan.series.length; i++) {
      writer.addSeries(
        plan.series[i].labels,
        plan.chunks[i].map((c) => ({ mint: c.mint, maxt: c.maxt, numSamples: c.numSamples, encoding: ChunkEncoding.XOR, data: c.data })),
      );
    }
    const { bytes, meta } = writer.finish({ tenant, shard, walRange: walRangeSinceCheckpoint(wal) });
    key = blockKey(tenant, meta);
    setFlushIntent(wal, key);
    // The only await: pushes may append meanwhile; what they add is not in `plan`.
    await putBlock(bucket, key, bytes, meta);
    block = meta;
  }

  // Confirmed (or nothing to write): synchronous from here, so these writes commit together.
  let seriesDropped = 0;
  afterPut(key, () => {
    markFlushed(plan, now);
    seriesDropped = dropRetained(head, now, rules);
    if (plan.numChunks > 0 || seriesDropped > 0) wal.checkpoint(encodeCheckpoint(head));
    setFlushIntent(wal, null);
  });
  head.bytesEstimate = head.bytes();
  return { block, key, reasons: Object.fromEntries(plan.reasons), seriesDropped };
}

/**
 * The head marked its chunks flushed (and maybe dropped series) but the checkpoint that
 * records it did not commit: memory no longer matches storage, where those chunks are
 * still unflushed and the block still only an intent. Left alone, the next flush would
 * delete that block (the intent) without uploading the chunks again (memory says
 * flushed), and a later checkpoint would trim their WAL rows: acked data lost. The
 * lifecycle resets the object instead (DurableObjectState.abort), so it rebuilds from
 * storage and the next flush replaces the block with one holding every chunk.
 */
export class HeadDivergedError extends Error {
  constructor(key: string | null, cause: unknown) {
    super(`flush of block ${key ?? "(none)"}: the checkpoint after the PUT failed (${(cause as Error)?.message ?? String(cause)}); the shard restarts from its storage and flushes again`);
    this.name = "HeadDivergedError";
  }
}

/** Runs the post-PUT section (memory marks, then the checkpoint); any failure in it is a HeadDivergedError. */
export function afterPut(key: string | null, section: () => void): void {
  try {
    section();
  } catch (e) {
    throw new HeadDivergedError(key, e);
  }
}
