// What crosses the RPC boundary between the Workers and the log ingester Durable
// Objects (durable-objects/log_ingester.ts). Pushes travel as one binary batch
// (./batch.ts), which the shard also stores unchanged as its WAL record.

import type { LabelMatcher } from "../../proto/types";
import type { LogSelectParams } from "../../model/logs";
import type { ShardObservations } from "../../observability/shard";

/** The tenant's limits that a log shard applies, sent with each push (the Worker reads the config). */
export interface LogShardLimits {
  /** Entries older than the stream's newest by more than this are refused (Loki 3: max_chunk_age / 2). */
  outOfOrderWindowMs: number;
  /** Uncompressed bytes of a chunk's block before it is compressed (Loki chunk_block_size, 256 KiB). */
  chunkBlockSize: number;
  /** Compressed size at which a chunk is cut (Loki chunk_target_size, 1.5 MB). */
  chunkTargetSize: number;
  maxChunkAgeMs: number;
  idlePeriodMs: number;
  retainPeriodMs: number;
  maxHeadBytesPerShard: number;
  /** This shard's share of maxGlobalStreamsPerUser (src/limits/series.ts perShardLimit); 0: no limit. A new stream past it is refused with reason stream_limit. */
  maxStreamsPerShard: number;
}

export interface LogShardPush {
  tenant: string;
  shard: number;
  /** src/ingester/logs/batch.ts: streams already validated, labels canonical. */
  batch: Uint8Array;
  limits: LogShardLimits;
  /** `since` of the ring that placed the batch (RingHistory.since): a retired shard refuses older rings. */
  ringSince?: number;
  /**
   * Entries the distributor refused in this request (validation), carried to this
   * shard's persisted counters (src/observability/distributor.ts): counted in
   * the isolate they would reset with it.
   */
  distributorDiscards?: LogDiscardCount[];
  /** The distributor's first refusal message, with distributorDiscards (kept among the shard's recent errors). */
  distributorError?: string;
}

/** Log entries refused for one reason, with their line bytes (Loki's discarded samples and bytes). */
export interface LogDiscardCount {
  reason: string;
  count: number;
  bytes: number;
}

export interface LogShardPushResult {
  /** Entries now stored. */
  accepted: number;
  /** Their line bytes. */
  acceptedBytes: number;
  /** Entries identical to the stream's last one (time and line), dropped silently as Loki does. */
  duplicates: number;
  /** Entries refused by the shard (too far out of order, ...), by reason. */
  rejected: LogReasonCount[];
  /** Message of the first refused entry, naming its stream; null when none was refused. */
  firstError: string | null;
}

/** Why a shard refused an entry: Loki's discarded-samples reasons (pkg/validation). */
export const enum LogReason {
  /** Older than the stream's newest entry minus the out-of-order window (Loki: too_far_behind). */
  TooFarBehind = "too_far_behind",
  /** A new stream past the shard's maxStreamsPerShard (Loki: stream_limit). */
  StreamLimit = "stream_limit",
}

export interface LogReasonCount {
  reason: LogReason;
  count: number;
  /** Their line bytes (loki_discarded_bytes_total). */
  bytes: number;
}

/** selectLogs: one shard's streams matching, with their data overlapping [start, end). */
export interface LogShardSelect extends LogSelectParams {
  tenant: string;
  shard: number;
}

/**
 * A stream selected from a shard's head: its canonical labels and the chunks
 * (src/storage/logs/chunk.ts bytes, readLogChunk) that overlap the range: closed
 * chunks not yet flushed, then a snapshot of the open one. Entries outside the
 * range are filtered by the reader; chunks may overlap in time (out-of-order).
 */
export interface SelectedLogStream {
  labels: string;
  chunks: Uint8Array[];
}

/**
 * Label names / values / series / index stats over a time range. `matcherSets`:
 * a stream counts when it matches every matcher of one set (Loki's match[] for
 * /series); empty means every stream.
 */
export interface LogIndexQuery {
  matcherSets: LabelMatcher[][];
  startMs: number;
  startNs: number;
  endMs: number;
  endNs: number;
}

/** Loki's /index/stats answer (logproto.IndexStatsResponse). */
export interface LogIndexStats {
  streams: number;
  chunks: number;
  entries: number;
  /** Uncompressed line + structured metadata bytes of the chunks (Loki's UncompressedSize), scaled by the range's share of each chunk. */
  bytes: number;
}

export interface LogShardStats {
  streams: number;
  /** Closed chunks held (flushed ones in their retain period included) plus open ones. */
  chunks: number;
  /** Entries appended since the object started (replay included). */
  entriesAppended: number;
  duplicates: number;
  rejected: number;
  headBytes: number;
  walRecords: number;
  walBytes: number;
  checkpointBytes: number;
  /** SQLite rows written since the object started (every statement: WAL, checkpoint, kv, observations), as billed. */
  rowsWritten: number;
  pushes: number;
  flushes: number;
  blocksWritten: number;
  r2Puts: number;
  shutdown: boolean;
  lastFlushAt: number | null;
  lastFlushError: string | null;
  /** What the last successful flush wrote: its block key (null: nothing due) and chunks by cut reason (full, max_age, idle, forced). */
  lastFlush: { key: string | null; chunks: number; entries: number; reasons: Record<string, number> } | null;
  nextAlarmAt: number | null;
  /** Live tail WebSockets attached to this shard. */
  tailers: number;
  /** Persisted counters (lines_received, bytes_received, discarded_lines/<reason>, ...), lines received per minute, recent errors. */
  observations: ShardObservations;
}
