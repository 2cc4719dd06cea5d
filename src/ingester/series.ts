// One series in the head: its labels, its closed XOR chunks and the open one it
// appends to, the last sample (for ordering rules) and, when the tenant allows
// out-of-order writes, a small sorted buffer of late samples.

import { STALE_NAN_HI, STALE_NAN_LO, XorAppender, XorIterator } from "../storage/chunk/xor";

/** The stale marker's high word with the quiet bit set, as V8 may leave it. */
export const QUIET_STALE_HI = STALE_NAN_HI | 0x00080000;
import type { FlatLabels } from "../model/labels";

export interface HeadChunk {
  mint: number;
  maxt: number;
  numSamples: number;
  data: Uint8Array;
  /** Wall-clock time the chunk's block was confirmed in R2; 0 while not flushed. */
  flushedAt: number;
}

// Raw bits of float64 values: the ordering rules compare bits, as Prometheus does
// (math.Float64bits), so NaN == NaN and the stale marker is told from other NaNs.
const scratch = new Float64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);

export function bitsHi(v: number): number {
  scratch[0] = v;
  return scratchWords[1];
}
export function bitsLo(v: number): number {
  scratch[0] = v;
  return scratchWords[0];
}

/** Samples older than the series' newest, kept sorted by time. */
export class OooBuffer {
  timestamps = new Float64Array(8);
  values = new Float64Array(8);
  length = 0;

  /** Index of t, or -(insertion point) - 1. */
  find(t: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timestamps[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.length && this.timestamps[lo] === t ? lo : -lo - 1;
  }

  /** Inserts a sample given its value's bits (hi:lo words): bit-exact for every pattern. */
  insertBits(t: number, hi: number, lo: number): void {
    const idx = this.find(t);
    if (idx >= 0) return;
    const at = -idx - 1;
    if (this.length === this.timestamps.length) {
      const ts = new Float64Array(this.length * 2);
      const vs = new Float64Array(this.length * 2);
      ts.set(this.timestamps);
      vs.set(this.values);
      this.timestamps = ts;
      this.values = vs;
    }
    this.timestamps.copyWithin(at + 1, at, this.length);
    this.values.copyWithin(at + 1, at, this.length);
    this.timestamps[at] = t;
    const w = new Uint32Array(this.values.buffer, at * 8, 2);
    w[0] = lo;
    w[1] = hi;
    this.length++;
  }
}

export class MemSeries {
  readonly closed: HeadChunk[] = [];
  open: XorAppender | null = null;
  lastT = -Infinity;
  lastHi = 0;
  lastLo = 0;
  ooo: OooBuffer | null = null;
  /** Wall-clock time of the last append, for the idle rule. */
  lastAppendAt = 0;

  // Staging state of the push being validated (see append.ts): the series' last
  // sample as if the push's accepted samples so far were already appended.
  stageEpoch = 0;
  stageT = -Infinity;
  stageHi = 0;
  stageLo = 0;

  constructor(
    readonly id: number,
    readonly key: string,
    readonly labels: FlatLabels,
  ) {}

  get minTime(): number {
    if (this.closed.length > 0) return Math.min(this.closed[0].mint, this.ooo?.length ? this.ooo.timestamps[0] : Infinity);
    const openMin = this.open && this.open.numSamples > 0 ? this.open.minTime : Infinity;
    return Math.min(openMin, this.ooo?.length ? this.ooo.timestamps[0] : Infinity);
  }

  /**
   * Appends a sample already accepted by the ordering rules (a push being
   * committed, or a WAL record being replayed).
   */
  appendAccepted(t: number, v: number, maxSamplesPerChunk: number, maxChunkAgeMs: number): void {
    scratch[0] = v;
    let hi = scratchWords[1];
    const lo = scratchWords[0];
    // V8 may have quieted the stale marker (a signalling NaN) on its way here: restore it.
    if (hi === QUIET_STALE_HI && lo === STALE_NAN_LO) hi = STALE_NAN_HI;
    this.appendAcceptedBits(t, hi, lo, maxSamplesPerChunk, maxChunkAgeMs);
  }

  /** appendAccepted, given the value's bits (hi:lo words, as Uint32Array reads them): bit-exact. */
  appendAcceptedBits(t: number, hi: number, lo: number, maxSamplesPerChunk: number, maxChunkAgeMs: number): void {
    if (t > this.lastT) {
      let open = this.open;
      if (open !== null && (open.numSamples >= maxSamplesPerChunk || t - open.minTime >= maxChunkAgeMs)) {
        this.cut();
        open = null;
      }
      if (open === null) open = this.open = new XorAppender();
      open.appendBits(t, hi, lo);
      this.lastT = t;
      this.lastHi = hi;
      this.lastLo = lo;
    } else if (t < this.lastT) {
      (this.ooo ??= new OooBuffer()).insertBits(t, hi, lo);
    }
    // t === lastT: an exact duplicate, already stored.
  }

  /** Closes the open chunk. */
  cut(): void {
    const open = this.open;
    if (open === null || open.numSamples === 0) return;
    this.closed.push({ mint: open.minTime, maxt: open.maxTime, numSamples: open.numSamples, data: open.finish(), flushedAt: 0 });
    this.open = null;
  }

  /** Turns the out-of-order buffer into a closed chunk (it may overlap others; readers merge). */
  cutOutOfOrder(): void {
    const ooo = this.ooo;
    if (ooo === null || ooo.length === 0) return;
    const app = new XorAppender(ooo.length * 4);
    for (let i = 0; i < ooo.length; i++) app.append(ooo.timestamps[i], ooo.values[i]);
    this.closed.push({ mint: ooo.timestamps[0], maxt: ooo.timestamps[ooo.length - 1], numSamples: ooo.length, data: app.finish(), flushedAt: 0 });
    this.ooo = null;
  }

  /** Restores the last sample (after a checkpoint), so the ordering rules still hold. */
  restoreLast(t: number, v: number): void {
    if (t <= this.lastT) return;
    this.lastT = t;
    scratch[0] = v;
    const lo = scratchWords[0];
    let hi = scratchWords[1];
    if (hi === QUIET_STALE_HI && lo === STALE_NAN_LO) hi = STALE_NAN_HI; // as in appendAccepted
    this.lastHi = hi;
    this.lastLo = lo;
  }

  /** Bytes of chunk data held in memory. */
  bytes(): number {
    let n = this.open ? this.open.bytes().length : 0;
    for (const c of this.closed) n += c.data.length;
    if (this.ooo) n += this.ooo.length * 16;
    return n;
  }

  /** The value stored at exactly t, as [hi, lo] bits, or null. Used for out-of-order duplicate checks (rare path). */
  bitsAt(t: number): [number, number] | null {
    if (this.ooo) {
      const i = this.ooo.find(t);
      if (i >= 0) return [bitsHi(this.ooo.values[i]), bitsLo(this.ooo.values[i])];
    }
    const chunks: Uint8Array[] = [];
    for (const c of this.closed) if (c.mint <= t && t <= c.maxt) chunks.push(c.data);
    if (this.open && this.open.numSamples > 0 && this.open.minTime <= t && t <= this.open.maxTime) chunks.push(this.open.bytes());
    for (const data of chunks) {
      const it = new XorIterator(data);
      while (it.next()) {
        if (it.t === t) return [it.valueHi, it.valueLo];
        if (it.t > t) break;
      }
    }
    return null;
  }
}
