// Bounding concurrency. A Worker invocation may hold only 6 connections open at once
// (R2, fetch, cache and Durable Object calls count); past that the runtime queues
// them anyway, so a query shares one gate across all its sub-requests instead of
// letting each layer open its own 6.

export const MAX_CONCURRENT_SUBREQUESTS = 6;

export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Highest number of tasks that ran at once (for tests and the benchmark). */
  peak = 0;

  constructor(readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    if (this.active > this.peak) this.peak = this.active;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Runs fn over items with at most `limit` in flight, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers: Promise<void>[] = [];
  for (let w = 0; w < Math.min(limit, items.length); w++) {
    workers.push(
      (async () => {
        while (next < items.length) {
          const i = next++;
          out[i] = await fn(items[i], i);
        }
      })(),
    );
  }
  await Promise.all(workers);
  return out;
}
