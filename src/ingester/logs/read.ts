// Reading a log shard's head: streams by matchers over a time range [start, end),
// and the index lookups of Loki's API (label names, values, series, index stats and
// the chunk facts volumes are computed from).
// Candidates come from the postings (never a scan when a matcher needs its label
// present); every candidate is checked against all matchers.

import { compareLabels, getLabel, type FlatLabels } from "../../model/labels";
import { cmpNs } from "../../model/logtime";
import { compileMatcher, matchesAll, type CompiledMatcher } from "../../model/matchers";
import type { LabelMatcher } from "../../proto/types";
import { factorOfTime } from "../../storage/logs/chunk_stats";
import { candidates } from "../read";
import type { LogHead } from "./head";
import type { LogIndexQuery, LogIndexStats, SelectedLogStream } from "./rpc";
import type { ClosedLogChunk, LogStream } from "./stream";

interface Range {
  startMs: number;
  startNs: number;
  endMs: number;
  endNs: number;
}

/** Whether [minT, maxT] (inclusive) meets [start, end). */
function overlaps(minMs: number, minNs: number, maxMs: number, maxNs: number, r: Range): boolean {
  return cmpNs(maxMs, maxNs, r.startMs, r.startNs) >= 0 && cmpNs(minMs, minNs, r.endMs, r.endNs) < 0;
}

/**
 * The matching streams' chunks overlapping the range: closed ones not yet flushed
 * and a snapshot of the open one. A chunk marked flushed is in a block R2
 * confirmed before the mark, and the querier lists R2 only after every shard
 * answered, so that block is always read: sending the retained copy too would
 * only cost a copy and a de-duplication.
 */
export function selectLogStreams(head: LogHead, matchers: LabelMatcher[], r: Range): SelectedLogStream[] {
  const compiled = matchers.map(compileMatcher);
  const out: SelectedLogStream[] = [];
  for (const s of candidates(head, compiled)) {
    if (!matchesAll(compiled, s.flat)) continue;
    const chunks: Uint8Array[] = [];
    for (const c of s.closed) if (c.flushedAt === 0 && overlaps(c.minMs, c.minNs, c.maxMs, c.maxNs, r)) chunks.push(c.data);
    const open = s.open;
    if (open !== null && open.entries > 0 && overlaps(open.minMs, open.minNs, open.maxMs, open.maxNs, r)) chunks.push(open.snapshot());
    if (chunks.length > 0) out.push({ labels: s.labels, chunks });
  }
  return out;
}

/** Whether the stream holds a chunk overlapping the range (flushed and retained ones included). */
function hasDataIn(s: LogStream, r: Range): boolean {
  for (const c of s.closed) if (overlaps(c.minMs, c.minNs, c.maxMs, c.maxNs, r)) return true;
  const open = s.open;
  return open !== null && open.entries > 0 && overlaps(open.minMs, open.minNs, open.maxMs, open.maxNs, r);
}

/** Calls fn once per stream matching any set (every stream when there are none) with data in the range. */
function forEachMatching(head: LogHead, q: LogIndexQuery, fn: (s: LogStream) => void): void {
  const sets: CompiledMatcher[][] = q.matcherSets.length > 0 ? q.matcherSets.map((set) => set.map(compileMatcher)) : [[]];
  const seen = sets.length > 1 ? new Set<number>() : null;
  for (const set of sets) {
    for (const s of candidates(head, set)) {
      if (seen?.has(s.id)) continue;
      if (!matchesAll(set, s.flat) || !hasDataIn(s, q)) continue;
      seen?.add(s.id);
      fn(s);
    }
  }
}

/** Label names of the streams with data in the range, sorted. */
export function headLogLabelNames(head: LogHead, q: LogIndexQuery): string[] {
  const names = new Set<string>();
  forEachMatching(head, q, (s) => {
    for (let i = 0; i < s.flat.length; i += 2) names.add(s.flat[i]);
  });
  return [...names].sort();
}

export function headLogLabelValues(head: LogHead, name: string, q: LogIndexQuery): string[] {
  const values = new Set<string>();
  forEachMatching(head, q, (s) => {
    const v = getLabel(s.flat, name);
    if (v !== "") values.add(v);
  });
  return [...values].sort();
}

/** Label sets of the matching streams, sorted. */
export function headLogSeries(head: LogHead, q: LogIndexQuery): FlatLabels[] {
  const out: FlatLabels[] = [];
  forEachMatching(head, q, (s) => out.push(s.flat));
  return out.sort(compareLabels);
}

/** One unflushed chunk as index statistics and volumes count it: a closed chunk's facts (bytes: uncompressed line + metadata, Loki's UncompressedSize). */
export type HeadChunkFacts = Pick<ClosedLogChunk, "minMs" | "minNs" | "maxMs" | "maxNs" | "entries" | "bytes">;

/** A matching stream's unflushed chunks overlapping the range (canonical label string). */
export interface HeadStreamChunks {
  labels: string;
  chunks: HeadChunkFacts[];
}

/**
 * The unflushed chunks (closed ones not yet in R2, and the open one) of every
 * stream matching the query that overlap its range, as Loki's ingester GetStats and
 * GetVolume walk them. Flushed chunks are left to R2, so the querier's sum counts
 * each chunk once.
 */
export function headLogChunkFacts(head: LogHead, q: LogIndexQuery): HeadStreamChunks[] {
  const out: HeadStreamChunks[] = [];
  forEachMatching(head, q, (s) => {
    const chunks: HeadChunkFacts[] = [];
    for (const c of s.closed) {
      if (c.flushedAt !== 0 || !overlaps(c.minMs, c.minNs, c.maxMs, c.maxNs, q)) continue;
      chunks.push({ minMs: c.minMs, minNs: c.minNs, maxMs: c.maxMs, maxNs: c.maxNs, entries: c.entries, bytes: c.bytes });
    }
    const open = s.open;
    if (open !== null && open.entries > 0 && overlaps(open.minMs, open.minNs, open.maxMs, open.maxNs, q)) {
      chunks.push({ minMs: open.minMs, minNs: open.minNs, maxMs: open.maxMs, maxNs: open.maxNs, entries: open.entries, bytes: open.uncompressedBytes });
    }
    if (chunks.length > 0) out.push({ labels: s.labels, chunks });
  });
  return out;
}

/**
 * Loki's /index/stats over the head (ingester instance.getStats): streams with
 * unflushed chunks in the range; per chunk, its entries and UNCOMPRESSED bytes scaled
 * by the share of its time span the range covers (util.GetFactorOfTime), truncated.
 */
export function headLogIndexStats(head: LogHead, q: LogIndexQuery): LogIndexStats & { streamLabels: string[] } {
  const stats = { streams: 0, chunks: 0, entries: 0, bytes: 0, streamLabels: [] as string[] };
  const from = { ms: q.startMs, ns: q.startNs };
  const through = { ms: q.endMs, ns: q.endNs };
  for (const s of headLogChunkFacts(head, q)) {
    stats.streams++;
    stats.streamLabels.push(s.labels);
    for (const c of s.chunks) {
      const f = factorOfTime(from, through, { ms: c.minMs, ns: c.minNs }, { ms: c.maxMs, ns: c.maxNs });
      stats.chunks++;
      stats.entries += Math.floor(f * c.entries);
      stats.bytes += Math.floor(f * c.bytes);
    }
  }
  return stats;
}
