// Parser stages: json, logfmt, regexp, pattern, unpack (Loki's pkg/logql/log/parser.go).
// Extracted keys are sanitized; a key the stream (or the entry's structured metadata)
// already has gets the suffix `_extracted`; a later parser overwrites an earlier one's
// label. A line a parser cannot read keeps flowing with __error__ (and
// __error_details__) set, as in Loki.

import { compileRegex } from "../../../model/matchers";
import type { ExtractionParam } from "../ast";
import { parseJsonPath } from "../parse";
import { eachMember, JSONScanError, lookupPath, readString, skipWs, valueText, type JSONKind } from "./json_scan";
import { ERR_JSON, ERR_LOGFMT, sanitizeLabelKey, type LabelsBuilder } from "./labels";
import { unanchoredRE2 } from "./line_filter";
import { compilePattern, matchPattern } from "./pattern";

/** A stage: returns the (possibly new) line, or null to drop the entry. */
export type StageFn = (line: string, lb: LabelsBuilder, tsMs: number, tsNs: number) => string | null;

function extractedName(lb: LabelsBuilder, key: string): string {
  return lb.baseHas(key) ? key + "_extracted" : key;
}

export function jsonParser(): StageFn {
  // Keys are sanitized once per distinct key (Loki interns them too).
  const names = new Map<string, string>();
  const sanitize = (k: string): string => {
    let v = names.get(k);
    if (v === undefined) {
      v = sanitizeLabelKey(k, true);
      if (names.size < 10_000) names.set(k, v);
    }
    return v;
  };
  return (line, lb) => {
    const walk = (start: number, prefix: string): void => {
      eachMember(line, start, (key, vs, ve, kind) => {
        const name = prefix === "" ? sanitize(key) : prefix + "_" + sanitizeLabelKey(key, false);
        if (kind === "object") walk(vs, name);
        else if (kind === "string" || kind === "number" || kind === "boolean") lb.set(extractedName(lb, name), valueText(line, vs, ve, kind), true);
        // Arrays and nulls are not extracted (Loki's JSONParser.parseObject).
      });
    };
    try {
      walk(0, "");
    } catch (e) {
      if (!(e instanceof JSONScanError)) throw e;
      lb.setErr(ERR_JSON, e.message);
    }
    return line;
  };
}

export function jsonExpressionParser(params: ExtractionParam[]): StageFn {
  const paths = params.map((p) => parseJsonPath(p.expr) as (string | number)[]);
  return (line, lb) => {
    if (line.length === 0) return line;
    const c = line[skipWs(line, 0)];
    if (c !== "{" && c !== "[" && c !== '"') {
      lb.setErr(ERR_JSON, null);
      return line;
    }
    for (let i = 0; i < params.length; i++) {
      const name = extractedName(lb, params[i].name);
      try {
        const v = lookupPath(line, paths[i]);
        // Objects and arrays come back as their JSON text; strings unescaped.
        lb.set(name, v === null ? "" : valueText(line, v.start, v.end, v.kind as JSONKind), true);
      } catch (e) {
        if (!(e instanceof JSONScanError)) throw e;
        lb.setErr(ERR_JSON, e.message);
        lb.set(name, "", true);
      }
    }
    return line;
  };
}

export function unpackParser(): StageFn {
  return (line, lb) => {
    if (line.length === 0) return line;
    let entry: string | null = null;
    try {
      eachMember(line, 0, (key, vs, _ve, kind) => {
        // Only string values are unpacked; `_entry` replaces the line (Promtail's pack stage).
        if (kind !== "string") return;
        const value = readString(line, vs)[0];
        if (key === "_entry") {
          entry = value;
          return;
        }
        lb.set(extractedName(lb, sanitizeLabelKey(key, true)), value, true);
      });
    } catch (e) {
      if (!(e instanceof JSONScanError)) throw e;
      lb.setErr(ERR_JSON, e.message);
      return line;
    }
    return entry ?? line;
  };
}

export function regexpParser(pattern: string): StageFn {
  const re = unanchoredRE2(pattern);
  compileRegex(pattern); // validated at parse; keeps one error path
  return (line, lb) => {
    const m = re.exec(line);
    if (m !== null && m.groups !== undefined) {
      for (const name in m.groups) {
        const v = m.groups[name];
        if (v !== undefined) lb.set(extractedName(lb, sanitizeLabelKey(name, true)), v, true);
      }
    }
    return line;
  };
}

export function patternParser(pattern: string): StageFn {
  const p = compilePattern(pattern);
  return (line, lb) => {
    matchPattern(p, line, (name, value) => lb.set(extractedName(lb, name), value, true));
    return line;
  };
}

// ---------------------------------------------------------------- logfmt

/** One key=value pair of a logfmt line, or an error (go-logfmt's decoder rules). */
class LogfmtError extends Error {}

/**
 * Scans a logfmt line (go-logfmt): keys are runs of bytes > ' ' without '=' or '"';
 * values are bare (no space, '"' or '=') or double-quoted with JSON-style escapes.
 * A key without '=' has an empty value. onPair returns nothing; errors throw LogfmtError
 * naming the position as go-logfmt does.
 */
function scanLogfmt(line: string, strict: boolean, onPair: (key: string, value: string, bare: boolean) => void): void {
  let i = 0;
  const n = line.length;
  const err = (msg: string) => new LogfmtError(`logfmt syntax error at pos ${i + 1} on line 1: ${msg}`);
  while (i < n) {
    while (i < n && line.charCodeAt(i) <= 32) i++;
    if (i >= n) break;
    const ks = i;
    while (i < n) {
      const c = line.charCodeAt(i);
      if (c <= 32 || c === 61 /* = */) break;
      if (c === 34 /* " */) {
        if (strict) throw err("unexpected '\"'");
        break;
      }
      i++;
    }
    if (i === ks) {
      // '=' or '"' where a key should start.
      if (strict) throw err(line[i] === "=" ? "unexpected '='" : "unexpected '\"'");
      i = skipToSpace(line, i);
      continue;
    }
    const key = line.slice(ks, i);
    if (i >= n || line.charCodeAt(i) !== 61) {
      if (i < n && line.charCodeAt(i) === 34) {
        i = skipToSpace(line, i);
        continue;
      }
      onPair(key, "", true);
      continue;
    }
    i++; // '='
    if (i >= n || line.charCodeAt(i) <= 32) {
      onPair(key, "", false);
      continue;
    }
    if (line.charCodeAt(i) === 34) {
      let j = i + 1;
      let escaped = false;
      while (j < n && line.charCodeAt(j) !== 34) {
        if (line.charCodeAt(j) === 92) {
          escaped = true;
          j++;
        }
        j++;
      }
      if (j >= n) {
        if (strict) throw err("unterminated quoted value");
        return;
      }
      let value = line.slice(i + 1, j);
      if (escaped) {
        try {
          value = JSON.parse(line.slice(i, j + 1)) as string;
        } catch {
          if (strict) throw err("invalid quoted value");
          i = j + 1;
          continue;
        }
      }
      i = j + 1;
      onPair(key, value, false);
      continue;
    }
    const vs = i;
    let bad = false;
    while (i < n && line.charCodeAt(i) > 32) {
      const c = line.charCodeAt(i);
      if (c === 61 || c === 34) bad = true;
      i++;
    }
    if (bad) {
      if (strict) throw err("unexpected '='");
      continue;
    }
    onPair(key, line.slice(vs, i), false);
  }
}

function skipToSpace(line: string, i: number): number {
  while (i < line.length && line.charCodeAt(i) > 32) i++;
  return i;
}

export function logfmtParser(params: ExtractionParam[], strict: boolean, keepEmpty: boolean): StageFn {
  const wanted = params.length > 0 ? new Map(params.map((p) => [p.expr, p.name])) : null;
  return (line, lb) => {
    if (wanted !== null) for (const p of params) if (!lb.baseHas(p.name)) lb.set(p.name, "", true);
    try {
      scanLogfmt(line, strict, (rawKey, value, bare) => {
        // A standalone key is extracted only with --keep-empty (Loki 2.9+).
        if (bare && !keepEmpty) return;
        const key = sanitizeLabelKey(rawKey, true);
        if (key === "") return;
        if (wanted !== null) {
          const name = wanted.get(rawKey) ?? wanted.get(key);
          if (name === undefined) return;
          lb.set(extractedName(lb, name), value, true);
          return;
        }
        lb.set(extractedName(lb, key), value, true);
      });
    } catch (e) {
      if (!(e instanceof LogfmtError)) throw e;
      lb.setErr(ERR_LOGFMT, e.message);
    }
    return line;
  };
}
