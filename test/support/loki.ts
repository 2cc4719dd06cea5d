// Node-side helpers for the log end-to-end tests: the Loki query API over HTTP, and
// a recording proxy that sits between a real client and `wrangler dev` so a test can
// see exactly what the client put on the wire (Content-Type, encoding, body).

import { createServer, request as httpRequest, type Server } from "node:http";
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
