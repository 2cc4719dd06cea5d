// The Prometheus text exposition format, version 0.0.4
// (prometheus/docs content/docs/instrumenting/exposition_formats.md; client_golang's
// expfmt.MetricFamilyToText is the reference writer):
//
//   # HELP <name> <text, with \ and newline escaped>
//   # TYPE <name> counter|gauge|histogram
//   <name>{<label>="<value, with \ " and newline escaped>",...} <value>
//
// Every family's samples are contiguous, after its HELP and TYPE lines (the text
// parser refuses a family that reappears). Histograms are written as cumulative
// _bucket{le} series ending in le="+Inf", then _sum and _count.

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type MetricType = "counter" | "gauge" | "histogram";

export type Labels = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed (exposition format 0.0.4). */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
}

/** Escapes HELP text: backslash and line feed only (quotes stay as they are). */
export function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/** A sample value as Go's strconv.FormatFloat(v, 'g', -1, 64) would print it, spelling infinities as the format does. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelKey(labels: Labels): string {
  const names = Object.keys(labels).sort();
  let s = "";
  for (const n of names) {
    if (!LABEL_NAME.test(n) || n.startsWith("__")) throw new Error(`invalid label name ${JSON.stringify(n)}`);
    s += `${s === "" ? "" : ","}${n}="${escapeLabelValue(labels[n])}"`;
  }
  return s;
}

interface HistogramState {
  /** Non-cumulative count per bucket (upper bounds of the family), the last one +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/** One metric family. Samples with the same labels are summed (so collectors can aggregate by adding). */
export class Family {
  /** Rendered label set -> value, in insertion order. */
  private readonly values = new Map<string, number>();
  private readonly histograms = new Map<string, HistogramState>();

  constructor(
    readonly name: string,
    readonly type: MetricType,
    readonly help: string,
    /** Histogram bucket upper bounds, ascending, without +Inf. */
    readonly buckets: readonly number[] = [],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    // Prometheus's naming conventions (promtool check metrics): counters end in _total.
    if (type === "counter" && !name.endsWith("_total")) throw new Error(`counter ${name} must end in _total`);
  }

  get size(): number {
    return this.values.size + this.histograms.size;
  }

  /** Adds v to the sample with these labels (creating it at v). */
  add(labels: Labels, v: number): this {
    if (this.type === "histogram") throw new Error(`${this.name} is a histogram: use observeMany`);
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + v);
    return this;
  }

  /** Sets the sample with these labels (gauges). */
  set(labels: Labels, v: number): this {
    if (this.type === "histogram") throw new Error(`${this.name} is a histogram: use observeMany`);
    this.values.set(labelKey(labels), v);
    return this;
  }

  /** Adds a histogram's non-cumulative bucket counts (one per bound, then +Inf), sum and count. */
  observeMany(labels: Labels, counts: ArrayLike<number>, sum: number, count: number): this {
    if (this.type !== "histogram") throw new Error(`${this.name} is not a histogram`);
    if (counts.length !== this.buckets.length + 1) throw new Error(`${this.name}: ${counts.length} bucket counts for ${this.buckets.length + 1} buckets`);
    const key = labelKey(labels);
    let h = this.histograms.get(key);
    if (!h) this.histograms.set(key, (h = { counts: new Array<number>(counts.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < counts.length; i++) h.counts[i] += counts[i];
    h.sum += sum;
    h.count += count;
    return this;
  }

  render(out: string[]): void {
    if (this.size === 0) return; // as client_golang: a family without samples is not written
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    out.push(`# TYPE ${this.name} ${this.type}`);
    for (const [key, v] of this.values) out.push(`${this.name}${key === "" ? "" : `{${key}}`} ${formatValue(v)}`);
    for (const [key, h] of this.histograms) {
      const sep = key === "" ? "" : ",";
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += h.counts[i];
        const le = i < this.buckets.length ? formatValue(this.buckets[i]) : "+Inf";
        out.push(`${this.name}_bucket{${key}${sep}le="${le}"} ${formatValue(cumulative)}`);
      }
      out.push(`${this.name}_sum${key === "" ? "" : `{${key}}`} ${formatValue(h.sum)}`);
      out.push(`${this.name}_count${key === "" ? "" : `{${key}}`} ${formatValue(h.count)}`);
    }
  }
}

/** The families of one exposition, written in registration order. */
export class Registry {
  private readonly families = new Map<string, Family>();

  private family(name: string, type: MetricType, help: string, buckets?: readonly number[]): Family {
    const existing = this.families.get(name);
    if (existing) {
      if (existing.type !== type) throw new Error(`${name} registered as ${existing.type} and ${type}`);
      return existing;
    }
    const f = new Family(name, type, help, buckets);
    this.families.set(name, f);
    return f;
  }

  counter(name: string, help: string): Family {
    return this.family(name, "counter", help);
  }

  gauge(name: string, help: string): Family {
    return this.family(name, "gauge", help);
  }

  histogram(name: string, help: string, buckets: readonly number[]): Family {
    return this.family(name, "histogram", help, buckets);
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) f.render(out);
    return out.length === 0 ? "" : out.join("\n") + "\n";
  }
}
