// Reads blocks (docs/block-format.md) with ranged reads, Thanos-store-gateway
// style: openBlock makes exactly two reads (the fixed-size TOC at the end, then
// the whole index in one range), select() answers from the index alone, and
// readChunks fetches only the chunk ranges a query needs, coalescing
// neighbours into one read. Every byte a result depends on is covered by a
// CRC32C that is checked before use; failures throw BlockCorruptError.
//
// The decoded index keeps the raw index bytes plus small typed arrays and
// decodes series lazily, so a cached BlockIndex costs little more than its bytes.

import { ByteReader, CorruptDataError } from "../../model/bytes";
import { getLabel, type FlatLabels } from "../../model/labels";
import type { CompiledMatcher } from "../../model/matchers";
import { MatchType } from "../../proto/types";
import { crc32c } from "../crc32c";
import {
  ChunkEncoding,
  BlockCorruptError,
  HEADER_SIZE,
  SECTION_CRC_SIZE,
  TOC_SIZE,
  checkHeader,
  checkToc,
  chunkRecordSize,
  decodeToc,
  getU32,
  type BlockMeta,
  type BlockSeries,
  type ChunkRef,
  type Toc,
} from "./format";

/** Random access to one block object: R2 ranged GETs, a cache, or memory. */
export interface RangeSource {
  readonly size: number;
  /** Returns `length` bytes at `offset`; fewer bytes mean the object is truncated. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A source over bytes already in memory. Reads return views, not copies. */
export function memorySource(bytes: Uint8Array): RangeSource {
  return {
    size: bytes.length,
    read: async (offset, length) => bytes.subarray(Math.max(0, offset), Math.max(0, offset + length)),
  };
}

async function readExact(src: RangeSource, offset: number, length: number, what: string): Promise<Uint8Array> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > src.size) {
    throw new BlockCorruptError(`${what}: range [${offset}, ${offset + length}) is outside the ${src.size}-byte object`);
  }
  const b = await src.read(offset, length);
  if (b.length !== length) throw new BlockCorruptError(`${what}: read ${b.length} of ${length} bytes at offset ${offset} (truncated object?)`);
  return b;
}

/** Opens a block: reads the TOC, then the index, and decodes the index. Exactly two reads. */
export async function openBlock(src: RangeSource): Promise<BlockIndex> {
  if (src.size < HEADER_SIZE + TOC_SIZE) throw new BlockCorruptError(`object of ${src.size} bytes is too small to be a block`);
  const toc = decodeToc(await readExact(src, src.size - TOC_SIZE, TOC_SIZE, "block TOC"), src.size);
  const index = await readExact(src, toc.symbols, toc.toc - toc.symbols, "block index");
  return BlockIndex.fromBytes(index, toc);
}

const EMPTY = new Uint32Array(0);

/** Postings offset table entries of one label name, value refs ascending. */
interface NameEntry {
  values: Uint32Array;
  /** Offsets of the postings lists, relative to the postings section. */
  offsets: Uint32Array;
}

/** Converts the ByteReader's errors into ours; anything else (a matcher throwing) passes through. */
function rethrow(e: unknown): never {
  if (e instanceof CorruptDataError) throw new BlockCorruptError(e.message);
  throw e;
}

function corrupt(what: string, msg: string): never {
  throw new BlockCorruptError(`corrupt ${what}: ${msg}`);
}

/** Body of an index section (without its CRC) after checking the CRC. Offsets are absolute. */
function sectionBody(index: Uint8Array, indexStart: number, start: number, end: number, name: string): Uint8Array {
  const s = start - indexStart;
  const e = end - indexStart;
  const body = index.subarray(s, e - SECTION_CRC_SIZE);
  const want = getU32(index, e - SECTION_CRC_SIZE);
  const got = crc32c(body);
  if (want !== got) {
    throw new BlockCorruptError(`block ${name} section at offset ${start}: checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
  }
  return body;
}

export class BlockIndex {
  private allPostingsCache: Uint32Array | undefined;

  private constructor(
    /** Section offsets; cache it with `bytes` to rebuild the index with fromBytes. */
    readonly toc: Toc,
    readonly meta: BlockMeta,
    /** The raw index range [toc.symbols, toc.toc) of the block. */
    readonly bytes: Uint8Array,
    private readonly symbols: string[],
    private readonly baseTime: number,
    /** Position of each series entry (its length varint) in the series section. */
    private readonly seriesOffsets: Uint32Array,
    private readonly names: string[],
    private readonly byName: Map<string, NameEntry>,
    private readonly seriesReader: ByteReader,
    private readonly postingsReader: ByteReader,
  ) {}

  /**
   * Decodes an index range read earlier (or cached): `indexBytes` is the block's
   * byte range [toc.symbols, toc.toc). Checks every section's CRC.
   */
  static fromBytes(indexBytes: Uint8Array, toc: Toc): BlockIndex {
    checkToc(toc, toc.toc + TOC_SIZE);
    if (indexBytes.length !== toc.toc - toc.symbols) {
      throw new BlockCorruptError(`block index: got ${indexBytes.length} bytes, the TOC says ${toc.toc - toc.symbols}`);
    }
    const at = toc.symbols;
    const symBody = sectionBody(indexBytes, at, toc.symbols, toc.series, "symbols");
    const seriesBody = sectionBody(indexBytes, at, toc.series, toc.postings, "series");
    const postingsBody = sectionBody(indexBytes, at, toc.postings, toc.postingsTable, "postings");
    const tableBody = sectionBody(indexBytes, at, toc.postingsTable, toc.meta, "postings table");
    const metaBody = sectionBody(indexBytes, at, toc.meta, toc.toc, "meta");

    try {
      // Symbols: strictly ascending, which lets lookups binary-search them.
      const symWhat = `block symbols section at offset ${toc.symbols}`;
      const sr = new ByteReader(symBody, symWhat);
      const numSymbols = sr.uvarint();
      if (numSymbols > symBody.length) corrupt(symWhat, `${numSymbols} symbols in ${symBody.length} bytes`);
      const symbols = new Array<string>(numSymbols);
      for (let i = 0; i < numSymbols; i++) {
        symbols[i] = sr.string();
        if (i > 0 && !(symbols[i - 1] < symbols[i])) corrupt(symWhat, `symbol ${i} out of order`);
      }
      if (!sr.done) corrupt(symWhat, `${symBody.length - sr.pos} trailing bytes`);

      // Series: only their positions now; entries are decoded when selected.
      const seriesWhat = `block series section at offset ${toc.series}`;
      const rr = new ByteReader(seriesBody, seriesWhat);
      const baseTime = rr.varint();
      const numSeries = rr.uvarint();
      if (numSeries > seriesBody.length) corrupt(seriesWhat, `${numSeries} series in ${seriesBody.length} bytes`);
      const seriesOffsets = new Uint32Array(numSeries);
      for (let i = 0; i < numSeries; i++) {
        seriesOffsets[i] = rr.pos;
        rr.bytes(rr.uvarint());
      }
      if (!rr.done) corrupt(seriesWhat, `${seriesBody.length - rr.pos} trailing bytes`);

      const postingsWhat = `block postings section at offset ${toc.postings}`;
      const pr = new ByteReader(postingsBody, postingsWhat);
      if (pr.uvarint() !== numSeries) corrupt(postingsWhat, "all-series postings list does not list every series");

      const tableWhat = `block postings table section at offset ${toc.postingsTable}`;
      const tr = new ByteReader(tableBody, tableWhat);
      const numNames = tr.uvarint();
      if (numNames > tableBody.length) corrupt(tableWhat, `${numNames} names in ${tableBody.length} bytes`);
      const names: string[] = [];
      const byName = new Map<string, NameEntry>();
      let prevName = -1;
      let offset = 0;
      for (let i = 0; i < numNames; i++) {
        const name = tr.uvarint();
        if (name >= numSymbols || name <= prevName) corrupt(tableWhat, `bad name reference ${name} at byte ${tr.pos}`);
        prevName = name;
        const n = tr.uvarint();
        if (n === 0 || n > tableBody.length) corrupt(tableWhat, `${n} values for one name at byte ${tr.pos}`);
        const values = new Uint32Array(n);
        const offsets = new Uint32Array(n);
        let value = 0;
        for (let j = 0; j < n; j++) {
          const d = tr.uvarint();
          if (j > 0 && d === 0) corrupt(tableWhat, `values not ascending at byte ${tr.pos}`);
          value = j === 0 ? d : value + d;
          if (value >= numSymbols) corrupt(tableWhat, `value reference ${value} past ${numSymbols} symbols`);
          const od = tr.uvarint();
          if (od === 0) corrupt(tableWhat, `postings offsets not ascending at byte ${tr.pos}`);
          offset += od;
          if (offset >= postingsBody.length) corrupt(tableWhat, `postings offset ${offset} past the postings section`);
          values[j] = value;
          offsets[j] = offset;
        }
        names.push(symbols[name]);
        byName.set(symbols[name], { values, offsets });
      }
      if (!tr.done) corrupt(tableWhat, `${tableBody.length - tr.pos} trailing bytes`);

      const meta = decodeMeta(metaBody, toc);
      if (meta.stats.numSeries !== numSeries) {
        corrupt(`block meta at offset ${toc.meta}`, `numSeries ${meta.stats.numSeries} but the index has ${numSeries} series`);
      }
      return new BlockIndex(toc, meta, indexBytes, symbols, baseTime, seriesOffsets, names, byName, rr, pr);
    } catch (e) {
      rethrow(e);
    }
  }

  get numSeries(): number {
    return this.seriesOffsets.length;
  }

  /**
   * Series matching all matchers that have a chunk overlapping [mint, maxt]
   * (inclusive), in label order, each with only its overlapping chunk refs.
   * Candidates come from intersecting the postings of the matchers that cannot
   * match "" (a label they need must be present); every matcher is then
   * checked on the candidate's labels.
   */
  select(matchers: readonly CompiledMatcher[], mint: number, maxt: number): BlockSeries[] {
    if (mint > maxt || maxt < this.meta.minTime || mint > this.meta.maxTime || this.numSeries === 0) return [];
    try {
      const lists: Uint32Array[] = [];
      for (const m of matchers) {
        if (m.matchesEmpty) continue;
        const p = this.postingsFor(m);
        if (p.length === 0) return [];
        lists.push(p);
      }
      let candidates: Uint32Array;
      if (lists.length === 0) {
        candidates = this.allPostings();
      } else {
        lists.sort((a, b) => a.length - b.length);
        candidates = lists[0];
        for (let k = 1; k < lists.length && candidates.length > 0; k++) candidates = intersect(candidates, lists[k]);
      }
      const out: BlockSeries[] = [];
      for (let i = 0; i < candidates.length; i++) {
        const s = this.decodeSeries(candidates[i], matchers, mint, maxt);
        if (s) out.push(s);
      }
      return out;
    } catch (e) {
      rethrow(e);
    }
  }

  /** Label names present in the block, sorted. */
  labelNames(): string[] {
    return this.names.slice();
  }

  /** Values of one label name present in the block, sorted. */
  labelValues(name: string): string[] {
    const e = this.byName.get(name);
    if (!e) return [];
    const out = new Array<string>(e.values.length);
    for (let i = 0; i < e.values.length; i++) out[i] = this.symbols[e.values[i]];
    return out;
  }

  private allPostings(): Uint32Array {
    return (this.allPostingsCache ??= this.postingsAt(0));
  }

  /** Series indexes of label pairs accepted by m: one list for "=", the union over values otherwise. */
  private postingsFor(m: CompiledMatcher): Uint32Array {
    const e = this.byName.get(m.name);
    if (!e) return EMPTY;
    if (m.type === MatchType.EQ) {
      const ref = this.symbolRef(m.value);
      if (ref < 0) return EMPTY;
      const j = search(e.values, ref);
      return j < 0 ? EMPTY : this.postingsAt(e.offsets[j]);
    }
    const parts: Uint32Array[] = [];
    for (let j = 0; j < e.values.length; j++) {
      if (m.matches(this.symbols[e.values[j]])) parts.push(this.postingsAt(e.offsets[j]));
    }
    return union(parts, this.numSeries);
  }

  private postingsAt(offset: number): Uint32Array {
    const r = this.postingsReader;
    r.pos = offset;
    const n = r.uvarint();
    const numSeries = this.numSeries;
    if (n > numSeries) corrupt(r.what, `postings list at byte ${offset} has ${n} entries for ${numSeries} series`);
    const out = new Uint32Array(n);
    let v = 0;
    for (let j = 0; j < n; j++) {
      const d = r.uvarint();
      if (j > 0 && d === 0) corrupt(r.what, `postings list at byte ${offset} not ascending`);
      v = j === 0 ? d : v + d;
      if (v >= numSeries) corrupt(r.what, `postings list at byte ${offset} names series ${v} of ${numSeries}`);
      out[j] = v;
    }
    return out;
  }

  private symbolRef(s: string): number {
    const symbols = this.symbols;
    let lo = 0;
    let hi = symbols.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = symbols[mid];
      if (v === s) return mid;
      if (v < s) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private decodeSeries(i: number, matchers: readonly CompiledMatcher[], mint: number, maxt: number): BlockSeries | null {
    const r = this.seriesReader;
    const symbols = this.symbols;
    r.pos = this.seriesOffsets[i];
    const len = r.uvarint();
    const end = r.pos + len;
    const nl = r.uvarint();
    if (nl * 2 > len) corrupt(r.what, `series ${i} has ${nl} labels in ${len} bytes`);
    const labels: FlatLabels = new Array<string>(nl * 2);
    let prevName = -1;
    for (let l = 0; l < nl; l++) {
      const name = r.uvarint();
      const value = r.uvarint();
      if (name <= prevName || name >= symbols.length || value >= symbols.length) corrupt(r.what, `series ${i} has bad label references`);
      prevName = name;
      labels[2 * l] = symbols[name];
      labels[2 * l + 1] = symbols[value];
    }
    for (const m of matchers) if (!m.matches(getLabel(labels, m.name))) return null;

    const nc = r.uvarint();
    if (nc === 0 || nc > len) corrupt(r.what, `series ${i} has ${nc} chunks in ${len} bytes`);
    const chunks: ChunkRef[] = [];
    const chunksEnd = this.toc.symbols;
    let prevMaxt = 0;
    let prevEnd = 0;
    for (let k = 0; k < nc; k++) {
      const cmint = k === 0 ? this.baseTime + r.uvarint() : prevMaxt + r.varint();
      const offset = k === 0 ? r.uvarint() : prevEnd + r.varint();
      const cmaxt = cmint + r.uvarint();
      const length = r.uvarint();
      const encoding = r.u8();
      const numSamples = r.uvarint();
      // From version 2 a log chunk's ref carries its uncompressed size.
      const uncompressedBytes = encoding === ChunkEncoding.LOG && this.toc.version >= 2 ? r.uvarint() : -1;
      prevMaxt = cmaxt;
      prevEnd = offset + chunkRecordSize(length);
      if (offset < HEADER_SIZE || prevEnd > chunksEnd) {
        corrupt(r.what, `series ${i} chunk ${k} range [${offset}, ${prevEnd}) is outside the chunks section [${HEADER_SIZE}, ${chunksEnd})`);
      }
      if (cmaxt >= mint && cmint <= maxt) chunks.push({ mint: cmint, maxt: cmaxt, offset, length, encoding, numSamples, uncompressedBytes });
    }
    if (r.pos !== end) corrupt(r.what, `series ${i} entry is ${r.pos - end + len} bytes, its length says ${len}`);
    return chunks.length === 0 ? null : { labels, chunks };
  }
}

function decodeMeta(body: Uint8Array, toc: Toc): BlockMeta {
  const what = `block meta at offset ${toc.meta}`;
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body));
  } catch (e) {
    corrupt(what, (e as Error).message);
  }
  const o = v as Partial<BlockMeta> | null;
  const num = (x: unknown) => typeof x === "number" && Number.isFinite(x);
  if (
    typeof o !== "object" ||
    o === null ||
    o.version !== toc.version ||
    typeof o.blockId !== "string" ||
    !num(o.minTime) ||
    !num(o.maxTime) ||
    typeof o.stats !== "object" ||
    o.stats === null ||
    !num(o.stats.numSeries) ||
    !num(o.stats.numSamples) ||
    !num(o.stats.numChunks) ||
    !num(o.stats.bytes) ||
    typeof o.tenant !== "string" ||
    !num(o.shard) ||
    typeof o.walRange !== "object" ||
    o.walRange === null ||
    !num(o.walRange.from) ||
    !num(o.walRange.to)
  ) {
    corrupt(what, "missing or mistyped fields");
  }
  const meta = o as BlockMeta;
  if (meta.stats.bytes !== toc.toc + TOC_SIZE) corrupt(what, `records ${meta.stats.bytes} bytes, the TOC ${toc.toc + TOC_SIZE}`);
  return meta;
}

function search(a: Uint32Array, x: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] === x) return mid;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Intersection of ascending lists; `a` is the shorter. Gallops through `b` when it is much longer. */
function intersect(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(Math.min(a.length, b.length));
  let n = 0;
  let j = 0;
  if (a.length * 16 < b.length) {
    for (let i = 0; i < a.length && j < b.length; i++) {
      const x = a[i];
      let lo = j;
      let hi = b.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (b[mid] < x) lo = mid + 1;
        else hi = mid;
      }
      j = lo;
      if (j < b.length && b[j] === x) out[n++] = x;
    }
  } else {
    let i = 0;
    while (i < a.length && j < b.length) {
      if (a[i] === b[j]) {
        out[n++] = a[i];
        i++;
        j++;
      } else if (a[i] < b[j]) i++;
      else j++;
    }
  }
  return out.subarray(0, n);
}

/** Union of ascending lists: a bitmap when they cover much of the block, else sort the concatenation. */
function union(parts: Uint32Array[], numSeries: number): Uint32Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0];
  let total = 0;
  for (const p of parts) total += p.length;
  if (total * 16 >= numSeries) {
    const seen = new Uint8Array(numSeries);
    for (const p of parts) for (let i = 0; i < p.length; i++) seen[p[i]] = 1;
    const out = new Uint32Array(total);
    let n = 0;
    for (let i = 0; i < numSeries; i++) if (seen[i]) out[n++] = i;
    return out.subarray(0, n);
  }
  const all = new Uint32Array(total);
  let n = 0;
  for (const p of parts) {
    all.set(p, n);
    n += p.length;
  }
  all.sort();
  let m = 0;
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) all[m++] = all[i];
  return all.subarray(0, m);
}

export interface ReadChunksOptions {
  /** Merge two ranges into one read when at most this many bytes separate them. Default 16 KiB. */
  maxGap?: number;
}

/**
 * Fetches chunk data for refs (from select on this block), returned in refs
 * order. Ranges that touch or lie within maxGap bytes are fetched with one
 * read: an R2 GET costs far more than the extra bytes. Each chunk's length,
 * encoding and CRC32C are checked. Results are views into the read buffers.
 */
export async function readChunks(src: RangeSource, refs: readonly ChunkRef[], opts: ReadChunksOptions = {}): Promise<Uint8Array[]> {
  const maxGap = opts.maxGap ?? 16 * 1024;
  const order = Array.from(refs.keys()).sort((a, b) => refs[a].offset - refs[b].offset);
  const ranges: { start: number; end: number; members: number[] }[] = [];
  let cur: { start: number; end: number; members: number[] } | undefined;
  for (const i of order) {
    const ref = refs[i];
    if (!Number.isSafeInteger(ref.offset) || !Number.isSafeInteger(ref.length) || ref.length < 0 || ref.offset < HEADER_SIZE) {
      throw new BlockCorruptError(`chunk ref offset ${ref.offset} length ${ref.length} is outside the chunks section`);
    }
    const end = ref.offset + chunkRecordSize(ref.length);
    if (end > src.size - TOC_SIZE) throw new BlockCorruptError(`chunk at offset ${ref.offset} ends at ${end}, past the chunks of a ${src.size}-byte object`);
    if (cur && ref.offset <= cur.end + maxGap) {
      if (end > cur.end) cur.end = end;
      cur.members.push(i);
    } else {
      cur = { start: ref.offset, end, members: [i] };
      ranges.push(cur);
    }
  }
  const bufs = await Promise.all(ranges.map((r) => readExact(src, r.start, r.end - r.start, "block chunks")));
  const out = new Array<Uint8Array>(refs.length);
  for (let k = 0; k < ranges.length; k++) {
    const r = ranges[k];
    for (const i of r.members) out[i] = checkChunk(bufs[k], refs[i].offset - r.start, refs[i]);
  }
  return out;
}

const encByte = new Uint8Array(1);

/** Verifies the chunk record at `at` in buf against its ref and returns the data. */
function checkChunk(buf: Uint8Array, at: number, ref: ChunkRef): Uint8Array {
  const where = `chunk at offset ${ref.offset}`;
  let pos = at;
  let length = 0;
  let mul = 1;
  for (;;) {
    if (pos >= buf.length || mul > 2 ** 49) throw new BlockCorruptError(`${where}: bad length varint`);
    const b = buf[pos++];
    length += (b & 0x7f) * mul;
    if (b < 0x80) break;
    mul *= 0x80;
  }
  if (length !== ref.length) throw new BlockCorruptError(`${where}: length ${length}, the index says ${ref.length}`);
  const encoding = buf[pos++];
  if (encoding !== ref.encoding) throw new BlockCorruptError(`${where}: encoding ${encoding}, the index says ${ref.encoding}`);
  if (pos + length + 4 > buf.length) throw new BlockCorruptError(`${where}: truncated`);
  const data = buf.subarray(pos, pos + length);
  encByte[0] = encoding;
  const got = crc32c(data, crc32c(encByte));
  const want = getU32(buf, pos + length);
  if (got !== want) throw new BlockCorruptError(`${where}: checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
  return data;
}

/**
 * Full check of a block, for scrubbing and tests: the header, the index, and
 * every chunk record in the chunks section (each CRC, and each referenced by
 * exactly one series with matching length and encoding), and the meta stats.
 * Reads the whole object (header, TOC, index, chunks).
 */
export async function verifyBlock(src: RangeSource): Promise<BlockIndex> {
  if (src.size < HEADER_SIZE + TOC_SIZE) throw new BlockCorruptError(`object of ${src.size} bytes is too small to be a block`);
  checkHeader(await readExact(src, 0, HEADER_SIZE, "block header"));
  const index = await openBlock(src);
  const meta = index.meta;
  const chunks = await readExact(src, HEADER_SIZE, index.toc.symbols - HEADER_SIZE, "block chunks");

  // Walk the records back to back; remember where each starts.
  const records = new Map<number, ChunkRef>();
  let pos = 0;
  while (pos < chunks.length) {
    const offset = HEADER_SIZE + pos;
    let length = 0;
    let mul = 1;
    let p = pos;
    for (;;) {
      if (p >= chunks.length || mul > 2 ** 49) throw new BlockCorruptError(`chunk record at offset ${offset}: bad length varint`);
      const b = chunks[p++];
      length += (b & 0x7f) * mul;
      if (b < 0x80) break;
      mul *= 0x80;
    }
    const ref: ChunkRef = { mint: 0, maxt: 0, offset, length, encoding: chunks[p] ?? -1, numSamples: 0, uncompressedBytes: -1 };
    checkChunk(chunks, pos, ref);
    records.set(offset, ref);
    pos += chunkRecordSize(length);
  }

  let numChunks = 0;
  let numSamples = 0;
  let minTime = Number.POSITIVE_INFINITY;
  let maxTime = Number.NEGATIVE_INFINITY;
  for (const s of index.select([], Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY)) {
    for (const c of s.chunks) {
      const rec = records.get(c.offset);
      if (!rec || rec.length !== c.length || rec.encoding !== c.encoding) {
        throw new BlockCorruptError(`index refers to a chunk at offset ${c.offset} that is not a chunk record start`);
      }
      records.delete(c.offset); // each record belongs to exactly one series
      numChunks++;
      numSamples += c.numSamples;
      if (c.mint < minTime) minTime = c.mint;
      if (c.maxt > maxTime) maxTime = c.maxt;
    }
  }
  if (records.size > 0) throw new BlockCorruptError(`${records.size} chunk records are not referenced by any series`);
  if (numChunks === 0) {
    minTime = 0;
    maxTime = -1;
  }
  if (numChunks !== meta.stats.numChunks || numSamples !== meta.stats.numSamples || minTime !== meta.minTime || maxTime !== meta.maxTime) {
    throw new BlockCorruptError(`block meta stats do not match the index (chunks ${numChunks}, samples ${numSamples}, time [${minTime}, ${maxTime}])`);
  }
  return index;
}
