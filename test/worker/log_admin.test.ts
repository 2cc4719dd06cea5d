// The admin routes on the log side, through the Worker: POST /flush (and ?all=true),
// POST /shutdown and DELETE /shutdown reach every log shard; GET /api/v1/blocks?kind=logs
// lists log blocks in the metric blocks' shape (what bench/logs.mjs reads); GET
// /api/v1/status/ingesters carries the log shards.

import { describe, expect, it } from "vitest";
import { SELF } from "cloudflare:test";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { pushV1 } from "./helpers";
import { jsonPushBody, ns } from "../support/loki_wire";

const NOW = Date.now();

function pushLogs(tenant: string, streams: number, t: number, lines = 5): Promise<Response> {
  const body = jsonPushBody(
    Array.from({ length: streams }, (_, i) => ({
      stream: { app: "adm", i: String(i) },
      values: Array.from({ length: lines }, (_, j) => [ns(t + j * 1000, i), `line ${j} of stream ${i}`] as [string, string]),
    })),
  );
  return SELF.fetch("http://x/loki/api/v1/push", { method: "POST", body, headers: { "Content-Type": "application/json", "X-Scope-OrgID": tenant } });
}

function call(method: string, path: string, tenant: string): Promise<Response> {
  return SELF.fetch(`http://x${path}`, { method, headers: { "X-Scope-OrgID": tenant } });
}

interface LogBlockJson {
  key: string;
  size: number;
  shard: number;
  minTime: number;
  maxTime: number;
  stats: { numStreams: number; numChunks: number; numEntries: number; bytes: number };
}

async function logBlocks(tenant: string, query = ""): Promise<LogBlockJson[]> {
  const res = await call("GET", `/api/v1/blocks?kind=logs${query}`, tenant);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return (JSON.parse(text) as { data: { blocks: LogBlockJson[] } }).data.blocks;
}

interface LogShardJson {
  shard: number;
  streams: number;
  chunks: number;
  shutdown: boolean;
  observations: { counters: Record<string, number> };
}

async function logShards(tenant: string): Promise<LogShardJson[]> {
  const res = await call("GET", "/api/v1/status/ingesters", tenant);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { shards: unknown[]; logShards: LogShardJson[] } };
  expect(body.data.shards.length).toBe(body.data.logShards.length);
  return body.data.logShards;
}

describe("admin routes on log shards", () => {
  it("POST /flush writes every log shard's chunks to R2; /api/v1/blocks?kind=logs lists them in the metric blocks' shape", async () => {
    const tenant = "ladm-flush";
    const t = NOW - 600_000;
    expect((await pushLogs(tenant, 12, t)).status).toBe(204);
    expect((await pushV1([{ labels: { __name__: "adm_metric", a: "1" }, samples: [[NOW - 60_000, 1]] }], { tenant })).status).toBe(204);
    expect(await logBlocks(tenant)).toEqual([]);
    const shards = await logShards(tenant);
    expect(shards.map((s) => s.shard)).toEqual([0, 1, 2, 3]);
    expect(shards.reduce((n, s) => n + s.streams, 0)).toBe(12);
    expect(shards.reduce((n, s) => n + (s.observations.counters.lines_received ?? 0), 0)).toBe(60);

    expect((await call("POST", "/flush", tenant)).status).toBe(204);
    const blocks = await logBlocks(tenant);
    // One block per shard that held streams, holding all of them.
    expect(blocks.length).toBe(shards.filter((s) => s.streams > 0).length);
    expect(blocks.reduce((n, b) => n + b.stats.numStreams, 0)).toBe(12);
    expect(blocks.reduce((n, b) => n + b.stats.numEntries, 0)).toBe(60);
    expect(blocks.reduce((n, b) => n + b.stats.numChunks, 0)).toBe(12);
    for (const b of blocks) {
      expect(b.key).toMatch(new RegExp(`^tenants/${tenant}/logs/`));
      expect(b.size).toBe(b.stats.bytes);
      expect(b.minTime).toBe(t);
      expect(b.maxTime).toBe(t + 4000);
    }
    // The metric blocks stay apart: the default kind lists only them.
    const metrics = (await (await call("GET", "/api/v1/blocks", tenant)).json()) as { data: { blocks: { key: string; stats: { numSamples: number } }[] } };
    expect(metrics.data.blocks.length).toBe(1);
    expect(metrics.data.blocks[0].key).toMatch(new RegExp(`^tenants/${tenant}/blocks/`));
    // start / end (seconds) select by time, as for metric blocks.
    expect(await logBlocks(tenant, `&start=${(t + 5000) / 1000}`)).toEqual([]);
    expect((await logBlocks(tenant, `&end=${(t + 1000) / 1000}`)).length).toBe(blocks.length);
    // Chunks flushed are counted (forced: cut by the flush).
    const after = await logShards(tenant);
    expect(after.reduce((n, s) => n + (s.observations.counters["chunks_flushed/forced"] ?? 0), 0)).toBe(12);
  });

  it("refuses an unknown kind with 400", async () => {
    const res = await call("GET", "/api/v1/blocks?kind=traces", "ladm-flush");
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('kind must be "metrics" or "logs"');
  });

  it("POST /flush?all=true flushes the log shards of every tenant", async () => {
    const tenants = ["ladm-all-a", "ladm-all-b"];
    for (const tenant of tenants) expect((await pushLogs(tenant, 3, NOW - 300_000)).status).toBe(204);
    // Tenants are listed from R2, where each shard registers at its first push (not awaited by it).
    for (let i = 0; i < 100; i++) {
      const listed = await (await SELF.fetch("http://x/flush?all=true", { method: "POST" })).status;
      expect(listed).toBe(204);
      if ((await Promise.all(tenants.map((t) => logBlocks(t)))).every((b) => b.length > 0)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const tenant of tenants) expect((await logBlocks(tenant)).reduce((n, b) => n + b.stats.numEntries, 0)).toBe(15);
  });

  it("POST /shutdown stops log writes (503), flushes and releases the log heads; DELETE /shutdown resumes them", async () => {
    const tenant = "ladm-shutdown";
    expect((await pushLogs(tenant, 8, NOW - 200_000)).status).toBe(204);
    expect((await call("POST", "/shutdown", tenant)).status).toBe(204);
    let shards = await logShards(tenant);
    expect(shards.length).toBe(DEFAULT_LIMITS.shards);
    for (const s of shards) {
      expect(s.shutdown).toBe(true);
      expect(s.streams).toBe(0);
    }
    expect((await logBlocks(tenant)).reduce((n, b) => n + b.stats.numEntries, 0)).toBe(40);
    const refused = await pushLogs(tenant, 8, NOW - 100_000);
    expect(refused.status).toBe(503);
    expect(await refused.text()).toMatch(/is shut down \(POST \/shutdown\)/);
    // Counted as a refused push on the shard that refused it.
    shards = await logShards(tenant);
    expect(shards.reduce((n, s) => n + (s.observations.counters.push_failures ?? 0), 0)).toBeGreaterThan(0);

    expect((await call("DELETE", "/shutdown", tenant)).status).toBe(204);
    for (const s of await logShards(tenant)) expect(s.shutdown).toBe(false);
    expect((await pushLogs(tenant, 8, NOW - 100_000)).status).toBe(204);
    // Everything reads back: R2 for the first push, the heads for the second.
    const q = new URLSearchParams({ query: `{app="adm"}`, start: ns(NOW - 300_000), end: ns(NOW), limit: "1000" });
    const res = await SELF.fetch(`http://x/loki/api/v1/query_range?${q}`, { headers: { "X-Scope-OrgID": tenant } });
    const data = ((await res.json()) as { data: { result: { values: unknown[] }[] } }).data;
    expect(data.result.reduce((n, s) => n + s.values.length, 0)).toBe(80);
  });
});
