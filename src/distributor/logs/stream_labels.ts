// A push's stream labels -> the stream's identity: Loki's canonical label string,
// sorted flat labels, and its placement on the tenant's ring.
//
// Loki's distributor parses the label string with Prometheus's ParseMetric
// (logql/syntax.ParseLabels): `{app="x", env='prod'}`, an optional metric name in
// front, only `=` between name and value, values in Go's quoting ("...", '...' with
// escapes, `...` raw). Labels with empty values are dropped (Loki PR #7355: an empty
// value is an absent label), the rest sorted by name; the canonical string is
// Prometheus's labels.String(): `{a="b", c="d"}`, values strconv.Quote'd. JSON
// pushes' `stream` objects canonicalise the same way.
//
// Parsing runs once per distinct label string per isolate: results (and refusals
// that do not depend on limits) are kept in a bounded cache, as Loki's distributor
// keeps its labelCache. Checks that depend on the tenant's limits (label count,
// name and value lengths) run on every use, from numbers kept with the entry.

import type { Limits } from "../../config/limits";
import { Reason, type Rejection } from "../../model/errors";
import type { FlatLabels } from "../../model/labels";
import { goQuote } from "../../querier/promql/format";
import { isValidLabelName } from "../validate";
import { hash32 } from "../hash";
import { ringFor } from "../ring";

/** Loki counts stream label names without service_name, which its own infrastructure often adds. */
const SERVICE_NAME = "service_name";

/** A valid stream's identity. One per distinct label string (or JSON label set) per isolate. */
export class StreamLabels {
  /** Label names counted against maxLogLabelNamesPerStream (service_name excluded, as Loki does). */
  readonly countedNames: number;
  /** Longest name and value, in UTF-8 bytes (Loki measures len() of Go strings). */
  readonly maxNameBytes: number;
  readonly maxValueBytes: number;
  /** Placement memo: valid for `seed` (hash32 of the tenant) and `shards`. */
  private seed = -1;
  private hash = 0;
  private shards = 0;
  private shard = 0;

  constructor(
    /** Loki's labels.String(): {a="b", c="d"}. */
    readonly canonical: string,
    /** Sorted by name: [name, value, ...]. */
    readonly flat: FlatLabels,
  ) {
    let names = 0;
    let maxName = 0;
    let maxValue = 0;
    for (let i = 0; i < flat.length; i += 2) {
      if (flat[i] !== SERVICE_NAME) names++;
      maxName = Math.max(maxName, utf8Length(flat[i]));
      maxValue = Math.max(maxValue, utf8Length(flat[i + 1]));
    }
    this.countedNames = names;
    this.maxNameBytes = maxName;
    this.maxValueBytes = maxValue;
  }

  /**
   * Null when the labels fit the tenant's limits; otherwise the refusal, with Loki's
   * message (validator.go ValidateLabels). `raw` is the label string as sent.
   */
  checkLimits(limits: Limits, raw: string): Rejection | null {
    if (this.countedNames > limits.maxLogLabelNamesPerStream) {
      return {
        reason: Reason.MaxLabelNamesPerSeries,
        message: `entry for stream '${raw}' has ${this.countedNames} label names; limit ${limits.maxLogLabelNamesPerStream} (maxLogLabelNamesPerStream)`,
      };
    }
    if (this.maxNameBytes <= limits.maxLabelNameLength && this.maxValueBytes <= limits.maxLabelValueLength) return null;
    const flat = this.flat;
    for (let i = 0; i < flat.length; i += 2) {
      if (utf8Length(flat[i]) > limits.maxLabelNameLength) {
        return { reason: Reason.LabelNameTooLong, message: `stream '${raw}' has label name too long: '${flat[i]}' (maxLabelNameLength ${limits.maxLabelNameLength})` };
      }
      if (utf8Length(flat[i + 1]) > limits.maxLabelValueLength) {
        return { reason: Reason.LabelValueTooLong, message: `stream '${raw}' has label value too long: '${flat[i + 1]}' (maxLabelValueLength ${limits.maxLabelValueLength})` };
      }
    }
    return null;
  }

  /** The shard of this stream on the tenant's ring: hash32 of tenant and canonical labels, as series are placed. */
  shardFor(seed: number, shards: number): number {
    if (seed !== this.seed) {
      this.seed = seed;
      this.hash = hash32(this.canonical, seed);
      this.shards = 0;
    }
    if (shards !== this.shards) {
      this.shard = ringFor(shards).shardFor(this.hash);
      this.shards = shards;
    }
    return this.shard;
  }
}

export type StreamLookup = StreamLabels | Rejection;

/**
 * Bounded FIFO caches: raw label strings, and JSON label sets by a length-prefixed
 * key. Two maps, so that no label string can ever be mistaken for a JSON key.
 * Strings longer than CACHE_MAX_KEY are parsed every time rather than kept.
 */
const CACHE_SIZE = 16384;
const CACHE_MAX_KEY = 2048;

class FifoCache {
  private map = new Map<string, StreamLookup>();
  private order: (string | undefined)[] = new Array(CACHE_SIZE);
  private next = 0;

  get(key: string): StreamLookup | undefined {
    return this.map.get(key);
  }

  set(key: string, v: StreamLookup): void {
    if (key.length > CACHE_MAX_KEY || this.map.has(key)) return;
    const old = this.order[this.next];
    if (old !== undefined) this.map.delete(old);
    this.order[this.next] = key;
    this.next = (this.next + 1) % CACHE_SIZE;
    this.map.set(key, v);
  }

  get size(): number {
    return this.map.size;
  }
}

const rawCache = new FifoCache();
const jsonCache = new FifoCache();

/** Entries in the isolate's caches (for tests). */
export function streamCacheSize(): number {
  return rawCache.size + jsonCache.size;
}

/** The stream of a Loki label string (protobuf pushes, legacy JSON), or why it is refused. */
export function streamOfLabelString(raw: string): StreamLookup {
  let v = rawCache.get(raw);
  if (v === undefined) {
    const parsed = parseLabelString(raw);
    v = typeof parsed === "string" ? invalid(raw, parsed) : fromPairs(parsed, raw);
    rawCache.set(raw, v);
  }
  return v;
}

/** The stream of a JSON push's `stream` object given as [name, value, ...], or why it is refused. */
export function streamOfPairs(pairs: string[]): StreamLookup {
  let key = "";
  for (let i = 0; i < pairs.length; i++) key += pairs[i].length + ":" + pairs[i];
  let v = jsonCache.get(key);
  if (v === undefined) {
    v = fromPairs(pairs, null);
    jsonCache.set(key, v);
  }
  return v;
}

function invalid(raw: string, why: string): Rejection {
  return { reason: Reason.InvalidLabels, message: `Error parsing labels '${raw}' with error: ${why}` };
}

/** Validates, normalises (empty values dropped, sorted) and canonicalises parsed pairs. `raw` is null for JSON. */
function fromPairs(pairs: string[], raw: string | null): StreamLookup {
  const shown = raw ?? formatPairs(pairs);
  // Names first, empty values included: Loki's parser sees every pair before dropping empty ones.
  for (let i = 0; i < pairs.length; i += 2) {
    if (!isValidLabelName(pairs[i])) {
      return invalid(shown, `invalid label name ${goQuote(pairs[i])}: label names must match [a-zA-Z_][a-zA-Z0-9_]*`);
    }
  }
  const idx: number[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    if (pairs[i + 1] !== "") idx.push(i);
  }
  // Stable sort by name; Go sorts label names by bytes, the same as UTF-16 order for valid (ASCII) names.
  idx.sort((a, b) => (pairs[a] < pairs[b] ? -1 : pairs[a] > pairs[b] ? 1 : a - b));
  const flat: FlatLabels = new Array(idx.length * 2);
  for (let k = 0; k < idx.length; k++) {
    flat[2 * k] = pairs[idx[k]];
    flat[2 * k + 1] = pairs[idx[k] + 1];
  }
  if (flat.length === 0) return { reason: Reason.MissingLabels, message: `error at least one label pair is required per stream; stream: '${shown}'` };
  for (let i = 2; i < flat.length; i += 2) {
    if (flat[i] === flat[i - 2]) {
      return { reason: Reason.DuplicateLabelNames, message: `stream '${shown}' has duplicate label name: '${flat[i]}'` };
    }
  }
  return new StreamLabels(canonicalString(flat), flat);
}

/** Prometheus labels.String() of sorted flat labels. */
export function canonicalString(flat: FlatLabels): string {
  let s = "{";
  for (let i = 0; i < flat.length; i += 2) {
    if (i > 0) s += ", ";
    s += flat[i] + "=" + quoteValue(flat[i + 1]);
  }
  return s + "}";
}

/** goQuote, skipping its per-character work for the usual printable ASCII without quotes or backslashes. */
function quoteValue(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return goQuote(v);
  }
  return '"' + v + '"';
}

/** A JSON stream object as the label string Loki builds from it, for messages. */
function formatPairs(pairs: string[]): string {
  let s = "{";
  for (let i = 0; i < pairs.length; i += 2) {
    if (i > 0) s += ", ";
    s += pairs[i] + "=" + quoteValue(pairs[i + 1]);
  }
  return s + "}";
}

export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: 2 units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

// ---- The label string parser (Prometheus ParseMetric's grammar) ----

/**
 * Parses `name{a="b", c='d'}` (name and braces optional as ParseMetric allows: `name`,
 * `{...}`, `name{...}`) into [name, value, ...] in the order written, with the metric
 * name as __name__. Returns the error text (Prometheus's "1:col: parse error: ...")
 * for anything else.
 */
export function parseLabelString(s: string): string[] | string {
  const p = new Parser(s);
  try {
    return p.parse();
  } catch (e) {
    if (e instanceof LabelSyntaxError) return e.message;
    throw e;
  }
}

class LabelSyntaxError extends Error {}

const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  fail(what: string, at = this.i): never {
    throw new LabelSyntaxError(`1:${at + 1}: parse error: ${what}`);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  parse(): string[] {
    const s = this.s;
    const out: string[] = [];
    this.ws();
    if (this.i >= s.length) this.fail("unexpected end of input");
    if (s.charCodeAt(this.i) !== 0x7b /* { */) {
      const name = this.identifier(true);
      out.push("__name__", name);
      this.ws();
      if (this.i >= s.length) return out;
    }
    if (s.charCodeAt(this.i) !== 0x7b) this.fail(`unexpected ${this.describe()}, expected "{"`);
    this.i++;
    for (;;) {
      this.ws();
      if (this.i >= s.length) this.fail('unexpected end of input inside braces, expected label name or "}"');
      if (s.charCodeAt(this.i) === 0x7d /* } */) {
        this.i++;
        break;
      }
      const c = s.charCodeAt(this.i);
      // Prometheus 3 also allows quoted (UTF-8) label names; they are parsed here and refused as invalid names later.
      const name = c === 0x22 || c === 0x27 || c === 0x60 ? this.string() : this.identifier(false);
      this.ws();
      this.expectEquals();
      this.ws();
      if (this.i >= s.length) this.fail("unexpected end of input in label matching, expected string");
      const q = s.charCodeAt(this.i);
      if (q !== 0x22 && q !== 0x27 && q !== 0x60) this.fail(`unexpected ${this.describe()} in label matching, expected string`);
      out.push(name, this.string());
      this.ws();
      if (this.i >= s.length) this.fail('unexpected end of input, expected "," or "}"');
      const d = s.charCodeAt(this.i);
      if (d === 0x2c /* , */) {
        this.i++;
        continue;
      }
      if (d !== 0x7d) this.fail(`unexpected ${this.describe()} in label matching, expected "," or "}"`);
    }
    this.ws();
    if (this.i < s.length) this.fail(`unexpected ${this.describe()} after the closing "}"`);
    return out;
  }

  describe(): string {
    if (this.i >= this.s.length) return "end of input";
    return goQuote(String.fromCodePoint(this.s.codePointAt(this.i)!));
  }

  expectEquals(): void {
    const s = this.s;
    const c = s.charCodeAt(this.i);
    if (c === 0x3d /* = */) {
      const n = s.charCodeAt(this.i + 1);
      if (n === 0x7e /* ~ */) this.fail('unexpected "=~" in label matching, expected "=": stream labels take only "="');
      this.i++;
      return;
    }
    if (c === 0x21 /* ! */) this.fail(`unexpected ${goQuote(s.slice(this.i, this.i + 2))} in label matching, expected "=": stream labels take only "="`);
    this.fail(`unexpected ${this.describe()} in label matching, expected "="`);
  }

  /** [a-zA-Z_][a-zA-Z0-9_]*, with ':' too for a metric name. */
  identifier(metric: boolean): string {
    const s = this.s;
    const start = this.i;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (metric && c === 58) || (this.i > start && c >= 48 && c <= 57);
      if (!ok) break;
      this.i++;
    }
    if (this.i === start) this.fail(`unexpected ${this.describe()}, expected ${metric ? 'metric name or "{"' : "label name"}`);
    return s.slice(start, this.i);
  }

  /** A Go string literal: "..." or '...' with escapes (strconv.Unquote's), or `...` raw. */
  string(): string {
    const s = this.s;
    const start = this.i;
    const q = s.charCodeAt(this.i++);
    if (q === 0x60) {
      const end = s.indexOf("`", this.i);
      if (end < 0) this.fail("unterminated raw string", start);
      const v = s.slice(this.i, end);
      this.i = end + 1;
      return v;
    }
    // Fast path: no escape before the closing quote.
    let j = this.i;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c === q || c === 0x5c || c === 0x0a) break;
      j++;
    }
    if (j < s.length && s.charCodeAt(j) === q) {
      const v = s.slice(this.i, j);
      this.i = j + 1;
      return v;
    }
    let v = "";
    let bytes: number[] | null = null; // \x and octal escapes are bytes of UTF-8
    const flush = () => {
      if (bytes !== null) {
        v += utf8Decoder.decode(new Uint8Array(bytes));
        bytes = null;
      }
    };
    for (;;) {
      if (this.i >= s.length) this.fail("unterminated quoted string", start);
      const c = s.charCodeAt(this.i);
      if (c === 0x0a) this.fail("unterminated quoted string (newline in string)", start);
      if (c === q) {
        this.i++;
        flush();
        return v;
      }
      if (c !== 0x5c) {
        flush();
        v += s[this.i++];
        continue;
      }
      const escAt = this.i;
      const e = s[this.i + 1];
      this.i += 2;
      switch (e) {
        case "a": flush(); v += "\x07"; break;
        case "b": flush(); v += "\b"; break;
        case "f": flush(); v += "\f"; break;
        case "n": flush(); v += "\n"; break;
        case "r": flush(); v += "\r"; break;
        case "t": flush(); v += "\t"; break;
        case "v": flush(); v += "\v"; break;
        case "\\": flush(); v += "\\"; break;
        case '"':
        case "'":
          if (e.charCodeAt(0) !== q) this.fail(`unknown escape sequence \\${e}`, escAt);
          flush();
          v += e;
          break;
        case "x":
          (bytes ??= []).push(this.hex(2, escAt));
          break;
        case "u":
        case "U": {
          const cp = this.hex(e === "u" ? 4 : 8, escAt);
          if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) this.fail(`invalid Unicode code point in escape \\${e}`, escAt);
          flush();
          v += String.fromCodePoint(cp);
          break;
        }
        default:
          if (e !== undefined && e >= "0" && e <= "7") {
            const oct = s.slice(this.i - 1, this.i + 2);
            if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) this.fail("invalid octal escape", escAt);
            (bytes ??= []).push(parseInt(oct, 8));
            this.i += 2;
            break;
          }
          this.fail(`unknown escape sequence \\${e ?? ""}`, escAt);
      }
    }
  }

  hex(n: number, escAt: number): number {
    const h = this.s.slice(this.i, this.i + n);
    if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) this.fail("invalid hex escape", escAt);
    this.i += n;
    return parseInt(h, 16);
  }
}
