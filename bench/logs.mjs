#!/usr/bin/env node
// Logs benchmark: a deterministic mix of nginx access-log and JSON app-log streams
// pushed into `wrangler dev` through the Loki push API, once as protobuf + snappy
// (what promtail, Grafana Agent/Alloy and winston-loki send) and once as gzip JSON
// (what pino-loki and browsers send), each into its own tenant. Then everything is
// flushed to R2 and two queries over the last hour are timed.
//
//   node bench/logs.mjs                 (npm run bench runs it after the metrics benchmarks)
//   BENCH_LOG_LINES=50000 node bench/logs.mjs     (quick)
//
// Environment: BENCH_LOG_LINES (lines per encoding, 400,000), BENCH_LOG_STREAMS (40),
// BENCH_LOG_BATCH_BYTES (raw bytes per request, 1 MiB as promtail's batch_size),
// BENCH_CONCURRENCY (requests in flight, 4), BENCH_QUERY_RUNS (5), BENCH_KEEP=1.
//
// The workload is deterministic: line content comes from a seeded PRNG, and the times
// written into lines are offsets from a fixed base (LINE_BASE_MS), so every run pushes
// the same bytes (the printed workload sha256 says so). Only the entries' timestamps
// move: the same offsets from a recent, minute-aligned anchor, so that every entry is
// inside the max age and the queries "over the last hour" select all of them.
//
// The bench tenants get limits far above what one machine can push (BENCH_LIMITS
// below, passed to wrangler dev as the LIMITS var): with Loki's defaults (4 MiB/s,
// burst 6 MiB) the MB/s figure would measure the rate limiter, not the ingester. The
// rate limiter stays in the path (leases), it just never refuses. Pushes answered 429
// or 5xx are retried with backoff and counted (printed); one that still fails after
// its retries ends the run with a non-zero exit, as does a query answering other
// counts than were pushed.
//
// Printed: raw MB/s (line bytes per wall second), raw MB per CPU-second of workerd
// (the runtime's processes; also over wrangler's node processes + workerd), bytes per
// line in R2, the compression ratio (raw line bytes / R2 block bytes), 429/5xx
// answers, and query latencies. Anchors: Loki's chunk compression is about 10x
// (snappy) to 18x (gzip) on its test logs; its sizing guide plans 2 to 4 MB/s per
// distributor core.

import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import protobuf from "protobufjs";
import snappy from "snappyjs";
import { ROOT, log, sleep, installCleanup, cpuSnapshot, cpuDelta, startWrangler } from "./lib.mjs";

const envInt = (name, fallback) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const LINES = envInt("BENCH_LOG_LINES", 400_000);
const STREAMS = envInt("BENCH_LOG_STREAMS", 40);
const BATCH_BYTES = envInt("BENCH_LOG_BATCH_BYTES", 1 << 20);
const CONCURRENCY = envInt("BENCH_CONCURRENCY", 4);
const RUNS = envInt("BENCH_QUERY_RUNS", 5);
installCleanup({ keep: process.env.BENCH_KEEP === "1", timeoutS: envInt("BENCH_TIMEOUT_S", 900) });

const TENANTS = { protobuf: "bench-logs-pb", json: "bench-logs-json" };
const GiB = 2 ** 30;
/**
 * Per-tenant limits for the bench tenants (docs/configuration.md): a log ingestion
 * rate and burst no single machine reaches, so no push waits for tokens, and a head
 * cap per shard that a larger BENCH_LOG_LINES cannot reach before the final flush.
 */
const BENCH_LIMITS = {
  logIngestionRateBytes: GiB,
  logIngestionBurstBytes: GiB,
  maxHeadBytesPerShard: 512 * 2 ** 20,
};
/** Line times are offsets from this fixed instant, so line content does not depend on when the bench runs. */
const LINE_BASE_MS = Date.UTC(2026, 0, 15, 12, 0, 0);

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------
// Workload
// ---------------------------------------------------------------------------------

const PATHS = ["/", "/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/cart", "/static/app.js", "/static/app.css", "/login", "/healthz", "/api/v1/search?q={q}", "/img/{id}.png"];
const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
  "curl/8.5.0",
  "Prometheus/2.42.0",
];
const STATUSES = [200, 200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 404, 500, 503];
const LEVELS = ["info", "info", "info", "info", "debug", "warn", "error"];
const MSGS = ["request handled", "cache miss", "order created", "payment authorised", "retrying upstream call", "slow query", "user signed in", "session expired", "connection reset by peer"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function clf(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/**
 * Streams: half nginx access logs, half JSON app logs; lines spread over the last hour.
 * Entry i of a stream is at offset floor(SPAN * i / perStream) from `start` (its
 * timestamp) and from LINE_BASE_MS (the time written in its line).
 */
function buildWorkload() {
  const rand = mulberry32(0x10c5);
  const SPAN = 3540_000;
  // A minute-aligned anchor a minute or two back: entries are recent (inside the max
  // age, before now), and their offsets from the minute grid are the same every run.
  const end = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
  const start = end - SPAN;
  const digest = createHash("sha256");
  const streams = [];
  for (let s = 0; s < STREAMS; s++) {
    const access = s % 2 === 0;
    streams.push({ labels: access ? { job: "nginx", host: `web-${s >> 1}`, env: "prod" } : { job: "app", app: `svc-${s >> 1}`, env: "prod" }, access, entries: [] });
  }
  const perStream = Math.ceil(LINES / STREAMS);
  let rawBytes = 0;
  let lines = 0;
  let appErrors = 0;
  let access500 = 0;
  for (const st of streams) {
    for (let i = 0; i < perStream && lines < LINES; i++, lines++) {
      const offset = Math.floor((SPAN * i) / perStream);
      const ms = start + offset;
      const lineMs = LINE_BASE_MS + offset;
      const ns = Math.floor(rand() * 1e6);
      let line;
      if (st.access) {
        const ip = `10.${Math.floor(rand() * 4)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`;
        const path = PATHS[Math.floor(rand() * PATHS.length)].replace("{id}", String(Math.floor(rand() * 100000))).replace("{q}", Math.floor(rand() * 1e6).toString(36));
        const status = STATUSES[Math.floor(rand() * STATUSES.length)];
        if (status === 500) access500++;
        line = `${ip} - - [${clf(lineMs)}] "${rand() < 0.8 ? "GET" : "POST"} ${path} HTTP/1.1" ${status} ${Math.floor(rand() * 50000)} "-" "${AGENTS[Math.floor(rand() * AGENTS.length)]}" ${(rand() * 0.5).toFixed(3)}`;
      } else {
        const level = LEVELS[Math.floor(rand() * LEVELS.length)];
        if (level === "error") appErrors++;
        line = JSON.stringify({
          ts: new Date(lineMs).toISOString(),
          level,
          msg: MSGS[Math.floor(rand() * MSGS.length)],
          trace_id: Math.floor(rand() * 2 ** 52).toString(16).padStart(16, "0"),
          user_id: Math.floor(rand() * 5000),
          duration_ms: Math.round(rand() * 300 * 100) / 100,
          route: PATHS[Math.floor(rand() * PATHS.length)],
        });
      }
      st.entries.push({ ms, ns, line });
      rawBytes += Buffer.byteLength(line);
      digest.update(`${offset}.${ns} ${line}\n`);
    }
  }
  // What makes the pushed bytes: every line and its offset, in stream order (not the anchor).
  const sha256 = digest.update(JSON.stringify(streams.map((st) => st.labels))).digest("hex");
  return { streams, rawBytes, lines, appErrors, access500, start, end, sha256 };
}

/** Requests of about BATCH_BYTES raw line bytes, each holding a slice of every stream (as a client batches). */
function batches(w) {
  const out = [];
  const cursors = w.streams.map(() => 0);
  const perStreamBytes = Math.max(1, Math.floor(BATCH_BYTES / w.streams.length));
  for (;;) {
    const req = [];
    let bytes = 0;
    w.streams.forEach((st, i) => {
      const entries = [];
      let b = 0;
      while (cursors[i] < st.entries.length && b < perStreamBytes) {
        const e = st.entries[cursors[i]++];
        entries.push(e);
        b += e.line.length;
      }
      if (entries.length) req.push({ labels: st.labels, entries });
      bytes += b;
    });
    if (!req.length) break;
    out.push({ streams: req, rawBytes: bytes });
  }
  return out;
}

const labelString = (labels) => "{" + Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(", ") + "}";

function encodeProtobuf(reqs) {
  const root = protobuf.loadSync(join(ROOT, "test", "support", "proto", "logproto.proto"));
  const PushRequest = root.lookupType("logproto.PushRequest");
  return reqs.map((r) => {
    const msg = PushRequest.create({
      streams: r.streams.map((s) => ({
        labels: labelString(s.labels),
        entries: s.entries.map((e) => ({ timestamp: { seconds: Math.floor(e.ms / 1000), nanos: (e.ms % 1000) * 1e6 + e.ns }, line: e.line })),
      })),
    });
    return { body: snappy.compress(PushRequest.encode(msg).finish()), rawBytes: r.rawBytes, headers: { "Content-Type": "application/x-protobuf" } };
  });
}

function encodeJsonGzip(reqs) {
  return reqs.map((r) => {
    const json = JSON.stringify({
      streams: r.streams.map((s) => ({ stream: s.labels, values: s.entries.map((e) => [String(e.ms) + String(e.ns).padStart(6, "0"), e.line]) })),
    });
    return { body: gzipSync(json), rawBytes: r.rawBytes, headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" } };
  });
}

/**
 * What Loki's own codecs would make of these same lines: each stream cut into blocks of
 * 256 KiB (Loki's chunk_block_size) of its lines, newline-separated, compressed with
 * gzip level 6 (Go's gzip.DefaultCompression, Loki's default encoding) and with snappy.
 * Timestamps are left out, so this flatters Loki slightly (its blocks also hold a
 * varint timestamp per entry). The ratio is a property of the data and the codec, so
 * this puts the anchors on our data.
 */
function lokiEquivalent(w) {
  let raw = 0;
  let gz = 0;
  let sn = 0;
  for (const st of w.streams) {
    let parts = [];
    let size = 0;
    const cut = () => {
      if (!size) return;
      const block = Buffer.concat(parts);
      raw += block.length;
      gz += gzipSync(block, { level: 6 }).length;
      sn += snappy.compress(block).length;
      parts = [];
      size = 0;
    };
    for (const e of st.entries) {
      const b = Buffer.from(e.line + "\n");
      parts.push(b);
      size += b.length;
      if (size >= 256 * 1024) cut();
    }
    cut();
  }
  return { gzip: raw / gz, snappy: raw / sn };
}

// ---------------------------------------------------------------------------------
// Push and measure
// ---------------------------------------------------------------------------------

const MAX_ATTEMPTS = 6;

/**
 * Sends every request, CONCURRENCY in flight. A 429 or 5xx answer is counted and the
 * request retried (backoff 100 ms doubling) up to MAX_ATTEMPTS times; any other
 * answer but 204, or a request still refused after its retries, counts as failed.
 */
async function push(wr, tenant, requests) {
  const before = cpuSnapshot(wr.pids());
  const t0 = process.hrtime.bigint();
  let next = 0;
  let failed = 0;
  let firstError = null;
  const answers = { 429: 0, "5xx": 0 };
  let first429 = null;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const req = requests[next++];
        for (let attempt = 1; ; attempt++) {
          const res = await fetch(`${wr.url}/loki/api/v1/push`, { method: "POST", body: req.body, headers: { ...req.headers, "X-Scope-OrgID": tenant }, signal: AbortSignal.timeout(120_000) });
          const text = await res.text();
          if (res.status === 204) break;
          const retryable = res.status === 429 || res.status >= 500;
          if (res.status === 429) {
            answers[429]++;
            first429 ??= text.slice(0, 300);
          } else if (res.status >= 500) answers["5xx"]++;
          if (retryable && attempt < MAX_ATTEMPTS) {
            await sleep(100 * 2 ** (attempt - 1));
            continue;
          }
          failed++;
          firstError ??= `HTTP ${res.status} after ${attempt} attempt(s): ${text.slice(0, 300)}`;
          break;
        }
      }
    }),
  );
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  await sleep(500);
  const d = cpuDelta(before, cpuSnapshot(wr.pids()));
  const rawBytes = requests.reduce((n, r) => n + r.rawBytes, 0);
  const wireBytes = requests.reduce((n, r) => n + r.body.length, 0);
  // workerd runs the Worker and the Durable Objects; wrangler's node processes only proxy.
  const workerdS = Object.entries(d.byComm).reduce((n, [comm, s]) => n + (comm.includes("workerd") ? s : 0), 0);
  return { wallS, cpuS: d.total, workerdS, byComm: d.byComm, rawBytes, wireBytes, requests: requests.length, failed, firstError, answers, first429 };
}

async function getJson(url, headers) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

async function timeQuery(wr, tenant, path, params) {
  const url = `${wr.url}${path}?${new URLSearchParams(params)}`;
  const times = [];
  let result;
  let cold = 0;
  for (let i = 0; i <= RUNS; i++) {
    const t0 = process.hrtime.bigint();
    result = await getJson(url, { "X-Scope-OrgID": tenant });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (i > 0) times.push(ms); // the first run warms the caches
    else cold = ms;
  }
  times.sort((a, b) => a - b);
  return { cold, median: times[times.length >> 1], data: result.data };
}

const fmt = (n, digits = 0) => (n === null || n === undefined || Number.isNaN(n) ? "n/a" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r, ri) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("   ") + (ri === 0 ? "\n" + widths.map((w) => "-".repeat(w)).join("   ") : "")).join("\n");
}

async function main() {
  log(`bench/logs: building ${fmt(LINES)} lines over ${STREAMS} streams…`);
  const w = buildWorkload();
  const reqs = batches(w);
  const pb = encodeProtobuf(reqs);
  const js = encodeJsonGzip(reqs);
  log(`bench/logs: ${fmt(w.rawBytes / 1e6, 1)} MB of lines in ${reqs.length} requests; protobuf+snappy ${fmt(pb.reduce((n, r) => n + r.body.length, 0) / 1e6, 1)} MB, gzip JSON ${fmt(js.reduce((n, r) => n + r.body.length, 0) / 1e6, 1)} MB on the wire; workload sha256 ${w.sha256.slice(0, 16)}`);

  const limits = Object.fromEntries(Object.values(TENANTS).map((t) => [t, BENCH_LIMITS]));
  const wr = await startWrangler({ vars: { LIMITS: JSON.stringify(limits) } });
  log(`bench/logs: wrangler dev on ${wr.url}, LIMITS ${JSON.stringify(BENCH_LIMITS)} for ${Object.values(TENANTS).join(", ")}`);
  const runs = [];
  for (const [name, tenant, requests] of [["protobuf + snappy", TENANTS.protobuf, pb], ["gzip JSON", TENANTS.json, js]]) {
    log(`bench/logs: pushing ${name}…`);
    const r = await push(wr, tenant, requests);
    log(`bench/logs: ${name}: ${r.requests} requests in ${fmt(r.wallS, 2)} s; answers 429: ${r.answers[429]}, 5xx: ${r.answers["5xx"]} (retried); failed after retries: ${r.failed}`);
    if (r.failed) throw new Error(`bench/logs: ${r.failed} of ${r.requests} ${name} pushes failed after ${MAX_ATTEMPTS} attempts (429: ${r.answers[429]}, 5xx: ${r.answers["5xx"]} answers in all); first: ${r.firstError}`);
    runs.push({ name, tenant, ...r });
  }

  log("bench/logs: POST /flush?all=true (every chunk to R2)…");
  const f = await fetch(`${wr.url}/flush?all=true`, { method: "POST", signal: AbortSignal.timeout(300_000) });
  if (f.status !== 204) throw new Error(`POST /flush: HTTP ${f.status}: ${await f.text()}`);

  const storage = [];
  for (const run of runs) {
    const blocks = (await getJson(`${wr.url}/api/v1/blocks?kind=logs`, { "X-Scope-OrgID": run.tenant })).data.blocks;
    const bytes = blocks.reduce((n, b) => n + b.size, 0);
    storage.push({ tenant: run.tenant, blocks: blocks.length, bytes });
  }

  // Queries over the last hour of the protobuf tenant (the JSON tenant holds the same
  // lines): from a minute before the first entry to a minute after the last (<= now),
  // so the range, the steps and the answers are the same every run.
  const tenant = runs[0].tenant;
  const startNs = String(w.start - 60_000) + "000000";
  const endNs = String(w.end + 60_000) + "000000";
  const filter = await timeQuery(wr, tenant, "/loki/api/v1/query_range", { query: '{job="nginx"} |= "\\" 500 "', start: startNs, end: endNs, limit: "1000", direction: "backward" });
  const count = await timeQuery(wr, tenant, "/loki/api/v1/query_range", { query: 'sum by (job) (count_over_time({env="prod"} |= "error" [1m]))', start: startNs, end: endNs, step: "60" });
  const filterLines = filter.data.result.reduce((n, s) => n + s.values.length, 0);
  const countTotal = count.data.result.reduce((n, s) => n + s.values.reduce((m, v) => m + Number(v[1]), 0), 0);

  const lines = [];
  lines.push("");
  lines.push(`Logs: ${fmt(w.lines)} lines, ${fmt(w.rawBytes / 1e6, 1)} MB raw, ${STREAMS} streams (nginx access + JSON app logs), ${fmt(BATCH_BYTES / 1024)} KiB raw per request, ${CONCURRENCY} in flight`);
  lines.push(`Workload sha256 ${w.sha256} (same lines every run); bench tenants' LIMITS ${JSON.stringify(BENCH_LIMITS)}`);
  const rows = [["push", "raw MB/s", "raw MB per workerd CPU-s", "raw MB per CPU-s (node + workerd)", "wire MB", "workerd CPU-s", "R2 bytes/line", "compression (raw/R2)", "429 / 5xx answers (retried)"]];
  runs.forEach((r, i) => {
    const st = storage[i];
    rows.push([
      r.name,
      fmt(r.rawBytes / 1e6 / r.wallS, 2),
      fmt(r.rawBytes / 1e6 / r.workerdS, 2),
      fmt(r.rawBytes / 1e6 / r.cpuS, 2),
      fmt(r.wireBytes / 1e6, 1),
      fmt(r.workerdS, 2),
      fmt(st.bytes / w.lines, 1),
      `${fmt(r.rawBytes / st.bytes, 1)}×`,
      `${r.answers[429]} / ${r.answers["5xx"]}`,
    ]);
  });
  lines.push(table(rows));
  const loki = lokiEquivalent(w);
  lines.push(`Anchors: Loki chunks ≈ 10× (snappy) to 18× (gzip) on Loki's test logs; on these lines Loki's codecs would give ${fmt(loki.snappy, 1)}× (snappy) and ${fmt(loki.gzip, 1)}× (gzip -6) over 256 KiB blocks, lines only. Loki sizing ≈ 2-4 MB/s per distributor core (compare raw MB per workerd CPU-s).`);
  lines.push(`R2 objects: ${storage.map((s) => `${s.tenant} ${s.blocks} blocks, ${fmt(s.bytes / 1e6, 2)} MB`).join("; ")}`);
  lines.push(`CPU-s by process: ${runs.map((r) => `${r.name}: ${Object.entries(r.byComm).map(([c, s]) => `${c} ${fmt(s, 2)}`).join(", ")}`).join("; ")}`);
  for (const r of runs) {
    if (r.answers[429] > 0) lines.push(`WARNING: ${r.name} got ${r.answers[429]} answers 429 despite the bench LIMITS; its MB/s includes waiting for the rate limiter. First: ${r.first429}`);
    if (r.answers["5xx"] > 0) lines.push(`WARNING: ${r.name} got ${r.answers["5xx"]} 5xx answers (retried with backoff): its MB/s includes the retries.`);
  }
  lines.push("");
  lines.push(table([
    ["query over the last hour (query_range)", "cold ms", `median of ${RUNS} ms`, "result"],
    ['{job="nginx"} |= "\\" 500 " (limit 1000)', fmt(filter.cold, 1), fmt(filter.median, 1), `${fmt(filterLines)} lines (pushed: ${fmt(Math.min(1000, w.access500))})`],
    ['sum by (job) (count_over_time({env="prod"} |= "error" [1m])), step 60s', fmt(count.cold, 1), fmt(count.median, 1), `${fmt(countTotal)} lines counted (pushed: ${fmt(w.appErrors)})`],
  ]));
  console.log(lines.join("\n"));
  await wr.stop();
  const wantFilter = Math.min(1000, w.access500);
  if (filterLines !== wantFilter || countTotal !== w.appErrors) {
    throw new Error(`bench/logs: queries answered ${filterLines} filtered lines (pushed ${wantFilter}) and counted ${countTotal} error lines (pushed ${w.appErrors}): the figures above are not of a correct run`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
