// Shared by the log ingester tests: build shard pushes with the real batch writer,
// call the LogIngester Durable Object over RPC, decode what it returns with the
// real chunk reader.

import { env } from "cloudflare:test";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { logShardStub } from "../../src/distributor/shards";
import { LogBatchWriter } from "../../src/ingester/logs/batch";
import { parseStreamLabels } from "../../src/ingester/logs/labels";
import type { LogShardLimits, LogShardPushResult } from "../../src/ingester/logs/rpc";
import type { LogStreamData } from "../../src/model/logs";
import { MatchType, type LabelMatcher } from "../../src/proto/types";
import { streamsFromChunks } from "../../src/storage/logs/merge";

export const MIN = 60_000;
export const HOUR = 60 * MIN;
/** A fixed wall-clock origin for entries (the shard does not check ages; the distributor does). */
export const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);

/** [ms, ns, line] or [ms, ns, line, structured metadata]. */
export type Entry = [number, number, string] | [number, number, string, string[]];
export type Streams = [labels: string, entries: Entry[]][];

export function shardLimits(over: Partial<LogShardLimits> = {}): LogShardLimits {
  return {
    outOfOrderWindowMs: DEFAULT_LIMITS.maxChunkAgeMs / 2,
    chunkBlockSize: DEFAULT_LIMITS.logChunkBlockSize,
    chunkTargetSize: DEFAULT_LIMITS.logChunkTargetSize,
    maxChunkAgeMs: DEFAULT_LIMITS.maxChunkAgeMs,
    idlePeriodMs: DEFAULT_LIMITS.idlePeriodMs,
    retainPeriodMs: DEFAULT_LIMITS.retainPeriodMs,
    maxHeadBytesPerShard: DEFAULT_LIMITS.maxHeadBytesPerShard,
    maxStreamsPerShard: 0,
    ...over,
  };
}

export function batchOf(streams: Streams): Uint8Array {
  const w = new LogBatchWriter();
  for (const [labels, entries] of streams) {
    w.beginStream(labels);
    for (const e of entries) w.entry(e[0], e[1], e[2], e[3] ?? null);
  }
  return w.finish();
}

export function stub(tenant: string, shard = 0) {
  return logShardStub(env, tenant, shard);
}

export async function push(tenant: string, streams: Streams, limits: Partial<LogShardLimits> = {}, shard = 0): Promise<LogShardPushResult> {
  return stub(tenant, shard).pushLogs({ tenant, shard, batch: batchOf(streams), limits: shardLimits(limits) });
}

export const ALL: [number, number, number, number] = [-8.64e15, 0, 8.64e15, 0];

export function eq(name: string, value: string): LabelMatcher {
  return { type: MatchType.EQ, name, value };
}
export function re(name: string, value: string): LabelMatcher {
  return { type: MatchType.RE, name, value };
}

/** A shard's head, decoded: labels -> entries in (time, line) order. */
export async function readShard(tenant: string, matchers: LabelMatcher[], range = ALL, shard = 0): Promise<Map<string, Entry[]>> {
  const [startMs, startNs, endMs, endNs] = range;
  const sel = await stub(tenant, shard).selectLogs({ tenant, shard, matchers, startMs, startNs, endMs, endNs });
  return asMap(streamsFromChunks(sel.map((s) => ({ labels: s.labels, flat: parseStreamLabels(s.labels), chunks: s.chunks })), startMs, startNs, endMs, endNs));
}

export function asMap(data: LogStreamData[]): Map<string, Entry[]> {
  const m = new Map<string, Entry[]>();
  for (const d of data) {
    const entries: Entry[] = [];
    for (let i = 0; i < d.lines.length; i++) {
      const meta = d.metadata?.[i];
      entries.push(meta ? [d.tsMs[i], d.tsNs[i], d.lines[i], meta] : [d.tsMs[i], d.tsNs[i], d.lines[i]]);
    }
    m.set(d.labels, entries);
  }
  return m;
}

/** What a read should return for pushed streams: per stream, sorted by (time, line), exact repeats once. */
export function expected(streams: Streams): Map<string, Entry[]> {
  const m = new Map<string, Entry[]>();
  for (const [labels, entries] of streams) m.set(labels, [...(m.get(labels) ?? []), ...entries]);
  for (const [labels, entries] of m) {
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0));
    m.set(labels, entries.filter((e, i) => i === 0 || e[0] !== entries[i - 1][0] || e[1] !== entries[i - 1][1] || e[2] !== entries[i - 1][2]));
  }
  return new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
