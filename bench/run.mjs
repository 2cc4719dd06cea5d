#!/usr/bin/env node
// Ingest benchmark: a node_exporter-like workload pushed through Prometheus remote
// write 1.0 into `wrangler dev` (the Worker + Ingester Durable Objects), then, when
// Debian's VictoriaMetrics is installed, the same bytes into VictoriaMetrics.
//
//   npm run bench
//   BENCH_SERIES=2000 BENCH_SAMPLES_PER_SERIES=20 npm run bench     (quick)
//
// Environment: BENCH_SERIES (10000), BENCH_SAMPLES_PER_SERIES (120),
// BENCH_BATCH (samples per request, 2000), BENCH_CONCURRENCY (requests in flight = sender
// shards, 4), BENCH_TENANT ("bench"), BENCH_SKIP_VM=1, BENCH_TIMEOUT_S (900),
// BENCH_KEEP=1 (keep the temp dirs with logs and state).
//
// The workload is deterministic (seeded PRNG) except for its time anchor: the last
// scrape is a minute before the run, so every sample is within the ingester's limits.
// Requests are built the way Prometheus 2.x's queue manager builds them: series are
// hashed onto BENCH_CONCURRENCY sender shards, each shard takes samples in scrape
// order and cuts a request every BENCH_BATCH samples, one TimeSeries (labels + one
// sample) per sample; each shard sends its requests one after another, the shards in
// parallel. Everything is encoded and snappy-compressed before the clock starts.
//
// CPU is utime+stime from /proc/<pid>/stat of the runtime's processes (wrangler's node
// processes and their workerd children; VictoriaMetrics' single process), read before
// and after the push.

import { existsSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import snappy from "snappyjs";
import { ROOT, log, sleep, installCleanup, cpuSnapshot, cpuDelta, startWrangler, startVictoriaMetrics } from "./lib.mjs";

// ---------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

const SERIES = envInt("BENCH_SERIES", 10_000);
const SAMPLES_PER_SERIES = envInt("BENCH_SAMPLES_PER_SERIES", 120);
const BATCH = envInt("BENCH_BATCH", 2_000);
const CONCURRENCY = envInt("BENCH_CONCURRENCY", 4);
const TIMEOUT_S = envInt("BENCH_TIMEOUT_S", 900);
const TENANT = process.env.BENCH_TENANT || "bench";
/** The bench tenant's limits (docs/configuration.md): rate and burst no single machine reaches, so leases cover nearly every push. */
const BENCH_LIMITS = { ingestionRate: 1e9, ingestionBurstSize: 1e9 };
const SKIP_VM = process.env.BENCH_SKIP_VM === "1";
const KEEP = process.env.BENCH_KEEP === "1";
const INTERVAL_MS = 15_000;
const SEED = 0x5eed_2026;

// Cloudflare's published prices (Workers Paid), dollars per unit.
const PRICE = {
  doRequest: 0.15 / 1e6, // Durable Objects requests
  sqliteRowWritten: 1.0 / 1e6, // SQLite-backed Durable Objects: rows written
  r2ClassA: 4.5 / 1e6, // R2 Class A operations (PUT)
  workerRequest: 0.3 / 1e6, // Workers Standard requests (shown separately)
};

installCleanup({ keep: KEEP, timeoutS: TIMEOUT_S });

// ---------------------------------------------------------------------------------
// Workload: node_exporter-like hosts
// ---------------------------------------------------------------------------------

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const GiB = 1024 ** 3;

/**
 * The series of one host: [name, extraLabels, kind, params]. kinds: counter (rate per
 * second, decimals), gauge (random walk: start, step, decimals, min, max), const, and
 * a few special ones (time, up, scrape_duration).
 */
function hostSeriesTemplates() {
  const t = [];
  const cpus = 8;
  const modes = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
  const modeRate = { idle: 0.7, iowait: 0.01, irq: 0.002, nice: 0.001, softirq: 0.01, steal: 0.0, system: 0.06, user: 0.2 };
  for (let cpu = 0; cpu < cpus; cpu++) {
    for (const mode of modes) t.push(["node_cpu_seconds_total", { cpu: String(cpu), mode }, "counter", { rate: modeRate[mode], decimals: 2, start: 1e5 }]);
    for (const mode of ["nice", "user"]) t.push(["node_cpu_guest_seconds_total", { cpu: String(cpu), mode }, "counter", { rate: 0, decimals: 2, start: 0 }]);
  }
  const devices = ["docker0", "eth0", "eth1", "lo"];
  const netRate = { docker0: 2e3, eth0: 5e5, eth1: 2e4, lo: 1e4 };
  for (const device of devices) {
    const r = netRate[device];
    t.push(["node_network_receive_bytes_total", { device }, "counter", { rate: r, decimals: 0, start: 1e10 }]);
    t.push(["node_network_transmit_bytes_total", { device }, "counter", { rate: r * 0.6, decimals: 0, start: 1e10 }]);
    t.push(["node_network_receive_packets_total", { device }, "counter", { rate: r / 800, decimals: 0, start: 1e7 }]);
    t.push(["node_network_transmit_packets_total", { device }, "counter", { rate: r / 900, decimals: 0, start: 1e7 }]);
    t.push(["node_network_receive_errs_total", { device }, "counter", { rate: 0.0005, decimals: 0, start: 0 }]);
    t.push(["node_network_transmit_errs_total", { device }, "counter", { rate: 0, decimals: 0, start: 0 }]);
    t.push(["node_network_receive_drop_total", { device }, "counter", { rate: 0.002, decimals: 0, start: 10 }]);
    t.push(["node_network_transmit_drop_total", { device }, "counter", { rate: 0, decimals: 0, start: 0 }]);
  }
  const mounts = [
    ["/dev/sda1", "ext4", "/", 100 * GiB],
    ["/dev/sda2", "ext4", "/home", 400 * GiB],
    ["/dev/nvme0n1p1", "xfs", "/data", 1800 * GiB],
    ["tmpfs", "tmpfs", "/run", 3 * GiB],
  ];
  for (const [device, fstype, mountpoint, size] of mounts) {
    const l = { device, fstype, mountpoint };
    t.push(["node_filesystem_size_bytes", l, "const", { start: size }]);
    t.push(["node_filesystem_avail_bytes", l, "gauge", { start: size * 0.4, step: 4096 * 64, decimals: 0, min: 0, max: size, align: 4096 }]);
    t.push(["node_filesystem_free_bytes", l, "gauge", { start: size * 0.45, step: 4096 * 64, decimals: 0, min: 0, max: size, align: 4096 }]);
    t.push(["node_filesystem_files", l, "const", { start: Math.round(size / 16384) }]);
    t.push(["node_filesystem_files_free", l, "gauge", { start: Math.round(size / 20000), step: 20, decimals: 0, min: 0, max: size / 16384 }]);
    t.push(["node_filesystem_readonly", l, "const", { start: 0 }]);
  }
  for (const device of ["nvme0n1", "sda"]) {
    t.push(["node_disk_read_bytes_total", { device }, "counter", { rate: 2e5, decimals: 0, start: 1e11, align: 512 }]);
    t.push(["node_disk_written_bytes_total", { device }, "counter", { rate: 8e5, decimals: 0, start: 1e11, align: 512 }]);
    t.push(["node_disk_reads_completed_total", { device }, "counter", { rate: 20, decimals: 0, start: 1e7 }]);
    t.push(["node_disk_writes_completed_total", { device }, "counter", { rate: 60, decimals: 0, start: 1e7 }]);
    t.push(["node_disk_io_time_seconds_total", { device }, "counter", { rate: 0.05, decimals: 3, start: 1e4 }]);
  }
  const mem = 32 * GiB;
  t.push(["node_memory_MemTotal_bytes", {}, "const", { start: mem }]);
  t.push(["node_memory_MemFree_bytes", {}, "gauge", { start: mem * 0.2, step: 4096 * 512, decimals: 0, min: 0, max: mem, align: 4096 }]);
  t.push(["node_memory_MemAvailable_bytes", {}, "gauge", { start: mem * 0.6, step: 4096 * 512, decimals: 0, min: 0, max: mem, align: 4096 }]);
  t.push(["node_memory_Buffers_bytes", {}, "gauge", { start: 5e8, step: 4096 * 16, decimals: 0, min: 0, max: mem, align: 4096 }]);
  t.push(["node_memory_Cached_bytes", {}, "gauge", { start: 1e10, step: 4096 * 256, decimals: 0, min: 0, max: mem, align: 4096 }]);
  t.push(["node_memory_SwapTotal_bytes", {}, "const", { start: 2 * GiB }]);
  t.push(["node_memory_SwapFree_bytes", {}, "gauge", { start: 1.9 * GiB, step: 4096, decimals: 0, min: 0, max: 2 * GiB, align: 4096 }]);
  t.push(["node_memory_Active_bytes", {}, "gauge", { start: 1.2e10, step: 4096 * 256, decimals: 0, min: 0, max: mem, align: 4096 }]);
  t.push(["node_memory_Inactive_bytes", {}, "gauge", { start: 6e9, step: 4096 * 256, decimals: 0, min: 0, max: mem, align: 4096 }]);
  t.push(["node_memory_Dirty_bytes", {}, "gauge", { start: 2e6, step: 4096 * 64, decimals: 0, min: 0, max: 1e9, align: 4096 }]);
  for (const n of ["node_load1", "node_load5", "node_load15"]) t.push([n, {}, "gauge", { start: 1.5, step: 0.2, decimals: 2, min: 0, max: 64 }]);
  t.push(["node_context_switches_total", {}, "counter", { rate: 8e3, decimals: 0, start: 1e10 }]);
  t.push(["node_intr_total", {}, "counter", { rate: 5e3, decimals: 0, start: 1e10 }]);
  t.push(["node_forks_total", {}, "counter", { rate: 10, decimals: 0, start: 1e7 }]);
  t.push(["node_procs_running", {}, "gauge", { start: 3, step: 2, decimals: 0, min: 1, max: 64 }]);
  t.push(["node_procs_blocked", {}, "gauge", { start: 0, step: 1, decimals: 0, min: 0, max: 8 }]);
  t.push(["node_boot_time_seconds", {}, "const", { start: 1.7e9 }]);
  t.push(["node_time_seconds", {}, "time", {}]);
  t.push(["node_vmstat_pgfault", {}, "counter", { rate: 3e3, decimals: 0, start: 1e10 }]);
  t.push(["node_vmstat_pgmajfault", {}, "counter", { rate: 0.5, decimals: 0, start: 1e5 }]);
  t.push(["node_vmstat_pswpin", {}, "counter", { rate: 0, decimals: 0, start: 1e3 }]);
  t.push(["node_vmstat_pswpout", {}, "counter", { rate: 0.01, decimals: 0, start: 1e3 }]);
  t.push(["node_netstat_Tcp_CurrEstab", {}, "gauge", { start: 120, step: 6, decimals: 0, min: 0, max: 5000 }]);
  t.push(["node_sockstat_TCP_inuse", {}, "gauge", { start: 140, step: 6, decimals: 0, min: 0, max: 5000 }]);
  for (const collector of ["cpu", "diskstats", "filesystem", "loadavg", "meminfo", "netdev", "stat", "vmstat"]) {
    t.push(["node_scrape_collector_duration_seconds", { collector }, "duration", { base: 0.0005 }]);
    t.push(["node_scrape_collector_success", { collector }, "const", { start: 1 }]);
  }
  t.push(["up", {}, "const", { start: 1 }]);
  t.push(["scrape_duration_seconds", {}, "duration", { base: 0.01 }]);
  t.push(["scrape_samples_scraped", {}, "const", { start: 0 }]); // filled in below
  t.push(["scrape_series_added", {}, "const", { start: 0 }]);
  return t;
}

function round(v, decimals) {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
}

/**
 * Builds the workload: `series` series over hosts, `samples` scrapes each. Returns
 * the series (labels for protobufjs, sender shard) and a generator of scrapes.
 */
function buildWorkload(seriesCount, samplesPerSeries, senderShards) {
  const rand = mulberry32(SEED);
  const templates = hostSeriesTemplates();
  const perHost = templates.length;
  const hosts = Math.ceil(seriesCount / perHost);
  const series = [];
  for (let h = 0; h < hosts && series.length < seriesCount; h++) {
    const instance = `node-${String(h).padStart(4, "0")}.dc1.example.com:9100`;
    // Each host is scraped at its own offset within the interval, with a few ms of jitter.
    const offsetMs = Math.floor(rand() * INTERVAL_MS);
    for (const [name, extra, kind, p] of templates) {
      if (series.length >= seriesCount) break;
      const all = { __name__: name, ...extra, instance, job: "node" };
      const labels = Object.keys(all)
        .sort()
        .map((k) => ({ name: k, value: all[k] }));
      const key = labels.map((l) => `${l.name}\u0000${l.value}`).join("\u0001");
      let value = p.start ?? 0;
      if (kind === "counter") value = round(p.start * (0.5 + rand()), p.decimals);
      if (kind === "gauge") value = round(p.start * (0.8 + 0.4 * rand()), p.decimals);
      if (name === "scrape_samples_scraped" || name === "scrape_series_added") value = name === "scrape_series_added" ? 0 : perHost - 4;
      series.push({ labels, host: h, offsetMs, kind, p, value, shard: fnv1a(key) % senderShards });
    }
  }
  return { series, hosts, rand };
}

/** Advances every series by one scrape; returns the timestamp of each host. */
function nextValue(s, tsMs, rand) {
  const p = s.p;
  switch (s.kind) {
    case "counter": {
      if (p.rate > 0) {
        let inc = p.rate * (INTERVAL_MS / 1000) * (0.5 + rand());
        if (p.align) inc = Math.round(inc / p.align) * p.align;
        s.value = round(s.value + inc, p.decimals);
      }
      break;
    }
    case "gauge": {
      let v = s.value + (rand() - 0.5) * 2 * p.step;
      if (p.align) v = Math.round(v / p.align) * p.align;
      s.value = round(Math.min(p.max, Math.max(p.min, v)), p.decimals);
      break;
    }
    case "time":
      s.value = tsMs / 1000;
      break;
    case "duration":
      s.value = p.base * (1 + 3 * rand());
      break;
    default:
      break;
  }
  return s.value;
}

// ---------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------

function loadWriteRequestType() {
  const candidates = [join(ROOT, "test", "support", "proto", "remote.proto"), join(ROOT, "bench", "proto", "remote.proto")];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new Error(`no remote.proto found (looked for ${candidates.join(", ")})`);
  return protobuf.loadSync(file).lookupType("prometheus.WriteRequest");
}

/** Encodes all requests, per sender shard, in send order. */
function encodeWorkload() {
  const WriteRequest = loadWriteRequestType();
  const { series, hosts, rand } = buildWorkload(SERIES, SAMPLES_PER_SERIES, CONCURRENCY);
  const byHost = Array.from({ length: hosts }, () => []);
  for (const s of series) byHost[s.host].push(s);
  const hostOffsets = byHost.map((list) => list[0]?.offsetMs ?? 0);

  // The last scrape a minute ago; hosts' scrapes interleave within each interval.
  const end = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const start = end - (SAMPLES_PER_SERIES - 1) * INTERVAL_MS - INTERVAL_MS;

  const lanes = Array.from({ length: CONCURRENCY }, () => ({ requests: [], pending: [] }));
  let rawBytes = 0;
  let wireBytes = 0;
  let requestCount = 0;
  const flush = (lane) => {
    if (lane.pending.length === 0) return;
    const raw = WriteRequest.encode({ timeseries: lane.pending }).finish();
    const body = snappy.compress(raw);
    rawBytes += raw.length;
    wireBytes += body.length;
    lane.requests.push({ body, samples: lane.pending.length });
    requestCount++;
    lane.pending = [];
  };

  // Scrapes in time order: hosts sorted by their offset within each interval.
  const hostOrder = [...byHost.keys()].sort((a, b) => hostOffsets[a] - hostOffsets[b]);
  let minTs = Infinity;
  let maxTs = -Infinity;
  for (let k = 0; k < SAMPLES_PER_SERIES; k++) {
    for (const h of hostOrder) {
      const jitter = Math.floor(rand() * 4);
      const ts = start + k * INTERVAL_MS + hostOffsets[h] + jitter;
      if (ts < minTs) minTs = ts;
      if (ts > maxTs) maxTs = ts;
      for (const s of byHost[h]) {
        const value = nextValue(s, ts, rand);
        const lane = lanes[s.shard];
        lane.pending.push({ labels: s.labels, samples: [{ value, timestamp: ts }] });
        if (lane.pending.length >= BATCH) flush(lane);
      }
    }
  }
  for (const lane of lanes) flush(lane);
  return { lanes, series: series.length, hosts, samples: series.length * SAMPLES_PER_SERIES, rawBytes, wireBytes, requestCount, minTs, maxTs };
}

// ---------------------------------------------------------------------------------
// Pushing
// ---------------------------------------------------------------------------------

const HEADERS = {
  "Content-Encoding": "snappy",
  "Content-Type": "application/x-protobuf",
  "X-Prometheus-Remote-Write-Version": "0.1.0",
  "User-Agent": "edge-ingester-bench",
};

/** Sends every lane's requests in order, lanes in parallel; retries 5xx/429 like Prometheus. */
async function push(url, lanes, extraHeaders) {
  const headers = { ...HEADERS, ...extraHeaders };
  const totalRequests = lanes.reduce((n, l) => n + l.requests.length, 0);
  let done = 0;
  let nextReport = 0.1;
  const out = { ok: 0, failedRequests: 0, failedSamples: 0, retries: 0, firstError: null };
  const sendOne = async (req) => {
    for (let attempt = 0; ; attempt++) {
      let status = 0;
      let text = "";
      try {
        const res = await fetch(url, { method: "POST", headers, body: req.body, signal: AbortSignal.timeout(60_000) });
        status = res.status;
        text = await res.text();
      } catch (e) {
        text = e.message;
      }
      if (status >= 200 && status < 300) {
        out.ok++;
        return;
      }
      const retryable = status === 0 || status === 429 || status >= 500;
      if (retryable && attempt < 5) {
        out.retries++;
        await sleep(100 * 2 ** attempt);
        continue;
      }
      out.failedRequests++;
      out.failedSamples += req.samples;
      if (out.firstError === null) out.firstError = `HTTP ${status}: ${text.trim().slice(0, 300)}`;
      return;
    }
  };
  await Promise.all(
    lanes.map(async (lane) => {
      for (const req of lane.requests) {
        await sendOne(req);
        done++;
        if (done / totalRequests >= nextReport) {
          process.stderr.write(`  ${Math.round((done / totalRequests) * 100)}%`);
          nextReport += 0.1;
        }
      }
    }),
  );
  process.stderr.write("\n");
  return out;
}

async function measuredPush(name, target, url, lanes, extraHeaders) {
  log(`bench: pushing to ${name} (${CONCURRENCY} in flight)…`);
  const before = cpuSnapshot(target.pids());
  const t0 = process.hrtime.bigint();
  const result = await push(url, lanes, extraHeaders);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  await sleep(500); // let work scheduled after the last ack run, then read the CPU
  const after = cpuSnapshot(target.pids());
  const d = cpuDelta(before, after);
  const restarted = d.lost.length > 0 || [...after.keys()].some((pid) => !before.has(pid));
  if (restarted) log(`bench: WARNING: ${name}'s processes changed during the push (lost ${d.lost.join(", ") || "none"}); CPU figures may be incomplete`);
  return { ...result, wallS, cpuTotal: d.total, cpuByComm: d.byComm, restarted };
}

async function getJson(url, headers = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

// ---------------------------------------------------------------------------------
// Report helpers
// ---------------------------------------------------------------------------------

const fmt = (n, digits = 0) =>
  n === null || n === undefined || Number.isNaN(n) ? "n/a" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r, ri) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("   ") + (ri === 0 ? "\n" + widths.map((w) => "-".repeat(w)).join("   ") : "")).join("\n");
}

// ---------------------------------------------------------------------------------
// Storage: flush everything to R2 as blocks, then query one hour of ~1,000 series
// ---------------------------------------------------------------------------------

async function measureStorage(wr, w) {
  const headers = { "X-Scope-OrgID": TENANT };
  log("bench: POST /flush (every chunk to R2)…");
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${wr.url}/flush`, { method: "POST", headers, signal: AbortSignal.timeout(300_000) });
  if (res.status !== 204) throw new Error(`POST /flush: HTTP ${res.status}: ${await res.text()}`);
  const flushS = Number(process.hrtime.bigint() - t0) / 1e9;
  const listed = (await getJson(`${wr.url}/api/v1/blocks`, headers)).data.blocks;
  const bytes = listed.reduce((n, b) => n + b.size, 0);
  const samples = listed.reduce((n, b) => n + b.stats.numSamples, 0);

  // ~1,000 series: the instances of enough hosts, over the hour ending at the last sample.
  const perHost = Math.ceil(w.series / w.hosts);
  const hostsWanted = Math.max(1, Math.ceil(1000 / perHost));
  const instances = Array.from({ length: Math.min(hostsWanted, w.hosts) }, (_, h) => `node-${String(h).padStart(4, "0")}\\.dc1\\.example\\.com:9100`);
  const root = protobuf.loadSync(join(ROOT, "test", "support", "proto", "remote.proto"));
  const ReadRequest = root.lookupType("prometheus.ReadRequest");
  const ReadResponse = root.lookupType("prometheus.ReadResponse");
  const body = snappy.compress(
    ReadRequest.encode(
      ReadRequest.create({
        queries: [{ startTimestampMs: w.maxTs - 3600_000, endTimestampMs: w.maxTs, matchers: [{ type: 2, name: "instance", value: instances.join("|") }] }],
        acceptedResponseTypes: [0],
      }),
    ).finish(),
  );
  const query = async () => {
    const before = (await getJson(`${wr.url}/api/v1/status/r2`)).data;
    const q0 = process.hrtime.bigint();
    const r = await fetch(`${wr.url}/api/v1/read`, { method: "POST", body, headers: { ...headers, "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy" }, signal: AbortSignal.timeout(120_000) });
    if (r.status !== 200) throw new Error(`remote read: HTTP ${r.status}: ${await r.text()}`);
    const decoded = ReadResponse.decode(snappy.uncompress(new Uint8Array(await r.arrayBuffer())));
    const ms = Number(process.hrtime.bigint() - q0) / 1e6;
    const after = (await getJson(`${wr.url}/api/v1/status/r2`)).data;
    const series = decoded.results[0]?.timeseries ?? [];
    return { ms, series: series.length, samples: series.reduce((n, s) => n + s.samples.length, 0), gets: after.gets - before.gets, lists: after.lists - before.lists };
  };
  const cold = await query();
  const warm = await query();
  return { flushS, blocks: listed.length, bytes, samples, cold, warm };
}

// ---------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------

async function main() {
  log(`bench: building ${fmt(SERIES)} series × ${fmt(SAMPLES_PER_SERIES)} samples (15 s interval), ${fmt(BATCH)} samples per request…`);
  const tEnc = Date.now();
  const w = encodeWorkload();
  log(
    `bench: ${fmt(w.samples)} samples from ${w.hosts} hosts in ${fmt(w.requestCount)} requests, ` +
      `${fmt(w.wireBytes / 1e6, 1)} MB on the wire (${fmt(w.rawBytes / 1e6, 1)} MB uncompressed), encoded in ${fmt((Date.now() - tEnc) / 1000, 1)} s`,
  );

  // --- ours ---
  log("bench: starting wrangler dev…");
  // The bench tenant's ingestion rate far above one machine (Mimir's default 10,000
  // samples/s would make this measure the rate limiter, as a tenant at its limit gets 429).
  const wr = await startWrangler({ vars: { LIMITS: JSON.stringify({ [TENANT]: BENCH_LIMITS }) } });
  log(`bench: tenant ${TENANT} LIMITS ${JSON.stringify(BENCH_LIMITS)}`);
  log(`bench: wrangler dev on ${wr.url} (pids ${wr.pids().join(", ")}; log ${wr.logFile})`);
  const oursRun = await measuredPush("edge-ingester (wrangler dev)", wr, `${wr.url}/api/v1/write`, w.lanes, { "X-Scope-OrgID": TENANT });
  const status = await getJson(`${wr.url}/api/v1/status/ingesters`, { "X-Scope-OrgID": TENANT });
  const shards = status.data.shards;
  const sumOf = (k) => shards.reduce((n, s) => n + (Number(s[k]) || 0), 0);
  const ours = {
    ...oursRun,
    shards: shards.length,
    storedSamples: sumOf("samplesAppended"),
    storedSeries: sumOf("series"),
    walRecords: sumOf("walRecords"),
    walBytes: sumOf("walBytes"),
    // SQLite rows written, as billed: every statement's own count (WAL, checkpoints, kv,
    // the shards' observations row), not one per WAL record assumed.
    rowsWritten: sumOf("rowsWritten"),
    doRequests: sumOf("pushes"),
    // Durable: a shard that restarted during the push counted more than its in-memory figures show.
    pushesCounted: shards.reduce((n, s) => n + (Number(s.observations?.counters?.pushes) || 0), 0),
    r2Puts: sumOf("r2Puts"),
    flushes: sumOf("flushes"),
    blocksWritten: sumOf("blocksWritten"),
  };
  ours.storage = await measureStorage(wr, w);
  ours.r2Puts = ours.storage.blocks;
  const afterFlush = (await getJson(`${wr.url}/api/v1/status/ingesters`, { "X-Scope-OrgID": TENANT })).data.shards;
  ours.storage.rowsWritten = afterFlush.reduce((n, s) => n + (Number(s.rowsWritten) || 0), 0) - ours.rowsWritten;
  await wr.stop();

  // --- VictoriaMetrics ---
  let vm = null;
  if (SKIP_VM) log("bench: BENCH_SKIP_VM=1: skipping VictoriaMetrics");
  else if (!existsSync("/usr/bin/victoria-metrics")) log("bench: /usr/bin/victoria-metrics not installed: skipping VictoriaMetrics");
  else {
    log("bench: starting victoria-metrics…");
    const v = await startVictoriaMetrics();
    const vmRun = await measuredPush("victoria-metrics", v, `${v.url}/api/v1/write`, w.lanes, {});
    await fetch(`${v.url}/internal/force_flush`, { signal: AbortSignal.timeout(60_000) }).then((r) => r.arrayBuffer());
    const at = Math.ceil(w.maxTs / 1000) + 1;
    const window = Math.ceil((w.maxTs - w.minTs) / 1000) + 60;
    let storedSamples = NaN;
    let storedSeries = NaN;
    // Newly ingested series may take a moment to become searchable: poll briefly.
    for (let i = 0; i < 40; i++) {
      const q = async (promql) => {
        const r = await getJson(`${v.url}/api/v1/query?${new URLSearchParams({ query: promql, time: String(at) })}`);
        return r.data.result.length ? Number(r.data.result[0].value[1]) : 0;
      };
      storedSamples = await q(`sum(count_over_time({__name__=~".+"}[${window}s]))`);
      storedSeries = await q(`count(last_over_time({__name__=~".+"}[${window}s]))`);
      if (storedSamples >= w.samples - vmRun.failedSamples) break;
      await sleep(250);
    }
    vm = { ...vmRun, storedSamples, storedSeries };
    await v.stop();
  }

  // --- report ---
  const n = w.samples;
  const perCpu = (r, cpu) => (cpu > 0 ? n / cpu : NaN);
  const workerdCpu = ours.cpuByComm.workerd ?? 0;
  const dollarsPerBillion = (count, price) => (count / n) * 1e9 * price;
  const cost = {
    doRequests: dollarsPerBillion(ours.doRequests, PRICE.doRequest),
    // The push's rows and the final flush's (its checkpoints delete the WAL rows, and a delete counts as a row written).
    rows: dollarsPerBillion(ours.rowsWritten + ours.storage.rowsWritten, PRICE.sqliteRowWritten),
    r2: dollarsPerBillion(ours.r2Puts, PRICE.r2ClassA),
    workerRequests: dollarsPerBillion(w.requestCount, PRICE.workerRequest),
  };
  const costTotal = cost.doRequests + cost.rows + cost.r2;

  const lines = [];
  lines.push("");
  lines.push(`Workload: ${fmt(w.series)} series (${w.hosts} node_exporter-like hosts) × ${fmt(SAMPLES_PER_SERIES)} samples at 15 s = ${fmt(n)} samples`);
  lines.push(`          ${fmt(w.requestCount)} remote write 1.0 requests of ≤ ${fmt(BATCH)} samples, ${CONCURRENCY} in flight (Prometheus-style sender shards)`);
  lines.push(`          wire: ${fmt(w.wireBytes)} bytes snappy (${fmt(w.wireBytes / n, 2)} bytes/sample; ${fmt(w.rawBytes / n, 1)} uncompressed)`);
  lines.push("");
  const rows = [["", "edge-ingester (wrangler dev)", vm ? "VictoriaMetrics 1.79" : "VictoriaMetrics", vm ? "ours / VM" : ""]];
  const ratio = (a, b) => (vm && b > 0 ? `${fmt(a / b, 3)}×` : "");
  rows.push(["samples pushed", fmt(n), vm ? fmt(n) : "—", ""]);
  rows.push(["requests failed (retries)", `${fmt(ours.failedRequests)} (${fmt(ours.retries)})`, vm ? `${fmt(vm.failedRequests)} (${fmt(vm.retries)})` : "—", ""]);
  rows.push(["samples stored (verified)", fmt(ours.storedSamples), vm ? fmt(vm.storedSamples) : "—", ""]);
  rows.push(["series stored", fmt(ours.storedSeries), vm ? fmt(vm.storedSeries) : "—", ""]);
  rows.push(["wall time (s)", fmt(ours.wallS, 2), vm ? fmt(vm.wallS, 2) : "—", ratio(ours.wallS, vm?.wallS)]);
  rows.push(["samples/s", fmt(n / ours.wallS), vm ? fmt(n / vm.wallS) : "—", ratio(n / ours.wallS, vm ? n / vm.wallS : 0)]);
  rows.push(["CPU-s (runtime total)", fmt(ours.cpuTotal, 2), vm ? fmt(vm.cpuTotal, 2) : "—", ratio(ours.cpuTotal, vm?.cpuTotal)]);
  rows.push(["  of which workerd", fmt(workerdCpu, 2), "", ""]);
  rows.push(["  of which wrangler (node)", fmt(ours.cpuByComm.node ?? 0, 2), "", ""]);
  if (ours.cpuByComm["reaped children"]) rows.push(["  of which exited children", fmt(ours.cpuByComm["reaped children"], 2), "", ""]);
  rows.push(["samples per CPU-s (total)", fmt(perCpu(ours, ours.cpuTotal)), vm ? fmt(perCpu(vm, vm.cpuTotal)) : "—", ratio(perCpu(ours, ours.cpuTotal), vm ? perCpu(vm, vm.cpuTotal) : 0)]);
  rows.push(["samples per CPU-s (workerd)", fmt(perCpu(ours, workerdCpu)), "", ratio(perCpu(ours, workerdCpu), vm ? perCpu(vm, vm.cpuTotal) : 0)]);
  rows.push(["wire bytes/sample", fmt(w.wireBytes / n, 2), vm ? fmt(w.wireBytes / n, 2) : "—", ""]);
  rows.push(["WAL bytes/sample", fmt(ours.walBytes / n, 2), "", ""]);
  rows.push(["WAL records (not yet checkpointed)", fmt(ours.walRecords), "", ""]);
  rows.push(["SQLite rows written (per DO request)", `${fmt(ours.rowsWritten)} (${fmt(ours.rowsWritten / Math.max(1, ours.doRequests), 2)})`, "", ""]);
  rows.push(["DO requests per push", fmt(ours.doRequests / w.requestCount, 2), "", ""]);
  rows.push(["flushes / blocks during the push", `${fmt(ours.flushes)} / ${fmt(ours.blocksWritten)}`, "", ""]);
  lines.push(table(rows));
  const st = ours.storage;
  lines.push("");
  lines.push("Storage in R2 (after POST /flush):");
  lines.push(
    table([
      ["", "edge-ingester", "anchors on this workload kind"],
      ["blocks (R2 objects) / flush time", `${fmt(st.blocks)} / ${fmt(st.flushS, 2)} s`, ""],
      ["SQLite rows written by the flush (checkpoints)", fmt(st.rowsWritten), ""],
      ["samples in blocks", fmt(st.samples), ""],
      ["R2 bytes/sample (block size / samples)", fmt(st.bytes / Math.max(1, st.samples), 2), "VictoriaMetrics ≈ 2.1, Prometheus 2.42 blocks ≈ 3.8"],
      ["R2 PUTs per million samples", fmt((st.blocks / n) * 1e6, 2), ""],
      [`query 1 h of ${fmt(st.cold.series)} series (cold): ranged GETs / LISTs / ms`, `${fmt(st.cold.gets)} / ${fmt(st.cold.lists)} / ${fmt(st.cold.ms)}`, `${fmt(st.cold.samples)} samples returned`],
      [`same query, index cached (warm): GETs / LISTs / ms`, `${fmt(st.warm.gets)} / ${fmt(st.warm.lists)} / ${fmt(st.warm.ms)}`, ""],
    ]),
  );
  lines.push("");
  lines.push(`Cost model (Cloudflare list prices), dollars per billion samples, ${ours.shards} shards:`);
  lines.push(
    table([
      ["item", "count in run", "per 1e9 samples", "price", "$ / 1e9 samples"],
      ["DO requests", fmt(ours.doRequests), fmt((ours.doRequests / n) * 1e9), "$0.15 / M", `$${fmt(cost.doRequests, 2)}`],
      ["SQLite rows written (push + flush)", fmt(ours.rowsWritten + st.rowsWritten), fmt(((ours.rowsWritten + st.rowsWritten) / n) * 1e9), "$1.00 / M", `$${fmt(cost.rows, 2)}`],
      ["R2 PUTs (class A)", fmt(ours.r2Puts), fmt((ours.r2Puts / n) * 1e9), "$4.50 / M", `$${fmt(cost.r2, 2)}`],
      ["total", "", "", "", `$${fmt(costTotal, 2)}`],
      ["(Worker requests, not in total)", fmt(w.requestCount), fmt((w.requestCount / n) * 1e9), "$0.30 / M", `$${fmt(cost.workerRequests, 2)}`],
    ]),
  );
  lines.push("Not modelled: Durable Object duration (GB-s), SQLite storage, R2 storage, egress.");

  const problems = [];
  if (ours.restarted) problems.push("edge-ingester's processes changed during the push (a workerd restart?): CPU figures may be incomplete");
  if (vm?.restarted) problems.push("VictoriaMetrics' processes changed during the push: CPU figures may be incomplete");
  if (ours.pushesCounted !== ours.doRequests) problems.push(`a shard restarted during the push (${fmt(ours.pushesCounted)} pushes counted, ${fmt(ours.doRequests)} since the shards started): SQLite rows and DO requests are undercounted`);
  if (ours.failedRequests > 0) problems.push(`edge-ingester refused ${ours.failedRequests} requests (${ours.failedSamples} samples); first: ${ours.firstError}`);
  if (ours.storage.samples !== ours.storedSamples) problems.push(`blocks in R2 hold ${fmt(ours.storage.samples)} samples, the ingesters stored ${fmt(ours.storedSamples)}`);
  if (ours.storedSamples !== n - ours.failedSamples) problems.push(`edge-ingester stored ${fmt(ours.storedSamples)} samples, expected ${fmt(n - ours.failedSamples)}`);
  if (vm && vm.failedRequests > 0) problems.push(`VictoriaMetrics refused ${vm.failedRequests} requests; first: ${vm.firstError}`);
  if (vm && vm.storedSamples !== n - vm.failedSamples) problems.push(`VictoriaMetrics stored ${fmt(vm.storedSamples)} samples, expected ${fmt(n - vm.failedSamples)}`);
  if (problems.length > 0) {
    lines.push("");
    lines.push("WARNING: the figures above are not of a complete, verified ingest:");
    for (const p of problems) lines.push(`  - ${p}`);
  }
  console.log(lines.join("\n"));
  return problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    log(`bench failed: ${e.stack ?? e}`);
    process.exit(1);
  },
);
