// End to end with a real Prometheus (Debian's 2.42):
//
//   1. Prometheus scrapes itself every second and remote-writes to `wrangler dev`.
//   2. The target is removed (Prometheus writes staleness markers, which are sent
//      too), the queue drains, Prometheus stops gracefully.
//   3. The runtime is SIGKILLed (wrangler, workerd: no graceful shutdown) and restarted
//      on the same state directory: every acked sample must have been durable.
//   4. The same remote read request goes to Prometheus (restarted on its TSDB, serving
//      what it stored) and to us: the same series with the same samples, timestamps and
//      value bits (stale NaNs included), and nothing else.
//   5. A second Prometheus with only remote_read pointed at us answers PromQL from our
//      data, identically to the Prometheus that holds the data itself.

import { existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { postRemoteRead, startPrometheus, waitUntil, PROMETHEUS_BIN, type PrometheusHandle, type RemoteWriteStats } from "../support/prometheus";
import { decodeReadResponse, encodeReadRequest } from "../support/promproto";
import { buildWorkerBundle, startWrangler, type WranglerHandle } from "../support/wrangler";

// Debian's Prometheus 2.42 does not send remote_write/remote_read `headers`
// (prometheus/prometheus#13030), so no X-Scope-OrgID: everything goes to the default
// tenant, and our own requests say nothing either.
const TENANT = "anonymous";
const TENANT_HEADERS: Record<string, string> = {};
/** Prometheus's staleness marker (value.StaleNaN), a signalling NaN. */
const STALE_NAN_BITS = "7ff0000000000002";
/** The same NaN with its quiet bit set: what a stale marker becomes if it passes through a JS array of doubles or an FPU op. */
const QUIET_STALE_NAN_BITS = "7ff8000000000002";

interface ReadSeries {
  /** name="value" pairs, in wire order (both sides send them sorted). */
  key: string;
  timestamps: number[];
  /** Each value's 8 bytes as big-endian hex (7ff0000000000002 = stale NaN). */
  valueBits: string[];
}

/** The remote read answer to our single query, with values as bit patterns. */
function readSeries(responseBytes: Uint8Array): ReadSeries[] {
  const results = decodeReadResponse(responseBytes);
  expect(results).toHaveLength(1);
  return results[0].map((s) => {
    const pairs: string[] = [];
    for (let i = 0; i < s.flatLabels.length; i += 2) pairs.push(`${s.flatLabels[i]}=${JSON.stringify(s.flatLabels[i + 1])}`);
    const view = new DataView(s.values.buffer, s.values.byteOffset, s.values.byteLength);
    const valueBits: string[] = [];
    for (let i = 0; i < s.values.length; i++) valueBits.push(view.getBigUint64(i * 8, true).toString(16).padStart(16, "0"));
    return { key: `{${pairs.join(", ")}}`, timestamps: Array.from(s.timestamps), valueBits };
  });
}

interface Comparison {
  expectedSeries: number;
  expectedSamples: number;
  staleMarkers: number;
  /** Stale markers that came back as a quiet NaN (7ff8000000000002): their signalling bit lost on the way. */
  quietedStaleMarkers: number;
  missing: string[];
  extra: string[];
  differing: string[];
}

/** Every series of `expected` must be in `actual` with the same samples, bit for bit; nothing extra. */
function compareSeries(expected: ReadSeries[], actual: ReadSeries[]): Comparison {
  const ours = new Map(actual.map((s) => [s.key, s]));
  const theirs = new Set(expected.map((s) => s.key));
  const out: Comparison = { expectedSeries: expected.length, expectedSamples: 0, staleMarkers: 0, quietedStaleMarkers: 0, missing: [], extra: [], differing: [] };
  for (const want of expected) {
    out.expectedSamples += want.timestamps.length;
    out.staleMarkers += want.valueBits.filter((b) => b === STALE_NAN_BITS).length;
    const got = ours.get(want.key);
    if (!got) {
      out.missing.push(`${want.key} (${want.timestamps.length} samples)`);
      continue;
    }
    if (got.timestamps.length !== want.timestamps.length) {
      const wantSet = new Set(want.timestamps);
      const gotSet = new Set(got.timestamps);
      const lost = want.timestamps.filter((t) => !gotSet.has(t));
      const added = got.timestamps.filter((t) => !wantSet.has(t));
      out.differing.push(
        `${want.key}: ${want.timestamps.length} samples expected, ${got.timestamps.length} got; missing t=${lost.slice(0, 5).join(",")}${lost.length > 5 ? "…" : ""} extra t=${added.slice(0, 5).join(",")}${added.length > 5 ? "…" : ""}`,
      );
      continue;
    }
    for (let i = 0; i < want.timestamps.length; i++) {
      if (want.valueBits[i] === STALE_NAN_BITS && got.valueBits[i] === QUIET_STALE_NAN_BITS) out.quietedStaleMarkers++;
    }
    for (let i = 0; i < want.timestamps.length; i++) {
      if (got.timestamps[i] !== want.timestamps[i] || got.valueBits[i] !== want.valueBits[i]) {
        out.differing.push(
          `${want.key}: sample ${i}: expected t=${want.timestamps[i]} bits=${want.valueBits[i]}, got t=${got.timestamps[i]} bits=${got.valueBits[i]}`,
        );
        break;
      }
    }
  }
  for (const s of actual) if (!theirs.has(s.key)) out.extra.push(`${s.key} (${s.timestamps.length} samples)`);
  return out;
}

interface ShardStatus {
  shard: number;
  series: number;
  samplesAppended: number;
  walRecords: number;
  walBytes: number;
  pushes: number;
}

async function ingesterStatus(url: string, tenant: string): Promise<ShardStatus[]> {
  const headers: Record<string, string> = tenant === "anonymous" ? {} : { "X-Scope-OrgID": tenant };
  const res = await fetch(`${url}/api/v1/status/ingesters`, { headers, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /api/v1/status/ingesters: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return (JSON.parse(text) as { data: { shards: ShardStatus[] } }).data.shards;
}

function sum(shards: ShardStatus[], key: keyof ShardStatus): number {
  return shards.reduce((acc, s) => acc + s[key], 0);
}

function head(list: string[], n = 10): string {
  return list.slice(0, n).join("\n  ") + (list.length > n ? `\n  … and ${list.length - n} more` : "");
}

// ---------------------------------------------------------------------------------

const hasPrometheus = existsSync(PROMETHEUS_BIN);

describe.skipIf(!hasPrometheus)("Prometheus remote write → ingester → remote read", () => {
  let wrangler: WranglerHandle | undefined;
  const proms: PrometheusHandle[] = [];
  const tempDirs = new Set<string>();
  let failed = false;
  // What the first test leaves for the second.
  let run: { startMs: number; endMs: number; reference: PrometheusHandle } | undefined;

  afterAll(async () => {
    await Promise.allSettled(proms.map((p) => p.kill()));
    if (wrangler) await wrangler.kill9().catch(() => undefined);
    if (failed || process.env.KEEP_E2E_TMP) {
      console.log(`e2e: kept logs and state in ${[...tempDirs].join(", ")}`);
    } else {
      for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  function track<T>(promise: Promise<T>): Promise<T> {
    return promise.catch((e: unknown) => {
      failed = true;
      throw e;
    });
  }

  it("keeps exactly what Prometheus sent, across a SIGKILL of the runtime", () =>
    track(
      (async () => {
        // One build for both runtimes, so the restart runs the same code.
        const bundle = await buildWorkerBundle();
        tempDirs.add(dirname(dirname(bundle)));
        wrangler = await startWrangler({ bundle });
        tempDirs.add(dirname(wrangler.persistDir));
        const writeUrl = `${wrangler.url}/api/v1/write`;
        const remoteWrite = [{ url: writeUrl, headers: TENANT_HEADERS, maxSamplesPerSend: 500 }];

        const startMs = Date.now() - 1_000;
        const sender = await startPrometheus({ scrapeSelf: true, scrapeInterval: "1s", remoteWrite });
        proms.push(sender);
        tempDirs.add(sender.dir);

        const describeState = async (): Promise<string> =>
          `remote write stats ${JSON.stringify(await sender.remoteWriteStats().catch((e: Error) => e.message))}\n` +
          `--- prometheus log ---\n${sender.logTail(15)}\n--- wrangler log ---\n${wrangler?.logTail(15)}`;

        // A good amount sent (about 10 scrapes' worth, ≥ 5 batches) and nothing refused.
        await waitUntil(
          async () => {
            const s = await sender.remoteWriteStats();
            if (s.samplesFailed > 0) throw new Error(`remote write is failing: ${await describeState()}`);
            if (s.samplesRetried > 5_000) throw new Error(`remote write keeps being retried (5xx): ${await describeState()}`);
            return s.samplesSucceeded >= 4_000 && s.batches >= 5 ? s : undefined;
          },
          60_000,
          describeState,
        );

        // Stop scraping: the scrape loop writes staleness markers for every series it
        // had (`up` goes stale), then the queue must drain to the last sample before
        // Prometheus stops.
        sender.setScrapeTargets({ scrapeSelf: false });
        await waitUntil(async () => (await sender.query("up")).length === 0, 30_000, async () => `up is not stale yet\n${await describeState()}`);
        const drained: RemoteWriteStats = await waitUntil(
          async () => {
            const s = await sender.remoteWriteStats();
            return s.samplesPending === 0 && s.highestSentTimestamp >= s.highestTimestampIn ? s : undefined;
          },
          30_000,
          describeState,
        );
        await sender.stop();
        const endMs = Date.now();
        console.log(`e2e: Prometheus sent ${drained.samplesSucceeded} samples in ${drained.batches} batches (failed ${drained.samplesFailed}, retried ${drained.samplesRetried}, dropped ${drained.samplesDropped})`);
        expect(drained.samplesFailed).toBe(0);
        expect(drained.samplesDropped).toBe(0);
        expect(drained.metadataFailed).toBe(0);

        const before = await ingesterStatus(wrangler.url, TENANT);
        // All series (`__name__=~".+"`), SAMPLES responses; asked before the crash too, so
        // that a difference points at either the live path or the crash/replay path.
        const request = encodeReadRequest([{ startMs: startMs - 60_000, endMs: endMs + 60_000, matchers: [{ type: 2, name: "__name__", value: ".+" }] }], [0]);
        const oursBeforeCrash = readSeries(await postRemoteRead(`${wrangler.url}/api/v1/read`, request, TENANT_HEADERS));

        // Crash the runtime and bring it back on the same state.
        const persistDir = wrangler.persistDir;
        await wrangler.kill9();
        wrangler = await startWrangler({ persistDir, bundle });

        const after = await ingesterStatus(wrangler.url, TENANT);
        console.log(
          `e2e: ingesters before SIGKILL: ${sum(before, "series")} series, ${sum(before, "samplesAppended")} samples, ${sum(before, "walRecords")} WAL records; ` +
            `after restart: ${sum(after, "series")} series, ${sum(after, "samplesAppended")} samples`,
        );

        // Prometheus again on its own TSDB, with no scraping and no remote storage: it
        // serves exactly what it stored.
        const reference = await startPrometheus({ dataDir: sender.dataDir, dir: sender.dir });
        proms.push(reference);

        const theirs = readSeries(await reference.remoteRead(request));
        const ours = readSeries(await postRemoteRead(`${wrangler.url}/api/v1/read`, request, TENANT_HEADERS));

        // The next test needs the runtime, this run's time range and the reference Prometheus.
        run = { startMs, endMs, reference };

        const live = compareSeries(theirs, oursBeforeCrash);
        console.log(
          `e2e: before the SIGKILL we answered ${oursBeforeCrash.length} series: ` +
            `${live.missing.length} missing, ${live.extra.length} extra, ${live.differing.length} differing` +
            (live.quietedStaleMarkers > 0 ? ` (${live.quietedStaleMarkers} staleness markers quieted)` : ""),
        );
        const c = compareSeries(theirs, ours);
        console.log(
          `e2e: Prometheus holds ${c.expectedSeries} series, ${c.expectedSamples} samples (${c.staleMarkers} staleness markers); ` +
            `we answered ${ours.length} series, ${ours.reduce((n, s) => n + s.timestamps.length, 0)} samples; ` +
            `${c.missing.length} series missing, ${c.extra.length} extra, ${c.differing.length} differing` +
            (c.quietedStaleMarkers > 0 ? ` (${c.quietedStaleMarkers} staleness markers came back quieted, as ${QUIET_STALE_NAN_BITS})` : ""),
        );
        expect(c.expectedSeries, "Prometheus itself should hold a few hundred series").toBeGreaterThan(100);
        expect(c.staleMarkers, "removing the scrape job should have written staleness markers").toBeGreaterThan(0);
        expect(c.missing, `series missing from our answer:\n  ${head(c.missing)}`).toEqual([]);
        expect(c.differing, `series whose samples differ:\n  ${head(c.differing)}`).toEqual([]);
        expect(c.extra, `series we have that Prometheus has not:\n  ${head(c.extra)}`).toEqual([]);
        expect(sum(after, "samplesAppended")).toBe(c.expectedSamples);
        // After the restart it matched; so must the answer before the crash.
        expect(live.missing.length + live.extra.length + live.differing.length, "differences before the SIGKILL").toBe(0);
      })(),
    ));

  it("answers PromQL through a real Prometheus remote_read client, as Prometheus itself does", () =>
    track(
      (async () => {
        if (!run || !wrangler) throw new Error("needs the data of the previous test");
        const { reference } = run;
        const reader = await startPrometheus({ remoteRead: [{ url: `${wrangler.url}/api/v1/read`, headers: TENANT_HEADERS, readRecent: true }] });
        proms.push(reader);
        tempDirs.add(reader.dir);

        // Mid-run, before the staleness markers.
        const mid = (run.startMs + (run.endMs - run.startMs) * 0.4) / 1000;
        const up = await reader.query("count(up)", mid);
        expect(up.map((s) => s.value[1])).toEqual(["1"]);
        const build = await reader.query("prometheus_build_info", mid);
        expect(build).toHaveLength(1);
        expect(build[0].metric.version).toMatch(/^2\./);

        // The same PromQL over the whole run, evaluated by the Prometheus that holds the
        // data and by the one reading ours, must agree exactly.
        const start = Math.floor(run.startMs / 1000);
        const end = Math.ceil(run.endMs / 1000);
        for (const promql of [
          'count by (__name__) ({__name__=~".+"})',
          "rate(prometheus_http_requests_total[5s])",
          "sum(prometheus_tsdb_head_samples_appended_total)",
        ]) {
          const want = await reference.queryRange(promql, start, end, 1);
          const got = await reader.queryRange(promql, start, end, 1);
          expect(want.length, `${promql}: Prometheus has results`).toBeGreaterThan(0);
          const key = (m: Record<string, string>): string => JSON.stringify(Object.entries(m).sort());
          const norm = (r: typeof want) => r.map((s) => ({ metric: key(s.metric), values: s.values })).sort((a, b) => (a.metric < b.metric ? -1 : 1));
          expect(norm(got), promql).toEqual(norm(want));
        }
      })(),
    ));
});
