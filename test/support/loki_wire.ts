// Client-side Loki push bodies for tests, usable in workerd and Node: a hand-written
// logproto.PushRequest encoder (src/proto/writer.ts; test/node/logproto_reference.test.ts
// checks it against protobufjs), JSON bodies, and gzip/deflate via CompressionStream.
// (test/support/loki.ts holds the Node-only e2e helpers: query API, recording proxy.)

import { ProtoWriter } from "../../src/proto/writer";

export interface PushEntry {
  /** Unix nanoseconds as a decimal string (may be negative), or {seconds, nanos} written as given (to send invalid ones). */
  ts: string | { seconds: number; nanos: number };
  line: string | Uint8Array;
  /** Structured metadata, in order. */
  metadata?: [string, string][];
}

export interface PushStream {
  labels: string;
  entries: PushEntry[];
  hash?: number;
}

/** Unix ns string -> protobuf Timestamp (seconds, nanos in [0, 1e9)). */
export function nsToTimestamp(ns: string): { seconds: number; nanos: number } {
  const n = BigInt(ns);
  let seconds = n / 1_000_000_000n;
  let nanos = n % 1_000_000_000n;
  if (nanos < 0n) {
    nanos += 1_000_000_000n;
    seconds -= 1n;
  }
  return { seconds: Number(seconds), nanos: Number(nanos) };
}

/** Unix ns string of a time in ms plus ns within the ms. */
export function ns(ms: number, nsInMs = 0): string {
  return (BigInt(ms) * 1_000_000n + BigInt(nsInMs)).toString();
}

/** logproto.PushRequest bytes (not compressed). Zero scalars are omitted, as proto3 encoders do. */
export function encodePushRequest(streams: PushStream[]): Uint8Array {
  const w = new ProtoWriter();
  for (const s of streams) {
    const sm = w.fork(1);
    if (s.labels !== "") w.string(1, s.labels);
    for (const e of s.entries) {
      const em = w.fork(2);
      const t = typeof e.ts === "string" ? nsToTimestamp(e.ts) : e.ts;
      const tm = w.fork(1);
      if (t.seconds !== 0) w.int64(1, t.seconds);
      if (t.nanos !== 0) w.int32(2, t.nanos);
      w.ldelim(tm);
      if (typeof e.line === "string" ? e.line !== "" : e.line.length > 0) {
        if (typeof e.line === "string") w.string(2, e.line);
        else w.bytes(2, e.line);
      }
      for (const [name, value] of e.metadata ?? []) {
        const mm = w.fork(3);
        if (name !== "") w.string(1, name);
        if (value !== "") w.string(2, value);
        w.ldelim(mm);
      }
      w.ldelim(em);
    }
    if (s.hash !== undefined && s.hash !== 0) w.uint64(3, s.hash);
    w.ldelim(sm);
  }
  return w.finish();
}

export interface JsonStream {
  stream: Record<string, string>;
  values: ([string, string] | [string, string, Record<string, string>])[];
}

/** Loki's JSON push body (/loki/api/v1/push). */
export function jsonPushBody(streams: JsonStream[]): string {
  return JSON.stringify({ streams });
}

/** Compresses with CompressionStream: "gzip", "deflate" (zlib) or "deflate-raw". */
export async function compress(data: string | Uint8Array, format: "gzip" | "deflate" | "deflate-raw"): Promise<Uint8Array> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
