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

const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);
const builder = new WalRecordBuilder();
let epoch = 0;
// Per-sample decision of the current push, reused across pushes.
let accepted = new Uint8Array(4096);

const enum Decision {
  Skip = 0,
  Append = 1,
}

export function appendPush(head: Head, wal: Wal, push: ShardPush, now: number): ShardPushResult {
  const { keys, counts, created, timestamps, values } = push;
  const window = push.outOfOrderTimeWindowMs;
  head.maxSamplesPerChunk = push.maxSamplesPerChunk;
  head.maxChunkAgeMs = push.maxChunkAgeMs;
  epoch++;
  builder.reset();
  if (accepted.length < timestamps.length) accepted = new Uint8Array(timestamps.length * 2);

  const seriesOf: MemSeries[] = new Array(keys.length);
  const ctAccepted = created ? new Uint8Array(keys.length) : null;
  let pending: Map<string, MemSeries> | null = null;
  let nextId = head.nextId;
  let written = 0;
  const rejected = new Map<Reason, number>();
  let firstError: string | null = null;
  const reject = (reason: Reason, message: () => string) => {
    rejected.set(reason, (rejected.get(reason) ?? 0) + 1);
    if (firstError === null) firstError = message();
  };

  let off = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const n = counts[i];
    let s = head.byKey.get(key) ?? pending?.get(key);
    if (s === undefined) {
      s = new MemSeries(nextId++, key, labelsFromKey(key));
      (pending ??= new Map()).set(key, s);
      builder.addSeries(s.id, key);
    }
    seriesOf[i] = s;
    if (s.stageEpoch !== epoch) {
      s.stageEpoch = epoch;
      s.stageT = s.lastT;
      s.stageHi = s.lastHi;
      s.stageLo = s.lastLo;
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
      scratch[0] = values[j];
      if (words[1] === QUIET_STALE_HI && words[0] === STALE_NAN_LO) words[1] = STALE_NAN_HI; // see series.ts
      const hi = words[1];
      const lo = words[0];
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
        else reject(Reason.SampleDuplicateTimestamp, () => duplicateMessage(s!, t));
      } else if (window > 0 && t >= s.stageT - window) {
        const existing = s.bitsAt(t);
        if (existing === null) {
          accepted[j] = Decision.Append;
          appended++;
          written++;
        } else if (existing[0] === hi && existing[1] === lo) written++;
        else reject(Reason.SampleDuplicateTimestamp, () => duplicateMessage(s!, t));
      } else if (window > 0) {
        reject(Reason.SampleTooOld, () =>
          `too old sample: timestamp ${iso(t)} is more than the out-of-order window of ${window / 1000}s (outOfOrderTimeWindowMs) older than the series' newest sample ${iso(s!.stageT)}; series: '${formatLabels(s!.labels)}' (${Reason.SampleTooOld})`,
        );
      } else {
        reject(Reason.SampleOutOfOrder, () =>
          `out of order sample: timestamp ${iso(t)} is older than the series' newest sample ${iso(s!.stageT)} and out-of-order samples are not allowed (outOfOrderTimeWindowMs=0); series: '${formatLabels(s!.labels)}' (${Reason.SampleOutOfOrder})`,
        );
      }
    }

    if (appended > 0) {
      builder.beginSamples(s.id, appended);
      if (ctAccepted !== null && ctAccepted[i]) builder.addSample(created![i], 0);
      for (let j = off; j < off + n; j++) if (accepted[j] === Decision.Append) builder.addSample(timestamps[j], values[j]);
    }
    off += n;
  }

  for (const m of push.metadata) {
    const old = head.metadata.get(m.metricFamilyName);
    if (!old || old.type !== m.type || old.help !== m.help || old.unit !== m.unit) builder.addMetadata(m);
  }

  // Commit: WAL first. Nothing above touched the head except staging fields.
  if (!builder.empty) wal.append(builder.build());

  if (pending !== null) {
    for (const s of pending.values()) {
      head.insertSeries(s);
      head.bytesEstimate += 200 + s.key.length * 2;
    }
  }
  for (const m of push.metadata) head.metadata.set(m.metricFamilyName, m);
  const maxSamples = head.maxSamplesPerChunk;
  const maxAge = head.maxChunkAgeMs;
  let appendedTotal = 0;
  off = 0;
  for (let i = 0; i < keys.length; i++) {
    const s = seriesOf[i];
    const n = counts[i];
    s.lastAppendAt = now;
    if (ctAccepted !== null && ctAccepted[i]) {
      s.appendAccepted(created![i], 0, maxSamples, maxAge);
      appendedTotal++;
    }
    for (let j = off; j < off + n; j++) {
      if (accepted[j] === Decision.Append) {
        s.appendAccepted(timestamps[j], values[j], maxSamples, maxAge);
        appendedTotal++;
      }
    }
    off += n;
  }
  head.samplesAppended += appendedTotal;
  head.bytesEstimate += appendedTotal * 2;

  const rejectedList: ReasonCount[] = [];
  for (const [reason, count] of rejected) rejectedList.push({ reason, count });
  return { written, rejected: rejectedList, firstError };
}

function duplicateMessage(s: MemSeries, t: number): string {
  return `duplicate sample for timestamp ${iso(t)}: another sample with the same timestamp and a different value was already ingested; series: '${formatLabels(s.labels)}' (${Reason.SampleDuplicateTimestamp})`;
}
