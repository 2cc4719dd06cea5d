// What the Loki HTTP handlers need from the rest of the querier, in one place:
// LogQL (src/querier/logql/) and the log store (src/querier/logs/). The handlers
// call only these, so the API layer has one seam to the engine and the store.
// Every read's start is clamped here to the tenant's retention (retentionPeriodMs,
// src/storage/retention.ts), so no Loki endpoint returns entries past it.

import { utf8Length } from "../../distributor/logs/stream_labels";
import { HttpError } from "../../http/errors";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../../model/concurrency";
import type { FlatLabels } from "../../model/labels";
import type { Direction, LogSelectParams, LogStreamData } from "../../model/logs";
import type { NsTime } from "../../model/logtime";
import type { LabelMatcher } from "../../proto/types";
import { retentionStart } from "../../storage/retention";
import { LogQLParseError, type LogQLExpr } from "../logql/ast";
import { evalLogQL } from "../logql/engine";
import { parseLogQL } from "../logql/parse";
import { LabelsBuilder, labelsString } from "../logql/pipeline/labels";
import { compilePipeline } from "../logql/pipeline/pipeline";
import { LogQLEvalError, type LokiQueryData } from "../logql/result";
import { logChunkFacts, logIndexStats, logLabelNames, logLabelValues, logSeries, selectLogs, type LogIndexQuery, type LogIndexStats, type StreamFacts } from "../logs/select";

export type ParsedQuery =
  /** A stream selector with a pipeline: a streams result. */
  | { kind: "log"; matchers: LabelMatcher[]; expr: LogQLExpr & { kind: "log" } }
  /** A sample expression: matrix, vector or scalar. */
  | { kind: "metric"; matchers: LabelMatcher[]; expr: LogQLExpr };

export interface EvalOptions {
  start: NsTime;
  end: NsTime;
  /** ns; 0 for an instant query. */
  stepNs: number;
  intervalNs: number;
  limit: number;
  direction: Direction;
  maxSeries: number;
  /** Loki's X-Loki-Response-Encoding-Flags: categorize-labels (Grafana sends it). */
  categorizeLabels: boolean;
}

/** Loki's `data` object, JSON-ready: {resultType, result} (the caller adds `stats` when absent). */
export type QueryData = LokiQueryData & { stats?: unknown };

/** A log pipeline as live tail applies it: the entry kept (maybe rewritten, labels maybe extended) or null. */
export type TailPipeline = (labels: FlatLabels, line: string, tsMs: number, tsNs: number, metadata: FlatLabels | null) => { labels: FlatLabels; line: string } | null;

/** Parses LogQL; a bad query is Loki's 400 with the parser's message ("parse error at line 1, col 5: ..."). */
export function parseQuery(query: string): ParsedQuery {
  let expr: LogQLExpr;
  try {
    expr = parseLogQL(query);
  } catch (e) {
    if (e instanceof LogQLParseError) throw new HttpError(400, e.message);
    throw e;
  }
  return expr.kind === "log" ? { kind: "log", matchers: expr.matchers, expr } : { kind: "metric", matchers: [], expr };
}

/** Engine errors a client caused (limits, pipeline errors) keep their status; parse errors are 400s. */
export function clientError(e: unknown): HttpError | null {
  if (e instanceof LogQLEvalError) return new HttpError(e.status, e.message);
  if (e instanceof LogQLParseError) return new HttpError(400, e.message);
  return null;
}

/** What a query read from the store, for the stats Grafana shows (Loki's totalLinesProcessed / totalBytesProcessed). */
export interface Processed {
  lines: number;
  bytes: number;
}

/** Runs a parsed query with the LogQL engine over the tenant's log store (one gate of 6 subrequests per query). */
export async function evalQuery(env: Env, tenant: string, q: ParsedQuery, o: EvalOptions, processed: Processed = { lines: 0, bytes: 0 }): Promise<QueryData> {
  const gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);
  const select = async (asked: LogSelectParams): Promise<LogStreamData[]> => {
    const params = withinRetention(env, tenant, asked);
    if (params === null) return [];
    const streams = await selectLogs(env, tenant, params, gate);
    for (const s of streams) {
      processed.lines += s.lines.length;
      for (const line of s.lines) processed.bytes += utf8Length(line);
    }
    return streams;
  };
  try {
    return await evalLogQL({ select }, q.expr, {
      startMs: o.start.ms,
      startNs: o.start.ns,
      endMs: o.end.ms,
      endNs: o.end.ns,
      stepMs: o.stepNs / 1e6,
      intervalMs: o.intervalNs / 1e6,
      instant: o.stepNs === 0,
      direction: o.direction,
      limit: o.limit,
      maxSeries: o.maxSeries,
      categorizeLabels: o.categorizeLabels,
    });
  } catch (e) {
    throw clientError(e) ?? e;
  }
}

/** The log query's pipeline (src/querier/logql/pipeline/), one entry at a time, for live tail. */
export function tailPipeline(q: ParsedQuery & { kind: "log" }): TailPipeline {
  const pipeline = compilePipeline(q.expr.stages);
  const lb = new LabelsBuilder();
  return (labels, line, tsMs, tsNs, metadata) => {
    if (pipeline.prefilter !== null && !pipeline.prefilter(line)) return null;
    lb.setStream(labels, labelsString(labels));
    lb.reset(metadata);
    const out = pipeline.process(line, lb, tsMs, tsNs);
    return out === null ? null : { labels: lb.labels(), line: out };
  };
}

/**
 * The range with its start raised to the tenant's retention start (Loki's querier
 * clamps to max_query_lookback the same way); null when nothing of [start, end) is left.
 */
export function withinRetention<T extends { startMs: number; startNs: number; endMs: number; endNs: number }>(env: Env, tenant: string, range: T): T | null {
  const from = retentionStart(env, tenant);
  if (range.startMs >= from) return range;
  if (range.endMs < from || (range.endMs === from && range.endNs === 0)) return null; // [start, end) ends before the retention start
  return { ...range, startMs: from, startNs: 0 };
}

function indexQuery(env: Env, tenant: string, matcherSets: LabelMatcher[][], start: NsTime, end: NsTime): LogIndexQuery | null {
  return withinRetention(env, tenant, { matcherSets, startMs: start.ms, startNs: start.ns, endMs: end.ms, endNs: end.ns });
}

export async function labelNames(env: Env, tenant: string, matchers: LabelMatcher[], start: NsTime, end: NsTime): Promise<string[]> {
  const q = indexQuery(env, tenant, matchers.length > 0 ? [matchers] : [], start, end);
  return q === null ? [] : logLabelNames(env, tenant, q);
}

export async function labelValues(env: Env, tenant: string, name: string, matchers: LabelMatcher[], start: NsTime, end: NsTime): Promise<string[]> {
  const q = indexQuery(env, tenant, matchers.length > 0 ? [matchers] : [], start, end);
  return q === null ? [] : logLabelValues(env, tenant, name, q);
}

export async function series(env: Env, tenant: string, groups: LabelMatcher[][], start: NsTime, end: NsTime): Promise<FlatLabels[]> {
  const q = indexQuery(env, tenant, groups, start, end);
  return q === null ? [] : logSeries(env, tenant, q);
}

export async function indexStats(env: Env, tenant: string, matchers: LabelMatcher[], start: NsTime, end: NsTime): Promise<LogIndexStats> {
  const q = indexQuery(env, tenant, [matchers], start, end);
  return q === null ? { streams: 0, chunks: 0, entries: 0, bytes: 0 } : logIndexStats(env, tenant, q);
}

/** The matching streams' chunks (heads and R2) overlapping [start, end), for volumes; none past the retention. */
export async function chunkFacts(env: Env, tenant: string, matcherSets: LabelMatcher[][], start: NsTime, end: NsTime): Promise<StreamFacts[]> {
  const q = indexQuery(env, tenant, matcherSets, start, end);
  return q === null ? [] : logChunkFacts(env, tenant, q);
}

/**
 * The volume API's selector, as Loki's querier reads it (syntax.ParseMatchers with
 * validation): label matchers only, except that "{}" means every stream (null).
 */
export function parseVolumeSelector(query: string): LabelMatcher[] | null {
  if (query === "{}") return null;
  const q = parseQuery(query);
  if (q.kind !== "log" || q.expr.stages.length > 0) throw new HttpError(400, "only label matchers are supported");
  return q.matchers;
}

/** Parses a stream selector alone ({a="b"}), as the series API and label ?query= need. */
export function parseSelector(query: string): LabelMatcher[] {
  const q = parseQuery(query);
  if (q.kind !== "log") throw new HttpError(400, `only stream selectors are accepted here, got a metric query: ${query}`);
  return q.matchers;
}
