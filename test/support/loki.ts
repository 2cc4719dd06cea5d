// Node-side helpers for the log end-to-end tests: the Loki query API over HTTP, and
// a recording proxy that sits between a real client and `wrangler dev` so a test can
// see exactly what the client put on the wire (Content-Type, encoding, body).

import { createHash, randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { Socket } from "node:net";
import { freePort } from "./wrangler";

export interface LokiStream {
  stream: Record<string, string>;
  values: [string, string, ...unknown[]][];
}

export interface LokiMatrixSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

export interface LokiVectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface LokiQueryResponse {
  status: string;
  data: { resultType: string; result: unknown; stats?: unknown };
}

/** GET <base><path>?params; throws with the body unless 200 JSON. */
export async function lokiGet<T = LokiQueryResponse>(base: string, path: string, params: Record<string, string | string[]>, tenant?: string): Promise<T> {
  const url = new URL(path, base);
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) url.searchParams.append(k, x);
  const res = await fetch(url, { headers: tenant ? { "X-Scope-OrgID": tenant } : {} });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url.pathname}?${url.searchParams} answered ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** Every entry of a streams result, flattened, in the order the server listed them. */
export function entriesOf(streams: LokiStream[]): { labels: string; ts: string; line: string }[] {
  const out: { labels: string; ts: string; line: string }[] = [];
  for (const s of streams) {
    const labels = labelString(s.stream);
    for (const v of s.values) out.push({ labels, ts: v[0], line: v[1] });
  }
  return out;
}

/** A label object as a canonical, comparable string (names sorted). */
export function labelString(labels: Record<string, string>): string {
  return (
    "{" +
    Object.keys(labels)
      .sort()
      .map((k) => `${k}=${JSON.stringify(labels[k])}`)
      .join(", ") +
    "}"
  );
}

/** Unix ns as a decimal string, from ms. */
export function msToNs(ms: number): string {
  return String(ms) + "000000";
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  status: number;
}

export interface RecordingProxy {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy to `target` that records every request and the upstream's status.
 * Headers pass verbatim (node:http, not fetch, which would refuse to forward Origin),
 * so CORS between a browser and the server behind it is unchanged.
 */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const requests: RecordedRequest[] = [];
  const port = await freePort();
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const method = req.method ?? "GET";
      const path = req.url ?? "/";
      const headers = { ...req.headers, host: upstream.host };
      const up = httpRequest({ host: upstream.hostname, port: upstream.port, method, path, headers }, (upRes) => {
        const upChunks: Buffer[] = [];
        upRes.on("data", (c: Buffer) => upChunks.push(c));
        upRes.on("end", () => {
          requests.push({ method, path, headers: req.headers, body, status: upRes.statusCode ?? 0 });
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          res.end(Buffer.concat(upChunks));
        });
      });
      up.on("error", (e) => {
        requests.push({ method, path, headers: req.headers, body, status: 502 });
        res.writeHead(502, { "Content-Type": "text/plain" });
        res.end(`proxy: ${e.message}`);
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TailClient {
  /** Each text message received, parsed as JSON. */
  messages: unknown[];
  /** Resolves when the server closed the connection (or it broke). */
  closed: Promise<void>;
  /** Sends a close frame and ends the socket. */
  close(): void;
}

/**
 * A minimal RFC 6455 client for /loki/api/v1/tail over node:http (Node 20 has no
 * WebSocket global): the upgrade, then unmasked server frames read as text messages.
 * Enough for a tail, which only ever receives.
 */
export async function openTail(base: string, params: Record<string, string>, tenant: string): Promise<TailClient> {
  const url = new URL("/loki/api/v1/tail", base);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const key = randomBytes(16).toString("base64");
  const req = httpRequest({
    host: url.hostname,
    port: url.port,
    path: url.pathname + url.search,
    headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key, "X-Scope-OrgID": tenant },
  });
  const socket = await new Promise<Socket>((resolve, reject) => {
    req.on("upgrade", (res, sock: Socket, head: Buffer) => {
      const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      if (res.headers["sec-websocket-accept"] !== accept) reject(new Error("bad Sec-WebSocket-Accept"));
      if (head.length > 0) sock.unshift(head);
      resolve(sock);
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => reject(new Error(`tail answered ${res.statusCode}: ${Buffer.concat(chunks).toString()}`)));
    });
    req.on("error", reject);
    req.end();
  });
  const messages: unknown[] = [];
  let buf = Buffer.alloc(0);
  let fragments: Buffer[] = [];
  const closed = new Promise<void>((resolve) => {
    socket.on("close", () => resolve());
    socket.on("error", () => resolve());
  });
  socket.on("data", (data: Buffer) => {
    buf = Buffer.concat([buf, data]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + len) return;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (opcode === 0x8) {
        socket.end();
        return;
      }
      if (opcode === 0x1 || opcode === 0x0) {
        fragments.push(Buffer.from(payload));
        if (fin) {
          messages.push(JSON.parse(Buffer.concat(fragments).toString("utf8")));
          fragments = [];
        }
      }
    }
  });
  return {
    messages,
    closed,
    close: () => {
      // A masked close frame with status 1000 (clients must mask).
      const mask = randomBytes(4);
      const body = Buffer.from([0x03, 0xe8]);
      for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
      socket.write(Buffer.concat([Buffer.from([0x88, 0x80 | body.length]), mask, body]));
      socket.end();
    },
  };
}
