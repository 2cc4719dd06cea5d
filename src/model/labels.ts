// Labels travel as flat arrays [name0, value0, name1, value1, ...], sorted by name.
// A series is identified by its key: one string that encodes the sorted labels
// unambiguously (each value is length-prefixed, so any value bytes are allowed),
// used as the head's map key and hashed for ring placement.

export type FlatLabels = string[];

/** `name=<len>:value` per label. Names are validated ([a-zA-Z_][a-zA-Z0-9_]*), so never contain '='. */
export function seriesKey(labels: FlatLabels): string {
  let key = "";
  for (let i = 0; i < labels.length; i += 2) {
    const value = labels[i + 1];
    key += labels[i] + "=" + value.length + ":" + value;
  }
  return key;
}

export function labelsFromKey(key: string): FlatLabels {
  const out: FlatLabels = [];
  let i = 0;
  while (i < key.length) {
    const eq = key.indexOf("=", i);
    const colon = key.indexOf(":", eq + 1);
    if (eq < 0 || colon < 0) throw new Error(`corrupt series key at ${i}`);
    const len = Number(key.slice(eq + 1, colon));
    if (!Number.isInteger(len) || colon + 1 + len > key.length) throw new Error(`corrupt series key at ${i}`);
    out.push(key.slice(i, eq), key.slice(colon + 1, colon + 1 + len));
    i = colon + 1 + len;
  }
  return out;
}

export function getLabel(labels: FlatLabels, name: string): string {
  for (let i = 0; i < labels.length; i += 2) if (labels[i] === name) return labels[i + 1];
  return "";
}

/** Prometheus's string form: {__name__="up", job="x"} -> up{job="x"}. For error messages. */
export function formatLabels(labels: FlatLabels): string {
  let name = "";
  const parts: string[] = [];
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i] === "__name__") name = labels[i + 1];
    else parts.push(`${labels[i]}=${JSON.stringify(labels[i + 1])}`);
  }
  return `${name}{${parts.join(", ")}}`;
}

export function labelsToObject(labels: FlatLabels): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < labels.length; i += 2) out[labels[i]] = labels[i + 1];
  return out;
}

/** Compare flat label sets the way Prometheus's labels.Compare orders series. */
export function compareLabels(a: FlatLabels, b: FlatLabels): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length - b.length;
}

/** A copy of sorted labels with name=value inserted or replaced; an empty value removes the label (Prometheus's labels.Builder.Set). */
export function setLabel(labels: FlatLabels, name: string, value: string): FlatLabels {
  const out: FlatLabels = [];
  let done = false;
  for (let i = 0; i < labels.length; i += 2) {
    const n = labels[i];
    if (!done && n >= name) {
      done = true;
      if (value !== "") out.push(name, value);
      if (n === name) continue;
    }
    out.push(n, labels[i + 1]);
  }
  if (!done && value !== "") out.push(name, value);
  return out;
}
