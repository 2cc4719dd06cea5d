#!/usr/bin/env node
// Query benchmark: the same day of node_exporter-like data (plus a classic histogram)
// in `wrangler dev` and in Debian's Prometheus, then query_range over the last 1 h
// and 24 h for typical dashboard queries, through both HTTP APIs. Prints each latency
// (median of BENCH_QUERY_RUNS after one warm-up) and the ratio.
//
//   node bench/query.mjs            (npm run bench runs it after the ingest benchmark)
//   BENCH_QUERY_SERIES=200 node bench/query.mjs     (quick)
//
// Our data is flushed to R2 before querying (POST /flush), so the 24 h queries read
// blocks, as they would in production; the heads still hold the retain period.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import snappy from "snappyjs";
import { ROOT, log, installCleanup, startWrangler, startPrometheus } from "./lib.mjs";

const envInt = (name, fallback) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const SERIES = envInt("BENCH_QUERY_SERIES", 1000);
const RUNS = envInt("BENCH_QUERY_RUNS", 5);
const INTERVAL_MS = 60_000;
const HOURS = 24;
installCleanup({ keep: process.env.BENCH_KEEP === "1", timeoutS: envInt("BENCH_TIMEOUT_S", 900) });

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Per host: 64 CPU counters, 4 network counters, 16 histogram buckets, 1 gauge, up. */
function buildSeries() {
  const rand = mulberry32(7);
  const out = [];
  for (let h = 0; out.length < SERIES; h++) {
    const instance = `node-${String(h).padStart(3, "0")}:9100`;
    const add = (name, extra, kind, rate) => out.length < SERIES && out.push({ labels: { __name__: name, ...extra, instance, job: "node" }, kind, rate, v: kind === "gauge" ? 4e9 : rand() * 1e6 });
    for (let cpu = 0; cpu < 8; cpu++) for (const mode of ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"]) add("node_cpu_seconds_total", { cpu: String(cpu), mode }, "counter", mode === "idle" ? 0.7 : rand() * 0.2);
    for (const device of ["eth0", "eth1", "lo", "docker0"]) add("node_network_receive_bytes_total", { device }, "counter", rand() * 1e6);
    for (const handler of ["/api", "/home"]) {
      const les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
      les.forEach((le, i) => add("http_request_duration_seconds_bucket", { handler, le }, "counter", 10 * (1 - Math.exp(-(i + 1) / 2))));
    }
    add("node_memory_MemAvailable_bytes", {}, "gauge", 0);
    add("up", {}, "const", 0);
  }
  return { series: out, rand };
}

function encodeRequests() {
  const WriteRequest = protobuf.loadSync(join(ROOT, "test", "support", "proto", "remote.proto")).lookupType("prometheus.WriteRequest");
  const { series, rand } = buildSeries();
  const end = Math.floor(Date.now() / INTERVAL_MS) * INTERVAL_MS - 60_000;
  const steps = (HOURS * 3600_000) / INTERVAL_MS;
  const start = end - (steps - 1) * INTERVAL_MS;
  const labels = series.map((s) => Object.keys(s.labels).sort().map((name) => ({ name, value: s.labels[name] })));
  const bodies = [];
  let pending = [];
  for (let k = 0; k < steps; k++) {
    const t = start + k * INTERVAL_MS;
    series.forEach((s, i) => {
      if (s.kind === "counter") s.v += s.rate * 60 * (0.5 + rand());
      else if (s.kind === "gauge") s.v += (rand() - 0.5) * 1e7;
      else s.v = 1;
      pending.push({ labels: labels[i], samples: [{ value: Math.round(s.v * 100) / 100, timestamp: t }] });
      if (pending.length >= 2000) {
        bodies.push(snappy.compress(WriteRequest.encode({ timeseries: pending }).finish()));
        pending = [];
      }
    });
  }
  if (pending.length) bodies.push(snappy.compress(WriteRequest.encode({ timeseries: pending }).finish()));
  return { bodies, start, end, samples: series.length * steps };
}

async function pushAll(url, bodies) {
  const headers = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0" };
  for (const body of bodies) {
    const res = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(60_000) });
    if (res.status >= 300) throw new Error(`${url}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
    await res.arrayBuffer();
  }
}

const QUERIES = [
  ["rate", "rate(node_network_receive_bytes_total[5m])"],
  ["sum by", 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'],
  ["histogram_quantile", "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"],
  ["topk", "topk(5, sum by (instance) (rate(node_cpu_seconds_total[5m])))"],
];

async function timeQuery(base, params) {
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${base}/api/v1/query_range?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(120_000) });
  const body = await res.json();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (body.status !== "success") throw new Error(`${base}: ${params.query}: ${body.error}`);
  return { ms, series: body.data.result.length };
}

async function median(base, params) {
  await timeQuery(base, params);
  const times = [];
  let series = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = await timeQuery(base, params);
    times.push(r.ms);
    series = r.series;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], series };
}

async function main() {
  if (!existsSync("/usr/bin/prometheus")) {
    console.log("query bench: skipped: Debian's prometheus is not installed (apt-get install prometheus)");
    return 0;
  }
  const w = encodeRequests();
  log(`query bench: ${SERIES} series × ${HOURS} h at ${INTERVAL_MS / 1000} s = ${w.samples} samples in ${w.bodies.length} requests`);
  // The default tenant's ingestion rate far above this load (Mimir's default 10,000 samples/s would throttle the load phase).
  const limits = { anonymous: { ingestionRate: 1e9, ingestionBurstSize: 1e9 } };
  const [ours, prom] = await Promise.all([startWrangler({ vars: { LIMITS: JSON.stringify(limits) } }), startPrometheus()]);
  await Promise.all([pushAll(`${ours.url}/api/v1/write`, w.bodies), pushAll(`${prom.url}/api/v1/write`, w.bodies)]);
  const flush = await fetch(`${ours.url}/flush`, { method: "POST" });
  if (flush.status !== 204) throw new Error(`POST /flush: ${flush.status} ${await flush.text()}`);

  const rows = [["query", "range / step", "series", "edge-ingester ms", "Prometheus 2.42 ms", "ours / Prometheus"]];
  for (const [range, stepS] of [[3600, 15], [HOURS * 3600, 60]]) {
    for (const [name, query] of QUERIES) {
      const params = { query, start: String((w.end - range * 1000) / 1000), end: String(w.end / 1000), step: String(stepS) };
      const a = await median(ours.url, params);
      const b = await median(prom.url, params);
      if (a.series !== b.series) log(`query bench: WARNING: ${name} over ${range / 3600} h: ${a.series} series from us, ${b.series} from Prometheus`);
      rows.push([name, `${range / 3600} h / ${stepS} s`, String(b.series), a.ms.toFixed(1), b.ms.toFixed(1), `${(a.ms / b.ms).toFixed(2)}×`]);
    }
  }
  // Peak resident memory of the runtime processes over the whole run (ingest, flush,
  // every query): an upper bound of what the queries held, for the 128 MB isolate limit.
  const peak = (pids) => pids.reduce((n, pid) => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return n + (m ? Number(m[1]) : 0);
    } catch {
      return n;
    }
  }, 0);
  const workerdKb = peak(ours.pids().filter((pid) => { try { return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd"; } catch { return false; } }));
  const promKb = peak(prom.pids());
  await Promise.all([ours.stop(), prom.stop()]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log(`\nQuery latency, median of ${RUNS} (query_range through each HTTP API, ${SERIES} series, data flushed to R2 on our side):`);
  rows.forEach((r, ri) => {
    console.log(r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("   "));
    if (ri === 0) console.log(widths.map((x) => "-".repeat(x)).join("   "));
  });
  console.log(`Peak RSS over the run: workerd ${(workerdKb / 1024).toFixed(0)} MB (all isolates and the local R2/SQLite simulators), Prometheus ${(promKb / 1024).toFixed(0)} MB`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    log(`query bench failed: ${e.stack ?? e}`);
    process.exit(1);
  },
);
