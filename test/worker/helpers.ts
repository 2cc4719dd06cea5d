// In-runtime test helpers: build remote write requests with our encoders and read
// back through the Worker's HTTP API (SELF), as a real client would.

import { SELF } from "cloudflare:test";
import { snappyCompress, snappyDecompress } from "../../src/proto/snappy";
import { encodeWriteRequestV1, encodeWriteRequestV2, decodeReadResponse, encodeReadRequest } from "../support/wire";
import { MatchType, type LabelMatcher, type MetricMetadata, type SeriesSamples } from "../../src/proto/types";

export interface TestSeries {
  labels: Record<string, string>;
  samples: [number, number][];
  createdTimestamp?: number;
}

export function toSeriesSamples(s: TestSeries): SeriesSamples {
  const labels = Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).flat();
  return {
    labels,
    timestamps: Float64Array.from(s.samples.map((x) => x[0])),
    values: Float64Array.from(s.samples.map((x) => x[1])),
  };
}

export async function pushV1(series: TestSeries[], opts: { tenant?: string; metadata?: MetricMetadata[]; headers?: Record<string, string> } = {}): Promise<Response> {
  const body = snappyCompress(encodeWriteRequestV1(series.map(toSeriesSamples), opts.metadata ?? []));
  return post("/api/v1/push", body, {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    ...(opts.tenant ? { "X-Scope-OrgID": opts.tenant } : {}),
    ...opts.headers,
  });
}

export async function pushV2(series: TestSeries[], opts: { tenant?: string; metadata?: (MetricMetadata | null)[] } = {}): Promise<Response> {
  const body = snappyCompress(
    encodeWriteRequestV2(series.map((s, i) => ({ ...toSeriesSamples(s), createdTimestamp: s.createdTimestamp ?? 0, metadata: opts.metadata?.[i] ?? null }))),
  );
  return post("/api/v1/write", body, {
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
    ...(opts.tenant ? { "X-Scope-OrgID": opts.tenant } : {}),
  });
}

export function post(path: string, body: Uint8Array | string, headers: Record<string, string>): Promise<Response> {
  return SELF.fetch(`http://ingester${path}`, { method: "POST", body, headers });
}

export function eq(name: string, value: string): LabelMatcher {
  return { type: MatchType.EQ, name, value };
}
export function re(name: string, value: string): LabelMatcher {
  return { type: MatchType.RE, name, value };
}

/** Remote read through the Worker; returns one result per query. */
export async function remoteRead(queries: { matchers: LabelMatcher[]; startMs: number; endMs: number }[], tenant?: string): Promise<SeriesSamples[][]> {
  const res = await post("/api/v1/read", snappyCompress(encodeReadRequest(queries)), {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Read-Version": "0.1.0",
    ...(tenant ? { "X-Scope-OrgID": tenant } : {}),
  });
  if (res.status !== 200) throw new Error(`remote read answered ${res.status}: ${await res.text()}`);
  return decodeReadResponse(snappyDecompress(new Uint8Array(await res.arrayBuffer()), 1 << 30));
}

export async function readAll(tenant?: string, startMs = 0, endMs = 8.64e15): Promise<SeriesSamples[]> {
  const [r] = await remoteRead([{ matchers: [re("__name__", ".+")], startMs, endMs }], tenant);
  return r;
}

/** Value bits as a string, so NaN payloads (the stale marker) compare exactly. */
export function bits(v: number): string {
  const w = new Uint32Array(new Float64Array([v]).buffer);
  return w[1].toString(16).padStart(8, "0") + w[0].toString(16).padStart(8, "0");
}

export const STALE_NAN = new Float64Array(new Uint32Array([2, 0x7ff00000]).buffer)[0];

/** Series as comparable plain data: labels object -> [t, value bits][] */
export function asMap(series: SeriesSamples[]): Map<string, [number, string][]> {
  const m = new Map<string, [number, string][]>();
  for (const s of series) {
    const pts: [number, string][] = [];
    for (let i = 0; i < s.timestamps.length; i++) pts.push([s.timestamps[i], bits(s.values[i])]);
    m.set(JSON.stringify(s.labels), pts);
  }
  return m;
}

export function expected(series: TestSeries[]): Map<string, [number, string][]> {
  return asMap(series.map(toSeriesSamples));
}
