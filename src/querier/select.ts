// select(matchers, mint, maxt) over every shard of a tenant: the one read primitive
// that remote read (and later the PromQL engine) builds on. Fan-out is bounded to the
// Workers' 6 simultaneous connections.

import { limitsFor } from "../config/limits";
import { MAX_CONCURRENT_SUBREQUESTS, mapLimit, shardStub } from "../distributor/shards";
import type { SelectedSeries } from "../ingester/rpc";
import { compareLabels } from "../model/labels";
import { compileMatcher } from "../model/matchers";
import { XorIterator } from "../storage/chunk/xor";
import type { LabelMatcher, SeriesSamples } from "../proto/types";

export async function selectFromIngesters(env: Env, tenant: string, matchers: LabelMatcher[], mint: number, maxt: number): Promise<SelectedSeries[]> {
  // Compile here first so a bad regexp is a 400 from this Worker, not an RPC error.
  for (const m of matchers) compileMatcher(m);
  const shards = limitsFor(env, tenant).shards;
  const ids = Array.from({ length: shards }, (_, i) => i);
  const perShard = await mapLimit(ids, MAX_CONCURRENT_SUBREQUESTS, (shard) =>
    shardStub(env, tenant, shard).select({ matchers, mint, maxt }),
  );
  // A series lives on exactly one shard, so concatenating is merging.
  const all = perShard.flat();
  all.sort((a, b) => compareLabels(a.labels, b.labels));
  return all;
}

/** Decodes a selected series' chunks (and out-of-order samples) to samples in [mint, maxt]. */
export function toSamples(sel: SelectedSeries, mint: number, maxt: number): SeriesSamples {
  let cap = 0;
  for (const c of sel.chunks) cap += (c[0] << 8) | c[1];
  if (sel.ooo) cap += sel.ooo.timestamps.length;
  let ts = new Float64Array(cap);
  let vs = new Float64Array(cap);
  let n = 0;
  const it = new XorIterator(sel.chunks[0] ?? new Uint8Array(2));
  for (const c of sel.chunks) {
    it.reset(c);
    while (it.next()) {
      if (it.t < mint) continue;
      if (it.t > maxt) break;
      ts[n] = it.t;
      vs[n] = it.v;
      n++;
    }
  }
  if (sel.ooo) {
    // Merge the sorted out-of-order samples in; in-order chunks win on equal timestamps (they cannot differ: equal timestamps are rejected unless equal).
    const o = sel.ooo;
    const mts = new Float64Array(n + o.timestamps.length);
    const mvs = new Float64Array(n + o.timestamps.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < n || j < o.timestamps.length) {
      if (j >= o.timestamps.length || (i < n && ts[i] <= o.timestamps[j])) {
        if (j < o.timestamps.length && i < n && ts[i] === o.timestamps[j]) j++;
        mts[k] = ts[i];
        mvs[k++] = vs[i++];
      } else {
        mts[k] = o.timestamps[j];
        mvs[k++] = o.values[j++];
      }
    }
    ts = mts;
    vs = mvs;
    n = k;
  }
  return { labels: sel.labels, timestamps: ts.subarray(0, n), values: vs.subarray(0, n) };
}
