// Runs `wrangler dev` (the Worker + the Ingester Durable Objects in a workerd child)
// for the end-to-end tests, in its own process group so that kill9() reaches workerd
// too: a SIGKILL of the whole runtime is how the tests simulate a crash.
//
// Also the process plumbing the other e2e helpers share (prometheus.ts,
// victoriametrics.ts): free ports, detached spawns that are killed when the test
// process exits, process trees and CPU time from /proc.

import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (test/support/ is two levels down). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

/** A free TCP port on 127.0.0.1 (bound to port 0, read back, released). */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("could not read the bound port"));
        return;
      }
      const port = address.port;
      server.close(() => resolvePort(port));
    });
  });
}

/** A fresh temporary directory under the OS temp dir. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  /** User and system CPU time, in clock ticks (see clockTicksPerSecond). */
  utime: number;
  stime: number;
}

/** /proc/<pid>/stat, or null when the process is gone. */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp ..." — comm may hold spaces and parentheses.
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < 0) return null;
  const rest = text.slice(close + 2).split(" ");
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0],
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    utime: Number(rest[11]),
    stime: Number(rest[12]),
  };
}

let clockTicks: number | undefined;
/** sysconf(_SC_CLK_TCK), normally 100. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== null && stat.state !== "Z" && stat.state !== "X";
}

function allProcStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat) out.push(stat);
  }
  return out;
}

/**
 * A process and every live descendant of it, plus any live process still in its
 * process group (descendants whose parent died are re-parented, but keep the group).
 */
export function processTree(rootPid: number, processGroup?: number): number[] {
  const stats = allProcStats().filter((s) => s.state !== "Z" && s.state !== "X");
  const children = new Map<number, number[]>();
  for (const s of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(s.pid);
    else children.set(s.ppid, [s.pid]);
  }
  const found = new Set<number>();
  if (stats.some((s) => s.pid === rootPid)) found.add(rootPid);
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    for (const child of children.get(pid) ?? []) {
      if (!found.has(child)) {
        found.add(child);
        queue.push(child);
      }
    }
  }
  if (processGroup !== undefined) for (const s of stats) if (s.pgrp === processGroup) found.add(s.pid);
  return [...found].sort((a, b) => a - b);
}

export interface CpuSample {
  /** utime + stime in seconds, summed over the processes. */
  total: number;
  /** Per process: command name and seconds. */
  byPid: Map<number, { comm: string; seconds: number }>;
}

/** CPU time consumed so far by each of the processes (those still alive). */
export function cpuSeconds(pids: number[]): CpuSample {
  const hz = clockTicksPerSecond();
  const byPid = new Map<number, { comm: string; seconds: number }>();
  let total = 0;
  for (const pid of pids) {
    const s = procStat(pid);
    if (!s) continue;
    const seconds = (s.utime + s.stime) / hz;
    byPid.set(pid, { comm: s.comm, seconds });
    total += seconds;
  }
  return { total, byPid };
}

/** Children started by the helpers; each is killed (whole group) when the test process exits. */
const liveGroups = new Set<number>();
let exitHooksInstalled = false;

function killGroupNow(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // already gone
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", () => {
    for (const pgid of liveGroups) killGroupNow(pgid);
    liveGroups.clear();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const handler = (): void => {
      for (const pgid of liveGroups) killGroupNow(pgid);
      liveGroups.clear();
      process.removeListener(signal, handler);
      // Nobody else handles it: re-raise for the default action (terminate).
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}

export interface DetachedProcess {
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  exited: Promise<number | string>;
  hasExited(): boolean;
  /** Live processes of the tree: the child and its descendants. */
  pids(): number[];
  /** Sends a signal to the child only. */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL to the whole process group (and any known descendant), then waits until all are gone. */
  kill9(timeoutMs?: number): Promise<void>;
  /** Signal (SIGTERM) the child, wait up to timeoutMs for the whole tree to exit, then SIGKILL what is left. */
  stop(timeoutMs?: number, sig?: NodeJS.Signals): Promise<void>;
  /** The last lines of the log file. */
  logTail(lines?: number): string;
}

/**
 * Spawns a command detached (its own process group, so a group SIGKILL reaches every
 * descendant), stdout and stderr appended to logFile. The group is SIGKILLed when this
 * process exits, however it exits.
 */
export function spawnDetached(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string }): DetachedProcess {
  installExitHooks();
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const fd = openSync(opts.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(command, args, { cwd: opts.cwd ?? PROJECT_ROOT, env: opts.env ?? process.env, detached: true, stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not spawn ${command}`);
  const pid = child.pid;
  liveGroups.add(pid);
  let exitedFlag = false;
  const exited = new Promise<number | string>((resolveExit) => {
    child.once("exit", (code, sig) => {
      exitedFlag = true;
      resolveExit(code ?? sig ?? "unknown");
    });
    child.once("error", (err) => {
      exitedFlag = true;
      resolveExit(`spawn error: ${err.message}`);
    });
  });
  // Don't keep the test process alive just for this child.
  child.unref();

  const logTail = (lines = 40): string => {
    try {
      const text = readFileSync(opts.logFile, "utf8");
      return text.split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  };
  const pids = (): number[] => processTree(pid, pid);

  const waitGone = async (known: number[], timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = known.filter(isAlive).concat(processTree(pid, pid).filter((p) => !known.includes(p)));
      if (left.length === 0 && exitedFlag) return true;
      if (Date.now() > deadline) return false;
      await sleep(50);
    }
  };

  const kill9 = async (timeoutMs = 15_000): Promise<void> => {
    const known = processTree(pid, pid);
    killGroupNow(pid);
    for (const p of known) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
    const gone = await waitGone(known, timeoutMs);
    liveGroups.delete(pid);
    if (!gone) throw new Error(`processes ${known.filter(isAlive).join(", ")} survived SIGKILL for ${timeoutMs} ms`);
  };

  const stop = async (timeoutMs = 15_000, sig: NodeJS.Signals = "SIGTERM"): Promise<void> => {
    const known = processTree(pid, pid);
    if (!exitedFlag) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
    if (await waitGone(known, timeoutMs)) {
      liveGroups.delete(pid);
      return;
    }
    await kill9();
  };

  return {
    child,
    pid,
    logFile: opts.logFile,
    exited,
    hasExited: () => exitedFlag,
    pids,
    signal: (sig) => {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    },
    kill9,
    stop,
    logTail,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls url until it answers 200, the process exits, fail() returns a reason, or the
 * timeout passes; every failure carries the last lines of the process's log.
 */
export async function waitForHttpOk(
  url: string,
  proc: DetachedProcess,
  name: string,
  timeoutMs: number,
  fail?: () => string | null,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    if (proc.hasExited()) {
      throw new Error(`${name} exited (${await proc.exited}) before ${url} answered 200. Last lines of ${proc.logFile}:\n${proc.logTail()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      lastError = `HTTP ${res.status}`;
    } catch (e) {
      lastError = (e as Error).message;
    }
    const reason = fail?.();
    if (reason) throw new Error(`${name}: ${reason}. Last lines of ${proc.logFile}:\n${proc.logTail()}`);
    if (Date.now() > deadline) {
      throw new Error(`${name} not ready: ${url} did not answer 200 within ${timeoutMs} ms (last: ${lastError}). Last lines of ${proc.logFile}:\n${proc.logTail()}`);
    }
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------
// wrangler dev
// ---------------------------------------------------------------------------------

export interface WranglerOptions {
  /** Durable Object / R2 state directory (--persist-to). Default: a fresh temp dir's "state". */
  persistDir?: string;
  /** Port to listen on (127.0.0.1). Default: a free port. */
  port?: number;
  /** --var KEY:VALUE overrides of wrangler.toml's [vars]. */
  vars?: Record<string, string>;
  /** Another wrangler config (-c), e.g. a stub Worker. Default: the project's wrangler.toml. */
  configPath?: string;
  /**
   * A bundle made by buildWorkerBundle(): run it with --no-bundle instead of building
   * (and watching) src/. The code then stays the same across restarts, whatever is
   * edited meanwhile (wrangler dev otherwise restarts workerd on every source change).
   */
  bundle?: string;
  /** How long to wait for GET /ready (default 60 s). */
  readyTimeoutMs?: number;
  /** --log-level (default wrangler's own, "log"). */
  logLevel?: "debug" | "info" | "log" | "warn" | "error" | "none";
}

export interface WranglerHandle {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  persistDir: string;
  /** wrangler's stdout + stderr. */
  logFile: string;
  /** Live pids: wrangler's node processes and their workerd descendants. */
  pids(): number[];
  /** The workerd processes among pids(). */
  workerdPids(): number[];
  /** Graceful: SIGTERM to wrangler, wait for every process of the tree to exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
  /** SIGKILL the whole process group (wrangler, esbuild, workerd) and wait until all are gone. */
  kill9(): Promise<void>;
  /** The last lines of the log. */
  logTail(lines?: number): string;
}

const WRANGLER_BIN = join(PROJECT_ROOT, "node_modules", ".bin", "wrangler");

/**
 * Bundles the Worker once (`wrangler deploy --dry-run --outdir`, no network) and returns
 * the bundle's entry file, for startWrangler({ bundle }).
 */
export async function buildWorkerBundle(outDir: string = join(makeTempDir("edge-ingester-bundle"), "dist"), configPath?: string): Promise<string> {
  const logFile = join(dirname(outDir), `bundle-${Date.now()}.log`);
  const args = ["deploy", "--dry-run", "--outdir", outDir, "--config", resolve(configPath ?? join(PROJECT_ROOT, "wrangler.toml"))];
  const proc = spawnDetached(WRANGLER_BIN, args, { cwd: PROJECT_ROOT, logFile, env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0", CI: "1" } });
  const timeout = setTimeout(() => void proc.kill9().catch(() => undefined), 120_000);
  const code = await proc.exited;
  clearTimeout(timeout);
  await proc.kill9().catch(() => undefined);
  const entry = join(outDir, "index.js");
  if (code !== 0 || !existsSync(entry)) throw new Error(`wrangler deploy --dry-run failed (${code}). Last lines of ${logFile}:\n${proc.logTail()}`);
  return entry;
}

/** Starts `wrangler dev` on 127.0.0.1 and resolves once GET /ready answers 200. */
export async function startWrangler(opts: WranglerOptions = {}): Promise<WranglerHandle> {
  const persistDir = resolve(opts.persistDir ?? join(makeTempDir("edge-ingester-wrangler"), "state"));
  mkdirSync(persistDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const inspectorPort = await freePort();
  const logFile = join(dirname(persistDir), `wrangler-${port}-${Date.now()}.log`);

  const args = ["dev", ...(opts.bundle ? [resolve(opts.bundle), "--no-bundle"] : []), "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistDir];
  args.push("--show-interactive-dev-session=false");
  args.push("--config", resolve(opts.configPath ?? join(PROJECT_ROOT, "wrangler.toml")));
  if (opts.logLevel) args.push("--log-level", opts.logLevel);
  for (const [key, value] of Object.entries(opts.vars ?? {})) args.push("--var", `${key}:${value}`);

  if (!existsSync(WRANGLER_BIN)) throw new Error(`${WRANGLER_BIN} not found: run npm ci`);
  const proc = spawnDetached(WRANGLER_BIN, args, {
    cwd: PROJECT_ROOT,
    logFile,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0", CI: "1" },
  });

  const url = `http://127.0.0.1:${port}`;
  // A failed build leaves wrangler waiting for a file change: fail fast instead of
  // waiting out the timeout (after a short grace in case a rebuild is under way).
  let buildFailedAt = 0;
  const buildFailed = (): string | null => {
    const tail = proc.logTail(400);
    const failed = tail.lastIndexOf("Build failed");
    if (failed < 0 || tail.indexOf("Ready on", failed) >= 0) {
      buildFailedAt = 0;
      return null;
    }
    if (buildFailedAt === 0) buildFailedAt = Date.now();
    return Date.now() - buildFailedAt > 5_000 ? "the Worker failed to build" : null;
  };
  try {
    await waitForHttpOk(`${url}/ready`, proc, "wrangler dev", opts.readyTimeoutMs ?? 60_000, buildFailed);
  } catch (e) {
    await proc.kill9().catch(() => undefined);
    throw e;
  }

  const workerdPids = (): number[] => proc.pids().filter((p) => procStat(p)?.comm === "workerd");
  return {
    url,
    port,
    persistDir,
    logFile,
    pids: () => proc.pids(),
    workerdPids,
    stop: () => proc.stop(15_000, "SIGTERM"),
    kill9: () => proc.kill9(),
    logTail: (lines?: number) => proc.logTail(lines),
  };
}
