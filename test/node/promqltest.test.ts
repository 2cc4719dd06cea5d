// Runs Prometheus's own PromQL engine test scripts (../shared/promqltest/*.test, beside
// this repository) against our engine: one describe per file, one it per eval, named
// "<file>:<line> <instant|range> <query>". The runner (test/support/promqltest.ts)
// follows Prometheus's promql/promqltest/test.go; docs/promql-conformance.md describes it.
//
// Cases for features we do not implement are skipped with the reason in the test name
// (SKIP POLICY below, the one place that decides). Everything else runs and must pass:
// a failing case is a bug in the engine or parser, never a reason to skip it.
//
// Environment knobs: PROMQLTEST_FILES=a.test,b.test (run only these files),
// PROMQLTEST_SKIP_EXPERIMENTAL=1 (skip every experimental function/aggregation, built or not),
// PROMQLTEST_AT_VARIANTS=0 (no `@` variants of instant queries), PROMQLTEST_RANGE_CHECK=0
// (no range-mode check of instant queries), PROMQLTEST_REPORT=<path> (write the results as JSON).

import { afterAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Expr } from "../../src/querier/promql/ast";
import { parseExpr } from "../../src/querier/promql/parse";
import { instantQuery, rangeQuery, type EngineOptions } from "../../src/querier/promql/engine";
import { FUNCTIONS as SIGNATURES } from "../../src/querier/promql/signatures";
import { FUNCTIONS as FUNCTION_IMPLS } from "../../src/querier/promql/functions/index";
import { Annotations, type Queryable, type Value } from "../../src/querier/promql/value";
import { MatchType, type LabelMatcher } from "../../src/proto/types";
import { formatLabels } from "../../src/model/labels";
import {
  EvalFailure,
  MemoryStorage,
  expectsHistograms,
  isStaleNaN,
  parseSeriesDesc,
  parseTestScript,
  runEval,
  walkExpr,
  type Command,
  type EvalCmd,
  type PromQLEngine,
  type QueryResult,
  type RunOptions,
} from "../support/promqltest";

const HERE = dirname(fileURLToPath(import.meta.url));
const DATA_DIR = resolve(HERE, "../../../shared/promqltest");

// ---------------------------------------------------------------------------------------
// SKIP POLICY (the one place that decides what does not run, and why)
//
// 1. Whole files for features not built: SKIP_FILES.
// 2. A case whose expected output holds native histograms (`{{...}}`), or whose query
//    selects a series holding native histogram samples (loaded `{{...}}` values, or the
//    NHCB series load_with_nhcb creates): the engine and storage hold float samples only.
// 3. A case calling a function marked experimental in signatures.ts that the engine does
//    not implement (no entry in functions/index.ts). Experimental functions and the
//    limitk/limit_ratio aggregations that are implemented run, as test.go runs them (its
//    test engine enables every experimental feature). PROMQLTEST_SKIP_EXPERIMENTAL=1 skips
//    every case using an experimental function or aggregation instead.
// 4. step() or range() inside a duration (`[step()]`, `offset range()`): experimental
//    duration expressions are folded to constants by parse.ts, which has no query step.
// Everything else runs and must pass.

/** Whole files, and why. */
const SKIP_FILES: Record<string, string> = {
  "native_histograms.test": "native histograms are not supported (the engine and storage hold float samples only)",
  "extended_vectors.test":
    "experimental anchored/smoothed range selector modifiers (--enable-feature=promql-extended-range-selectors) are not built",
  "fill-modifier.test":
    "experimental fill()/fill_left()/fill_right() binary operator modifiers (--enable-feature=promql-binop-fill-modifiers) are not built",
  "info.test": "experimental info() function (--enable-feature=promql-experimental-functions) is not built",
  "start_timestamps.test":
    "per-sample start timestamps (`@st` load lines, start_timestamp(), the engine's UseStartTimestamps) are not stored or built",
};

const SKIP_ALL_EXPERIMENTAL = process.env.PROMQLTEST_SKIP_EXPERIMENTAL === "1";

/** Aggregations Prometheus gates behind promql-experimental-functions. */
const EXPERIMENTAL_AGGREGATIONS = new Set(["limitk", "limit_ratio"]);

/** Experimental functions (signatures.ts) that are skipped: the unimplemented ones, or all of them. */
const SKIPPED_FUNCTIONS = new Map<string, string>();
for (const sig of SIGNATURES.values()) {
  if (!sig.experimental) continue;
  if (!Object.prototype.hasOwnProperty.call(FUNCTION_IMPLS, sig.name)) SKIPPED_FUNCTIONS.set(sig.name, `experimental function ${sig.name}() is not built`);
  else if (SKIP_ALL_EXPERIMENTAL) SKIPPED_FUNCTIONS.set(sig.name, `experimental function ${sig.name}()`);
}
const SKIPPED_AGGREGATIONS = SKIP_ALL_EXPERIMENTAL ? EXPERIMENTAL_AGGREGATIONS : new Set<string>();

/** step() or range() inside a range, subquery or offset duration. */
const DURATION_STEP_RANGE = /(\[[^\]]*|\boffset\b[^[\]]*?)\b(step|range)\(\)/i;

/** Why this eval is skipped, or null to run it. */
function skipReason(file: string, ev: EvalCmd, storage: MemoryStorage): string | null {
  const fileReason = SKIP_FILES[file];
  if (fileReason) return fileReason;
  if (expectsHistograms(ev)) return "expected output holds native histograms";
  if (DURATION_STEP_RANGE.test(ev.expr)) return "step()/range() in a duration expression (experimental) is not built";
  let ast: Expr | null = null;
  try {
    ast = parseExpr(ev.expr);
  } catch {
    // A parse failure is the parser's to fix: decide from the text, then run the case.
  }
  if (ast) {
    let reason: string | null = null;
    walkExpr(ast, (n) => {
      if (reason) return false;
      if (n.type === "Call" && SKIPPED_FUNCTIONS.has(n.func as string)) reason = SKIPPED_FUNCTIONS.get(n.func as string)!;
      else if (n.type === "AggregateExpr" && SKIPPED_AGGREGATIONS.has(n.op as string)) reason = `experimental aggregation ${n.op as string}`;
      else if (n.type === "VectorSelector") {
        const hist = storage.histogramSeriesSelectedBy(n.matchers as LabelMatcher[]);
        if (hist.length > 0) reason = `selects native histogram series ${formatLabels(hist[0])}`;
      }
    });
    return reason;
  }
  for (const [f, why] of SKIPPED_FUNCTIONS) {
    if (new RegExp(`(?<!@\\s*)\\b${f}\\s*\\(`).test(ev.expr)) return why;
  }
  for (const a of SKIPPED_AGGREGATIONS) if (new RegExp(`\\b${a}\\b`).test(ev.expr)) return `experimental aggregation ${a}`;
  for (const l of storage.histogramSeries.values()) {
    const i = l.indexOf("__name__");
    if (i >= 0 && i % 2 === 0 && new RegExp(`\\b${l[i + 1]}\\b`).test(ev.expr)) return `selects native histogram series ${formatLabels(l)}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// The engine, as the runner sees it. Options as Prometheus's test engine (test.go
// NewTestEngine): 5m lookback, 1m default subquery step, at most 10000 samples per query.

const ENGINE_OPTS: EngineOptions = { lookbackDeltaMs: 5 * 60_000, defaultSubqueryStepMs: 60_000, maxSamples: 10_000 };

const engine: PromQLEngine = {
  parseExpr: (s) => parseExpr(s),
  instantQuery: (q, e, t) => instantQuery(q, e, t, ENGINE_OPTS),
  rangeQuery: (q, e, s, en, st) => rangeQuery(q, e, s, en, st, ENGINE_OPTS),
};

const RUN_OPTS: RunOptions = {
  atModifierVariants: process.env.PROMQLTEST_AT_VARIANTS !== "0",
  rangeCheck: process.env.PROMQLTEST_RANGE_CHECK !== "0",
};

// ---------------------------------------------------------------------------------------
// Results

interface FileResult {
  evals: number;
  passed: number;
  failed: number;
  skipped: number;
  skipReasons: Map<string, number>;
  failures: { name: string; message: string }[];
}

const results = new Map<string, FileResult>();

function resultFor(file: string): FileResult {
  let r = results.get(file);
  if (!r) {
    r = { evals: 0, passed: 0, failed: 0, skipped: 0, skipReasons: new Map(), failures: [] };
    results.set(file, r);
  }
  return r;
}

/** A coarse kind for a failure message, for the summary. */
function failureKind(msg: string): string {
  const m = msg.replace(/ \[variant: [^\]]*\]/, "");
  if (/^error creating (instant|range) query/.test(m)) return "parse error";
  if (/^expected error .* but got none/.test(m)) return "expected a failure, got a result";
  if (/^expected error/.test(m)) return "failed with a different error message";
  if (/in range mode: /.test(m)) return "range-mode query threw";
  if (/^error evaluating query/.test(m)) return "query threw";
  if (/annotation|warnings|info annotations/.test(m)) return "annotations (warn/info) differ";
  if (/matrix is not sorted|not sorted by name|duplicate/.test(m)) return "result labels/order malformed";
  const where = / range mode/.test(m) ? " (range-mode check)" : msg.includes("[variant:") ? " (@ variant)" : "";
  if (/at position \d+ but was at/.test(m)) return "order differs (expect ordered)" + where;
  if (/unexpected metric|expected metric .* not found/.test(m)) return "series (labels) differ" + where;
  if (/expected scalar result|expected vector or matrix result|expected ordered result, but query returned a matrix|unexpected result type|expected string/.test(m)) {
    return "result type/string differs" + where;
  }
  if (/float points|timestamp|cannot return this many points/.test(m)) return "points/timestamps differ" + where;
  if (/expected .* but got|to be .* but got/.test(m)) return "value differs" + where;
  return "other";
}

/** The engine's own message of a thrown error, with numbers/quoted strings generalised, to group them. */
function errorGist(msg: string): string | null {
  const m = /^(?:error creating (?:instant|range) query|error evaluating query) .*? \(line \d+\)(?: in range mode)?(?: \[variant: [^\]]*\])?: (.*)$/s.exec(msg);
  if (!m) return null;
  return m[1]
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/: \/.*\/[a-z]*: /, ": /…/: ")
    .replace(/\b\d+(\.\d+)?\b/g, "N")
    .slice(0, 140);
}

function printSummary(): void {
  const files = [...results.keys()].sort();
  const total: FileResult = { evals: 0, passed: 0, failed: 0, skipped: 0, skipReasons: new Map(), failures: [] };
  const rows: string[] = [];
  const pad = (s: string | number, n: number) => String(s).padStart(n);
  rows.push(`${"file".padEnd(28)} ${pad("evals", 6)} ${pad("passed", 7)} ${pad("failed", 7)} ${pad("skipped", 8)}`);
  for (const f of files) {
    const r = results.get(f)!;
    rows.push(`${f.padEnd(28)} ${pad(r.evals, 6)} ${pad(r.passed, 7)} ${pad(r.failed, 7)} ${pad(r.skipped, 8)}`);
    total.evals += r.evals;
    total.passed += r.passed;
    total.failed += r.failed;
    total.skipped += r.skipped;
    for (const [k, n] of r.skipReasons) total.skipReasons.set(`${f}: ${k}`, n);
    total.failures.push(...r.failures);
  }
  rows.push(`${"TOTAL".padEnd(28)} ${pad(total.evals, 6)} ${pad(total.passed, 7)} ${pad(total.failed, 7)} ${pad(total.skipped, 8)}`);
  const out: string[] = ["", "PromQL conformance (Prometheus promqltest scripts)", ...rows, "", "Skip reasons (file: reason × cases):"];
  const reasons = new Map<string, number>();
  for (const [k, n] of total.skipReasons) {
    // Per-case reasons name series; group them by kind per file.
    const key = k.replace(/selects native histogram series .*/, "selects native histogram series").replace(/experimental function .*/, (s) => s);
    reasons.set(key, (reasons.get(key) ?? 0) + n);
  }
  for (const [k, n] of [...reasons].sort()) out.push(`  ${k} × ${n}`);
  if (total.failures.length > 0) {
    const kinds = new Map<string, number>();
    const gists = new Map<string, number>();
    for (const f of total.failures) {
      const k = failureKind(f.message);
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
      const g = errorGist(f.message);
      if (g) gists.set(g, (gists.get(g) ?? 0) + 1);
    }
    out.push("", "Failure kinds:");
    for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) out.push(`  ${pad(n, 5)}  ${k}`);
    if (gists.size > 0) {
      out.push("", "Most common errors thrown by the parser/engine:");
      for (const [g, n] of [...gists].sort((a, b) => b[1] - a[1]).slice(0, 20)) out.push(`  ${pad(n, 5)}  ${g}`);
    }
  }
  console.log(out.join("\n"));
  const report = process.env.PROMQLTEST_REPORT;
  if (report) {
    const json = Object.fromEntries(
      files.map((f) => {
        const r = results.get(f)!;
        return [f, { evals: r.evals, passed: r.passed, failed: r.failed, skipped: r.skipped, skipReasons: Object.fromEntries(r.skipReasons), failures: r.failures }];
      }),
    );
    writeFileSync(report, JSON.stringify(json, null, 1));
  }
}

afterAll(() => {
  printSummary();
});

// ---------------------------------------------------------------------------------------
// The scripts

const onlyFiles = process.env.PROMQLTEST_FILES?.split(",").map((s) => s.trim()).filter(Boolean);
const files = existsSync(DATA_DIR) ? readdirSync(DATA_DIR).filter((f) => f.endsWith(".test")).sort() : [];

if (files.length === 0) {
  it(`PromQL test scripts in ${DATA_DIR}`, () => {
    throw new Error(`no .test files found in ${DATA_DIR}`);
  });
}

for (const file of files) {
  if (onlyFiles && !onlyFiles.includes(file)) continue;
  describe(file, () => {
    const r = resultFor(file);
    let cmds: Command[];
    try {
      cmds = parseTestScript(readFileSync(resolve(DATA_DIR, file), "utf8"));
    } catch (e) {
      r.evals++;
      r.failed++;
      r.failures.push({ name: `${file} (script)`, message: (e as Error).message });
      it(`${file}: parse the script`, () => {
        throw e;
      });
      return;
    }
    let storage = MemoryStorage.empty();
    for (const cmd of cmds) {
      if (cmd.kind === "load") {
        storage = storage.load(cmd);
        continue;
      }
      if (cmd.kind === "clear") {
        storage = MemoryStorage.empty();
        continue;
      }
      const ev = cmd;
      const st = storage;
      const name = `${file}:${ev.line} ${ev.isRange ? "range" : "instant"} ${ev.expr}`;
      r.evals++;
      const reason = skipReason(file, ev, st);
      if (reason) {
        r.skipped++;
        r.skipReasons.set(reason, (r.skipReasons.get(reason) ?? 0) + 1);
        it.skip(`${name} [skipped: ${reason}]`, () => {});
        continue;
      }
      it(name, async () => {
        try {
          await runEval(ev, st, engine, RUN_OPTS);
        } catch (e) {
          r.failed++;
          r.failures.push({ name, message: e instanceof Error ? e.message : String(e) });
          throw e;
        }
        r.passed++;
      }, 20_000);
    }
  });
}

// ---------------------------------------------------------------------------------------
// The runner checks itself, with a toy engine for plain selectors: it must pass right
// expectations and fail wrong ones.

describe("promqltest runner self-check", () => {
  /** Evaluates only `name`, `name{...}` selectors (5m lookback, @ honoured) and numbers. */
  function toyEngine(): PromQLEngine {
    const parse = (s: string): Expr => {
      const n = Number(s);
      if (s.trim() !== "" && !Number.isNaN(n)) return { type: "NumberLiteral", val: n };
      const m = /^([a-z_]+)(?:\{([a-z]+)="([^"]*)"\})?$/.exec(s.trim());
      if (!m) throw new Error(`toy parser: cannot parse ${s}`);
      const matchers = [{ type: MatchType.EQ, name: "__name__", value: m[1] }];
      if (m[2]) matchers.push({ type: MatchType.EQ, name: m[2], value: m[3] });
      return { type: "VectorSelector", name: m[1], matchers, offset: 0, at: null };
    };
    const instant = async (q: Queryable, e: Expr, t: number): Promise<Value> => {
      if (e.type === "NumberLiteral") return { type: "scalar", t, v: e.val };
      if (e.type !== "VectorSelector") throw new Error("toy engine: unsupported");
      const at = e.at && e.at.kind === "time" ? e.at.ms : t;
      const series = await q.select(e.matchers, at - 300_000 + 1, at);
      const vector = [];
      for (const s of series) {
        const i = s.timestamps.length - 1;
        if (i >= 0 && !isStaleNaN(s.values[i])) vector.push({ labels: s.labels, t, v: s.values[i] });
      }
      return { type: "vector", vector };
    };
    return {
      parseExpr: parse,
      instantQuery: async (q, e, t): Promise<QueryResult> => ({ value: await instant(q, e, t), annotations: new Annotations() }),
      rangeQuery: async (q, e, start, end, step): Promise<QueryResult> => {
        const byKey = new Map<string, { labels: string[]; ts: number[]; vs: number[] }>();
        for (let t = start; t <= end; t += step) {
          const v = await instant(q, e, t);
          const samples = v.type === "scalar" ? [{ labels: [] as string[], v: v.v }] : v.type === "vector" ? v.vector : [];
          for (const s of samples) {
            const k = JSON.stringify(s.labels);
            const cur = byKey.get(k) ?? { labels: s.labels, ts: [], vs: [] };
            cur.ts.push(t);
            cur.vs.push(s.v);
            byKey.set(k, cur);
          }
        }
        const matrix = [...byKey.values()]
          .sort((a, b) => (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1))
          .map((s) => ({ labels: s.labels, timestamps: Float64Array.from(s.ts), values: Float64Array.from(s.vs) }));
        return { value: { type: "matrix", matrix }, annotations: new Annotations() };
      },
    };
  }

  async function run(script: string): Promise<void> {
    let storage = MemoryStorage.empty();
    for (const cmd of parseTestScript(script)) {
      if (cmd.kind === "load") storage = storage.load(cmd);
      else if (cmd.kind === "clear") storage = MemoryStorage.empty();
      else await runEval(cmd, storage, toyEngine());
    }
  }

  const LOAD = `
load 1m
  m{a="1"} 1+2x3
  m{a="2"} 10 _ stale 20
`;

  it("expands series values as test.go does", () => {
    const vals = (s: string) => parseSeriesDesc(`m ${s}`).values.map((v) => (v.kind === "float" ? (v.stale ? "stale" : v.v) : v.kind === "omitted" ? "_" : "H"));
    expect(vals("1+2x3")).toEqual([1, 3, 5, 7]);
    expect(vals("1-1x3")).toEqual([1, 0, -1, -2]);
    expect(vals("1x5")).toEqual([1, 1, 1, 1, 1, 1]);
    expect(vals("_x3 _ stale")).toEqual(["_", "_", "_", "_", "stale"]);
    expect(vals("Inf -Inf 1e3 -2.5e-1 .5")).toEqual([Infinity, -Infinity, 1000, -0.25, 0.5]);
    expect(Number.isNaN(vals("NaN")[0])).toBe(true);
    expect(vals("{{schema:0 sum:1 count:1}}x2 1 {{sum:1}}+{{sum:2}}x1")).toEqual(["H", "H", "H", 1, "H", "H"]);
    expect(parseSeriesDesc(`{"a.b", c="d\\"e"} 1`).labels).toEqual(["__name__", "a.b", "c", 'd"e']);
  });

  it("stores stale markers with their exact bits", async () => {
    const storage = MemoryStorage.empty().load(parseTestScript(LOAD)[0] as never);
    const [, s2] = await storage.select([{ type: MatchType.EQ, name: "__name__", value: "m" }], 0, 180_000);
    expect(Array.from(s2.timestamps)).toEqual([0, 120_000, 180_000]);
    expect(isStaleNaN(s2.values[1])).toBe(true);
    expect(isStaleNaN(NaN)).toBe(false);
  });

  it("passes right expectations (instant, @ variants, range mode, range, scalar)", async () => {
    await run(`${LOAD}
eval instant at 3m m
  m{a="1"} 7
  m{a="2"} 20

eval instant at 2m m
  m{a="1"} 5

eval range from 0 to 3m step 1m m
  m{a="1"} 1 3 5 7
  m{a="2"} 10 10 _ 20

eval instant at 0 1.5
  1.5

eval instant at 0 nosuch{a="x"}
`);
  });

  it("fails a wrong value", async () => {
    await expect(run(`${LOAD}\neval instant at 3m m\n  m{a="1"} 8\n  m{a="2"} 20\n`)).rejects.toThrow(EvalFailure);
  });
  it("fails a wrong label set, a missing and an extra series", async () => {
    await expect(run(`${LOAD}\neval instant at 3m m\n  m{a="1"} 7\n  m{a="3"} 20\n`)).rejects.toThrow(/unexpected metric/);
    await expect(run(`${LOAD}\neval instant at 3m m\n  m{a="1"} 7\n`)).rejects.toThrow(/unexpected metric/);
    await expect(run(`${LOAD}\neval instant at 2m m\n  m{a="1"} 5\n  m{a="2"} 10\n`)).rejects.toThrow(/not found/);
  });
  it("fails a wrong range point and a missing one", async () => {
    await expect(run(`${LOAD}\neval range from 0 to 3m step 1m m\n  m{a="1"} 1 3 5 7\n  m{a="2"} 10 10 10 20\n`)).rejects.toThrow(/float points/);
    await expect(run(`${LOAD}\neval range from 0 to 3m step 1m m\n  m{a="1"} 1 3 5 7.1\n  m{a="2"} 10 10 _ 20\n`)).rejects.toThrow(/to be 7.1/);
  });
  it("checks expected failures and annotations", async () => {
    await run(`${LOAD}\neval instant at 0 m{\n  expect fail msg: toy parser: cannot parse m{\n`);
    await expect(run(`${LOAD}\neval instant at 0 m{\n  expect fail msg: something else\n`)).rejects.toThrow(/error creating instant query/);
    await expect(run(`${LOAD}\neval instant at 0 m\n  expect fail\n`)).rejects.toThrow(/but got none/);
    await expect(run(`${LOAD}\neval instant at 3m m\n  expect warn\n  m{a="1"} 7\n  m{a="2"} 20\n`)).rejects.toThrow(/expected warn annotations/);
    await expect(run(`${LOAD}\neval instant at 0 1\n  2\n`)).rejects.toThrow(/expected scalar 2 but got 1/);
  });
  it("checks `expect ordered` positions", async () => {
    await run(`${LOAD}\neval instant at 3m m\n  expect ordered\n  m{a="1"} 7\n  m{a="2"} 20\n`);
    await expect(run(`${LOAD}\neval instant at 3m m\n  expect ordered\n  m{a="2"} 20\n  m{a="1"} 7\n`)).rejects.toThrow(/at position/);
  });
});
