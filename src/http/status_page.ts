// The status page (GET /status): one self-contained HTML document, no build step
// and no external assets: inline CSS, an inline SVG chart and a small inline
// script (relative times, auto-refresh). Per tenant: its shards, then what its
// control object reports (HA clusters and their elected replicas, retention and its
// sweeps, open live tails), then recent errors. Pure: it renders what
// src/observability/collect.ts gathered, so it is testable without a server.

import type { ClusterSnapshot, ShardBlocks, TenantSnapshot } from "../observability/collect";
import { COUNTER, HISTORY_MINUTES, ratePerSecond, sumHistories, type MinuteHistory, type RecentError } from "../observability/shard";

export interface StatusPageInput {
  snapshot: ClusterSnapshot;
  /** tenant -> shard -> metric blocks in R2; a tenant missing here could not be listed. */
  blocks: Map<string, Map<number, ShardBlocks>>;
  /** tenant -> shard -> log blocks in R2 (`tenants/<t>/logs/`), listed as the metric ones. */
  logBlocks: Map<string, Map<number, ShardBlocks>>;
  /** Why listing blocks failed, by tenant. */
  blockErrors: Map<string, string>;
  now: number;
  isolate: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const nf = new Intl.NumberFormat("en-US");

function num(n: number): string {
  return nf.format(Math.round(n));
}

function rate(n: number): string {
  if (n === 0) return "0";
  if (n < 10) return n.toFixed(2);
  if (n < 1000) return n.toFixed(1);
  return num(n);
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}

/** A timestamp the inline script turns into "12s ago" / "in 25s"; the title keeps the exact time. */
function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return `<span class="dim">—</span>`;
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}" data-ms="${ms}" title="${iso}">${iso.slice(11, 19)}Z</time>`;
}

const PALETTE = ["#2f6fdf", "#e0622a", "#1f9d55", "#b3369e", "#c49a00", "#0f9fb0", "#7a52d1", "#d0344a"];

interface TenantRow {
  t: TenantSnapshot;
  series: number;
  streams: number | null;
  chunks: number;
  headBytes: number;
  walBytes: number;
  received: number;
  discarded: number;
  lines: number | null;
  rate: number;
  lineRate: number | null;
  history: MinuteHistory;
  lineHistory: MinuteHistory | null;
  /** Metric and log blocks in R2. */
  blocks: number;
  blockBytes: number;
  logBlocks: number;
  errors: (RecentError & { shard: number; source: string })[];
}

/** A tenant's blocks in R2 by shard, of both kinds (either missing when its listing failed). */
interface TenantBlocks {
  metrics: Map<number, ShardBlocks> | undefined;
  logs: Map<number, ShardBlocks> | undefined;
}

/** A shard's blocks of both kinds. */
function shardBlocks(blocks: TenantBlocks, shard: number): { count: number; bytes: number; logs: number } {
  const m = blocks.metrics?.get(shard);
  const l = blocks.logs?.get(shard);
  return { count: (m?.count ?? 0) + (l?.count ?? 0), bytes: (m?.bytes ?? 0) + (l?.bytes ?? 0), logs: l?.count ?? 0 };
}

function sumPrefixed(counters: Record<string, number> | undefined, prefix: string): number {
  if (!counters) return 0;
  let n = 0;
  for (const [k, v] of Object.entries(counters)) if (k.startsWith(prefix + "/")) n += v;
  return n;
}

function summarize(t: TenantSnapshot, blocks: TenantBlocks, now: number): TenantRow {
  const endMinute = Math.floor(now / 60_000);
  const row: TenantRow = {
    t,
    series: 0,
    streams: null,
    chunks: 0,
    headBytes: 0,
    walBytes: 0,
    received: 0,
    discarded: 0,
    lines: null,
    rate: 0,
    lineRate: null,
    history: { endMinute, counts: [] },
    lineHistory: null,
    blocks: 0,
    blockBytes: 0,
    logBlocks: 0,
    errors: [],
  };
  const hs: MinuteHistory[] = [];
  const lhs: MinuteHistory[] = [];
  for (const sh of t.shards) {
    const m = sh.metrics;
    if (m) {
      const c = m.observations.counters;
      row.series += m.series;
      row.chunks += m.chunks;
      row.headBytes += m.headBytes;
      row.walBytes += m.walBytes;
      row.received += c[COUNTER.samplesReceived] ?? 0;
      row.discarded += sumPrefixed(c, COUNTER.discarded) + sumPrefixed(c, COUNTER.distributorDiscarded);
      hs.push(m.observations.history);
      for (const e of m.observations.errors) row.errors.push({ ...e, shard: sh.shard, source: "metrics" });
    }
    const l = sh.logs;
    if (l) {
      if (typeof l.streams === "number") row.streams = (row.streams ?? 0) + l.streams;
      if (typeof l.headBytes === "number") row.headBytes += l.headBytes;
      if (typeof l.walBytes === "number") row.walBytes += l.walBytes;
      const o = l.observations;
      if (o) {
        row.lines = (row.lines ?? 0) + (o.counters[COUNTER.linesReceived] ?? 0);
        lhs.push(o.history);
        for (const e of o.errors) row.errors.push({ ...e, shard: sh.shard, source: "logs" });
      }
    }
    const b = shardBlocks(blocks, sh.shard);
    row.blocks += b.count;
    row.blockBytes += b.bytes;
    row.logBlocks += b.logs;
  }
  row.discarded += t.limiter?.discarded.rate_limited.samples ?? 0;
  row.history = sumHistories(hs, endMinute);
  row.rate = ratePerSecond(row.history, now);
  if (lhs.length > 0) {
    row.lineHistory = sumHistories(lhs, endMinute);
    row.lineRate = ratePerSecond(row.lineHistory, now);
  }
  row.errors.sort((a, b) => b.at - a.at);
  return row;
}

/** Rounds a chart's top up to 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/**
 * The last hour's ingestion rate per tenant (samples/s, each minute's count / 60),
 * one path per tenant; log lines/s dashed when log shards report a history.
 */
export function renderChart(rows: TenantRow[], now: number): string {
  const W = 960;
  const H = 220;
  const L = 56;
  const R = 12;
  const T = 12;
  const B = 28;
  const pw = W - L - R;
  const ph = H - T - B;
  const lines: { label: string; color: string; dashed: boolean; points: number[] }[] = [];
  rows.forEach((r, i) => {
    const color = PALETTE[i % PALETTE.length];
    lines.push({ label: `${r.t.tenant} samples/s`, color, dashed: false, points: r.history.counts.map((c) => c / 60) });
    if (r.lineHistory && r.lineHistory.counts.some((c) => c > 0)) {
      lines.push({ label: `${r.t.tenant} lines/s`, color, dashed: true, points: r.lineHistory.counts.map((c) => c / 60) });
    }
  });
  let max = 0;
  for (const l of lines) for (const p of l.points) if (p > max) max = p;
  const top = niceMax(max);
  const step = top / 4;
  // As many decimals as the step needs (2.5 -> 1, 0.125 -> 3), the same on every label.
  let decimals = 0;
  while (decimals < 4 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-9) decimals++;
  const axis = (v: number) => (decimals === 0 ? num(v) : v.toFixed(decimals));
  const x = (i: number) => L + (pw * i) / (HISTORY_MINUTES - 1);
  const y = (v: number) => T + ph - (ph * v) / top;
  const parts: string[] = [];
  parts.push(`<svg id="rate-chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Ingestion rate over the last hour" preserveAspectRatio="none">`);
  // Grid: 4 horizontal lines with values, vertical lines every 10 minutes.
  for (let g = 0; g <= 4; g++) {
    const v = (top * g) / 4;
    parts.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`);
    parts.push(`<text class="axis" x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${axis(v)}</text>`);
  }
  const endMinute = Math.floor(now / 60_000);
  for (let i = 0; i < HISTORY_MINUTES; i += 10) {
    const ago = HISTORY_MINUTES - 1 - i;
    parts.push(`<line class="grid" x1="${x(i).toFixed(1)}" x2="${x(i).toFixed(1)}" y1="${T}" y2="${T + ph}"/>`);
    const label = new Date((endMinute - ago) * 60_000).toISOString().slice(11, 16);
    parts.push(`<text class="axis" x="${x(i).toFixed(1)}" y="${H - 8}" text-anchor="middle">${label}</text>`);
  }
  parts.push(`<text class="axis" x="${x(HISTORY_MINUTES - 1).toFixed(1)}" y="${H - 8}" text-anchor="end">now</text>`);
  parts.push(`<rect class="frame" x="${L}" y="${T}" width="${pw}" height="${ph}"/>`);
  for (const l of lines) {
    const d = l.points.map((p, i) => `${i === 0 ? "M" : "L"}${x(i).toFixed(1)},${y(p).toFixed(1)}`).join("");
    parts.push(
      `<path class="series" d="${d}" stroke="${l.color}"${l.dashed ? ` stroke-dasharray="5 4"` : ""} data-label="${escapeHtml(l.label)}"><title>${escapeHtml(l.label)}: ${escapeHtml(rate(l.points[l.points.length - 1]))} now, peak ${escapeHtml(rate(Math.max(...l.points)))}</title></path>`,
    );
  }
  if (lines.length === 0) parts.push(`<text class="axis" x="${L + pw / 2}" y="${T + ph / 2}" text-anchor="middle">no tenants yet</text>`);
  parts.push(`</svg>`);
  const legend = lines
    .map((l) => `<span class="key"><svg width="22" height="10" aria-hidden="true"><line x1="0" x2="22" y1="5" y2="5" stroke="${l.color}" stroke-width="2.5"${l.dashed ? ` stroke-dasharray="5 4"` : ""}/></svg>${escapeHtml(l.label)}</span>`)
    .join("");
  return `${parts.join("")}<div class="legend">${legend}</div>`;
}

function shardTable(row: TenantRow, blocks: TenantBlocks, blockError: string | undefined, now: number): string {
  const hasLogs = row.t.shards.some((s) => s.logs !== null);
  const numeric = new Set(["series", "chunks", "streams", "memory", "WAL", "checkpoint", "rate /s", "received", "discarded", "blocks", "block bytes"]);
  const head = [
    "shard",
    "series",
    "chunks",
    ...(hasLogs ? ["streams"] : []),
    "memory",
    "WAL",
    "checkpoint",
    "rate /s",
    "received",
    "discarded",
    "last flush",
    "next flush",
    "blocks",
    "block bytes",
    "state",
  ];
  const body = row.t.shards.map((sh) => {
    const m = sh.metrics;
    const l = sh.logs;
    const b = shardBlocks(blocks, sh.shard);
    const c = m?.observations.counters;
    const discarded = c ? sumPrefixed(c, COUNTER.discarded) + sumPrefixed(c, COUNTER.distributorDiscarded) : 0;
    const memory = (m?.headBytes ?? 0) + (l?.headBytes ?? 0);
    const wal = (m?.walBytes ?? 0) + (l?.walBytes ?? 0);
    const lastFlush = Math.max(m?.lastFlushAt ?? -Infinity, l?.lastFlushAt ?? -Infinity);
    const next = [m?.nextAlarmAt, l?.nextAlarmAt].filter((v): v is number => typeof v === "number");
    let state = `<span class="ok">ok</span>`;
    if (sh.error !== null) state = `<span class="bad" title="${escapeHtml(sh.error)}">no answer</span>`;
    else if (m?.shutdown) state = `<span class="warn">shut down</span>`;
    else if (m?.lastFlushError || l?.lastFlushError) state = `<span class="bad" title="${escapeHtml(m?.lastFlushError ?? l?.lastFlushError ?? "")}">flush failing</span>`;
    else if (m && m.tenant === null) state = `<span class="dim">idle</span>`;
    const cells = [
      `<td>${sh.shard}</td>`,
      `<td class="n">${m ? num(m.series) : "—"}</td>`,
      `<td class="n">${m ? num(m.chunks) : "—"}</td>`,
      ...(hasLogs ? [`<td class="n">${typeof l?.streams === "number" ? num(l.streams) : "—"}</td>`] : []),
      `<td class="n">${bytes(memory)}</td>`,
      `<td class="n">${bytes(wal)}${m ? ` <span class="dim">(${num(m.walRecords)} rec)</span>` : ""}</td>`,
      `<td class="n">${m ? bytes(m.checkpointBytes) : "—"}</td>`,
      `<td class="n">${m ? rate(ratePerSecond(m.observations.history, now)) : "—"}</td>`,
      `<td class="n">${num(c?.[COUNTER.samplesReceived] ?? 0)}</td>`,
      `<td class="n${discarded > 0 ? " warn" : ""}">${num(discarded)}</td>`,
      `<td>${time(Number.isFinite(lastFlush) ? lastFlush : null)}</td>`,
      `<td>${time(next.length > 0 ? Math.min(...next) : null)}</td>`,
      `<td class="n blocks" data-blocks="${blockError ? "" : b.count}" data-log-blocks="${blockError ? "" : b.logs}">${blockError ? `<span class="bad" title="${escapeHtml(blockError)}">?</span>` : blockCount(b.count, b.logs)}</td>`,
      `<td class="n">${blockError ? "?" : bytes(b.bytes)}</td>`,
      `<td>${state}</td>`,
    ];
    return `<tr class="shard-row" data-tenant="${escapeHtml(row.t.tenant)}" data-shard="${sh.shard}">${cells.join("")}</tr>`;
  });
  return `<table class="shards"><thead><tr>${head.map((h) => `<th${numeric.has(h) ? ` class="n"` : ""}>${h}</th>`).join("")}</tr></thead><tbody>${body.join("")}</tbody></table>`;
}

/** Blocks of both kinds, the log blocks among them named when there are any: "5", "5 (2 log)". */
function blockCount(total: number, logs: number): string {
  return logs > 0 ? `${num(total)} <span class="dim">(${num(logs)} log)</span>` : num(total);
}

/** A duration as an operator writes it, in its two largest units: 30s, 15m, 24h, 7d, 1d12h. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return "0";
  const units: [string, number][] = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]];
  let out = "";
  let used = 0;
  let rest = ms;
  for (const [u, n] of units) {
    const q = Math.floor(rest / n);
    if (q > 0) {
      out += `${q}${u}`;
      rest -= q * n;
      used++;
    }
    if (used === 2 || (used > 0 && rest === 0)) break;
  }
  return out || `${ms}ms`;
}

/**
 * What the tenant's control object reports: retention (period, last and next sweep,
 * blocks and bytes deleted, failures), open live tails against the cap, and the HA
 * clusters with their elected replicas.
 */
function controlPanel(t: TenantSnapshot): string {
  const c = t.control;
  if (c === null) return "";
  const tenant = escapeHtml(t.tenant);
  const parts: string[] = [];
  if (t.ringError !== null) parts.push(`<p class="bad small">The tenant's ring could not be read; its configured shard count is shown: <code>${escapeHtml(t.ringError)}</code></p>`);
  if (c.error !== null) parts.push(`<p class="bad small">The tenant's control object did not answer in full: <code>${escapeHtml(c.error)}</code></p>`);

  const period = c.limits.retentionPeriodMs;
  const r = c.retention;
  const facts: string[] = [`<span class="fact"><span class="k">retention</span> <span class="retention-period">${period > 0 ? duration(period) : "forever"}</span></span>`];
  if (r !== null) {
    facts.push(`<span class="fact"><span class="k">last sweep</span> ${time(r.lastSweepAt)}</span>`);
    facts.push(`<span class="fact"><span class="k">next sweep</span> ${time(r.nextSweepAt)}</span>`);
    facts.push(
      `<span class="fact retention-deleted" data-metrics-blocks="${r.deleted.metrics.blocks}" data-logs-blocks="${r.deleted.logs.blocks}"><span class="k">deleted</span> ${num(r.deleted.metrics.blocks)} metric blocks (${bytes(r.deleted.metrics.bytes)}), ${num(r.deleted.logs.blocks)} log blocks (${bytes(r.deleted.logs.bytes)})</span>`,
    );
    const failed = r.failures > 0 ? `<span class="warn">${num(r.failures)}</span>` : "0";
    facts.push(`<span class="fact"><span class="k">sweeps failed</span> ${failed}${r.lastError ? ` <span class="bad" title="${escapeHtml(r.lastError)}">last: ${escapeHtml(r.lastError)}</span>` : ""}</span>`);
  }
  if (c.tails !== null) {
    const full = c.tails.open >= c.limits.maxConcurrentTailRequests;
    facts.push(
      `<span class="fact"><span class="k">live tails</span> <span class="tails${full ? " warn" : ""}" data-open="${c.tails.open}" data-limit="${c.limits.maxConcurrentTailRequests}">${num(c.tails.open)} / ${num(c.limits.maxConcurrentTailRequests)}</span></span>`,
    );
  }
  parts.push(`<div class="facts">${facts.join("")}</div>`);

  const ha = c.ha;
  if (ha !== null && (c.limits.acceptHaSamples || ha.clusters.length > 0 || ha.nonHaSamples > 0)) {
    const rows = ha.clusters.map(
      (cl) =>
        `<tr class="ha-row" data-tenant="${tenant}" data-cluster="${escapeHtml(cl.cluster)}"><td>${escapeHtml(cl.cluster)}</td><td>${cl.replica === "" ? `<span class="dim">— (forgotten after 30 min of silence)</span>` : escapeHtml(cl.replica)}</td><td>${cl.replica === "" ? time(null) : time(cl.receivedAtMs)}</td><td class="n">${num(cl.electedReplicaChanges)}</td><td class="n">${num(cl.dedupedSamples)}</td></tr>`,
    );
    const head = `<tr><th>HA cluster</th><th>elected replica</th><th>last heard</th><th class="n">replica changes</th><th class="n">deduped samples</th></tr>`;
    const body = rows.length > 0 ? rows.join("") : `<tr><td colspan="5" class="dim">No HA cluster has sent yet.</td></tr>`;
    parts.push(`<table class="ha"><thead>${head}</thead><tbody>${body}</tbody></table>`);
    parts.push(`<p class="dim small">Samples without both HA labels (accepted as they are): <span class="non-ha">${num(ha.nonHaSamples)}</span></p>`);
  }
  return `<div class="control" data-tenant="${tenant}">${parts.join("")}</div>`;
}

function errorList(row: TenantRow): string {
  if (row.errors.length === 0) return `<p class="dim small">No recent errors.</p>`;
  const items = row.errors
    .slice(0, 12)
    .map((e) => `<li><span class="kind ${e.kind}">${e.kind}</span> ${time(e.at)} <span class="dim">shard ${e.shard}${e.source === "logs" ? " (logs)" : ""}</span> <code>${escapeHtml(e.message)}</code></li>`);
  return `<details class="errors"${row.errors.some((e) => e.kind !== "rejected") ? " open" : ""}><summary>Recent errors (${row.errors.length})</summary><ul>${items.join("")}</ul></details>`;
}

export function renderStatusPage(input: StatusPageInput): string {
  const { snapshot, now } = input;
  const blocksOf = (tenant: string): TenantBlocks => ({ metrics: input.blocks.get(tenant), logs: input.logBlocks.get(tenant) });
  const rows = snapshot.tenants.map((t) => summarize(t, blocksOf(t.tenant), now));
  const total = rows.reduce(
    (a, r) => ({
      series: a.series + r.series,
      streams: a.streams + (r.streams ?? 0),
      rate: a.rate + r.rate,
      memory: a.memory + r.headBytes,
      wal: a.wal + r.walBytes,
      blocks: a.blocks + r.blocks,
      blockBytes: a.blockBytes + r.blockBytes,
      logBlocks: a.logBlocks + r.logBlocks,
    }),
    { series: 0, streams: 0, rate: 0, memory: 0, wal: 0, blocks: 0, blockBytes: 0, logBlocks: 0 },
  );
  const failures = snapshot.failures.metrics + snapshot.failures.logs;
  const controlFailures = snapshot.failures.control;
  const tiles = [
    ["tenants", num(rows.length)],
    ["series", num(total.series)],
    ["streams", num(total.streams)],
    ["samples/s", rate(total.rate)],
    ["memory", bytes(total.memory)],
    ["WAL", bytes(total.wal)],
    [
      "blocks in R2",
      `${num(total.blocks)} <span class="dim">/ ${bytes(total.blockBytes)}</span>`,
      `<div class="sub" data-metric-blocks="${total.blocks - total.logBlocks}" data-log-blocks="${total.logBlocks}">${num(total.blocks - total.logBlocks)} metric · ${num(total.logBlocks)} log</div>`,
    ],
  ]
    .map(([k, v, sub]) => `<div class="tile"><div class="v">${v}</div><div class="k">${k}</div>${sub ?? ""}</div>`)
    .join("");
  const summary = rows
    .map(
      (r, i) =>
        `<tr class="tenant-row" data-tenant="${escapeHtml(r.t.tenant)}"><td><span class="dot" style="background:${PALETTE[i % PALETTE.length]}"></span><a href="#tenant-${encodeURIComponent(r.t.tenant)}">${escapeHtml(r.t.tenant)}</a></td><td class="n">${r.t.shards.length}</td><td class="n">${num(r.series)}</td><td class="n">${r.streams === null ? "—" : num(r.streams)}</td><td class="n">${rate(r.rate)}</td><td class="n">${num(r.received)}</td><td class="n${r.discarded > 0 ? " warn" : ""}">${num(r.discarded)}</td><td class="n">${r.lines === null ? "—" : num(r.lines)}</td><td class="n">${bytes(r.headBytes)}</td><td class="n">${bytes(r.walBytes)}</td><td class="n">${blockCount(r.blocks, r.logBlocks)}</td><td class="n">${bytes(r.blockBytes)}</td><td class="n">${r.errors.length > 0 ? `<span class="warn">${r.errors.length}</span>` : "0"}</td></tr>`,
    )
    .join("");
  const sections = rows
    .map(
      (r) =>
        `<section class="tenant" id="tenant-${escapeHtml(encodeURIComponent(r.t.tenant))}"><h2>${escapeHtml(r.t.tenant)} <span class="dim small">${r.t.shards.length} shards · ${num(r.series)} series · ${rate(r.rate)} samples/s</span></h2>${shardTable(r, blocksOf(r.t.tenant), input.blockErrors.get(r.t.tenant), now)}${controlPanel(r.t)}${errorList(r)}</section>`,
    )
    .join("");
  const warn =
    (failures > 0 ? `<p class="banner bad">${failures} shard(s) did not answer this collection; their rows say why.</p>` : "") +
    (controlFailures > 0 ? `<p class="banner bad">${controlFailures} tenant control object(s) did not answer in full; their tenants' sections say why.</p>` : "");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-ingester status</title>
<style>${CSS}</style></head>
<body>
<header><h1>edge-ingester</h1><span class="dim">collected ${time(now)} · isolate ${escapeHtml(input.isolate)} · <a href="/metrics">/metrics</a> · <a href="/distributor/all_user_stats">all_user_stats</a></span>
<label class="refresh"><input type="checkbox" id="auto"> auto-refresh 10s</label></header>
<main>
${warn}
<div class="tiles">${tiles}</div>
<section class="chart"><h2>Ingestion rate, last hour <span class="dim small">per-minute counts kept by each shard</span></h2>${renderChart(rows, now)}</section>
<section><h2>Tenants</h2>
<table class="tenants"><thead><tr><th>tenant</th>${["shards", "series", "streams", "samples/s", "received", "discarded", "lines", "memory", "WAL", "blocks", "block bytes", "errors"].map((h) => `<th class="n">${h}</th>`).join("")}</tr></thead>
<tbody>${summary || `<tr><td colspan="13" class="dim">No tenant has written yet.</td></tr>`}</tbody></table></section>
${sections}
</main>
<script>${SCRIPT}</script>
</body></html>
`;
}

const CSS = `
:root{--fg:#1d2330;--dim:#6b7385;--line:#e3e6ec;--bg:#f7f8fa;--card:#fff;--ok:#1f9d55;--warn:#b7791f;--bad:#d0344a}
*{box-sizing:border-box}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:14px;align-items:baseline;padding:10px 18px;background:#1d2330;color:#fff}
header h1{font-size:16px;margin:0}
header .dim{color:#b8bfcc}header a{color:#b8d0ff}
.refresh{margin-left:auto;color:#b8bfcc}
main{padding:12px 18px;max-width:1400px}
h2{font-size:14px;margin:18px 0 6px}
.tiles{display:flex;flex-wrap:wrap;gap:8px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:110px}
.tile .v{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}.tile .sub{font-size:11px;color:var(--dim)}.tile .k{color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.04em}
section.chart,section.tenant{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:4px 12px 10px;margin-top:12px}
#rate-chart{width:100%;height:220px;display:block}
#rate-chart .grid{stroke:var(--line);stroke-width:1}#rate-chart .frame{fill:none;stroke:#c9ced8}
#rate-chart .axis{fill:var(--dim);font-size:11px}
#rate-chart .series{fill:none;stroke-width:2;stroke-linejoin:round;vector-effect:non-scaling-stroke}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:var(--dim);margin-top:4px}.key svg{vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;width:100%;background:var(--card);font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-weight:600;color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.03em;background:#fafbfc}
td.n,th.n{text-align:right}
tr:hover td{background:#f3f6fb}
.dim{color:var(--dim)}.small{font-size:12px;font-weight:400}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.banner{padding:6px 10px;border:1px solid var(--bad);border-radius:6px;background:#fff5f6}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}
a{color:#2f6fdf;text-decoration:none}a:hover{text-decoration:underline}
div.control{margin-top:8px}
.facts{display:flex;flex-wrap:wrap;gap:6px 18px;margin:4px 0}.fact .k{color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.03em;margin-right:4px}
table.ha{margin-top:6px}
details.errors{margin-top:6px}details.errors ul{margin:4px 0;padding-left:18px}
details.errors li{margin:2px 0}details.errors code{white-space:pre-wrap;word-break:break-word;font-size:12px}
.kind{display:inline-block;min-width:58px;font-size:11px;text-transform:uppercase;font-weight:600}
.kind.push,.kind.flush{color:var(--bad)}.kind.rejected{color:var(--warn)}
time{font-variant-numeric:tabular-nums}
`;

// Relative times ("12s ago", "in 25s") from data-ms, each in the unit its rounded value
// fits (59m 50s is "1h", not "60m"), and an opt-in reload every 10 s
// (remembered in the URL hash, so a reload keeps it on).
const SCRIPT = `
(function(){
  function rel(ms){var d=Math.round((ms-Date.now())/1000),a=Math.abs(d),s;
    if(a<60)s=a+"s";else if(a<3570)s=Math.round(a/60)+"m";else if(a<84600)s=Math.round(a/3600)+"h";else s=Math.round(a/86400)+"d";
    return d<=0?s+" ago":"in "+s;}
  function tick(){var ts=document.querySelectorAll("time[data-ms]");for(var i=0;i<ts.length;i++){ts[i].textContent=rel(+ts[i].getAttribute("data-ms"));}}
  tick();setInterval(tick,1000);
  var box=document.getElementById("auto"),timer=null;
  function set(on){if(timer){clearTimeout(timer);timer=null;}if(on)timer=setTimeout(function(){location.reload();},10000);}
  box.checked=location.hash==="#auto";set(box.checked);
  box.addEventListener("change",function(){history.replaceState(null,"",box.checked?"#auto":location.pathname);set(box.checked);});
})();
`;
