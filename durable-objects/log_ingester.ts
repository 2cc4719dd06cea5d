// The log ingester Durable Object: one per tenant shard, holding that shard's log
// streams. (Being built: see src/ingester/logs/.)

import { DurableObject } from "cloudflare:workers";
import type { LogShardPush, LogShardPushResult } from "../src/ingester/logs/rpc";

export class LogIngester extends DurableObject<Env> {
  async pushLogs(_push: LogShardPush): Promise<LogShardPushResult> {
    throw new Error("log ingester not built yet");
  }
}
