// What the Loki HTTP handlers need from the rest of the querier, in one place:
// LogQL (src/querier/logql/) and the log store (src/querier/logs/). The handlers
// call only these, so the API layer has one seam to the engine and the store.

import { HttpError } from "../../http/errors";
import type { FlatLabels } from "../../model/labels";
import type { NsTime } from "../../model/logtime";
import type { Direction, LogStreamData } from "../../model/logs";
import type { LabelMatcher } from "../../proto/types";
import { LogQLParseError, type LogExpr, type LogQLExpr } from "../logql/ast";
import { parseLogQL } from "../logql/parse";
import { LabelsBuilder, labelsString } from "../logql/pipeline/labels";
import { compilePipeline } from "../logql/pipeline/pipeline";
import { LogQLEvalError } from "../logql/result";

export interface ParsedQuery {
  /** "log": a stream selector with a pipeline (streams result); "metric": a sample expression. */
  kind: "log" | "metric";
  /** The stream matchers of a log query's selector (empty for metric queries). */
  matchers: LabelMatcher[];
  /** The engine's own parsed form, handed back to it. */
  expr: unknown;
}

export interface EvalOptions {
  start: NsTime;
  end: NsTime;
  /** ns; 0 for an instant query. */
  stepNs: number;
  intervalNs: number;
  limit: number;
  direction: Direction;
  maxSeries: number;
}

/** Loki's `data` object, JSON-ready: {resultType, result} (the caller adds `stats` when absent). */
export interface QueryData {
  resultType: "streams" | "matrix" | "vector" | "scalar";
  result: unknown;
  stats?: unknown;
}

/** A log pipeline as live tail applies it: the entry kept (maybe rewritten, labels maybe extended) or null. */
export type TailPipeline = (labels: FlatLabels, line: string, tsMs: number, tsNs: number, metadata: FlatLabels | null) => { labels: FlatLabels; line: string } | null;

const notBuilt = (what: string): HttpError => new HttpError(501, `${what} is not built yet`);

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

export async function evalQuery(_env: Env, _tenant: string, _q: ParsedQuery, _opts: EvalOptions): Promise<QueryData> {
  throw notBuilt("the LogQL engine");
}

/** The log query's pipeline (src/querier/logql/pipeline/), one entry at a time, for live tail. */
export function tailPipeline(q: ParsedQuery): TailPipeline {
  const expr = q.expr as LogExpr;
  const pipeline = compilePipeline(expr.stages);
  const lb = new LabelsBuilder();
  return (labels, line, tsMs, tsNs, metadata) => {
    if (pipeline.prefilter !== null && !pipeline.prefilter(line)) return null;
    lb.setStream(labels, labelsString(labels));
    lb.reset(metadata);
    const out = pipeline.process(line, lb, tsMs, tsNs);
    return out === null ? null : { labels: lb.labels(), line: out };
  };
}

export async function selectStreams(_env: Env, _tenant: string, _matchers: LabelMatcher[], _start: NsTime, _end: NsTime): Promise<LogStreamData[]> {
  throw notBuilt("the log store");
}

export async function labelNames(_env: Env, _tenant: string, _matchers: LabelMatcher[], _start: NsTime, _end: NsTime): Promise<string[]> {
  throw notBuilt("the log store");
}

export async function labelValues(_env: Env, _tenant: string, _name: string, _matchers: LabelMatcher[], _start: NsTime, _end: NsTime): Promise<string[]> {
  throw notBuilt("the log store");
}

export async function series(_env: Env, _tenant: string, _groups: LabelMatcher[][], _start: NsTime, _end: NsTime): Promise<FlatLabels[]> {
  throw notBuilt("the log store");
}

export async function indexStats(
  _env: Env,
  _tenant: string,
  _matchers: LabelMatcher[],
  _start: NsTime,
  _end: NsTime,
): Promise<{ streams: number; chunks: number; entries: number; bytes: number }> {
  throw notBuilt("the log store");
}

/** Parses a stream selector alone ({a="b"}), as the series API and label ?query= need. */
export function parseSelector(query: string): LabelMatcher[] {
  const q = parseQuery(query);
  if (q.kind !== "log") throw new HttpError(400, `only stream selectors are accepted here, got a metric query: ${query}`);
  return q.matchers;
}
