// The labels of one log entry while it passes through a pipeline (Loki's LabelsBuilder,
// pkg/logql/log/labels.go): the stream's labels, the entry's structured metadata, and
// what stages added (parsers, label_format, __error__) or removed (drop, keep).
// One builder serves a whole stream; reset() per entry clears the changes without
// allocating, and nothing is materialised unless a label set is asked for.

import type { FlatLabels } from "../../../model/labels";
import { goQuote } from "../../promql/format";

export const ERROR_LABEL = "__error__";
export const ERROR_DETAILS_LABEL = "__error_details__";

// Loki's error label values (pkg/logql/log/error.go).
export const ERR_JSON = "JSONParserErr";
export const ERR_LOGFMT = "LogfmtParserErr";
export const ERR_LABEL_FILTER = "LabelFilterErr";
export const ERR_SAMPLE = "SampleExtractionErr";
export const ERR_TEMPLATE = "TemplateFormatErr";

export class LabelsBuilder {
  private base: FlatLabels = [];
  private baseKey = "{}";
  private meta: FlatLabels | null = null;
  /** Labels set by stages on this entry (name → value; "" means set-but-empty). */
  readonly added = new Map<string, string>();
  /** Names set by parsers, for the categorized response. */
  readonly parsedNames = new Set<string>();
  private readonly deleted = new Set<string>();

  /** Starts a stream: its sorted labels and their canonical string. */
  setStream(labels: FlatLabels, key: string): void {
    this.base = labels;
    this.baseKey = key;
  }

  /** Starts an entry with its structured metadata (or null). */
  reset(meta: FlatLabels | null): void {
    this.meta = meta;
    if (this.added.size > 0) this.added.clear();
    if (this.parsedNames.size > 0) this.parsedNames.clear();
    if (this.deleted.size > 0) this.deleted.clear();
  }

  /** Whether the stream itself (or the entry's metadata) has the label: parsers then write `name_extracted` (Loki BaseHas). */
  baseHas(name: string): boolean {
    return indexOf(this.base, name) >= 0 || (this.meta !== null && indexOf(this.meta, name) >= 0);
  }

  get(name: string): string | undefined {
    const a = this.added.get(name);
    if (a !== undefined) return a;
    if (this.deleted.size > 0 && this.deleted.has(name)) return undefined;
    if (this.meta !== null) {
      const i = indexOf(this.meta, name);
      if (i >= 0) return this.meta[i + 1];
    }
    const i = indexOf(this.base, name);
    return i >= 0 ? this.base[i + 1] : undefined;
  }

  set(name: string, value: string, parsed = false): void {
    this.added.set(name, value);
    if (parsed) this.parsedNames.add(name);
    else if (this.parsedNames.size > 0) this.parsedNames.delete(name);
  }

  del(name: string): void {
    this.added.delete(name);
    this.parsedNames.delete(name);
    this.deleted.add(name);
  }

  hasErr(): boolean {
    return this.added.has(ERROR_LABEL) && this.added.get(ERROR_LABEL) !== "";
  }

  setErr(err: string, details: string | null): void {
    this.added.set(ERROR_LABEL, err);
    if (details !== null) this.added.set(ERROR_DETAILS_LABEL, details);
  }

  /** Every visible label name (for keep, label_format templates). */
  names(): string[] {
    const out: string[] = [];
    const push = (n: string) => {
      if (!out.includes(n) && this.get(n) !== undefined) out.push(n);
    };
    for (let i = 0; i < this.base.length; i += 2) push(this.base[i]);
    if (this.meta !== null) for (let i = 0; i < this.meta.length; i += 2) push(this.meta[i]);
    for (const n of this.added.keys()) push(n);
    return out;
  }

  /** True when the entry's labels are exactly the stream's. */
  unchanged(): boolean {
    return this.added.size === 0 && this.deleted.size === 0 && (this.meta === null || this.meta.length === 0);
  }

  /** The final labels, sorted, empty values dropped (as Prometheus labels are). */
  labels(): FlatLabels {
    if (this.unchanged()) return this.base;
    const names = this.names().sort();
    const out: FlatLabels = [];
    for (const n of names) {
      const v = this.get(n) as string;
      if (v !== "") out.push(n, v);
    }
    return out;
  }

  /** The canonical label string `{a="b", c="d"}` of labels(). */
  key(): string {
    if (this.unchanged()) return this.baseKey;
    return labelsString(this.labels());
  }

  /** The entry split as Loki's categorize-labels encoding does: stream, structured metadata, parsed. */
  categorized(): { stream: FlatLabels; metadata: FlatLabels; parsed: FlatLabels } {
    const all = this.labels();
    const stream: FlatLabels = [];
    const metadata: FlatLabels = [];
    const parsed: FlatLabels = [];
    for (let i = 0; i < all.length; i += 2) {
      const n = all[i];
      const target = this.parsedNames.has(n) || (this.added.has(n) && indexOf(this.base, n) < 0 && (this.meta === null || indexOf(this.meta, n) < 0))
        ? parsed
        : this.meta !== null && indexOf(this.meta, n) >= 0 && !this.added.has(n)
          ? metadata
          : stream;
      target.push(n, all[i + 1]);
    }
    return { stream, metadata, parsed };
  }
}

function indexOf(labels: FlatLabels, name: string): number {
  for (let i = 0; i < labels.length; i += 2) if (labels[i] === name) return i;
  return -1;
}

/** Loki's label string: {a="b", c="d"}, values Go-quoted (Prometheus labels.String()). */
export function labelsString(labels: FlatLabels): string {
  let s = "{";
  for (let i = 0; i < labels.length; i += 2) {
    if (i > 0) s += ", ";
    s += labels[i] + "=" + goQuote(labels[i + 1]);
  }
  return s + "}";
}

/** Loki's sanitizeLabelKey: trim, a leading digit gets "_", anything outside [a-zA-Z0-9_] becomes "_". */
export function sanitizeLabelKey(key: string, isPrefix: boolean): string {
  key = key.trim();
  if (key === "") return key;
  let out = isPrefix && key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57 ? "_" : "";
  let clean = true;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95)) {
      clean = false;
      break;
    }
  }
  if (clean) return out + key;
  for (const ch of key) {
    const c = ch.charCodeAt(0);
    out += (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 ? ch : "_";
  }
  return out;
}
