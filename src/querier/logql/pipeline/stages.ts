// Label filters, line_format, label_format, drop, keep and decolorize
// (Loki's pkg/logql/log/label_filter.go, fmt.go, drop_labels.go, keep_labels.go).

import { compileMatcher } from "../../../model/matchers";
import type { CmpOp, DropKeepStage, LabelFilterExpr, LabelFormatItem } from "../ast";
import { compileTemplate, type TemplateData } from "../template";
import { parseBytes, parseDuration, parseGoFloat } from "../units";
import { ERR_LABEL_FILTER, ERR_TEMPLATE, ERROR_DETAILS_LABEL, ERROR_LABEL, type LabelsBuilder } from "./labels";
import type { StageFn } from "./parsers";

/** A label filter: true keeps the entry. Conversion failures keep it and set __error__=LabelFilterErr (Loki). */
export type LabelTest = (lb: LabelsBuilder) => boolean;

function compare(op: CmpOp, a: number, b: number): boolean {
  switch (op) {
    case "==":
      return a === b;
    case "!=":
      return a !== b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
    case "<":
      return a < b;
    case "<=":
      return a <= b;
  }
}

function converting(name: string, op: CmpOp, value: number, conv: (s: string) => number | null, what: (s: string) => string): LabelTest {
  return (lb) => {
    // With an error already set, only string matchers may filter the entry out.
    if (lb.hasErr()) return true;
    const v = lb.get(name);
    if (v === undefined) return false;
    const n = conv(v);
    if (n === null) {
      lb.setErr(ERR_LABEL_FILTER, what(v));
      return true;
    }
    return compare(op, n, value);
  };
}

function orNull(f: (s: string) => number): (s: string) => number | null {
  return (s) => {
    try {
      return f(s);
    } catch {
      return null;
    }
  };
}

export function compileLabelFilter(f: LabelFilterExpr): LabelTest {
  switch (f.kind) {
    case "matcher": {
      const m = compileMatcher(f.matcher);
      const name = f.matcher.name;
      return (lb) => m.matches(lb.get(name) ?? "");
    }
    case "number":
      return converting(f.name, f.op, f.value, parseGoFloat, (v) => `strconv.ParseFloat: parsing ${JSON.stringify(v)}: invalid syntax`);
    case "duration":
      return converting(f.name, f.op, f.value, orNull((s) => parseDuration(s) / 1000), (v) => `time: invalid duration ${JSON.stringify(v)}`);
    case "bytes":
      return converting(f.name, f.op, f.value, orNull(parseBytes), (v) => `strconv.ParseFloat: parsing ${JSON.stringify(v)}: invalid syntax`);
    case "and": {
      const l = compileLabelFilter(f.left);
      const r = compileLabelFilter(f.right);
      // Both sides run (a conversion error on the right still marks the entry), as Loki's BinaryLabelFilter.
      return (lb) => {
        const a = l(lb);
        const b = r(lb);
        return a && b;
      };
    }
    case "or": {
      const l = compileLabelFilter(f.left);
      const r = compileLabelFilter(f.right);
      return (lb) => l(lb) || r(lb);
    }
  }
}

export function labelFilterStage(f: LabelFilterExpr): StageFn {
  const t = compileLabelFilter(f);
  return (line, lb) => (t(lb) ? line : null);
}

/** The template data of an entry: its labels as a map (missing ones print ""). */
class EntryData implements TemplateData {
  line = "";
  tsMs = 0;
  tsNs = 0;
  lb: LabelsBuilder | null = null;
  snapshot: Map<string, string> | null = null;
  get(name: string): string | undefined {
    if (this.snapshot !== null) return this.snapshot.get(name);
    return (this.lb as LabelsBuilder).get(name);
  }
}

export function lineFormatStage(template: string): StageFn {
  const t = compileTemplate(template);
  if (t.constant) return () => template;
  const data = new EntryData();
  return (line, lb, tsMs, tsNs) => {
    data.line = line;
    data.tsMs = tsMs;
    data.tsNs = tsNs;
    data.lb = lb;
    try {
      return t.execute(data);
    } catch (e) {
      lb.setErr(ERR_TEMPLATE, (e as Error).message);
      return line;
    }
  };
}

export function labelFormatStage(items: LabelFormatItem[]): StageFn {
  const compiled = items.map((it) => ({ ...it, t: it.template !== null ? compileTemplate(it.template) : null }));
  const data = new EntryData();
  return (line, lb, tsMs, tsNs) => {
    // Templates see the labels as they were before this stage (Loki takes one snapshot).
    let snap: Map<string, string> | null = null;
    for (const it of compiled) {
      if (it.rename !== null) {
        const v = lb.get(it.rename);
        if (v !== undefined) {
          lb.set(it.name, v, lb.parsedNames.has(it.rename));
          if (it.rename !== it.name) lb.del(it.rename);
        }
        continue;
      }
      if (snap === null) {
        snap = new Map();
        for (const n of lb.names()) snap.set(n, lb.get(n) as string);
      }
      data.line = line;
      data.tsMs = tsMs;
      data.tsNs = tsNs;
      data.snapshot = snap;
      try {
        lb.set(it.name, (it.t as NonNullable<typeof it.t>).execute(data), true);
      } catch (e) {
        lb.setErr(ERR_TEMPLATE, (e as Error).message);
      }
    }
    return line;
  };
}

export function dropStage(s: DropKeepStage): StageFn {
  const items = s.items.map((it) => ({ name: it.name, m: it.matcher !== null ? compileMatcher(it.matcher) : null }));
  return (line, lb) => {
    for (const it of items) {
      const v = lb.get(it.name);
      if (v === undefined) continue;
      if (it.m === null || it.m.matches(v)) {
        lb.del(it.name);
        if (it.name === ERROR_LABEL) lb.del(ERROR_DETAILS_LABEL);
      }
    }
    return line;
  };
}

export function keepStage(s: DropKeepStage): StageFn {
  const items = s.items.map((it) => ({ name: it.name, m: it.matcher !== null ? compileMatcher(it.matcher) : null }));
  return (line, lb) => {
    for (const n of lb.names()) {
      // The error labels stay so a failing line is still visible (Loki's isSpecialLabel).
      if (n === ERROR_LABEL || n === ERROR_DETAILS_LABEL) continue;
      let keep = false;
      for (const it of items) {
        if (it.name === n && (it.m === null || it.m.matches(lb.get(n) as string))) {
          keep = true;
          break;
        }
      }
      if (!keep) lb.del(n);
    }
    return line;
  };
}

// ANSI escape sequences (the expression Loki's decolorize uses, from the ansi-regex package).
const ANSI = /[\u001B\u009B][[\]()#;?]*(?:(?:(?:[a-zA-Z\d]*(?:;[a-zA-Z\d]*)*)?\u0007)|(?:(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PRZcf-ntqry=><~]))/g;

export function decolorizeStage(): StageFn {
  return (line) => (line.includes("\u001b") || line.includes("\u009b") ? line.replace(ANSI, "") : line);
}
