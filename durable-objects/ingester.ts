// The ingester Durable Object: one per tenant shard. A thin shell that wires the
// object's SQLite storage, alarm and R2 binding to the head (src/ingester/). Every
// entry point runs after the constructor's replay, which blockConcurrencyWhile
// guarantees.

import { DurableObject } from "cloudflare:workers";
import { Head } from "../src/ingester/head";
import { decodeWalRecord, type Wal, type WalVisitor } from "../src/ingester/wal";
import { appendPush } from "../src/ingester/append";
import { selectSeries } from "../src/ingester/read";
import { headLabelNames, headLabelValues, headMetadata, headSeries, type LabelQuery, type LabelValuesQuery, type MetadataQuery } from "../src/ingester/labels";
import { flushHead, type FlushResult } from "../src/ingester/flusher";
import type { SelectRequest, SelectedSeries, ShardPush, ShardPushResult, ShardStats } from "../src/ingester/rpc";
import type { MetricMetadata } from "../src/proto/types";
import { ShardLifecycle } from "../src/ingester/lifecycle";
import { COUNTER, type ShardObserver, type Tally } from "../src/observability/shard";
import type { RowCountingSql } from "../src/observability/rows";
import type { ReasonCount } from "../src/ingester/rpc";

export class Ingester extends DurableObject<Env> {
  private head = new Head();
  private wal!: Wal;
  /** Persisted counters, minute history and recent errors (src/observability/shard.ts). */
  private obs!: ShardObserver;
  /** Every statement goes through it: rows written, as billed. */
  private sql!: RowCountingSql;
  /** Identity, alarm, flushes, /shutdown and push accounting, shared with the log shards. */
  private life!: ShardLifecycle<FlushResult>;
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
      await this.life.loadAlarm();
    });
  }

  /** Whether this shard is listed in R2 (tests wait for it). */
  get registered(): boolean {
    return this.life.registered;
  }

  private replay(): void {
    this.life = new ShardLifecycle(this.ctx, this.env, this, {
      holdsData: () => this.head.numSeries > 0,
      flush: async ({ bucket, tenant, shard, limits, now, force, override }) => {
        const rules = override ?? { idlePeriodMs: limits.idlePeriodMs, retainPeriodMs: limits.retainPeriodMs };
        const result = await flushHead({ head: this.head, wal: this.wal, bucket, tenant, shard }, rules, now, force);
        this.obs.inc(COUNTER.seriesRemoved, result.seriesDropped);
        return result;
      },
    });
    ({ sql: this.sql, wal: this.wal, obs: this.obs } = this.life);
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
  }

  async push(batch: ShardPush): Promise<ShardPushResult> {
    const life = this.life;
    life.pushes++;
    if (life.shutdown) {
      life.refuse(`shard ${batch.shard} of tenant ${batch.tenant} is shut down (POST /shutdown) and refuses writes until DELETE /shutdown`);
    }
    life.checkPlacement(batch.tenant, batch.shard, batch.ringSince);
    life.adopt(batch.tenant, batch.shard);
    const limits = life.limits();
    if (this.head.bytesEstimate > limits.maxHeadBytesPerShard) {
      // R2 is failing or flushes lag: refuse (retryable) rather than risk the isolate.
      void life.flush(false).catch(() => {});
      life.refuse(
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
      if (this.wal.lastSeq !== seqBefore) life.counted(tally, true);
      life.pushFailed(now, `push of ${batch.timestamps.length} samples failed: ${(e as Error).message}`);
      throw e;
    }
    life.counted(tally, this.wal.lastSeq !== seqBefore);
    life.armFlushCheck();
    return result;
  }

  /**
   * Counts samples the distributor refused when this request sent no batch to any
   * shard (src/observability/distributor.ts): they are counted here, in the
   * tenant's shard 0, so that the count survives the Worker isolate.
   */
  async recordDistributorDiscards(tenant: string, shard: number, discards: ReasonCount[], firstError: string | null): Promise<void> {
    this.life.adopt(tenant, shard);
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
    await this.life.alarm();
  }

  /** The tenant DO retires this LEAVING shard when it holds nothing (src/ingester/lifecycle.ts retire). */
  async retire(ringSince: number): Promise<boolean> {
    return this.life.retire(ringSince);
  }

  /** Flushes every chunk, open ones included (POST /flush). Resolves when the block is in R2. */
  async flushAll(): Promise<FlushResult | null> {
    return this.life.flush(true);
  }

  /** Stops writes, flushes everything and releases memory (POST /shutdown). */
  async shutdownShard(): Promise<FlushResult | null> {
    return this.life.shutdownShard();
  }

  /** Accepts writes again (DELETE /shutdown). */
  async resume(): Promise<void> {
    this.life.resume();
  }

  async stats(): Promise<ShardStats> {
    return {
      tenant: this.life.tenant,
      shard: this.life.shard,
      series: this.head.numSeries,
      chunks: this.head.numChunks(),
      samplesAppended: this.head.samplesAppended,
      walRecords: this.wal.records,
      walBytes: this.wal.bytes,
      checkpointBytes: this.wal.checkpointBytes,
      rowsWritten: this.sql.rowsWritten,
      headBytes: this.head.bytesEstimate,
      ...this.life.stats(),
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
