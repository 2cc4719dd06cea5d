// Live tail (GET /loki/api/v1/tail, a WebSocket), as Loki's querier/tail.go does it:
// the Worker accepts the client's socket, opens one socket to every log shard of the
// tenant (each shard's LogIngester pushes the entries of matching streams as they
// arrive; shards a reshard adds are joined within SHARD_RECHECK_MS), sends the history first (the newest `limit` entries since `start`, oldest
// first, as Loki's Querier.Tail), then relays live entries through the query's pipeline (line filters,
// parsers, formatting) as Loki tail messages:
//   {"streams":[{"stream":{...},"values":[["<ns>","<line>"],...]}],"dropped_entries":null}
// Closing either side closes everything. A tenant has at most
// maxConcurrentTailRequests tails open at once (./tail_limit.ts): the slot is taken
// before the shards are asked and given back when the tail ends.

import { limitsFor } from "../../config/limits";
import { logShardStub } from "../../distributor/shards";
import { allShards, tenantRings } from "../../distributor/tenant_ring";
import { HttpError } from "../../http/errors";
import { tenantOf } from "../../http/tenant";
import type { FlatLabels } from "../../model/labels";
import { cmpNs, parseNsString } from "../../model/logtime";
import type { LabelMatcher } from "../../proto/types";
import { labelsJson, jsonString } from "../api/respond";
import * as backend from "./backend";
import { checkEntriesLimit, nowNs, readForm, tailParams } from "./params";
import { tailMessage } from "./respond";
import { acquireTail, TailLimitError, type TailSlot } from "./tail_limit";

/** A tail message's stream as Loki writes it (and as the shards send it). */
interface TailStream {
  stream: Record<string, string>;
  values: [string, string, ...unknown[]][];
}

/** WebSocket close codes (RFC 6455). */
const CLOSE_NORMAL = 1000;
const CLOSE_INTERNAL_ERROR = 1011;

export async function handleTail(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  if ((request.headers.get("Upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new HttpError(400, "this endpoint requires a websocket");
  }
  const tenant = tenantOf(request, env);
  const form = await readForm(request);
  // Loki's ParseTailQuery: the query first, then limit, start, delay_for.
  const q = backend.parseQuery(form.value("query"));
  const p = tailParams(form, nowNs());
  if (q.kind !== "log") throw new HttpError(400, "tail is supported for log queries only, not metric queries");
  const limits = limitsFor(env, tenant);
  checkEntriesLimit(p.limit, limits.maxEntriesLimitPerQuery);
  const pipeline = backend.tailPipeline(q);
  let slot: TailSlot;
  try {
    slot = await acquireTail(env, tenant, limits.maxConcurrentTailRequests);
  } catch (e) {
    if (e instanceof TailLimitError) return refusedTail(e.message);
    throw e;
  }

  const pair = new WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  server.accept();
  // Every shard the tenant's ring lists (ACTIVE and LEAVING: a stream's pushes go to
  // the old ring's shard until every isolate's cached ring expires), looked at again
  // so that shards a reshard adds are tailed too: in the isolate's cached ring (a Map
  // lookup, refreshed every RING_CACHE_TTL_MS as for pushes) whenever a shard sends
  // entries, and in the tenant's TenantControl every SHARD_RECHECK_MS.
  const shardsApi: ShardSource = {
    list: async (fresh) => (fresh ? allShards(env, tenant) : (await tenantRings.forWrite(env, tenant)).allShards()),
    open: (shard) => openShardTail(env, tenant, shard, q.matchers),
  };
  const relay = new TailRelay(server, pipeline, p.delayForS * 1000, slot, shardsApi);
  ctx.waitUntil(
    relay.run(async () => {
      const data = await backend.evalQuery(env, tenant, q, {
        start: p.start,
        end: nowNs(),
        stepNs: 0,
        intervalNs: 0,
        limit: p.limit,
        // Loki's Querier.Tail reads the history BACKWARD with the limit and sends it
        // through iter.NewReversedIter: the newest `limit` entries, oldest first.
        direction: "backward",
        maxSeries: limits.maxLogQuerySeries,
        categorizeLabels: false,
      });
      const streams = (data.resultType === "streams" ? data.result : []) as TailStream[];
      for (const s of streams) s.values.reverse();
      return streams;
    }),
  );
  return new Response(null, { status: 101, webSocket: client });
}

/**
 * A tail over the tenant's limit: upgraded, then closed at once with Loki's message,
 * as Loki's TailHandler does (it checks the limit after the upgrade and closes with
 * CloseInternalServerErr), so logcli and Grafana show the reason.
 */
function refusedTail(message: string): Response {
  const pair = new WebSocketPair();
  pair[1].accept();
  pair[1].close(CLOSE_INTERNAL_ERROR, message);
  return new Response(null, { status: 101, webSocket: pair[0] });
}

/** Opens a shard's tail socket: its LogIngester's fetch() with Upgrade: websocket and the selector's matchers. */
async function openShardTail(env: Env, tenant: string, shard: number, matchers: LabelMatcher[]): Promise<WebSocket> {
  const url = new URL("http://log-ingester/tail");
  url.searchParams.set("tenant", tenant);
  url.searchParams.set("shard", String(shard));
  url.searchParams.set("matchers", JSON.stringify(matchers));
  const res = await logShardStub(env, tenant, shard).fetch(url.toString(), { headers: { Upgrade: "websocket" } });
  const ws = res.webSocket;
  if (res.status !== 101 || !ws) throw new Error(`log shard ${shard} refused the tail socket: HTTP ${res.status} ${await res.text()}`);
  ws.accept();
  return ws;
}

/**
 * How often an open tail asks the tenant's ring for shards it does not tail yet: Loki's
 * tailer checks its ingester connections every 5 s (checkConnectionsWithIngestersPeriod),
 * and a writer isolate moves to a new ring within RING_CACHE_TTL_MS (5 s) too.
 */
export const SHARD_RECHECK_MS = 5_000;

/** The tenant's log shards (from the tenant's control object when `fresh`, else the isolate's cached ring), and how to open one's tail socket. */
interface ShardSource {
  list(fresh: boolean): Promise<number[]>;
  open(shard: number): Promise<WebSocket>;
}

/** One client's tail: history, then live entries through the pipeline, optionally delayed and sorted (delay_for). */
class TailRelay {
  /** Open shard sockets by shard number. */
  private readonly shards = new Map<number, WebSocket>();
  private recheck: Promise<void> | null = null;
  /** Resolves once the first shard sockets are open (or the tail failed or ended before). */
  private readonly firstShards: Promise<void>;
  private firstShardsDone: () => void = () => {};
  private recheckTimer: ReturnType<typeof setInterval> | null = null;
  private closed = false;
  /** Live entries received before the history was sent. */
  private early: TailStream[] | null = [];
  /** Keys of the history's entries, to drop their live copies from `early`. */
  private historyKeys = new Set<string>();
  /** delay_for: live entries held, sorted and sent after the delay. */
  private delayed: { labels: FlatLabels; key: string; ts: string; line: string }[] = [];
  private delayTimer: ReturnType<typeof setTimeout> | null = null;
  /** Resolves when the tail has ended (either side closed). */
  private readonly ended: Promise<void>;
  private end: () => void = () => {};

  constructor(
    private readonly client: WebSocket,
    private readonly pipeline: backend.TailPipeline,
    private readonly delayMs: number,
    private readonly slot: TailSlot,
    private readonly source: ShardSource,
  ) {
    this.ended = new Promise((resolve) => (this.end = resolve));
    this.firstShards = new Promise((resolve) => (this.firstShardsDone = resolve));
    client.addEventListener("close", () => this.close(CLOSE_NORMAL, "client closed"));
    client.addEventListener("error", () => this.close(CLOSE_NORMAL, "client error"));
    slot.keep(() => this.close(CLOSE_INTERNAL_ERROR, "the tail's slot expired and was taken by another tail"));
  }

  /**
   * Runs the tail until it ends, then gives its slot back: the promise stays pending
   * for the tail's life, so the request's waitUntil keeps the release call alive.
   */
  async run(history: () => Promise<TailStream[]>): Promise<void> {
    await this.setUp(history);
    await this.ended;
    await this.slot.release();
  }

  private async setUp(history: () => Promise<TailStream[]>): Promise<void> {
    try {
      // Shards first, buffering, so no entry pushed while the history is read is missed.
      const ids = await this.source.list(true);
      const opened = await Promise.allSettled(ids.map((shard) => this.source.open(shard)));
      const failed = opened.find((r) => r.status === "rejected");
      if (failed !== undefined || this.closed) {
        // A tail missing a shard would silently miss its streams: none at all, and say why.
        for (const r of opened) if (r.status === "fulfilled") safeClose(r.value, CLOSE_NORMAL, "tail ended");
        if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
        this.firstShardsDone();
        return;
      }
      ids.forEach((shard, i) => this.adopt(shard, (opened[i] as PromiseFulfilledResult<WebSocket>).value));
      this.firstShardsDone();
      this.recheckTimer = setInterval(() => void this.recheckShards(true), SHARD_RECHECK_MS);
      const hist = await history();
      if (this.closed) return;
      for (const s of hist) for (const v of s.values) this.historyKeys.add(entryKey(s.stream, v[0], v[1]));
      if (hist.length > 0) this.send(tailMessage(JSON.stringify(hist.map((s) => ({ stream: s.stream, values: s.values.map((v) => [v[0], v[1]]) })))));
      const early = this.early ?? [];
      this.early = null;
      for (const s of early) this.relay(s, this.historyKeys);
      this.historyKeys.clear();
    } catch (e) {
      this.firstShardsDone();
      console.error("tail failed:", e);
      const msg = e instanceof Error ? e.message : String(e);
      this.close(CLOSE_INTERNAL_ERROR, msg.slice(0, 120));
    }
  }

  /** Relays a shard's socket from now on; its end ends the tail. */
  private adopt(shard: number, ws: WebSocket): void {
    this.shards.set(shard, ws);
    ws.addEventListener("message", (ev) => this.onShardMessage(ev.data));
    ws.addEventListener("close", () => this.close(CLOSE_INTERNAL_ERROR, "a log shard closed the tail"));
    ws.addEventListener("error", () => this.close(CLOSE_INTERNAL_ERROR, "a log shard's tail failed"));
  }

  /**
   * Opens sockets to shards the tenant's ring lists now and this tail does not tail
   * yet (added by a reshard). One check at a time (a check asked for meanwhile is
   * dropped); a ring or shard that cannot be reached now is tried again at the next
   * check rather than ending a working tail. Entries a new shard took before its
   * socket opened are not sent, as with Loki's tailer and a new ingester.
   */
  private recheckShards(fresh: boolean): Promise<void> {
    this.recheck ??= (async () => {
      try {
        await this.firstShards;
        if (this.closed) return;
        const ids = await this.source.list(fresh);
        const added = ids.filter((shard) => !this.shards.has(shard));
        const opened = await Promise.allSettled(added.map((shard) => this.source.open(shard)));
        opened.forEach((r, i) => {
          if (r.status === "rejected") console.error(`tail: log shard ${added[i]} could not be tailed yet:`, r.reason);
          else if (this.closed) safeClose(r.value, CLOSE_NORMAL, "tail ended");
          else this.adopt(added[i], r.value);
        });
      } catch (e) {
        console.error("tail: the shard ring could not be read:", e);
      } finally {
        this.recheck = null;
      }
    })();
    return this.recheck;
  }

  private onShardMessage(data: unknown): void {
    if (this.closed || typeof data !== "string") return;
    void this.recheckShards(false);
    let msg: { streams?: TailStream[] };
    try {
      msg = JSON.parse(data) as { streams?: TailStream[] };
    } catch {
      console.error("tail: a log shard sent a message that is not JSON");
      return;
    }
    for (const s of msg.streams ?? []) {
      if (this.early !== null) this.early.push(s);
      else this.relay(s, null);
    }
  }

  /** Runs a shard's stream through the pipeline and sends (or holds, with delay_for) what passes. */
  private relay(s: TailStream, skip: Set<string> | null): void {
    const flat: FlatLabels = [];
    for (const name of Object.keys(s.stream).sort()) flat.push(name, s.stream[name]);
    const out = new Map<string, { labels: FlatLabels; values: [string, string][] }>();
    for (const v of s.values) {
      const ts = v[0];
      const line = v[1];
      if (skip !== null && skip.has(entryKey(s.stream, ts, line))) continue;
      const t = parseNsString(ts);
      if (t === null) continue;
      const kept = this.pipeline(flat, line, t.ms, t.ns, metadataOf(v[2]));
      if (kept === null) continue;
      const key = labelsJson(kept.labels);
      if (this.delayMs > 0) {
        this.delayed.push({ labels: kept.labels, key, ts, line: kept.line });
        continue;
      }
      let group = out.get(key);
      if (!group) out.set(key, (group = { labels: kept.labels, values: [] }));
      group.values.push([ts, kept.line]);
    }
    if (this.delayMs > 0) {
      this.delayTimer ??= setTimeout(() => this.flushDelayed(), this.delayMs);
      return;
    }
    if (out.size > 0) this.send(tailMessage(streamsOf([...out.values()])));
  }

  /** delay_for: what arrived during the delay, in time order (Loki sorts the same way). */
  private flushDelayed(): void {
    this.delayTimer = null;
    const batch = this.delayed;
    this.delayed = [];
    batch.sort((a, b) => compareNsStrings(a.ts, b.ts));
    const out = new Map<string, { labels: FlatLabels; values: [string, string][] }>();
    for (const e of batch) {
      let group = out.get(e.key);
      if (!group) out.set(e.key, (group = { labels: e.labels, values: [] }));
      group.values.push([e.ts, e.line]);
    }
    if (out.size > 0) this.send(tailMessage(streamsOf([...out.values()])));
  }

  private send(text: string): void {
    if (this.closed) return;
    try {
      this.client.send(text);
    } catch {
      this.close(CLOSE_NORMAL, "client gone");
    }
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.delayTimer !== null) clearTimeout(this.delayTimer);
    if (this.recheckTimer !== null) clearInterval(this.recheckTimer);
    this.firstShardsDone();
    for (const ws of this.shards.values()) safeClose(ws, CLOSE_NORMAL, "tail ended");
    safeClose(this.client, code, reason);
    void this.slot.release();
    this.end();
  }
}

/** An entry's structured metadata as a shard sends it: {"structuredMetadata":{...}} (categorized) or a plain {name: value}. */
function metadataOf(x: unknown): FlatLabels | null {
  if (typeof x !== "object" || x === null) return null;
  const obj = (x as { structuredMetadata?: unknown }).structuredMetadata ?? x;
  if (typeof obj !== "object" || obj === null) return null;
  const flat: FlatLabels = [];
  for (const name of Object.keys(obj).sort()) {
    const v = (obj as Record<string, unknown>)[name];
    if (typeof v === "string") flat.push(name, v);
  }
  return flat.length > 0 ? flat : null;
}

function streamsOf(groups: { labels: FlatLabels; values: [string, string][] }[]): string {
  const parts = groups.map((g) => `{"stream":${labelsJson(g.labels)},"values":[${g.values.map(([ts, line]) => `["${ts}",${jsonString(line)}]`).join(",")}]}`);
  return "[" + parts.join(",") + "]";
}

function entryKey(stream: Record<string, string>, ts: string, line: string): string {
  const names = Object.keys(stream).sort();
  return JSON.stringify([names.map((n) => [n, stream[n]]), ts, line]);
}

function compareNsStrings(a: string, b: string): number {
  const x = parseNsString(a);
  const y = parseNsString(b);
  if (x === null || y === null) return a < b ? -1 : a > b ? 1 : 0;
  return cmpNs(x.ms, x.ns, y.ms, y.ns);
}

function safeClose(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed
  }
}
