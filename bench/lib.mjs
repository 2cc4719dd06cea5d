// Shared by the benchmark scripts: child processes in their own process groups
// (killed however the script ends), CPU accounting from /proc, and starting the
// systems under test (wrangler dev with a fixed bundle, VictoriaMetrics, Prometheus).

import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const log = (...args) => console.error(...args);

const liveGroups = new Set();
const tempDirs = [];

function killAll() {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // gone
    }
  }
  liveGroups.clear();
}
/** Kills every child process group on exit, removes temp dirs (unless keep), and gives up after timeoutS. */
export function installCleanup({ keep, timeoutS }) {
  process.on("exit", () => {
    killAll();
    if (!keep) for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      log(`\n${sig}: stopping`);
      process.exit(130);
    });
  }
  process.on("unhandledRejection", (e) => {
    log(e);
    process.exit(1);
  });
  const watchdog = setTimeout(() => {
    log(`bench: still running after ${timeoutS} s (BENCH_TIMEOUT_S); giving up`);
    process.exit(2);
  }, timeoutS * 1000);
  watchdog.unref();
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), `${prefix}-`));
  tempDirs.push(d);
  return d;
}

export function procStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" ");
  return {
    pid,
    comm: text.slice(text.indexOf("(") + 1, close),
    state: rest[0],
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    ticks: Number(rest[11]) + Number(rest[12]),
    // CPU of children that exited and were reaped by this process (e.g. a workerd
    // that wrangler restarted): counted so that nothing escapes the measurement.
    childTicks: Number(rest[13]) + Number(rest[14]),
  };
}

let HZ = 100;
try {
  HZ = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  // Linux default
}

/** The process and its live descendants, plus anything left in its process group. */
export function processTree(root) {
  const stats = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const s = procStat(Number(e));
    if (s && s.state !== "Z") stats.push(s);
  }
  const found = new Set(stats.some((s) => s.pid === root) ? [root] : []);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of stats) {
      if (!found.has(s.pid) && (found.has(s.ppid) || s.pgrp === root)) {
        found.add(s.pid);
        grew = true;
      }
    }
  }
  return [...found];
}

/**
 * CPU seconds so far of the given processes, by pid (own time, and reaped children's
 * time under the key "<pid>:children"), with each pid's command name.
 */
export function cpuSnapshot(pids) {
  const snap = new Map();
  for (const pid of pids) {
    const s = procStat(pid);
    if (!s) continue;
    snap.set(pid, { comm: s.comm, own: s.ticks / HZ, children: s.childTicks / HZ });
  }
  return snap;
}

/**
 * CPU used between two snapshots: processes present at the end count from 0 if they
 * started in between; processes gone by the end are lost unless their parent (in the
 * tree) reaped them, which the parents' children time catches ("reaped children").
 */
export function cpuDelta(before, after) {
  const byComm = {};
  let total = 0;
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const own = a.own - (b?.own ?? 0);
    const reaped = a.children - (b?.children ?? 0);
    byComm[a.comm] = (byComm[a.comm] ?? 0) + own;
    if (reaped > 0) byComm["reaped children"] = (byComm["reaped children"] ?? 0) + reaped;
    total += own + Math.max(0, reaped);
  }
  const lost = [...before.keys()].filter((pid) => !after.has(pid));
  return { total, byComm, lost };
}

export function spawnDetached(cmd, args, logFile, env = process.env, cwd = ROOT) {
  const fd = openSync(logFile, "a");
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  liveGroups.add(child.pid);
  let exited = false;
  child.once("exit", () => (exited = true));
  child.unref();
  const tail = (n = 30) => {
    try {
      return readFileSync(logFile, "utf8").split("\n").slice(-n).join("\n");
    } catch {
      return "";
    }
  };
  return {
    pid: child.pid,
    logFile,
    hasExited: () => exited,
    tail,
    async stop(timeoutMs = 20_000) {
      const known = processTree(child.pid);
      try {
        process.kill(child.pid, "SIGTERM");
      } catch {
        // gone
      }
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline && known.some((p) => procStat(p) && procStat(p).state !== "Z")) await sleep(100);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
      liveGroups.delete(child.pid);
    },
  };
}

export async function waitReady(url, proc, name, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    if (proc.hasExited()) throw new Error(`${name} exited before it was ready:\n${proc.tail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.message;
    }
    const t = proc.tail(300);
    const bf = t.lastIndexOf("Build failed");
    if (bf >= 0 && t.indexOf("Ready on", bf) < 0) throw new Error(`${name}: the Worker failed to build:\n${proc.tail()}`);
    if (Date.now() > deadline) throw new Error(`${name} not ready within ${timeoutMs} ms (${last}):\n${proc.tail()}`);
    await sleep(200);
  }
}

const WRANGLER_ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0", CI: "1" };

/**
 * Bundles the Worker once (`wrangler deploy --dry-run`) and runs that bundle with
 * --no-bundle: `wrangler dev` would otherwise watch src/ and restart workerd on any
 * edit made while the benchmark runs, which would skew (and lose) the CPU figures.
 * `vars` ({NAME: value}) are passed as `--var NAME:value`, over wrangler.toml's [vars]
 * (wrangler splits at the first colon, so values may hold colons, e.g. LIMITS JSON).
 */
export async function startWrangler({ vars = {} } = {}) {
  const dir = tempDir("edge-ingester-bench");
  const persistDir = join(dir, "state");
  mkdirSync(persistDir, { recursive: true });
  const bin = join(ROOT, "node_modules", ".bin", "wrangler");
  if (!existsSync(bin)) throw new Error(`${bin} not found: run npm ci`);
  const config = join(ROOT, "wrangler.toml");
  const outDir = join(dir, "dist");
  const build = spawnDetached(bin, ["deploy", "--dry-run", "--outdir", outDir, "--config", config], join(dir, "build.log"), WRANGLER_ENV);
  const deadline = Date.now() + 120_000;
  while (!build.hasExited() && Date.now() < deadline) await sleep(100);
  await build.stop(1000);
  const entry = join(outDir, "index.js");
  if (!existsSync(entry)) throw new Error(`wrangler deploy --dry-run did not produce ${entry}:\n${build.tail()}`);

  const port = await freePort();
  const inspectorPort = await freePort();
  const proc = spawnDetached(
    bin,
    [
      "dev", entry, "--no-bundle", "--config", config,
      "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort),
      "--persist-to", persistDir, "--show-interactive-dev-session=false",
      ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ],
    join(dir, "wrangler.log"),
    WRANGLER_ENV,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/ready`, proc, "wrangler dev", 60_000);
  return { ...proc, url, persistDir, dir, pids: () => processTree(proc.pid) };
}

export async function startVictoriaMetrics() {
  const dir = tempDir("edge-ingester-bench-vm");
  const port = await freePort();
  const proc = spawnDetached(
    "/usr/bin/victoria-metrics",
    [`-httpListenAddr=127.0.0.1:${port}`, `-storageDataPath=${join(dir, "data")}`, "-retentionPeriod=10y", "-search.latencyOffset=0s"],
    join(dir, "victoria-metrics.log"),
    process.env,
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/health`, proc, "victoria-metrics", 30_000);
  return { ...proc, url, dir, pids: () => processTree(proc.pid) };
}


/** Debian's Prometheus as a remote-write receiver (no scraping), on a fresh TSDB. */
export async function startPrometheus() {
  const dir = tempDir("edge-ingester-bench-prom");
  const port = await freePort();
  const config = join(dir, "prometheus.yml");
  writeFileSync(config, "global:\n  scrape_interval: 1m\n");
  const proc = spawnDetached(
    "/usr/bin/prometheus",
    [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`, `--storage.tsdb.path=${join(dir, "data")}`, "--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=30d"],
    join(dir, "prometheus.log"),
    process.env,
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/-/ready`, proc, "prometheus", 30_000);
  return { ...proc, url, dir, pids: () => processTree(proc.pid) };
}
