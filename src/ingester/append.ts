// Appending one push to the head, as Prometheus's head appender does: validate
// every sample against the series' state and stage the accepted ones, commit the
// WAL row, and only then apply to the head. If the WAL write throws, the head is
// untouched (rollback), and the caller answers 5xx so the sender retries.
//
// Ordering rules (Prometheus tsdb): same timestamp and same value bits is a
// harmless duplicate; same timestamp, other value is rejected; older than the
// series' newest sample is rejected unless within the out-of-order window.

import { Reason } from "../model/errors";
import { formatLabels, labelsFromKey } from "../model/labels";
import { iso } from "../distributor/validate";
import type { ReasonCount, ShardPush, ShardPushResult } from "./rpc";
import type { Head } from "./head";
import { MemSeries, QUIET_STALE_HI } from "./series";
import { STALE_NAN_HI, STALE_NAN_LO } from "../storage/chunk/xor";
import { WalRecordBuilder, type Wal } from "./wal";

const builder = new WalRecordBuilder();
let epoch = 0;
// Per-sample decision of the current push, reused across pushes.
let accepted = new Uint8Array(4096);

const enum Decision {
  Skip = 0,
  Append = 1,
}

/** Refused samples of one push, by reason, and the first one's message (only that one is built). */
class Rejections {
  readonly counts = new Map<Reason, number>();
  firstError: string | null = null;

  add(reason: Reason, s: MemSeries, t: number, window: number): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    if (this.firstError === null) this.firstError = rejectionMessage(reason, s, t, window);
  }

  /** All `count` samples of a new series refused: the shard holds its share of the tenant's series limit. */
  addSeriesLimit(key: string, count: number, limit: number): void {
    this.counts.set(Reason.PerUserSeriesLimit, (this.counts.get(Reason.PerUserSeriesLimit) ?? 0) + count);
    if (this.firstError === null) {
      // Mimir's err-mimir-max-series-per-user, with our limit's name.
      this.firstError = `per-user series limit of ${limit} per shard exceeded (maxGlobalSeriesPerUser divided by the tenant's shards, as Mimir divides it over ingesters); new series refused: '${formatLabels(labelsFromKey(key))}' (${Reason.PerUserSeriesLimit})`;
    }
  }
}

/**
 * What staging a push decided, for committing and applying it. The push is
 * handled in three functions (stage, commit, apply) rather than one: V8 inlines
 * the small per-sample calls only into callers of moderate size.
 */
class Staged {
  seriesOf: MemSeries[] = [];
  /** Per series: whether its created-timestamp zero sample was accepted; null without created timestamps. */
  ctAccepted: Uint8Array | null = null;
  /** Series new to the head, inserted after the WAL commit. */
  pending: Map<string, MemSeries> | null = null;
  written = 0;
  appended = 0;
  rejected: Rejections | null = null;
}

/**
 * Called with the push's outcome after staging, before its WAL row is built: may add
 * to the row (the shard's counters ride in it: src/observability/shard.ts), so that
 * they commit with the data they count without a row of their own.
 */
export type BeforeWalCommit = (result: ShardPushResult, seriesCreated: number, rec: WalRecordBuilder) => void;

export function appendPush(head: Head, wal: Wal, push: ShardPush, now: number, beforeCommit?: BeforeWalCommit): ShardPushResult {
  head.maxSamplesPerChunk = push.maxSamplesPerChunk;
  head.maxChunkAgeMs = push.maxChunkAgeMs;
  epoch++;
  builder.reset();
  if (accepted.length < push.timestamps.length) accepted = new Uint8Array(push.timestamps.length * 2);
  // Values are read as their bits (little-endian words: lo, hi), never as numbers:
  // V8 may quiet a signalling NaN (the stale marker) that travels as a number, and
  // the ordering rules compare bits. Word order is the platform's, as everywhere here.
  const values = push.values;
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);

  const staged = stage(head, push, bits);

  for (const m of push.metadata) {
    const old = head.metadata.get(m.metricFamilyName);
    if (!old || old.type !== m.type || old.help !== m.help || old.unit !== m.unit) builder.addMetadata(m);
  }

  const rejectedList: ReasonCount[] = [];
  const rejected = staged.rejected;
  if (rejected !== null) for (const [reason, count] of rejected.counts) rejectedList.push({ reason, count });
  const result: ShardPushResult = { written: staged.written, rejected: rejectedList, firstError: rejected?.firstError ?? null };
  beforeCommit?.(result, staged.pending?.size ?? 0, builder);

  // Commit: WAL first. Nothing above touched the head except staging fields.
  if (!builder.empty) wal.append(builder.build());

  if (staged.pending !== null) {
    for (const s of staged.pending.values()) {
      head.insertSeries(s);
      head.bytesEstimate += 200 + s.key.length * 2;
    }
  }
  for (const m of push.metadata) head.metadata.set(m.metricFamilyName, m);
  apply(head, push, bits, staged, now);
  head.samplesAppended += staged.appended;
  head.bytesEstimate += staged.appended * 2;
  return result;
}

/** Checks every sample against its series' staged state and writes the accepted ones to the WAL builder. */
function stage(head: Head, push: ShardPush, bits: Uint32Array): Staged {
  const { keys, counts, created, timestamps } = push;
  const window = push.outOfOrderTimeWindowMs;
  const staged = new Staged();
  const seriesOf: MemSeries[] = (staged.seriesOf = new Array(keys.length));
  const ctAccepted = (staged.ctAccepted = created ? new Uint8Array(keys.length) : null);
  let nextId = head.nextId;
  let written = 0;

  let off = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const n = counts[i];
    let s = head.byKey.get(key);
    if (s === undefined && staged.pending !== null) s = staged.pending.get(key);
    if (s === undefined) {
      const maxSeries = push.maxSeriesPerShard ?? 0;
      if (maxSeries > 0 && head.byKey.size + (staged.pending?.size ?? 0) >= maxSeries) {
        // seriesOf[i] stays undefined: apply() skips the series.
        (staged.rejected ??= new Rejections()).addSeriesLimit(key, n, maxSeries);
        off += n;
        continue;
      }
      s = new MemSeries(nextId++, key, labelsFromKey(key));
      (staged.pending ??= new Map()).set(key, s);
      builder.addSeries(s.id, key);
    }
    seriesOf[i] = s;
    if (s.stageEpoch !== epoch) {
      s.stageEpoch = epoch;
      s.stageT = s.lastT;
      s.stageHi = s.lastHi;
      s.stageLo = s.lastLo;
    }

    // The usual remote write series: one sample, newer than the series' last.
    if (n === 1 && ctAccepted === null) {
      const t = timestamps[off];
      if (t > s.stageT) {
        const lo = bits[2 * off];
        let hi = bits[2 * off + 1];
        if (hi === QUIET_STALE_HI && lo === STALE_NAN_LO) hi = STALE_NAN_HI; // see series.ts
        accepted[off] = Decision.Append;
        s.stageT = t;
        s.stageHi = hi;
        s.stageLo = lo;
        written++;
        builder.addOneSample(s.id, t, hi, lo);
        off++;
        continue;
      }
    }

    let appended = 0;
    // Remote write 2.0 created timestamp: a zero sample at CT before the first
    // sample, when it is in order (Prometheus's CT zero ingestion; otherwise ignored).
    if (ctAccepted !== null && n > 0) {
      const ct = created![i];
      if (ct > 0 && ct < timestamps[off] && ct > s.stageT) {
        ctAccepted[i] = 1;
        s.stageT = ct;
        s.stageHi = s.stageLo = 0;
        appended++;
      }
    }

    for (let j = off; j < off + n; j++) {
      const t = timestamps[j];
      const lo = bits[2 * j];
      let hi = bits[2 * j + 1];
      if (hi === QUIET_STALE_HI && lo === STALE_NAN_LO) hi = STALE_NAN_HI; // see series.ts
      accepted[j] = Decision.Skip;
      if (t > s.stageT) {
        accepted[j] = Decision.Append;
        s.stageT = t;
        s.stageHi = hi;
        s.stageLo = lo;
        appended++;
        written++;
      } else if (t === s.stageT) {
        if (hi === s.stageHi && lo === s.stageLo) written++;
        else (staged.rejected ??= new Rejections()).add(Reason.SampleDuplicateTimestamp, s, t, window);
      } else if (window > 0 && t >= s.stageT - window) {
        const existing = s.bitsAt(t);
        if (existing === null) {
          accepted[j] = Decision.Append;
          appended++;
          written++;
        } else if (existing[0] === hi && existing[1] === lo) written++;
        else (staged.rejected ??= new Rejections()).add(Reason.SampleDuplicateTimestamp, s, t, window);
      } else {
        (staged.rejected ??= new Rejections()).add(window > 0 ? Reason.SampleTooOld : Reason.SampleOutOfOrder, s, t, window);
      }
    }

    if (appended > 0) {
      builder.beginSamples(s.id, appended);
      if (ctAccepted !== null && ctAccepted[i]) builder.addSampleBits(created![i], 0, 0);
      for (let j = off; j < off + n; j++) {
        if (accepted[j] !== Decision.Append) continue;
        const lo = bits[2 * j];
        let hi = bits[2 * j + 1];
        if (hi === QUIET_STALE_HI && lo === STALE_NAN_LO) hi = STALE_NAN_HI;
        builder.addSampleBits(timestamps[j], hi, lo);
      }
    }
    off += n;
  }
  staged.written = written;
  return staged;
}

/** Appends the staged samples to the head, after the WAL commit. */
function apply(head: Head, push: ShardPush, bits: Uint32Array, staged: Staged, now: number): void {
  const { keys, counts, created, timestamps } = push;
  const { seriesOf, ctAccepted } = staged;
  const maxSamples = head.maxSamplesPerChunk;
  const maxAge = head.maxChunkAgeMs;
  let appended = 0;
  let off = 0;
  for (let i = 0; i < keys.length; i++) {
    const s = seriesOf[i];
    const n = counts[i];
    if (s === undefined) {
      off += n; // refused by the series limit
      continue;
    }
    s.lastAppendAt = now;
    if (ctAccepted !== null && ctAccepted[i]) {
      s.appendAcceptedBits(created![i], 0, 0, maxSamples, maxAge);
      appended++;
    }
    for (let j = off; j < off + n; j++) {
      if (accepted[j] !== Decision.Append) continue;
      const lo = bits[2 * j];
      let hi = bits[2 * j + 1];
      if (hi === QUIET_STALE_HI && lo === STALE_NAN_LO) hi = STALE_NAN_HI;
      s.appendAcceptedBits(timestamps[j], hi, lo, maxSamples, maxAge);
      appended++;
    }
    off += n;
  }
  staged.appended = appended;
}

function rejectionMessage(reason: Reason, s: MemSeries, t: number, window: number): string {
  switch (reason) {
    case Reason.SampleTooOld:
      return `too old sample: timestamp ${iso(t)} is more than the out-of-order window of ${window / 1000}s (outOfOrderTimeWindowMs) older than the series' newest sample ${iso(s.stageT)}; series: '${formatLabels(s.labels)}' (${Reason.SampleTooOld})`;
    case Reason.SampleOutOfOrder:
      return `out of order sample: timestamp ${iso(t)} is older than the series' newest sample ${iso(s.stageT)} and out-of-order samples are not allowed (outOfOrderTimeWindowMs=0); series: '${formatLabels(s.labels)}' (${Reason.SampleOutOfOrder})`;
    default:
      return `duplicate sample for timestamp ${iso(t)}: another sample with the same timestamp and a different value was already ingested; series: '${formatLabels(s.labels)}' (${Reason.SampleDuplicateTimestamp})`;
  }
}
