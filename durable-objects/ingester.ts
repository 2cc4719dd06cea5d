// The ingester Durable Object: one per tenant shard. A thin shell that wires the
// object's SQLite storage, alarm and R2 binding to the head (src/ingester/). Every
// entry point runs after the constructor's replay, which blockConcurrencyWhile
// guarantees.

import { DurableObject } from "cloudflare:workers";
import { limitsFor, type Limits } from "../src/config/limits";
import { Head } from "../src/ingester/head";
import { Wal, decodeWalRecord, type WalVisitor } from "../src/ingester/wal";
import { appendPush } from "../src/ingester/append";
import { selectSeries } from "../src/ingester/read";
import { headLabelNames, headLabelValues, headMetadata, headSeries, type LabelQuery, type LabelValuesQuery, type MetadataQuery } from "../src/ingester/labels";
import { flushHead, type FlushResult } from "../src/ingester/flusher";
import type { SelectRequest, SelectedSeries, ShardPush, ShardPushResult, ShardStats } from "../src/ingester/rpc";
import type { MetricMetadata } from "../src/proto/types";
import { registerShard } from "../src/storage/blocks";
import { COUNTER, ShardObserver, type Tally } from "../src/observability/shard";
import { countingBucket } from "../src/observability/r2";
import { RowCountingSql } from "../src/observability/rows";
import type { ReasonCount } from "../src/ingester/rpc";

/** Backoff after a failed flush: 2 s doubling to 5 min (alarms would give up after 6 platform retries). */
function backoffMs(failures: number): number {
  return Math.min(2000 * 2 ** Math.max(0, failures - 1), 300_000);
}

export class Ingester extends DurableObject<Env> {
  private head = new Head();
  private wal!: Wal;
  /** Persisted counters, minute history and recent errors (src/observability/shard.ts). */
  private obs!: ShardObserver;
  /** Every statement goes through it: rows written, as billed. */
  private sql!: RowCountingSql;
  private tenant: string | null = null;
  private shard = 0;
  private pushes = 0;
  private flushes = 0;
  private blocksWritten = 0;
  private flushFailures = 0;
  private lastFlushAt: number | null = null;
  private lastFlushError: string | null = null;
  private alarmAt: number | null = null;
  private shutdown = false;
  private registered = false;
  private flushChain: Promise<unknown> = Promise.resolve();
  /** Wall clock; tests replace it to drive the flush rules. */
  clock: () => number = () => Date.now();
  /** The blocks bucket; tests wrap it to inject R2 failures. */
  bucket: R2Bucket;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.bucket = env.BLOCKS;
    // Memory is lost on eviction or restart: rebuild the head from the checkpoint and
    // the WAL before any request is let in.
    ctx.blockConcurrencyWhile(async () => {
      this.replay();
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  private replay(): void {
    this.sql = new RowCountingSql(this.ctx.storage.sql);
    this.wal = new Wal(this.ctx.storage, this.sql);
    // Push counts ride in the WAL rows; the observations row is written at flush
    // checks and inside each checkpoint, covering the WAL up to wal.lastSeq.
    this.obs = new ShardObserver(this.sql, () => this.wal.lastSeq);
    this.wal.onCheckpoint = () => this.obs.persistIfStale();
    const head = this.head;
    let seq = 0;
    const now = this.clock();
    const seriesFor = (id: number) => {
      const s = head.byId[id];
      if (!s) throw new Error(`corrupt WAL: record for unknown series ${id}`);
      return s;
    };
    const visitor: WalVisitor = {
      series: (id, key) => void (head.addSeries(id, key).lastAppendAt = now),
      metadata: (m) => void head.metadata.set(m.metricFamilyName, m),
      sample: (id, t, v) => {
        seriesFor(id).appendAccepted(t, v, head.maxSamplesPerChunk, head.maxChunkAgeMs);
        head.samplesAppended++;
      },
      chunk: (id, mint, maxt, numSamples, data) => void seriesFor(id).closed.push({ mint, maxt, numSamples, data, flushedAt: 0 }),
      last: (id, t, v) => seriesFor(id).restoreLast(t, v),
      observations: (t) => this.obs.replay(t, seq),
    };
    this.wal.replay((rec, at) => {
      seq = at;
      decodeWalRecord(rec, visitor);
    });
    head.bytesEstimate = head.bytes();
    const tenant = this.wal.getKv("tenant");
    if (typeof tenant === "string") {
      this.tenant = tenant;
      this.shard = Number(this.wal.getKv("shard"));
    }
    this.shutdown = this.wal.getKv("shutdown") === 1;
    this.registered = this.wal.getKv("registered") === 1;
  }

  private limits(): Limits {
    return limitsFor(this.env, this.tenant ?? "");
  }

  async push(batch: ShardPush): Promise<ShardPushResult> {
    this.pushes++;
    if (this.shutdown) {
      this.refuse(`shard ${batch.shard} of tenant ${batch.tenant} is shut down (POST /shutdown) and refuses writes until DELETE /shutdown`);
    }
    this.adopt(batch.tenant, batch.shard);
    const limits = this.limits();
    if (this.head.bytesEstimate > limits.maxHeadBytesPerShard) {
      // R2 is failing or flushes lag: refuse (retryable) rather than risk the isolate.
      void this.flush(false).catch(() => {});
      this.refuse(
        `shard ${batch.shard} of tenant ${batch.tenant} holds ${this.head.bytesEstimate} bytes, over the limit of ${limits.maxHeadBytesPerShard} (maxHeadBytesPerShard), until a flush to R2 succeeds`,
      );
    }
    // Synchronous from validation to WAL insert: the output gate holds the reply
    // until SQLite has committed the row, so the ack means durable. The push's
    // counts are in that row (OBSERVATIONS), so they are durable with it.
    const now = this.clock();
    const obs = this.obs;
    const tally = obs.tally();
    const seqBefore = this.wal.lastSeq;
    let result: ShardPushResult;
    try {
      result = appendPush(this.head, this.wal, batch, now, (r, seriesCreated, rec) => {
        tallyPush(tally, batch, r, seriesCreated, now);
        // A push that stores nothing writes no WAL row: its counts get the observations row below.
        if (!rec.empty) rec.observations = obs.encode(tally);
      });
    } catch (e) {
      // The row was written and only applying it failed: replay will count it, so count it now.
      if (this.wal.lastSeq !== seqBefore) this.counted(tally, true);
      this.countFailure(now, `push of ${batch.timestamps.length} samples failed: ${(e as Error).message}`);
      throw e;
    }
    this.counted(tally, this.wal.lastSeq !== seqBefore);
    if (this.alarmAt === null) this.schedule(this.clock() + limits.flushCheckPeriodMs);
    return result;
  }

  /** Counts a push's tally: durable already in its WAL row, or written now as the observations row (one row either way). */
  private counted(tally: Tally, inWalRow: boolean): void {
    this.obs.apply(tally);
    if (inWalRow) this.obs.walWritten();
    else this.obs.commit();
  }

  /** Takes on the tenant and shard of its first write (the Durable Object's name is not readable inside it). */
  private adopt(tenant: string, shard: number): void {
    if (this.tenant !== null) return;
    this.tenant = tenant;
    this.shard = shard;
    this.wal.setKv("tenant", tenant);
    this.wal.setKv("shard", shard);
    // Not awaited: registration is for listing tenants; a failure is retried at flush.
    void this.register().catch(() => {});
  }

  /** Counts a refused push and throws its message (the distributor answers 503: the sender retries). */
  private refuse(message: string): never {
    this.countFailure(this.clock(), message);
    throw new Error(message);
  }

  private countFailure(now: number, message: string): void {
    try {
      this.obs.inc(COUNTER.pushFailures);
      this.obs.error(now, "push", message);
      this.obs.commit();
    } catch {
      // Storage itself is failing: the push's own error says more.
    }
  }

  /**
   * Counts samples the distributor refused when this request sent no batch to any
   * shard (src/observability/distributor.ts): they are counted here, in the
   * tenant's shard 0, so that the count survives the Worker isolate.
   */
  async recordDistributorDiscards(tenant: string, shard: number, discards: ReasonCount[], firstError: string | null): Promise<void> {
    this.adopt(tenant, shard);
    for (const { reason, count } of discards) this.obs.inc(`${COUNTER.distributorDiscarded}/${reason}`, count);
    if (firstError !== null) this.obs.error(this.clock(), "rejected", firstError);
    this.obs.commit();
  }

  async select(req: SelectRequest): Promise<SelectedSeries[]> {
    return selectSeries(this.head, req.matchers, req.mint, req.maxt);
  }

  // The Prometheus API's label, series and metadata lookups (src/ingester/labels.ts).
  async labelNames(req: LabelQuery): Promise<string[]> {
    return headLabelNames(this.head, req);
  }

  async labelValues(req: LabelValuesQuery): Promise<string[]> {
    return headLabelValues(this.head, req);
  }

  async series(req: LabelQuery): Promise<string[][]> {
    return headSeries(this.head, req);
  }

  async metadata(req: MetadataQuery): Promise<MetricMetadata[]> {
    return headMetadata(this.head, req);
  }

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const limits = this.limits();
    try {
      await this.flush(false);
      if (this.head.numSeries > 0) this.schedule(this.clock() + limits.flushCheckPeriodMs);
    } catch {
      // Nothing was trimmed; try again with backoff, under our control.
      this.schedule(this.clock() + backoffMs(this.flushFailures));
    }
  }

  /** Flushes every chunk, open ones included (POST /flush). Resolves when the block is in R2. */
  async flushAll(): Promise<FlushResult | null> {
    return this.flush(true);
  }

  /** Stops writes, flushes everything and releases memory (POST /shutdown). */
  async shutdownShard(): Promise<FlushResult | null> {
    this.shutdown = true;
    this.wal.setKv("shutdown", 1);
    const result = await this.flush(true);
    // Everything is in R2: drop it all from memory (the retain period is waived).
    await this.flush(false, { idlePeriodMs: 0, retainPeriodMs: 0 });
    return result;
  }

  /** Accepts writes again (DELETE /shutdown). */
  async resume(): Promise<void> {
    this.shutdown = false;
    this.wal.setKv("shutdown", null);
  }

  private flush(force: boolean, rulesOverride?: { idlePeriodMs: number; retainPeriodMs: number }): Promise<FlushResult | null> {
    // One flush at a time: an alarm and a /flush wait for each other.
    const run = this.flushChain.then(() => this.flushOnce(force, rulesOverride));
    this.flushChain = run.catch(() => {});
    return run;
  }

  private async flushOnce(force: boolean, rulesOverride?: { idlePeriodMs: number; retainPeriodMs: number }): Promise<FlushResult | null> {
    if (this.tenant === null) return null;
    const limits = this.limits();
    const rules = rulesOverride ?? { idlePeriodMs: limits.idlePeriodMs, retainPeriodMs: limits.retainPeriodMs };
    try {
      await this.register();
      const bucket = countingBucket(this.bucket, this.obs);
      const result = await flushHead({ head: this.head, wal: this.wal, bucket, tenant: this.tenant, shard: this.shard }, rules, this.clock(), force);
      this.flushes++;
      if (result.block) this.blocksWritten++;
      this.flushFailures = 0;
      this.lastFlushAt = this.clock();
      this.lastFlushError = null;
      this.obs.inc(COUNTER.flushes);
      if (result.block) this.obs.inc(COUNTER.blocksFlushed);
      for (const [reason, n] of Object.entries(result.reasons)) this.obs.inc(`${COUNTER.chunksFlushed}/${reason}`, n ?? 0);
      this.obs.inc(COUNTER.seriesRemoved, result.seriesDropped);
      // At most once per flush check (30 s): the observations row catches up with the
      // WAL rows' counts, so that replay re-applies only the newest.
      this.obs.persistIfStale();
      return result;
    } catch (e) {
      this.flushFailures++;
      this.lastFlushError = `${new Date(this.clock()).toISOString()}: ${(e as Error).message}`;
      this.obs.inc(COUNTER.flushFailures);
      this.obs.error(this.clock(), "flush", (e as Error).message);
      this.obs.commit();
      throw e;
    }
  }

  private async register(): Promise<void> {
    if (this.registered || this.tenant === null) return;
    await registerShard(countingBucket(this.bucket, this.obs), this.tenant, this.shard);
    this.registered = true;
    this.wal.setKv("registered", 1);
  }

  private schedule(at: number): void {
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  async stats(): Promise<ShardStats> {
    return {
      tenant: this.tenant,
      shard: this.shard,
      series: this.head.numSeries,
      chunks: this.head.numChunks(),
      samplesAppended: this.head.samplesAppended,
      walRecords: this.wal.records,
      walBytes: this.wal.bytes,
      checkpointBytes: this.wal.checkpointBytes,
      rowsWritten: this.sql.rowsWritten,
      headBytes: this.head.bytesEstimate,
      pushes: this.pushes,
      flushes: this.flushes,
      blocksWritten: this.blocksWritten,
      r2Puts: this.blocksWritten,
      lastFlushAt: this.lastFlushAt,
      lastFlushError: this.lastFlushError,
      nextAlarmAt: this.alarmAt,
      shutdown: this.shutdown,
      observations: this.obs.snapshot(this.clock()),
    };
  }
}

/** What an answered push counts, in the tally its WAL row carries. */
function tallyPush(t: Tally, batch: ShardPush, result: ShardPushResult, seriesCreated: number, now: number): void {
  const received = batch.timestamps.length;
  t.inc(COUNTER.pushes);
  t.inc(COUNTER.samplesReceived, received);
  t.inc(COUNTER.samplesIngested, result.written);
  t.inc(COUNTER.seriesCreated, seriesCreated);
  t.record(now, received);
  for (const { reason, count } of result.rejected) t.inc(`${COUNTER.discarded}/${reason}`, count);
  if (batch.distributorDiscards) for (const { reason, count } of batch.distributorDiscards) t.inc(`${COUNTER.distributorDiscarded}/${reason}`, count);
  if (result.firstError !== null) t.error(now, "rejected", result.firstError);
}
