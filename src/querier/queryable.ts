// Where the PromQL engine reads: select() over the tenant's ingesters and R2 blocks,
// each merged series decoded with toSamples(). One Queryable serves one query, so
// all its selects share one connection gate and one series budget
// (maxSeriesPerQuery, counted over every selector of the query).

import type { LabelMatcher } from "../proto/types";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../model/concurrency";
import { PromQLExecError, type Queryable, type Series } from "./promql/value";
import { select, toSamples } from "./select";

export class StorageQueryable implements Queryable {
  /** Series returned so far, over all selects of this query. */
  seriesSelected = 0;
  /** Samples decoded so far (for tests and logs; the engine enforces maxSamplesPerQuery). */
  samplesSelected = 0;
  private readonly gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS);

  constructor(
    private readonly env: Env,
    private readonly tenant: string,
    private readonly maxSeries: number,
  ) {}

  async select(matchers: LabelMatcher[], mint: number, maxt: number): Promise<Series[]> {
    const selected = await select(this.env, this.tenant, matchers, mint, maxt, this.gate);
    const out: Series[] = [];
    for (const sel of selected) {
      const s = toSamples(sel, mint, maxt);
      // A series whose chunks overlap the range but hold no sample in it is not selected.
      if (s.timestamps.length === 0) continue;
      if (++this.seriesSelected > this.maxSeries) {
        throw new PromQLExecError(
          `the query exceeded the maximum number of series (limit: ${this.maxSeries} series, maxSeriesPerQuery). Consider reducing the time range and/or the number of series selected by the query`,
        );
      }
      this.samplesSelected += s.timestamps.length;
      out.push({ labels: s.labels, timestamps: s.timestamps, values: s.values });
    }
    return out;
  }
}
