// GET|POST /api/v1/labels, GET /api/v1/label/<name>/values and GET|POST /api/v1/series:
// every shard's head (one RPC each) and every block overlapping [start, end] (its
// cached index), merged, de-duplicated and sorted as Prometheus merges its head and
// blocks; `limit` cuts the sorted answer with Prometheus's warning.
// Each source returns at most limit+1 sorted entries: the first limit+1 of the
// union are always among them, so merging stays exact and truncation is detected.

import { limitsFor } from "../../config/limits";
import { shardStub } from "../../distributor/shards";
import { readShards } from "../../distributor/tenant_ring";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../../model/concurrency";
import { compareLabels, getLabel, seriesKey, type FlatLabels } from "../../model/labels";
import { compileMatcher, type CompiledMatcher } from "../../model/matchers";
import type { LabelQuery } from "../../ingester/labels";
import type { BlockIndex } from "../../storage/block/reader";
import { BlockGoneError, indexCache, listBlocks } from "../../storage/blocks";
import { retentionStart } from "../../storage/retention";
import { ApiError, jsonArray, labelsJson, successResponse } from "./respond";
import { Form, goQuote, limitParam, MAX_TIME_MS, MIN_TIME_MS, timeParam } from "./params";
import { parseMatchersParam } from "./selectors";

export const TRUNCATED_WARNING = "results truncated due to limit";

type Stub = ReturnType<typeof shardStub>;

/** One call per shard that may hold series with samples at or after `mint` (LEAVING ones too), through the request's gate. */
async function onShards<R>(env: Env, tenant: string, mint: number, gate: Semaphore, fn: (stub: Stub) => Promise<R>): Promise<R[]> {
  const shards = await readShards(env, tenant, mint, limitsFor(env, tenant).creationGracePeriodMs);
  return Promise.all(shards.map((shard) => gate.run(() => fn(shardStub(env, tenant, shard)))));
}

/** The indexes of the tenant's blocks overlapping [mint, maxt] (cached: blocks are immutable). */
async function blockIndexes(env: Env, tenant: string, mint: number, maxt: number, gate: Semaphore): Promise<BlockIndex[]> {
  const blocks = await listBlocks(env.BLOCKS, tenant, mint, maxt, gate);
  const opened = await Promise.all(
    blocks.map((b) =>
      indexCache.open(env.BLOCKS, b, gate).catch((e: unknown) => {
        // Deleted by retention between the list and the read: it holds nothing the query may see.
        if (e instanceof BlockGoneError) return null;
        throw e;
      }),
    ),
  );
  return opened.filter((x): x is BlockIndex => x !== null);
}

/** Label sets of a block's series matching any set with chunks in the range (a series may repeat). */
function blockSeries(index: BlockIndex, sets: CompiledMatcher[][], q: LabelQuery): FlatLabels[] {
  const out: FlatLabels[] = [];
  for (const set of sets) for (const s of index.select(set, q.mint, q.maxt)) out.push(s.labels);
  return out;
}

/** Sorted union of sorted-or-not string lists, cut at `limit` (0: all); whether it was cut. */
function mergeStrings(lists: string[][], limit: number): { items: string[]; truncated: boolean } {
  const all = new Set<string>();
  for (const l of lists) for (const s of l) all.add(s);
  const items = [...all].sort();
  if (limit > 0 && items.length > limit) return { items: items.slice(0, limit), truncated: true };
  return { items, truncated: false };
}

interface LabelParams {
  /** What each source is asked: one more than the limit, to tell a cut answer from a full one. */
  q: LabelQuery;
  /** The matcher sets compiled, for the blocks. */
  sets: CompiledMatcher[][];
  /** The `limit` parameter; 0 means none. */
  limit: number;
}

/** The request's limit, time range (its start clamped to the tenant's retention) and matcher sets, read in Prometheus's order. */
function readLabelParams(form: Form, matchWrap: string | null, env: Env, tenant: string): LabelParams {
  const limit = limitParam(form);
  const mint = Math.max(timeParam(form, "start", MIN_TIME_MS), retentionStart(env, tenant));
  const maxt = timeParam(form, "end", MAX_TIME_MS);
  const matcherSets = parseMatchersParam(form.values("match[]"), matchWrap);
  return { q: { matcherSets, mint, maxt, limit: limit > 0 ? limit + 1 : 0 }, sets: matcherSets.map((set) => set.map(compileMatcher)), limit };
}

/** GET|POST /api/v1/labels */
export async function handleLabelNames(request: Request, env: Env, tenant: string): Promise<Response> {
  const { q, sets, limit } = readLabelParams(await Form.from(request), null, env, tenant);
  const gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);
  const [heads, indexes] = await Promise.all([
    onShards(env, tenant, q.mint, gate, (stub) => stub.labelNames(q)),
    blockIndexes(env, tenant, q.mint, q.maxt, gate),
  ]);
  const lists: string[][] = [...heads];
  for (const index of indexes) {
    if (q.matcherSets.length === 0) lists.push(index.labelNames());
    else {
      const names = new Set<string>();
      for (const labels of blockSeries(index, sets, q)) for (let i = 0; i < labels.length; i += 2) names.add(labels[i]);
      lists.push([...names]);
    }
  }
  const { items, truncated } = mergeStrings(lists, limit);
  return successResponse(jsonArray(items), truncated ? [TRUNCATED_WARNING] : []);
}

/** GET /api/v1/label/<name>/values; `rawName` is the path segment, percent-encoded. */
export async function handleLabelValues(request: Request, env: Env, tenant: string, rawName: string): Promise<Response> {
  const name = labelNameParam(rawName);
  const { q, sets, limit } = readLabelParams(await Form.from(request), null, env, tenant);
  const gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);
  const [heads, indexes] = await Promise.all([
    onShards(env, tenant, q.mint, gate, (stub) => stub.labelValues({ ...q, name })),
    blockIndexes(env, tenant, q.mint, q.maxt, gate),
  ]);
  const lists: string[][] = [...heads];
  for (const index of indexes) {
    if (q.matcherSets.length === 0) lists.push(index.labelValues(name));
    else {
      const values: string[] = [];
      for (const labels of blockSeries(index, sets, q)) {
        const v = getLabel(labels, name);
        if (v !== "") values.push(v);
      }
      lists.push(values);
    }
  }
  const { items, truncated } = mergeStrings(lists, limit);
  return successResponse(jsonArray(items), truncated ? [TRUNCATED_WARNING] : []);
}

/**
 * The label name of a /label/<name>/values path: percent-decoded, then Prometheus 3's
 * "U__" escaping for names outside the legacy character set undone
 * (model.UnescapeName with ValueEncodingEscaping); any non-empty UTF-8 name is valid.
 */
export function labelNameParam(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw new ApiError("bad_data", `invalid label name: ${goQuote(raw)}`);
  }
  if (name.startsWith("U__")) name = unescapeName(name);
  if (name === "" || /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    throw new ApiError("bad_data", `invalid label name: ${goQuote(name)}`);
  }
  return name;
}

/**
 * prometheus/common model.UnescapeName(name, ValueEncodingEscaping): after "U__",
 * "__" is "_" and "_<hex>_" is the code point <hex>; anything malformed leaves the
 * name as it was.
 */
export function unescapeName(name: string): string {
  if (!name.startsWith("U__")) return name;
  const s = name.slice(3);
  let out = "";
  let i = 0;
  while (i < s.length) {
    if (s[i] !== "_") {
      out += s[i++];
      continue;
    }
    i++;
    if (i >= s.length) return name;
    if (s[i] === "_") {
      out += "_";
      i++;
      continue;
    }
    let cp = 0;
    let digits = 0;
    for (;;) {
      if (i >= s.length || digits >= 6) return name;
      const c = s[i].toLowerCase();
      if (c === "_") break;
      const d = parseInt(c, 16);
      if (Number.isNaN(d)) return name;
      cp = cp * 16 + d;
      digits++;
      i++;
    }
    // Go's utf8.ValidRune: no surrogates, nothing past U+10FFFF.
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return name;
    out += String.fromCodePoint(cp);
    i++; // the closing "_"
  }
  return out;
}

/** GET|POST /api/v1/series */
export async function handleSeries(request: Request, env: Env, tenant: string): Promise<Response> {
  const form = await Form.from(request);
  if (form.values("match[]").length === 0) throw new ApiError("bad_data", "no match[] parameter provided");
  return seriesAnswer(env, tenant, readLabelParams(form, "match[]", env, tenant));
}

async function seriesAnswer(env: Env, tenant: string, { q: asked, sets, limit: userLimit }: LabelParams): Promise<Response> {
  const maxSeries = limitsFor(env, tenant).maxSeriesPerQuery;
  // Without a user limit under the cap, ask for one past the cap to detect going over it.
  const capped = userLimit === 0 || userLimit > maxSeries;
  const q: LabelQuery = { ...asked, limit: (capped ? maxSeries : userLimit) + 1 };
  const gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);
  const [heads, indexes] = await Promise.all([onShards(env, tenant, q.mint, gate, (stub) => stub.series(q)), blockIndexes(env, tenant, q.mint, q.maxt, gate)]);
  const byKey = new Map<string, FlatLabels>();
  for (const list of heads) for (const l of list) byKey.set(seriesKey(l), l);
  for (const index of indexes) for (const l of blockSeries(index, sets, q)) byKey.set(seriesKey(l), l);
  const all = [...byKey.values()].sort(compareLabels);
  if (capped && all.length > maxSeries) {
    throw new ApiError(
      "execution",
      `the query exceeded the maximum number of series (limit: ${maxSeries} series, maxSeriesPerQuery). Narrow the match[] selectors or the time range, or pass limit`,
    );
  }
  const truncated = !capped && all.length > userLimit;
  const items = truncated ? all.slice(0, userLimit) : all;
  return successResponse("[" + items.map(labelsJson).join(",") + "]", truncated ? [TRUNCATED_WARNING] : []);
}
