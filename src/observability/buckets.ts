// Histogram buckets shared by the request and query latency histograms, so the two
// can be read against each other.

/** Cortex's request duration buckets (instrument.DefBuckets), extended to 100 s for long queries. */
export const REQUEST_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100];

/** The index of the bucket `seconds` falls in (REQUEST_BUCKETS.length: +Inf). */
export function bucketOf(seconds: number): number {
  let i = 0;
  while (i < REQUEST_BUCKETS.length && seconds > REQUEST_BUCKETS[i]) i++;
  return i;
}
