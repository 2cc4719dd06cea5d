#!/usr/bin/env node
// Log chunk compression, measured inside workerd: which codec a log chunk block
// should use. Generates a seeded, deterministic mix of nginx "combined" access-log
// lines and JSON application-log lines, bundles bench/logs_compression_worker.ts
// with esbuild, runs it in workerd through Miniflare, and prints for every codec
// a Worker can use: compression ratio per data set, compress MB/s and decompress
// MB/s (MB = 10^6 bytes of raw block), and the LogChunkBuilder's own append+cut
// throughput per encoding.
//
// workerd's clocks stand still during CPU work, and this machine is shared, so
// the figures are workerd's own CPU time (/proc utime+stime) over each request,
// repeated until it has processed at least PASS_MB of raw blocks; best of ROUNDS.
//
// Usage: node bench/logs_compression.mjs [MiB per data set, default 4]

import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuSnapshot, processTree } from "./lib.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MIB = Number(process.argv[2] ?? 4);
const ROUNDS = 2;
const PASS_MB = 24;

function mulberry32(seed) {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = mulberry32(20261101);
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo));
const hex = (n) => {
  let s = "";
  for (let i = 0; i < n; i++) s += "0123456789abcdef"[int(0, 16)];
  return s;
};

// A few hundred clients, a zipf-ish set of paths and agents: real access logs repeat a lot.
const IPS = Array.from({ length: 300 }, () => `${int(1, 224)}.${int(0, 256)}.${int(0, 256)}.${int(1, 255)}`);
const PATHS = [
  "/", "/index.html", "/favicon.ico", "/api/v1/users", "/api/v1/orders", "/api/v1/products", "/static/js/app.js",
  "/static/css/main.css", "/login", "/logout", "/healthz", "/metrics", "/api/v1/search", "/images/logo.png",
];
const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
  "curl/8.5.0",
  "Prometheus/2.42.0",
  "Go-http-client/1.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];
const REFERERS = ["-", "https://example.com/", "https://www.google.com/", "https://example.com/shop?page=2"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const STATUSES = [200, 200, 200, 200, 200, 200, 304, 301, 404, 500, 201, 204];

function zipf(a) {
  const r = rand();
  return a[Math.min(a.length - 1, Math.floor(a.length * r * r * r))];
}

function* clock() {
  let t = Date.UTC(2026, 10, 1, 12, 0, 0);
  for (;;) {
    t += int(0, 40);
    yield new Date(t);
  }
}

function nginxLine(d) {
  const p = (n) => String(n).padStart(2, "0");
  const time = `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
  let path = zipf(PATHS);
  if (path.startsWith("/api") && rand() < 0.6) path += `/${int(1, 100000)}`;
  if (rand() < 0.2) path += `?q=${hex(6)}&page=${int(1, 20)}`;
  const method = rand() < 0.8 ? "GET" : pick(["POST", "PUT", "DELETE"]);
  return `${zipf(IPS)} - ${rand() < 0.9 ? "-" : "user" + int(1, 50)} [${time}] "${method} ${path} HTTP/1.1" ${pick(STATUSES)} ${int(0, 60000)} "${pick(REFERERS)}" "${zipf(AGENTS)}"`;
}

const LEVELS = ["info", "info", "info", "info", "debug", "warn", "error"];
const MSGS = [
  "request completed", "cache miss", "user logged in", "order created", "payment authorized",
  "retrying upstream call", "slow query", "connection reset by peer", "config reloaded",
];
const CALLERS = ["server/handler.go:142", "cache/lru.go:88", "auth/session.go:57", "orders/service.go:211", "db/pool.go:93"];

function jsonLine(d) {
  const o = {
    level: zipf(LEVELS),
    ts: d.toISOString(),
    caller: zipf(CALLERS),
    msg: zipf(MSGS),
    method: rand() < 0.8 ? "GET" : "POST",
    path: `${zipf(PATHS)}${rand() < 0.5 ? "/" + int(1, 100000) : ""}`,
    status: pick(STATUSES),
    duration_ms: Math.round(rand() * rand() * 2000 * 1000) / 1000,
    trace_id: hex(32),
    span_id: hex(16),
    user_id: int(1, 5000),
  };
  if (o.level === "error") o.error = `dial tcp 10.0.${int(0, 255)}.${int(1, 255)}:5432: connect: connection refused`;
  return JSON.stringify(o);
}

function dataset(make, bytes) {
  const parts = [];
  let n = 0;
  const c = clock();
  while (n < bytes) {
    const l = make(c.next().value);
    parts.push(l);
    n += l.length + 1;
  }
  return new TextEncoder().encode(parts.join("\n") + "\n");
}

const SETS = {
  nginx: dataset(nginxLine, MIB << 20),
  json: dataset(jsonLine, MIB << 20),
};

const bundle = await build({
  entryPoints: [resolve(ROOT, "bench/logs_compression_worker.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  external: ["node:*"],
  write: false,
  logLevel: "error",
});

const mf = new Miniflare({
  modules: true,
  script: bundle.outputFiles[0].text,
  compatibilityDate: "2026-04-01",
  compatibilityFlags: ["nodejs_compat"],
});

try {
  await mf.ready;
  const call = async (path, init) => {
    const res = await mf.dispatchFetch(`http://bench${path}`, init);
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  // workerd is a child process of this one (Miniflare spawns it).
  const workerd = processTree(process.pid).filter((pid) => cpuSnapshot([pid]).get(pid)?.comm === "workerd");
  if (workerd.length === 0) throw new Error("cannot find the workerd process");
  const cpu = () => {
    let t = 0;
    for (const v of cpuSnapshot(workerd).values()) t += v.own;
    return t;
  };
  /** CPU ms per iteration of the request, best of ROUNDS; iters chosen so one run processes PASS_MB. */
  const timed = async (path, rawBytes) => {
    const iters = Math.max(1, Math.ceil((PASS_MB * 1e6) / rawBytes));
    let best = Infinity;
    let body;
    for (let r = 0; r < ROUNDS; r++) {
      const c0 = cpu();
      body = await call(`${path}&iters=${iters}`);
      best = Math.min(best, ((cpu() - c0) * 1000) / iters);
    }
    return { ms: Math.max(0.001, best), body };
  };

  const info = {};
  for (const [name, body] of Object.entries(SETS)) {
    info[name] = await call(`/load?set=${name}`, { method: "POST", body });
    console.error(`${name}: ${info[name].lines} lines, ${(info[name].lineBytes / 1e6).toFixed(1)} MB of lines, ${info[name].blocks} raw blocks of 256 KiB`);
  }

  const codecs = await call("/codecs");
  const rows = [];
  for (const codec of codecs) {
    const row = { codec };
    let cMs = 0;
    let dMs = 0;
    let raw = 0;
    for (const set of Object.keys(SETS)) {
      const q = `codec=${encodeURIComponent(codec)}&set=${set}`;
      const c = await timed(`/compress?${q}`, info[set].rawBytes);
      await call(`/decompress?${q}&iters=1&verify=1`);
      const d = await timed(`/decompress?${q}`, info[set].rawBytes);
      row[set] = c.body.rawBytes / c.body.compressedBytes;
      cMs += c.ms;
      dMs += d.ms;
      raw += c.body.rawBytes;
    }
    row.compress = raw / 1e3 / cMs; // MB/s
    row.decompress = raw / 1e3 / dMs;
    rows.push(row);
    console.error(`  ${codec}: done`);
  }

  const builderRows = [];
  for (const [name, encoding] of [["None", 0], ["Gzip", 1], ["DeflateRaw", 2], ["Snappy", 3], ["Brotli", 4]]) {
    let ms = 0;
    let lineBytes = 0;
    let chunkBytes = 0;
    for (const set of Object.keys(SETS)) {
      const b = await timed(`/build?encoding=${encoding}&set=${set}`, info[set].lineBytes);
      ms += b.ms;
      lineBytes += info[set].lineBytes;
      chunkBytes += b.body.chunkBytes;
    }
    // Reading: time of build + N reads minus the build alone, per read.
    let readMs = 0;
    for (const set of Object.keys(SETS)) {
      const iters = Math.max(1, Math.ceil((PASS_MB * 1e6) / info[set].lineBytes));
      let best = Infinity;
      for (let r = 0; r < ROUNDS; r++) {
        const c0 = cpu();
        await call(`/read?encoding=${encoding}&set=${set}&iters=${iters}`);
        const c1 = cpu();
        await call(`/read?encoding=${encoding}&set=${set}&iters=0`);
        best = Math.min(best, ((c1 - c0 - (cpu() - c1)) * 1000) / iters);
      }
      readMs += Math.max(0.001, best);
    }
    builderRows.push({ name, mbs: lineBytes / 1e3 / ms, ratio: lineBytes / chunkBytes, read: lineBytes / 1e3 / readMs });
  }

  const f = (x, d = 1) => x.toFixed(d).padStart(7);
  console.log(`\nLog block codecs in workerd (${MIB} MiB per data set, 256 KiB blocks, workerd CPU time, best of ${ROUNDS}; ratio = raw block bytes / compressed)\n`);
  console.log(`| codec | ratio nginx | ratio JSON | compress MB/s | decompress MB/s |`);
  console.log(`| --- | ---: | ---: | ---: | ---: |`);
  for (const r of rows) console.log(`| ${r.codec} | ${f(r.nginx)} | ${f(r.json)} | ${f(r.compress, 0)} | ${f(r.decompress, 0)} |`);
  console.log(`\nLogChunkBuilder append + cut + finish, and readLogChunk of the whole chunk to strings (both data sets; MB/s of line bytes; ratio = line bytes / chunk bytes)\n`);
  console.log(`| encoding | append MB/s | read MB/s | ratio |`);
  console.log(`| --- | ---: | ---: | ---: |`);
  for (const r of builderRows) console.log(`| ${r.name} | ${f(r.mbs, 0)} | ${f(r.read, 0)} | ${f(r.ratio)} |`);
} finally {
  await mf.dispose();
}
