// A crash of the whole runtime on the log path: Loki pushes (snappy protobuf and
// JSON, several in flight at once) run against `wrangler dev` while the runtime is
// SIGKILLed (wrangler, workerd: no graceful shutdown). Restarted on the same state
// directory, every line whose push was acked (204) must read back exactly once
// through /loki/api/v1/query_range, and nothing that was never sent may appear (a
// push cut by the kill may be stored in part, by the shards it reached, or not at
// all; never twice). Then POST /flush,
// more acked pushes, a second SIGKILL: every acked line again, from R2 and the heads.

import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { snappyCompress } from "../../src/proto/snappy";
import { encodePushRequest, jsonPushBody, ns } from "../support/loki_wire";
import { buildWorkerBundle, startWrangler, type WranglerHandle } from "../support/wrangler";

const TENANT = "crash-logs";
const STREAMS = 12;
const ENTRIES = 6;
/** Entries of one push, per stream, at base + p * 100 ms + j (ns part: the stream index). */
const BASE = Date.now() - 30 * 60_000;

const streamLabel = (s: number) => String(s).padStart(2, "0");

/** Push p's entries: [stream, ts, line]. Lines are unique, with a non-ASCII character. */
function entriesOf(p: number): [number, string, string][] {
  const out: [number, string, string][] = [];
  for (let s = 0; s < STREAMS; s++) for (let j = 0; j < ENTRIES; j++) out.push([s, ns(BASE + p * 100 + j, s + 1), `p=${p} s=${s} j=${j} ü`]);
  return out;
}

async function push(url: string, p: number): Promise<number> {
  const es = entriesOf(p);
  const byStream = new Map<number, [string, string][]>();
  for (const [s, ts, line] of es) {
    if (!byStream.has(s)) byStream.set(s, []);
    byStream.get(s)!.push([ts, line]);
  }
  let body: Uint8Array | string;
  let contentType: string;
  if (p % 2 === 0) {
    body = snappyCompress(encodePushRequest([...byStream].map(([s, values]) => ({ labels: `{app="crash", s="${streamLabel(s)}"}`, entries: values.map(([ts, line]) => ({ ts, line })) }))));
    contentType = "application/x-protobuf";
  } else {
    body = jsonPushBody([...byStream].map(([s, values]) => ({ stream: { app: "crash", s: streamLabel(s) }, values })));
    contentType = "application/json";
  }
  const res = await fetch(`${url}/loki/api/v1/push`, { method: "POST", body, headers: { "Content-Type": contentType, "X-Scope-OrgID": TENANT }, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (res.status !== 204) throw new Error(`push ${p}: HTTP ${res.status}: ${text}`);
  return p;
}

/** Every entry of the tenant, per stream: "ts line" strings in the order returned (forward). */
async function readAll(url: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (let s = 0; s < STREAMS; s++) {
    const q = new URLSearchParams({ query: `{app="crash", s="${streamLabel(s)}"}`, start: ns(BASE - 60_000), end: ns(Date.now() + 60_000), limit: "5000", direction: "forward" });
    const res = await fetch(`${url}/loki/api/v1/query_range?${q}`, { headers: { "X-Scope-OrgID": TENANT }, signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`query_range: HTTP ${res.status}: ${text.slice(0, 300)}`);
    const data = (JSON.parse(text) as { data: { result: { stream: Record<string, string>; values: [string, string][] }[] } }).data;
    for (const r of data.result) {
      const list = out.get(r.stream.s) ?? [];
      for (const [ts, line] of r.values) list.push(`${ts} ${line}`);
      out.set(r.stream.s, list);
    }
  }
  return out;
}

/**
 * Acked pushes' entries all present, each once; any other entry belongs to a push
 * that was in flight (unacked) when the runtime died.
 */
function checkReadBack(got: Map<string, string[]>, acked: Set<number>, inFlight: Set<number>): { lines: number; unackedStored: number } {
  const allowed = new Set<string>();
  const required = new Set<string>();
  for (const p of [...acked, ...inFlight]) {
    for (const [s, ts, line] of entriesOf(p)) {
      const key = `${streamLabel(s)} ${ts} ${line}`;
      allowed.add(key);
      if (acked.has(p)) required.add(key);
    }
  }
  const seen = new Set<string>();
  const duplicates: string[] = [];
  const unknown: string[] = [];
  for (const [s, list] of got) {
    for (const e of list) {
      const key = `${s} ${e}`;
      if (seen.has(key)) duplicates.push(key);
      seen.add(key);
      if (!allowed.has(key)) unknown.push(key);
    }
  }
  const missing = [...required].filter((k) => !seen.has(k));
  expect(duplicates.slice(0, 5), `${duplicates.length} lines read more than once`).toEqual([]);
  expect(unknown.slice(0, 5), `${unknown.length} lines never sent`).toEqual([]);
  expect(missing.slice(0, 5), `${missing.length} acked lines missing`).toEqual([]);
  return { lines: seen.size, unackedStored: seen.size - required.size };
}

/**
 * Pushes p = from, from+1, ... with `concurrency` in flight until stop() is called or
 * a push fails (the runtime died); acked and in-flight pushes are recorded.
 */
function pushLoop(url: string, from: number, concurrency: number, acked: Set<number>, inFlight: Set<number>) {
  let next = from;
  const state = { stopped: false, ended: false, error: null as string | null };
  const worker = async () => {
    while (!state.stopped) {
      const p = next++;
      inFlight.add(p);
      try {
        await push(url, p);
        inFlight.delete(p);
        acked.add(p);
      } catch (e) {
        // The runtime is gone (or refused): this push's fate is unknown; stop sending.
        state.error ??= (e as Error).message;
        state.stopped = true;
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker)).then(() => void (state.ended = true));
  return { stop: () => void (state.stopped = true), done, state };
}

describe("log path across a SIGKILL of the runtime", () => {
  let wrangler: WranglerHandle | undefined;
  const tempDirs = new Set<string>();
  let failed = false;

  afterAll(async () => {
    if (wrangler) await wrangler.kill9().catch(() => undefined);
    if (failed || process.env.KEEP_E2E_TMP) console.log(`e2e: kept logs and state in ${[...tempDirs].join(", ")}`);
    else for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  it("reads back every acked line exactly once after a crash mid-push, and again after a flush and a second crash", async () => {
    try {
      const bundle = await buildWorkerBundle();
      tempDirs.add(dirname(dirname(bundle)));
      wrangler = await startWrangler({ bundle });
      tempDirs.add(dirname(wrangler.persistDir));
      const persistDir = wrangler.persistDir;
      const acked = new Set<number>();
      const inFlight = new Set<number>();

      // 1. Pushes in flight, 4 at a time, when the runtime is killed.
      const loop = pushLoop(wrangler.url, 0, 4, acked, inFlight);
      while (acked.size < 40 && !loop.state.ended) await new Promise((r) => setTimeout(r, 20));
      expect(loop.state.error, "no push refused before the kill").toBeNull();
      expect(acked.size).toBeGreaterThanOrEqual(40);
      await wrangler.kill9();
      loop.stop();
      await loop.done;
      console.log(`e2e logs: ${acked.size} pushes acked before the SIGKILL, ${inFlight.size} in flight`);

      wrangler = await startWrangler({ persistDir, bundle });
      const first = checkReadBack(await readAll(wrangler.url), acked, inFlight);
      expect(first.lines).toBeGreaterThanOrEqual(acked.size * STREAMS * ENTRIES);
      console.log(`e2e logs: after restart ${first.lines} lines read back (${first.unackedStored} from pushes cut by the kill)`);

      // 2. Flush to R2, push more (heads), crash again.
      const flushed = await fetch(`${wrangler.url}/flush`, { method: "POST", headers: { "X-Scope-OrgID": TENANT }, signal: AbortSignal.timeout(120_000) });
      expect(flushed.status, await flushed.text()).toBe(204);
      const blocks = (await (await fetch(`${wrangler.url}/api/v1/blocks?kind=logs`, { headers: { "X-Scope-OrgID": TENANT } })).json()) as { data: { blocks: { size: number }[] } };
      expect(blocks.data.blocks.length).toBeGreaterThan(0);
      const from = Math.max(...acked, ...inFlight) + 1;
      for (let p = from; p < from + 10; p++) {
        await push(wrangler.url, p);
        acked.add(p);
      }
      await wrangler.kill9();
      wrangler = await startWrangler({ persistDir, bundle });
      const second = checkReadBack(await readAll(wrangler.url), acked, inFlight);
      // Whatever the first restart served is still served: nothing is lost by the flush or the second crash.
      expect(second.lines).toBe(first.lines + 10 * STREAMS * ENTRIES);
    } catch (e) {
      failed = true;
      if (wrangler) console.log(`--- wrangler log ---\n${wrangler.logTail(30)}`);
      throw e;
    }
  }, 400_000);
});
