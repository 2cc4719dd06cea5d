// A small JSON scanner for the json and unpack parsers. It walks a line without building
// objects, and hands back values as Loki's jsonparser does: strings unescaped, numbers
// as written ("1.50" stays "1.50"), objects and arrays as their raw text.

export class JSONScanError extends Error {}

export type JSONKind = "string" | "number" | "boolean" | "null" | "object" | "array";

export function skipWs(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break;
    i++;
  }
  return i;
}

/** Reads the string starting at s[i] === '"'; returns [value, index after the closing quote]. */
export function readString(s: string, i: number): [string, number] {
  let j = i + 1;
  let simple = true;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c === 34) break;
    if (c === 92) {
      simple = false;
      j += 2;
      continue;
    }
    j++;
  }
  if (j >= s.length) throw new JSONScanError("Value is string, but can't find closing '\"' symbol");
  const raw = s.slice(i + 1, j);
  if (simple) return [raw, j + 1];
  try {
    return [JSON.parse(s.slice(i, j + 1)) as string, j + 1];
  } catch {
    throw new JSONScanError("Encountered an invalid escape sequence in a string");
  }
}

/** The end of the value starting at s[i], and its kind. */
export function skipValue(s: string, i: number): [number, JSONKind] {
  i = skipWs(s, i);
  const c = s[i];
  if (c === '"') return [readString(s, i)[1], "string"];
  if (c === "{" || c === "[") {
    const close = c === "{" ? "}" : "]";
    let j = skipWs(s, i + 1);
    if (s[j] === close) return [j + 1, c === "{" ? "object" : "array"];
    for (;;) {
      if (c === "{") {
        if (s[j] !== '"') throw new JSONScanError("Value looks like object, but can't find closing '}' symbol");
        j = skipWs(s, readString(s, j)[1]);
        if (s[j] !== ":") throw new JSONScanError("Value looks like object, but can't find closing '}' symbol");
        j++;
      }
      j = skipWs(s, skipValue(s, j)[0]);
      if (s[j] === ",") {
        j = skipWs(s, j + 1);
        continue;
      }
      if (s[j] === close) return [j + 1, c === "{" ? "object" : "array"];
      throw new JSONScanError(c === "{" ? "Value looks like object, but can't find closing '}' symbol" : "Value is array, but can't find closing ']' symbol");
    }
  }
  if (s.startsWith("true", i)) return [i + 4, "boolean"];
  if (s.startsWith("false", i)) return [i + 5, "boolean"];
  if (s.startsWith("null", i)) return [i + 4, "null"];
  const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(s.slice(i, i + 64));
  if (m !== null && m[0] !== "" && m[0] !== "-") return [i + m[0].length, "number"];
  throw new JSONScanError("Unknown value type");
}

/**
 * Calls fn for each member of the object starting at s[i]: key, the value's start and end,
 * and its kind. Throws JSONScanError when the line is not one well-formed object.
 */
export function eachMember(s: string, i: number, fn: (key: string, start: number, end: number, kind: JSONKind) => void): number {
  i = skipWs(s, i);
  if (s[i] !== "{") throw new JSONScanError("Value is not an object");
  let j = skipWs(s, i + 1);
  if (s[j] === "}") return j + 1;
  for (;;) {
    if (s[j] !== '"') throw new JSONScanError("Value looks like object, but can't find closing '}' symbol");
    const [key, afterKey] = readString(s, j);
    j = skipWs(s, afterKey);
    if (s[j] !== ":") throw new JSONScanError("Value looks like object, but can't find closing '}' symbol");
    const start = skipWs(s, j + 1);
    const [end, kind] = skipValue(s, start);
    fn(key, start, end, kind);
    j = skipWs(s, end);
    if (s[j] === ",") {
      j = skipWs(s, j + 1);
      continue;
    }
    if (s[j] === "}") return j + 1;
    throw new JSONScanError("Value looks like object, but can't find closing '}' symbol");
  }
}

/** A member's value as a label value: strings unescaped, numbers/objects/arrays raw, booleans, null as "". */
export function valueText(s: string, start: number, end: number, kind: JSONKind): string {
  if (kind === "string") return readString(s, start)[0];
  if (kind === "null") return "";
  return s.slice(start, end);
}

/** The value at a path (`a.b[0]`) or null when absent; throws on malformed JSON along the way. */
export function lookupPath(s: string, path: (string | number)[]): { start: number; end: number; kind: JSONKind } | null {
  let start = skipWs(s, 0);
  let [end, kind] = skipValue(s, start);
  for (const seg of path) {
    let found: { start: number; end: number; kind: JSONKind } | null = null;
    if (typeof seg === "string") {
      if (kind !== "object") return null;
      eachMember(s, start, (k, st, en, kd) => {
        if (found === null && k === seg) found = { start: st, end: en, kind: kd };
      });
    } else {
      if (kind !== "array") return null;
      let j = skipWs(s, start + 1);
      let idx = 0;
      while (s[j] !== "]") {
        const [e, kd] = skipValue(s, j);
        if (idx === seg) {
          found = { start: skipWs(s, j), end: e, kind: kd };
          break;
        }
        idx++;
        j = skipWs(s, e);
        if (s[j] === ",") j = skipWs(s, j + 1);
      }
    }
    if (found === null) return null;
    ({ start, end, kind } = found);
  }
  return { start, end, kind };
}
