// Builds one block object (docs/block-format.md) from a head flush: series in
// any order, each with its chunks as opaque bytes. Chunk data is copied into
// one arena as series arrive (so the caller may reuse or keep appending to its
// buffers), and finish() writes the object in one exact-size allocation, with
// chunks laid out in series order: the series a query selects are usually
// neighbours (same metric name), so their chunks coalesce into few range reads.

import { ByteWriter } from "../../model/bytes";
import { compareLabels, type FlatLabels } from "../../model/labels";
import { crc32c } from "../crc32c";
import {
  BLOCK_VERSION,
  ChunkEncoding,
  HEADER_SIZE,
  TOC_SIZE,
  chunkRecordSize,
  encodeHeader,
  encodeToc,
  type BlockMeta,
  type BlockMetaFields,
  type Toc,
} from "./format";

export interface ChunkInput {
  mint: number;
  maxt: number;
  numSamples: number;
  encoding: number;
  data: Uint8Array;
  /** Required for log chunks (ChunkEncoding.LOG): their uncompressed line + metadata bytes, kept in the ref. */
  uncompressedBytes?: number;
}

interface PendingChunk {
  mint: number;
  maxt: number;
  numSamples: number;
  encoding: number;
  uncompressedBytes: number;
  /** Position of the data in the arena. */
  at: number;
  length: number;
}

interface PendingSeries {
  labels: FlatLabels;
  chunks: PendingChunk[];
}

/**
 * Timestamps are kept within ±2^51 ms (±71,000 years) so every delta the index
 * stores, zigzagged, stays a safe integer.
 */
const MAX_TIME = 2 ** 51;
const LONE_SURROGATE = /\p{Cs}/u;

export class BlockWriter {
  private series: PendingSeries[] = [];
  private symbols = new Set<string>();
  private arena = new ByteWriter(64 * 1024);
  private numChunks = 0;
  private numSamples = 0;
  private finished = false;

  /**
   * Adds one series. `labels` must be sorted by name without duplicates; each
   * label set may be added once. A series without chunks holds no data and is
   * not written. The chunk bytes are copied.
   */
  addSeries(labels: FlatLabels, chunks: readonly ChunkInput[]): void {
    if (this.finished) throw new Error("BlockWriter: addSeries after finish");
    if (labels.length % 2 !== 0) throw new Error(`BlockWriter: odd label array length ${labels.length}`);
    for (let i = 0; i < labels.length; i++) {
      const s = labels[i];
      if (typeof s !== "string") throw new Error(`BlockWriter: label ${i >> 1} is not a string`);
      // A lone surrogate cannot round-trip through UTF-8: reject rather than store a different value.
      if (LONE_SURROGATE.test(s)) throw new Error(`BlockWriter: label ${JSON.stringify(s)} is not valid Unicode`);
      if (i % 2 === 0 && i > 0 && !(labels[i - 2] < s)) {
        throw new Error(`BlockWriter: label names not sorted and unique: ${JSON.stringify(labels[i - 2])} before ${JSON.stringify(s)}`);
      }
    }
    if (chunks.length === 0) return;

    const pending: PendingChunk[] = [];
    for (const c of chunks) {
      if (!Number.isSafeInteger(c.mint) || !Number.isSafeInteger(c.maxt) || c.maxt < c.mint || Math.abs(c.mint) > MAX_TIME || Math.abs(c.maxt) > MAX_TIME) {
        throw new Error(`BlockWriter: bad chunk time range [${c.mint}, ${c.maxt}]`);
      }
      if (!Number.isInteger(c.encoding) || c.encoding < 0 || c.encoding > 255) throw new Error(`BlockWriter: bad chunk encoding ${c.encoding}`);
      if (!Number.isSafeInteger(c.numSamples) || c.numSamples < 0) throw new Error(`BlockWriter: bad chunk sample count ${c.numSamples}`);
      if (!(c.data instanceof Uint8Array)) throw new Error("BlockWriter: chunk data is not a Uint8Array");
      let uncompressedBytes = -1;
      if (c.encoding === ChunkEncoding.LOG) {
        if (c.uncompressedBytes === undefined || !Number.isSafeInteger(c.uncompressedBytes) || c.uncompressedBytes < 0) {
          throw new Error(`BlockWriter: a log chunk needs its uncompressed size, got ${c.uncompressedBytes}`);
        }
        uncompressedBytes = c.uncompressedBytes;
      }
      pending.push({ mint: c.mint, maxt: c.maxt, numSamples: c.numSamples, encoding: c.encoding, uncompressedBytes, at: this.arena.pos, length: c.data.length });
      this.arena.bytes(c.data);
      this.numSamples += c.numSamples;
    }
    // Readers get chunks in time order; sort is stable so equal ranges keep the caller's order.
    pending.sort((a, b) => a.mint - b.mint || a.maxt - b.maxt);
    this.numChunks += pending.length;
    for (const s of labels) this.symbols.add(s);
    this.series.push({ labels: labels.slice(), chunks: pending });
  }

  /** Encodes the block. The writer cannot be used afterwards. */
  finish(fields: BlockMetaFields): { bytes: Uint8Array; meta: BlockMeta } {
    if (this.finished) throw new Error("BlockWriter: finish called twice");
    if (typeof fields.tenant !== "string" || !Number.isSafeInteger(fields.shard)) throw new Error("BlockWriter: meta needs a tenant string and an integer shard");
    if (!Number.isSafeInteger(fields.walRange.from) || !Number.isSafeInteger(fields.walRange.to)) throw new Error("BlockWriter: walRange bounds must be integers");
    this.finished = true;
    const series = this.series;
    series.sort((a, b) => compareLabels(a.labels, b.labels));
    for (let i = 1; i < series.length; i++) {
      if (compareLabels(series[i - 1].labels, series[i].labels) === 0) {
        throw new Error(`BlockWriter: series ${JSON.stringify(series[i].labels)} added twice`);
      }
    }

    // Chunk layout first: the index stores absolute offsets.
    let minTime = Number.POSITIVE_INFINITY;
    let maxTime = Number.NEGATIVE_INFINITY;
    const offsets: number[] = [];
    let pos = HEADER_SIZE;
    for (const s of series) {
      for (const c of s.chunks) {
        offsets.push(pos);
        pos += chunkRecordSize(c.length);
        if (c.mint < minTime) minTime = c.mint;
        if (c.maxt > maxTime) maxTime = c.maxt;
      }
    }
    if (series.length === 0) {
      minTime = 0;
      maxTime = -1;
    }
    const chunksEnd = pos;

    // Symbols: sorted (UTF-16 code unit order, as JS compares), so references
    // compare like the strings and label values come out sorted for free.
    const symbols = [...this.symbols].sort();
    this.symbols.clear();
    const refs = new Map<string, number>();
    for (let i = 0; i < symbols.length; i++) refs.set(symbols[i], i);

    const w = new ByteWriter(Math.max(1024, series.length * 64 + symbols.length * 16));
    const sectionEnd = (start: number) => w.u32(crc32c(w.buf.subarray(start, w.pos)));

    const symbolsAt = w.pos;
    w.uvarint(symbols.length);
    for (const s of symbols) w.string(s);
    sectionEnd(symbolsAt);

    // Series, collecting postings per (name, value) as we go: series are
    // visited in index order, so every postings list comes out ascending.
    const postings = new Map<number, Map<number, number[]>>();
    const seriesAt = w.pos;
    w.varint(series.length === 0 ? 0 : minTime);
    w.uvarint(series.length);
    const entry = new ByteWriter(256);
    let chunkIndex = 0;
    for (let i = 0; i < series.length; i++) {
      const s = series[i];
      entry.reset();
      entry.uvarint(s.labels.length / 2);
      for (let l = 0; l < s.labels.length; l += 2) {
        const name = refs.get(s.labels[l])!;
        const value = refs.get(s.labels[l + 1])!;
        entry.uvarint(name);
        entry.uvarint(value);
        let byValue = postings.get(name);
        if (!byValue) postings.set(name, (byValue = new Map()));
        const list = byValue.get(value);
        if (list) list.push(i);
        else byValue.set(value, [i]);
      }
      entry.uvarint(s.chunks.length);
      let prevMaxt = 0;
      let prevEnd = 0;
      for (let k = 0; k < s.chunks.length; k++) {
        const c = s.chunks[k];
        const offset = offsets[chunkIndex++];
        if (k === 0) {
          entry.uvarint(c.mint - minTime);
          entry.uvarint(offset);
        } else {
          entry.varint(c.mint - prevMaxt);
          entry.varint(offset - prevEnd);
        }
        entry.uvarint(c.maxt - c.mint);
        entry.uvarint(c.length);
        entry.u8(c.encoding);
        entry.uvarint(c.numSamples);
        if (c.encoding === ChunkEncoding.LOG) entry.uvarint(c.uncompressedBytes);
        prevMaxt = c.maxt;
        prevEnd = offset + chunkRecordSize(c.length);
      }
      w.uvarint(entry.pos);
      w.bytes(entry.view());
    }
    sectionEnd(seriesAt);

    // Postings: the all-series list first (offset 0), then one list per label
    // pair in (name, value) order; the offset table points into them.
    const postingsAt = w.pos;
    w.uvarint(series.length);
    for (let i = 0; i < series.length; i++) w.uvarint(i === 0 ? 0 : 1);
    const names = [...postings.keys()].sort((a, b) => a - b);
    const table: { name: number; values: number[]; offsets: number[] }[] = [];
    for (const name of names) {
      const byValue = postings.get(name)!;
      const values = [...byValue.keys()].sort((a, b) => a - b);
      const listOffsets: number[] = [];
      for (const value of values) {
        listOffsets.push(w.pos - postingsAt);
        const list = byValue.get(value)!;
        w.uvarint(list.length);
        let prev = 0;
        for (let j = 0; j < list.length; j++) {
          w.uvarint(j === 0 ? list[j] : list[j] - prev);
          prev = list[j];
        }
      }
      table.push({ name, values, offsets: listOffsets });
    }
    postings.clear();
    sectionEnd(postingsAt);

    const tableAt = w.pos;
    w.uvarint(table.length);
    let prevOffset = 0;
    for (const t of table) {
      w.uvarint(t.name);
      w.uvarint(t.values.length);
      let prevValue = 0;
      for (let j = 0; j < t.values.length; j++) {
        w.uvarint(j === 0 ? t.values[j] : t.values[j] - prevValue);
        prevValue = t.values[j];
        w.uvarint(t.offsets[j] - prevOffset);
        prevOffset = t.offsets[j];
      }
    }
    sectionEnd(tableAt);

    // Meta JSON records the block's own size; iterate until the digits settle.
    const metaAt = w.pos;
    const meta: BlockMeta = {
      version: BLOCK_VERSION,
      blockId: fields.blockId ?? ulid(Date.now()),
      minTime,
      maxTime,
      stats: { numSeries: series.length, numSamples: this.numSamples, numChunks: this.numChunks, bytes: 0 },
      tenant: fields.tenant,
      shard: fields.shard,
      walRange: { from: fields.walRange.from, to: fields.walRange.to },
    };
    const encoder = new TextEncoder();
    let json = encoder.encode(JSON.stringify(meta));
    for (;;) {
      const total = chunksEnd + metaAt + json.length + 4 + TOC_SIZE;
      if (total === meta.stats.bytes) break;
      meta.stats.bytes = total;
      json = encoder.encode(JSON.stringify(meta));
    }
    w.bytes(json);
    sectionEnd(metaAt);

    const index = w.view();
    const toc: Toc = {
      version: BLOCK_VERSION,
      symbols: chunksEnd,
      series: chunksEnd + seriesAt,
      postings: chunksEnd + postingsAt,
      postingsTable: chunksEnd + tableAt,
      meta: chunksEnd + metaAt,
      toc: chunksEnd + index.length,
    };

    const out = new Uint8Array(toc.toc + TOC_SIZE);
    encodeHeader(out);
    const arena = this.arena.buf;
    const encByte = new Uint8Array(1);
    pos = HEADER_SIZE;
    for (const s of series) {
      for (const c of s.chunks) {
        let n = c.length;
        while (n >= 0x80) {
          out[pos++] = (n % 0x80) | 0x80;
          n = Math.floor(n / 0x80);
        }
        out[pos++] = n;
        out[pos++] = c.encoding;
        const data = arena.subarray(c.at, c.at + c.length);
        out.set(data, pos);
        pos += c.length;
        // CRC over encoding + data, like Prometheus's chunks files.
        encByte[0] = c.encoding;
        const crc = crc32c(data, crc32c(encByte));
        out[pos++] = crc & 0xff;
        out[pos++] = (crc >>> 8) & 0xff;
        out[pos++] = (crc >>> 16) & 0xff;
        out[pos++] = (crc >>> 24) & 0xff;
      }
    }
    out.set(index, chunksEnd);
    out.set(encodeToc(toc), toc.toc);

    // Release the inputs: the writer is single-use.
    this.series = [];
    this.arena = new ByteWriter(16);
    return { bytes: out, meta };
  }
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A ULID: 48-bit millisecond time then 80 random bits, Crockford base32, 26 characters. */
export function ulid(nowMs: number, random: Uint8Array = crypto.getRandomValues(new Uint8Array(10))): string {
  let out = "";
  let t = Math.max(0, Math.floor(nowMs));
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[t % 32] + out;
    t = Math.floor(t / 32);
  }
  // 80 bits as 16 five-bit groups, most significant first.
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    acc = ((acc << 8) | random[i]) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(acc >>> bits) & 31];
    }
  }
  return out;
}
