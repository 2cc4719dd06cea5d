// What crosses the RPC boundary between the Workers (distributor, querier) and the
// ingester Durable Objects. Structured-clone friendly and compact: one string per
// series and typed arrays for samples, never an object per sample.

import type { MetricMetadata, LabelMatcher } from "../proto/types";
import type { Reason } from "../model/errors";
import type { ShardObservations } from "../observability/shard";

/** One push's series for one shard. Samples of series i are counts[i] consecutive entries. */
export interface ShardPush {
  tenant: string;
  shard: number;
  /** Series keys (src/model/labels.ts seriesKey), labels already validated and sorted. */
  keys: string[];
  counts: Uint32Array;
  /** Remote write 2.0 created timestamp per series (ms), 0 when absent. */
  created: Float64Array | null;
  timestamps: Float64Array;
  values: Float64Array;
  metadata: MetricMetadata[];
  /** The tenant's limits that the ingester applies. */
  outOfOrderTimeWindowMs: number;
  maxSamplesPerChunk: number;
  maxChunkAgeMs: number;
  /** This shard's share of maxGlobalSeriesPerUser (src/limits/series.ts); absent or 0: no limit. */
  maxSeriesPerShard?: number;
  /** `since` of the ring that placed the batch (RingHistory.since): a retired shard refuses older rings. */
  ringSince?: number;
  /**
   * Samples the distributor refused in this request, by reason, riding on one of
   * its shard batches so the counts live in the shard's persisted counters rather
   * than in one Worker isolate (src/observability/distributor.ts). Absent when none.
   */
  distributorDiscards?: ReasonCount[];
}

export interface ReasonCount {
  reason: Reason;
  count: number;
}

export interface ShardPushResult {
  /** Samples now stored (including harmless exact duplicates, as Prometheus counts them). */
  written: number;
  /** Samples refused, by reason. */
  rejected: ReasonCount[];
  /** Message of the first refused sample, naming it; null when none was refused. */
  firstError: string | null;
}

/** A series selected by matchers: its labels and its data in [mint, maxt] as XOR chunks. */
export interface SelectedSeries {
  labels: string[];
  /** Prometheus XOR chunks, in time order, each possibly extending beyond [mint, maxt]. */
  chunks: Uint8Array[];
  /** Out-of-order samples not yet merged into chunks, sorted by time; null when none. */
  ooo: { timestamps: Float64Array; values: Float64Array } | null;
}

export interface SelectRequest {
  matchers: LabelMatcher[];
  mint: number;
  maxt: number;
}

export interface ShardStats {
  /** The tenant and shard this object took on at its first write (null before). */
  tenant: string | null;
  shard: number;
  series: number;
  chunks: number;
  samplesAppended: number;
  walRecords: number;
  walBytes: number;
  checkpointBytes: number;
  /** SQLite rows written since the object started (every statement: WAL, checkpoint, kv, observations), as billed. */
  rowsWritten: number;
  headBytes: number;
  pushes: number;
  flushes: number;
  blocksWritten: number;
  r2Puts: number;
  lastFlushAt: number | null;
  lastFlushError: string | null;
  nextAlarmAt: number | null;
  shutdown: boolean;
  /** Persisted counters, the per-minute history of samples received, recent errors. */
  observations: ShardObservations;
}
