// The ingester Durable Object: one per tenant shard. A thin shell that wires the
// object's SQLite storage and RPC to the head (src/ingester/). Every entry point
// runs after the constructor's replay, which blockConcurrencyWhile guarantees.

import { DurableObject } from "cloudflare:workers";
import { Head } from "../src/ingester/head";
import { Wal, decodeWalRecord } from "../src/ingester/wal";
import { appendPush } from "../src/ingester/append";
import { selectSeries } from "../src/ingester/read";
import type { SelectRequest, SelectedSeries, ShardPush, ShardPushResult, ShardStats } from "../src/ingester/rpc";

export class Ingester extends DurableObject<Env> {
  private head = new Head();
  private wal!: Wal;
  private pushes = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Memory is lost on eviction or restart: rebuild the head from the WAL before
    // any request is let in.
    ctx.blockConcurrencyWhile(async () => this.replay());
  }

  private replay(): void {
    this.wal = new Wal(this.ctx.storage.sql);
    const head = this.head;
    const visitor = {
      series: (id: number, key: string) => void head.addSeries(id, key),
      metadata: (m: Parameters<typeof head.metadata.set>[1]) => void head.metadata.set(m.metricFamilyName, m),
      sample: (id: number, t: number, v: number) => {
        const s = head.byId[id];
        if (!s) throw new Error(`corrupt WAL: sample for unknown series ${id}`);
        s.appendAccepted(t, v, head.maxSamplesPerChunk, head.maxChunkAgeMs);
        head.samplesAppended++;
      },
    };
    this.wal.replay((rec) => decodeWalRecord(rec, visitor));
  }

  async push(batch: ShardPush): Promise<ShardPushResult> {
    this.pushes++;
    // Synchronous from validation to WAL insert: the output gate holds the reply
    // until SQLite has committed the row, so the ack means durable.
    return appendPush(this.head, this.wal, batch);
  }

  async select(req: SelectRequest): Promise<SelectedSeries[]> {
    return selectSeries(this.head, req.matchers, req.mint, req.maxt);
  }

  async stats(): Promise<ShardStats> {
    return {
      series: this.head.numSeries,
      chunks: this.head.numChunks(),
      samplesAppended: this.head.samplesAppended,
      walRecords: this.wal.records,
      walBytes: this.wal.bytes,
      pushes: this.pushes,
    };
  }
}
