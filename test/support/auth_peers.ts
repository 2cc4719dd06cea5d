// Real peers configured with credentials, for test/e2e/auth_clients.test.ts:
//
// - startPrometheusWithConfig(): Debian's Prometheus (prometheus.ts's handle) running a
//   prometheus.yml written here verbatim (basic_auth, authorization, write_relabel_configs,
//   several scrape jobs), which prometheus.ts's generated config does not offer. It
//   starts on an empty config, then the real one is written and applied with POST
//   /-/reload, so the handle (query, metrics, logs, stop) is prometheus.ts's own.
// - startVmagent(): Debian's vmagent (1.79) scraping a prometheus.yml and
//   remote-writing to one or more URLs, each with its own credentials.
// - startCountingTarget(): a tiny Node exporter whose counter is the number of scrapes
//   it served, so what a scraper sent is known exactly (1, 2, …, N).

import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { startPrometheus, type PrometheusHandle } from "./prometheus";
import { freePort, makeTempDir, spawnDetached, waitForHttpOk, type DetachedProcess } from "./wrangler";

export const VMAGENT_BIN = "/usr/bin/vmagent";

/** A Prometheus whose prometheus.yml is `config` (an object: JSON is YAML), given its own address (host:port) for self-scraping. */
export async function startPrometheusWithConfig(config: (self: string) => object): Promise<PrometheusHandle> {
  const prom = await startPrometheus({});
  try {
    await applyPrometheusConfig(prom, config(`127.0.0.1:${prom.port}`));
  } catch (e) {
    await prom.kill().catch(() => undefined);
    throw e;
  }
  return prom;
}

/**
 * Replaces the config and reloads. Remote write queues whose config is unchanged keep
 * running; removed scrape jobs stop without staleness markers.
 */
export async function applyPrometheusConfig(prom: PrometheusHandle, config: object): Promise<void> {
  writeFileSync(prom.configFile, JSON.stringify(config, null, 2) + "\n");
  const res = await fetch(`${prom.url}/-/reload`, { method: "POST", signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`prometheus reload: HTTP ${res.status}: ${text}\n${prom.logTail(20)}`);
}

export interface PromApiAnswer<T> {
  status: string;
  data?: T;
  error?: string;
  warnings?: string[];
}

/** GET <base>/api/v1/<path> with the given headers: the whole JSON answer and the status (warnings included). */
export async function promApi<T>(base: string, path: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: PromApiAnswer<T> }> {
  const res = await fetch(`${base}/api/v1/${path}?${new URLSearchParams(params)}`, { headers, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  let body: PromApiAnswer<T>;
  try {
    body = JSON.parse(text) as PromApiAnswer<T>;
  } catch {
    body = { status: "unparsed", error: text.slice(0, 500) };
  }
  return { status: res.status, body };
}

export interface VmagentRemoteWrite {
  url: string;
  basicAuth?: { username: string; password: string };
  bearerToken?: string;
}

export interface VmagentHandle {
  url: string;
  logFile: string;
  /** Every sample of vmagent's own /metrics whose name is `name` and labels include `labels`, summed. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  logTail(lines?: number): string;
}

/**
 * Starts vmagent with `scrapeConfig` (a prometheus.yml object) and one -remoteWrite.url
 * per entry; per-URL credentials are vmagent's array flags, one position per URL
 * (an empty position: none for that URL).
 */
export async function startVmagent(scrapeConfig: object, remoteWrites: VmagentRemoteWrite[]): Promise<VmagentHandle> {
  const dir = makeTempDir("edge-ingester-vmagent");
  const port = await freePort();
  const configFile = join(dir, "scrape.yml");
  writeFileSync(configFile, JSON.stringify(scrapeConfig, null, 2) + "\n");
  const logFile = join(dir, `vmagent-${port}.log`);
  const column = (f: (w: VmagentRemoteWrite) => string | undefined): string => remoteWrites.map((w) => f(w) ?? "").join(",");
  const args = [
    `-httpListenAddr=127.0.0.1:${port}`,
    `-promscrape.config=${configFile}`,
    `-remoteWrite.tmpDataPath=${join(dir, "queue")}`,
    "-remoteWrite.flushInterval=1s",
    ...remoteWrites.map((w) => `-remoteWrite.url=${w.url}`),
    `-remoteWrite.basicAuth.username=${column((w) => w.basicAuth?.username)}`,
    `-remoteWrite.basicAuth.password=${column((w) => w.basicAuth?.password)}`,
    `-remoteWrite.bearerToken=${column((w) => w.bearerToken)}`,
  ];
  const proc: DetachedProcess = spawnDetached(VMAGENT_BIN, args, { cwd: dir, logFile });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttpOk(`${url}/health`, proc, "vmagent", 30_000);
  } catch (e) {
    await proc.kill9().catch(() => undefined);
    throw e;
  }
  return {
    url,
    logFile,
    metric: async (name, labels = {}) => {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      let sum = 0;
      for (const line of text.split("\n")) {
        if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}=${JSON.stringify(v)}`))) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
      return sum;
    },
    stop: () => proc.stop(30_000, "SIGTERM"),
    kill: () => proc.kill9(),
    logTail: (lines) => proc.logTail(lines),
  };
}

export interface CountingTarget {
  /** host:port, for a scrape config. */
  address: string;
  /** Scrapes answered 200 so far (the counter's current value). */
  served(): number;
  /** From now on every scrape gets 503: no more samples of the target's metrics. */
  stopServing(): void;
  close(): Promise<void>;
}

/**
 * An exporter whose `e2e_target_scrapes_total{color="blue"}` is the number of the scrape
 * being answered (1, 2, 3, …) and `e2e_target_info{version="1.2.3"}` is 1.
 */
export async function startCountingTarget(): Promise<CountingTarget> {
  let served = 0;
  let serving = true;
  const port = await freePort();
  const server: Server = createServer((req, res) => {
    if (req.url !== "/metrics" || !serving) {
      res.writeHead(serving ? 404 : 503).end();
      return;
    }
    served++;
    res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" });
    res.end(
      "# HELP e2e_target_scrapes_total Scrapes served.\n# TYPE e2e_target_scrapes_total counter\n" +
        `e2e_target_scrapes_total{color="blue"} ${served}\n` +
        '# HELP e2e_target_info Build.\n# TYPE e2e_target_info gauge\ne2e_target_info{version="1.2.3"} 1\n',
    );
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${port}`,
    served: () => served,
    stopServing: () => {
      serving = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
