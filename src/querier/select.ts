// select(matchers, mint, maxt) over a tenant's ingesters (recent data) and its blocks
// in R2 (flushed data), merged per series: the one read primitive that remote read
// (and later the PromQL engine) builds on. Data is kept as chunk bytes until
// toSamples() decodes it; samples present in both (during the retain period, or after
// a repeated flush) are de-duplicated by timestamp. Reads never reach past the
// tenant's retention (retentionPeriodMs): the range is clamped to it and each series
// carries the clamp (`from`) so toSamples drops older samples of chunks that span it.

import { limitsFor } from "../config/limits";
import { shardStub } from "../distributor/shards";
import { readShards } from "../distributor/tenant_ring";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../model/concurrency";
import type { SelectedSeries } from "../ingester/rpc";
import { compareLabels, seriesKey } from "../model/labels";
import { compileMatcher } from "../model/matchers";
import { XorIterator } from "../storage/chunk/xor";
import type { LabelMatcher, SeriesSamples } from "../proto/types";
import { retentionStart } from "../storage/retention";
import { selectFromBlocks } from "./store";
import { isFederated, selectFederated } from "./federation";

export async function selectFromIngesters(env: Env, tenant: string, matchers: LabelMatcher[], mint: number, maxt: number, gate: Semaphore): Promise<SelectedSeries[]> {
  // Every shard that may hold samples in the range, LEAVING ones included, from the
  // tenant's ring history as it is now (src/distributor/tenant_ring.ts). After a
  // reshard one series may have samples on two shards: mergeSeries joins them and
  // toSamples keeps one sample per timestamp.
  const shards = await readShards(env, tenant, mint, limitsFor(env, tenant).creationGracePeriodMs);
  const perShard = await Promise.all(shards.map((shard) => gate.run(() => shardStub(env, tenant, shard).select({ matchers, mint, maxt }))));
  return perShard.flat();
}

/**
 * A selected series as select() returns it: `from` (ms), when set, is the tenant's
 * retention start; toSamples returns no sample older than it.
 */
export type QueriedSeries = SelectedSeries & { from?: number };

/** Every series matching, from ingesters and R2, merged by labels and sorted. */
export async function select(
  env: Env,
  tenant: string,
  matchers: LabelMatcher[],
  mint: number,
  maxt: number,
  gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS),
): Promise<QueriedSeries[]> {
  if (isFederated(tenant)) return selectFederated(env, tenant, matchers, mint, maxt, gate);
  // Compile here first so a bad regexp is a 400 from this Worker, not an RPC error.
  const compiled = matchers.map(compileMatcher);
  // The start is clamped to the retention period, as Loki's querier clamps it to
  // max_query_lookback (validateQueryTimeRangeLimits): data past it is never returned,
  // even while the sweep has not deleted its block yet.
  const from = retentionStart(env, tenant);
  const clamped = mint < from;
  if (clamped) {
    mint = from;
    if (mint > maxt) return [];
  }
  // Ingesters first, R2 after: the heads leave out chunks already marked flushed
  // (src/ingester/read.ts), and a chunk is marked only after R2 confirmed its block,
  // so a list started after every shard answered is sure to include that block (R2
  // lists are strongly consistent). Listing in parallel could miss a block written
  // between the list and the RPC, losing its chunks from both sources.
  const head = await selectFromIngesters(env, tenant, matchers, mint, maxt, gate);
  const store = await selectFromBlocks(env.BLOCKS, tenant, compiled, mint, maxt, gate);
  const merged = mergeSeries([store, head]);
  if (clamped) for (const s of merged) s.from = from;
  return merged;
}

/** Merges lists of selected series by label set; chunks of the earlier lists come first. */
export function mergeSeries(lists: QueriedSeries[][]): QueriedSeries[] {
  const byKey = new Map<string, QueriedSeries>();
  for (const list of lists) {
    for (const s of list) {
      const key = seriesKey(s.labels);
      const have = byKey.get(key);
      if (!have) byKey.set(key, s.from === undefined ? { labels: s.labels, chunks: s.chunks.slice(), ooo: s.ooo } : { labels: s.labels, chunks: s.chunks.slice(), ooo: s.ooo, from: s.from });
      else {
        if (s.from !== undefined) have.from = Math.max(have.from ?? -Infinity, s.from);
        // A chunk flushed and still retained in the head is the same bytes in both
        // places: drop the copy here, before decoding, instead of de-duplicating samples.
        for (const c of s.chunks) if (!have.chunks.some((h) => sameBytes(h, c))) have.chunks.push(c);
        if (s.ooo) have.ooo = have.ooo ? concatOoo(have.ooo, s.ooo) : s.ooo;
      }
    }
  }
  const out = [...byKey.values()];
  out.sort((a, b) => compareLabels(a.labels, b.labels));
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function concatOoo(a: NonNullable<SelectedSeries["ooo"]>, b: NonNullable<SelectedSeries["ooo"]>): NonNullable<SelectedSeries["ooo"]> {
  const ts = new Float64Array(a.timestamps.length + b.timestamps.length);
  const vs = new Float64Array(ts.length);
  ts.set(a.timestamps);
  ts.set(b.timestamps, a.timestamps.length);
  vs.set(a.values);
  vs.set(b.values, a.values.length);
  return { timestamps: ts, values: vs };
}

/**
 * Decodes a series' chunks and out-of-order samples to time-ordered samples in
 * [mint, maxt], one per timestamp. The common case (chunks in order, no overlap) is
 * one pass; overlapping sources (head and block, out-of-order chunks) are sorted and
 * de-duplicated, keeping the first source's value.
 */
export function toSamples(sel: QueriedSeries, mint: number, maxt: number): SeriesSamples {
  if (sel.from !== undefined && sel.from > mint) mint = sel.from;
  let cap = 0;
  for (const c of sel.chunks) cap += (c[0] << 8) | c[1];
  if (sel.ooo) cap += sel.ooo.timestamps.length;
  const ts = new Float64Array(cap);
  const vs = new Float64Array(cap);
  // Values are copied as raw 32-bit words, never through a JS number: V8 may quiet a
  // signalling NaN on the way, and Prometheus's stale marker (0x7ff0000000000002) is one.
  const vw = new Uint32Array(vs.buffer);
  let n = 0;
  let sorted = true;
  let prev = -Infinity;
  const it = new XorIterator(sel.chunks[0] ?? EMPTY_CHUNK);
  for (const c of sel.chunks) {
    it.reset(c);
    while (it.next()) {
      const t = it.t;
      if (t < mint) continue;
      if (t > maxt) break;
      if (t <= prev) sorted = false;
      prev = t;
      ts[n] = t;
      vw[2 * n] = it.valueLo;
      vw[2 * n + 1] = it.valueHi;
      n++;
    }
  }
  if (sel.ooo) {
    const o = sel.ooo;
    const ow = new Uint32Array(o.values.buffer, o.values.byteOffset, o.values.length * 2);
    for (let i = 0; i < o.timestamps.length; i++) {
      const t = o.timestamps[i];
      if (t < mint || t > maxt) continue;
      if (t <= prev) sorted = false;
      prev = t;
      ts[n] = t;
      vw[2 * n] = ow[2 * i];
      vw[2 * n + 1] = ow[2 * i + 1];
      n++;
    }
  }
  if (sorted) return { labels: sel.labels, timestamps: ts.subarray(0, n), values: vs.subarray(0, n) };
  // Stable sort of indexes by time keeps the first source first among equal timestamps.
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  idx.sort((a, b) => ts[a] - ts[b] || a - b);
  const ots = new Float64Array(n);
  const ovs = new Float64Array(n);
  const ovw = new Uint32Array(ovs.buffer);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const j = idx[i];
    const t = ts[j];
    if (k > 0 && ots[k - 1] === t) continue;
    ots[k] = t;
    ovw[2 * k] = vw[2 * j];
    ovw[2 * k + 1] = vw[2 * j + 1];
    k++;
  }
  return { labels: sel.labels, timestamps: ots.subarray(0, k), values: ovs.subarray(0, k) };
}

const EMPTY_CHUNK = new Uint8Array([0, 0]);
