// The write-ahead log in the Durable Object's SQLite storage. One row per push
// (rows written are what Cloudflare bills), holding typed sub-records:
//
//   row      := crc32c:u32le subrecord*      (checksum of the subrecords)
//   subrecord:= type:u8 payload
//   SERIES(1)  : count:uvarint { id:uvarint key:string }          new series, once each
//   SAMPLES(2) : count:uvarint { id:uvarint n:uvarint { dt:varint v:f64 }* }
//                dt is the delta to the previous timestamp in the record
//   METADATA(3): count:uvarint { type:u8 family:string help:string unit:string }
//   CHUNK(4)   : count:uvarint { id:uvarint mint:varint maxt:varint n:uvarint len:uvarint bytes }
//   LAST(5)    : count:uvarint { id:uvarint t:varint v:f64 }   the series' newest sample
//   OBSERVATIONS(6): count:uvarint { key:string delta:varint } minutes errors
//                the shard's counter changes committed with this row
//                (src/observability/shard.ts writeTallies)
//
// CHUNK and LAST appear only in checkpoints (docs/wal-format.md), OBSERVATIONS only
// in WAL rows: a checkpoint's counts are in the observations row it writes.
//
// Record types are numbered once and never reused. A row larger than SQLite's
// 2 MB row limit is split over consecutive rows with more=1 on all but the last.
// The byte layout is drawn in docs/wal-format.md.

import { ByteReader, ByteWriter, CorruptDataError, concatBytes } from "../model/bytes";
import { crc32c } from "../storage/crc32c";
import type { MetricMetadata, MetricType } from "../proto/types";
import { readTally, type Tally } from "../observability/shard";
import type { SqlExec } from "../observability/rows";

export const enum WalRecordType {
  Series = 1,
  Samples = 2,
  Metadata = 3,
  Chunk = 4,
  Last = 5,
  Observations = 6,
}

/** Below SQLite's 2 MB row limit, with room for the row's other columns. */
export const MAX_ROW_BYTES = 1_900_000;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS wal (seq INTEGER PRIMARY KEY, more INTEGER NOT NULL DEFAULT 0, rec BLOB NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS checkpoint (part INTEGER PRIMARY KEY, rec BLOB NOT NULL)`,
  // Small durable facts: checkpoint_seq, tenant, shard, flush_intent, shutdown.
  `CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value)`,
];

/** Builds one WAL row from the three parts a push accumulates separately. */
export class WalRecordBuilder {
  readonly series = new ByteWriter(1024);
  readonly samples = new ByteWriter(64 * 1024);
  readonly metadata = new ByteWriter(256);
  private out = new ByteWriter(64 * 1024);
  seriesCount = 0;
  sampleSeriesCount = 0;
  metadataCount = 0;
  /** Previous timestamp written in this record, for delta encoding. */
  prevT = 0;
  /**
   * An OBSERVATIONS payload (count first: src/observability/shard.ts writeTallies) to
   * write last in the row, or null. Not data: a builder holding only this is `empty`.
   */
  observations: Uint8Array | null = null;

  reset(): void {
    this.series.reset();
    this.samples.reset();
    this.metadata.reset();
    this.seriesCount = this.sampleSeriesCount = this.metadataCount = 0;
    this.prevT = 0;
    this.observations = null;
  }

  addSeries(id: number, key: string): void {
    this.series.uvarint(id);
    this.series.string(key);
    this.seriesCount++;
  }

  /** Starts a run of n samples of one series; n addSample calls follow. */
  beginSamples(id: number, n: number): void {
    const w = this.samples;
    w.ensure(16); // two varints, one bounds check
    w.uvarintUnchecked(id);
    w.uvarintUnchecked(n);
    this.sampleSeriesCount++;
  }

  addSample(t: number, v: number): void {
    const w = this.samples;
    w.ensure(16); // varint and float64, one bounds check per sample
    w.varintUnchecked(t - this.prevT);
    w.f64Unchecked(v);
    this.prevT = t;
  }

  /**
   * beginSamples(id, 1) and addSample for a series' only sample, given the
   * value's bits (hi:lo words): bit-exact, whatever V8 does to NaNs. Written out
   * without calls in the usual case: it runs once per sample, inside a caller too
   * large for V8 to inline much into.
   */
  addOneSample(id: number, t: number, hi: number, lo: number): void {
    const w = this.samples;
    const dt = t - this.prevT;
    const z = dt >= 0 ? dt * 2 : -dt * 2 - 1;
    if (id > 0x3fff || z > 0x3fff || w.pos + 20 > w.buf.length) {
      this.beginSamples(id, 1);
      this.addSampleBits(t, hi, lo);
      return;
    }
    const b = w.buf;
    let pos = w.pos;
    if (id < 0x80) b[pos++] = id;
    else {
      b[pos++] = (id & 0x7f) | 0x80;
      b[pos++] = id >>> 7;
    }
    b[pos++] = 1;
    if (z < 0x80) b[pos++] = z;
    else {
      b[pos++] = (z & 0x7f) | 0x80;
      b[pos++] = z >>> 7;
    }
    b[pos] = lo & 0xff;
    b[pos + 1] = (lo >>> 8) & 0xff;
    b[pos + 2] = (lo >>> 16) & 0xff;
    b[pos + 3] = lo >>> 24;
    b[pos + 4] = hi & 0xff;
    b[pos + 5] = (hi >>> 8) & 0xff;
    b[pos + 6] = (hi >>> 16) & 0xff;
    b[pos + 7] = hi >>> 24;
    w.pos = pos + 8;
    this.sampleSeriesCount++;
    this.prevT = t;
  }

  /** addSample given the value's bits (hi:lo words): bit-exact, whatever V8 does to NaNs. */
  addSampleBits(t: number, hi: number, lo: number): void {
    const w = this.samples;
    w.ensure(16);
    w.varintUnchecked(t - this.prevT);
    w.u32Unchecked(lo);
    w.u32Unchecked(hi);
    this.prevT = t;
  }

  addMetadata(m: MetricMetadata): void {
    this.metadata.u8(m.type);
    this.metadata.string(m.metricFamilyName);
    this.metadata.string(m.help);
    this.metadata.string(m.unit);
    this.metadataCount++;
  }

  get empty(): boolean {
    return this.seriesCount === 0 && this.sampleSeriesCount === 0 && this.metadataCount === 0;
  }

  /** The row's bytes (a view, valid until the next build). */
  build(): Uint8Array {
    const out = this.out;
    out.reset();
    out.u32(0); // checksum, patched below
    if (this.seriesCount > 0) {
      out.u8(WalRecordType.Series);
      out.uvarint(this.seriesCount);
      out.bytes(this.series.view());
    }
    if (this.metadataCount > 0) {
      out.u8(WalRecordType.Metadata);
      out.uvarint(this.metadataCount);
      out.bytes(this.metadata.view());
    }
    if (this.sampleSeriesCount > 0) {
      out.u8(WalRecordType.Samples);
      out.uvarint(this.sampleSeriesCount);
      out.bytes(this.samples.view());
    }
    if (this.observations !== null) {
      out.u8(WalRecordType.Observations);
      out.bytes(this.observations);
    }
    const rec = out.view();
    new DataView(rec.buffer, rec.byteOffset, 4).setUint32(0, crc32c(rec.subarray(4)), true);
    return rec;
  }
}

/** Callbacks a replay drives, in record order. */
export interface WalVisitor {
  series(id: number, key: string): void;
  metadata(m: MetricMetadata): void;
  /** Called once per sample. */
  sample(id: number, t: number, v: number): void;
  /** A closed, unflushed XOR chunk (checkpoints only). */
  chunk(id: number, mint: number, maxt: number, numSamples: number, data: Uint8Array): void;
  /** The series' newest sample (checkpoints only). */
  last(id: number, t: number, v: number): void;
  /** The shard's counter changes committed with the row; read (and skipped) when absent. */
  observations?(t: Tally): void;
}

export function decodeWalRecord(rec: Uint8Array, visit: WalVisitor): void {
  if (rec.length < 4) throw new CorruptDataError(`corrupt WAL record: ${rec.length} bytes is shorter than its checksum`);
  const want = new DataView(rec.buffer, rec.byteOffset, 4).getUint32(0, true);
  const got = crc32c(rec.subarray(4));
  if (want !== got) throw new CorruptDataError(`corrupt WAL record: checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
  const r = new ByteReader(rec, "WAL record");
  r.pos = 4;
  while (!r.done) {
    const type = r.u8();
    const count = r.uvarint();
    switch (type) {
      case WalRecordType.Series:
        for (let i = 0; i < count; i++) {
          const id = r.uvarint();
          visit.series(id, r.string());
        }
        break;
      case WalRecordType.Metadata:
        for (let i = 0; i < count; i++) {
          const mtype = r.u8() as MetricType;
          const metricFamilyName = r.string();
          const help = r.string();
          visit.metadata({ type: mtype, metricFamilyName, help, unit: r.string() });
        }
        break;
      case WalRecordType.Samples: {
        let t = 0;
        for (let i = 0; i < count; i++) {
          const id = r.uvarint();
          const n = r.uvarint();
          for (let j = 0; j < n; j++) {
            t += r.varint();
            visit.sample(id, t, r.f64());
          }
        }
        break;
      }
      case WalRecordType.Chunk:
        for (let i = 0; i < count; i++) {
          const id = r.uvarint();
          const mint = r.varint();
          const maxt = r.varint();
          const n = r.uvarint();
          visit.chunk(id, mint, maxt, n, r.bytes(r.uvarint()).slice());
        }
        break;
      case WalRecordType.Last:
        for (let i = 0; i < count; i++) {
          const id = r.uvarint();
          const t = r.varint();
          visit.last(id, t, r.f64());
        }
        break;
      case WalRecordType.Observations: {
        const t = readTally(r, count);
        visit.observations?.(t);
        break;
      }
      default:
        throw new CorruptDataError(`corrupt WAL record: unknown record type ${type} at byte ${r.pos - 1}`);
    }
  }
}

/**
 * The WAL and checkpoint tables of one Durable Object. A checkpoint holds the head's
 * unflushed state after a flush; writing it deletes every WAL row it covers, in the
 * same transaction, so replay is: checkpoint parts, then the WAL rows after it.
 */
export class Wal {
  private nextSeq = 1;
  /** WAL records and bytes currently stored (checkpoint excluded). */
  records = 0;
  bytes = 0;
  checkpointBytes = 0;
  /**
   * Runs inside the checkpoint's transaction, after the covered rows are deleted:
   * the shard's observations row must cover what their OBSERVATIONS records counted.
   */
  onCheckpoint: ((upTo: number) => void) | null = null;

  /** `sql`: the storage's, or a RowCountingSql over it (src/observability/rows.ts). */
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly sql: SqlExec = storage.sql,
  ) {
    for (const stmt of SCHEMA) this.sql.exec(stmt);
  }

  /** The sequence number of the last record written (0 when none ever was). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Writes one record (split over rows if needed). Call inside the push's synchronous section. */
  append(rec: Uint8Array): void {
    if (rec.length <= MAX_ROW_BYTES) {
      this.sql.exec("INSERT INTO wal (seq, more, rec) VALUES (?, 0, ?)", this.nextSeq, rec);
      this.nextSeq++;
    } else {
      for (let off = 0; off < rec.length; off += MAX_ROW_BYTES) {
        const end = Math.min(off + MAX_ROW_BYTES, rec.length);
        this.sql.exec("INSERT INTO wal (seq, more, rec) VALUES (?, ?, ?)", this.nextSeq, end < rec.length ? 1 : 0, rec.subarray(off, end));
        this.nextSeq++;
      }
    }
    this.records++;
    this.bytes += rec.length;
  }

  /** Replaces the checkpoint with `parts` and deletes every WAL row written so far, atomically. */
  checkpoint(parts: Uint8Array[]): void {
    const upTo = this.lastSeq;
    this.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM checkpoint");
      parts.forEach((p, i) => this.sql.exec("INSERT INTO checkpoint (part, rec) VALUES (?, ?)", i, p));
      this.sql.exec("DELETE FROM wal WHERE seq <= ?", upTo);
      this.setKv("checkpoint_seq", upTo);
      this.onCheckpoint?.(upTo);
    });
    this.records = 0;
    this.bytes = 0;
    this.checkpointBytes = parts.reduce((n, p) => n + p.length, 0);
  }

  getKv(key: string): string | number | null {
    const rows = this.sql.exec<{ value: string | number }>("SELECT value FROM kv WHERE key = ?", key).toArray();
    return rows.length > 0 ? rows[0].value : null;
  }

  setKv(key: string, value: string | number | null): void {
    if (value === null) this.sql.exec("DELETE FROM kv WHERE key = ?", key);
    else this.sql.exec("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }

  /**
   * Reads the checkpoint, then every WAL record after it, joining split rows.
   * `seq` is the sequence number of the record's last row (0 for checkpoint parts).
   */
  replay(onRecord: (rec: Uint8Array, seq: number) => void): number {
    const cp = this.getKv("checkpoint_seq");
    if (typeof cp === "number") this.nextSeq = cp + 1;
    let n = 0;
    for (const row of this.sql.exec<{ rec: ArrayBuffer }>("SELECT rec FROM checkpoint ORDER BY part")) {
      const rec = new Uint8Array(row.rec);
      this.checkpointBytes += rec.length;
      onRecord(rec, 0);
      n++;
    }
    let parts: Uint8Array[] = [];
    for (const row of this.sql.exec<{ seq: number; more: number; rec: ArrayBuffer }>("SELECT seq, more, rec FROM wal ORDER BY seq")) {
      this.nextSeq = row.seq + 1;
      parts.push(new Uint8Array(row.rec));
      if (row.more) continue;
      const rec = concatBytes(parts);
      parts = [];
      this.records++;
      this.bytes += rec.length;
      onRecord(rec, row.seq);
      n++;
    }
    if (parts.length > 0) throw new Error("corrupt WAL: the last record is incomplete (more=1 on the final row)");
    return n;
  }
}
