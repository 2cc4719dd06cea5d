// What Loki's index statistics and volumes count for a log chunk: its entries and its
// UNCOMPRESSED size, the line bytes plus the structured metadata's name and value
// bytes (Loki's MemChunk.UncompressedSize: each block's head-block size, which adds
// len(line) and metaLabelsLen per entry). The flushed-chunk index Loki keeps stores
// it too (tsdb ChunkMeta.KB is UncompressedSize()/1024), and so does our block index
// from format version 2 (docs/block-format.md); for a version-1 block's chunk, and when
// a block is written without the head's counts, it is counted from the raw blocks here.
// And the share of a chunk a time range covers (Loki's util.GetFactorOfTime).

import { ByteReader, CorruptDataError } from "../../model/bytes";
import { cmpNs, NS_PER_MS } from "../../model/logtime";
import { decompressBlock } from "./compression";
import { logChunkBlocks } from "./chunk";

/**
 * Line + structured-metadata bytes of every entry the chunk stores (finish() or
 * snapshot() bytes), counted from the raw blocks without decoding a string: a line's
 * length is in front of it, and metadata names and values are symbols whose byte
 * lengths are read once per block (docs/log-format.md, "Raw block"). Throws
 * CorruptDataError on bad bytes.
 */
export function logChunkUncompressedBytes(bytes: Uint8Array): number {
  let total = 0;
  for (const [i, b] of logChunkBlocks(bytes).entries()) {
    const where = `log chunk block ${i}`;
    const raw = decompressBlock(b.encoding, bytes.subarray(b.dataAt, b.dataEnd), b.rawLen, `corrupt ${where}`);
    const r = new ByteReader(raw, where);
    const nSyms = r.uvarint();
    if (nSyms > raw.length) throw new CorruptDataError(`corrupt ${where}: ${nSyms} symbols in ${raw.length} bytes`);
    const symBytes = new Uint32Array(nSyms);
    for (let s = 0; s < nSyms; s++) {
      const n = r.uvarint();
      r.bytes(n);
      symBytes[s] = n;
    }
    for (let e = 0; e < b.entries; e++) {
      r.uvarint(); // ms delta
      r.uvarint(); // ns
      const len = r.uvarint();
      r.bytes(len);
      total += len;
      const pairs = r.uvarint();
      if (pairs > raw.length) throw new CorruptDataError(`corrupt ${where}: entry ${e} has ${pairs} metadata pairs`);
      for (let k = 0; k < pairs * 2; k++) {
        const ref = r.uvarint();
        if (ref >= nSyms) throw new CorruptDataError(`corrupt ${where}: entry ${e} names symbol ${ref} of ${nSyms}`);
        total += symBytes[ref];
      }
    }
    if (!r.done) throw new CorruptDataError(`corrupt ${where}: ${raw.length - r.pos} bytes after its ${b.entries} entries`);
  }
  return total;
}

/** A point in time as (ms, ns within the ms), the way log timestamps are kept. */
export interface NsPoint {
  ms: number;
  ns: number;
}

/** b - a in nanoseconds; exact while the difference is under 2^53 ns (104 days). */
function nsBetween(a: NsPoint, b: NsPoint): number {
  return (b.ms - a.ms) * NS_PER_MS + (b.ns - a.ns);
}

/**
 * Loki's util.GetFactorOfTime(from, through, minTime, maxTime): the share of a chunk's
 * span [min, max] that [from, through] covers; 0 when they do not meet, 1 for a chunk
 * whose entries share one timestamp. Loki scales a chunk's entries and bytes by it
 * (truncating) in index stats and volumes.
 */
export function factorOfTime(from: NsPoint, through: NsPoint, min: NsPoint, max: NsPoint): number {
  if (cmpNs(from.ms, from.ns, max.ms, max.ns) > 0 || cmpNs(through.ms, through.ns, min.ms, min.ns) < 0) return 0;
  const total = nsBetween(min, max);
  if (total === 0) return 1;
  const leading = Math.max(0, nsBetween(min, from));
  const trailing = Math.max(0, nsBetween(through, max));
  return (total - (leading + trailing)) / total;
}
