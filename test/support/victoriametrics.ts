// Runs Debian's single-node VictoriaMetrics (/usr/bin/victoria-metrics, 1.79) on a free
// loopback port with its data in a temp dir: the reference point of the benchmark.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, makeTempDir, spawnDetached, waitForHttpOk } from "./wrangler";

export const VICTORIA_METRICS_BIN = "/usr/bin/victoria-metrics";

export interface VictoriaMetricsOptions {
  port?: number;
  /** -storageDataPath (default <temp dir>/data). */
  dataDir?: string;
  extraArgs?: string[];
}

export interface VictoriaMetricsHandle {
  /** http://127.0.0.1:<port>; remote write goes to `${url}/api/v1/write`. */
  url: string;
  port: number;
  dataDir: string;
  logFile: string;
  pid: number;
  pids(): number[];
  /** Instant query; returns data.result. */
  query(promql: string, time?: number): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** GET /internal/force_flush: makes recently ingested data searchable. */
  forceFlush(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  logTail(lines?: number): string;
}

export async function startVictoriaMetrics(opts: VictoriaMetricsOptions = {}): Promise<VictoriaMetricsHandle> {
  const dir = makeTempDir("edge-ingester-vm");
  const dataDir = opts.dataDir ?? join(dir, "data");
  mkdirSync(dataDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, `victoria-metrics-${port}.log`);
  const args = [
    `-httpListenAddr=127.0.0.1:${port}`,
    `-storageDataPath=${dataDir}`,
    "-retentionPeriod=10y",
    // Make just-written samples visible to queries (the default hides the last 30 s).
    "-search.latencyOffset=0s",
    ...(opts.extraArgs ?? []),
  ];
  const proc = spawnDetached(VICTORIA_METRICS_BIN, args, { cwd: dir, logFile });
  try {
    await waitForHttpOk(`${url}/health`, proc, "victoria-metrics", 30_000);
  } catch (e) {
    await proc.kill9().catch(() => undefined);
    throw e;
  }
  return {
    url,
    port,
    dataDir,
    logFile,
    pid: proc.pid,
    pids: () => proc.pids(),
    query: async (promql, time) => {
      const params = new URLSearchParams({ query: promql });
      if (time !== undefined) params.set("time", String(time));
      const res = await fetch(`${url}/api/v1/query?${params}`, { signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`victoria-metrics query: HTTP ${res.status}: ${text.slice(0, 500)}`);
      return (JSON.parse(text) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
    },
    forceFlush: async () => {
      const res = await fetch(`${url}/internal/force_flush`, { signal: AbortSignal.timeout(30_000) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`victoria-metrics force_flush: HTTP ${res.status}`);
    },
    stop: () => proc.stop(30_000, "SIGTERM"),
    kill: () => proc.kill9(),
    logTail: (lines) => proc.logTail(lines),
  };
}
