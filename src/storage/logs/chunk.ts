// Log chunks, after Loki's MemChunk (pkg/chunkenc/memchunk.go): entries go into a
// raw head block; when it reaches `blockSize` uncompressed bytes it is sorted and
// compressed into a block. A chunk is a small header and its blocks. Byte layout:
// docs/log-format.md.
//
// Differences from Loki, on purpose:
// - Timestamps are (ms, ns-within-ms) pairs (src/model/logtime.ts), delta-coded
//   in each block as ms delta + ns, so a block never needs a 64-bit integer.
// - Each block carries its own CRC32C of the header fields and one of the data,
//   and its own structured-metadata symbol table, so a reader can skip blocks
//   outside the query range (checking only their 20-odd header bytes) and
//   decompress the others independently.
// - Blocks are sorted by (time, line bytes) when cut and exact duplicates (same
//   time and line) are dropped, as Loki 3's unordered head block drops them.
//
// The head keeps entries in typed arrays and one byte arena: append() allocates
// nothing per entry (a metadata array, when given, is kept by reference).

import { ByteReader, ByteWriter, CorruptDataError } from "../../model/bytes";
import { cmpNs, NS_PER_MS } from "../../model/logtime";
import { crc32c } from "../crc32c";
import {
  compressBlock,
  decompressBlock,
  DEFAULT_LOG_CHUNK_ENCODING,
  isLogChunkEncoding,
  LogChunkEncoding,
  MAX_RAW_BLOCK_BYTES,
} from "./compression";

export { LogChunkEncoding, DEFAULT_LOG_CHUNK_ENCODING } from "./compression";

/** "EILC" (Edge Ingester Log Chunk) as u32le. */
export const LOG_CHUNK_MAGIC = 0x434c4945;
export const LOG_CHUNK_VERSION = 1;

/** Receives decoded entries, in (time, line) order. `line` and `meta` are fresh values the sink may keep. */
export interface LogEntrySink {
  entry(ms: number, ns: number, line: string, meta: string[] | null): void;
}

/** What a chunk's header says, read without decompressing anything. */
export interface LogChunkMeta {
  minMs: number;
  minNs: number;
  maxMs: number;
  maxNs: number;
  /** Entries in the chunk (after de-duplication at cut). */
  entries: number;
  /** The chunk's codec; the raw head block of a snapshot is stored with None. */
  encoding: LogChunkEncoding;
  blocks: number;
}

export interface LogChunkOptions {
  /** Uncompressed bytes of the head block at which it is cut (Loki chunk_block_size, 256 KiB). */
  blockSize: number;
  encoding?: LogChunkEncoding;
}

/** UTF-8 bytes an entry's metadata strings count for (Loki's metaLabelsLen: len(name) + len(value), in bytes; in the block size too). */
function metaSize(meta: readonly string[] | null): number {
  if (meta === null) return 0;
  let n = 0;
  for (let i = 0; i < meta.length; i++) {
    const s = meta[i];
    n += s.length;
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x80) continue;
      if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) n += 1; // 2 bytes; a surrogate pair's 2 units make 4
      else n += 2;
    }
  }
  return n;
}

/**
 * Loki's MemChunk: a head block of raw entries, cut into compressed blocks of
 * ~blockSize uncompressed bytes. Single-threaded, synchronous: it lives in one
 * Durable Object's stream.
 */
export class LogChunkBuilder {
  readonly blockSize: number;
  readonly encoding: LogChunkEncoding;

  // Closed blocks: complete block records (docs/log-format.md), in cut order.
  private blocks: Uint8Array[] = [];
  private closedBytes = 0;
  private closedEntries = 0;
  private closedUncompressed = 0;

  // Head block, columnar.
  private hMs = new Float64Array(64);
  private hNs = new Uint32Array(64);
  private hOff = new Uint32Array(64);
  private hLen = new Uint32Array(64);
  private hMeta: (readonly string[] | null)[] = [];
  private hAnyMeta = false;
  private hCount = 0;
  private hBytes = 0;
  private hMetaBytes = 0;
  private hOrdered = true;
  private arena = new ByteWriter(4096);

  private _minMs = Number.POSITIVE_INFINITY;
  private _minNs = 0;
  private _maxMs = Number.NEGATIVE_INFINITY;
  private _maxNs = 0;

  constructor(opts: LogChunkOptions) {
    if (!(opts.blockSize > 0)) throw new Error(`LogChunkBuilder: blockSize must be positive, got ${opts.blockSize}`);
    const encoding = opts.encoding ?? DEFAULT_LOG_CHUNK_ENCODING;
    if (!isLogChunkEncoding(encoding)) throw new Error(`LogChunkBuilder: unknown encoding ${encoding}`);
    this.blockSize = opts.blockSize;
    this.encoding = encoding;
  }

  /**
   * Rebuilds a builder from a chunk (finish() or snapshot() bytes, e.g. from a
   * checkpoint): compressed blocks are kept verbatim, a raw (snapshot) head
   * block becomes the head again. Throws CorruptDataError on bad bytes.
   */
  /**
   * The builder again from its snapshot (a checkpoint's open chunk). A cut block's header
   * keeps its raw length with the entries' framing, not the line + metadata bytes the
   * builder counts: pass the snapshot's `uncompressedBytes` to restore that count exactly.
   */
  static fromBytes(bytes: Uint8Array, opts: LogChunkOptions, uncompressedBytes?: number): LogChunkBuilder {
    const h = readHeader(bytes);
    const b = new LogChunkBuilder({ blockSize: opts.blockSize, encoding: opts.encoding ?? h.encoding });
    if (b.encoding !== h.encoding) throw new Error(`LogChunkBuilder.fromBytes: chunk is ${h.encoding}, asked for ${b.encoding}`);
    const blocks = readBlockHeaders(bytes, h);
    const sink: LogEntrySink = {
      entry: (ms, ns, line, meta) => b.append(ms, ns, encoder.encode(line), meta),
    };
    for (const bh of blocks) {
      if (bh.encoding === LogChunkEncoding.None && h.encoding !== LogChunkEncoding.None) {
        decodeBlockInto(bytes, bh, Number.NEGATIVE_INFINITY, 0, Number.POSITIVE_INFINITY, 0, sink, null);
        continue;
      }
      checkDataCrc(bytes, bh);
      const rec = bytes.slice(bh.start, bh.end);
      b.blocks.push(rec);
      b.closedBytes += rec.length;
      b.closedEntries += bh.entries;
      b.closedUncompressed += bh.rawLen;
      b.widen(bh.minMs, bh.minNs);
      b.widen(bh.maxMs, bh.maxNs);
    }
    if (uncompressedBytes !== undefined && uncompressedBytes >= b.hBytes) b.closedUncompressed = uncompressedBytes - b.hBytes;
    return b;
  }

  /** Entries held (closed blocks + head). Exact duplicates in the head are counted until the head is cut. */
  get entries(): number {
    return this.closedEntries + this.hCount;
  }

  /** Uncompressed bytes (lines + metadata) of the closed blocks' raw data plus the head's entries. */
  get uncompressedBytes(): number {
    return this.closedUncompressed + this.hBytes;
  }

  /** Compressed bytes of the cut blocks + the head block's raw size (what Loki compares with chunk_target_size). */
  get compressedBytes(): number {
    return this.closedBytes + this.hBytes;
  }

  /** Bytes of the head block (Loki's head.UncompressedSize), compared with blockSize. */
  get headBytes(): number {
    return this.hBytes;
  }

  /** Earliest entry; +Infinity while empty. */
  get minMs(): number {
    return this._minMs;
  }
  get minNs(): number {
    return this._minNs;
  }
  /** Latest entry; -Infinity while empty. */
  get maxMs(): number {
    return this._maxMs;
  }
  get maxNs(): number {
    return this._maxNs;
  }

  /** Memory held, for the shard's head-bytes limit. */
  get memoryBytes(): number {
    return (
      this.closedBytes +
      this.arena.buf.length +
      this.hMs.length * 20 + // 8 ms + 4 ns + 4 offset + 4 length
      this.hMeta.length * 8 +
      this.hMetaBytes * 2 +
      128
    );
  }

  /**
   * Append one entry. Entries may arrive out of order (Loki 3 unordered head
   * block): the head block is sorted when cut. The line bytes are copied; `meta`
   * ([name, value, ...]) is kept by reference and must not be changed after.
   * Cuts the head block when it reaches blockSize, as Loki's MemChunk.Append does.
   */
  append(ms: number, ns: number, line: Uint8Array, meta: readonly string[] | null): void {
    if (!Number.isSafeInteger(ms) || !(ns >= 0 && ns < NS_PER_MS) || ns !== Math.floor(ns)) {
      throw new Error(`LogChunkBuilder.append: bad timestamp (${ms} ms, ${ns} ns)`);
    }
    let i = this.hCount;
    if (i === this.hMs.length) this.grow();
    if (i > 0 && this.hOrdered && cmpNs(ms, ns, this.hMs[i - 1], this.hNs[i - 1]) < 0) this.hOrdered = false;
    this.hMs[i] = ms;
    this.hNs[i] = ns;
    this.hOff[i] = this.arena.pos;
    this.hLen[i] = line.length;
    this.arena.bytes(line);
    if (meta !== null && meta.length > 0) {
      if (!this.hAnyMeta) {
        this.hAnyMeta = true;
        for (let k = this.hMeta.length; k < i; k++) this.hMeta.push(null);
      }
      this.hMeta[i] = meta;
      const mb = metaSize(meta);
      this.hMetaBytes += mb;
      this.hBytes += mb;
    } else if (this.hAnyMeta) {
      this.hMeta[i] = null;
    }
    this.hBytes += line.length;
    this.hCount = ++i;
    this.widen(ms, ns);
    if (this.hBytes >= this.blockSize) this.cutBlock();
  }

  /** Compress the head block into a new block (append calls it when the head passes blockSize). */
  cutBlock(): void {
    if (this.hCount === 0) return;
    const w = scratch;
    w.reset();
    const info = this.encodeHead(w);
    const raw = w.view();
    const data = compressBlock(this.encoding, raw);
    const rec = blockRecord(this.encoding, info, raw.length, data);
    this.blocks.push(rec);
    this.closedBytes += rec.length;
    this.closedEntries += info.entries;
    this.closedUncompressed += info.bytes;
    this.resetHead();
    // A one-off huge block should not pin its scratch buffer for the isolate's life.
    if (scratch.buf.length > 4 * MAX_SCRATCH) scratch = new ByteWriter(MAX_SCRATCH);
  }

  /** The whole chunk as bytes (cuts the head block first). The builder stays usable. */
  finish(): Uint8Array {
    this.cutBlock();
    return this.serialize(null);
  }

  /**
   * Bytes of the chunk so far WITHOUT cutting (for queries on the open chunk):
   * the closed blocks plus the head block stored uncompressed (encoding None),
   * sorted and de-duplicated like a cut block.
   */
  snapshot(): Uint8Array {
    if (this.hCount === 0) return this.serialize(null);
    const w = scratch;
    w.reset();
    const info = this.encodeHead(w);
    const raw = w.view();
    return this.serialize(blockRecord(LogChunkEncoding.None, info, raw.length, raw));
  }

  private serialize(head: Uint8Array | null): Uint8Array {
    let entries = this.closedEntries;
    let minMs = this._minMs;
    let minNs = this._minNs;
    let maxMs = this._maxMs;
    let maxNs = this._maxNs;
    const nBlocks = this.blocks.length + (head ? 1 : 0);
    if (head) entries += readU(head, 1); // the record's entry count follows its encoding byte
    if (nBlocks === 0) minMs = minNs = maxMs = maxNs = 0;
    const hw = new ByteWriter(64);
    hw.u32(LOG_CHUNK_MAGIC);
    hw.u8(LOG_CHUNK_VERSION);
    hw.u8(this.encoding);
    hw.uvarint(nBlocks);
    hw.uvarint(entries);
    hw.varint(minMs);
    hw.uvarint(minNs);
    hw.uvarint(maxMs - minMs);
    hw.uvarint(maxNs);
    hw.u32(crc32c(hw.view()));
    const total = hw.pos + this.closedBytes + (head ? head.length : 0);
    const out = new Uint8Array(total);
    out.set(hw.view(), 0);
    let pos = hw.pos;
    for (const b of this.blocks) {
      out.set(b, pos);
      pos += b.length;
    }
    if (head) out.set(head, pos);
    return out;
  }

  private widen(ms: number, ns: number): void {
    if (cmpNs(ms, ns, this._minMs, this._minNs) < 0) {
      this._minMs = ms;
      this._minNs = ns;
    }
    if (cmpNs(ms, ns, this._maxMs, this._maxNs) > 0) {
      this._maxMs = ms;
      this._maxNs = ns;
    }
  }

  private grow(): void {
    const n = this.hMs.length * 2;
    const ms = new Float64Array(n);
    ms.set(this.hMs);
    this.hMs = ms;
    const ns = new Uint32Array(n);
    ns.set(this.hNs);
    this.hNs = ns;
    const off = new Uint32Array(n);
    off.set(this.hOff);
    this.hOff = off;
    const len = new Uint32Array(n);
    len.set(this.hLen);
    this.hLen = len;
  }

  private resetHead(): void {
    this.hCount = 0;
    this.hBytes = 0;
    this.hMetaBytes = 0;
    this.hOrdered = true;
    this.hAnyMeta = false;
    this.hMeta = [];
    // A shard holds thousands of streams: an idle stream must not keep a block's
    // worth of head buffers after its cut. Regrowing costs a few copies per block.
    if (this.arena.buf.length > 4096) this.arena = new ByteWriter(4096);
    else this.arena.reset();
    if (this.hMs.length > 64) {
      this.hMs = new Float64Array(64);
      this.hNs = new Uint32Array(64);
      this.hOff = new Uint32Array(64);
      this.hLen = new Uint32Array(64);
    }
  }

  /** The head's entries in (time, line) order without exact duplicates, as a raw block into w. */
  private encodeHead(w: ByteWriter): BlockInfo {
    const n = this.hCount;
    const ms = this.hMs;
    const ns = this.hNs;
    const off = this.hOff;
    const len = this.hLen;
    const arena = this.arena.buf;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const cmpLine = (a: number, b: number): number => {
      const la = len[a];
      const lb = len[b];
      const oa = off[a];
      const ob = off[b];
      const m = la < lb ? la : lb;
      for (let k = 0; k < m; k++) {
        const d = arena[oa + k] - arena[ob + k];
        if (d !== 0) return d;
      }
      return la - lb;
    };
    if (!this.hOrdered) {
      order.sort((a, b) => cmpNs(ms[a], ns[a], ms[b], ns[b]) || cmpLine(a, b));
    } else {
      // In time order already; equal timestamps may still need their lines sorted.
      for (let i = 1; i < n; i++) {
        if (ms[i] === ms[i - 1] && ns[i] === ns[i - 1] && cmpLine(i - 1, i) > 0) {
          order.sort((a, b) => cmpNs(ms[a], ns[a], ms[b], ns[b]) || cmpLine(a, b));
          break;
        }
      }
    }

    // Structured metadata names and values, symbolised per block.
    const meta = this.hAnyMeta ? this.hMeta : null;
    let syms: Map<string, number> | null = null;
    if (meta) {
      syms = new Map();
      for (let i = 0; i < n; i++) {
        const m = meta[i];
        if (m) for (let k = 0; k < m.length; k++) if (!syms.has(m[k])) syms.set(m[k], syms.size);
      }
      w.uvarint(syms.size);
      for (const s of syms.keys()) w.string(s);
    } else {
      w.uvarint(0);
    }

    let entries = 0;
    let bytes = 0;
    let prevMs = ms[order[0]];
    let prev = -1;
    for (let j = 0; j < n; j++) {
      const i = order[j];
      if (prev >= 0 && ms[i] === ms[prev] && ns[i] === ns[prev] && cmpLine(prev, i) === 0) continue; // exact duplicate
      const l = len[i];
      w.ensure(25 + l); // three varints, the line, a zero metadata count
      w.uvarintUnchecked(ms[i] - prevMs);
      w.uvarintUnchecked(ns[i]);
      w.uvarintUnchecked(l);
      w.buf.set(arena.subarray(off[i], off[i] + l), w.pos);
      w.pos += l;
      const m = meta ? meta[i] : null;
      if (m) {
        const pairs = m.length >> 1;
        w.uvarint(pairs);
        for (let k = 0; k < pairs * 2; k++) w.uvarint(syms!.get(m[k])!);
        bytes += metaSize(m);
      } else {
        w.buf[w.pos++] = 0;
      }
      bytes += l;
      prevMs = ms[i];
      prev = i;
      entries++;
    }
    const first = order[0];
    return { entries, bytes, minMs: ms[first], minNs: ns[first], maxMs: ms[prev], maxNs: ns[prev] };
  }
}

interface BlockInfo {
  entries: number;
  /** Line + metadata bytes (for uncompressedBytes). */
  bytes: number;
  minMs: number;
  minNs: number;
  maxMs: number;
  maxNs: number;
}

const MAX_SCRATCH = 1 << 20;
/** One encode buffer for every builder of the isolate: cutting is synchronous. */
let scratch = new ByteWriter(MAX_SCRATCH);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** block := fields crcFields:u32le data crcData:u32le (docs/log-format.md). */
function blockRecord(encoding: LogChunkEncoding, info: BlockInfo, rawLen: number, data: Uint8Array): Uint8Array {
  const hw = new ByteWriter(48);
  hw.u8(encoding);
  hw.uvarint(info.entries);
  hw.varint(info.minMs);
  hw.uvarint(info.minNs);
  hw.uvarint(info.maxMs - info.minMs);
  hw.uvarint(info.maxNs);
  hw.uvarint(rawLen);
  hw.uvarint(data.length);
  hw.u32(crc32c(hw.view()));
  const out = new Uint8Array(hw.pos + data.length + 4);
  out.set(hw.view(), 0);
  out.set(data, hw.pos);
  const crc = crc32c(data);
  const p = hw.pos + data.length;
  out[p] = crc & 0xff;
  out[p + 1] = (crc >>> 8) & 0xff;
  out[p + 2] = (crc >>> 16) & 0xff;
  out[p + 3] = (crc >>> 24) & 0xff;
  return out;
}

/** A uvarint at pos (trusted bytes we wrote). */
function readU(b: Uint8Array, pos: number): number {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    if (x < 0x80) return v;
    mul *= 0x80;
  }
}

function getU32(b: Uint8Array, pos: number): number {
  return (b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24)) >>> 0;
}

interface ChunkHeader extends LogChunkMeta {
  /** Where the first block starts. */
  end: number;
}

function readHeader(bytes: Uint8Array): ChunkHeader {
  const r = new ByteReader(bytes, "log chunk header");
  if (bytes.length < 6) throw new CorruptDataError(`corrupt log chunk: ${bytes.length} bytes is too short for a header`);
  const magic = getU32(bytes, 0);
  if (magic !== LOG_CHUNK_MAGIC) throw new CorruptDataError(`corrupt log chunk: bad magic 0x${magic.toString(16)}`);
  r.pos = 4;
  const version = r.u8();
  if (version !== LOG_CHUNK_VERSION) throw new CorruptDataError(`corrupt log chunk: unsupported version ${version}`);
  const encoding = r.u8();
  const blocks = r.uvarint();
  const entries = r.uvarint();
  const minMs = r.varint();
  const minNs = r.uvarint();
  const maxMs = minMs + r.uvarint();
  const maxNs = r.uvarint();
  const crcAt = r.pos;
  const want = r.bytes(4);
  const got = crc32c(bytes.subarray(0, crcAt));
  if (got !== getU32(want, 0)) throw new CorruptDataError(`corrupt log chunk header: checksum ${got.toString(16)} does not match the stored ${getU32(want, 0).toString(16)}`);
  if (!isLogChunkEncoding(encoding)) throw new CorruptDataError(`corrupt log chunk: unknown encoding ${encoding}`);
  if (minNs >= NS_PER_MS || maxNs >= NS_PER_MS || cmpNs(minMs, minNs, maxMs, maxNs) > 0) {
    throw new CorruptDataError(`corrupt log chunk header: bad time range`);
  }
  return { minMs, minNs, maxMs, maxNs, entries, encoding, blocks, end: r.pos };
}

/** Chunk header facts without decompressing: time range, entries, encoding. Throws CorruptDataError. */
export function logChunkMeta(bytes: Uint8Array): LogChunkMeta {
  const h = readHeader(bytes);
  return { minMs: h.minMs, minNs: h.minNs, maxMs: h.maxMs, maxNs: h.maxNs, entries: h.entries, encoding: h.encoding, blocks: h.blocks };
}

/** One block of a chunk as its header describes it (offsets into the chunk bytes). */
export interface LogChunkBlockInfo {
  encoding: LogChunkEncoding;
  entries: number;
  minMs: number;
  minNs: number;
  maxMs: number;
  maxNs: number;
  rawLen: number;
  /** The block's (compressed) data: bytes.subarray(dataAt, dataEnd). */
  dataAt: number;
  dataEnd: number;
}

/** The blocks of a chunk, each header checked (data is not read). For tools, the benchmark and tests. */
export function logChunkBlocks(bytes: Uint8Array): LogChunkBlockInfo[] {
  return readBlockHeaders(bytes, readHeader(bytes)).map(({ encoding, entries, minMs, minNs, maxMs, maxNs, rawLen, dataAt, dataEnd }) => ({
    encoding,
    entries,
    minMs,
    minNs,
    maxMs,
    maxNs,
    rawLen,
    dataAt,
    dataEnd,
  }));
}

interface BlockHeader {
  encoding: LogChunkEncoding;
  entries: number;
  minMs: number;
  minNs: number;
  maxMs: number;
  maxNs: number;
  rawLen: number;
  /** Record start, data start/end (data excludes its CRC), record end. */
  start: number;
  dataAt: number;
  dataEnd: number;
  end: number;
  index: number;
}

/** Walks every block's header (checking each header CRC) and the chunk's totals; data is not touched. */
function readBlockHeaders(bytes: Uint8Array, h: ChunkHeader): BlockHeader[] {
  if (h.blocks > bytes.length) throw new CorruptDataError(`corrupt log chunk: ${h.blocks} blocks in ${bytes.length} bytes`);
  const out: BlockHeader[] = [];
  const r = new ByteReader(bytes, "log chunk");
  r.pos = h.end;
  let entries = 0;
  for (let i = 0; i < h.blocks; i++) {
    const start = r.pos;
    const what = `log chunk block ${i} at byte ${start}`;
    const encoding = r.u8();
    const n = r.uvarint();
    const minMs = r.varint();
    const minNs = r.uvarint();
    const maxMs = minMs + r.uvarint();
    const maxNs = r.uvarint();
    const rawLen = r.uvarint();
    const dataLen = r.uvarint();
    const crcAt = r.pos;
    const want = getU32(r.bytes(4), 0);
    const got = crc32c(bytes.subarray(start, crcAt));
    if (got !== want) throw new CorruptDataError(`corrupt ${what}: header checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
    if (encoding !== h.encoding && encoding !== LogChunkEncoding.None) throw new CorruptDataError(`corrupt ${what}: encoding ${encoding} in a chunk of ${h.encoding}`);
    if (n === 0 || minNs >= NS_PER_MS || maxNs >= NS_PER_MS || cmpNs(minMs, minNs, maxMs, maxNs) > 0) throw new CorruptDataError(`corrupt ${what}: bad entry count or time range`);
    if (cmpNs(minMs, minNs, h.minMs, h.minNs) < 0 || cmpNs(maxMs, maxNs, h.maxMs, h.maxNs) > 0) throw new CorruptDataError(`corrupt ${what}: time range outside the chunk's`);
    if (rawLen > MAX_RAW_BLOCK_BYTES) throw new CorruptDataError(`corrupt ${what}: ${rawLen} uncompressed bytes`);
    const dataAt = r.pos;
    r.bytes(dataLen);
    r.bytes(4);
    entries += n;
    out.push({ encoding, entries: n, minMs, minNs, maxMs, maxNs, rawLen, start, dataAt, dataEnd: dataAt + dataLen, end: r.pos, index: i });
  }
  if (!r.done) throw new CorruptDataError(`corrupt log chunk: ${bytes.length - r.pos} bytes after the last of ${h.blocks} blocks`);
  if (entries !== h.entries) throw new CorruptDataError(`corrupt log chunk: blocks hold ${entries} entries, the header says ${h.entries}`);
  return out;
}

function checkDataCrc(bytes: Uint8Array, bh: BlockHeader): Uint8Array {
  const data = bytes.subarray(bh.dataAt, bh.dataEnd);
  const want = getU32(bytes, bh.dataEnd);
  const got = crc32c(data);
  if (got !== want) throw new CorruptDataError(`corrupt log chunk block ${bh.index} at byte ${bh.start}: data checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
  return data;
}

/** UTF-8 bytes -> string, with an ASCII fast path for short lines. */
function utf8(b: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 256) {
    let ascii = true;
    for (let i = start; i < end; i++) if (b[i] > 0x7f) { ascii = false; break; }
    if (ascii) return String.fromCharCode.apply(null, b.subarray(start, end) as unknown as number[]);
  }
  return decoder.decode(b.subarray(start, end));
}

/** Last entry emitted, for dropping exact duplicates across and within blocks. */
interface Last {
  ms: number;
  ns: number;
  line: string;
}

/**
 * Decodes one block's entries within [start, end) into sink, skipping those equal
 * (time and line) to `last`, which it updates; `last` null means no de-duplication
 * (the caller sorts and de-duplicates itself).
 */
function decodeBlockInto(
  bytes: Uint8Array,
  bh: BlockHeader,
  startMs: number,
  startNs: number,
  endMs: number,
  endNs: number,
  sink: LogEntrySink,
  last: Last | null,
): void {
  const what = `log chunk block ${bh.index} at byte ${bh.start}`;
  const data = checkDataCrc(bytes, bh);
  const raw = decompressBlock(bh.encoding, data, bh.rawLen, `corrupt ${what}`);
  const r = new ByteReader(raw, what);
  const nSyms = r.uvarint();
  if (nSyms > raw.length) throw new CorruptDataError(`corrupt ${what}: ${nSyms} symbols in ${raw.length} bytes`);
  const syms = new Array<string>(nSyms);
  for (let i = 0; i < nSyms; i++) syms[i] = r.string();
  let ms = bh.minMs;
  let prevNs = -1;
  for (let i = 0; i < bh.entries; i++) {
    const d = r.uvarint();
    ms += d;
    const ns = r.uvarint();
    if (i === 0 && (d !== 0 || ns !== bh.minNs)) throw new CorruptDataError(`corrupt ${what}: first entry is not at the block's min time`);
    if (ns >= NS_PER_MS || (d === 0 && i > 0 && ns < prevNs)) throw new CorruptDataError(`corrupt ${what}: entry ${i} out of order`);
    prevNs = ns;
    const len = r.uvarint();
    const at = r.pos;
    r.bytes(len);
    const pairs = r.uvarint();
    let meta: string[] | null = null;
    if (pairs > 0) {
      if (pairs > raw.length) throw new CorruptDataError(`corrupt ${what}: entry ${i} has ${pairs} metadata pairs`);
      meta = new Array<string>(pairs * 2);
      for (let k = 0; k < pairs * 2; k++) {
        const ref = r.uvarint();
        if (ref >= nSyms) throw new CorruptDataError(`corrupt ${what}: entry ${i} names symbol ${ref} of ${nSyms}`);
        meta[k] = syms[ref];
      }
    }
    if (cmpNs(ms, ns, startMs, startNs) < 0 || cmpNs(ms, ns, endMs, endNs) >= 0) continue;
    const line = utf8(raw, at, at + len);
    if (last !== null) {
      if (ms === last.ms && ns === last.ns && line === last.line) continue;
      last.ms = ms;
      last.ns = ns;
      last.line = line;
    }
    sink.entry(ms, ns, line, meta);
  }
  if (cmpNs(ms, prevNs, bh.maxMs, bh.maxNs) !== 0) throw new CorruptDataError(`corrupt ${what}: last entry is not at the block's max time`);
  if (!r.done) throw new CorruptDataError(`corrupt ${what}: ${raw.length - r.pos} bytes after its ${bh.entries} entries`);
}

/**
 * Decode the entries of a chunk within [start, end) into a caller-owned sink,
 * sorted by (time, line), exact duplicates (same time and line) dropped.
 * Blocks outside the range are skipped after checking their header CRC; the
 * blocks read are checked in full. Throws CorruptDataError on bad bytes.
 */
export function readLogChunk(bytes: Uint8Array, startMs: number, startNs: number, endMs: number, endNs: number, sink: LogEntrySink): void {
  const h = readHeader(bytes);
  const blocks = readBlockHeaders(bytes, h);
  const sel: BlockHeader[] = [];
  for (const bh of blocks) {
    if (cmpNs(bh.maxMs, bh.maxNs, startMs, startNs) < 0 || cmpNs(bh.minMs, bh.minNs, endMs, endNs) >= 0) continue;
    sel.push(bh);
  }
  // Blocks are cut in arrival order; with out-of-order pushes their ranges can
  // overlap. When they do not, entries stream straight to the sink.
  let disjoint = true;
  for (let i = 1; i < sel.length; i++) {
    if (cmpNs(sel[i].minMs, sel[i].minNs, sel[i - 1].maxMs, sel[i - 1].maxNs) <= 0) {
      disjoint = false;
      break;
    }
  }
  if (disjoint) {
    const last: Last = { ms: Number.NaN, ns: 0, line: "" };
    for (const bh of sel) decodeBlockInto(bytes, bh, startMs, startNs, endMs, endNs, sink, last);
    return;
  }
  const col = new EntryColumns();
  for (const bh of sel) decodeBlockInto(bytes, bh, startMs, startNs, endMs, endNs, col, null);
  col.drainSorted(sink);
}

/** Loose entries collected as columns, then sorted by (time, line) and de-duplicated. */
export class EntryColumns implements LogEntrySink {
  ms = new Float64Array(256);
  ns = new Uint32Array(256);
  lines: string[] = [];
  meta: (string[] | null)[] = [];
  anyMeta = false;
  n = 0;
  sorted = true;

  entry(ms: number, ns: number, line: string, meta: string[] | null): void {
    const i = this.n;
    if (i === this.ms.length) {
      const m = new Float64Array(i * 2);
      m.set(this.ms);
      this.ms = m;
      const s = new Uint32Array(i * 2);
      s.set(this.ns);
      this.ns = s;
    }
    if (i > 0 && this.sorted) {
      const c = cmpNs(ms, ns, this.ms[i - 1], this.ns[i - 1]);
      if (c < 0 || (c === 0 && cmpCodePoints(line, this.lines[i - 1]) < 0)) this.sorted = false;
    }
    this.ms[i] = ms;
    this.ns[i] = ns;
    this.lines.push(line);
    this.meta.push(meta);
    if (meta !== null) this.anyMeta = true;
    this.n = i + 1;
  }

  /** Index order by (time, line), without exact duplicates (the first seen is kept). */
  order(): Uint32Array {
    const n = this.n;
    const ms = this.ms;
    const ns = this.ns;
    const lines = this.lines;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (!this.sorted) order.sort((a, b) => cmpNs(ms[a], ns[a], ms[b], ns[b]) || cmpCodePoints(lines[a], lines[b]) || a - b);
    let m = 0;
    for (let j = 0; j < n; j++) {
      const i = order[j];
      if (m > 0) {
        const p = order[m - 1];
        if (ms[i] === ms[p] && ns[i] === ns[p] && lines[i] === lines[p]) continue;
      }
      order[m++] = i;
    }
    return order.subarray(0, m);
  }

  drainSorted(sink: LogEntrySink): void {
    const order = this.order();
    for (let j = 0; j < order.length; j++) {
      const i = order[j];
      sink.entry(this.ms[i], this.ns[i], this.lines[i], this.meta[i]);
    }
  }
}

/**
 * Compares strings by Unicode code point, which is UTF-8 byte order: the order
 * blocks are sorted in (JS `<` compares UTF-16 units and puts U+10000.. before U+E000..).
 */
export function cmpCodePoints(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800..DFFF) encode code points above every BMP unit.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy && x >= 0xd800 && y >= 0xd800) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
