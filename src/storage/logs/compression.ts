// Block codecs of log chunks (docs/log-format.md). Numbered once, never reused,
// like Loki's chunkenc.Encoding. Every codec here is synchronous: a block is cut
// inside the ingester's push, which must run from validation to the WAL insert
// without an await (the Durable Object's output gate then holds the reply until
// the row is committed), so CompressionStream (async only) cannot be used there.
//
// The default was chosen from bench/logs_compression.mjs, run inside workerd (table
// in docs/log-format.md): Brotli at quality 4 compresses access and JSON logs as
// tightly as gzip/deflate level 6 (8.5x and 4.5x vs 8.5x and 4.6x) with 1.5-1.7x
// less CPU (80-100 vs 50-66 MB/s), and decompresses at ~500 MB/s, far above what a
// query then does per line (~160 MB/s to strings). Snappy (snappyjs, pure JS) is slower than Brotli
// quality 1 here and compresses worse (4.9x / 2.7x), so it has no niche; the
// async CompressionStream codecs measure like node:zlib but cannot run in a push.

import {
  brotliCompressSync,
  brotliDecompressSync,
  constants as zc,
  deflateRawSync,
  gunzipSync,
  gzipSync,
  inflateRawSync,
} from "node:zlib";
import { CorruptDataError } from "../../model/bytes";
import { snappyCompress, snappyDecompress } from "../../proto/snappy";

export enum LogChunkEncoding {
  /** Stored as is: the open head block in snapshot(), or tests. */
  None = 0,
  /** gzip (RFC 1952), node:zlib level 6. Loki's default encoding. */
  Gzip = 1,
  /** Raw DEFLATE (RFC 1951), node:zlib level 6: gzip without its 18-byte wrapper and CRC-32 (the block has a CRC32C). */
  DeflateRaw = 2,
  /** Snappy block format (the remote_write codec). */
  Snappy = 3,
  /** Brotli (RFC 7932), node:zlib at BROTLI_QUALITY. The default. */
  Brotli = 4,
}

/** Chosen from the measured table in docs/log-format.md. */
export const DEFAULT_LOG_CHUNK_ENCODING = LogChunkEncoding.Brotli;

/**
 * Encoder-only setting (readers do not need it): 4 matches gzip -6's ratio at 1.7x
 * its speed; 1 would be ~3x faster again for ~15% more bytes on access logs.
 */
export const BROTLI_QUALITY = 4;

/** A block never decompresses to more than this (the reader refuses a larger declared length). */
export const MAX_RAW_BLOCK_BYTES = 64 << 20;

export function isLogChunkEncoding(n: number): n is LogChunkEncoding {
  return n >= 0 && n <= 4 && Number.isInteger(n);
}

export function encodingName(e: LogChunkEncoding): string {
  return LogChunkEncoding[e] ?? `unknown(${e})`;
}

/**
 * The output cap handed to node:zlib. workerd's decoders grow their output in 64 KiB
 * steps and refuse ("Memory limit exceeded") once the next step would pass
 * maxOutputLength, even when the data itself fits: a Brotli block of 100,000 bytes
 * fails with a cap of exactly 100,000. So the cap leaves one step of slack and the
 * exact length is checked afterwards; a bomb is still stopped within 64 KiB of it.
 */
function outputCap(rawLen: number): number {
  return rawLen + 65_536;
}

/** node:zlib answers Buffers; callers get a plain Uint8Array view of the same bytes. */
function plain(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function compressBlock(encoding: LogChunkEncoding, raw: Uint8Array): Uint8Array {
  switch (encoding) {
    case LogChunkEncoding.None:
      return raw.slice();
    case LogChunkEncoding.Gzip:
      return plain(gzipSync(raw, { level: 6 }));
    case LogChunkEncoding.DeflateRaw:
      return plain(deflateRawSync(raw, { level: 6 }));
    case LogChunkEncoding.Snappy:
      return snappyCompress(raw);
    case LogChunkEncoding.Brotli:
      return plain(
        brotliCompressSync(raw, {
          params: { [zc.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [zc.BROTLI_PARAM_SIZE_HINT]: raw.length },
        }),
      );
    default:
      throw new Error(`unknown log chunk encoding ${encoding as number}`);
  }
}

/**
 * Decompresses one block whose header declared `rawLen` bytes; anything else
 * (bad stream, wrong length) is a CorruptDataError naming `where`.
 */
export function decompressBlock(encoding: LogChunkEncoding, data: Uint8Array, rawLen: number, where: string): Uint8Array {
  if (rawLen > MAX_RAW_BLOCK_BYTES) throw new CorruptDataError(`${where}: declared ${rawLen} uncompressed bytes, more than ${MAX_RAW_BLOCK_BYTES}`);
  let out: Uint8Array;
  try {
    switch (encoding) {
      case LogChunkEncoding.None:
        out = data;
        break;
      case LogChunkEncoding.Gzip:
        out = plain(gunzipSync(data, { maxOutputLength: outputCap(rawLen) }));
        break;
      case LogChunkEncoding.DeflateRaw:
        out = plain(inflateRawSync(data, { maxOutputLength: outputCap(rawLen) }));
        break;
      case LogChunkEncoding.Snappy:
        out = snappyDecompress(data, rawLen);
        break;
      case LogChunkEncoding.Brotli:
        out = plain(brotliDecompressSync(data, { maxOutputLength: outputCap(rawLen) }));
        break;
      default:
        throw new CorruptDataError(`${where}: unknown encoding ${encoding as number}`);
    }
  } catch (e) {
    if (e instanceof CorruptDataError) throw e;
    throw new CorruptDataError(`${where}: ${encodingName(encoding)} data does not decompress: ${(e as Error).message}`);
  }
  if (out.length !== rawLen) throw new CorruptDataError(`${where}: decompressed to ${out.length} bytes, the header says ${rawLen}`);
  return out;
}
