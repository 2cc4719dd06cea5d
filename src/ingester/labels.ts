// Label names, label values, series and metadata of one shard's head, for the
// Prometheus API's /labels, /label/<name>/values, /series and /metadata.
// Without matchers, names and values come straight from the postings (no series
// is touched, as Prometheus's head answers). With matchers, candidates come from
// the postings (never a scan when a matcher needs its label present), every
// matcher is checked, and only series with data in [mint, maxt] count.
// Answers are sorted and cut at `limit`, so the querier can merge shards cheaply.

import { compileMatcher, matchesAll, type CompiledMatcher } from "../model/matchers";
import { compareLabels, getLabel, type FlatLabels } from "../model/labels";
import type { LabelMatcher, MetricMetadata } from "../proto/types";
import type { Head } from "./head";
import { candidates } from "./read";
import type { MemSeries } from "./series";

export interface LabelQuery {
  /** match[] sets: a series counts when it matches every matcher of one set. Empty: no matchers. */
  matcherSets: LabelMatcher[][];
  mint: number;
  maxt: number;
  /** At most this many entries (the first, in sort order); 0 means all. */
  limit: number;
}

export interface LabelValuesQuery extends LabelQuery {
  name: string;
}

export interface MetadataQuery {
  /** One metric family, or "" for all. */
  metric: string;
  /** At most this many families (the first by name); negative means all. */
  limit: number;
}

function cut<T>(items: T[], limit: number): T[] {
  return limit > 0 && items.length > limit ? items.slice(0, limit) : items;
}

/** Whether the series holds a sample (or a chunk overlapping) in [mint, maxt]. */
function hasDataIn(s: MemSeries, mint: number, maxt: number): boolean {
  for (const c of s.closed) if (c.maxt >= mint && c.mint <= maxt) return true;
  const open = s.open;
  if (open && open.numSamples > 0 && open.maxTime >= mint && open.minTime <= maxt) return true;
  const o = s.ooo;
  if (o) for (let i = 0; i < o.length; i++) if (o.timestamps[i] >= mint && o.timestamps[i] <= maxt) return true;
  return false;
}

/** Calls fn once per series matching any set and holding data in the range. */
function forEachMatching(head: Head, q: LabelQuery, fn: (s: MemSeries) => void): void {
  const sets: CompiledMatcher[][] = q.matcherSets.map((set) => set.map(compileMatcher));
  // One series may match several sets; visit it once.
  const seen = sets.length > 1 ? new Set<number>() : null;
  for (const set of sets) {
    for (const s of candidates(head, set)) {
      if (seen?.has(s.id)) continue;
      if (!matchesAll(set, s.labels) || !hasDataIn(s, q.mint, q.maxt)) continue;
      seen?.add(s.id);
      fn(s);
    }
  }
}

export function headLabelNames(head: Head, q: LabelQuery): string[] {
  if (q.matcherSets.length === 0) return cut([...head.postings.byName.keys()].sort(), q.limit);
  const names = new Set<string>();
  forEachMatching(head, q, (s) => {
    for (let i = 0; i < s.labels.length; i += 2) names.add(s.labels[i]);
  });
  return cut([...names].sort(), q.limit);
}

export function headLabelValues(head: Head, q: LabelValuesQuery): string[] {
  if (q.matcherSets.length === 0) return cut([...(head.postings.byName.get(q.name)?.keys() ?? [])].sort(), q.limit);
  const values = new Set<string>();
  forEachMatching(head, q, (s) => {
    const v = getLabel(s.labels, q.name);
    if (v !== "") values.add(v);
  });
  return cut([...values].sort(), q.limit);
}

/** Label sets of the matching series, sorted as Prometheus sorts series. */
export function headSeries(head: Head, q: LabelQuery): FlatLabels[] {
  const out: FlatLabels[] = [];
  forEachMatching(head, q, (s) => out.push(s.labels));
  out.sort(compareLabels);
  return cut(out, q.limit);
}

/** The metadata kept for each metric family (the newest sent), sorted by family name. */
export function headMetadata(head: Head, q: MetadataQuery): MetricMetadata[] {
  if (q.metric !== "") {
    const m = head.metadata.get(q.metric);
    return m && q.limit !== 0 ? [m] : [];
  }
  const all = [...head.metadata.values()].sort((a, b) => (a.metricFamilyName < b.metricFamilyName ? -1 : a.metricFamilyName > b.metricFamilyName ? 1 : 0));
  return q.limit >= 0 ? all.slice(0, q.limit) : all;
}
