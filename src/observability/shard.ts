// What a shard Durable Object counts about itself, kept in its own SQLite so that
// eviction or a restart never resets a counter: /metrics reads them from every
// shard (src/observability/collect.ts), and a Prometheus scraping us sees counters
// that only ever go up, as it expects of a _total (Cortex's ingester keeps them in
// process memory and resets on restart; a Durable Object restarts far more often).
//
// Cost: one more SQLite row written per push (the counters row), in the same
// synchronous section as the WAL row, so the counts commit atomically with the
// data they count: an acked sample is counted exactly once. The recent-errors row
// is written only when an error is added.
//
// Counter keys are plain strings, "name" or "name/label-value" (a reason, an
// operation); COUNTER below lists the names, docs/operations.md the metrics they
// become. The log ingester (durable-objects/log_ingester.ts) can use this class too.

/** Names of shard counters. A key is the name, or `${name}/${label value}` for the labelled ones. */
export const COUNTER = {
  /** Samples the distributor sent to this shard (after its validation). */
  samplesReceived: "samples_received",
  /** Samples stored, harmless exact duplicates included (ShardPushResult.written). */
  samplesIngested: "samples_ingested",
  /** Samples the shard refused, `/reason` (src/model/errors.ts Reason). */
  discarded: "discarded",
  /** Samples the distributor refused before any shard was called, forwarded here to survive the isolate; `/reason`. */
  distributorDiscarded: "distributor_discarded",
  /** Pushes answered (accepted in whole or in part). */
  pushes: "pushes",
  /** Pushes refused with an error (shut down, head full, WAL write failed): the sender retries. */
  pushFailures: "push_failures",
  seriesCreated: "series_created",
  seriesRemoved: "series_removed",
  flushes: "flushes",
  flushFailures: "flush_failures",
  blocksFlushed: "blocks_flushed",
  /** Chunks flushed, `/reason` (src/ingester/flush.ts FlushReason). */
  chunksFlushed: "chunks_flushed",
  /** R2 calls made by the shard, `/op` (put, delete, get, list). */
  r2Ops: "r2_ops",
  /** R2 calls that failed, `/op`. */
  r2Failures: "r2_failures",
  r2BytesWritten: "r2_bytes_written",
  // Log shards (Loki's names: loki_distributor_lines_received_total, loki_discarded_samples_total, ...).
  linesReceived: "lines_received",
  bytesReceived: "bytes_received",
  /** Log entries refused, `/reason`. */
  discardedLines: "discarded_lines",
  /** Their line bytes, `/reason`. */
  discardedBytes: "discarded_bytes",
  /** Log entries (and their bytes) the distributor refused, forwarded as for samples; `/reason`. */
  distributorDiscardedLines: "distributor_discarded_lines",
  distributorDiscardedBytes: "distributor_discarded_bytes",
} as const;

export type ErrorKind = "push" | "rejected" | "flush";

export interface RecentError {
  /** Unix ms. */
  at: number;
  kind: ErrorKind;
  message: string;
}

/** Per-minute counts of the last hour, oldest first; the last entry is the current (partial) minute. */
export interface MinuteHistory {
  /** Unix minute (ms / 60000) of the last entry. */
  endMinute: number;
  counts: number[];
}

/** What a shard reports about itself (part of its stats() RPC answer). */
export interface ShardObservations {
  counters: Record<string, number>;
  /** Samples (metrics shards) or lines (log shards) received per minute. */
  history: MinuteHistory;
  /** Newest last. */
  errors: RecentError[];
}

export const HISTORY_MINUTES = 60;
export const MAX_RECENT_ERRORS = 10;
const MAX_ERROR_LENGTH = 400;
const REJECTED_EVERY_MS = 10_000;
const MINUTE_MS = 60_000;

const enum Row {
  Counters = 1,
  Errors = 2,
}

interface CountersRow {
  v: 1;
  counters: Record<string, number>;
  /** Minute each history slot holds, and its count; slot = minute % 60. */
  stamps: number[];
  buckets: number[];
}

export class ShardObserver {
  private counters: Record<string, number> = {};
  private readonly stamps = new Float64Array(HISTORY_MINUTES).fill(-1);
  private readonly buckets = new Float64Array(HISTORY_MINUTES);
  private errors: RecentError[] = [];
  private dirty = false;
  private errorsDirty = false;

  constructor(private readonly sql: SqlStorage) {
    sql.exec("CREATE TABLE IF NOT EXISTS observations (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    for (const row of sql.exec<{ id: number; body: string }>("SELECT id, body FROM observations")) {
      const body = JSON.parse(row.body) as unknown;
      if (row.id === Row.Counters) {
        const c = body as CountersRow;
        this.counters = c.counters;
        for (let i = 0; i < HISTORY_MINUTES; i++) {
          this.stamps[i] = c.stamps[i] ?? -1;
          this.buckets[i] = c.buckets[i] ?? 0;
        }
      } else if (row.id === Row.Errors) {
        this.errors = body as RecentError[];
      }
    }
  }

  get(key: string): number {
    return this.counters[key] ?? 0;
  }

  inc(key: string, by = 1): void {
    if (by === 0) return;
    this.counters[key] = (this.counters[key] ?? 0) + by;
    this.dirty = true;
  }

  /** Adds to the per-minute history (what the ingestion-rate chart and user_stats read). */
  record(now: number, n: number): void {
    const minute = Math.floor(now / MINUTE_MS);
    const slot = minute % HISTORY_MINUTES;
    if (this.stamps[slot] !== minute) {
      // A slot holds an older minute (an hour ago or more): start it over. A clock
      // that went back more than that would reuse a newer slot; its count is kept.
      if (this.stamps[slot] > minute) return;
      this.stamps[slot] = minute;
      this.buckets[slot] = 0;
    }
    this.buckets[slot] += n;
    this.dirty = true;
  }

  error(at: number, kind: ErrorKind, message: string): void {
    // A sender that keeps pushing refused samples would otherwise cost a row per push:
    // partial refusals are kept at most one per REJECTED_EVERY_MS (push and flush failures always).
    if (kind === "rejected") {
      for (let i = this.errors.length - 1; i >= 0; i--) {
        if (this.errors[i].kind !== "rejected") continue;
        if (at - this.errors[i].at < REJECTED_EVERY_MS && at >= this.errors[i].at) return;
        break;
      }
    }
    const m = message.length > MAX_ERROR_LENGTH ? message.slice(0, MAX_ERROR_LENGTH - 1) + "…" : message;
    this.errors.push({ at, kind, message: m });
    if (this.errors.length > MAX_RECENT_ERRORS) this.errors.splice(0, this.errors.length - MAX_RECENT_ERRORS);
    this.errorsDirty = true;
  }

  /**
   * Writes what changed. Call in the same synchronous section as the change it
   * counts (no await between), so both commit together.
   */
  commit(): void {
    if (this.dirty) {
      const row: CountersRow = { v: 1, counters: this.counters, stamps: Array.from(this.stamps), buckets: Array.from(this.buckets) };
      this.write(Row.Counters, JSON.stringify(row));
      this.dirty = false;
    }
    if (this.errorsDirty) {
      this.write(Row.Errors, JSON.stringify(this.errors));
      this.errorsDirty = false;
    }
  }

  private write(id: Row, body: string): void {
    this.sql.exec("INSERT INTO observations (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body", id, body);
  }

  /** The last hour as of `now`, oldest minute first. */
  history(now: number): MinuteHistory {
    const endMinute = Math.floor(now / MINUTE_MS);
    const counts = new Array<number>(HISTORY_MINUTES);
    for (let i = 0; i < HISTORY_MINUTES; i++) {
      const minute = endMinute - (HISTORY_MINUTES - 1) + i;
      const slot = minute % HISTORY_MINUTES;
      counts[i] = this.stamps[slot] === minute ? this.buckets[slot] : 0;
    }
    return { endMinute, counts };
  }

  snapshot(now: number): ShardObservations {
    return { counters: { ...this.counters }, history: this.history(now), errors: this.errors.slice() };
  }
}

/**
 * Per-second rate over the last 60 s from a minute history: the current minute's
 * count plus the part of the previous minute still inside the window (a sliding
 * window over fixed buckets, as a rate limiter's would be).
 */
export function ratePerSecond(h: MinuteHistory, now: number): number {
  const n = h.counts.length;
  if (n === 0) return 0;
  const into = (now - h.endMinute * MINUTE_MS) / MINUTE_MS;
  const current = h.counts[n - 1];
  const previous = n > 1 ? h.counts[n - 2] : 0;
  const frac = Math.min(1, Math.max(0, into));
  return (current + previous * (1 - frac)) / 60;
}

/** Sums minute histories that end at the same minute (shards of a tenant, or tenants). */
export function sumHistories(hs: MinuteHistory[], endMinute: number): MinuteHistory {
  const counts = new Array<number>(HISTORY_MINUTES).fill(0);
  for (const h of hs) {
    const shift = endMinute - h.endMinute;
    for (let i = 0; i < h.counts.length; i++) {
      const j = i - shift - (h.counts.length - HISTORY_MINUTES);
      if (j >= 0 && j < HISTORY_MINUTES) counts[j] += h.counts[i];
    }
  }
  return { endMinute, counts };
}
