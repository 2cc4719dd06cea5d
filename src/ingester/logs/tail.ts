// Live tail on a log shard (Loki's ingester tailer.go), over the WebSocket
// Hibernation API: the Worker-side relay (src/querier/loki/) opens one socket per
// shard with the query's stream matchers; the shard accepts it with
// ctx.acceptWebSocket, so the object can be evicted while sockets stay open, and
// keeps the matchers in the socket's attachment, which survives hibernation.
// On every committed push, the entries of matching streams go to each socket as
// one Loki tail message:
//
//   {"streams":[{"stream":{"app":"x"},"values":[["<unix ns>","line"]]}],"dropped_entries":null}
//
// An entry with structured metadata carries it as a third element,
// ["<ns>", "line", {"name": "value"}], as Loki's push and categorised responses
// do; line filters and the rest of the pipeline are the relay's job.

import { labelsToObject, type FlatLabels } from "../../model/labels";
import { formatNs } from "../../model/logtime";
import { compileMatcher, matchesAll, type CompiledMatcher } from "../../model/matchers";
import { MatchType, type LabelMatcher } from "../../proto/types";
import { LogBatchReader } from "./batch";

/** Below the Hibernation API's 2,048-byte attachment limit, with room for the wrapper. */
const MAX_ATTACHMENT_CHARS = 1800;
/**
 * A message stays well below the 1 MiB a WebSocket message may carry: a push
 * larger than this goes out as several messages, split between streams (or
 * within a stream's values), in order.
 */
const MAX_MESSAGE_CHARS = 512 * 1024;

/** What a tail socket's attachment holds (serializeAttachment: structured clone, at most 2 KiB). */
export interface TailAttachment {
  matchers: LabelMatcher[];
}

/** Parses and checks the ?matchers= JSON of a tail request; throws an Error naming the problem. */
export function parseTailMatchers(raw: string | null): LabelMatcher[] {
  if (raw === null) throw new Error('missing ?matchers=: a JSON array of stream matchers, e.g. [{"type":0,"name":"app","value":"x"}]');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new Error(`?matchers= is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new Error("?matchers= must be a JSON array of {type, name, value}");
  const out: LabelMatcher[] = [];
  for (const m of parsed as unknown[]) {
    const o = m as Partial<LabelMatcher> | null;
    if (
      typeof o !== "object" || o === null || typeof o.name !== "string" || typeof o.value !== "string" ||
      ![MatchType.EQ, MatchType.NEQ, MatchType.RE, MatchType.NRE].includes(o.type as MatchType)
    ) {
      throw new Error(`?matchers= entry ${JSON.stringify(m)} is not {type: 0..3 (=, !=, =~, !~), name, value}`);
    }
    out.push({ type: o.type as MatchType, name: o.name, value: o.value });
  }
  out.forEach(compileMatcher); // a bad regexp is refused now, not at the first push
  // serializeAttachment keeps at most 2,048 bytes per socket.
  if (JSON.stringify(out).length > MAX_ATTACHMENT_CHARS) throw new Error(`?matchers= is too long for a tail: at most ${MAX_ATTACHMENT_CHARS} characters of matchers`);
  return out;
}

/** One stream's part of a tail message, built at most once per push. */
interface StreamPart {
  flat: FlatLabels;
  json: string;
}

export class TailHub {
  /** Compiled matchers per socket; rebuilt from the attachment after hibernation. */
  private readonly compiled = new WeakMap<WebSocket, CompiledMatcher[]>();

  constructor(private readonly ctx: DurableObjectState) {}

  accept(matchers: LabelMatcher[]): Response {
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ matchers } satisfies TailAttachment);
    this.compiled.set(server, matchers.map(compileMatcher));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  private matchersOf(ws: WebSocket): CompiledMatcher[] | null {
    let m = this.compiled.get(ws);
    if (m === undefined) {
      const a = ws.deserializeAttachment() as TailAttachment | null;
      if (a === null || !Array.isArray(a.matchers)) return null;
      m = a.matchers.map(compileMatcher);
      this.compiled.set(ws, m);
    }
    return m;
  }

  /** Sends a committed batch's entries to every socket whose matchers take their stream. */
  publish(batch: Uint8Array, flatOf: (labels: string) => FlatLabels | null): void {
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) return;
    let parts: StreamPart[] | null = null;
    for (const ws of sockets) {
      const matchers = this.matchersOf(ws);
      if (matchers === null) continue;
      parts ??= streamParts(batch, flatOf);
      let body = "";
      for (const p of parts) {
        if (!matchesAll(matchers, p.flat)) continue;
        if (body !== "" && body.length + p.json.length > MAX_MESSAGE_CHARS) {
          send(ws, body);
          body = "";
        }
        body += (body === "" ? "" : ",") + p.json;
      }
      if (body !== "") send(ws, body);
    }
  }

  closed(ws: WebSocket, code: number, reason: string): void {
    this.compiled.delete(ws);
    try {
      // Complete the closing handshake (1005/1006 are not codes one may send).
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }
}

function send(ws: WebSocket, body: string): void {
  try {
    ws.send(`{"streams":[${body}],"dropped_entries":null}`);
  } catch {
    // Closing or closed: webSocketClose cleans up.
  }
}

/**
 * The batch's streams as Loki tail JSON fragments: one per stream (repeats of a
 * stream merged), or several for a stream whose values pass MAX_MESSAGE_CHARS.
 */
function streamParts(batch: Uint8Array, flatOf: (labels: string) => FlatLabels | null): StreamPart[] {
  const out: StreamPart[] = [];
  const byLabels = new Map<string, { flat: FlatLabels; head: string; values: string[]; chars: number }>();
  const close = (s: { flat: FlatLabels; head: string; values: string[]; chars: number }) => {
    if (s.values.length > 0) out.push({ flat: s.flat, json: `${s.head}${s.values.join(",")}]}` });
    s.values = [];
    s.chars = 0;
  };
  const r = new LogBatchReader(batch);
  while (r.nextStream()) {
    let s = byLabels.get(r.labels);
    if (s === undefined) {
      const flat = flatOf(r.labels);
      if (flat === null) continue;
      byLabels.set(r.labels, (s = { flat, head: `{"stream":${JSON.stringify(labelsToObject(flat))},"values":[`, values: [], chars: 0 }));
    }
    while (r.nextEntry()) {
      const ts = JSON.stringify(formatNs(r.ms, r.ns));
      const line = JSON.stringify(r.line());
      const meta = r.meta;
      const v = meta === null ? `[${ts},${line}]` : `[${ts},${line},${JSON.stringify(labelsToObject(meta))}]`;
      if (s.chars > 0 && s.chars + v.length > MAX_MESSAGE_CHARS) close(s);
      s.values.push(v);
      s.chars += v.length + 1;
    }
  }
  for (const s of byLabels.values()) close(s);
  return out;
}
