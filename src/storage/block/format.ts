// Block format: one immutable R2 object per head flush per shard, holding many
// series. Constants, types and the fixed-size header/TOC codecs shared by the
// writer and the reader. Byte layout: docs/block-format.md.
//
// Pure module (no platform imports) so the same code runs in the Durable
// Object that writes blocks, the Worker that reads them and in tests.

import { crc32c } from "../crc32c";
import type { FlatLabels } from "../../model/labels";

/** "EIBK" (Edge Ingester BlocK), at the start and again at the very end. */
export const BLOCK_MAGIC = 0x4b424945; // bytes 45 49 42 4b, read as u32le
/**
 * The version this code writes. 2: a log chunk's ref also carries its uncompressed
 * size, so index stats and volumes need no chunk reads. Readers accept 1 too: blocks
 * already in R2 stay readable (docs/block-format.md "Compatibility").
 */
export const BLOCK_VERSION = 2;

/** Versions the reader decodes. */
function readable(version: number): boolean {
  return version === 1 || version === 2;
}

/** Header: magic:u32le version:u8 reserved:u8[3]. Chunks start right after it. */
export const HEADER_SIZE = 8;

/**
 * TOC: six u64le offsets, version:u32le, flags:u32le, crc32c:u32le, magic:u32le.
 * Fixed size so a reader fetches it with one suffix range read.
 */
export const TOC_SIZE = 64;

/** Bytes of each index section's trailing CRC32C. */
export const SECTION_CRC_SIZE = 4;

/** Per-chunk bytes besides the data: encoding:u8 and crc32c:u32le (plus the length varint). */
export const CHUNK_FIXED_OVERHEAD = 1 + 4;

/**
 * Chunk encodings. Readers treat chunk bytes as opaque, so new numbers need no reader
 * change, unless their refs carry extra fields (LOG refs do from version 2).
 */
export enum ChunkEncoding {
  /** Prometheus XOR (Gorilla) float chunk, byte-identical to tsdb/chunkenc. */
  XOR = 1,
  /** A log chunk (src/storage/logs/chunk.ts, docs/log-format.md): its own header names its codec. */
  LOG = 2,
}

/** Where one chunk lives in the block and what it covers. */
export interface ChunkRef {
  /** First and last sample timestamp (ms), inclusive. */
  mint: number;
  maxt: number;
  /** Absolute byte offset of the chunk record (its length varint) in the block object. */
  offset: number;
  /** Length of the chunk data alone (the record adds a varint, the encoding byte and a CRC). */
  length: number;
  encoding: number;
  numSamples: number;
  /**
   * A log chunk's uncompressed line + structured metadata bytes (Loki's
   * UncompressedSize), from version 2 on; -1 when unknown (XOR chunks, version-1 blocks).
   */
  uncompressedBytes: number;
}

export interface BlockSeries {
  labels: FlatLabels;
  chunks: ChunkRef[];
}

export interface BlockStats {
  numSeries: number;
  numSamples: number;
  numChunks: number;
  /** Size of the whole block object in bytes. */
  bytes: number;
}

/** Caller-provided meta fields (not derived from the data). */
export interface BlockMetaFields {
  tenant: string;
  shard: number;
  /** WAL sequence range whose samples this block holds, so replay can skip it. */
  walRange: { from: number; to: number };
  /** Defaults to a fresh ULID (time-sortable, so R2 listings come back in flush order). */
  blockId?: string;
}

export interface BlockMeta {
  /** Format version the block was written with. */
  version: number;
  blockId: string;
  /** Smallest chunk mint and largest chunk maxt (ms). An empty block has minTime 0, maxTime -1. */
  minTime: number;
  maxTime: number;
  stats: BlockStats;
  tenant: string;
  shard: number;
  walRange: { from: number; to: number };
}

/**
 * Section offsets from the TOC, all absolute in the block object. Each section
 * ends where the next begins; the index is the contiguous range [symbols, toc).
 * JSON-serialisable so callers can cache it next to the index bytes.
 */
export interface Toc {
  version: number;
  symbols: number;
  series: number;
  postings: number;
  postingsTable: number;
  meta: number;
  /** Offset of the TOC itself, i.e. the block size minus TOC_SIZE. */
  toc: number;
}

/** Anything corrupt or truncated in a block. Thrown instead of ever returning wrong data. */
export class BlockCorruptError extends Error {
  override readonly name = "BlockCorruptError";
}

/** Bytes a uvarint of n takes. */
export function uvarintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Total bytes of a chunk record whose data is `length` bytes long. */
export function chunkRecordSize(length: number): number {
  return uvarintSize(length) + CHUNK_FIXED_OVERHEAD + length;
}

function putU32(b: Uint8Array, pos: number, v: number): void {
  b[pos] = v & 0xff;
  b[pos + 1] = (v >>> 8) & 0xff;
  b[pos + 2] = (v >>> 16) & 0xff;
  b[pos + 3] = (v >>> 24) & 0xff;
}

export function getU32(b: Uint8Array, pos: number): number {
  return (b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24)) >>> 0;
}

const TWO32 = 4294967296;

function putU64(b: Uint8Array, pos: number, v: number): void {
  putU32(b, pos, v % TWO32);
  putU32(b, pos + 4, Math.floor(v / TWO32));
}

function getU64(b: Uint8Array, pos: number): number {
  const hi = getU32(b, pos + 4);
  // Anything beyond 2^53 cannot be a real offset (R2 objects are at most 5 GiB).
  if (hi >= 0x200000) return Number.POSITIVE_INFINITY;
  return hi * TWO32 + getU32(b, pos);
}

export function encodeHeader(out: Uint8Array): void {
  putU32(out, 0, BLOCK_MAGIC);
  out[4] = BLOCK_VERSION;
  out[5] = out[6] = out[7] = 0;
}

/** Checks the 8-byte header. Only full verification reads it: queries go straight to the TOC. */
export function checkHeader(b: Uint8Array): void {
  if (b.length < HEADER_SIZE) throw new BlockCorruptError(`block header truncated: ${b.length} of ${HEADER_SIZE} bytes`);
  const magic = getU32(b, 0);
  if (magic !== BLOCK_MAGIC) throw new BlockCorruptError(`bad block magic 0x${magic.toString(16)} at offset 0`);
  if (!readable(b[4])) throw new BlockCorruptError(`unsupported block format version ${b[4]} in header at offset 4`);
  if (b[5] !== 0 || b[6] !== 0 || b[7] !== 0) throw new BlockCorruptError("non-zero reserved header bytes at offset 5");
}

export function encodeToc(toc: Toc): Uint8Array {
  const b = new Uint8Array(TOC_SIZE);
  putU64(b, 0, toc.symbols);
  putU64(b, 8, toc.series);
  putU64(b, 16, toc.postings);
  putU64(b, 24, toc.postingsTable);
  putU64(b, 32, toc.meta);
  putU64(b, 40, toc.toc);
  putU32(b, 48, toc.version);
  putU32(b, 52, 0); // flags, reserved
  putU32(b, 56, crc32c(b.subarray(0, 56)));
  putU32(b, 60, BLOCK_MAGIC);
  return b;
}

/**
 * Decodes and validates the TOC: the last TOC_SIZE bytes of a block of
 * `blockSize` bytes. Checks the trailing magic first so a truncated object
 * reads as truncated rather than as a checksum mismatch.
 */
export function decodeToc(b: Uint8Array, blockSize: number): Toc {
  if (b.length !== TOC_SIZE) throw new BlockCorruptError(`block TOC truncated: read ${b.length} of ${TOC_SIZE} bytes`);
  const where = `TOC at offset ${blockSize - TOC_SIZE}`;
  const magic = getU32(b, 60);
  if (magic !== BLOCK_MAGIC) {
    throw new BlockCorruptError(`bad block magic 0x${magic.toString(16)} at end of ${blockSize}-byte object (truncated or not a block)`);
  }
  const want = getU32(b, 56);
  const got = crc32c(b.subarray(0, 56));
  if (want !== got) throw new BlockCorruptError(`${where}: checksum ${got.toString(16)} does not match the stored ${want.toString(16)}`);
  const version = getU32(b, 48);
  if (!readable(version)) throw new BlockCorruptError(`${where}: unsupported block format version ${version}`);
  if (getU32(b, 52) !== 0) throw new BlockCorruptError(`${where}: unknown flags ${getU32(b, 52)}`);
  const toc: Toc = {
    version,
    symbols: getU64(b, 0),
    series: getU64(b, 8),
    postings: getU64(b, 16),
    postingsTable: getU64(b, 24),
    meta: getU64(b, 32),
    toc: getU64(b, 40),
  };
  checkToc(toc, blockSize);
  return toc;
}

/** Section bounds must be ordered, each section big enough for its CRC, and the TOC at the end. */
export function checkToc(toc: Toc, blockSize: number): void {
  const where = `TOC at offset ${blockSize - TOC_SIZE}`;
  if (!readable(toc.version)) throw new BlockCorruptError(`${where}: unsupported block format version ${toc.version}`);
  if (toc.toc !== blockSize - TOC_SIZE) {
    throw new BlockCorruptError(`${where}: records a ${toc.toc + TOC_SIZE}-byte block but the object has ${blockSize} bytes`);
  }
  const bounds = [HEADER_SIZE, toc.symbols, toc.series, toc.postings, toc.postingsTable, toc.meta, toc.toc];
  const names = ["header", "symbols", "series", "postings", "postings table", "meta", "TOC"];
  for (let i = 1; i < bounds.length; i++) {
    const min = bounds[i - 1] + (i === 1 ? 0 : SECTION_CRC_SIZE);
    if (!Number.isSafeInteger(bounds[i]) || bounds[i] < min) {
      throw new BlockCorruptError(`${where}: ${names[i]} offset ${bounds[i]} is before the end of the ${names[i - 1]} section (${min})`);
    }
  }
}
