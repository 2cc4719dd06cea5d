// What a shard Durable Object counts about itself, kept in its own SQLite so that
// eviction or a restart never resets a counter: /metrics reads them from every
// shard (src/observability/collect.ts), and a Prometheus scraping us sees counters
// that only ever go up, as it expects of a _total (Cortex's ingester keeps them in
// process memory and resets on restart; a Durable Object restarts far more often).
//
// Cost: no row of its own per push. A push's counts (a Tally) ride in the push's
// own WAL row as an OBSERVATIONS record (docs/wal-format.md), so they commit
// atomically with the data they count: an acked sample is counted exactly once. The
// whole state (counters, minute history, recent errors) is written as one
// `observations` row only now and then: at each flush check and inside each
// checkpoint's transaction (before the WAL rows it covers are deleted), recording the
// WAL position it covers. Replay loads that row, then re-applies the OBSERVATIONS
// records of the WAL rows after that position: nothing is lost, nothing counted twice.
// What happens outside a WAL row (a refused push, a flush, an R2 call, a push that
// stored nothing) is written with commit(), one row, as before.
//
// Both ingesters (metrics: OBSERVATIONS records; logs: OBSERVED_BATCH) work this way.
// An observer made without a WAL position keeps the first version's rule: commit()
// after every change, one row each.
//
// Counter keys are plain strings, "name" or "name/label-value" (a reason, an
// operation); COUNTER below lists the names, docs/operations.md the metrics they
// become. Counts are integers (an OBSERVATIONS record holds them as varints).

import { ByteReader, ByteWriter, CorruptDataError } from "../model/bytes";
import type { SqlExec } from "./rows";

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
  /** Counters, minute history, recent errors and the WAL position covered (v2); counters and history only in v1. */
  State = 1,
  /** v1 only: the recent errors, folded into row 1 since v2. */
  LegacyErrors = 2,
}

interface StateRowV1 {
  v: 1;
  counters: Record<string, number>;
  /** Minute each history slot holds, and its count; slot = minute % 60. */
  stamps: number[];
  buckets: number[];
}

interface StateRow {
  v: 2;
  /** The WAL position this row covers: OBSERVATIONS records in WAL rows up to it are counted in it. */
  seq: number;
  counters: Record<string, number>;
  stamps: number[];
  buckets: number[];
  errors: RecentError[];
}

/** Error kinds by their code in an OBSERVATIONS record; append only. */
const ERROR_KINDS: readonly ErrorKind[] = ["push", "rejected", "flush"];

/**
 * Changes to a shard's observations, in the order they were made: counter
 * increments, minutes of history, errors. A push's tally is written into its WAL
 * row; replay re-applies it (readTally).
 */
export class Tally {
  readonly keys: string[] = [];
  readonly deltas: number[] = [];
  /** Pairs: unix minute, count. */
  readonly minutes: number[] = [];
  readonly errors: RecentError[] = [];

  /** owner: the observer whose recent errors decide whether an error is kept (null: keep every one, as replay does). */
  constructor(private readonly owner: ShardObserver | null = null) {}

  get empty(): boolean {
    return this.keys.length === 0 && this.minutes.length === 0 && this.errors.length === 0;
  }

  clear(): void {
    this.keys.length = 0;
    this.deltas.length = 0;
    this.minutes.length = 0;
    this.errors.length = 0;
  }

  inc(key: string, by = 1): void {
    if (by === 0) return;
    // Varints in the WAL record: a fraction would be rounded away on replay.
    if (!Number.isSafeInteger(by)) throw new RangeError(`counter ${key}: ${by} is not an integer count`);
    this.keys.push(key);
    this.deltas.push(by);
  }

  record(now: number, n: number): void {
    if (n === 0) return;
    this.minutes.push(Math.floor(now / MINUTE_MS), n);
  }

  error(at: number, kind: ErrorKind, message: string): void {
    if (this.owner !== null && !this.owner.admits(at, kind, this)) return;
    const m = message.length > MAX_ERROR_LENGTH ? message.slice(0, MAX_ERROR_LENGTH - 1) + "…" : message;
    this.errors.push({ at, kind, message: m });
  }
}

/**
 * The payload of an OBSERVATIONS record (docs/wal-format.md), the tallies in order:
 * count:uvarint { key:string delta:varint } minutes:uvarint { minute:uvarint n:uvarint }
 * errors:uvarint { at:varint kind:u8 message:string }. `count` comes first so that the
 * record fits the WAL's `type count payload` grammar.
 */
export function writeTallies(w: ByteWriter, ...tallies: Tally[]): void {
  let counters = 0;
  let minutes = 0;
  let errors = 0;
  for (const t of tallies) {
    counters += t.keys.length;
    minutes += t.minutes.length / 2;
    errors += t.errors.length;
  }
  w.uvarint(counters);
  for (const t of tallies) {
    for (let i = 0; i < t.keys.length; i++) {
      w.string(t.keys[i]);
      w.varint(t.deltas[i]);
    }
  }
  w.uvarint(minutes);
  for (const t of tallies) {
    for (let i = 0; i < t.minutes.length; i += 2) {
      w.uvarint(t.minutes[i]);
      w.uvarint(t.minutes[i + 1]);
    }
  }
  w.uvarint(errors);
  for (const t of tallies) {
    for (const e of t.errors) {
      w.varint(e.at);
      w.u8(ERROR_KINDS.indexOf(e.kind));
      w.string(e.message);
    }
  }
}

/** Reads an OBSERVATIONS payload after its `count` (the number of counter entries). */
export function readTally(r: ByteReader, count: number): Tally {
  const t = new Tally();
  for (let i = 0; i < count; i++) {
    const key = r.string();
    t.keys.push(key);
    t.deltas.push(r.varint());
  }
  const minutes = r.uvarint();
  for (let i = 0; i < minutes; i++) {
    const minute = r.uvarint();
    t.minutes.push(minute, r.uvarint());
  }
  const errors = r.uvarint();
  for (let i = 0; i < errors; i++) {
    const at = r.varint();
    const code = r.u8();
    const kind = ERROR_KINDS[code];
    if (kind === undefined) throw new CorruptDataError(`corrupt observations record: unknown error kind ${code}`);
    t.errors.push({ at, kind, message: r.string() });
  }
  return t;
}

export class ShardObserver {
  private counters: Record<string, number> = {};
  private readonly stamps = new Float64Array(HISTORY_MINUTES).fill(-1);
  private readonly buckets = new Float64Array(HISTORY_MINUTES);
  private errors: RecentError[] = [];
  /** Changes made here that are in no WAL row and not in the stored row: commit() writes them. */
  private readonly pending = new Tally(this);
  /** The tally of the push being committed (tally()), reused. */
  private readonly staged = new Tally(this);
  private readonly out = new ByteWriter(512);
  private storedAt = 0;
  /** The totals moved since the row was stored, by changes the WAL holds. */
  private stale = false;
  private legacyErrorsRow = false;

  /**
   * `position`: the WAL's last sequence number, for observers whose tallies ride in
   * WAL rows (OBSERVATIONS records). Without it, every change is written by commit().
   */
  constructor(
    private readonly sql: SqlExec,
    private readonly position: (() => number) | null = null,
  ) {
    sql.exec("CREATE TABLE IF NOT EXISTS observations (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    let v2 = false;
    for (const row of sql.exec<{ id: number; body: string }>("SELECT id, body FROM observations ORDER BY id")) {
      const body = JSON.parse(row.body) as unknown;
      if (row.id === Row.State) {
        const c = body as StateRow | StateRowV1;
        this.counters = c.counters;
        for (let i = 0; i < HISTORY_MINUTES; i++) {
          this.stamps[i] = c.stamps[i] ?? -1;
          this.buckets[i] = c.buckets[i] ?? 0;
        }
        if (c.v === 2) {
          v2 = true;
          this.errors = c.errors;
          this.storedAt = c.seq;
        }
        // v1 was written with every change, and its WAL rows hold no OBSERVATIONS
        // records: position 0 (every OBSERVATIONS record found is newer) is right.
      } else if (row.id === Row.LegacyErrors) {
        this.legacyErrorsRow = true;
        if (!v2) this.errors = body as RecentError[];
      }
    }
  }

  /** The WAL position the stored row covers (replay applies the OBSERVATIONS records after it). */
  get storedPosition(): number {
    return this.storedAt;
  }

  get(key: string): number {
    return this.counters[key] ?? 0;
  }

  inc(key: string, by = 1): void {
    if (by === 0) return;
    this.pending.inc(key, by);
    this.counters[key] = (this.counters[key] ?? 0) + by;
  }

  /** Adds to the per-minute history (what the ingestion-rate chart and user_stats read). */
  record(now: number, n: number): void {
    if (n === 0) return;
    const minute = Math.floor(now / MINUTE_MS);
    this.pending.minutes.push(minute, n);
    this.addMinute(minute, n);
  }

  error(at: number, kind: ErrorKind, message: string): void {
    const before = this.pending.errors.length;
    this.pending.error(at, kind, message);
    if (this.pending.errors.length > before) this.addError(this.pending.errors[before]);
  }

  /**
   * Whether an error is kept. A sender that keeps pushing refused samples would
   * otherwise fill the list: partial refusals are kept at most one per
   * REJECTED_EVERY_MS (push and flush failures always).
   */
  admits(at: number, kind: ErrorKind, staged: Tally): boolean {
    if (kind !== "rejected") return true;
    const last = lastRejected(staged.errors) ?? lastRejected(this.errors);
    return last === null || !(at - last.at < REJECTED_EVERY_MS && at >= last.at);
  }

  /** An empty tally for the push being committed: fill it, write encode(it) into the WAL row, then apply(it). */
  tally(): Tally {
    this.staged.clear();
    return this.staged;
  }

  /**
   * The OBSERVATIONS payload for a WAL row: what is pending, then `t` (a view,
   * valid until the next call). After the row is written: apply(t), walWritten().
   */
  encode(t: Tally): Uint8Array {
    this.out.reset();
    writeTallies(this.out, this.pending, t);
    return this.out.view();
  }

  /** Counts `t` (pending until walWritten() or commit()). */
  apply(t: Tally): void {
    for (let i = 0; i < t.keys.length; i++) this.inc(t.keys[i], t.deltas[i]);
    for (let i = 0; i < t.minutes.length; i += 2) {
      this.pending.minutes.push(t.minutes[i], t.minutes[i + 1]);
      this.addMinute(t.minutes[i], t.minutes[i + 1]);
    }
    for (const e of t.errors) {
      this.pending.errors.push(e);
      this.addError(e);
    }
  }

  /** Everything pending is in the WAL row just written (encode()): durable without a row of its own. */
  walWritten(): void {
    this.pending.clear();
    this.stale = true;
  }

  /** Replay: a WAL row's OBSERVATIONS record, counted unless the stored row already covers its position. */
  replay(t: Tally, seq: number): void {
    if (seq <= this.storedAt) return;
    for (let i = 0; i < t.keys.length; i++) this.counters[t.keys[i]] = (this.counters[t.keys[i]] ?? 0) + t.deltas[i];
    for (let i = 0; i < t.minutes.length; i += 2) this.addMinute(t.minutes[i], t.minutes[i + 1]);
    for (const e of t.errors) this.addError(e);
    this.stale = true;
  }

  /**
   * Writes what is pending (changes no WAL row holds), as one row. Call in the same
   * synchronous section as the change it counts (no await between), so both commit together.
   */
  commit(): void {
    if (!this.pending.empty) this.persist();
  }

  /**
   * Writes the row if it is behind (at each flush check, and inside a checkpoint's
   * transaction, before the WAL rows holding the tallies are deleted).
   */
  persistIfStale(): void {
    if (this.stale || !this.pending.empty) this.persist();
  }

  private persist(): void {
    const seq = this.position === null ? 0 : this.position();
    const row: StateRow = { v: 2, seq, counters: this.counters, stamps: Array.from(this.stamps), buckets: Array.from(this.buckets), errors: this.errors };
    this.sql.exec("INSERT INTO observations (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body", Row.State, JSON.stringify(row));
    if (this.legacyErrorsRow) {
      this.sql.exec("DELETE FROM observations WHERE id = ?", Row.LegacyErrors);
      this.legacyErrorsRow = false;
    }
    this.storedAt = seq;
    this.pending.clear();
    this.stale = false;
  }

  private addMinute(minute: number, n: number): void {
    const slot = minute % HISTORY_MINUTES;
    if (this.stamps[slot] !== minute) {
      // A slot holds an older minute (an hour ago or more): start it over. A clock
      // that went back more than that would reuse a newer slot; its count is kept.
      if (this.stamps[slot] > minute) return;
      this.stamps[slot] = minute;
      this.buckets[slot] = 0;
    }
    this.buckets[slot] += n;
  }

  private addError(e: RecentError): void {
    this.errors.push(e);
    if (this.errors.length > MAX_RECENT_ERRORS) this.errors.splice(0, this.errors.length - MAX_RECENT_ERRORS);
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

function lastRejected(errors: RecentError[]): RecentError | null {
  for (let i = errors.length - 1; i >= 0; i--) if (errors[i].kind === "rejected") return errors[i];
  return null;
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
