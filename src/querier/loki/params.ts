// Request parameters of the Loki HTTP API, read as Loki 3 reads them
// (pkg/loghttp/params.go, query.go, tail.go): r.Form over the URL query and, for
// POST, a url-encoded body; times as RFC3339Nano, float seconds or integer
// seconds/nanoseconds; Loki's defaults (limit 100, direction backward, the last
// hour) and Loki's error texts, each answered as a plain-text 400 as Loki does.

import { HttpError } from "../../http/errors";
import { formatNs, NS_PER_MS, type NsTime } from "../../model/logtime";
import type { Direction } from "../../model/logs";
import { Form, goAtoi, goQuote, parseGoFloat, parsePromDuration } from "../api/params";
import { ApiError } from "../api/respond";

export { Form };

/** Loki's defaultQueryLimit. */
export const DEFAULT_LIMIT = 100;
/** Loki's defaultSince: the window of a query with no start. */
export const DEFAULT_SINCE_MS = 3_600_000;
/** Loki's maxDelayForInTailing (seconds). */
export const MAX_TAIL_DELAY_S = 5;
/** Points a range query may return per series (Loki, as Prometheus). */
export const MAX_POINTS = 11_000;

const badRequest = (msg: string): HttpError => new HttpError(400, msg);

/** The form of a request; a form body too large is a 400 like any other parameter error. */
export async function readForm(request: Request): Promise<Form> {
  try {
    return await Form.from(request);
  } catch (e) {
    if (e instanceof ApiError) throw badRequest(e.message);
    throw e;
  }
}

/** Nanoseconds as an exact BigInt, for arithmetic across the ms/ns split. */
export function toBigNs(t: NsTime): bigint {
  return BigInt(t.ms) * 1_000_000n + BigInt(t.ns);
}

export function fromBigNs(ns: bigint): NsTime {
  let ms = ns / 1_000_000n;
  let rest = ns - ms * 1_000_000n;
  if (rest < 0n) {
    ms -= 1n;
    rest += 1_000_000n;
  }
  return { ms: Number(ms), ns: Number(rest) };
}

export function nsTimeFromMs(ms: number): NsTime {
  const whole = Math.floor(ms);
  return { ms: whole, ns: Math.round((ms - whole) * NS_PER_MS) };
}

/** Go's time.Unix(sec, nsec) as an NsTime. */
function unix(sec: number, nsec: number): NsTime {
  return fromBigNs(BigInt(sec) * 1_000_000_000n + BigInt(nsec));
}

const RFC3339_NANO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** time.Parse(time.RFC3339Nano, s), nanoseconds kept; null when Go would refuse it. */
export function parseRfc3339Nano(s: string): NsTime | null {
  const m = RFC3339_NANO.exec(s);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (day < 1 || day > days) return null;
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
  // Go reads at most nine fraction digits' worth of precision; more are truncated.
  const frac = m[7] ? Number(m[7].padEnd(9, "0").slice(0, 9)) : 0;
  const base = d.getTime() - offsetMin * 60_000;
  return fromBigNs(BigInt(base) * 1_000_000n + BigInt(frac));
}

/**
 * Loki's parseTimestamp: RFC3339Nano; else, with a ".", a float (whole part up to
 * 1e10 is seconds with the fraction rounded to the ms, larger is nanoseconds);
 * else an integer (up to 1e10 seconds, larger nanoseconds). Throws Go's error text.
 */
export function parseLokiTime(value: string): NsTime {
  const rfc = parseRfc3339Nano(value);
  if (rfc) return rfc;
  if (value.includes(".")) {
    const t = parseGoFloat(value);
    if (t === null) throw badRequest(`strconv.ParseFloat: parsing ${goQuote(value)}: invalid syntax`);
    if (!Number.isFinite(t)) throw badRequest("floating point timestamp is NaN or Inf");
    const high = Math.trunc(t);
    if (high > 9223372036854775807 || high < -9223372036854775808) throw badRequest("floating point timestamp exceeds integer range");
    if (high <= 1e10) {
      // math.Modf, the fraction rounded to the millisecond (Go's math.Round: half away from zero).
      const low = t - high;
      const lowMs = low < 0 ? -Math.round(-low * 1000) : Math.round(low * 1000);
      return unix(high, lowMs * 1_000_000);
    }
    return fromBigNs(BigInt(high));
  }
  if (!/^[+-]?\d+$/.test(value)) throw badRequest(`strconv.ParseInt: parsing ${goQuote(value)}: invalid syntax`);
  const v = BigInt(value);
  if (v > 9223372036854775807n || v < -9223372036854775808n) throw badRequest(`strconv.ParseInt: parsing ${goQuote(value)}: value out of range`);
  return v <= 10_000_000_000n ? fromBigNs(v * 1_000_000_000n) : fromBigNs(v);
}

function timeOr(value: string, dflt: NsTime, name: string | null): NsTime {
  if (value === "") return dflt;
  try {
    return parseLokiTime(value);
  } catch (e) {
    if (name !== null && e instanceof HttpError) throw badRequest(`could not parse '${name}' parameter: ${e.message}`);
    throw e;
  }
}

/** Loki's `time` of an instant query (default now). */
export function instantTime(form: Form, now: NsTime): NsTime {
  return timeOr(form.value("time"), now, null);
}

/**
 * Loki's bounds(): `end` (default now); `start` (default min(end, now) - since, since
 * defaulting to 1h). Loki does not check end >= start here; range queries do.
 */
export function bounds(form: Form, now: NsTime): { start: NsTime; end: NsTime } {
  let sinceMs = DEFAULT_SINCE_MS;
  const since = form.value("since");
  if (since !== "") {
    const d = parsePromDuration(since);
    if (d === null) throw badRequest(`could not parse 'since' parameter: not a valid duration string: ${goQuote(since)}`);
    sinceMs = d;
  }
  const end = timeOr(form.value("end"), now, "end");
  // Loki: "use the 'end' time so long as it's not in the future".
  const endOrNow = toBigNs(end) > toBigNs(now) ? now : end;
  const start = timeOr(form.value("start"), fromBigNs(toBigNs(endOrNow) - BigInt(sinceMs) * 1_000_000n), "start");
  return { start, end };
}

/** Loki's limit(): default 100, a positive integer. */
export function limitParam(form: Form): number {
  const s = form.value("limit");
  if (s === "") return DEFAULT_LIMIT;
  const n = goAtoi(s);
  if (typeof n === "string") throw badRequest(n);
  if (n <= 0) throw badRequest("limit must be a positive value");
  // Loki keeps it as uint32.
  return n > 0xffffffff ? n % 2 ** 32 || DEFAULT_LIMIT : n;
}

/** Loki's direction(): FORWARD or BACKWARD in any case, backward by default. */
export function directionParam(form: Form): Direction {
  const s = form.value("direction");
  if (s === "") return "backward";
  const u = s.toUpperCase();
  if (u === "FORWARD") return "forward";
  if (u === "BACKWARD") return "backward";
  throw badRequest(`invalid direction '${s}'`);
}

const MAX_INT64 = 9223372036854775807;

/** Loki's parseSecondsOrDuration, in ns (a float: durations beyond 2^53 ns lose only sub-µs precision). */
export function secondsOrDuration(value: string): number {
  const f = parseGoFloat(value);
  if (f !== null) {
    const ns = f * 1e9;
    if (ns > MAX_INT64 || ns < -MAX_INT64 - 1) throw badRequest(`cannot parse ${goQuote(value)} to a valid duration. It overflows int64`);
    // time.Duration(NaN) is MinInt64 on Go's platforms: negative, refused by the caller.
    if (Number.isNaN(ns)) return -MAX_INT64 - 1;
    return Math.trunc(ns);
  }
  const d = parsePromDuration(value);
  if (d !== null) return d * 1e6;
  throw badRequest(`cannot parse ${goQuote(value)} to a valid duration`);
}

export interface RangeParams {
  query: string;
  start: NsTime;
  end: NsTime;
  /** Step in ns (at least 1 ms in practice: Loki's default step is whole seconds). */
  stepNs: number;
  /** interval in ns; 0 when absent. */
  intervalNs: number;
  limit: number;
  direction: Direction;
}

/** Loki's ParseRangeQuery, check for check in Loki's order (`limitOf` reads the limit; the volume API has its own rule). */
export function rangeParams(form: Form, now: NsTime, limitOf: (form: Form) => number = limitParam): RangeParams {
  const query = form.value("query");
  const { start, end } = bounds(form, now);
  const span = toBigNs(end) - toBigNs(start);
  if (span < 0n) throw badRequest("end timestamp must not be before or equal to start time");
  const limit = limitOf(form);
  const direction = directionParam(form);
  const stepValue = form.value("step");
  // Loki's defaultQueryRangeStep: (end - start)/250 in whole seconds, at least 1 s.
  const stepNs = stepValue === "" ? Math.max(Math.floor(Number(span) / 250 / 1e9), 1) * 1e9 : secondsOrDuration(stepValue);
  if (stepNs <= 0) throw badRequest("zero or negative query resolution step widths are not accepted. Try a positive integer");
  if (Math.trunc(Number(span) / stepNs) > MAX_POINTS) {
    throw badRequest("exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter");
  }
  const intervalValue = form.value("interval");
  const intervalNs = intervalValue === "" ? 0 : secondsOrDuration(intervalValue);
  if (intervalNs < 0) throw badRequest("interval must be >= 0");
  return { query, start, end, stepNs, intervalNs, limit, direction };
}

export interface InstantParams {
  query: string;
  time: NsTime;
  limit: number;
  direction: Direction;
}

/** Loki's ParseInstantQuery. */
export function instantParams(form: Form, now: NsTime): InstantParams {
  const query = form.value("query");
  const limit = limitParam(form);
  const time = instantTime(form, now);
  const direction = directionParam(form);
  return { query, time, limit, direction };
}

export interface TailParams {
  query: string;
  limit: number;
  start: NsTime;
  delayForS: number;
}

/** Loki's ParseTailQuery after the query is parsed: limit, start (bounds), delay_for (at most 5 s). */
export function tailParams(form: Form, now: NsTime): TailParams {
  const query = form.value("query");
  const limit = limitParam(form);
  const { start } = bounds(form, now);
  const d = form.value("delay_for");
  let delayForS = 0;
  if (d !== "") {
    const n = goAtoi(d);
    if (typeof n === "string") throw badRequest(n);
    delayForS = n;
  }
  if (delayForS > MAX_TAIL_DELAY_S) throw badRequest(`delay_for can't be greater than ${MAX_TAIL_DELAY_S}`);
  if (delayForS < 0) throw badRequest("delay_for must not be negative");
  return { query, limit, start, delayForS };
}

/** Loki's validateMaxEntriesLimits: a log query's limit above max_entries_limit_per_query (0 = off) is a 400. */
export function checkEntriesLimit(limit: number, max: number): void {
  if (max !== 0 && limit > max) {
    throw badRequest(`max entries limit per query exceeded, limit > max_entries_limit_per_query (${limit} > ${max})`);
  }
}

/** The series API's selectors: match[] and match, deduplicated, sorted; a lone {} means none (Loki's ParseSeriesQuery). */
export function seriesMatchers(form: Form): string[] {
  const all = [...new Set([...form.values("match"), ...form.values("match[]")])].sort();
  if (all.length === 1 && all[0].replace(/ /g, "") === "{}") return [];
  return all;
}

/** Loki's seriesvolume.DefaultLimit. */
export const DEFAULT_VOLUME_LIMIT = 100;

export interface VolumeParams {
  query: string;
  start: NsTime;
  end: NsTime;
  /** Step in ns; 0 for /index/volume (one bucket). */
  stepNs: number;
  limit: number;
  /** targetLabels=a,b: the labels volumes are aggregated into; empty for none. */
  targetLabels: string[];
  /** Loki's aggregateBy: a volume per label set ("series", the default) or per label name ("labels"). */
  aggregateBy: "series" | "labels";
}

/** Loki's volumeLimit: default 100, and 0 means the default too; a negative limit is refused. */
function volumeLimit(form: Form): number {
  const s = form.value("limit");
  if (s === "") return DEFAULT_VOLUME_LIMIT;
  const n = goAtoi(s);
  if (typeof n === "string") throw badRequest(n);
  if (n === 0) return DEFAULT_VOLUME_LIMIT;
  if (n < 0) throw badRequest("limit must be a positive value");
  return n;
}

/** Loki's volumeAggregateBy. */
function aggregateByParam(form: Form): "series" | "labels" {
  const s = form.value("aggregateBy");
  if (s === "" || s === "series") return "series";
  if (s === "labels") return "labels";
  throw badRequest("invalid aggregation option");
}

/** Loki's targetLabels: the comma-separated list, none when empty. */
function targetLabelsParam(form: Form): string[] {
  const s = form.value("targetLabels");
  return s === "" ? [] : s.split(",");
}

/**
 * Loki's ParseVolumeInstantQuery (range = false: limit, then ParseInstantQuery's time
 * and direction checks, aggregateBy, bounds) and ParseVolumeRangeQuery (range = true:
 * limit, then ParseRangeQuery's checks, step included, then aggregateBy).
 */
export function volumeParams(form: Form, now: NsTime, range: boolean): VolumeParams {
  const limit = volumeLimit(form);
  const targetLabels = targetLabelsParam(form);
  if (range) {
    const p = rangeParams(form, now, () => limit);
    return { query: p.query, start: p.start, end: p.end, stepNs: p.stepNs, limit, targetLabels, aggregateBy: aggregateByParam(form) };
  }
  // ParseInstantQuery's checks (its limit is the one read above).
  instantTime(form, now);
  directionParam(form);
  const aggregateBy = aggregateByParam(form);
  const { start, end } = bounds(form, now);
  if (toBigNs(end) < toBigNs(start)) throw badRequest("end timestamp must not be before or equal to start time");
  return { query: form.value("query"), start, end, stepNs: 0, limit, targetLabels, aggregateBy };
}

/** Now as an NsTime (Date.now() has ms resolution; inside workerd it stands still during CPU work, which is fine for defaults). */
export function nowNs(): NsTime {
  return { ms: Date.now(), ns: 0 };
}

export { formatNs };
