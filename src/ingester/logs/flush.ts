// Which log chunks leave the head, and when (Loki's pkg/ingester/flush.go):
// shouldFlushChunk returns (reason) for a stream's open chunk: idle when nothing
// was appended for chunk_idle_period, max_age when its entries span more than
// max_chunk_age; chunks closed at append carry "full" (or "max_age"). Every closed,
// unflushed chunk of the shard goes into one R2 block per flush; flushed chunks
// stay for chunk_retain_period, then they and streams left empty are dropped.
//
// Synchronous and free of I/O: the Durable Object writes the block
// (./flusher.ts) between collectLogFlush and markLogFlushed.

import type { LogHead } from "./head";
import { LogFlushReason, type ClosedLogChunk, type LogStream } from "./stream";

export interface LogFlushRules {
  idlePeriodMs: number;
  maxChunkAgeMs: number;
  retainPeriodMs: number;
}

/** Why the stream's open chunk should be closed for flushing now, or null (Loki's shouldFlushChunk). */
export function shouldFlushChunk(s: LogStream, now: number, rules: LogFlushRules, force: boolean): LogFlushReason | null {
  const c = s.open;
  if (c === null || c.entries === 0) return null;
  if (force) return LogFlushReason.Forced;
  if (now - s.lastAppendAt >= rules.idlePeriodMs) return LogFlushReason.Idle;
  if (c.maxMs - c.minMs > rules.maxChunkAgeMs) return LogFlushReason.MaxAge;
  return null;
}

export interface LogFlushPlan {
  streams: LogStream[];
  /** chunks[i]: the unflushed closed chunks of streams[i]. */
  chunks: ClosedLogChunk[][];
  numChunks: number;
  /** Chunks by the reason they were closed. */
  reasons: Partial<Record<LogFlushReason, number>>;
}

/** Closes what is due and gathers every unflushed closed chunk of the shard. */
export function collectLogFlush(head: LogHead, now: number, rules: LogFlushRules, force: boolean): LogFlushPlan {
  const plan: LogFlushPlan = { streams: [], chunks: [], numChunks: 0, reasons: {} };
  for (const s of head.byKey.values()) {
    const reason = shouldFlushChunk(s, now, rules, force);
    if (reason !== null) s.cut(reason);
    let picked: ClosedLogChunk[] | null = null;
    for (const c of s.closed) {
      if (c.flushedAt !== 0) continue;
      (picked ??= []).push(c);
      plan.reasons[c.reason] = (plan.reasons[c.reason] ?? 0) + 1;
    }
    if (picked !== null) {
      plan.streams.push(s);
      plan.chunks.push(picked);
      plan.numChunks += picked.length;
    }
  }
  return plan;
}

/** After R2 confirmed the block: these chunks are flushed and never uploaded again. */
export function markLogFlushed(plan: LogFlushPlan, now: number): void {
  for (const list of plan.chunks) for (const c of list) c.flushedAt = now;
}

/**
 * Drops flushed chunks past the retain period, then streams left without data
 * that have been idle as long (Loki's removeFlushedChunks and stream removal).
 * A dropped stream forgets its last entry, as in Loki. Returns streams dropped.
 */
export function dropRetainedLogs(head: LogHead, now: number, rules: LogFlushRules): number {
  const dead: LogStream[] = [];
  for (const s of head.byKey.values()) {
    if (s.closed.some((c) => c.flushedAt !== 0)) {
      const keep = s.closed.filter((c) => c.flushedAt === 0 || now - c.flushedAt < rules.retainPeriodMs);
      s.closed.splice(0, s.closed.length, ...keep);
    }
    if (s.isEmpty && now - s.lastAppendAt >= rules.retainPeriodMs) dead.push(s);
  }
  for (const s of dead) head.remove(s);
  return dead.length;
}
