// Reading /metrics in the Worker tests: a strict parser of the Prometheus text
// format 0.0.4 (every rule our writer must follow), a sample lookup, and scrapes
// through the Worker (test/worker/metrics_endpoint.test.ts,
// test/worker/metrics_tenant.test.ts).

import { expect } from "vitest";
import { SELF } from "cloudflare:test";
import { EXPOSITION_CONTENT_TYPE } from "../../src/observability/exposition";

// ---------------------------------------------------------------------------------
// A strict reader of the text format 0.0.4: every rule our writer must follow.
// ---------------------------------------------------------------------------------

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface ParsedFamily {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => {
    if (c === "n") return "\n";
    if (c === "\\") return "\\";
    throw new Error(`invalid escape \\${c} in HELP`);
  });
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label at ${JSON.stringify(text.slice(i))} in ${line}`);
    i += m[0].length;
    let v = "";
    for (;;) {
      if (i >= text.length) throw new Error(`unterminated label value in ${line}`);
      const c = text[i];
      if (c === '"') break;
      if (c === "\n") throw new Error("raw newline in label value");
      if (c === "\\") {
        const n = text[i + 1];
        if (n === "n") v += "\n";
        else if (n === "\\" || n === '"') v += n;
        else throw new Error(`invalid escape \\${n} in ${line}`);
        i += 2;
      } else {
        v += c;
        i++;
      }
    }
    i++;
    if (m[1] in labels) throw new Error(`duplicate label ${m[1]} in ${line}`);
    labels[m[1]] = v;
    if (text[i] === ",") i++;
    else if (i !== text.length) throw new Error(`expected , after label in ${line}`);
  }
  return labels;
}

function parseValue(s: string): number {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value ${s}`);
  return Number(s);
}

export function parseStrict(text: string): Map<string, ParsedFamily> {
  expect(text.endsWith("\n")).toBe(true);
  const families = new Map<string, ParsedFamily>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: ParsedFamily | null = null;
  let pendingHelp: { name: string; help: string } | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      if (current) closed.add(current.name);
      current = null;
      pendingHelp = { name: m[1], help: unescapeHelp(m[2]) };
      continue;
    }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (families.has(m[1]) || closed.has(m[1])) throw new Error(`family ${m[1]} declared twice`);
      if (pendingHelp?.name !== m[1]) throw new Error(`TYPE ${m[1]} without its HELP just before`);
      current = { name: m[1], type: m[2], help: pendingHelp.help, samples: [] };
      families.set(m[1], current);
      pendingHelp = null;
      continue;
    }
    if (line.startsWith("#")) throw new Error(`unexpected comment ${line}`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    if (!current) throw new Error(`sample ${m[1]} outside a family`);
    const allowed = current.type === "histogram" ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`] : [current.name];
    if (!allowed.includes(m[1])) throw new Error(`sample ${m[1]} in family ${current.name}`);
    const labels = parseLabels(m[2] ?? "", line);
    const key = m[1] + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`duplicate sample ${line}`);
    seen.add(key);
    current.samples.push({ name: m[1], labels, value: parseValue(m[3]) });
  }
  for (const f of families.values()) {
    if (f.type === "counter") expect(f.name.endsWith("_total"), f.name).toBe(true);
    if (f.type === "histogram") checkHistogram(f);
  }
  return families;
}

/** Buckets ascend in le, counts never decrease, +Inf equals _count. */
function checkHistogram(f: ParsedFamily): void {
  const groups = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push({ ...s, labels: s.name.endsWith("_bucket") ? { le } : {} });
  }
  for (const samples of groups.values()) {
    const buckets = samples.filter((s) => s.name.endsWith("_bucket"));
    let prevLe = -Infinity;
    let prev = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels.le);
      expect(le).toBeGreaterThan(prevLe);
      expect(b.value).toBeGreaterThanOrEqual(prev);
      prevLe = le;
      prev = b.value;
    }
    expect(buckets[buckets.length - 1].labels.le).toBe("+Inf");
    const count = samples.find((s) => s.name.endsWith("_count"))!;
    expect(count.value).toBe(prev);
    expect(samples.some((s) => s.name.endsWith("_sum"))).toBe(true);
  }
}

export function value(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number {
  const f = families.get(name.replace(/_(bucket|sum|count)$/, "")) ?? families.get(name);
  if (!f) return 0;
  let sum = 0;
  for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}

export async function scrape(): Promise<Map<string, ParsedFamily>> {
  const res = await SELF.fetch("http://x/metrics");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("Content-Type")).toBe(EXPOSITION_CONTENT_TYPE);
  return parseStrict(text);
}

/** Scrapes until the tenant's shards are listed (each registers in R2 at its first write, not awaited by the push). */
export async function scrapeWithTenant(tenant: string): Promise<Map<string, ParsedFamily>> {
  for (let i = 0; i < 100; i++) {
    const f = await scrape();
    if (f.get("cortex_distributor_received_samples_total")?.samples.some((s) => s.labels.user === tenant)) return f;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`tenant ${tenant} never appeared in /metrics`);
}
