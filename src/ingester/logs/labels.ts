// A stream's canonical label string ({a="b", c="d"}: names sorted, values quoted as
// Go's strconv.Quote, the form Loki's labels.String() prints and the push batch
// carries) back to flat labels, for postings and matchers. The distributor already
// validated and canonicalised the string, so a malformed one is a corrupt batch.

import { CorruptDataError } from "../../model/bytes";
import type { FlatLabels } from "../../model/labels";

/** Parses `{a="b", c="d"}` into [a, b, c, d]. Throws CorruptDataError on anything else. */
export function parseStreamLabels(s: string): FlatLabels {
  const out: FlatLabels = [];
  const n = s.length;
  if (n < 2 || s.charCodeAt(0) !== 0x7b /* { */ || s.charCodeAt(n - 1) !== 0x7d /* } */) bad(s, "expected {...}");
  let i = 1;
  if (i === n - 1) return out;
  for (;;) {
    const eq = s.indexOf("=", i);
    if (eq <= i) bad(s, `expected a label name at ${i}`);
    out.push(s.slice(i, eq));
    i = eq + 1;
    if (s.charCodeAt(i) !== 0x22) bad(s, `expected '"' at ${i}`);
    i = unquote(s, i + 1, out);
    if (i === n - 1) return out;
    if (s.charCodeAt(i) !== 0x2c || s.charCodeAt(i + 1) !== 0x20) bad(s, `expected ", " at ${i}`);
    i += 2;
  }
}

function bad(s: string, why: string): never {
  throw new CorruptDataError(`corrupt stream labels ${JSON.stringify(s.slice(0, 200))}: ${why}`);
}

/** Reads a Go-quoted string body from `i` (after the opening quote); pushes it; returns the index after the closing quote. */
function unquote(s: string, i: number, out: FlatLabels): number {
  // Fast path: no escapes (almost every value).
  const close = s.indexOf('"', i);
  if (close < 0) bad(s, "unterminated string");
  const esc = s.indexOf("\\", i);
  if (esc < 0 || esc > close) {
    out.push(s.slice(i, close));
    return close + 1;
  }
  let v = "";
  let bytes: number[] | null = null; // \xNN escapes are bytes of (invalid) UTF-8
  const flushBytes = () => {
    if (bytes !== null) {
      v += new TextDecoder().decode(new Uint8Array(bytes));
      bytes = null;
    }
  };
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      flushBytes();
      out.push(v);
      return i + 1;
    }
    if (c !== 0x5c) {
      flushBytes();
      v += s[i++];
      continue;
    }
    const e = s[i + 1];
    i += 2;
    if (e === "x") {
      (bytes ??= []).push(hexAt(s, i, 2));
      i += 2;
      continue;
    }
    flushBytes();
    switch (e) {
      case "a": v += "\x07"; break;
      case "b": v += "\b"; break;
      case "f": v += "\f"; break;
      case "n": v += "\n"; break;
      case "r": v += "\r"; break;
      case "t": v += "\t"; break;
      case "v": v += "\v"; break;
      case "\\": v += "\\"; break;
      case '"': v += '"'; break;
      case "'": v += "'"; break;
      case "u": v += String.fromCodePoint(hexAt(s, i, 4)); i += 4; break;
      case "U": v += String.fromCodePoint(hexAt(s, i, 8)); i += 8; break;
      default: bad(s, `unknown escape \\${e ?? ""}`);
    }
  }
  return bad(s, "unterminated string");
}

function hexAt(s: string, i: number, width: number): number {
  const h = s.slice(i, i + width);
  if (h.length !== width || !/^[0-9a-fA-F]+$/.test(h)) bad(s, `bad hex escape at ${i}`);
  const v = parseInt(h, 16);
  if (v > 0x10ffff) bad(s, `escape beyond U+10FFFF at ${i}`);
  return v;
}

