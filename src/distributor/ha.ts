// HA-pair de-duplication, after Cortex's HA tracker (pkg/ha/ha_tracker.go) and its
// distributor (Distributor.Push, checkSample, findHALabels). A Prometheus HA pair
// scrapes the same targets and sends the same series, labelled with the same
// cluster and different replicas. For each (tenant, cluster) one replica is elected;
// its requests are stored without the replica label (so both replicas' series are
// one series), the other's are answered 202 and dropped. If the elected replica
// sends nothing for the failover timeout, the next replica to send is elected.
//
// Where the state lives: the tenant's control Durable Object (durable-objects/
// tenant.ts) holds the elections; it is single-threaded, so each check is a
// compare-and-set without a retry loop (Cortex CASes a KV store). Each isolate
// caches what the DO answered, as Cortex's distributors cache elections they watch:
//
// - the elected replica is accepted from the cache for updateTimeout + jitter after
//   the DO last heard from it, then the DO is asked again, which refreshes its
//   "received at". So while the elected replica sends, the DO's "received at" is at
//   most updateTimeout + jitterMax old, and a failover timeout longer than that (we
//   enforce failover >= update + jitterMax + 1 s, Cortex's config check) never
//   elects the other replica while the elected one still sends;
// - another replica is refused from the cache only while the DO would refuse it too:
//   for failoverTimeout minus the elected replica's silence as the DO last reported
//   it (no switch can happen earlier), and never longer than updateTimeout.
//
// The one window where both replicas are stored is Cortex's too: after a failover,
// an isolate that cached the old replica as elected keeps accepting it for up to
// updateTimeout + jitter. Both replicas' samples then land on the same series (the
// replica label is gone); the ingesters keep one value per timestamp.
//
// Durations, never timestamps, cross between the DO and the isolate, so the two
// clocks need not agree.

import type { Limits } from "../config/limits";
import { HttpError } from "../http/errors";
import type { DecodedWrite } from "../proto/types";
import { Reason } from "../model/errors";
import { recordDistributorDiscards } from "../observability/distributor";
import { tenantReports, tenantStub } from "./tenant_ring";

/** Elections not refreshed for this long are forgotten (Cortex marks them deleted after 30 min). */
export const HA_CLEANUP_AFTER_MS = 30 * 60_000;

/** Cortex rejects failover_timeout < update_timeout + update_timeout_jitter_max + 1s; we raise it to that instead. */
export function effectiveFailoverTimeoutMs(limits: Pick<Limits, "haFailoverTimeoutMs" | "haUpdateTimeoutMs" | "haUpdateTimeoutJitterMaxMs">): number {
  return Math.max(limits.haFailoverTimeoutMs, limits.haUpdateTimeoutMs + limits.haUpdateTimeoutJitterMaxMs + 1000);
}

// ---- The election (pure: the tenant DO runs it, tests drive it directly) ----

/** The elected replica of one (tenant, cluster), as the tenant DO stores it. */
export interface HaElection {
  replica: string;
  /** When the DO last heard from the elected replica (its clock). Cortex's ReplicaDesc.ReceivedAt. */
  receivedAt: number;
  /** When this replica was elected. */
  electedAt: number;
}

export type ElectionOutcome =
  | { accepted: true; election: HaElection; changed: boolean }
  | { accepted: false; election: HaElection };

/**
 * Cortex's checkKVStore callback: the elected replica is accepted (and its
 * receivedAt refreshed); another is refused until the elected one has been silent
 * for `failoverTimeoutMs`, and then elected.
 */
export function elect(current: HaElection | undefined, replica: string, now: number, failoverTimeoutMs: number): ElectionOutcome {
  if (current !== undefined) {
    if (current.replica === replica) return { accepted: true, election: { ...current, receivedAt: Math.max(current.receivedAt, now) }, changed: false };
    if (now - current.receivedAt < failoverTimeoutMs) return { accepted: false, election: current };
  }
  return { accepted: true, election: { replica, receivedAt: now, electedAt: now }, changed: current !== undefined };
}

// ---- The tenant DO's RPC shapes ----

export interface HaCheckRequest {
  tenant: string;
  cluster: string;
  replica: string;
  /** Samples of the request: counted as deduped if it is refused. */
  samples: number;
  failoverTimeoutMs: number;
  /** haMaxClusters; 0: no limit. */
  maxClusters: number;
}

export interface HaCheckAnswer {
  accepted: boolean;
  /** The elected replica after this check. */
  elected: string;
  /** How long ago (DO clock) the DO last heard from the elected replica. */
  receivedAgoMs: number;
  /** Refused because the tenant already has maxClusters clusters (Cortex tooManyClustersError). */
  tooManyClusters: boolean;
}

/** One cluster's election and counters, for /metrics (Cortex's ha_tracker and distributor metrics). */
export interface HaClusterStats {
  cluster: string;
  /** cortex_ha_tracker_elected_replica_status{user,cluster,replica}; "" once forgotten. */
  replica: string;
  /** cortex_ha_tracker_elected_replica_timestamp_seconds (ms here); 0 once forgotten. */
  receivedAtMs: number;
  /** cortex_ha_tracker_elected_replica_changes_total{user,cluster}. */
  electedReplicaChanges: number;
  /** cortex_distributor_deduped_samples_total{user,cluster}. */
  dedupedSamples: number;
}

export interface HaStats {
  clusters: HaClusterStats[];
  /** cortex_distributor_non_ha_samples_received_total{user}: samples of an HA tenant without both labels. */
  nonHaSamples: number;
}

// ---- The distributor side ----

/** Cortex's findHALabels: the cluster and replica label values of one series ("" when absent). */
export function findHaLabels(labels: readonly string[], clusterLabel: string, replicaLabel: string): { cluster: string; replica: string } {
  let cluster = "";
  let replica = "";
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i] === clusterLabel) cluster = labels[i + 1];
    else if (labels[i] === replicaLabel) replica = labels[i + 1];
  }
  return { cluster, replica };
}

/** The labels without `name`: the same array when absent (the decoder's arrays are never shared, so a copy is only made when needed). */
export function withoutLabel(labels: string[], name: string): string[] {
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i] === name) return labels.slice(0, i).concat(labels.slice(i + 2));
  }
  return labels;
}

interface CachedElection {
  elected: string;
  /** Isolate clock: the elected replica is accepted without asking the DO until then. */
  acceptUntil: number;
  /** Isolate clock: other replicas are refused without asking the DO until then. */
  refuseUntil: number;
}

/** Per-isolate cache of the tenant DO's elections. */
export class HaTracker {
  /** This isolate's clock; tests replace it (with the tenant DO's `clock`) to drive failovers. */
  clock: () => number = () => Date.now();
  /** Jitter in [0, 1): tests may pin it. */
  random: () => number = Math.random;
  /** DO calls made by this isolate (tests check the cache saves them). */
  checks = 0;
  private readonly cache = new Map<string, CachedElection>();
  private static readonly MAX_ENTRIES = 10_000;

  /** Whether `replica` of `cluster` is the elected one; throws HttpError for too many clusters or an unreachable DO. */
  async check(env: Env, tenant: string, limits: Limits, cluster: string, replica: string, samples: number): Promise<{ accepted: boolean; elected: string }> {
    const key = `${tenant}\u0000${cluster}`;
    const now = this.clock();
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      if (hit.elected === replica && now < hit.acceptUntil) return { accepted: true, elected: hit.elected };
      if (hit.elected !== replica && now < hit.refuseUntil) {
        // Counted here, reported with this isolate's next call to the tenant DO.
        tenantReports.addDeduped(tenant, cluster, samples);
        return { accepted: false, elected: hit.elected };
      }
    }
    const failover = effectiveFailoverTimeoutMs(limits);
    const stub = tenantStub(env, tenant);
    const report = tenantReports.take(tenant);
    this.checks++;
    let answer: HaCheckAnswer;
    try {
      answer = await stub.checkReplica({ tenant, cluster, replica, samples, failoverTimeoutMs: failover, maxClusters: limits.haMaxClusters }, report);
    } catch (e) {
      tenantReports.restore(tenant, report);
      // Cortex answers 5xx when its KV store fails: the sender retries.
      throw new HttpError(503, `the HA tracker of tenant ${tenant} could not be reached (retry): ${(e as Error).message}`, { "Retry-After": "1" });
    }
    if (answer.tooManyClusters) {
      const message = `too many HA clusters (limit: ${limits.haMaxClusters}, haMaxClusters); cluster ${JSON.stringify(cluster)} was refused`;
      // Mimir counts the request's samples as discarded (reason too_many_ha_clusters); awaited, so
      // counted before the sender sees the 400. No batch exists yet: they go to shard 0.
      await recordDistributorDiscards(env, tenant, [{ reason: Reason.TooManyHaClusters, count: samples }], message);
      throw new HttpError(400, message);
    }
    const jitter = this.random() * limits.haUpdateTimeoutJitterMaxMs;
    if (this.cache.size >= HaTracker.MAX_ENTRIES && !this.cache.has(key)) this.cache.clear();
    this.cache.set(key, {
      elected: answer.elected,
      acceptUntil: now + limits.haUpdateTimeoutMs + jitter - answer.receivedAgoMs,
      refuseUntil: now + Math.min(limits.haUpdateTimeoutMs, failover - answer.receivedAgoMs),
    });
    return { accepted: answer.accepted, elected: answer.elected };
  }

  /** Forgets every cached election (tests: a fresh isolate). */
  clear(): void {
    this.cache.clear();
  }
}

export const haTracker = new HaTracker();

/**
 * The HA step of a push (Cortex Distributor.Push): for a tenant with
 * acceptHaSamples, the first series' cluster and replica labels decide. Both
 * present: the elected replica's request continues with the replica label removed
 * from every series; another replica's request is refused and the message for the
 * 202 answer returned. Otherwise (no HA labels, or only one of them) the request
 * continues unchanged, as Cortex accepts it.
 */
export async function dedupeHaPair(env: Env, tenant: string, limits: Limits, write: DecodedWrite): Promise<string | null> {
  if (!limits.acceptHaSamples || write.series.length === 0) return null;
  const { cluster, replica } = findHaLabels(write.series[0].labels, limits.haClusterLabel, limits.haReplicaLabel);
  // Cortex checkSample: without both labels the request is accepted; so is a replica
  // value too long to be a label (validation refuses it later).
  if (cluster === "" || replica === "" || replica.length > limits.maxLabelValueLength) {
    tenantReports.addNonHa(tenant, write.sampleCount);
    return null;
  }
  const { accepted, elected } = await haTracker.check(env, tenant, limits, cluster, replica, write.sampleCount);
  if (!accepted) return `replicas did not match, rejecting sample: replica=${replica}, elected=${elected}`;
  // Cortex removes the replica label from every series of the request, so both
  // replicas write one series and a failover continues it.
  const name = limits.haReplicaLabel;
  for (const s of write.series) s.labels = withoutLabel(s.labels, name);
  return null;
}
