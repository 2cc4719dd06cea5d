// What crosses the RPC boundary between the Workers and the log ingester Durable
// Objects (durable-objects/log_ingester.ts). Pushes travel as one binary batch
// (./batch.ts), which the shard also stores unchanged as its WAL record.

import type { ReasonCount } from "../rpc";

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
}

export interface LogShardPush {
  tenant: string;
  shard: number;
  /** src/ingester/logs/batch.ts: streams already validated, labels canonical. */
  batch: Uint8Array;
  limits: LogShardLimits;
}

export interface LogShardPushResult {
  /** Entries now stored. */
  accepted: number;
  /** Their line bytes. */
  acceptedBytes: number;
  /** Entries identical to the stream's last one (time and line), dropped silently as Loki does. */
  duplicates: number;
  /** Entries refused by the shard (too far out of order, ...), by reason. */
  rejected: ReasonCount[];
  /** Message of the first refused entry, naming its stream; null when none was refused. */
  firstError: string | null;
}
