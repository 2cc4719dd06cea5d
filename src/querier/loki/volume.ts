// Loki's volume API, /loki/api/v1/index/volume and /index/volume_range (what Grafana's
// Logs Drilldown and volume panels call): the bytes of the streams a selector matches,
// per label set ("series") or per label name ("labels"), the top `limit` of each time
// bucket. As Loki computes it:
// - parameters: loghttp.ParseVolumeInstantQuery / ParseVolumeRangeQuery (./params.ts);
// - buckets: the query frontend's NewVolumeMiddleware splits [start, end] (ms, end
//   rounded up) with util.ForInterval(step, ..., endTimeInclusive) and truncates each
//   bucket's bounds to whole seconds; an instant query is one bucket; each bucket's
//   samples are stamped with its (untruncated) end;
// - per bucket: the ingesters' and the index's GetVolume, a stream's size being its
//   chunks' uncompressed bytes scaled by GetFactorOfTime (truncated per chunk), named
//   by the labels to aggregate into (targetLabels, else the selector's label names,
//   else all labels for {}), merged and cut to the top `limit` (seriesvolume.Merge:
//   by volume descending, then name);
// - the answer: queryrange.ToPrometheusResponse, a vector when no name has two
//   samples, else a matrix, series ordered by their first value descending, then name.
//
// The chunks come from the heads and R2 (src/querier/logs/select.ts logChunkFacts).
// Loki's frontend also splits each bucket at 24 h index boundaries and sums the
// pieces; here a bucket is computed whole (the same sum up to the per-piece
// truncation of scaled sizes). Loki's volume_max_series limit is not applied.

import type { IRequest } from "itty-router";
import { tenantOf } from "../../http/tenant";
import type { FlatLabels } from "../../model/labels";
import { MatchType, type LabelMatcher } from "../../proto/types";
import { jsonString, labelsJson } from "../api/respond";
import { labelsString } from "../logql/pipeline/labels";
import { formatFloat } from "../promql/format";
import { factorOfTime } from "../../storage/logs/chunk_stats";
import type { StreamFacts } from "../logs/select";
import * as backend from "./backend";
import { nowNs, readForm, volumeParams, type VolumeParams } from "./params";
import { jsonResponse, statsJson } from "./respond";

/** GET/POST /loki/api/v1/index/volume: one bucket over [start, end]. */
export async function lokiVolume(request: IRequest, env: Env): Promise<Response> {
  return volume(request, env, false);
}

/** GET/POST /loki/api/v1/index/volume_range: one bucket per step. */
export async function lokiVolumeRange(request: IRequest, env: Env): Promise<Response> {
  return volume(request, env, true);
}

async function volume(request: IRequest, env: Env, range: boolean): Promise<Response> {
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  const p = volumeParams(form, nowNs(), range);
  const selector = backend.parseVolumeSelector(p.query);
  const plan = aggregation(p, selector);
  // util.RoundToMilliseconds: start down, end up to the millisecond.
  const fromMs = p.start.ms;
  const throughMs = p.end.ms + (p.end.ns > 0 ? 1 : 0);
  const stepMs = Math.floor(p.stepNs / 1e6);
  const bs = buckets(fromMs, throughMs, stepMs);
  if (bs.length === 0) return volumeResponse([]);
  // Chunks touching any bucket, its end included.
  const facts = await backend.chunkFacts(env, tenant, plan.matcherSets, { ms: toSecondMs(bs[0].start), ns: 0 }, { ms: toSecondMs(bs[bs.length - 1].end) + 1, ns: 0 });
  const series = new Map<string, { metric: FlatLabels; samples: [number, number][] }>();
  for (const b of bs) {
    for (const [name, v] of topVolumes(facts, plan, toSecondMs(b.start), toSecondMs(b.end), p.limit)) {
      let s = series.get(name);
      if (s === undefined) series.set(name, (s = { metric: v.metric, samples: [] }));
      s.samples.push([b.end, v.bytes]);
    }
  }
  return volumeResponse([...series].map(([name, s]) => ({ name, ...s })));
}

/** What a stream's size is added to, and which streams count, as Loki's util.PrepareLabelsAndMatchers sets it up. */
interface Aggregation {
  matcherSets: LabelMatcher[][];
  /** The labels to aggregate into; null: all of a stream's labels. */
  labels: Set<string> | null;
  byLabel: boolean;
}

function aggregation(p: VolumeParams, selector: LabelMatcher[] | null): Aggregation {
  const matchers = selector ?? [];
  if (p.targetLabels.length > 0) {
    // A stream counts only if it has every target label: a target the selector does not
    // name gets a `=~".+"` matcher.
    const extra = p.targetLabels.filter((t) => !matchers.some((m) => m.name === t)).map((name) => ({ type: MatchType.RE, name, value: ".+" }));
    const all = [...matchers, ...extra];
    return { matcherSets: all.length > 0 ? [all] : [], labels: new Set(p.targetLabels), byLabel: p.aggregateBy === "labels" };
  }
  if (p.aggregateBy === "labels") return { matcherSets: matchers.length > 0 ? [matchers] : [], labels: null, byLabel: true };
  // Aggregated into the selector's label names; {} keeps every label.
  return { matcherSets: matchers.length > 0 ? [matchers] : [], labels: matchers.length > 0 ? new Set(matchers.map((m) => m.name)) : null, byLabel: false };
}

/** Loki's util.ForInterval(step, from, through, endTimeInclusive=true) over milliseconds; step 0: one bucket. */
export function buckets(fromMs: number, throughMs: number, stepMs: number): { start: number; end: number }[] {
  if (stepMs <= 0) return [{ start: fromMs, end: throughMs }];
  const out: { start: number; end: number }[] = [];
  // Aligned to the step, the first bucket keeping the original start; 1 ms between buckets.
  for (let s = fromMs - (fromMs % stepMs); s < throughMs; s += stepMs) {
    const next = s + stepMs;
    out.push({ start: out.length === 0 ? fromMs : s, end: next >= throughMs ? throughMs : next - 1 });
  }
  return out;
}

/** model.TimeFromUnix(t.Unix()): the bucket bounds the middleware sends on, in whole seconds. */
function toSecondMs(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** One bucket's volumes by name, the top `limit` (seriesvolume.MapToVolumeResponse order). */
function topVolumes(facts: StreamFacts[], plan: Aggregation, fromMs: number, throughMs: number, limit: number): [string, { metric: FlatLabels; bytes: number }][] {
  const from = { ms: fromMs, ns: 0 };
  const through = { ms: throughMs, ns: 0 };
  const volumes = new Map<string, { metric: FlatLabels; bytes: number }>();
  const add = (name: string, metric: FlatLabels, bytes: number) => {
    const v = volumes.get(name);
    if (v === undefined) volumes.set(name, { metric, bytes });
    else v.bytes += bytes;
  };
  for (const s of facts) {
    let size = 0;
    let overlaps = false;
    for (const c of s.chunks) {
      const f = factorOfTime(from, through, c.min, c.max);
      if (f <= 0) continue;
      overlaps = true;
      size += Math.floor(f * c.bytes);
    }
    if (!overlaps) continue;
    const l = s.labels;
    if (plan.byLabel) {
      for (let i = 0; i < l.length; i += 2) if (plan.labels === null || plan.labels.has(l[i])) add(l[i], [l[i], ""], size);
      continue;
    }
    let kept: FlatLabels = l;
    if (plan.labels !== null) {
      kept = [];
      for (let i = 0; i < l.length; i += 2) if (plan.labels.has(l[i])) kept.push(l[i], l[i + 1]);
    }
    add(labelsString(kept), kept, size);
  }
  const sorted = [...volumes].sort(([an, a], [bn, b]) => b.bytes - a.bytes || (an < bn ? -1 : an > bn ? 1 : 0));
  return sorted.slice(0, limit);
}

/** queryrange's ToPrometheusResponse and LokiPromResponse's JSON (time in seconds, values as Go formats floats). */
function volumeResponse(series: { name: string; metric: FlatLabels; samples: [number, number][] }[]): Response {
  let matrix = false;
  for (const s of series) {
    s.samples.sort((a, b) => a[0] - b[0]);
    if (s.samples.length > 1) matrix = true;
  }
  series.sort((a, b) => b.samples[0][1] - a.samples[0][1] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const point = ([t, v]: [number, number]) => `[${t / 1000},${jsonString(formatFloat(v))}]`;
  const result = series.map((s) => (matrix ? `{"metric":${labelsJson(s.metric)},"values":[${s.samples.map(point).join(",")}]}` : `{"metric":${labelsJson(s.metric)},"value":${point(s.samples[0])}}`));
  const stats = statsJson({ entriesReturned: 0, linesProcessed: 0, bytesProcessed: 0, execTimeS: 0 });
  return jsonResponse(`{"status":"success","data":{"resultType":"${matrix ? "matrix" : "vector"}","result":[${result.join(",")}],"stats":${stats}}}`);
}
