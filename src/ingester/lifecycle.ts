// The lifecycle both ingester Durable Objects share (metrics: durable-objects/ingester.ts,
// logs: durable-objects/log_ingester.ts): the shard's identity, the alarm that runs
// flush checks (with backoff after a failure), one flush at a time, the bookkeeping
// around a flush, POST/DELETE /shutdown, registration in R2 and push accounting.
// What differs by kind (the head, the flush's block format, push, reads, tails) stays
// in the Durable Object and reaches this class as callbacks.

import { limitsFor, type Limits } from "../config/limits";
import { registerShard } from "../storage/blocks";
import { COUNTER, ShardObserver, type Tally } from "../observability/shard";
import { countingBucket } from "../observability/r2";
import { RowCountingSql } from "../observability/rows";
import { Wal } from "./wal";
import { HeadDivergedError } from "./flusher";

/** The flush rules /shutdown replaces: everything is in R2, so nothing needs keeping. */
export interface RulesOverride {
  idlePeriodMs: number;
  retainPeriodMs: number;
}

/** What the lifecycle reads from a kind's flush result (src/ingester/flusher.ts, logs/flusher.ts). */
export interface BlockFlushResult {
  /** The R2 key of the block written, or null when there was nothing to flush. */
  key: string | null;
  /** Chunks flushed, by reason. */
  reasons: Partial<Record<string, number>>;
}

/** What a kind's flush gets: a bucket that counts R2 operations, the shard, the time. */
export interface FlushCall {
  bucket: R2Bucket;
  tenant: string;
  shard: number;
  limits: Limits;
  now: number;
  force: boolean;
  override: RulesOverride | undefined;
}

/** The Durable Object's fields that tests replace, read at each use. */
export interface ShardHost {
  clock: () => number;
  bucket: R2Bucket;
}

/** What differs by kind. */
export interface ShardKind<R extends BlockFlushResult> {
  /** Whether the head still holds anything, so that the alarm keeps checking. */
  holdsData: () => boolean;
  /** The kind's flush: a block of the head's closed chunks to R2, then trim. */
  flush: (call: FlushCall) => Promise<R>;
}

/** Backoff after a failed flush: 2 s doubling to 5 min (alarms would give up after 6 platform retries). */
function flushBackoffMs(failures: number): number {
  return Math.min(2000 * 2 ** Math.max(0, failures - 1), 300_000);
}

export class ShardLifecycle<R extends BlockFlushResult> {
  /** Every statement goes through it: rows written, as billed. */
  readonly sql: RowCountingSql;
  readonly wal: Wal;
  /** Persisted counters, minute history and recent errors (src/observability/shard.ts). */
  readonly obs: ShardObserver;
  tenant: string | null = null;
  shard = 0;
  pushes = 0;
  flushes = 0;
  blocksWritten = 0;
  flushFailures = 0;
  /** When the shard last wrote a block to R2 (persisted). */
  lastFlushAt: number | null = null;
  lastFlushError: string | null = null;
  alarmAt: number | null = null;
  shutdown = false;
  /** Whether the shard is listed in R2 (registerShard): once, then kept in kv. */
  registered = false;
  /** Set when the tenant DO retired this LEAVING shard (LEFT): the `since` of the ring it was retired under. */
  retiredRingSince: number | null = null;
  private flushChain: Promise<unknown> = Promise.resolve();

  /** Opens the shard's SQLite storage and reads its persisted identity and flags; the caller replays the WAL. */
  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    private readonly host: ShardHost,
    private readonly kind: ShardKind<R>,
  ) {
    const sql = (this.sql = new RowCountingSql(ctx.storage.sql));
    const wal = (this.wal = new Wal(ctx.storage, sql));
    // Push counts ride in the WAL rows; the observations row is written at flush
    // checks and inside each checkpoint, covering the WAL up to wal.lastSeq.
    const obs = (this.obs = new ShardObserver(sql, () => wal.lastSeq));
    wal.onCheckpoint = () => obs.persistIfStale();
    const tenant = wal.getKv("tenant");
    if (typeof tenant === "string") {
      this.tenant = tenant;
      this.shard = Number(wal.getKv("shard"));
    }
    this.shutdown = wal.getKv("shutdown") === 1;
    const retired = wal.getKv("retired_ring_since");
    if (typeof retired === "number") this.retiredRingSince = retired;
    const lastFlushAt = wal.getKv("last_flush_at");
    if (typeof lastFlushAt === "number") this.lastFlushAt = lastFlushAt;
    this.registered = wal.getKv("registered") === 1;
  }

  /** Reads the alarm already set (from the constructor's blockConcurrencyWhile). */
  async loadAlarm(): Promise<void> {
    this.alarmAt = await this.ctx.storage.getAlarm();
    // A shard holding data always has a flush check coming, even after a reset that
    // lost its alarm (abort() after a HeadDivergedError discards the backoff's setAlarm).
    if (this.alarmAt === null && this.kind.holdsData()) this.schedule(this.host.clock() + this.limits().flushCheckPeriodMs);
  }

  /** The tenant's limits (the defaults before the first write). */
  limits(): Limits {
    return limitsFor(this.env, this.tenant ?? "");
  }

  /** Takes on the tenant and shard of its first write (the Durable Object's name is not readable inside it). */
  adopt(tenant: string, shard: number): void {
    if (this.tenant !== null) return;
    this.tenant = tenant;
    this.shard = shard;
    this.wal.setKv("tenant", tenant);
    this.wal.setKv("shard", shard);
    // Not awaited: registration is for listing tenants; a failure is retried at flush.
    void this.register().catch(() => {});
  }

  /**
   * The tenant DO retires a LEAVING shard once everything it held is in R2
   * (src/distributor/ring.ts, LEFT): true, and from now on it refuses writes placed by a
   * ring no newer than `ringSince`, when its head and WAL are empty; false otherwise.
   * Synchronous: no push can land between the check and the flag.
   */
  retire(ringSince: number): boolean {
    if (this.retiredRingSince !== null) return true;
    if (this.kind.holdsData() || this.wal.records > 0) return false;
    this.retiredRingSince = ringSince;
    this.wal.setKv("retired_ring_since", ringSince);
    return true;
  }

  /**
   * A retired shard takes writes only from a ring that re-added it (newer than its
   * retirement); a push placed by an older ring is refused, retryable: the distributor's
   * ring copy is stale and its retry uses the fresh one.
   */
  checkPlacement(tenant: string, shard: number, ringSince: number | undefined): void {
    if (this.retiredRingSince === null) return;
    if (ringSince !== undefined && ringSince > this.retiredRingSince) {
      this.retiredRingSince = null;
      this.wal.setKv("retired_ring_since", null);
      return;
    }
    this.refuse(`shard ${shard} of tenant ${tenant} left the ring (retired: all its data is in R2) and takes no writes from a ring placed before; retry with the current ring`);
  }

  /** Counts a refused push and throws its message (the distributor answers 503: the sender retries). */
  refuse(message: string): never {
    this.pushFailed(this.host.clock(), message);
    throw new Error(message);
  }

  pushFailed(now: number, message: string): void {
    const obs = this.obs;
    try {
      obs.inc(COUNTER.pushFailures);
      obs.error(now, "push", message);
      obs.commit();
    } catch {
      // Storage itself is failing: the push's own error says more.
    }
  }

  /** Counts a push's tally: durable already in its WAL row, or written now as the observations row (one row either way). */
  counted(tally: Tally, inWalRow: boolean): void {
    const obs = this.obs;
    obs.apply(tally);
    if (inWalRow) obs.walWritten();
    else obs.commit();
  }

  /** After a stored push: the next flush check, unless one is set. */
  armFlushCheck(): void {
    if (this.alarmAt === null) this.schedule(this.host.clock() + this.limits().flushCheckPeriodMs);
  }

  /** The Durable Object's alarm: a flush check, then the next while data is held. */
  async alarm(): Promise<void> {
    this.alarmAt = null;
    const limits = this.limits();
    try {
      await this.flush(false);
      if (this.kind.holdsData()) this.schedule(this.host.clock() + limits.flushCheckPeriodMs);
    } catch {
      // Nothing was trimmed; try again with backoff, under our control.
      this.schedule(this.host.clock() + flushBackoffMs(this.flushFailures));
    }
  }

  /** Stops writes, flushes everything and releases memory (POST /shutdown). */
  async shutdownShard(): Promise<R | null> {
    this.shutdown = true;
    this.wal.setKv("shutdown", 1);
    const result = await this.flush(true);
    // Everything is in R2: drop it all from memory (the retain period is waived).
    await this.flush(false, { idlePeriodMs: 0, retainPeriodMs: 0 });
    return result;
  }

  /** Accepts writes again (DELETE /shutdown). */
  resume(): void {
    this.shutdown = false;
    this.wal.setKv("shutdown", null);
  }

  flush(force: boolean, override?: RulesOverride): Promise<R | null> {
    // One flush at a time: an alarm and a /flush wait for each other.
    const run = this.flushChain.then(() => this.flushOnce(force, override));
    this.flushChain = run.catch(() => {});
    return run;
  }

  private async flushOnce(force: boolean, override: RulesOverride | undefined): Promise<R | null> {
    if (this.tenant === null) return null;
    const obs = this.obs;
    const clock = () => this.host.clock();
    const limits = this.limits();
    try {
      await this.register();
      const bucket = countingBucket(this.host.bucket, obs);
      const result = await this.kind.flush({ bucket, tenant: this.tenant, shard: this.shard, limits, now: clock(), force, override });
      this.flushes++;
      if (result.key !== null) this.blocksWritten++;
      this.flushFailures = 0;
      if (result.key !== null) {
        // Kept in storage, so the status page and /metrics still know it after a restart.
        this.lastFlushAt = clock();
        this.wal.setKv("last_flush_at", this.lastFlushAt);
      }
      this.lastFlushError = null;
      obs.inc(COUNTER.flushes);
      if (result.key !== null) obs.inc(COUNTER.blocksFlushed);
      for (const [reason, n] of Object.entries(result.reasons)) obs.inc(`${COUNTER.chunksFlushed}/${reason}`, n ?? 0);
      // At most once per flush check (30 s): the observations row catches up with the
      // WAL rows' counts, so that replay re-applies only the newest.
      obs.persistIfStale();
      return result;
    } catch (e) {
      this.flushFailures++;
      this.lastFlushError = `${new Date(clock()).toISOString()}: ${(e as Error).message}`;
      try {
        obs.inc(COUNTER.flushFailures);
        obs.error(clock(), "flush", (e as Error).message);
        obs.commit();
      } catch {
        // Storage itself is failing: the flush's own error says more.
      }
      // Memory is ahead of storage (src/ingester/flusher.ts): only a restart from storage is safe.
      if (e instanceof HeadDivergedError) this.ctx.abort(e.message);
      throw e;
    }
  }

  private async register(): Promise<void> {
    if (this.registered || this.tenant === null) return;
    await registerShard(countingBucket(this.host.bucket, this.obs), this.tenant, this.shard);
    this.registered = true;
    this.wal.setKv("registered", 1);
  }

  private schedule(at: number): void {
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  /** The lifecycle's part of the shard's stats (ShardStats, LogShardStats). */
  stats(): {
    pushes: number;
    flushes: number;
    blocksWritten: number;
    r2Puts: number;
    lastFlushAt: number | null;
    lastFlushError: string | null;
    nextAlarmAt: number | null;
    shutdown: boolean;
  } {
    return {
      pushes: this.pushes,
      flushes: this.flushes,
      blocksWritten: this.blocksWritten,
      r2Puts: this.blocksWritten,
      lastFlushAt: this.lastFlushAt,
      lastFlushError: this.lastFlushError,
      nextAlarmAt: this.alarmAt,
      shutdown: this.shutdown,
    };
  }
}
