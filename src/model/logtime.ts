// Log timestamps are Unix nanoseconds (Loki's unit), beyond a double's 53 bits
// (now is about 1.8e18 ns). Rather than a BigInt per entry, an instant is two
// numbers: whole milliseconds `ms` (a safe integer, may be negative) and the
// nanoseconds within that millisecond `ns` (0..999,999). Comparisons are exact;
// ms lines up with the metrics side's time base.

export interface NsTime {
  ms: number;
  ns: number;
}

export const NS_PER_MS = 1_000_000;

/** a - b, as a sign: negative, 0 or positive. */
export function cmpNs(aMs: number, aNs: number, bMs: number, bNs: number): number {
  return aMs !== bMs ? aMs - bMs : aNs - bNs;
}

/**
 * A decimal string of Unix nanoseconds ("1700000000123456789", as Loki's JSON push
 * and API carry them) -> NsTime, or null when it is not an integer of that form.
 */
export function parseNsString(s: string): NsTime | null {
  let neg = false;
  let start = 0;
  if (s.charCodeAt(0) === 45 /* - */) {
    neg = true;
    start = 1;
  }
  const n = s.length - start;
  if (n === 0 || n > 19) return null;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return null;
  }
  // The last six digits are the nanoseconds within the millisecond.
  const split = Math.max(start, s.length - 6);
  const ms = split > start ? Number(s.slice(start, split)) : 0;
  const ns = Number(s.slice(split));
  if (!neg) return { ms, ns };
  // -(ms*1e6 + ns) = (-ms - 1)*1e6 + (1e6 - ns) when ns > 0.
  return ns === 0 ? { ms: -ms, ns: 0 } : { ms: -ms - 1, ns: NS_PER_MS - ns };
}

/** NsTime -> the decimal string of Unix nanoseconds. */
export function formatNs(ms: number, ns: number): string {
  if (ms >= 0) {
    if (ms === 0) return String(ns);
    return String(ms) + String(ns).padStart(6, "0");
  }
  // Negative instants (before 1970) are rare; BigInt keeps them exact.
  return (BigInt(ms) * 1_000_000n + BigInt(ns)).toString();
}

/** protobuf google.protobuf.Timestamp (seconds, nanos) -> NsTime. */
export function fromSecondsNanos(seconds: number, nanos: number): NsTime {
  const msInNanos = Math.floor(nanos / NS_PER_MS);
  return { ms: seconds * 1000 + msInNanos, ns: nanos - msInNanos * NS_PER_MS };
}

/** NsTime -> (seconds, nanos) for protobuf, nanos in 0..999,999,999. */
export function toSecondsNanos(ms: number, ns: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * NS_PER_MS + ns };
}
