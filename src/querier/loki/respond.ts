// The Loki HTTP API's JSON (pkg/util/marshal, pkg/loghttp): the
// {"status":"success","data":...} envelope, streams as {"stream":{labels},
// "values":[["<unix ns>","<line>"],...]}, the tail message, label lists and the
// stats block Grafana reads. Errors are not JSON: Loki answers them as text/plain
// (serverutil.WriteError -> http.Error), which HttpError + toResponse already do.

import type { FlatLabels } from "../../model/labels";
import { formatNs } from "../../model/logtime";
import type { Direction, LogStreamData } from "../../model/logs";
import { jsonString, labelsJson } from "../api/respond";

const JSON_HEADERS = { "Content-Type": "application/json; charset=utf-8" };

export function jsonResponse(body: string, status = 200): Response {
  return new Response(body, { status, headers: JSON_HEADERS });
}

/** {"status":"success","data":<dataJson>} */
export function successResponse(dataJson: string): Response {
  return jsonResponse(`{"status":"success","data":${dataJson}}`);
}

/**
 * Label names or values. Loki marshals `data` with omitempty (an empty list leaves it
 * out); we write [] instead, which every Loki client reads the same way and which
 * spares clients that index `data` unconditionally.
 */
export function stringListResponse(values: readonly string[]): Response {
  return successResponse("[" + values.map(jsonString).join(",") + "]");
}

/** The series API: a list of label sets. */
export function seriesResponse(series: readonly FlatLabels[]): Response {
  return successResponse("[" + series.map(labelsJson).join(",") + "]");
}

/**
 * The "stats" of a query result. Loki returns a full stats.Result; Grafana's data
 * source only reads the numbers it finds (summary.* and the querier/ingester
 * sections), so the summary carries what we know and the rest is zero.
 */
export function statsJson(s: { entriesReturned: number; linesProcessed: number; bytesProcessed: number; execTimeS: number }): string {
  const perSecond = (n: number): number => (s.execTimeS > 0 ? Math.round(n / s.execTimeS) : 0);
  const summary = {
    bytesProcessedPerSecond: perSecond(s.bytesProcessed),
    linesProcessedPerSecond: perSecond(s.linesProcessed),
    totalBytesProcessed: s.bytesProcessed,
    totalLinesProcessed: s.linesProcessed,
    execTime: s.execTimeS,
    queueTime: 0,
    subqueries: 0,
    totalEntriesReturned: s.entriesReturned,
    splits: 0,
    shards: 0,
    totalPostFilterLines: s.entriesReturned,
    totalStructuredMetadataBytesProcessed: 0,
  };
  const store = {
    totalChunksRef: 0,
    totalChunksDownloaded: 0,
    chunksDownloadTime: 0,
    queryReferencedStructuredMetadata: false,
    chunk: {
      headChunkBytes: 0,
      headChunkLines: 0,
      decompressedBytes: 0,
      decompressedLines: 0,
      compressedBytes: 0,
      totalDuplicates: 0,
      postFilterLines: 0,
      headChunkStructuredMetadataBytes: 0,
      decompressedStructuredMetadataBytes: 0,
    },
  };
  return JSON.stringify({
    summary,
    querier: { store },
    ingester: { totalReached: 0, totalChunksMatched: 0, totalBatches: 0, totalLinesSent: 0, store },
  });
}

/** One stream as Loki writes it: entries in the given direction, at most `limit` of them (Infinity: all). */
export function streamJson(labels: FlatLabels, s: LogStreamData, from: number, to: number): string {
  let out = `{"stream":${labelsJson(labels)},"values":[`;
  const step = from <= to ? 1 : -1;
  let first = true;
  for (let i = from; step > 0 ? i <= to : i >= to; i += step) {
    if (!first) out += ",";
    first = false;
    out += `["${formatNs(s.tsMs[i], s.tsNs[i])}",${jsonString(s.lines[i])}]`;
  }
  return out + "]}";
}

/** Streams of selected data in a direction, every entry of each (the caller has already applied the limit). */
export function streamsJson(streams: readonly LogStreamData[], direction: Direction): string {
  const parts: string[] = [];
  for (const s of streams) {
    const n = s.lines.length;
    if (n === 0) continue;
    parts.push(direction === "forward" ? streamJson(s.flat, s, 0, n - 1) : streamJson(s.flat, s, n - 1, 0));
  }
  return "[" + parts.join(",") + "]";
}

/** A live-tail message (Loki's TailResponse): streams, and dropped entries (null: none dropped). */
export function tailMessage(streamsArrayJson: string): string {
  return `{"streams":${streamsArrayJson},"dropped_entries":null}`;
}

/** The index stats answer: a bare object, not an envelope, as Loki's IndexStatsResponse marshals. */
export function indexStatsResponse(s: { streams: number; chunks: number; entries: number; bytes: number }): Response {
  return jsonResponse(`{"streams":${s.streams},"chunks":${s.chunks},"bytes":${s.bytes},"entries":${s.entries}}`);
}
