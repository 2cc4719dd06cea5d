// Merging one stream's entries from several places (ingester head snapshots,
// flushed chunks in R2 blocks) into the query's LogStreamData: sorted by
// (time, line) with exact duplicates (same time and line) removed. During a
// flush the same entry can sit in a head snapshot and in an R2 block, and a line
// is never returned twice (Loki's querier de-duplicates the same way across
// ingesters and the store: pkg/iter's heap iterator drops equal entries).

import type { FlatLabels } from "../../model/labels";
import type { LogStreamData } from "../../model/logs";
import { EntryColumns, readLogChunk } from "./chunk";

/** One stream's chunks from one source. */
export interface StreamChunks {
  /** Canonical label string ({a="b", c="d"}): streams are grouped by it. */
  labels: string;
  flat: FlatLabels;
  chunks: readonly Uint8Array[];
}

/** Per-stream collection: labels plus entries as columns. */
class StreamAcc {
  readonly cols = new EntryColumns();
  constructor(
    readonly labels: string,
    readonly flat: FlatLabels,
  ) {}

  toData(): LogStreamData | null {
    const c = this.cols;
    const order = c.order();
    const n = order.length;
    if (n === 0) return null;
    const tsMs = new Float64Array(n);
    const tsNs = new Uint32Array(n);
    const lines = new Array<string>(n);
    const metadata: (FlatLabels | null)[] | null = c.anyMeta ? new Array<FlatLabels | null>(n) : null;
    for (let j = 0; j < n; j++) {
      const i = order[j];
      tsMs[j] = c.ms[i];
      tsNs[j] = c.ns[i];
      lines[j] = c.lines[i];
      if (metadata) metadata[j] = c.meta[i];
    }
    return { labels: this.labels, flat: this.flat, tsMs, tsNs, lines, metadata };
  }
}

function byLabels(a: LogStreamData, b: LogStreamData): number {
  return a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0;
}

/**
 * Decodes the entries within [start, end) of every stream's chunks, merging the
 * streams that share a label string. Streams left without entries are dropped;
 * the rest come sorted by label string. Throws CorruptDataError on a bad chunk.
 */
export function streamsFromChunks(
  streams: Iterable<StreamChunks>,
  startMs: number,
  startNs: number,
  endMs: number,
  endNs: number,
): LogStreamData[] {
  const acc = new Map<string, StreamAcc>();
  for (const s of streams) {
    let a = acc.get(s.labels);
    if (!a) acc.set(s.labels, (a = new StreamAcc(s.labels, s.flat)));
    for (const c of s.chunks) readLogChunk(c, startMs, startNs, endMs, endNs, a.cols);
  }
  return finish(acc);
}

/**
 * Merges already decoded results (e.g. from ingester shards and from R2) into one
 * LogStreamData per label string, each sorted by (time, line) without exact duplicates.
 */
export function mergeLogStreamData(parts: Iterable<LogStreamData>): LogStreamData[] {
  const acc = new Map<string, StreamAcc>();
  for (const p of parts) {
    let a = acc.get(p.labels);
    if (!a) acc.set(p.labels, (a = new StreamAcc(p.labels, p.flat)));
    const cols = a.cols;
    const meta = p.metadata;
    for (let i = 0; i < p.lines.length; i++) cols.entry(p.tsMs[i], p.tsNs[i], p.lines[i], meta ? meta[i] : null);
  }
  return finish(acc);
}

function finish(acc: Map<string, StreamAcc>): LogStreamData[] {
  const out: LogStreamData[] = [];
  for (const a of acc.values()) {
    const d = a.toData();
    if (d) out.push(d);
  }
  return out.sort(byLabels);
}
