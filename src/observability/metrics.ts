// GET /metrics: the system's own metrics in the Prometheus text format, named as
// Cortex/Mimir and Loki name theirs where one exists (docs/operations.md lists every
// one). Two sources, kept apart by their labels:
//
// - shard-side (from every shard of every tenant, src/observability/collect.ts):
//   what was received, discarded (by the shard, and by the distributor, whose
//   counts ride to a shard: src/observability/distributor.ts), flushed, held in the
//   head and the WAL. Persisted in each shard's SQLite: monotonic across evictions
//   and restarts, and the same whichever isolate serves the scrape. No `isolate` label.
// - tenant-side (each tenant's control Durable Object, durable-objects/tenant.ts):
//   the HA tracker's elections and counts, the retention sweep's deletions and R2
//   calls, open live tails, query counts and latencies (sent there by every isolate:
//   src/observability/queries.ts). Persisted in its SQLite (tails: leases), so also
//   monotonic and the same from any isolate. No `isolate` label.
// - Worker-side (this isolate's memory, src/observability/requests.ts): requests by
//   route and status with their durations, and the querier's R2 reads. Carry an
//   `isolate` label.
//
// A shard's `user`/`tenant` label follows the source system: Cortex's metrics say
// `user`, Loki's say `tenant`.

import { EXPOSITION_CONTENT_TYPE, Registry } from "./exposition";
import { collectCluster, type ClusterSnapshot, type LogShardView, type TenantSnapshot } from "./collect";
import { collectRequests, isolate } from "./requests";
import { COUNTER, type ShardObservations } from "./shard";
import { writeQueryMetrics, type QueryReport } from "./queries";
import { Reason } from "../model/errors";
import { r2Ops } from "../storage/blocks";
import type { ShardStats } from "../ingester/rpc";

export async function handleMetrics(env: Env): Promise<Response> {
  const snapshot = await collectCluster(env);
  const reg = new Registry();
  writeClusterMetrics(reg, snapshot);
  writeIsolateMetrics(reg);
  return new Response(reg.render(), { headers: { "Content-Type": EXPOSITION_CONTENT_TYPE, "Cache-Control": "no-store" } });
}

/** Counters (a shard's observations, or a control object's) under `${name}/`, by label value. */
type Counted = Pick<ShardObservations, "counters"> | undefined;

function labelled(o: Counted, name: string): [string, number][] {
  if (!o) return [];
  const out: [string, number][] = [];
  const prefix = name + "/";
  for (const [k, v] of Object.entries(o.counters)) if (k.startsWith(prefix)) out.push([k.slice(prefix.length), v]);
  return out;
}

function counter(o: Counted, key: string): number {
  return o?.counters[key] ?? 0;
}

export function writeClusterMetrics(reg: Registry, snap: ClusterSnapshot): void {
  // Registered up front, in this order, so the exposition reads as the write path does.
  const received = reg.counter("cortex_distributor_received_samples_total", "The total number of received samples, excluding rejected and deduped samples.");
  // Cortex counts samples_in as a push arrives, before HA de-duplication and validation: here the
  // sum of what every later step did with them (received, discarded by the distributor or the rate
  // limiter, deduped). Samples a shard refused are in received (the distributor sent them).
  const samplesIn = reg.counter("cortex_distributor_samples_in_total", "The total number of samples that have come in to the distributor, including rejected or deduped samples.");
  const discarded = reg.counter("cortex_discarded_samples_total", "The total number of samples that were discarded, by reason (by the distributor's validation or by the ingester).");
  // Mimir's (pkg/util/validation): exemplars are refused (not stored yet) and counted apart from samples.
  const discardedExemplars = reg.counter("cortex_discarded_exemplars_total", "The total number of exemplars that were discarded.");
  const ingested = reg.counter("cortex_ingester_ingested_samples_total", "The total number of samples ingested (stored), by shard.");
  const ingestFailures = reg.counter("cortex_ingester_ingested_samples_failures_total", "The total number of samples the ingester refused, by shard.");
  // Cortex's distributor and HA tracker (pkg/distributor/distributor.go, pkg/ha/ha_tracker.go), same names, labels and help.
  const deduped = reg.counter("cortex_distributor_deduped_samples_total", "The total number of deduplicated samples.");
  const nonHa = reg.counter("cortex_distributor_non_ha_samples_received_total", "The total number of received samples for a user that has HA tracking turned on, but the sample didn't contain both HA labels.");
  const replicaChanges = reg.counter("cortex_ha_tracker_elected_replica_changes_total", "The total number of times the elected replica has changed for a user ID/cluster.");
  const replicaTimestamp = reg.gauge("cortex_ha_tracker_elected_replica_timestamp_seconds", "The timestamp stored for the currently elected replica, from the KVStore.");
  // Mimir's (opt-in there); one series per cluster. Cortex's cortex_ha_tracker_user_replica_group_count is left
  // out: promtool's lint refuses a gauge named *_count; count by (user) of this series gives it.
  const replicaStatus = reg.gauge("cortex_ha_tracker_elected_replica_status", "The current elected replica for a user ID/cluster.");
  const pushes = reg.counter("cortex_ingester_pushes_total", "Pushes answered by the ingester shard (accepted in whole or in part).");
  const pushFailures = reg.counter("cortex_ingester_push_failures_total", "Pushes the ingester shard refused with a retryable error (shut down, head full, WAL write failed).");
  const memSeries = reg.gauge("cortex_ingester_memory_series", "The current number of series in memory, by shard.");
  const seriesCreated = reg.counter("cortex_ingester_memory_series_created_total", "The total number of series that were created per user.");
  const seriesRemoved = reg.counter("cortex_ingester_memory_series_removed_total", "The total number of series that were removed per user.");
  const memChunks = reg.gauge("cortex_ingester_memory_chunks", "The current number of chunks in memory (open and closed, flushed ones in their retain period included), by shard.");
  const headBytes = reg.gauge("cortex_ingester_memory_bytes", "Bytes of chunk data and series held in the shard's head (an estimate, recomputed at each flush).");
  const walRecords = reg.gauge("cortex_ingester_wal_records", "WAL records (one per push) stored since the last checkpoint, by shard.");
  const walBytes = reg.gauge("cortex_ingester_wal_bytes", "Bytes of WAL records stored since the last checkpoint, by shard.");
  const checkpointBytes = reg.gauge("cortex_ingester_checkpoint_bytes", "Bytes of the shard's last checkpoint.");
  const flushes = reg.counter("cortex_ingester_flushes_total", "Flushes of the shard's head to R2 that completed (whether or not they wrote a block).");
  const flushFailures = reg.counter("cortex_ingester_flush_failures_total", "Flushes that failed (nothing trimmed; retried with backoff).");
  const blocks = reg.counter("cortex_ingester_flushed_blocks_total", "Blocks the shard wrote to R2.");
  const chunksFlushed = reg.counter("cortex_ingester_chunks_flushed_total", "Chunks flushed to R2, by reason (closed, idle, forced), as Loki's loki_ingester_chunks_flushed_total.");
  const lastFlush = reg.gauge("cortex_ingester_last_flush_timestamp_seconds", "When the shard last completed a flush (Unix seconds), since the object last started.");
  const nextFlush = reg.gauge("cortex_ingester_next_flush_timestamp_seconds", "When the shard's alarm will next check for chunks to flush (Unix seconds).");
  const shutdown = reg.gauge("cortex_ingester_shutdown", "1 when the shard refuses writes after POST /shutdown.");
  const users = reg.gauge("cortex_ingester_memory_users", "The current number of tenants with series in memory.");

  const linesReceived = reg.counter("loki_distributor_lines_received_total", "The total number of log lines received, after validation.");
  const bytesReceived = reg.counter("loki_distributor_bytes_received_total", "The total number of uncompressed line bytes received, after validation.");
  const lokiDiscarded = reg.counter("loki_discarded_samples_total", "The total number of log entries discarded, by reason.");
  const lokiDiscardedBytes = reg.counter("loki_discarded_bytes_total", "The total number of bytes of log entries discarded, by reason.");
  const streams = reg.gauge("loki_ingester_memory_streams", "The current number of log streams in memory, by shard.");
  const logChunks = reg.gauge("loki_ingester_memory_chunks", "The current number of log chunks in memory, by shard.");
  const logHeadBytes = reg.gauge("loki_ingester_memory_bytes", "Bytes held in the log shard's head.");
  const logWalBytes = reg.gauge("loki_ingester_wal_bytes", "Bytes of the log shard's WAL since its last checkpoint.");
  const logFlushes = reg.counter("loki_ingester_flushes_total", "Flushes of the log shard's head to R2 that completed.");
  const logFlushFailures = reg.counter("loki_ingester_flush_failures_total", "Flushes of the log shard that failed.");
  const logChunksFlushed = reg.counter("loki_ingester_chunks_flushed_total", "Log chunks flushed to R2, by reason.");
  // Loki's querier gauge (pkg/querier/tail/metrics.go), per tenant here: the tenant DO counts every isolate's tails.
  const tailsActive = reg.gauge("loki_querier_tail_active", "Number of active tailers (open live tails, by tenant, over every isolate).");

  // Retention deletes blocks outright (no deletion marks): Cortex/Mimir's blocks cleaner names, with user and kind labels.
  const blocksCleaned = reg.counter("cortex_compactor_blocks_cleaned_total", "Total number of blocks deleted (by retention, by kind: metrics, logs).");
  const bytesCleaned = reg.counter("cortex_compactor_blocks_cleaned_bytes_total", "Total bytes of the blocks deleted by retention, by kind.");
  const cleanupFailed = reg.counter("cortex_compactor_block_cleanup_failed_total", "Total number of blocks cleanup runs (retention sweeps) failed.");
  const cleanupLastSuccess = reg.gauge("cortex_compactor_block_cleanup_last_successful_run_timestamp_seconds", "Unix timestamp of the last successful blocks cleanup run (retention sweep).");
  const nextSweep = reg.gauge("edge_ingester_retention_next_sweep_timestamp_seconds", "When the tenant's next retention sweep is due (Unix seconds); absent while the tenant has no blocks.");
  const retentionPeriod = reg.gauge("edge_ingester_retention_period_seconds", "The tenant's retentionPeriodMs, in seconds (0: kept forever).");

  const r2 = reg.counter("cortex_r2_operations_total", "R2 calls, by operation; component=ingester|log-ingester are the shards' and compactor the retention sweeps' (persisted), querier is this isolate's reads.");
  const r2Failures = reg.counter("cortex_r2_operation_failures_total", "R2 calls that failed, by operation.");
  const r2Written = reg.counter("cortex_r2_written_bytes_total", "Bytes written to R2 by the shards.");
  const refusals = reg.counter("edge_ingester_rate_limit_refusals_total", "Pushes refused (429) by the tenant's ingestion rate limit (ingestionRate, logIngestionRateBytes).");
  const collectFailures = reg.gauge("edge_ingester_metrics_collection_failed_shards", "Shards that did not answer this scrape (their series are missing from it), by kind.");
  const tenantsGauge = reg.gauge("edge_ingester_tenants", "Tenants listed in R2 (each has written at least once).");

  let activeUsers = 0;
  const queries: QueryReport[] = [];
  tenantsGauge.set({}, snap.tenants.length);
  for (const t of snap.tenants) {
    const user = { user: t.tenant };
    const tenant = { tenant: t.tenant };
    let userHasSeries = false;
    for (const sh of t.shards) {
      const m: ShardStats | null = sh.metrics;
      if (m !== null) {
        const o = m.observations;
        const at = { user: t.tenant, shard: String(sh.shard) };
        const rec = counter(o, COUNTER.samplesReceived);
        received.add(user, rec);
        let inTotal = rec;
        for (const [reason, n] of labelled(o, COUNTER.distributorDiscarded)) {
          if (reason === Reason.ExemplarsUnsupported) {
            discardedExemplars.add({ user: t.tenant, reason }, n);
            continue;
          }
          discarded.add({ user: t.tenant, reason }, n);
          inTotal += n;
        }
        samplesIn.add(user, inTotal);
        let failed = 0;
        for (const [reason, n] of labelled(o, COUNTER.discarded)) {
          discarded.add({ user: t.tenant, reason }, n);
          failed += n;
        }
        ingested.add(at, counter(o, COUNTER.samplesIngested));
        ingestFailures.add(at, failed);
        pushes.add(at, counter(o, COUNTER.pushes));
        pushFailures.add(at, counter(o, COUNTER.pushFailures));
        memSeries.set(at, m.series);
        if (m.series > 0) userHasSeries = true;
        seriesCreated.add(user, counter(o, COUNTER.seriesCreated));
        seriesRemoved.add(user, counter(o, COUNTER.seriesRemoved));
        memChunks.set(at, m.chunks);
        headBytes.set(at, m.headBytes);
        walRecords.set(at, m.walRecords);
        walBytes.set(at, m.walBytes);
        checkpointBytes.set(at, m.checkpointBytes);
        flushes.add(at, counter(o, COUNTER.flushes));
        flushFailures.add(at, counter(o, COUNTER.flushFailures));
        blocks.add(at, counter(o, COUNTER.blocksFlushed));
        for (const [reason, n] of labelled(o, COUNTER.chunksFlushed)) chunksFlushed.add({ user: t.tenant, reason }, n);
        if (m.lastFlushAt !== null) lastFlush.set(at, m.lastFlushAt / 1000);
        if (m.nextAlarmAt !== null) nextFlush.set(at, m.nextAlarmAt / 1000);
        shutdown.set(at, m.shutdown ? 1 : 0);
        writeR2(o, "ingester");
      }
      const l: LogShardView | null = sh.logs;
      if (l !== null) {
        const o = l.observations;
        const at = { tenant: t.tenant, shard: String(sh.shard) };
        // Counters only from persisted observations: a count kept in the object's memory would reset at eviction.
        if (o) {
          linesReceived.add(tenant, counter(o, COUNTER.linesReceived));
          bytesReceived.add(tenant, counter(o, COUNTER.bytesReceived));
          for (const name of [COUNTER.discardedLines, COUNTER.distributorDiscardedLines]) {
            for (const [reason, n] of labelled(o, name)) lokiDiscarded.add({ tenant: t.tenant, reason }, n);
          }
          for (const name of [COUNTER.discardedBytes, COUNTER.distributorDiscardedBytes]) {
            for (const [reason, n] of labelled(o, name)) lokiDiscardedBytes.add({ tenant: t.tenant, reason }, n);
          }
        }
        if (typeof l.streams === "number") streams.set(at, l.streams);
        if (typeof l.chunks === "number") logChunks.set(at, l.chunks);
        if (typeof l.headBytes === "number") logHeadBytes.set(at, l.headBytes);
        if (typeof l.walBytes === "number") logWalBytes.set(at, l.walBytes);
        if (o) {
          logFlushes.add(at, counter(o, COUNTER.flushes));
          logFlushFailures.add(at, counter(o, COUNTER.flushFailures));
          for (const [reason, n] of labelled(o, COUNTER.chunksFlushed)) logChunksFlushed.add({ tenant: t.tenant, reason }, n);
        }
        writeR2(o, "log-ingester");
      }
    }
    if (userHasSeries) activeUsers++;
    writeControl(t);
    // Refused by the ingestion rate limit before any shard was called; counted (persisted) by the tenant's RateLimiter.
    const limited = t.limiter?.discarded.rate_limited;
    if (limited) {
      discarded.add({ user: t.tenant, reason: "rate_limited" }, limited.samples);
      samplesIn.add(user, limited.samples);
      lokiDiscarded.add({ tenant: t.tenant, reason: "rate_limited" }, limited.lines);
      lokiDiscardedBytes.add({ tenant: t.tenant, reason: "rate_limited" }, limited.bytes);
      refusals.add(user, t.limiter!.refusals);
    }
  }
  users.set({}, activeUsers);
  writeQueryMetrics(reg, queries);
  collectFailures.set({ kind: "metrics" }, snap.failures.metrics);
  collectFailures.set({ kind: "logs" }, snap.failures.logs);
  collectFailures.set({ kind: "limiter" }, snap.failures.limiter);
  collectFailures.set({ kind: "control" }, snap.failures.control);

  /** The tenant control object's counts; a part that did not answer is left out, as a shard is. */
  function writeControl(t: TenantSnapshot): void {
    const c = t.control;
    if (c === null) return;
    const user = { user: t.tenant };
    if (c.ha !== null) {
      // As Cortex: the non-HA counter exists for tenants with HA tracking on; the per-cluster
      // counters once a cluster is seen (they outlive its election, forgotten after 30 min).
      if (c.limits.acceptHaSamples || c.ha.nonHaSamples > 0) nonHa.add(user, c.ha.nonHaSamples);
      for (const cl of c.ha.clusters) {
        const at = { user: t.tenant, cluster: cl.cluster };
        deduped.add(at, cl.dedupedSamples);
        // Deduped samples came in too (Cortex counts samples_in before the HA tracker).
        samplesIn.add(user, cl.dedupedSamples);
        replicaChanges.add(at, cl.electedReplicaChanges);
        if (cl.replica === "") continue; // forgotten: Cortex deletes its gauges
        // Cortex sets float64(ReceivedAt / 1000): whole seconds.
        replicaTimestamp.set(at, Math.floor(cl.receivedAtMs / 1000));
        replicaStatus.set({ ...at, replica: cl.replica }, 1);
      }
    }
    if (c.retention !== null) {
      const r = c.retention;
      for (const kind of ["metrics", "logs"] as const) {
        blocksCleaned.add({ user: t.tenant, kind }, r.deleted[kind].blocks);
        bytesCleaned.add({ user: t.tenant, kind }, r.deleted[kind].bytes);
      }
      cleanupFailed.add(user, r.failures);
      // The sweeps' lists and deletes: Mimir's blocks cleaner runs in the compactor.
      writeR2({ counters: r.r2 ?? {} }, "compactor"); // ?? {}: an object not yet redeployed
      if (r.lastSweepAt !== null) cleanupLastSuccess.set(user, r.lastSweepAt / 1000);
      if (r.nextSweepAt !== null) nextSweep.set(user, r.nextSweepAt / 1000);
    }
    retentionPeriod.set(user, c.limits.retentionPeriodMs / 1000);
    if (c.tails !== null) tailsActive.set({ tenant: t.tenant }, c.tails.open);
    if (c.queries !== null) queries.push(c.queries);
  }

  function writeR2(o: Counted, component: string): void {
    for (const [op, n] of labelled(o, COUNTER.r2Ops)) r2.add({ component, op }, n);
    for (const [op, n] of labelled(o, COUNTER.r2Failures)) r2Failures.add({ component, op }, n);
    const written = counter(o, COUNTER.r2BytesWritten);
    if (written > 0) r2Written.add({ component }, written);
  }
}

/**
 * This isolate's own counts. Of the isolate's R2 calls only reads (get, list) are
 * the querier's: puts and deletes are made by shards (counted there), and in
 * workerd a shard may share the Worker's isolate, so reporting them here would
 * count them twice.
 */
export function writeIsolateMetrics(reg: Registry): void {
  collectRequests(reg);
  const id = isolate();
  const r2 = reg.counter("cortex_r2_operations_total", "");
  r2.add({ component: "querier", op: "get", isolate: id }, r2Ops.gets);
  r2.add({ component: "querier", op: "list", isolate: id }, r2Ops.lists);
  reg.counter("cortex_r2_read_bytes_total", "Bytes read from R2 by this isolate's queries.").add({ component: "querier", isolate: id }, r2Ops.bytesRead);
}
