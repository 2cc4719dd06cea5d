// Which chunks leave the head, and when (Loki's flush.go rules): a chunk is closed
// when full or spanning max age (at append), or when its series has been idle; closed
// chunks are flushed as one block per shard per flush; flushed chunks stay in memory
// for the retain period, then they and empty series are dropped.
//
// Everything here is synchronous and pure with respect to storage: the Durable
// Object does the I/O (src/ingester/flusher.ts) between collectFlush and markFlushed.

import type { Head } from "./head";
import type { HeadChunk, MemSeries } from "./series";

export const enum FlushReason {
  /** Closed at append: 120 samples, or the span reached max age. */
  Closed = "closed",
  Idle = "idle",
  /** /flush, /shutdown. */
  Forced = "forced",
}

export interface FlushRules {
  idlePeriodMs: number;
  retainPeriodMs: number;
}

/** Why the series' open chunk should be closed for flushing now, or null. */
export function shouldFlush(s: MemSeries, now: number, rules: FlushRules, force: boolean): FlushReason | null {
  if (s.open === null || s.open.numSamples === 0) return null;
  if (force) return FlushReason.Forced;
  if (now - s.lastAppendAt >= rules.idlePeriodMs) return FlushReason.Idle;
  return null;
}

export interface FlushPlan {
  series: MemSeries[];
  /** chunks[i]: the unflushed closed chunks of series[i], in time order. */
  chunks: HeadChunk[][];
  numChunks: number;
  reasons: Map<FlushReason, number>;
}

/** Closes what is due and gathers every unflushed closed chunk of the shard. */
export function collectFlush(head: Head, now: number, rules: FlushRules, force: boolean): FlushPlan {
  const plan: FlushPlan = { series: [], chunks: [], numChunks: 0, reasons: new Map() };
  for (const s of head.byKey.values()) {
    const reason = shouldFlush(s, now, rules, force);
    if (reason !== null) {
      s.cut();
      plan.reasons.set(reason, (plan.reasons.get(reason) ?? 0) + 1);
    }
    s.cutOutOfOrder();
    let picked: HeadChunk[] | null = null;
    for (const c of s.closed) {
      if (c.flushedAt !== 0) continue;
      (picked ??= []).push(c);
    }
    if (picked !== null) {
      plan.series.push(s);
      plan.chunks.push(picked);
      plan.numChunks += picked.length;
    }
  }
  if (plan.numChunks > 0) plan.reasons.set(FlushReason.Closed, plan.numChunks - sum(plan.reasons));
  return plan;
}

function sum(m: Map<FlushReason, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** After R2 confirmed the block: the plan's chunks are flushed and will not be uploaded again. */
export function markFlushed(plan: FlushPlan, now: number): void {
  for (const list of plan.chunks) for (const c of list) c.flushedAt = now;
}

/**
 * Drops flushed chunks past the retain period, then series left with no data
 * that have been idle as long (Loki's removeFlushedChunks). Returns series dropped.
 */
export function dropRetained(head: Head, now: number, rules: FlushRules): number {
  const dead: MemSeries[] = [];
  for (const s of head.byKey.values()) {
    if (s.closed.length > 0 && s.closed[0].flushedAt !== 0) {
      s.closed.splice(0, s.closed.length, ...s.closed.filter((c) => c.flushedAt === 0 || now - c.flushedAt < rules.retainPeriodMs));
    }
    const empty = s.closed.length === 0 && (s.open === null || s.open.numSamples === 0) && (s.ooo === null || s.ooo.length === 0);
    if (empty && now - s.lastAppendAt >= rules.retainPeriodMs) dead.push(s);
  }
  for (const s of dead) head.removeSeries(s);
  return dead.length;
}
