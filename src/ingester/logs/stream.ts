// One log stream in the head (Loki's ingester stream.go): its labels, the open
// chunk it appends to, closed chunks waiting for (or retained after) a flush, and
// the state Loki's push rules need: the last entry (duplicate check) and the
// newest timestamp (out-of-order window).

import type { FlatLabels } from "../../model/labels";
import { cmpNs } from "../../model/logtime";
import { LogChunkBuilder, logChunkMeta } from "../../storage/logs/chunk";

/** Why a chunk left the head (Loki flush.go's flush reasons). */
export const enum LogFlushReason {
  /** Cut at append: its compressed size reached chunk_target_size. */
  Full = "full",
  /** Its entries span more than max_chunk_age. */
  MaxAge = "max_age",
  /** No entry for chunk_idle_period. */
  Idle = "idle",
  /** /flush or /shutdown. */
  Forced = "forced",
}

export interface ClosedLogChunk {
  /** src/storage/logs/chunk.ts bytes (finish()). */
  data: Uint8Array;
  minMs: number;
  minNs: number;
  maxMs: number;
  maxNs: number;
  entries: number;
  /** Uncompressed line + metadata bytes. */
  bytes: number;
  reason: LogFlushReason;
  /** Wall-clock time R2 confirmed the chunk's block; 0 while not flushed. */
  flushedAt: number;
}

/** The tenant's chunk rules, as the latest push carried them. */
export interface LogChunkRules {
  blockSize: number;
  targetSize: number;
  maxChunkAgeMs: number;
}

const EMPTY = new Uint8Array(0);

export class LogStream {
  readonly closed: ClosedLogChunk[] = [];
  open: LogChunkBuilder | null = null;
  /** Last entry appended (Loki's lastLine): a push repeating it exactly is dropped. */
  hasLast = false;
  lastMs = 0;
  lastNs = 0;
  lastLine: Uint8Array = EMPTY;
  /** Newest timestamp appended (Loki's highestTs); -Infinity before the first. */
  highMs = Number.NEGATIVE_INFINITY;
  highNs = 0;
  /** Wall clock of the last append, for the idle rule. */
  lastAppendAt = 0;

  // A push is validated before it is committed: these mirror the fields above
  // as they would be after the entries accepted so far (valid when stageEpoch
  // is the push's epoch), so nothing real changes until the WAL row is written.
  stageEpoch = 0;
  stageHasLast = false;
  stageLastMs = 0;
  stageLastNs = 0;
  stageLastLine: Uint8Array = EMPTY;
  stageHighMs = Number.NEGATIVE_INFINITY;
  stageHighNs = 0;

  constructor(
    readonly id: number,
    readonly labels: string,
    readonly flat: FlatLabels,
  ) {}

  beginStage(epoch: number): void {
    if (this.stageEpoch === epoch) return;
    this.stageEpoch = epoch;
    this.stageHasLast = this.hasLast;
    this.stageLastMs = this.lastMs;
    this.stageLastNs = this.lastNs;
    this.stageLastLine = this.lastLine;
    this.stageHighMs = this.highMs;
    this.stageHighNs = this.highNs;
  }

  /**
   * Appends an accepted entry (after the WAL commit, or in replay). `line` may be
   * a view into the batch: call settle() after the push's entries to copy the last one.
   */
  append(ms: number, ns: number, line: Uint8Array, meta: readonly string[] | null, rules: LogChunkRules): void {
    let c = this.open;
    // A chunk spans at most max_chunk_age (Loki closes it at the next flush
    // check; cutting here keeps WAL replay cutting exactly as the push did).
    if (c !== null && c.entries > 0) {
      const lo = ms < c.minMs ? ms : c.minMs;
      const hi = ms > c.maxMs ? ms : c.maxMs;
      if (hi - lo > rules.maxChunkAgeMs) {
        this.cut(LogFlushReason.MaxAge);
        c = null;
      }
    }
    if (c === null) c = this.open = new LogChunkBuilder({ blockSize: rules.blockSize });
    // The builder cuts its head block at blockSize itself (Loki's MemChunk.Append).
    c.append(ms, ns, line, meta);
    // Loki's SpaceFor: past chunk_target_size the chunk is closed ("full").
    if (c.compressedBytes >= rules.targetSize) this.cut(LogFlushReason.Full);
    this.hasLast = true;
    this.lastMs = ms;
    this.lastNs = ns;
    this.lastLine = line;
    if (cmpNs(ms, ns, this.highMs, this.highNs) > 0) {
      this.highMs = ms;
      this.highNs = ns;
    }
  }

  /** Copies the last line out of the push's batch, so the batch can be freed. */
  settle(): void {
    if (this.lastLine.byteOffset !== 0 || this.lastLine.byteLength !== this.lastLine.buffer.byteLength) this.lastLine = this.lastLine.slice();
  }

  /** Closes the open chunk (if it holds entries) for flushing. */
  cut(reason: LogFlushReason): void {
    const c = this.open;
    this.open = null;
    if (c === null || c.entries === 0) return;
    const bytes = c.uncompressedBytes;
    const data = c.finish();
    const m = logChunkMeta(data);
    this.closed.push({ data, minMs: m.minMs, minNs: m.minNs, maxMs: m.maxMs, maxNs: m.maxNs, entries: m.entries, bytes, reason, flushedAt: 0 });
  }

  /** Adds a closed chunk restored from a checkpoint. */
  restoreClosed(data: Uint8Array, reason: LogFlushReason, bytes: number): void {
    const m = logChunkMeta(data);
    this.closed.push({ data, minMs: m.minMs, minNs: m.minNs, maxMs: m.maxMs, maxNs: m.maxNs, entries: m.entries, bytes, reason, flushedAt: 0 });
  }

  /** Memory held by the stream's chunks. */
  bytes(): number {
    let n = this.open ? this.open.memoryBytes : 0;
    for (const c of this.closed) n += c.data.length + 64;
    return n + this.lastLine.length;
  }

  get isEmpty(): boolean {
    return this.closed.length === 0 && (this.open === null || this.open.entries === 0);
  }
}
