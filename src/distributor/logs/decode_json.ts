// Loki's JSON push bodies -> DecodedLogPush (src/proto/logproto.ts), the same columns
// the protobuf decoder fills, with lines as strings.
//
// /loki/api/v1/push (Loki's loghttp.PushRequest):
//   {"streams": [{"stream": {"app": "x"}, "values": [["<unix ns>", "line", {"trace_id": "abc"}], ...]}]}
// The timestamp is a string of integer nanoseconds and the optional third element
// the entry's structured metadata (loghttp/entry.go); anything else fails the whole
// request, as Loki's decoder does, with a message naming the stream and the value.
//
// /api/prom/push (Loki's legacy format: logproto.PushRequest as JSON):
//   {"streams": [{"labels": "{app=\"x\"}", "entries": [{"ts": "2024-05-01T10:00:00.123456789Z", "line": "..."}]}]}
//
// JSON.parse builds the whole document as objects before we walk it; V8's parser is
// far faster than any JSON tokenizer written in JS, and JSON pushes (browsers,
// logging libraries) are small next to protobuf ones.

import { HttpError } from "../../http/errors";
import { LogColumns, type DecodedLogPush } from "../../proto/logproto";
import { parseNsString } from "../../model/logtime";

const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false });

/** Decodes a JSON push body; `legacy` for /api/prom/push. Throws HttpError 400 naming what is wrong. */
export function decodeJsonPush(body: Uint8Array, legacy: boolean): DecodedLogPush {
  let doc: unknown;
  try {
    doc = JSON.parse(decoder.decode(body));
  } catch (e) {
    throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new HttpError(400, 'request body must be a JSON object {"streams": [...]}');
  }
  const streams = (doc as { streams?: unknown }).streams;
  const cols = new LogColumns(64);
  const lines: string[] = [];
  if (streams === undefined || streams === null) return cols.finish(null, lines);
  if (!Array.isArray(streams)) throw new HttpError(400, '"streams" must be an array');
  for (let s = 0; s < streams.length; s++) {
    const stream: unknown = streams[s];
    if (typeof stream !== "object" || stream === null || Array.isArray(stream)) throw new HttpError(400, `streams[${s}] must be an object`);
    if (legacy) legacyStream(stream as Record<string, unknown>, s, cols, lines);
    else v1Stream(stream as Record<string, unknown>, s, cols, lines);
  }
  return cols.finish(null, lines);
}

function v1Stream(stream: Record<string, unknown>, s: number, cols: LogColumns, lines: string[]): void {
  const labels = stream.stream;
  const pairs: string[] = [];
  if (labels !== undefined && labels !== null) {
    if (typeof labels !== "object" || Array.isArray(labels)) throw new HttpError(400, `streams[${s}].stream must be an object of label names to string values`);
    for (const name in labels as Record<string, unknown>) {
      const value = (labels as Record<string, unknown>)[name];
      if (typeof value !== "string") throw new HttpError(400, `streams[${s}].stream: label ${JSON.stringify(name)} has a non-string value ${short(value)}`);
      pairs.push(name, value);
    }
  }
  const where = () => `stream ${describePairs(pairs)} (streams[${s}])`;
  const values = stream.values;
  const entryStart = cols.n;
  if (values !== undefined && values !== null) {
    if (!Array.isArray(values)) throw new HttpError(400, `${where()}: "values" must be an array of [timestamp, line] pairs`);
    for (let i = 0; i < values.length; i++) {
      const v: unknown = values[i];
      if (!Array.isArray(v) || v.length < 2 || v.length > 3) {
        throw new HttpError(400, `${where()}: values[${i}] must be ["<unix epoch in nanoseconds>", "<log line>"] or with a third element of structured metadata, got ${short(v)}`);
      }
      const ts: unknown = v[0];
      const t = typeof ts === "string" ? parseNsString(ts) : null;
      if (t === null) {
        throw new HttpError(
          400,
          `${where()}: values[${i}] has timestamp ${short(ts)}; timestamps must be strings of integer Unix nanoseconds, e.g. "${Date.now()}000000"`,
        );
      }
      const line: unknown = v[1];
      if (typeof line !== "string") throw new HttpError(400, `${where()}: values[${i}] has a non-string log line ${short(line)}`);
      const metaFrom = cols.meta.length;
      if (v.length === 3 && v[2] !== null) {
        const meta: unknown = v[2];
        if (typeof meta !== "object" || Array.isArray(meta)) throw new HttpError(400, `${where()}: values[${i}][2] (structured metadata) must be an object of names to string values`);
        for (const name in meta as Record<string, unknown>) {
          const value = (meta as Record<string, unknown>)[name];
          if (typeof value !== "string") throw new HttpError(400, `${where()}: values[${i}] structured metadata ${JSON.stringify(name)} has a non-string value ${short(value)}`);
          cols.meta.push(name, value);
        }
      }
      lines[cols.n] = line;
      cols.push(t.ms, t.ns, 0, 0, metaFrom);
    }
  }
  cols.streams.push({ labels: null, pairs, entryStart, entryCount: cols.n - entryStart });
}

function legacyStream(stream: Record<string, unknown>, s: number, cols: LogColumns, lines: string[]): void {
  const labels = stream.labels;
  if (typeof labels !== "string") throw new HttpError(400, `streams[${s}].labels must be a label string such as "{app=\\"x\\"}"`);
  const entries = stream.entries;
  const entryStart = cols.n;
  if (entries !== undefined && entries !== null) {
    if (!Array.isArray(entries)) throw new HttpError(400, `stream ${labels} (streams[${s}]): "entries" must be an array`);
    for (let i = 0; i < entries.length; i++) {
      const e: unknown = entries[i];
      if (typeof e !== "object" || e === null) throw new HttpError(400, `stream ${labels} (streams[${s}]): entries[${i}] must be an object {"ts": ..., "line": ...}`);
      const { ts, line } = e as { ts?: unknown; line?: unknown };
      const t = typeof ts === "string" ? parseRfc3339Nano(ts) : null;
      if (t === null) throw new HttpError(400, `stream ${labels} (streams[${s}]): entries[${i}] has timestamp ${short(ts)}; the legacy format wants RFC 3339, e.g. "2024-05-01T10:00:00.123456789Z"`);
      if (typeof line !== "string") throw new HttpError(400, `stream ${labels} (streams[${s}]): entries[${i}] has a non-string log line ${short(line)}`);
      lines[cols.n] = line;
      cols.push(t.ms, t.ns, 0, 0, cols.meta.length);
    }
  }
  cols.streams.push({ labels, pairs: null, entryStart, entryCount: cols.n - entryStart });
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Go's time.RFC3339Nano parse: fractional seconds up to nanoseconds, Z or a ±hh:mm offset. */
export function parseRfc3339Nano(s: string): { ms: number; ns: number } | null {
  const m = RFC3339.exec(s);
  if (m === null) return null;
  const [, Y, Mo, D, h, mi, sec, frac, , sign, oh, om] = m;
  const base = Date.UTC(+Y, +Mo - 1, +D, +h, +mi, +sec);
  if (Number.isNaN(base) || +Mo < 1 || +Mo > 12 || +D < 1 || +D > 31 || +h > 23 || +mi > 59 || +sec > 59) return null;
  const offset = sign === undefined ? 0 : (sign === "-" ? -1 : 1) * (+oh * 60 + +om) * 60_000;
  const nanos = frac === undefined ? 0 : Number(frac.padEnd(9, "0"));
  const msFrac = Math.floor(nanos / 1e6);
  return { ms: base - offset + msFrac, ns: nanos - msFrac * 1e6 };
}

function describePairs(pairs: string[]): string {
  let s = "{";
  for (let i = 0; i < pairs.length; i += 2) s += (i > 0 ? ", " : "") + pairs[i] + "=" + JSON.stringify(pairs[i + 1]);
  return s + "}";
}

/** A JSON value for a message, shortened. */
function short(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? "undefined" : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 100 ? s.slice(0, 100) + "..." : s;
}
