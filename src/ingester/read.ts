// Selecting series from the head by label matchers and time range. Candidates come
// from postings (never a scan of every series) whenever one matcher cannot match a
// missing label; every candidate is then checked against all matchers.

import { compileMatcher, matchesAll, type CompiledMatcher } from "../model/matchers";
import { MatchType, type LabelMatcher } from "../proto/types";
import type { Head } from "./head";
import { intersect, type Postings } from "./postings";
import type { SelectedSeries } from "./rpc";
import type { MemSeries } from "./series";

export function selectSeries(head: Head, matchers: LabelMatcher[], mint: number, maxt: number): SelectedSeries[] {
  const compiled = matchers.map(compileMatcher);
  const out: SelectedSeries[] = [];
  for (const s of candidates(head, compiled)) {
    if (!matchesAll(compiled, s.labels)) continue;
    const sel = seriesData(s, mint, maxt);
    if (sel) out.push(sel);
  }
  return out;
}

/**
 * Series that may match: from postings when a matcher needs its label present, else
 * every series. Generic over the entry type: the log head's streams use it too.
 */
export function* candidates<S = MemSeries>(
  head: { postings: Postings; byKey: Map<string, S>; byId: (S | undefined)[] },
  matchers: CompiledMatcher[],
): Iterable<S> {
  let ids: number[] | null = null;
  for (const m of matchers) {
    if (m.matchesEmpty) continue;
    const list = m.type === MatchType.EQ ? head.postings.get(m.name, m.value) : head.postings.union(m.name, m.matches);
    ids = ids === null ? list : intersect(ids, list);
    if (ids.length === 0) return;
  }
  if (ids === null) {
    yield* head.byKey.values();
    return;
  }
  for (const id of ids) {
    const s = head.byId[id];
    if (s) yield s;
  }
}

function seriesData(s: MemSeries, mint: number, maxt: number): SelectedSeries | null {
  const chunks: Uint8Array[] = [];
  // A chunk marked flushed is in a block R2 confirmed before the mark, and select()
  // lists blocks only after every shard answered, so that block is always read: sending
  // the retained copy too would only cost serialising it and de-duplicating it again.
  for (const c of s.closed) if (c.flushedAt === 0 && c.maxt >= mint && c.mint <= maxt) chunks.push(c.data);
  const open = s.open;
  if (open && open.numSamples > 0 && open.maxTime >= mint && open.minTime <= maxt) chunks.push(open.bytes());
  let ooo: SelectedSeries["ooo"] = null;
  const buf = s.ooo;
  if (buf && buf.length > 0) {
    let lo = 0;
    while (lo < buf.length && buf.timestamps[lo] < mint) lo++;
    let hi = lo;
    while (hi < buf.length && buf.timestamps[hi] <= maxt) hi++;
    if (hi > lo) ooo = { timestamps: buf.timestamps.slice(lo, hi), values: buf.values.slice(lo, hi) };
  }
  if (chunks.length === 0 && ooo === null) return null;
  return { labels: s.labels, chunks, ooo };
}
