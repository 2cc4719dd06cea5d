// Request parameters of the Prometheus HTTP API, read as Prometheus reads them
// (web/api/v1/api.go): r.FormValue over the URL query and, for POST, an
// application/x-www-form-urlencoded body; times as Unix seconds or RFC3339;
// durations as float seconds or PromQL durations; Prometheus's error texts.

import { ApiError } from "./respond";

/** Prometheus's MinTime/MaxTime (the defaults of optional start/end), in ms. */
export const MIN_TIME_MS = -9223309901257974000;
export const MAX_TIME_MS = 9223309901257974999;
/** How Go formats them (RFC3339Nano); clients such as client_golang send these strings. */
const MIN_TIME_FORMATTED = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED = "292277025-08-18T07:12:54.999999999Z";

/** Largest form body read; Go's ParseForm caps url-encoded bodies at 10 MB. */
const MAX_FORM_BYTES = 10 << 20;

/** The parameters of one request: POST body values first, then the URL's, as Go's r.Form orders them. */
export class Form {
  private constructor(private readonly pairs: [string, string][]) {}

  static async from(request: Request): Promise<Form> {
    const pairs: [string, string][] = [];
    const method = request.method.toUpperCase();
    // Go parses a body only for POST/PUT/PATCH, and only when it is url-encoded.
    if ((method === "POST" || method === "PUT" || method === "PATCH") && request.body !== null) {
      const type = (request.headers.get("Content-Type") ?? "").split(";")[0].trim().toLowerCase();
      if (type === "application/x-www-form-urlencoded") {
        const declared = Number(request.headers.get("Content-Length") ?? "0");
        if (declared > MAX_FORM_BYTES) throw new ApiError("bad_data", "error parsing form values: http: POST too large");
        // Bytes, then UTF-8: Request.text() warns about non-text content types.
        const bytes = await request.arrayBuffer();
        if (bytes.byteLength > MAX_FORM_BYTES) throw new ApiError("bad_data", "error parsing form values: http: POST too large");
        const text = new TextDecoder().decode(bytes);
        for (const [k, v] of new URLSearchParams(text)) pairs.push([k, v]);
      } else if (type === "multipart/form-data") {
        const data = await request.formData();
        for (const [k, v] of data) if (typeof v === "string") pairs.push([k, v]);
      }
    }
    for (const [k, v] of new URL(request.url).searchParams) pairs.push([k, v]);
    return new Form(pairs);
  }

  /** Go's r.FormValue: the first value, or "" when absent. */
  value(name: string): string {
    for (const [k, v] of this.pairs) if (k === name) return v;
    return "";
  }

  /** Go's r.Form[name]: every value, in order. */
  values(name: string): string[] {
    const out: string[] = [];
    for (const [k, v] of this.pairs) if (k === name) out.push(v);
    return out;
  }
}

/** Go's %q for the strings in messages: double quotes, Go escapes for control characters. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

/** `invalid parameter "name": <cause>`, bad_data: Prometheus's invalidParamError. */
export function invalidParam(name: string, cause: string): ApiError {
  return new ApiError("bad_data", `invalid parameter ${goQuote(name)}: ${cause}`);
}

/** Thrown by the parsers below; the caller wraps it with the parameter's name. */
export class ParamError extends Error {
  override name = "ParamError";
}

// Go's strconv.ParseFloat, decimal forms and the special values (hex floats are
// not accepted here; no client sends them).
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;

/** A float as Go's strconv.ParseFloat reads it, or null when Go would refuse it (including out of range). */
export function parseGoFloat(s: string): number | null {
  if (DECIMAL.test(s)) {
    const v = Number(s);
    return Number.isFinite(v) ? v : null; // Go: ErrRange
  }
  const m = SPECIAL.exec(s);
  if (!m) return null;
  if (m[2].toLowerCase() === "nan") return NaN;
  return m[1] === "-" ? -Infinity : Infinity;
}

/**
 * Prometheus's parseTime: Unix seconds (fractions rounded to the millisecond) or
 * RFC3339 (truncated to the millisecond). Returns ms since the epoch.
 */
export function parseTime(s: string): number {
  const f = parseGoFloat(s);
  if (f !== null && Number.isFinite(f)) {
    // math.Modf, then the fraction rounded to ms, then Go's time.Unix normalisation.
    const sec = Math.trunc(f);
    const frac = goRound((f - sec) * 1000) / 1000;
    const nanos = Math.trunc(frac * 1e9);
    return sec * 1000 + Math.floor(nanos / 1e6);
  }
  const t = parseRfc3339(s);
  if (t !== null) return t;
  if (s === MIN_TIME_FORMATTED) return MIN_TIME_MS;
  if (s === MAX_TIME_FORMATTED) return MAX_TIME_MS;
  throw new ParamError(`cannot parse ${goQuote(s)} to a valid timestamp`);
}

/** Go's math.Round: half away from zero. */
function goRound(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** time.Parse(time.RFC3339Nano, s) then timestamp.FromTime: ms, the fraction truncated. */
function parseRfc3339(s: string): number | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate(); // leap year: allows Feb 29 ...
  if (day < 1 || day > daysInMonth) return null;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return null; // ... checked here
  let offsetMin = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMin = (m[9] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  const ms = m[7] ? Number(m[7].padEnd(9, "0").slice(0, 3)) : 0;
  return d.getTime() - offsetMin * 60_000 + ms;
}

/** Go's time.Duration range, in ns. */
const MAX_INT64 = 9223372036854775807;

/**
 * Prometheus's parseDuration: float seconds or a PromQL duration ("5m", "1h30m").
 * Returns ms (fractions of a ms kept: Go durations are ns).
 */
export function parseDuration(s: string): number {
  const f = parseGoFloat(s);
  if (f !== null) {
    const ns = f * 1e9;
    if (ns > MAX_INT64 || ns < -MAX_INT64 - 1) throw new ParamError(`cannot parse ${goQuote(s)} to a valid duration. It overflows int64`);
    // time.Duration(NaN) is MinInt64 on Go's platforms: a negative duration.
    if (Number.isNaN(ns)) return (-MAX_INT64 - 1) / 1e6;
    return Math.trunc(ns) / 1e6;
  }
  const d = parsePromDuration(s);
  if (d !== null) return d;
  throw new ParamError(`cannot parse ${goQuote(s)} to a valid duration`);
}

const DURATION_UNITS: [string, number][] = [
  ["y", 365 * 24 * 3600_000],
  ["w", 7 * 24 * 3600_000],
  ["d", 24 * 3600_000],
  ["h", 3600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
];

/** prometheus/common model.ParseDuration: units in this order, each at most once; "0" alone is allowed. */
export function parsePromDuration(s: string): number | null {
  if (s === "0") return 0;
  if (s === "") return null;
  const m = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(s);
  if (!m) return null;
  let total = 0;
  for (let i = 0; i < DURATION_UNITS.length; i++) {
    const part = m[i + 1];
    if (part !== undefined) total += Number(part) * DURATION_UNITS[i][1];
  }
  if (total * 1e6 > MAX_INT64) return null; // "duration out of range"
  return total;
}

/** A time parameter with a default (Prometheus's parseTimeParam, with its extra wording). */
export function timeParam(form: Form, name: string, dflt: number): number {
  const v = form.value(name);
  if (v === "") return dflt;
  try {
    return parseTime(v);
  } catch (e) {
    if (e instanceof ParamError) throw invalidParam(name, `Invalid time value for '${name}': ${e.message}`);
    throw e;
  }
}

/** A required time parameter read with parseTime directly (query_range's start and end). */
export function requiredTime(form: Form, name: string): number {
  try {
    return parseTime(form.value(name));
  } catch (e) {
    if (e instanceof ParamError) throw invalidParam(name, e.message);
    throw e;
  }
}

export function durationParam(form: Form, name: string): number {
  try {
    return parseDuration(form.value(name));
  } catch (e) {
    if (e instanceof ParamError) throw invalidParam(name, e.message);
    throw e;
  }
}

/** Prometheus's parseLimitParam: 0 (or absent) means no limit. */
export function limitParam(form: Form, name = "limit"): number {
  const s = form.value(name);
  if (s === "") return 0;
  const n = goAtoi(s);
  if (typeof n === "string") throw invalidParam(name, n);
  if (n < 0) throw invalidParam(name, "limit must be non-negative");
  return n;
}

/** strconv.Atoi: the value, or Go's error text. */
export function goAtoi(s: string): number | string {
  if (!/^[+-]?\d+$/.test(s)) return `strconv.Atoi: parsing ${goQuote(s)}: invalid syntax`;
  const b = BigInt(s);
  if (b > 9223372036854775807n || b < -9223372036854775808n) return `strconv.Atoi: parsing ${goQuote(s)}: value out of range`;
  return Number(b);
}
