// Node-side helpers for the log end-to-end tests: the Loki query API over HTTP, and
// a recording proxy that sits between a real client and `wrangler dev` so a test can
// see exactly what the client put on the wire (Content-Type, encoding, body).

import { createServer, type Server } from "node:http";
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

/** An HTTP proxy to `target` that records every request and the upstream's status. */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const requests: RecordedRequest[] = [];
  const port = await freePort();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || k === "host" || k === "connection" || k === "content-length" || k === "transfer-encoding") continue;
        headers[k] = Array.isArray(v) ? v.join(", ") : v;
      }
      const method = req.method ?? "GET";
      fetch(new URL(req.url ?? "/", target), { method, headers, body: method === "GET" || method === "HEAD" ? undefined : body })
        .then(async (up) => {
          const upBody = Buffer.from(await up.arrayBuffer());
          requests.push({ method, path: req.url ?? "/", headers: req.headers, body, status: up.status });
          const outHeaders: Record<string, string> = {};
          up.headers.forEach((v, k) => {
            if (k !== "content-encoding" && k !== "content-length" && k !== "transfer-encoding") outHeaders[k] = v;
          });
          res.writeHead(up.status, outHeaders);
          res.end(upBody);
        })
        .catch((e: unknown) => {
          requests.push({ method, path: req.url ?? "/", headers: req.headers, body, status: 502 });
          res.writeHead(502, { "Content-Type": "text/plain" });
          res.end(`proxy: ${(e as Error).message}`);
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
