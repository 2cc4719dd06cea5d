// The checkpoint written after each flush: everything the head holds that is not yet
// in R2 (series, metadata, unflushed chunks, out-of-order samples) and each series'
// newest sample, so that the ordering rules survive a restart. Encoded with the WAL's
// record grammar (types 1, 2, 3, 4, 5), split into parts below SQLite's row limit,
// each part self-contained (a series' SERIES record travels with its chunks).

import { ByteWriter } from "../model/bytes";
import { crc32c } from "../storage/crc32c";
import type { Head } from "./head";
import type { MemSeries } from "./series";
import { MAX_ROW_BYTES, WalRecordType } from "./wal";

export function encodeCheckpoint(head: Head): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let batch: MemSeries[] = [];
  let size = 0;
  const flush = (withMetadata: boolean) => {
    if (batch.length === 0 && !withMetadata) return;
    parts.push(encodePart(batch, withMetadata ? head : null));
    batch = [];
    size = 0;
  };
  for (const s of head.byKey.values()) {
    const bytes = s.key.length * 3 + 64 + s.bytes();
    if (size + bytes > MAX_ROW_BYTES * 0.9 && batch.length > 0) flush(parts.length === 0);
    batch.push(s);
    size += bytes;
  }
  flush(parts.length === 0);
  return parts;
}

function encodePart(series: MemSeries[], metadataOf: Head | null): Uint8Array {
  const w = new ByteWriter(64 * 1024);
  w.u32(0);
  if (series.length > 0) {
    w.u8(WalRecordType.Series);
    w.uvarint(series.length);
    for (const s of series) {
      w.uvarint(s.id);
      w.string(s.key);
    }
  }
  if (metadataOf !== null && metadataOf.metadata.size > 0) {
    w.u8(WalRecordType.Metadata);
    w.uvarint(metadataOf.metadata.size);
    for (const m of metadataOf.metadata.values()) {
      w.u8(m.type);
      w.string(m.metricFamilyName);
      w.string(m.help);
      w.string(m.unit);
    }
  }
  let chunks = 0;
  for (const s of series) {
    for (const c of s.closed) if (c.flushedAt === 0) chunks++;
    if (s.open && s.open.numSamples > 0) chunks++;
  }
  if (chunks > 0) {
    w.u8(WalRecordType.Chunk);
    w.uvarint(chunks);
    for (const s of series) {
      for (const c of s.closed) if (c.flushedAt === 0) writeChunk(w, s.id, c.mint, c.maxt, c.numSamples, c.data);
      const open = s.open;
      if (open && open.numSamples > 0) writeChunk(w, s.id, open.minTime, open.maxTime, open.numSamples, open.bytes());
    }
  }
  const withLast = series.filter((s) => s.lastT > -Infinity);
  if (withLast.length > 0) {
    w.u8(WalRecordType.Last);
    w.uvarint(withLast.length);
    const f = new Float64Array(1);
    const words = new Uint32Array(f.buffer);
    for (const s of withLast) {
      w.uvarint(s.id);
      w.varint(s.lastT);
      words[0] = s.lastLo;
      words[1] = s.lastHi;
      w.f64(f[0]);
    }
  }
  const withOoo = series.filter((s) => s.ooo !== null && s.ooo.length > 0);
  if (withOoo.length > 0) {
    w.u8(WalRecordType.Samples);
    w.uvarint(withOoo.length);
    let prev = 0;
    for (const s of withOoo) {
      const o = s.ooo!;
      w.uvarint(s.id);
      w.uvarint(o.length);
      for (let i = 0; i < o.length; i++) {
        w.varint(o.timestamps[i] - prev);
        prev = o.timestamps[i];
        w.f64(o.values[i]);
      }
    }
  }
  const rec = w.finish();
  new DataView(rec.buffer, rec.byteOffset, 4).setUint32(0, crc32c(rec.subarray(4)), true);
  return rec;
}

function writeChunk(w: ByteWriter, id: number, mint: number, maxt: number, n: number, data: Uint8Array): void {
  w.uvarint(id);
  w.varint(mint);
  w.varint(maxt);
  w.uvarint(n);
  w.uvarint(data.length);
  w.bytes(data);
}
