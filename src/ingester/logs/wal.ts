// The log shard's WAL records, stored through the metrics ingester's Wal
// (src/ingester/wal.ts: one SQLite row per push, split under the 2 MB row limit,
// checkpoint replacing covered rows in one transaction). Layout (docs/wal-format.md
// has the metric records; these are numbered apart so neither can be read as the other):
//
//   record     := crc32c:u32le type:u8 payload          (checksum of type and payload)
//   BATCH(16)  : a push batch (src/ingester/logs/batch.ts), the accepted entries only
//   OBSERVED_BATCH(18): tally batch                        a BATCH with the shard's counter
//                changes committed with it first (src/observability/shard.ts writeTallies,
//                the payload of the metric WAL's OBSERVATIONS): no row of their own
//   STREAMS(17): more:u8 fragment                          checkpoint only; fragments of
//                one payload follow each other (more=1 on all but the last), so a
//                checkpoint row stays under the row limit whatever one stream holds
//   payload    := count:uvarint stream*
//   stream     := labels:string hasLast:u8 [lastMs:varint lastNs:uvarint lastLine:bytes]
//                 highMs:varint highNs:uvarint chunks:uvarint chunk*
//   chunk      := kind:u8 (0 closed, 1 open) reason:u8 bytes:uvarint data:bytes
//   bytes      := len:uvarint raw
//
// Record types are numbered once and never reused.

import { ByteReader, ByteWriter, CorruptDataError, concatBytes } from "../../model/bytes";
import { crc32c } from "../../storage/crc32c";
import { MAX_ROW_BYTES } from "../wal";
import { readTally, type Tally } from "../../observability/shard";
import type { LogHead } from "./head";
import { LogFlushReason, type LogStream } from "./stream";

export const enum LogWalRecordType {
  Batch = 16,
  Streams = 17,
  ObservedBatch = 18,
}

const REASONS: LogFlushReason[] = [LogFlushReason.Full, LogFlushReason.MaxAge, LogFlushReason.Idle, LogFlushReason.Forced];
const reasonCode = (r: LogFlushReason): number => REASONS.indexOf(r);

function sealed(w: ByteWriter): Uint8Array {
  const rec = w.finish();
  new DataView(rec.buffer, rec.byteOffset, 4).setUint32(0, crc32c(rec.subarray(4)), true);
  return rec;
}

/** The WAL record of a committed push: its batch bytes behind a checksum and type. */
export function encodeBatchRecord(batch: Uint8Array): Uint8Array {
  const rec = new Uint8Array(5 + batch.length);
  rec[4] = LogWalRecordType.Batch;
  rec.set(batch, 5);
  new DataView(rec.buffer, 0, 4).setUint32(0, crc32c(rec.subarray(4)), true);
  return rec;
}

/** The WAL record of a committed push carrying the shard's counts: `observations` (writeTallies bytes), then the batch. */
export function encodeObservedBatchRecord(batch: Uint8Array, observations: Uint8Array): Uint8Array {
  const rec = new Uint8Array(5 + observations.length + batch.length);
  rec[4] = LogWalRecordType.ObservedBatch;
  rec.set(observations, 5);
  rec.set(batch, 5 + observations.length);
  new DataView(rec.buffer, 0, 4).setUint32(0, crc32c(rec.subarray(4)), true);
  return rec;
}

/** One stream as a checkpoint restores it. Byte arrays are views into the record. */
export interface CheckpointStream {
  labels: string;
  hasLast: boolean;
  lastMs: number;
  lastNs: number;
  lastLine: Uint8Array;
  highMs: number;
  highNs: number;
  chunks: { open: boolean; reason: LogFlushReason; bytes: number; data: Uint8Array }[];
}

export interface LogWalVisitor {
  /** A committed push's batch (src/ingester/logs/batch.ts bytes, a view into the record). */
  batch(batch: Uint8Array): void;
  /** A stream of a checkpoint. */
  stream(s: CheckpointStream): void;
  /** The shard's counter changes committed with the batch that follows (OBSERVED_BATCH); read and skipped when absent. */
  observations?(t: Tally): void;
}

/**
 * Decodes records in order. Stateful: a checkpoint payload arrives in fragments,
 * joined here. Throws CorruptDataError on a bad checksum, type or layout.
 */
export class LogWalDecoder {
  private fragments: Uint8Array[] = [];

  constructor(private readonly visit: LogWalVisitor) {}

  record(rec: Uint8Array): void {
    if (rec.length < 5) throw new CorruptDataError(`corrupt log WAL record: ${rec.length} bytes is shorter than its header`);
    const want = new DataView(rec.buffer, rec.byteOffset, 4).getUint32(0, true);
    const got = crc32c(rec.subarray(4));
    if (want !== got) throw new CorruptDataError(`corrupt log WAL record: checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
    const type = rec[4];
    if (type === LogWalRecordType.Batch) {
      if (this.fragments.length > 0) throw new CorruptDataError("corrupt log WAL: a batch record inside an unfinished checkpoint payload");
      this.visit.batch(rec.subarray(5));
      return;
    }
    if (type === LogWalRecordType.ObservedBatch) {
      if (this.fragments.length > 0) throw new CorruptDataError("corrupt log WAL: a batch record inside an unfinished checkpoint payload");
      const r = new ByteReader(rec.subarray(5), "log WAL observations");
      const t = readTally(r, r.uvarint());
      this.visit.observations?.(t);
      this.visit.batch(rec.subarray(5 + r.pos));
      return;
    }
    if (type !== LogWalRecordType.Streams) throw new CorruptDataError(`corrupt log WAL record: unknown record type ${type}`);
    if (rec.length < 6) throw new CorruptDataError("corrupt log WAL record: checkpoint fragment without its flag");
    this.fragments.push(rec.subarray(6));
    if (rec[5] === 1) return;
    const payload = concatBytes(this.fragments);
    this.fragments = [];
    this.decodeStreams(payload);
  }

  /** Call after the last record: a checkpoint cut short is corruption, not an empty state. */
  end(): void {
    if (this.fragments.length > 0) throw new CorruptDataError("corrupt log WAL: the checkpoint's last fragment is missing");
  }

  private decodeStreams(payload: Uint8Array): void {
    const r = new ByteReader(payload, "log checkpoint");
    const n = r.uvarint();
    for (let i = 0; i < n; i++) {
      const labels = r.string();
      const hasLast = r.u8() === 1;
      let lastMs = 0;
      let lastNs = 0;
      let lastLine: Uint8Array = new Uint8Array(0);
      if (hasLast) {
        lastMs = r.varint();
        lastNs = r.uvarint();
        lastLine = r.bytes(r.uvarint());
      }
      const highMs = hasLast ? r.varint() : Number.NEGATIVE_INFINITY;
      const highNs = hasLast ? r.uvarint() : 0;
      const nChunks = r.uvarint();
      const chunks: CheckpointStream["chunks"] = [];
      for (let j = 0; j < nChunks; j++) {
        const kind = r.u8();
        const code = r.u8();
        if (kind > 1 || code >= REASONS.length) throw new CorruptDataError(`corrupt log checkpoint: chunk kind ${kind}, reason ${code}`);
        const bytes = r.uvarint();
        chunks.push({ open: kind === 1, reason: REASONS[code], bytes, data: r.bytes(r.uvarint()) });
      }
      this.visit.stream({ labels, hasLast, lastMs, lastNs, lastLine, highMs, highNs, chunks });
    }
    if (!r.done) throw new CorruptDataError(`corrupt log checkpoint: ${payload.length - r.pos} bytes after ${n} streams`);
  }
}

/**
 * The checkpoint written after a flush: every stream's unflushed chunks (closed
 * ones as they are, the open one as a snapshot) and its push-rule state, so that
 * duplicates and the out-of-order window behave the same after a restart.
 * Flushed chunks are in R2 and are left out. Streams are grouped into payloads of
 * about 1 MB, each cut into row-sized fragments.
 */
export function encodeLogCheckpoint(head: LogHead): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const body = new ByteWriter(64 * 1024);
  let group: LogStream[] = [];
  let size = 0;
  const flush = () => {
    if (group.length === 0) return;
    body.reset();
    body.uvarint(group.length);
    for (const s of group) writeStream(body, s);
    fragment(body.view(), parts);
    group = [];
    size = 0;
  };
  for (const s of head.byKey.values()) {
    group.push(s);
    size += s.bytes() + s.labels.length;
    if (size >= 1 << 20) flush();
  }
  flush();
  return parts;
}

function writeStream(w: ByteWriter, s: LogStream): void {
  w.string(s.labels);
  w.u8(s.hasLast ? 1 : 0);
  if (s.hasLast) {
    w.varint(s.lastMs);
    w.uvarint(s.lastNs);
    w.uvarint(s.lastLine.length);
    w.bytes(s.lastLine);
    w.varint(s.highMs);
    w.uvarint(s.highNs);
  }
  const open = s.open !== null && s.open.entries > 0 ? s.open : null;
  let n = open ? 1 : 0;
  for (const c of s.closed) if (c.flushedAt === 0) n++;
  w.uvarint(n);
  for (const c of s.closed) {
    if (c.flushedAt !== 0) continue;
    w.u8(0);
    w.u8(reasonCode(c.reason));
    w.uvarint(c.bytes);
    w.uvarint(c.data.length);
    w.bytes(c.data);
  }
  if (open) {
    const snap = open.snapshot();
    w.u8(1);
    w.u8(0);
    w.uvarint(open.uncompressedBytes);
    w.uvarint(snap.length);
    w.bytes(snap);
  }
}

const FRAGMENT_BYTES = MAX_ROW_BYTES - 64;

function fragment(payload: Uint8Array, out: Uint8Array[]): void {
  for (let off = 0; off === 0 || off < payload.length; off += FRAGMENT_BYTES) {
    const end = Math.min(off + FRAGMENT_BYTES, payload.length);
    const w = new ByteWriter(end - off + 6);
    w.u32(0);
    w.u8(LogWalRecordType.Streams);
    w.u8(end < payload.length ? 1 : 0);
    w.bytes(payload.subarray(off, end));
    out.push(sealed(w));
  }
}
