// The LogQL engine over a deterministic in-memory LogSource. Every expected value is
// computed here from the generated entries (their fields are known at generation, not
// parsed back), independently of the engine's pipeline and window code.

import { describe, expect, it } from "vitest";
import { compileMatcher } from "../../src/model/matchers";
import type { LogSelectParams, LogStreamData } from "../../src/model/logs";
import { cmpNs } from "../../src/model/logtime";
import { evalLogQL, LogQLEvalError, type EvalOptions, type LogSource } from "../../src/querier/logql/engine";
import type { LokiMatrixSeries, LokiQueryData } from "../../src/querier/logql/result";
import { goQuote } from "../../src/querier/promql/format";
import { mulberry32 } from "../support/prng";

// ------------------------------------------------------------------ the fixture

interface Entry {
  ms: number;
  ns: number;
  line: string;
  level: string;
  latencyMs: number;
  size: number;
  n: number;
  meta: string[] | null;
}

interface GenStream {
  labels: Record<string, string>;
  entries: Entry[];
}

const T0 = 1_700_000_000_000;
const LEVELS = ["info", "warn", "error"];

function generate(): GenStream[] {
  const rnd = mulberry32(42);
  const out: GenStream[] = [];
  for (const app of ["web", "api"]) {
    for (const env of ["prod", "dev"]) {
      const entries: Entry[] = [];
      let ms = T0 + Math.floor(rnd() * 1000);
      for (let k = 0; k < 260; k++) {
        ms += 1 + Math.floor(rnd() * 1900);
        const ns = Math.floor(rnd() * 1_000_000);
        const level = LEVELS[Math.floor(rnd() * 3)];
        const latencyMs = 1 + Math.floor(rnd() * 999);
        const size = Math.floor(rnd() * 5000);
        const n = Math.round(rnd() * 10000) / 100;
        const msg = rnd() < 0.1 ? "naïve ünïcode" : `request ${k}`;
        const line = `level=${level} latency=${latencyMs}ms size=${size}B n=${n} msg="${msg}"`;
        // Every fifth entry of the api/prod stream carries structured metadata.
        const meta = app === "api" && env === "prod" && k % 5 === 0 ? ["trace_id", `t${k % 3}`] : null;
        entries.push({ ms, ns, line, level, latencyMs, size, n, meta });
      }
      if (app === "web" && env === "prod") {
        // Entries exactly on window edges (step times, step - 1m, step - 30s), where (t - range, t] must be exact.
        for (let t = T0 + 30_000; t <= T0 + 480_000; t += 15_000) {
          entries.push({ ms: t, ns: 0, line: `level=error latency=7ms size=10B n=1.5 msg="edge ${t}"`, level: "error", latencyMs: 7, size: 10, n: 1.5, meta: null });
        }
        entries.sort((a, b) => cmpNs(a.ms, a.ns, b.ms, b.ns));
      }
      out.push({ labels: { app, env }, entries });
    }
  }
  return out;
}

const DATA = generate();

function flatOf(labels: Record<string, string>): string[] {
  return Object.keys(labels)
    .sort()
    .flatMap((k) => [k, labels[k]]);
}

function labelString(labels: Record<string, string>): string {
  const f = flatOf(labels);
  const parts: string[] = [];
  for (let i = 0; i < f.length; i += 2) parts.push(`${f[i]}=${goQuote(f[i + 1])}`);
  return `{${parts.join(", ")}}`;
}

/** A LogSource over the generated streams: real matching and [start, end) range, counting calls. */
class MemorySource implements LogSource {
  calls: LogSelectParams[] = [];
  constructor(private readonly streams: GenStream[]) {}
  async select(p: LogSelectParams): Promise<LogStreamData[]> {
    this.calls.push(p);
    const ms = p.matchers.map(compileMatcher);
    const out: LogStreamData[] = [];
    for (const s of this.streams) {
      if (!ms.every((m) => m.matches(s.labels[m.name] ?? ""))) continue;
      const es = s.entries.filter((e) => cmpNs(e.ms, e.ns, p.startMs, p.startNs) >= 0 && cmpNs(e.ms, e.ns, p.endMs, p.endNs) < 0);
      if (es.length === 0) continue;
      const anyMeta = es.some((e) => e.meta !== null);
      out.push({
        labels: labelString(s.labels),
        flat: flatOf(s.labels),
        tsMs: Float64Array.from(es, (e) => e.ms),
        tsNs: Uint32Array.from(es, (e) => e.ns),
        lines: es.map((e) => e.line),
        metadata: anyMeta ? es.map((e) => e.meta) : null,
      });
    }
    return out;
  }
}

// ------------------------------------------------------------------ expectations

const START = T0 + 120_000;
const END = T0 + 420_000;
const STEP = 15_000;
const STEPS: number[] = [];
for (let t = START; t <= END; t += STEP) STEPS.push(t);

function rangeOpts(over: Partial<EvalOptions> = {}): EvalOptions {
  return { startMs: START, startNs: 0, endMs: END, endNs: 0, stepMs: STEP, instant: false, direction: "backward", limit: 100, ...over };
}

const ns = (ms: number, n: number) => BigInt(ms) * 1_000_000n + BigInt(n);

type Expected = Map<string, (number | undefined)[]>;

/**
 * Expected matrix: samples (labels, value) per entry from `sample`, aggregated per series with
 * `agg` over windows (t - offset - range, t - offset].
 */
function expectMatrix(
  sample: (s: GenStream, e: Entry) => { labels: Record<string, string>; v: number } | null,
  agg: (vs: number[]) => number,
  rangeMs = 60_000,
  offsetMs = 0,
  steps = STEPS,
): Expected {
  const series = new Map<string, { t: bigint; v: number }[]>();
  for (const s of DATA) {
    for (const e of s.entries) {
      const x = sample(s, e);
      if (x === null) continue;
      const key = labelString(x.labels);
      let arr = series.get(key);
      if (arr === undefined) series.set(key, (arr = []));
      arr.push({ t: ns(e.ms, e.ns), v: x.v });
    }
  }
  const out: Expected = new Map();
  for (const [key, samples] of series) {
    const vals = steps.map((t) => {
      const hi = ns(t - offsetMs, 0);
      const lo = hi - BigInt(rangeMs) * 1_000_000n;
      const vs = samples.filter((x) => x.t > lo && x.t <= hi).map((x) => x.v);
      return vs.length === 0 ? undefined : agg(vs);
    });
    if (vals.some((v) => v !== undefined)) out.set(key, vals);
  }
  return out;
}

/** Combines expected series into groups (sum by, etc.) step by step. */
function expectAggregate(input: Expected, group: (key: string) => string, agg: (vs: number[]) => number, steps = STEPS): Expected {
  const groups = new Map<string, string[]>();
  for (const key of input.keys()) {
    const g = group(key);
    groups.set(g, [...(groups.get(g) ?? []), key]);
  }
  const out: Expected = new Map();
  for (const [g, keys] of groups) {
    out.set(
      g,
      steps.map((_, k) => {
        const vs = keys.map((key) => (input.get(key) as (number | undefined)[])[k]).filter((v): v is number => v !== undefined);
        return vs.length === 0 ? undefined : agg(vs);
      }),
    );
  }
  return out;
}

function actualMatrix(d: LokiQueryData): Expected {
  expect(d.resultType).toBe("matrix");
  const out: Expected = new Map();
  for (const s of d.result as LokiMatrixSeries[]) {
    const vals: (number | undefined)[] = STEPS.map(() => undefined);
    for (const [sec, v] of s.values) {
      const k = STEPS.indexOf(Math.round(sec * 1000));
      expect(k, `step ${sec}`).toBeGreaterThanOrEqual(0);
      vals[k] = goFloat(v);
    }
    // A second series with the same labels would be a malformed matrix.
    expect(out.has(labelString(s.metric)), `duplicate series ${labelString(s.metric)}`).toBe(false);
    out.set(labelString(s.metric), vals);
  }
  return out;
}

/** A value as Go's FormatFloat writes it ("+Inf", "-Inf", "NaN" included). */
function goFloat(v: string): number {
  return v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
}

function expectClose(actual: Expected, expected: Expected): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, vals] of expected) {
    const a = actual.get(key) as (number | undefined)[];
    vals.forEach((v, k) => {
      if (v === undefined) expect(a[k], `${key} step ${k}`).toBeUndefined();
      else if (Number.isNaN(v)) expect(a[k], `${key} step ${k}`).toBeNaN();
      else expect(a[k], `${key} step ${k}`).toBeCloseTo(v, 9);
    });
  }
}

const sum = (vs: number[]) => vs.reduce((a, b) => a + b, 0);
const mean = (vs: number[]) => sum(vs) / vs.length;
const variance = (vs: number[]) => mean(vs.map((v) => (v - mean(vs)) ** 2));
const utf8len = (s: string) => new TextEncoder().encode(s).length;
const sel = (labels: Record<string, string>, names: string[]) => Object.fromEntries(names.filter((n) => labels[n] !== undefined).map((n) => [n, labels[n]]));
const parseKey = (key: string): Record<string, string> => Object.fromEntries([...key.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], JSON.parse(`"${m[2]}"`) as string]));

function quantile(q: number, vs: number[]): number {
  const s = [...vs].sort((a, b) => a - b);
  const rank = q * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (rank - lo);
}

/** Labels of an entry after `| logfmt`: the stream's, metadata, and every logfmt key. */
function logfmtLabels(s: GenStream, e: Entry): Record<string, string> {
  const msg = /msg="([^"]*)"/.exec(e.line)?.[1] ?? "";
  const meta = e.meta !== null ? { [e.meta[0]]: e.meta[1] } : {};
  return { ...s.labels, ...meta, level: e.level, latency: `${e.latencyMs}ms`, size: `${e.size}B`, n: String(e.n), msg };
}

// ------------------------------------------------------------------ metric table

interface Case {
  q: string;
  expected: () => Expected;
}

const web = (s: GenStream) => s.labels.app === "web";
const withMeta = (s: GenStream, e: Entry) => (e.meta !== null ? { ...s.labels, [e.meta[0]]: e.meta[1] } : s.labels);

const CASES: Case[] = [
  {
    q: 'count_over_time({app="web"} |= "error" [1m])',
    expected: () => expectMatrix((s, e) => (web(s) && e.line.includes("error") ? { labels: s.labels, v: 1 } : null), (vs) => vs.length),
  },
  {
    q: 'rate({app=~"web|api"} != "info" [2m])',
    expected: () => expectMatrix((s, e) => (!e.line.includes("info") ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length / 120, 120_000),
  },
  {
    q: 'bytes_over_time({app="api"}[1m])',
    expected: () => expectMatrix((s, e) => (s.labels.app === "api" ? { labels: withMeta(s, e), v: utf8len(e.line) } : null), sum),
  },
  {
    q: 'bytes_rate({app="api", env="dev"} |~ "naïve|request 1[0-9]+" [1m])',
    expected: () =>
      expectMatrix((s, e) => (s.labels.app === "api" && s.labels.env === "dev" && /naïve|request 1[0-9]+/.test(e.line) ? { labels: s.labels, v: utf8len(e.line) } : null), (vs) => sum(vs) / 60),
  },
  {
    q: 'count_over_time({app="web"} | logfmt | level="warn" [1m] offset 2m)',
    expected: () => expectMatrix((s, e) => (web(s) && e.level === "warn" ? { labels: logfmtLabels(s, e), v: 1 } : null), (vs) => vs.length, 60_000, 120_000),
  },
  {
    q: 'sum by (env) (count_over_time({app=~".+"} | logfmt | latency > 500ms [1m]))',
    expected: () =>
      expectAggregate(
        expectMatrix((s, e) => (e.latencyMs > 500 ? { labels: logfmtLabels(s, e), v: 1 } : null), (vs) => vs.length),
        (k) => labelString(sel(parseKey(k), ["env"])),
        sum,
      ),
  },
  {
    q: 'sum_over_time({app="web"} | logfmt | unwrap n [1m])',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: without(logfmtLabels(s, e), "n"), v: e.n } : null), sum),
  },
  {
    q: 'avg_over_time({app="web"} | logfmt | unwrap duration(latency) [1m]) by (level)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: { level: e.level }, v: e.latencyMs / 1000 } : null), mean),
  },
  {
    q: 'max_over_time({app="web"} | logfmt | unwrap bytes(size) [1m]) by (env)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: { env: s.labels.env }, v: e.size } : null), (vs) => Math.max(...vs)),
  },
  {
    q: 'min_over_time({app="web"} | logfmt | unwrap n [1m]) without (level, latency, size, msg)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: e.n } : null), (vs) => Math.min(...vs)),
  },
  {
    q: 'first_over_time({app="web", env="prod"} | logfmt | unwrap n [30s]) by (app)',
    expected: () => expectMatrix((s, e) => (web(s) && s.labels.env === "prod" ? { labels: { app: "web" }, v: e.n } : null), (vs) => vs[0], 30_000),
  },
  {
    q: 'last_over_time({app="web", env="prod"} | logfmt | unwrap n [30s]) by (app)',
    expected: () => expectMatrix((s, e) => (web(s) && s.labels.env === "prod" ? { labels: { app: "web" }, v: e.n } : null), (vs) => vs[vs.length - 1], 30_000),
  },
  {
    q: 'stddev_over_time({app="web"} | logfmt | unwrap n [1m]) by (env)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: { env: s.labels.env }, v: e.n } : null), (vs) => Math.sqrt(variance(vs))),
  },
  {
    q: 'stdvar_over_time({app="web"} | logfmt | unwrap n [1m]) by (env)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: { env: s.labels.env }, v: e.n } : null), variance),
  },
  {
    q: 'quantile_over_time(0.9, {app="web"} | logfmt | unwrap latency | __error__="" [1m]) by (env)',
    // "123ms" does not parse as a plain number: every sample errors and is filtered out.
    expected: () => new Map(),
  },
  {
    q: 'quantile_over_time(0.9, {app="web"} | regexp "latency=(?P<lat>\\\\d+)ms" | unwrap lat [1m]) by (env)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: { env: s.labels.env }, v: e.latencyMs } : null), (vs) => quantile(0.9, vs)),
  },
  {
    q: 'rate({app="web"} | logfmt | unwrap bytes(size) [1m]) by (env)',
    expected: () => expectMatrix((s, e) => (web(s) ? { labels: { env: s.labels.env }, v: e.size } : null), (vs) => sum(vs) / 60),
  },
  {
    q: 'topk(2, sum by (app, env) (count_over_time({app=~".+"}[1m])))',
    expected: () => {
      const per = expectAggregate(
        expectMatrix((s, e) => ({ labels: withMeta(s, e), v: 1 }), (vs) => vs.length),
        (k) => labelString(sel(parseKey(k), ["app", "env"])),
        sum,
      );
      const out: Expected = new Map();
      STEPS.forEach((_, k) => {
        const present = [...per].filter(([, v]) => v[k] !== undefined).sort((a, b) => (b[1][k] as number) - (a[1][k] as number));
        for (const [key, v] of present.slice(0, 2)) {
          if (!out.has(key)) out.set(key, STEPS.map(() => undefined));
          (out.get(key) as (number | undefined)[])[k] = v[k];
        }
      });
      return out;
    },
  },
  {
    q: 'sum by (app) (count_over_time({app=~".+"} |= "error" [1m])) / sum by (app) (count_over_time({app=~".+"}[1m]))',
    expected: () => {
      const errs = expectAggregate(
        expectMatrix((s, e) => (e.line.includes("error") ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length),
        (k) => labelString(sel(parseKey(k), ["app"])),
        sum,
      );
      const all = expectAggregate(
        expectMatrix((s, e) => ({ labels: withMeta(s, e), v: 1 }), (vs) => vs.length),
        (k) => labelString(sel(parseKey(k), ["app"])),
        sum,
      );
      const out: Expected = new Map();
      for (const [key, v] of errs) out.set(key, v.map((x, k) => (x === undefined || all.get(key)?.[k] === undefined ? undefined : x / (all.get(key)?.[k] as number))));
      return out;
    },
  },
  {
    q: 'count_over_time({app="web"}[1m]) > 30',
    expected: () => filterValues(expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length), (v) => v > 30),
  },
  {
    q: 'count_over_time({app="web"}[1m]) > bool 30',
    expected: () => mapValues(expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length), (v) => (v > 30 ? 1 : 0)),
  },
  {
    q: '2 * count_over_time({app="web"}[1m]) - 1 ^ 2',
    expected: () => mapValues(expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length), (v) => 2 * v - 1),
  },
  {
    q: 'count_over_time({app="web"}[1m]) and count_over_time({app="web"} |= "error" [10s])',
    expected: () => {
      const all = expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length);
      const errs = expectMatrix((s, e) => (web(s) && e.line.includes("error") ? { labels: s.labels, v: 1 } : null), (vs) => vs.length, 10_000);
      const out: Expected = new Map();
      for (const [key, v] of all) out.set(key, v.map((x, k) => (errs.get(key)?.[k] !== undefined ? x : undefined)));
      return dropEmpty(out);
    },
  },
  {
    q: 'count_over_time({app="web"}[1m]) unless count_over_time({app="web"} |= "error" [10s])',
    expected: () => {
      const all = expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length);
      const errs = expectMatrix((s, e) => (web(s) && e.line.includes("error") ? { labels: s.labels, v: 1 } : null), (vs) => vs.length, 10_000);
      const out: Expected = new Map();
      for (const [key, v] of all) out.set(key, v.map((x, k) => (errs.get(key)?.[k] === undefined ? x : undefined)));
      return dropEmpty(out);
    },
  },
  {
    q: 'sum by (env) (count_over_time({app="web"}[1m])) + on (env) group_left sum by (env, app) (count_over_time({app="api"}[1m]))',
    // one-to-one on env would also work; group_left keeps the left labels (env only).
    expected: () => {
      const l = expectAggregate(expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length), (k) => labelString(sel(parseKey(k), ["env"])), sum);
      const r = expectAggregate(expectMatrix((s, e) => (s.labels.app === "api" ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length), (k) => labelString(sel(parseKey(k), ["env"])), sum);
      const out: Expected = new Map();
      for (const [key, v] of l) out.set(key, v.map((x, k) => (x !== undefined && r.get(key)?.[k] !== undefined ? x + (r.get(key)?.[k] as number) : undefined)));
      return dropEmpty(out);
    },
  },
  {
    q: 'label_replace(sum by (env) (count_over_time({app="web"}[1m])), "stage", "$1-x", "env", "(p.*)")',
    expected: () =>
      renameKeys(
        expectAggregate(expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length), (k) => labelString(sel(parseKey(k), ["env"])), sum),
        (l) => (l.env === "prod" ? { ...l, stage: "prod-x" } : l),
      ),
  },
  {
    q: 'absent_over_time({app="nope", env="x"}[1m])',
    expected: () => new Map([[labelString({ app: "nope", env: "x" }), STEPS.map(() => 1)]]),
  },
  {
    q: "vector(3) * 2",
    expected: () => new Map([["{}", STEPS.map(() => 6)]]),
  },
  {
    q: 'count_over_time({app="api", env="prod"} | trace_id="t1" [1m])',
    expected: () => expectMatrix((s, e) => (s.labels.app === "api" && s.labels.env === "prod" && e.meta?.[1] === "t1" ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length),
  },
  {
    q: 'sum(count_over_time({app="web"} | logfmt | drop level, latency, size, n, msg | label_format lvl="{{ .env | ToUpper }}" [1m])) by (lvl)',
    expected: () => expectAggregate(expectMatrix((s, e) => (web(s) ? { labels: { lvl: s.labels.env.toUpperCase() }, v: 1 } : null), (vs) => vs.length), (k) => k, sum),
  },
  // ---- vector aggregations, each against values computed here from the entries
  {
    q: 'avg by (env) (count_over_time({app=~".+"}[1m]))',
    expected: () => expectAggregate(allCounts(), (k) => labelString(sel(parseKey(k), ["env"])), mean),
  },
  {
    q: 'min by (app) (bytes_over_time({app=~".+"}[1m]))',
    expected: () => expectAggregate(allBytes(), (k) => labelString(sel(parseKey(k), ["app"])), (vs) => Math.min(...vs)),
  },
  {
    q: 'max(bytes_over_time({app=~".+"}[1m])) by (env)',
    expected: () => expectAggregate(allBytes(), (k) => labelString(sel(parseKey(k), ["env"])), (vs) => Math.max(...vs)),
  },
  {
    q: 'count by (app) (count_over_time({app=~".+"} |= "warn" [30s]))',
    expected: () =>
      expectAggregate(
        expectMatrix((s, e) => (e.line.includes("warn") ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length, 30_000),
        (k) => labelString(sel(parseKey(k), ["app"])),
        (vs) => vs.length,
      ),
  },
  {
    q: 'stddev(bytes_over_time({app=~".+"}[1m]))',
    expected: () => expectAggregate(allBytes(), () => "{}", (vs) => Math.sqrt(variance(vs))),
  },
  {
    q: 'stdvar by (env) (count_over_time({app=~".+"}[1m]))',
    expected: () => expectAggregate(allCounts(), (k) => labelString(sel(parseKey(k), ["env"])), variance),
  },
  {
    // Vector-level `without`: every label but env is kept (trace_id splits api/prod's series).
    q: 'sum without (env) (count_over_time({app=~".+"}[1m]))',
    expected: () => expectAggregate(allCounts(), (k) => labelString(without(parseKey(k), "env")), sum),
  },
  {
    q: 'max without (app, trace_id) (count_over_time({app=~".+"}[1m]))',
    expected: () => expectAggregate(allCounts(), (k) => labelString(sel(parseKey(k), ["env"])), (vs) => Math.max(...vs)),
  },
  {
    // Byte sums of whole streams: no ties at the boundary, so the kept series are unambiguous.
    q: 'bottomk(2, sum by (app, env) (bytes_over_time({app=~".+"}[1m])))',
    expected: () => {
      const per = expectAggregate(allBytes(), (k) => labelString(sel(parseKey(k), ["app", "env"])), sum);
      const out: Expected = new Map();
      STEPS.forEach((_, k) => {
        const present = [...per].filter(([, v]) => v[k] !== undefined).sort((a, b) => (a[1][k] as number) - (b[1][k] as number));
        for (const [key, v] of present.slice(0, 2)) {
          if (!out.has(key)) out.set(key, STEPS.map(() => undefined));
          (out.get(key) as (number | undefined)[])[k] = v[k];
        }
      });
      return out;
    },
  },
  {
    // In a range query sort/sort_desc change no value (the matrix is ordered by labels).
    q: 'sort_desc(sum by (app, env) (count_over_time({app=~".+"}[1m])))',
    expected: () => expectAggregate(allCounts(), (k) => labelString(sel(parseKey(k), ["app", "env"])), sum),
  },
  {
    // `or`: the left side where it has a sample, else the right side's series with the same labels.
    q: 'sum by (env) (count_over_time({app="web"} |= "error" [10s])) or sum by (env) (count_over_time({app="api"}[1m]))',
    expected: () => {
      const l = expectAggregate(
        expectMatrix((s, e) => (web(s) && e.line.includes("error") ? { labels: s.labels, v: 1 } : null), (vs) => vs.length, 10_000),
        (k) => labelString(sel(parseKey(k), ["env"])),
        sum,
      );
      const r = expectAggregate(
        expectMatrix((s, e) => (s.labels.app === "api" ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length),
        (k) => labelString(sel(parseKey(k), ["env"])),
        sum,
      );
      const out: Expected = new Map();
      for (const key of new Set([...l.keys(), ...r.keys()])) out.set(key, STEPS.map((_, k) => l.get(key)?.[k] ?? r.get(key)?.[k]));
      return dropEmpty(out);
    },
  },
  {
    // group_right: the right side is "many"; the result keeps its labels.
    q: 'sum by (env) (count_over_time({app=~".+"}[1m])) / on (env) group_right sum by (app, env) (count_over_time({app=~".+"}[1m]))',
    expected: () => manyToOne((one, many) => one / many),
  },
  {
    // group_right (tier): `tier` is copied from the "one" side.
    q: 'label_replace(sum by (env) (count_over_time({app=~".+"}[1m])), "tier", "t-$1", "env", "(.*)") * on (env) group_right (tier) sum by (app, env) (count_over_time({app=~".+"}[1m]))',
    expected: () => renameKeys(manyToOne((one, many) => one * many), (l) => ({ ...l, tier: `t-${l.env}` })),
  },
  {
    // A filtering comparison keeps the left-hand value (Loki's MergeBinOp, Prometheus too), with the many side's labels.
    q: 'sum by (env) (count_over_time({app=~".+"}[1m])) > on (env) group_right sum by (app, env) (count_over_time({app=~".+"}[1m]))',
    expected: () => manyToOne((one, many) => (one > many ? one : undefined)),
  },
  {
    // Loki's MergeBinOp guards division (and modulo) by zero: NaN, not Inf.
    q: 'count_over_time({app="web"}[1m]) / 0',
    expected: () => mapValues(expectMatrix((s, e) => (web(s) ? { labels: s.labels, v: 1 } : null), (vs) => vs.length), () => NaN),
  },
];

/** count_over_time(...[1m]) of every stream, split by structured metadata as the engine splits it. */
function allCounts(): Expected {
  return expectMatrix((s, e) => ({ labels: withMeta(s, e), v: 1 }), (vs) => vs.length);
}
function allBytes(): Expected {
  return expectMatrix((s, e) => ({ labels: withMeta(s, e), v: utf8len(e.line) }), sum);
}
/** `sum by (env) (counts) OP on (env) group_right sum by (app, env) (counts)`, per step. */
function manyToOne(f: (one: number, many: number) => number | undefined): Expected {
  const one = expectAggregate(allCounts(), (k) => labelString(sel(parseKey(k), ["env"])), sum);
  const many = expectAggregate(allCounts(), (k) => labelString(sel(parseKey(k), ["app", "env"])), sum);
  const out: Expected = new Map();
  for (const [key, v] of many) {
    const o = one.get(labelString(sel(parseKey(key), ["env"])));
    out.set(key, v.map((x, k) => (x === undefined || o?.[k] === undefined ? undefined : f(o[k] as number, x))));
  }
  return dropEmpty(out);
}

function without(l: Record<string, string>, name: string): Record<string, string> {
  const { [name]: _drop, ...rest } = l;
  return rest;
}
function mapValues(m: Expected, f: (v: number) => number): Expected {
  return new Map([...m].map(([k, v]) => [k, v.map((x) => (x === undefined ? undefined : f(x)))]));
}
function filterValues(m: Expected, f: (v: number) => boolean): Expected {
  return dropEmpty(new Map([...m].map(([k, v]) => [k, v.map((x) => (x === undefined || !f(x) ? undefined : x))])));
}
function dropEmpty(m: Expected): Expected {
  return new Map([...m].filter(([, v]) => v.some((x) => x !== undefined)));
}
function renameKeys(m: Expected, f: (l: Record<string, string>) => Record<string, string>): Expected {
  return new Map([...m].map(([k, v]) => [labelString(f(parseKey(k))), v]));
}

describe("LogQL engine: metric queries against independently computed values", () => {
  for (const c of CASES) {
    it(c.q, async () => {
      const src = new MemorySource(DATA);
      const d = await evalLogQL(src, c.q, rangeOpts());
      const expected = c.expected();
      expectClose(actualMatrix(d), expected);
      if (expected.size > 0 && !c.q.startsWith("absent")) expect(d.result.length).toBeGreaterThan(0);
    });
  }

  it("reads each selector once over its whole range", async () => {
    const src = new MemorySource(DATA);
    await evalLogQL(src, 'sum(count_over_time({app="web"}[1m])) / sum(count_over_time({app="web"}[5m] offset 1m))', rangeOpts());
    expect(src.calls.length).toBe(2);
    expect(src.calls.map((c) => c.startMs).sort()).toEqual([START - 60_000, START - 60_000 - 300_000].sort());
  });

  it("the cases cover non-trivial data", () => {
    const e = CASES[0].expected();
    expect(e.size).toBe(2);
    expect([...e.values()].flat().filter((v) => v !== undefined && v > 0).length).toBeGreaterThan(10);
  });

  it("instant queries evaluate at `end` and return a vector sorted by labels", async () => {
    const d = await evalLogQL(new MemorySource(DATA), 'count_over_time({app=~".+"} |= "warn" [1m])', rangeOpts({ instant: true }));
    const exp = expectMatrix((s, e) => (e.line.includes("warn") ? { labels: withMeta(s, e), v: 1 } : null), (vs) => vs.length, 60_000, 0, [END]);
    expect(d.resultType).toBe("vector");
    if (d.resultType !== "vector") return;
    expect(d.result.map((r) => labelString(r.metric))).toEqual([...exp.keys()].sort());
    for (const r of d.result) {
      expect(r.value[0]).toBe(END / 1000);
      expect(Number(r.value[1])).toBe(exp.get(labelString(r.metric))?.[0]);
    }
  });

  it("sort and sort_desc order an instant vector by value; other instant vectors are ordered by labels", async () => {
    // At T0 + 200 s every stream has entries in the window (the generated streams end near T0 + 250 s).
    const at = T0 + 200_000;
    const per = expectAggregate(
      expectMatrix((s, e) => ({ labels: withMeta(s, e), v: utf8len(e.line) }), sum, 60_000, 0, [at]),
      (k) => labelString(sel(parseKey(k), ["app", "env"])),
      sum,
      [at],
    );
    const want = [...per].map(([key, v]) => ({ key, v: v[0] as number }));
    expect(want.length).toBe(4);
    const q = 'sum by (app, env) (bytes_over_time({app=~".+"}[1m]))';
    for (const [op, dir] of [["sort", 1], ["sort_desc", -1]] as const) {
      const d = await evalLogQL(new MemorySource(DATA), `${op}(${q})`, rangeOpts({ instant: true, endMs: at }));
      if (d.resultType !== "vector") throw new Error("vector expected");
      expect(d.result.map((r) => [labelString(r.metric), Number(r.value[1])])).toEqual([...want].sort((a, b) => dir * (a.v - b.v)).map((w) => [w.key, w.v]));
    }
    const plain = await evalLogQL(new MemorySource(DATA), q, rangeOpts({ instant: true, endMs: at }));
    if (plain.resultType !== "vector") throw new Error("vector expected");
    expect(plain.result.map((r) => labelString(r.metric))).toEqual(want.map((w) => w.key).sort());
  });

  it("a literal division by zero is NaN, as Loki folds it", async () => {
    expect(await evalLogQL(new MemorySource(DATA), "1 / 0", rangeOpts({ instant: true }))).toEqual({ resultType: "scalar", result: [END / 1000, "NaN"] });
    expect(await evalLogQL(new MemorySource(DATA), "5 % 0", rangeOpts({ instant: true }))).toEqual({ resultType: "scalar", result: [END / 1000, "NaN"] });
  });

  it("scalars: a scalar for instant queries, one series without labels for ranges", async () => {
    const i = await evalLogQL(new MemorySource(DATA), "1 + 2 * 3", rangeOpts({ instant: true }));
    expect(i).toEqual({ resultType: "scalar", result: [END / 1000, "7"] });
    const r = await evalLogQL(new MemorySource(DATA), "2 ^ 0.5", rangeOpts());
    expect(r.resultType).toBe("matrix");
    expect(r.result).toEqual([{ metric: {}, values: STEPS.map((t) => [t / 1000, "1.4142135623730951"]) }]);
  });

  it("a parser error reaching a metric is Loki's pipeline error (400)", async () => {
    const p = evalLogQL(new MemorySource(DATA), 'count_over_time({app="web"} | json [1m])', rangeOpts());
    await expect(p).rejects.toThrow(LogQLEvalError);
    await expect(p).rejects.toThrow(/pipeline error: 'JSONParserErr' for series: '\{__error__="JSONParserErr", __error_details__=".*", app="web", env="(dev|prod)"\}'/);
    // Filtering the error away makes the same query valid (and empty).
    const ok = await evalLogQL(new MemorySource(DATA), 'count_over_time({app="web"} | json | __error__="" [1m])', rangeOpts());
    expect(ok).toEqual({ resultType: "matrix", result: [] });
  });

  it("max series limit", async () => {
    await expect(evalLogQL(new MemorySource(DATA), 'count_over_time({app=~".+"} | logfmt [1m])', rangeOpts({ maxSeries: 10 }))).rejects.toThrow(/maximum number of series \(10\)/);
  });
});

// ------------------------------------------------------------------ log queries

describe("LogQL engine: log queries", () => {
  const all = DATA.flatMap((s) => s.entries.map((e) => ({ s, e })));

  it("line filter, backward, limit across streams, streams sorted by labels", async () => {
    const o = rangeOpts({ limit: 25 });
    const d = await evalLogQL(new MemorySource(DATA), '{app=~"web|api"} |= "error"', o);
    const inRange = all.filter(({ e }) => e.line.includes("error") && e.ms >= START && e.ms < END);
    inRange.sort((a, b) => cmpNs(b.e.ms, b.e.ns, a.e.ms, a.e.ns));
    const want = inRange.slice(0, 25);
    expect(d.resultType).toBe("streams");
    if (d.resultType !== "streams") return;
    const keys = d.result.map((r) => labelString(r.stream));
    expect(keys).toEqual([...keys].sort());
    const got = d.result.flatMap((r) => r.values.map((v) => `${labelString(r.stream)} ${v[0]} ${v[1]}`)).sort();
    expect(got).toEqual(want.map(({ s, e }) => `${labelString(withMeta(s, e))} ${ns(e.ms, e.ns)} ${e.line}`).sort());
    for (const r of d.result) {
      const ts = r.values.map((v) => BigInt(v[0]));
      expect(ts).toEqual([...ts].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    }
  });

  it("forward direction returns the oldest entries in ascending order", async () => {
    const d = await evalLogQL(new MemorySource(DATA), '{app="web", env="prod"}', rangeOpts({ direction: "forward", limit: 5 }));
    const want = DATA[0].entries.filter((e) => e.ms >= START && e.ms < END).slice(0, 5);
    expect(d).toEqual({ resultType: "streams", result: [{ stream: { app: "web", env: "prod" }, values: want.map((e) => [String(ns(e.ms, e.ns)), e.line]) }] });
  });

  it("parsed labels split a stream into one result stream per label set", async () => {
    const d = await evalLogQL(new MemorySource(DATA), '{app="web", env="dev"} | logfmt | keep app, env, level', rangeOpts({ limit: 1000 }));
    const es = DATA[1].entries.filter((e) => e.ms >= START && e.ms < END);
    if (d.resultType !== "streams") throw new Error("streams expected");
    expect(d.result.map((r) => r.stream)).toEqual(
      ["error", "info", "warn"].filter((l) => es.some((e) => e.level === l)).map((level) => ({ app: "web", env: "dev", level })),
    );
    for (const r of d.result) expect(r.values.length).toBe(es.filter((e) => e.level === r.stream.level).length);
  });

  it("line_format rewrites lines; categorize-labels keeps stream labels and reports metadata and parsed labels per entry", async () => {
    const d = await evalLogQL(new MemorySource(DATA), '{app="api", env="prod"} | logfmt | keep level | line_format "{{.level}}: {{.msg}}"', rangeOpts({ limit: 3, categorizeLabels: true, direction: "forward" }));
    const es = DATA[2].entries.filter((e) => e.ms >= START && e.ms < END).slice(0, 3);
    if (d.resultType !== "streams") throw new Error("streams expected");
    expect(d.result).toHaveLength(1);
    // keep dropped the stream labels too: the stream is {} and level is a parsed label.
    expect(d.result[0].stream).toEqual({});
    expect(d.result[0].values).toEqual(es.map((e) => [String(ns(e.ms, e.ns)), `${e.level}: `, { parsed: { level: e.level } }]));
  });

  it("interval keeps entries at least that far apart", async () => {
    const d = await evalLogQL(new MemorySource(DATA), '{app="web", env="prod"}', rangeOpts({ direction: "forward", limit: 1000, intervalMs: 10_000 }));
    if (d.resultType !== "streams") throw new Error("streams expected");
    const ts = d.result[0].values.map((v) => BigInt(v[0]));
    let last: bigint | null = null;
    const want: bigint[] = [];
    for (const e of DATA[0].entries.filter((x) => x.ms >= START && x.ms < END)) {
      const t = ns(e.ms, e.ns);
      if (last === null || t >= last + 10_000_000_000n) {
        want.push(t);
        last = t;
      }
    }
    expect(ts).toEqual(want);
  });

  it("interval with a small limit: `limit` entries `interval` apart (Loki counts only the entries it returns)", async () => {
    // One line per second over 20 minutes; limit 10, interval 1m: 10 lines one minute apart.
    const es: Entry[] = Array.from({ length: 1200 }, (_, i) => ({ ms: T0 + i * 1000, ns: 0, line: `tick ${i}`, level: "", latencyMs: 0, size: 0, n: 0, meta: null }));
    const src = new MemorySource([{ labels: { job: "tick" }, entries: es }]);
    const o = { startMs: T0, startNs: 0, endMs: T0 + 1_200_000, endNs: 0, stepMs: 1000, instant: false, limit: 10, intervalMs: 60_000 };
    const pick = (idx: number[]) => [{ stream: { job: "tick" }, values: idx.map((i) => [String(ns(T0 + i * 1000, 0)), `tick ${i}`]) }];
    const forward = await evalLogQL(src, '{job="tick"}', { ...o, direction: "forward" });
    expect(forward).toEqual({ resultType: "streams", result: pick(Array.from({ length: 10 }, (_, k) => k * 60)) });
    const backward = await evalLogQL(src, '{job="tick"}', { ...o, direction: "backward" });
    expect(backward).toEqual({ resultType: "streams", result: pick(Array.from({ length: 10 }, (_, k) => 1199 - k * 60)) });
  });

  it("limit above max entries is refused", async () => {
    await expect(evalLogQL(new MemorySource(DATA), '{app="web"}', rangeOpts({ limit: 6000, maxEntries: 5000 }))).rejects.toThrow(
      "max entries limit per query exceeded, limit > max_entries_limit (6000 > 5000)",
    );
  });
});

// ------------------------------------------------------------------ Loki documentation examples

function one(line: string, labels: Record<string, string> = { job: "x" }): MemorySource {
  const e: Entry = { ms: T0, ns: 5, line, level: "", latencyMs: 0, size: 0, n: 0, meta: null };
  return new MemorySource([{ labels, entries: [e] }]);
}
const at = { startMs: T0 - 1000, startNs: 0, endMs: T0 + 1000, endNs: 0, stepMs: 1000, instant: false, direction: "backward" as const, limit: 10 };

describe("LogQL engine: exact output for Loki's documentation examples", () => {
  it("json parser (docs: query/log_queries, JSON)", async () => {
    const line = JSON.stringify({
      protocol: "HTTP/2.0",
      servers: ["129.0.1.1", "10.2.1.3"],
      request: { time: "6.032", method: "GET", host: "foo.grafana.net", size: "55", headers: { Accept: "*/*", "User-Agent": "curl/7.68.0" } },
      response: { status: 401, size: "228", latency_seconds: "6.031" },
    });
    const d = await evalLogQL(one(line), '{job="x"} | json', at);
    expect(d).toEqual({
      resultType: "streams",
      result: [
        {
          stream: {
            job: "x",
            protocol: "HTTP/2.0",
            request_time: "6.032",
            request_method: "GET",
            request_host: "foo.grafana.net",
            request_size: "55",
            request_headers_Accept: "*/*",
            request_headers_User_Agent: "curl/7.68.0",
            response_status: "401",
            response_size: "228",
            response_latency_seconds: "6.031",
          },
          values: [[`${T0}000005`, line]],
        },
      ],
    });
    const p = await evalLogQL(one(line), '{job="x"} | json first_server="servers[0]", ua="request.headers[\\"User-Agent\\"]"', at);
    expect(p.resultType === "streams" && p.result[0].stream).toEqual({ job: "x", first_server: "129.0.1.1", ua: "curl/7.68.0" });
  });

  it("logfmt parser (docs)", async () => {
    const d = await evalLogQL(one('at=info method=GET path=/ host=grafana.net fwd="124.133.124.161" service=8ms status=200'), '{job="x"} | logfmt', at);
    expect(d.resultType === "streams" && d.result[0].stream).toEqual({ job: "x", at: "info", method: "GET", path: "/", host: "grafana.net", fwd: "124.133.124.161", service: "8ms", status: "200" });
  });

  it("pattern parser (docs, NGINX line)", async () => {
    const line = '0.191.12.2 - - [10/Jun/2021:09:14:29 +0000] "GET /api/plugins/versioncheck HTTP/1.1" 200 2 "-" "Go-http-client/2.0" "13.76.247.102, 34.120.177.193" "TLSv1.2" "US" ""';
    const d = await evalLogQL(one(line), '{job="x"} | pattern `<ip> - - <_> "<method> <uri> <_>" <status> <size> <_> "<agent>" <_>`', at);
    expect(d.resultType === "streams" && d.result[0].stream).toEqual({ job: "x", ip: "0.191.12.2", method: "GET", uri: "/api/plugins/versioncheck", status: "200", size: "2", agent: "Go-http-client/2.0" });
  });

  it("regexp parser (docs)", async () => {
    const d = await evalLogQL(one("POST /api/prom/api/v1/query_range (200) 1.5s"), '{job="x"} | regexp "(?P<method>\\\\w+) (?P<path>[\\\\w|/]+) \\\\((?P<status>\\\\d+?)\\\\) (?P<duration>.*)"', at);
    expect(d.resultType === "streams" && d.result[0].stream).toEqual({ job: "x", method: "POST", path: "/api/prom/api/v1/query_range", status: "200", duration: "1.5s" });
  });

  it("unpack (docs)", async () => {
    const d = await evalLogQL(one('{"container":"myapp","pod":"pod-3223f","_entry":"original log message"}'), '{job="x"} | unpack', at);
    expect(d).toEqual({ resultType: "streams", result: [{ stream: { job: "x", container: "myapp", pod: "pod-3223f" }, values: [[`${T0}000005`, "original log message"]] }] });
  });

  it("line_format and label_format (docs template examples)", async () => {
    const src = one('level=info ts=2020-10-23T20:32:18.094668233Z caller=metrics.go:81 org_id=29 traceID=1980d41501b57b68 latency=fast query="{cluster=\\"ops-tools1\\", job=\\"cortex-ops/query-frontend\\"} |= \\"query_range\\"" duration=615.062µs status=200 throughput=80.5kB total_bytes=15.8kB', { container: "frontend" });
    const d = await evalLogQL(src, '{container="frontend"} | logfmt | line_format "{{.query}} {{.duration}}"', at);
    expect(d.resultType === "streams" && d.result[0].values[0][1]).toBe('{cluster="ops-tools1", job="cortex-ops/query-frontend"} |= "query_range" 615.062µs');
    const f = await evalLogQL(src, '{container="frontend"} | logfmt | label_format foo=bar, status="{{.status}}-{{.org_id}}" | keep container, status', at);
    expect(f.resultType === "streams" && f.result[0].stream).toEqual({ container: "frontend", status: "200-29" });
  });

  it("metric output format: seconds and Go-formatted value strings", async () => {
    const es: Entry[] = [0, 250, 500, 750].map((o, i) => ({ ms: T0 + o, ns: 0, line: `v=${i}`, level: "", latencyMs: 0, size: 0, n: 0, meta: null }));
    const src = new MemorySource([{ labels: { job: "x" }, entries: es }]);
    const d = await evalLogQL(src, 'rate({job="x"}[3s])', { ...at, startMs: T0, endMs: T0 + 2000 });
    expect(d).toEqual({
      resultType: "matrix",
      result: [{ metric: { job: "x" }, values: [[T0 / 1000, "0.3333333333333333"], [T0 / 1000 + 1, "1.3333333333333333"], [T0 / 1000 + 2, "1.3333333333333333"]] }],
    });
  });
});
