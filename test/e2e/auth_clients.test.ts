// Authentication with the real clients users point at us, against one `wrangler dev`
// whose AUTH_CONFIG comes in through `--var AUTH_CONFIG:<json>` (wrangler splits the
// flag at the first ':' and joins the rest back, so the JSON survives):
//
//   1. Prometheus 2.42 (Debian) scrapes our /metrics with `authorization` (admin token:
//      up 1) and without (up 0, 401).
//   2. The same Prometheus remote-writes with `basic_auth` (a credential with one
//      tenant: 2.42 sends no custom headers, so no X-Scope-OrgID) and, on a second
//      queue, with a wrong password. Read back through /api/v1/query with a read token:
//      exactly what Prometheus holds; the wrong password's queue got 401, its samples
//      were dropped (not retried) and nothing of it was stored.
//   3. A second Prometheus queries us through remote_read with `basic_auth` (read
//      scope): the same PromQL answers as the Prometheus holding the data; with a
//      write-only credential its remote read gets 403.
//   4. winston-loki (`basicAuth: "user:pass"`) and pino-loki (`basicAuth: {username,
//      password}`) push into their credentials' tenants; every line reads back via
//      query_range with a read token; a write-only credential cannot query (403).
//   5. vmagent (Debian's 1.79) scrapes a counting exporter and remote-writes it twice,
//      with -remoteWrite.basicAuth.* and with -remoteWrite.bearerToken: each tenant
//      holds exactly the counter values 1..N it was served.

import { existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import winston from "winston";
import LokiTransport from "winston-loki";
import pino from "pino";
import { pinoLoki } from "pino-loki";
import { PROMETHEUS_BIN, postRemoteRead, waitUntil, type PrometheusHandle } from "../support/prometheus";
import { applyPrometheusConfig, promApi, startCountingTarget, startPrometheusWithConfig, startVmagent, VMAGENT_BIN, type CountingTarget, type VmagentHandle } from "../support/auth_peers";
import { encodeReadRequest } from "../support/promproto";
import { entriesOf, labelString, msToNs, type LokiStream } from "../support/loki";
import { buildWorkerBundle, startWrangler, type WranglerHandle } from "../support/wrangler";

// Test-only secrets (plaintext ones must be ≥ 16 characters).
const READ_TOKEN = "auth-clients-read-token-0123";
const ADMIN_TOKEN = "auth-clients-admin-token-0123";
const VM_TOKEN = "auth-clients-vmagent-token-0123";
const PROM_WRITER = { username: "prom-writer", password: "prom-writer-password-0123" };
const PROM_READER = { username: "prom-reader", password: "prom-reader-password-0123" };
const WINSTON = { username: "winston-writer", password: "winston-password-0123" };
const PINO = { username: "pino-writer", password: "pino-password-01234567" };
const VMAGENT = { username: "vmagent", password: "vmagent-password-0123" };

const AUTH_CONFIG = {
  credentials: [
    { name: "prometheus", ...PROM_WRITER, tenants: ["team-prom"], scopes: ["write"] },
    { name: "prometheus-read", ...PROM_READER, tenants: ["team-prom"], scopes: ["read"] },
    { name: "reader", token: READ_TOKEN, tenants: ["team-prom", "logs-winston", "logs-pino", "vm-basic", "vm-bearer"], scopes: ["read"] },
    { name: "admin", token: ADMIN_TOKEN, tenants: "*", scopes: ["admin"] },
    { name: "winston", ...WINSTON, tenants: ["logs-winston"], scopes: ["write"] },
    { name: "pino", ...PINO, tenants: ["logs-pino"], scopes: ["write"] },
    { name: "vmagent-basic", ...VMAGENT, tenants: ["vm-basic"], scopes: ["write"] },
    { name: "vmagent-bearer", token: VM_TOKEN, tenants: ["vm-bearer"], scopes: ["write"] },
  ],
};

const basic = (c: { username: string; password: string }): string => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
/** What our own reads send: the read token and the tenant (the token may read several). */
const readAs = (tenant: string): Record<string, string> => ({ Authorization: `Bearer ${READ_TOKEN}`, "X-Scope-OrgID": tenant });

const QUEUE_CONFIG = { capacity: 2500, max_shards: 4, min_shards: 1, max_samples_per_send: 500, batch_send_deadline: "1s", min_backoff: "100ms", max_backoff: "1s" };

interface MatrixSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

const seriesKey = (m: Record<string, string>): string => labelString(m);

/** Two matrix answers as key → "t=v t=v …", and what differs between them. */
function diffMatrices(want: MatrixSeries[], got: MatrixSeries[]): { missing: string[]; extra: string[]; differing: string[] } {
  const render = (s: MatrixSeries): string => s.values.map(([t, v]) => `${t}=${v}`).join(" ");
  const ours = new Map(got.map((s) => [seriesKey(s.metric), render(s)]));
  const theirs = new Map(want.map((s) => [seriesKey(s.metric), render(s)]));
  const out = { missing: [] as string[], extra: [] as string[], differing: [] as string[] };
  for (const [k, v] of theirs) {
    const o = ours.get(k);
    if (o === undefined) out.missing.push(k);
    else if (o !== v) out.differing.push(`${k}:\n    want ${v.slice(0, 300)}\n    got  ${o.slice(0, 300)}`);
  }
  for (const k of ours.keys()) if (!theirs.has(k)) out.extra.push(k);
  return out;
}

function head(list: string[], n = 8): string {
  return list.slice(0, n).join("\n  ") + (list.length > n ? `\n  … and ${list.length - n} more` : "");
}

const hasPrometheus = existsSync(PROMETHEUS_BIN);
const hasVmagent = existsSync(VMAGENT_BIN);
if (!hasVmagent) console.log(`auth_clients: vmagent case skipped: ${VMAGENT_BIN} not found (Debian's victoria-metrics package ships it; apt-get install victoria-metrics)`);
if (!hasPrometheus) console.log(`auth_clients: Prometheus cases skipped: ${PROMETHEUS_BIN} not found (apt-get install prometheus)`);

describe("authentication with real clients against wrangler dev", () => {
  let wrangler: WranglerHandle | undefined;
  const proms: PrometheusHandle[] = [];
  const closers: (() => Promise<void>)[] = [];
  const tempDirs = new Set<string>();
  let failed = false;
  // What the Prometheus tests share.
  let sender: PrometheusHandle | undefined;
  let run: { startMs: number; endMs: number } | undefined;

  const url = (): string => {
    if (!wrangler) throw new Error("wrangler dev did not start");
    return wrangler.url;
  };

  beforeAll(async () => {
    const bundle = await buildWorkerBundle();
    tempDirs.add(dirname(dirname(bundle)));
    wrangler = await startWrangler({ bundle, vars: { AUTH_CONFIG: JSON.stringify(AUTH_CONFIG) } });
    tempDirs.add(dirname(wrangler.persistDir));
  });

  afterAll(async () => {
    await Promise.allSettled(proms.map((p) => p.kill()));
    await Promise.allSettled(closers.map((c) => c()));
    await wrangler?.stop().catch(() => undefined);
    if (failed || process.env.KEEP_E2E_TMP) console.log(`auth_clients: kept logs and state in ${[...tempDirs].join(", ")}`);
    else for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  /** Marks the run failed (logs kept) when the test throws. */
  function track(body: () => Promise<void>): () => Promise<void> {
    return () =>
      body().catch((e: unknown) => {
        failed = true;
        throw e;
      });
  }

  it(
    "AUTH_CONFIG arrived through --var: no credential 401, the read token 200",
    track(async () => {
      const anon = await fetch(`${url()}/api/v1/query?query=1`);
      expect(anon.status).toBe(401);
      expect(anon.headers.get("WWW-Authenticate")).toContain("Basic");
      const ok = await promApi<{ resultType: string }>(url(), "query", { query: "1" }, readAs("team-prom"));
      expect(ok.status).toBe(200);
      expect(ok.body.data?.resultType).toBe("scalar");
    }),
  );

  // ------------------------------------------------------------------ Prometheus

  /** The sender's config: scrape itself and our /metrics (with and without the admin token); two remote_write queues. */
  const senderConfig = (self: string, scrape: boolean): object => ({
    global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
    scrape_configs: scrape
      ? [
          { job_name: "prometheus", static_configs: [{ targets: [self] }] },
          // Our /metrics covers every tenant: admin scope on "*" (docs/configuration.md).
          { job_name: "edge-ingester", scrape_interval: "2s", scrape_timeout: "2s", authorization: { credentials: ADMIN_TOKEN }, static_configs: [{ targets: [`127.0.0.1:${wrangler!.port}`] }] },
          { job_name: "edge-ingester-anonymous", scrape_interval: "2s", scrape_timeout: "2s", static_configs: [{ targets: [`127.0.0.1:${wrangler!.port}`] }] },
        ]
      : [],
    remote_write: [
      { name: "good", url: `${url()}/api/v1/write`, remote_timeout: "30s", basic_auth: PROM_WRITER, send_exemplars: false, queue_config: QUEUE_CONFIG, metadata_config: { send: true } },
      {
        // The same user with a wrong password; its series carry queue="bad", so one
        // stored by mistake would show.
        name: "bad",
        url: `${url()}/api/v1/write`,
        remote_timeout: "30s",
        basic_auth: { username: PROM_WRITER.username, password: "not-the-password-0123" },
        write_relabel_configs: [{ target_label: "queue", replacement: "bad" }],
        send_exemplars: false,
        queue_config: QUEUE_CONFIG,
        metadata_config: { send: true },
      },
    ],
  });

  it.skipIf(!hasPrometheus)(
    "Prometheus scrapes /metrics with authorization.credentials (up 1) and without (up 0, 401)",
    track(async () => {
      const startMs = Date.now() - 1_000;
      sender = await startPrometheusWithConfig((self) => senderConfig(self, true));
      proms.push(sender);
      tempDirs.add(sender.dir);
      run = { startMs, endMs: 0 };
      const s = sender;
      const upOf = async (job: string): Promise<string | undefined> => (await s.query(`up{job="${job}"}`))[0]?.value[1];
      await waitUntil(async () => (await upOf("edge-ingester")) === "1" && (await upOf("edge-ingester-anonymous")) === "0", 60_000, async () => `up: ${await upOf("edge-ingester")} / ${await upOf("edge-ingester-anonymous")}\n${s.logTail(10)}`);
      // What Prometheus saw: our exposition with the token, a 401 without.
      const scraped = await s.query('scrape_samples_scraped{job="edge-ingester"}');
      expect(Number(scraped[0].value[1])).toBeGreaterThan(0);
      const targets = await promApi<{ activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] }>(s.url, "targets", {});
      const byJob = new Map(targets.body.data!.activeTargets.map((t) => [t.labels.job, t]));
      expect(byJob.get("edge-ingester")?.health).toBe("up");
      expect(byJob.get("edge-ingester-anonymous")?.health).toBe("down");
      expect(byJob.get("edge-ingester-anonymous")?.lastError).toContain("401");
    }),
  );

  it.skipIf(!hasPrometheus)(
    "Prometheus remote_write with basic_auth: exactly what it holds, in the credential's tenant; a wrong password gets 401 and stores nothing",
    track(async () => {
      if (!sender || !run) throw new Error("needs the sender of the previous test");
      const s = sender;
      const q = (name: string, queue: string): Promise<number> => s.metric(name, { remote_name: queue });
      const describeState = async (): Promise<string> =>
        `good: sent ${await q("prometheus_remote_storage_samples_total", "good")} failed ${await q("prometheus_remote_storage_samples_failed_total", "good")} ` +
        `pending ${await q("prometheus_remote_storage_samples_pending", "good")}; bad: failed ${await q("prometheus_remote_storage_samples_failed_total", "bad")}\n` +
        `--- prometheus ---\n${s.logTail(10)}\n--- wrangler ---\n${wrangler?.logTail(10)}`;
      // A few batches through the good queue, and the bad one refused.
      await waitUntil(
        async () => {
          if ((await q("prometheus_remote_storage_samples_failed_total", "good")) > 0) throw new Error(`the good queue is failing: ${await describeState()}`);
          const sent = (await q("prometheus_remote_storage_samples_total", "good")) - (await q("prometheus_remote_storage_samples_retried_total", "good"));
          return sent >= 3_000 && (await q("prometheus_remote_storage_samples_failed_total", "bad")) > 0;
        },
        60_000,
        describeState,
      );

      // Stop scraping (a reload that removes the jobs writes no staleness markers; the
      // queues' config is unchanged, so they keep running) and drain the good queue.
      await applyPrometheusConfig(s, senderConfig(`127.0.0.1:${s.port}`, false));
      await waitUntil(
        async () => {
          const highestIn = await s.metric("prometheus_remote_storage_highest_timestamp_in_seconds");
          const sent = await q("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "good");
          return (await q("prometheus_remote_storage_samples_pending", "good")) === 0 && sent >= highestIn;
        },
        30_000,
        describeState,
      );
      const endMs = Date.now();
      run.endMs = endMs;

      expect(await q("prometheus_remote_storage_samples_failed_total", "good")).toBe(0);
      expect(await q("prometheus_remote_storage_samples_dropped_total", "good")).toBe(0);
      // No 503 either: a refused push whose body went unread used to break the next
      // request under wrangler dev (src/auth/guard.ts), which Prometheus then retried.
      expect(await q("prometheus_remote_storage_samples_retried_total", "good")).toBe(0);
      // 401 is not retried (4xx): once the bad queue has caught up, every sample it
      // tried has failed, and none was retried.
      const badSent = await waitUntil(
        async () => {
          const sent = await q("prometheus_remote_storage_samples_total", "bad");
          const failedSamples = await q("prometheus_remote_storage_samples_failed_total", "bad");
          return (await q("prometheus_remote_storage_samples_pending", "bad")) === 0 && sent === failedSamples ? sent : undefined;
        },
        30_000,
        describeState,
      );
      expect(badSent).toBeGreaterThan(0);
      expect(await q("prometheus_remote_storage_samples_retried_total", "bad")).toBe(0);
      expect(s.logTail(400)).toMatch(/401 Unauthorized/);
      console.log(`auth_clients: good queue sent ${await q("prometheus_remote_storage_samples_total", "good")} samples; bad queue: ${badSent} failed with 401`);

      // Every raw sample in the window, from Prometheus's TSDB and from us (read token).
      const time = String(endMs / 1000);
      const selector = `{__name__=~".+"}[${Math.ceil((endMs - run.startMs) / 1000) + 10}s]`;
      const theirs = await promApi<{ resultType: string; result: MatrixSeries[] }>(s.url, "query", { query: selector, time });
      const ours = await promApi<{ resultType: string; result: MatrixSeries[] }>(url(), "query", { query: selector, time }, readAs("team-prom"));
      expect(ours.status, JSON.stringify(ours.body).slice(0, 300)).toBe(200);
      expect(ours.body.data?.resultType).toBe("matrix");
      const want = theirs.body.data!.result;
      const got = ours.body.data!.result;
      const d = diffMatrices(want, got);
      console.log(`auth_clients: Prometheus holds ${want.length} series, ${want.reduce((n, x) => n + x.values.length, 0)} samples; we answered ${got.length} series, ${got.reduce((n, x) => n + x.values.length, 0)}`);
      expect(want.length, "Prometheus itself should hold a few hundred series").toBeGreaterThan(100);
      expect(want.some((x) => x.metric.job === "edge-ingester"), "our /metrics scraped with the token").toBe(true);
      expect(d.missing, `missing:\n  ${head(d.missing)}`).toEqual([]);
      expect(d.differing, `differing:\n  ${head(d.differing)}`).toEqual([]);
      expect(d.extra, `extra:\n  ${head(d.extra)}`).toEqual([]);

      // Nothing from the wrong password, in this tenant or as anyone else's.
      const bad = await promApi<{ result: unknown[] }>(url(), "query", { query: '{queue="bad"}', time }, readAs("team-prom"));
      expect(bad.body.data?.result).toEqual([]);
      // The credential's single tenant is where it landed: the other tenants the read token may see hold none of it.
      const elsewhere = await promApi<{ result: unknown[] }>(url(), "query", { query: "prometheus_build_info", time }, readAs("vm-basic"));
      expect(elsewhere.body.data?.result).toEqual([]);
    }),
  );

  it.skipIf(!hasPrometheus)(
    "Prometheus remote_read with basic_auth (read scope) answers as the Prometheus holding the data; a write-only credential gets 403",
    track(async () => {
      if (!sender || !run || run.endMs === 0) throw new Error("needs the data of the previous test");
      const s = sender;
      const readConfig = (auth: { username: string; password: string }): object => ({
        global: { scrape_interval: "1s", evaluation_interval: "1s" },
        remote_read: [{ url: `${url()}/api/v1/read`, remote_timeout: "30s", basic_auth: auth, read_recent: true }],
      });
      const reader = await startPrometheusWithConfig(() => readConfig(PROM_READER));
      proms.push(reader);
      tempDirs.add(reader.dir);

      const start = Math.floor(run.startMs / 1000);
      const end = Math.ceil(run.endMs / 1000);
      for (const promql of ['count by (__name__) ({__name__=~".+"})', 'up{job=~"edge-ingester.*"}', "rate(prometheus_http_requests_total[5s])"]) {
        const want = await s.queryRange(promql, start, end, 1);
        const got = await reader.queryRange(promql, start, end, 1);
        expect(want.length, `${promql}: Prometheus has results`).toBeGreaterThan(0);
        const d = diffMatrices(want, got);
        expect([...d.missing, ...d.differing, ...d.extra], promql).toEqual([]);
      }

      // The Prometheus write credential may not read: the remote read is refused with
      // 403 (Prometheus reports it as a warning of the query, with no data).
      await applyPrometheusConfig(reader, readConfig(PROM_WRITER));
      const refused = await promApi<{ result: unknown[] }>(reader.url, "query", { query: "count(up)", time: String(end) });
      console.log(`auth_clients: Prometheus with a write-only remote_read credential answered ${refused.status} ${JSON.stringify(refused.body).slice(0, 400)}`);
      expect(JSON.stringify(refused.body)).toContain("403");
      expect(refused.body.data?.result ?? []).toEqual([]);
      // The same request as Prometheus sends it, to see our answer itself.
      const request = encodeReadRequest([{ startMs: run.startMs, endMs: run.endMs, matchers: [{ type: 2, name: "__name__", value: ".+" }] }], [0]);
      await expect(postRemoteRead(`${url()}/api/v1/read`, request, { Authorization: basic(PROM_WRITER) })).rejects.toThrow(/HTTP 403: .*scope read required: credential "prometheus" has scope write/);
      // And the read credential gets data through the same call.
      expect((await postRemoteRead(`${url()}/api/v1/read`, request, { Authorization: basic(PROM_READER) })).byteLength).toBeGreaterThan(1000);
    }),
  );

  // ------------------------------------------------------------------ Loki clients

  // Well inside the accepted age.
  const logBase = Math.floor((Date.now() - 10 * 60_000) / 1000) * 1000;

  async function queryRange(tenant: string, query: string, headers: Record<string, string>): Promise<Response> {
    const params = new URLSearchParams({ query, start: msToNs(logBase - 60_000), end: msToNs(logBase + 20 * 60_000), limit: "1000", direction: "forward" });
    return fetch(`${url()}/loki/api/v1/query_range?${params}`, { headers: { ...headers, ...(tenant ? { "X-Scope-OrgID": tenant } : {}) }, signal: AbortSignal.timeout(30_000) });
  }

  /** The tenant's entries for the selector, read with the read token: "labels ts line". */
  async function storedLines(tenant: string, selector: string): Promise<string[]> {
    const res = await queryRange(tenant, selector, { Authorization: `Bearer ${READ_TOKEN}` });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as { data: { resultType: string; result: LokiStream[] } };
    expect(body.data.resultType).toBe("streams");
    return entriesOf(body.data.result).map((e) => `${e.labels} ${e.ts} ${e.line}`).sort();
  }

  it(
    "winston-loki with basicAuth pushes into its credential's tenant; every line reads back with the read token",
    track(async () => {
      const errors: unknown[] = [];
      const transport = new LokiTransport({
        host: url(),
        basicAuth: `${WINSTON.username}:${WINSTON.password}`,
        json: false,
        batching: true,
        interval: 60, // one batch, sent on close()
        replaceTimestamp: false,
        gracefulShutdown: false,
        labels: { job: "winston-auth" },
        onConnectionError: (e: unknown) => errors.push(e),
        format: winston.format.printf((info) => String(info.message)),
      });
      const logger = winston.createLogger({ level: "info", transports: [transport] });
      const want: string[] = [];
      for (let i = 0; i < 20; i++) {
        const tsMs = logBase + i * 1_000;
        const line = `auth line ${i} user=u${i % 3}`;
        logger.info({ message: line, timestamp: new Date(tsMs).toISOString() });
        want.push(`${labelString({ job: "winston-auth", level: "info" })} ${msToNs(tsMs)} ${line}`);
      }
      await transport.close();
      logger.close();
      expect(errors.map(String)).toEqual([]);
      expect(await storedLines("logs-winston", '{job="winston-auth"}')).toEqual(want.sort());
      // Only there: the pino credential's tenant has none of it.
      expect(await storedLines("logs-pino", '{job="winston-auth"}')).toEqual([]);
    }),
  );

  it(
    "pino-loki with basicAuth {username, password} pushes into its credential's tenant; every line reads back",
    track(async () => {
      let nowMs = logBase;
      const stream = pinoLoki({ host: url(), basicAuth: PINO, batching: { interval: 60 }, labels: { app: "pino-auth" } });
      const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
      const logger = pino({ level: "info", base: { pid: 4242, hostname: "e2e-host" }, timestamp: () => `,"time":${nowMs}` }, stream);
      const want: string[] = [];
      for (let i = 0; i < 15; i++) {
        nowMs = logBase + 500 + i * 2_000;
        logger.info({ n: i }, `pino auth ${i}`);
        // pino-loki sends pino's line without the hostname (it becomes a label).
        const line = JSON.stringify({ level: 30, time: nowMs, pid: 4242, n: i, msg: `pino auth ${i}` });
        want.push(`${labelString({ app: "pino-auth", hostname: "e2e-host", level: "info" })} ${msToNs(nowMs)} ${line}`);
      }
      stream.end();
      await closed;
      expect(await storedLines("logs-pino", '{app="pino-auth"}')).toEqual(want.sort());
      expect(await storedLines("logs-winston", '{app="pino-auth"}')).toEqual([]);
    }),
  );

  it(
    "a write-only Loki credential cannot query (403); no credential 401; the read token may not push (403)",
    track(async () => {
      for (const [who, cred] of [
        ["winston", WINSTON],
        ["pino", PINO],
      ] as const) {
        const res = await queryRange("", '{job=~".+"}', { Authorization: basic(cred) });
        expect(res.status).toBe(403);
        expect(await res.text()).toContain(`scope read required: credential "${who}" has scope write`);
      }
      const labels = await fetch(`${url()}/loki/api/v1/labels`, { headers: { Authorization: basic(WINSTON) } });
      expect(labels.status).toBe(403);
      await labels.arrayBuffer();
      const anon = await queryRange("logs-winston", '{job="winston-auth"}', {});
      expect(anon.status).toBe(401);
      await anon.arrayBuffer();
      const push = await fetch(`${url()}/loki/api/v1/push`, {
        method: "POST",
        headers: { Authorization: `Bearer ${READ_TOKEN}`, "X-Scope-OrgID": "logs-winston", "Content-Type": "application/json" },
        body: JSON.stringify({ streams: [{ stream: { job: "intruder" }, values: [[msToNs(logBase), "nope"]] }] }),
      });
      expect(push.status).toBe(403);
      await push.arrayBuffer();
      expect(await storedLines("logs-winston", '{job="intruder"}')).toEqual([]);
    }),
  );

  it(
    "a refused push's unread body does not break the next request (20 × a 256 KiB push with a wrong password, then a good one)",
    track(async () => {
      const big = new Uint8Array(256 << 10).fill(0x61);
      const want: string[] = [];
      for (let i = 0; i < 20; i++) {
        const refused = await fetch(`${url()}/loki/api/v1/push`, { method: "POST", headers: { Authorization: basic({ ...WINSTON, password: "not-the-password-0123" }), "Content-Type": "application/json" }, body: big });
        expect(refused.status).toBe(401);
        await refused.arrayBuffer();
        const tsMs = logBase + 30_000 + i;
        const ok = await fetch(`${url()}/loki/api/v1/push`, {
          method: "POST",
          headers: { Authorization: basic(WINSTON), "Content-Type": "application/json" },
          body: JSON.stringify({ streams: [{ stream: { job: "after-refusal" }, values: [[msToNs(tsMs), `line ${i}`]] }] }),
        });
        expect(ok.status, `push ${i} after a refused one: ${await ok.text()}`).toBe(204);
        want.push(`${labelString({ job: "after-refusal" })} ${msToNs(tsMs)} line ${i}`);
      }
      expect(await storedLines("logs-winston", '{job="after-refusal"}')).toEqual(want.sort());
    }),
  );

  // ------------------------------------------------------------------ vmagent

  it.skipIf(!hasVmagent)(
    "vmagent remote-writes with -remoteWrite.basicAuth.* and with -remoteWrite.bearerToken: each tenant holds exactly the values it was served",
    track(async () => {
      const target: CountingTarget = await startCountingTarget();
      closers.push(() => target.close());
      const vm: VmagentHandle = await startVmagent(
        { global: { scrape_interval: "1s", scrape_timeout: "1s" }, scrape_configs: [{ job_name: "counting", static_configs: [{ targets: [target.address] }] }] },
        [
          { url: `${url()}/api/v1/write`, basicAuth: VMAGENT },
          { url: `${url()}/api/v1/write`, bearerToken: VM_TOKEN },
        ],
      );
      closers.push(() => vm.kill());
      tempDirs.add(dirname(vm.logFile));
      await waitUntil(async () => target.served() >= 8, 60_000, () => `vmagent scraped ${target.served()} times\n${vm.logTail(10)}`);
      target.stopServing();
      const n = target.served();
      const time = String(Date.now() / 1000 + 5);

      const rangeOf = async (tenant: string, metric: string): Promise<MatrixSeries[]> => {
        const r = await promApi<{ result: MatrixSeries[] }>(url(), "query", { query: `${metric}[10m]`, time }, readAs(tenant));
        expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
        return r.body.data!.result;
      };
      for (const tenant of ["vm-basic", "vm-bearer"]) {
        const series = await waitUntil(
          async () => {
            const r = await rangeOf(tenant, "e2e_target_scrapes_total");
            return r.length === 1 && r[0].values.length >= n ? r : undefined;
          },
          60_000,
          async () => `${tenant}: ${JSON.stringify(await rangeOf(tenant, "e2e_target_scrapes_total")).slice(0, 400)}\n${vm.logTail(15)}\n--- wrangler ---\n${wrangler?.logTail(10)}`,
        );
        expect(series[0].metric).toEqual({ __name__: "e2e_target_scrapes_total", color: "blue", instance: target.address, job: "counting" });
        expect(series[0].values.map((v) => v[1])).toEqual(Array.from({ length: n }, (_, i) => String(i + 1)));
        const ts = series[0].values.map((v) => v[0]);
        for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThan(ts[i - 1]);
        const info = await rangeOf(tenant, "e2e_target_info");
        expect(info.map((s) => s.metric)).toEqual([{ __name__: "e2e_target_info", version: "1.2.3", instance: target.address, job: "counting" }]);
        expect(info[0].values.map((v) => v[0])).toEqual(ts);
      }
      // Nowhere else.
      expect(await rangeOf("team-prom", "e2e_target_scrapes_total")).toEqual([]);
      await vm.stop();
    }),
  );
});
