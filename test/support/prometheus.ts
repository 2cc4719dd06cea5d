// Runs Debian's Prometheus (/usr/bin/prometheus, 2.42) as a real remote write sender
// and remote read client for the end-to-end tests: a generated config in a temp dir,
// a free loopback port, its TSDB in the temp dir (reusable across restarts).

import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { freePort, makeTempDir, sleep, spawnDetached, waitForHttpOk, type DetachedProcess } from "./wrangler";

export const PROMETHEUS_BIN = "/usr/bin/prometheus";

// snappyjs ships no type declarations: load it through require with the two functions typed.
const snappy = createRequire(import.meta.url)("snappyjs") as {
  compress(input: Uint8Array): Uint8Array;
  uncompress(input: Uint8Array): Uint8Array;
};

/** Snappy block format (what remote write/read bodies use), via snappyjs. */
export function snappyCompress(bytes: Uint8Array): Uint8Array {
  return snappy.compress(bytes);
}
export function snappyUncompress(bytes: Uint8Array): Uint8Array {
  return snappy.uncompress(bytes);
}

/**
 * POSTs a remote read request (the uncompressed prometheus.ReadRequest protobuf) the way
 * Prometheus's remote read client does, and returns the uncompressed ReadResponse bytes.
 */
export async function postRemoteRead(url: string, readRequest: Uint8Array, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<Uint8Array> {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Encoding": "snappy",
      "Content-Type": "application/x-protobuf",
      "X-Prometheus-Remote-Read-Version": "0.1.0",
      "User-Agent": "edge-ingester-e2e",
      ...headers,
    },
    body: snappyCompress(readRequest),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`remote read ${url}: HTTP ${res.status}: ${new TextDecoder().decode(body).slice(0, 500)}`);
  return snappyUncompress(body);
}

export interface RemoteWriteTarget {
  url: string;
  /** Extra HTTP headers. NB: Debian's 2.42 build does not send them (prometheus/prometheus#13030). */
  headers?: Record<string, string>;
  /** queue_config.max_samples_per_send (default 500). */
  maxSamplesPerSend?: number;
  /** queue_config.batch_send_deadline (default "1s"). */
  batchSendDeadline?: string;
  /** metadata_config.send (default true, as Prometheus). */
  sendMetadata?: boolean;
}

export interface RemoteReadTarget {
  url: string;
  /** Extra HTTP headers (see RemoteWriteTarget.headers: Debian's 2.42 may not send them). */
  headers?: Record<string, string>;
  /** read_recent (default true: also read ranges the local TSDB should have). */
  readRecent?: boolean;
}

export interface PrometheusOptions {
  /** Scrape its own /metrics (job "prometheus"). Default false. */
  scrapeSelf?: boolean;
  /** Other host:port targets to scrape (job "targets"). */
  scrapeTargets?: string[];
  /** global.scrape_interval (default "1s"). */
  scrapeInterval?: string;
  remoteWrite?: RemoteWriteTarget[];
  remoteRead?: RemoteReadTarget[];
  externalLabels?: Record<string, string>;
  /** Working dir (config, log). Default: a fresh temp dir. */
  dir?: string;
  /** --storage.tsdb.path; pass a previous run's dataDir to serve its data again. Default: <dir>/data. */
  dataDir?: string;
  port?: number;
  /** --storage.remote.flush-deadline: how long shutdown waits for remote write to drain (default "30s"). */
  flushDeadline?: string;
  extraArgs?: string[];
  readyTimeoutMs?: number;
}

export type ConfigOptions = Pick<PrometheusOptions, "scrapeSelf" | "scrapeTargets" | "scrapeInterval" | "remoteWrite" | "remoteRead" | "externalLabels">;
export type ScrapeTargets = Pick<PrometheusOptions, "scrapeSelf" | "scrapeTargets">;

/** One sample of the text exposition format. */
export interface ExposedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface InstantSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

/** Remote write counters of the first (or only) remote_write queue, from /metrics. */
export interface RemoteWriteStats {
  /** Samples sent, counted per attempt (prometheus_remote_storage_samples_total). */
  samplesSent: number;
  /** Samples whose send succeeded: attempts minus retried minus failed. */
  samplesSucceeded: number;
  samplesFailed: number;
  samplesRetried: number;
  samplesDropped: number;
  samplesPending: number;
  /** Samples read from the WAL by all queues (prometheus_remote_storage_samples_in_total). */
  samplesIn: number;
  /** Send attempts (prometheus_remote_storage_sent_batch_duration_seconds_count). */
  batches: number;
  metadataFailed: number;
  /** Newest timestamp appended to the WAL, and newest sent (seconds). */
  highestTimestampIn: number;
  highestSentTimestamp: number;
}

export interface PrometheusHandle {
  url: string;
  port: number;
  dir: string;
  dataDir: string;
  configFile: string;
  logFile: string;
  pid: number;
  pids(): number[];
  /** GET /api/v1/query; time in seconds (default now). */
  query(promql: string, time?: number): Promise<InstantSample[]>;
  /** GET /api/v1/query_range; times in seconds, step in seconds. */
  queryRange(promql: string, start: number, end: number, step: number): Promise<RangeSeries[]>;
  /** GET /api/v1/series. */
  series(match: string | string[], start?: number, end?: number): Promise<Record<string, string>[]>;
  /** Its own /api/v1/read: uncompressed ReadRequest in, uncompressed ReadResponse out. */
  remoteRead(readRequest: Uint8Array): Promise<Uint8Array>;
  /** Every sample of its own /metrics. */
  metrics(): Promise<ExposedSample[]>;
  /** Sum over the series of one of its own metrics whose labels include `labels` (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  remoteWriteStats(): Promise<RemoteWriteStats>;
  /** Rewrites the config and reloads it (POST /-/reload). */
  reload(config: ConfigOptions): Promise<void>;
  /**
   * Changes the scrape targets without a reload (file_sd; picked up within ~5 s, the
   * discovery manager's update throttle). A removed target's series get staleness markers.
   */
  setScrapeTargets(targets: ScrapeTargets): void;
  /** SIGTERM and wait: Prometheus drains remote write within the flush deadline. */
  stop(timeoutMs?: number): Promise<void>;
  /** SIGKILL. */
  kill(): Promise<void>;
  logTail(lines?: number): string;
}

/** file_sd target files of the two scrape jobs ("prometheus": itself; "targets": the rest). */
function targetFiles(dir: string, port: number): { self: string; others: string } {
  return { self: join(dir, `targets-self-${port}.json`), others: join(dir, `targets-${port}.json`) };
}

function writeTargets(dir: string, port: number, c: ScrapeTargets): void {
  const files = targetFiles(dir, port);
  const write = (file: string, targets: string[]): void => {
    // Atomic replace, so file_sd never reads a half-written file.
    writeFileSync(`${file}.tmp`, JSON.stringify(targets.length > 0 ? [{ targets, labels: {} }] : []));
    renameSync(`${file}.tmp`, file);
  };
  write(files.self, c.scrapeSelf ? [`127.0.0.1:${port}`] : []);
  write(files.others, c.scrapeTargets ?? []);
}

function renderConfig(dir: string, port: number, c: ConfigOptions): string {
  // Targets come from files (file_sd) rather than static_configs: removing a target is
  // then a discovery update, after which the scrape loop writes end-of-run staleness
  // markers (stopping a whole scrape pool, as a config reload does, writes none).
  writeTargets(dir, port, c);
  const files = targetFiles(dir, port);
  const scrapeConfigs = [
    { job_name: "prometheus", file_sd_configs: [{ files: [files.self], refresh_interval: "1s" }] },
    { job_name: "targets", file_sd_configs: [{ files: [files.others], refresh_interval: "1s" }] },
  ];
  const interval = c.scrapeInterval ?? "1s";
  const config = {
    global: {
      scrape_interval: interval,
      scrape_timeout: interval,
      evaluation_interval: interval,
      ...(c.externalLabels ? { external_labels: c.externalLabels } : {}),
    },
    scrape_configs: scrapeConfigs,
    remote_write: (c.remoteWrite ?? []).map((w) => ({
      url: w.url,
      remote_timeout: "30s",
      ...(w.headers ? { headers: w.headers } : {}),
      send_exemplars: false,
      queue_config: {
        capacity: 2500,
        max_shards: 4,
        min_shards: 1,
        max_samples_per_send: w.maxSamplesPerSend ?? 500,
        batch_send_deadline: w.batchSendDeadline ?? "1s",
        min_backoff: "100ms",
        max_backoff: "1s",
      },
      metadata_config: { send: w.sendMetadata ?? true },
    })),
    remote_read: (c.remoteRead ?? []).map((r) => ({
      url: r.url,
      remote_timeout: "30s",
      ...(r.headers ? { headers: r.headers } : {}),
      read_recent: r.readRecent ?? true,
    })),
  };
  // JSON is YAML: no YAML writer needed.
  return JSON.stringify(config, null, 2) + "\n";
}

/** Parses the Prometheus text exposition format (no escapes beyond \\ \" \n in label values). */
export function parseExposition(text: string): ExposedSample[] {
  const out: ExposedSample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    let name: string;
    const labels: Record<string, string> = {};
    let rest: string;
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace);
      let i = brace + 1;
      for (;;) {
        while (line[i] === "," || line[i] === " ") i++;
        if (line[i] === "}") {
          i++;
          break;
        }
        const eq = line.indexOf("=", i);
        const labelName = line.slice(i, eq);
        i = eq + 2; // past ="
        let value = "";
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\") {
            const next = line[i + 1];
            value += next === "n" ? "\n" : next;
            i += 2;
          } else value += line[i++];
        }
        i++; // closing quote
        labels[labelName] = value;
      }
      rest = line.slice(i).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const valueText = rest.split(" ")[0];
    const value = valueText === "+Inf" ? Infinity : valueText === "-Inf" ? -Infinity : Number(valueText);
    out.push({ name, labels, value });
  }
  return out;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  const body = JSON.parse(text) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`GET ${url}: ${body.error ?? text.slice(0, 500)}`);
  return body.data;
}

/** Starts /usr/bin/prometheus and resolves once /-/ready answers 200. */
export async function startPrometheus(opts: PrometheusOptions = {}): Promise<PrometheusHandle> {
  const dir = opts.dir ?? makeTempDir("edge-ingester-prometheus");
  mkdirSync(dir, { recursive: true });
  const dataDir = opts.dataDir ?? join(dir, "data");
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const configFile = join(dir, `prometheus-${port}.yml`);
  writeFileSync(configFile, renderConfig(dir, port, opts));
  const logFile = join(dir, `prometheus-${port}-${Date.now()}.log`);
  const args = [
    `--config.file=${configFile}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${dataDir}`,
    "--web.enable-remote-write-receiver",
    "--web.enable-lifecycle",
    `--storage.remote.flush-deadline=${opts.flushDeadline ?? "30s"}`,
    "--log.level=info",
    ...(opts.extraArgs ?? []),
  ];
  const proc: DetachedProcess = spawnDetached(PROMETHEUS_BIN, args, { cwd: dir, logFile });
  try {
    await waitForHttpOk(`${url}/-/ready`, proc, "prometheus", opts.readyTimeoutMs ?? 30_000);
  } catch (e) {
    await proc.kill9().catch(() => undefined);
    throw e;
  }

  const metrics = async (): Promise<ExposedSample[]> => {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`GET ${url}/metrics: HTTP ${res.status}`);
    return parseExposition(await res.text());
  };
  const sumOf = (samples: ExposedSample[], name: string, labels: Record<string, string> = {}): number => {
    let sum = 0;
    for (const s of samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
    return sum;
  };
  const maxOf = (samples: ExposedSample[], name: string): number => {
    let max = 0;
    for (const s of samples) if (s.name === name && s.value > max) max = s.value;
    return max;
  };

  return {
    url,
    port,
    dir,
    dataDir,
    configFile,
    logFile,
    pid: proc.pid,
    pids: () => proc.pids(),
    query: (promql, time) => {
      const params = new URLSearchParams({ query: promql });
      if (time !== undefined) params.set("time", String(time));
      return getJson<{ resultType: string; result: InstantSample[] }>(`${url}/api/v1/query?${params}`).then((d) => d.result);
    },
    queryRange: (promql, start, end, step) => {
      const params = new URLSearchParams({ query: promql, start: String(start), end: String(end), step: String(step) });
      return getJson<{ resultType: string; result: RangeSeries[] }>(`${url}/api/v1/query_range?${params}`).then((d) => d.result);
    },
    series: (match, start, end) => {
      const params = new URLSearchParams();
      for (const m of Array.isArray(match) ? match : [match]) params.append("match[]", m);
      if (start !== undefined) params.set("start", String(start));
      if (end !== undefined) params.set("end", String(end));
      return getJson<Record<string, string>[]>(`${url}/api/v1/series?${params}`);
    },
    remoteRead: (readRequest) => postRemoteRead(`${url}/api/v1/read`, readRequest),
    metrics,
    metric: async (name, labels) => sumOf(await metrics(), name, labels),
    remoteWriteStats: async () => {
      const m = await metrics();
      const samplesSent = sumOf(m, "prometheus_remote_storage_samples_total");
      const samplesFailed = sumOf(m, "prometheus_remote_storage_samples_failed_total");
      const samplesRetried = sumOf(m, "prometheus_remote_storage_samples_retried_total");
      return {
        samplesSent,
        samplesSucceeded: samplesSent - samplesRetried - samplesFailed,
        samplesFailed,
        samplesRetried,
        samplesDropped: sumOf(m, "prometheus_remote_storage_samples_dropped_total"),
        samplesPending: sumOf(m, "prometheus_remote_storage_samples_pending"),
        samplesIn: sumOf(m, "prometheus_remote_storage_samples_in_total"),
        batches: sumOf(m, "prometheus_remote_storage_sent_batch_duration_seconds_count"),
        metadataFailed: sumOf(m, "prometheus_remote_storage_metadata_failed_total"),
        highestTimestampIn: maxOf(m, "prometheus_remote_storage_highest_timestamp_in_seconds"),
        highestSentTimestamp: maxOf(m, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"),
      };
    },
    reload: async (config) => {
      writeFileSync(configFile, renderConfig(dir, port, config));
      const res = await fetch(`${url}/-/reload`, { method: "POST", signal: AbortSignal.timeout(60_000) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`prometheus reload: HTTP ${res.status}: ${text}`);
    },
    setScrapeTargets: (targets) => writeTargets(dir, port, targets),
    stop: async (timeoutMs = 90_000) => {
      await proc.stop(timeoutMs, "SIGTERM");
    },
    kill: () => proc.kill9(),
    logTail: (lines) => proc.logTail(lines),
  };
}

/** Polls until check() returns a truthy value (returned) or the timeout passes (throws with describe()). */
export async function waitUntil<T>(check: () => Promise<T | undefined | null | false>, timeoutMs: number, describe: () => string | Promise<string>, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${await describe()}`);
    await sleep(intervalMs);
  }
}
