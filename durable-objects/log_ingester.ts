// The log ingester Durable Object: one per tenant shard, holding that shard's log
// streams. A thin shell, like durable-objects/ingester.ts: it wires SQLite (the WAL,
// src/ingester/wal.ts), the alarm and R2 to the head in src/ingester/logs/, and
// relays committed pushes to live-tail WebSockets (Hibernation API). Every entry
// point runs after the constructor's replay, which blockConcurrencyWhile guarantees.

import { DurableObject } from "cloudflare:workers";
import type { Wal } from "../src/ingester/wal";
import { LogHead } from "../src/ingester/logs/head";
import { appendLogPush, applyBatch } from "../src/ingester/logs/append";
import { LogWalDecoder } from "../src/ingester/logs/wal";
import { LogChunkBuilder } from "../src/storage/logs/chunk";
import { flushLogHead, type LogFlushResult } from "../src/ingester/logs/flusher";
import { headLogChunkFacts, headLogIndexStats, headLogLabelNames, headLogLabelValues, headLogSeries, selectLogStreams, type HeadStreamChunks } from "../src/ingester/logs/read";
import { TailHub, parseTailMatchers } from "../src/ingester/logs/tail";
import type { LogDiscardCount, LogIndexQuery, LogIndexStats, LogShardPush, LogShardPushResult, LogShardSelect, LogShardStats, SelectedLogStream } from "../src/ingester/logs/rpc";
import type { FlatLabels } from "../src/model/labels";
import type { LogChunkRules } from "../src/ingester/logs/stream";
import { ShardLifecycle } from "../src/ingester/lifecycle";
import { COUNTER, type ShardObserver, type Tally } from "../src/observability/shard";
import type { RowCountingSql } from "../src/observability/rows";

export class LogIngester extends DurableObject<Env> {
  private head = new LogHead();
  private wal!: Wal;
  /** Persisted counters, minute history of lines received and recent errors (src/observability/shard.ts). */
  private obs!: ShardObserver;
  /** Every statement goes through it: rows written, as billed. */
  private sql!: RowCountingSql;
  private tails: TailHub;
  /** Identity, alarm, flushes, /shutdown and push accounting, shared with the metrics shards. */
  private life!: ShardLifecycle<LogFlushResult>;
  private lastFlush: LogFlushResult | null = null;
  /** Wall clock; tests replace it to drive the flush rules. */
  clock: () => number = () => Date.now();
  /** The blocks bucket; tests wrap it to inject R2 failures. */
  bucket: R2Bucket;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.bucket = env.BLOCKS;
    this.tails = new TailHub(ctx);
    // Memory is lost on eviction or restart: rebuild the head from the checkpoint
    // and the WAL before any request (or WebSocket event) is let in.
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
      holdsData: () => this.head.numStreams > 0,
      flush: async ({ bucket, tenant, shard, limits, now, force, override }) => {
        const rules = { idlePeriodMs: limits.idlePeriodMs, maxChunkAgeMs: this.head.rules.maxChunkAgeMs, retainPeriodMs: limits.retainPeriodMs, ...override };
        const result = await flushLogHead({ head: this.head, wal: this.wal, bucket, tenant, shard }, rules, now, force);
        this.lastFlush = result;
        return result;
      },
    });
    ({ sql: this.sql, wal: this.wal, obs: this.obs } = this.life);
    let seq = 0;
    const head = this.head;
    const rules = this.wal.getKv("chunk_rules");
    if (typeof rules === "string") head.rules = JSON.parse(rules) as LogChunkRules;
    const now = this.clock();
    const decoder = new LogWalDecoder({
      batch: (batch) => void applyBatch(head, batch, now),
      stream: (cp) => {
        const s = head.getOrCreate(cp.labels);
        s.lastAppendAt = now;
        for (const c of cp.chunks) {
          if (!c.open) s.restoreClosed(c.data.slice(), c.reason, c.bytes);
          // The open chunk's snapshot becomes the open chunk again (its raw head block re-appended).
          else s.open = LogChunkBuilder.fromBytes(c.data, { blockSize: head.rules.blockSize }, c.bytes);
        }
        if (cp.hasLast) {
          s.hasLast = true;
          s.lastMs = cp.lastMs;
          s.lastNs = cp.lastNs;
          s.lastLine = cp.lastLine.slice();
          s.highMs = cp.highMs;
          s.highNs = cp.highNs;
        }
      },
      observations: (t) => this.obs.replay(t, seq),
    });
    this.wal.replay((rec, at) => {
      seq = at;
      decoder.record(rec);
    });
    decoder.end();
    head.bytesEstimate = head.bytes();
  }

  /**
   * Stores one push's streams for this shard. Resolves once the WAL row is
   * committed (an ack means durable); throws (the distributor answers 503,
   * retryable) when the shard is shut down, over maxHeadBytesPerShard, or SQLite fails.
   */
  async pushLogs(push: LogShardPush): Promise<LogShardPushResult> {
    const life = this.life;
    life.pushes++;
    if (life.shutdown) {
      life.refuse(`log shard ${push.shard} of tenant ${push.tenant} is shut down (POST /shutdown) and refuses writes until DELETE /shutdown`);
    }
    life.checkPlacement(push.tenant, push.shard, push.ringSince);
    life.adopt(push.tenant, push.shard);
    const limits = push.limits;
    if (this.head.bytesEstimate > limits.maxHeadBytesPerShard) {
      // R2 is failing or flushes lag: refuse (retryable) rather than risk the isolate.
      void life.flush(false).catch(() => {});
      life.refuse(
        `log shard ${push.shard} of tenant ${push.tenant} holds ${this.head.bytesEstimate} bytes, over the limit of ${limits.maxHeadBytesPerShard} (maxHeadBytesPerShard), until a flush to R2 succeeds; retry later`,
      );
    }
    const r = this.head.rules;
    if (r.blockSize !== limits.chunkBlockSize || r.targetSize !== limits.chunkTargetSize || r.maxChunkAgeMs !== limits.maxChunkAgeMs) {
      // Kept durable so that a replay cuts chunks by the tenant's rules, not the defaults.
      this.head.rules = { blockSize: limits.chunkBlockSize, targetSize: limits.chunkTargetSize, maxChunkAgeMs: limits.maxChunkAgeMs };
      this.wal.setKv("chunk_rules", JSON.stringify(this.head.rules));
    }
    // Synchronous from validation to the WAL insert, the head and the counters: the
    // output gate holds the reply until SQLite has committed the row, so an acked
    // line is stored and counted exactly once. The push's counts are in that row.
    const now = this.clock();
    const obs = this.obs;
    const tally = obs.tally();
    const seqBefore = this.wal.lastSeq;
    let outcome: ReturnType<typeof appendLogPush>;
    try {
      outcome = appendLogPush(this.head, this.wal, push, now, (r, entries, bytes) => {
        tallyPush(tally, push, r, entries, bytes, now);
        return obs.encode(tally);
      });
    } catch (e) {
      // The row was written and only applying it failed: replay will count it, so count it now.
      if (this.wal.lastSeq !== seqBefore) life.counted(tally, true);
      life.pushFailed(now, `push of a ${push.batch.length}-byte log batch failed: ${(e as Error).message}`);
      throw e;
    }
    const { result, committed } = outcome;
    // A push that stored nothing wrote no WAL row: its counts get the observations row (still one row).
    life.counted(tally, this.wal.lastSeq !== seqBefore);
    if (committed !== null) {
      life.armFlushCheck();
      this.tails.publish(committed, (labels) => this.streamFlat(labels));
    }
    return result;
  }

  /**
   * Counts entries the distributor refused when the request sent no batch to any
   * shard (src/observability/distributor.ts): here, in the tenant's shard 0, so
   * that the count survives the Worker isolate.
   */
  async recordDistributorDiscards(tenant: string, shard: number, discards: LogDiscardCount[], firstError: string | null): Promise<void> {
    this.life.adopt(tenant, shard);
    const tally = this.obs.tally();
    countDistributorDiscards(tally, discards);
    if (firstError !== null) tally.error(this.clock(), "rejected", firstError);
    this.obs.apply(tally);
    this.obs.commit();
  }

  private streamFlat(labels: string): FlatLabels | null {
    return this.head.byKey.get(labels)?.flat ?? null;
  }

  /** Streams matching, with their unflushed chunks overlapping [start, end) (bytes; the Worker decodes). */
  async selectLogs(params: LogShardSelect): Promise<SelectedLogStream[]> {
    return selectLogStreams(this.head, params.matchers, params);
  }

  async labels(q: LogIndexQuery): Promise<string[]> {
    return headLogLabelNames(this.head, q);
  }

  async labelValues(name: string, q: LogIndexQuery): Promise<string[]> {
    return headLogLabelValues(this.head, name, q);
  }

  async series(q: LogIndexQuery): Promise<FlatLabels[]> {
    return headLogSeries(this.head, q);
  }

  /** /index/stats over the head's unflushed chunks; `streamLabels` lets the querier count streams once across shards and R2. */
  async indexStats(q: LogIndexQuery): Promise<LogIndexStats & { streamLabels: string[] }> {
    return headLogIndexStats(this.head, q);
  }

  /** The matching streams' unflushed chunks in the range (entries, uncompressed bytes, times), for /index/volume. */
  async chunkFacts(q: LogIndexQuery): Promise<HeadStreamChunks[]> {
    return headLogChunkFacts(this.head, q);
  }

  /** Live tail: `Upgrade: websocket` with ?matchers=<JSON LabelMatcher[]>. */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("this endpoint requires a websocket (Upgrade: websocket)\n", { status: 426, headers: { Upgrade: "websocket" } });
    }
    let matchers;
    try {
      matchers = parseTailMatchers(new URL(request.url).searchParams.get("matchers"));
    } catch (e) {
      return new Response(`${(e as Error).message}\n`, { status: 400 });
    }
    return this.tails.accept(matchers);
  }

  override async webSocketMessage(_ws: WebSocket, _message: string | ArrayBuffer): Promise<void> {
    // Loki's tail protocol sends nothing from the client; messages are ignored.
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.tails.closed(ws, code, reason);
  }

  override async webSocketError(ws: WebSocket, _error: unknown): Promise<void> {
    this.tails.closed(ws, 1011, "tail error");
  }

  override async alarm(): Promise<void> {
    await this.life.alarm();
  }

  /** The tenant DO retires this LEAVING shard when it holds nothing (src/ingester/lifecycle.ts retire). */
  async retire(ringSince: number): Promise<boolean> {
    return this.life.retire(ringSince);
  }

  /** Flushes every chunk, open ones included (POST /flush). Resolves when the block is in R2. */
  async flushAll(): Promise<LogFlushResult | null> {
    return this.life.flush(true);
  }

  /** Stops writes, flushes everything and releases memory (POST /shutdown). */
  async shutdownShard(): Promise<LogFlushResult | null> {
    return this.life.shutdownShard();
  }

  /** Accepts writes again (DELETE /shutdown). */
  async resume(): Promise<void> {
    this.life.resume();
  }

  async stats(): Promise<LogShardStats> {
    return {
      streams: this.head.numStreams,
      chunks: this.head.numChunks(),
      entriesAppended: this.head.entriesAppended,
      duplicates: this.head.duplicates,
      rejected: this.head.rejected,
      headBytes: this.head.bytesEstimate,
      walRecords: this.wal.records,
      walBytes: this.wal.bytes,
      checkpointBytes: this.wal.checkpointBytes,
      rowsWritten: this.sql.rowsWritten,
      ...this.life.stats(),
      lastFlush: this.lastFlush && { key: this.lastFlush.key, chunks: this.lastFlush.chunks, entries: this.lastFlush.entries, reasons: this.lastFlush.reasons },
      tailers: this.ctx.getWebSockets().length,
      observations: this.obs.snapshot(this.clock()),
    };
  }
}

/**
 * What an answered push counts, in the tally its WAL row carries. Lines received are
 * the batch's (what passed the distributor's validation), as Loki's distributor counts
 * loki_distributor_lines_received_total; those this shard then refuses are counted
 * again as discarded, as Loki's ingester does.
 */
function tallyPush(t: Tally, push: LogShardPush, result: LogShardPushResult, entries: number, bytes: number, now: number): void {
  t.inc(COUNTER.pushes);
  t.inc(COUNTER.linesReceived, entries);
  t.inc(COUNTER.bytesReceived, bytes);
  t.record(now, entries);
  for (const { reason, count, bytes: b } of result.rejected) {
    t.inc(`${COUNTER.discardedLines}/${reason}`, count);
    t.inc(`${COUNTER.discardedBytes}/${reason}`, b);
  }
  if (push.distributorDiscards) countDistributorDiscards(t, push.distributorDiscards);
  const firstError = push.distributorError ?? result.firstError;
  if (firstError !== null) t.error(now, "rejected", firstError);
}

function countDistributorDiscards(t: Tally, discards: LogDiscardCount[]): void {
  for (const { reason, count, bytes } of discards) {
    t.inc(`${COUNTER.distributorDiscardedLines}/${reason}`, count);
    t.inc(`${COUNTER.distributorDiscardedBytes}/${reason}`, bytes);
  }
}
