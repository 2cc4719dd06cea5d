// Cross-checks src/proto against protobufjs (the reference implementation, with
// the .proto files in test/support/proto): random messages encoded by protobufjs
// decode identically with our decoders, and our encoders' output decodes
// identically with protobufjs. Runs in Node (protobufjs cannot run in workerd).

import { describe, expect, it } from "vitest";
import { decodeWriteRequestV1, decodeWriteRequestV2, newDecodeScratch } from "../../src/proto/remote_write";
import { decodeReadRequest, encodeReadResponse, encodeWriteRequestV1, encodeWriteRequestV2, type WriteSeriesV2 } from "../../src/proto/remote_read";
import { snappyCompress, snappyDecompress } from "../../src/proto/snappy";
import type { DecodedWrite, MetricMetadata, MetricType, SeriesSamples } from "../../src/proto/types";
import {
  WriteRequest,
  WriteRequestV2,
  decodeReadResponse,
  encodeReadRequest,
  encodeWriteV1,
  encodeWriteV2,
  sortedLabels,
  toObjectOptions,
  type PromMetadata,
  type PromQuery,
  type PromSeriesV2,
} from "../support/promproto";
import { mulberry32 as rng } from "../support/prng";

// ---------------------------------------------------------------------------
// Random inputs (seeded, so a failure reproduces)


const STALE = new Float64Array(new Uint32Array([2, 0x7ff00000]).buffer)[0];
/** Floats from a list; `STALE` is stored after, because V8 quiets signalling NaNs held in a JS array literal. */
function floats(list: number[], staleAt: number[] = []): Float64Array {
  const out = Float64Array.from(list);
  for (const i of staleAt) out[i] = STALE;
  return out;
}
const SPECIAL = floats([0, -0, 1, -1, Infinity, -Infinity, NaN, 0, Number.MAX_VALUE, Number.MIN_VALUE, 1e-300, 0.1], [7]);
const ALPHABET = ["a", "b", "_", "x", "9", ":", "é", "日", "本", "😀", " ", "\u00ff", "\u0000", "Z"];

class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  str(maxLen: number, asciiOnly = false): string {
    const n = this.int(maxLen + 1);
    let s = "";
    for (let i = 0; i < n; i++) s += asciiOnly ? String.fromCharCode(97 + this.int(26)) : ALPHABET[this.int(ALPHABET.length)];
    return s;
  }
  labelValue(): string {
    // Mostly short ASCII (the interning path), sometimes unicode or long (TextDecoder path).
    const k = this.int(10);
    if (k < 6) return this.str(12, true);
    if (k < 8) return this.str(8);
    return this.str(200, this.int(2) === 0);
  }
  timestamp(): number {
    const k = this.int(6);
    if (k === 0) return 0;
    if (k === 1) return -this.int(2 ** 40);
    if (k === 2) return (this.int(2) ? 1 : -1) * (2 ** 53 - 1 - this.int(1000));
    return 1_600_000_000_000 + this.int(2 ** 36);
  }
  /** Writes a value straight into the Float64Array (never through a JS array: that would quiet NaN payloads). */
  values(n: number): Float64Array {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = this.int(3) === 0 ? SPECIAL[this.int(SPECIAL.length)] : (this.r() - 0.5) * 10 ** this.int(20);
    return v;
  }
  series(): { labels: Record<string, string>; timestamps: Float64Array; values: Float64Array } {
    const labels: Record<string, string> = { __name__: "metric_" + this.str(6, true) };
    const nl = this.int(12);
    for (let i = 0; i < nl; i++) labels[this.int(4) === 0 ? this.str(6) : "l_" + this.str(8, true)] = this.labelValue();
    const n = this.int(5);
    const timestamps = new Float64Array(n);
    for (let i = 0; i < n; i++) timestamps[i] = this.timestamp();
    return { labels, timestamps, values: this.values(n) };
  }
  metadata(): PromMetadata {
    return { type: this.int(8), metricFamilyName: this.str(10, true), help: this.int(2) ? this.str(40) : "", unit: this.int(2) ? this.str(6, true) : "" };
  }
}

function flat(labels: Record<string, string>): string[] {
  return sortedLabels(labels).flat();
}

function bitsOf(a: Float64Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length * 2));
}

/** DecodedWrite as comparable plain data (values as bit patterns). */
function plain(d: DecodedWrite) {
  return {
    series: d.series.map((s) => ({
      labels: s.labels,
      timestamps: Array.from(d.timestamps.subarray(s.sampleStart, s.sampleStart + s.sampleCount)),
      valueBits: bitsOf(d.values.subarray(s.sampleStart, s.sampleStart + s.sampleCount)),
      histogramCount: s.histogramCount,
      exemplarCount: s.exemplarCount,
      createdTimestamp: s.createdTimestamp,
    })),
    metadata: d.metadata,
    sampleCount: d.sampleCount,
    histogramCount: d.histogramCount,
    exemplarCount: d.exemplarCount,
  };
}

// ---------------------------------------------------------------------------

describe("remote write 1.0 against protobufjs", () => {
  it("decodes 200 random protobufjs-encoded requests identically", () => {
    const g = new Gen(rng(1));
    const scratch = newDecodeScratch(4);
    for (let iter = 0; iter < 200; iter++) {
      const series = Array.from({ length: g.int(30) }, () => g.series());
      const metadata = Array.from({ length: g.int(4) }, () => g.metadata());
      const bytes = encodeWriteV1(
        series.map((s) => ({ labels: s.labels, samples: { timestamps: s.timestamps, values: s.values } })),
        metadata,
      );
      const expected = {
        series: series.map((s) => ({
          labels: flat(s.labels),
          timestamps: Array.from(s.timestamps),
          valueBits: bitsOf(s.values),
          histogramCount: 0,
          exemplarCount: 0,
          createdTimestamp: 0,
        })),
        metadata,
        sampleCount: series.reduce((a, s) => a + s.timestamps.length, 0),
        histogramCount: 0,
        exemplarCount: 0,
      };
      expect(plain(decodeWriteRequestV1(bytes))).toEqual(expected);
      // Same answer when reusing (and growing) one scratch.
      expect(plain(decodeWriteRequestV1(bytes, scratch))).toEqual(expected);
    }
  });

  it("counts exemplars and histograms sent by protobufjs", () => {
    const bytes = WriteRequest.encode(
      WriteRequest.create({
        timeseries: [
          {
            labels: [{ name: "__name__", value: "h" }],
            samples: [{ value: 1, timestamp: 5 }],
            exemplars: [{ labels: [{ name: "trace_id", value: "t" }], value: 2, timestamp: 5 }, { value: 3, timestamp: 6 }],
            histograms: [{ countInt: 3, sum: 2.5, schema: -2, timestamp: 5 }],
          },
        ],
      }),
    ).finish();
    const d = decodeWriteRequestV1(bytes);
    expect(d.series[0]).toMatchObject({ labels: ["__name__", "h"], sampleCount: 1, exemplarCount: 2, histogramCount: 1 });
    expect([d.histogramCount, d.exemplarCount]).toEqual([1, 2]);
  });

  it("our encoder's output decodes identically with protobufjs", () => {
    const g = new Gen(rng(2));
    for (let iter = 0; iter < 200; iter++) {
      const series = Array.from({ length: g.int(30) }, () => g.series());
      const metadata: MetricMetadata[] = Array.from({ length: g.int(4) }, () => {
        const m = g.metadata();
        return { ...m, type: m.type as MetricType };
      });
      const ours: SeriesSamples[] = series.map((s) => ({ labels: flat(s.labels), timestamps: s.timestamps, values: s.values }));
      const bytes = encodeWriteRequestV1(ours, metadata);
      const msg = WriteRequest.decode(bytes) as unknown as {
        timeseries: { labels: { name: string; value: string }[]; samples: { value: number; timestamp: unknown }[] }[];
      };
      const obj = WriteRequest.toObject(WriteRequest.decode(bytes), toObjectOptions) as {
        timeseries: { labels: { name: string; value: string }[]; samples: { timestamp: number }[] }[];
        metadata: PromMetadata[];
      };
      expect(obj.timeseries.length).toBe(series.length);
      obj.timeseries.forEach((ts, i) => {
        expect(ts.labels.flatMap((l) => [l.name, l.value])).toEqual(ours[i].labels);
        expect(ts.samples.map((s) => s.timestamp)).toEqual(Array.from(ours[i].timestamps));
        // Values read from the decoded message objects straight into a Float64Array: bit-exact.
        const v = new Float64Array(msg.timeseries[i].samples.length);
        msg.timeseries[i].samples.forEach((s, j) => (v[j] = s.value));
        expect(bitsOf(v)).toEqual(bitsOf(ours[i].values));
      });
      expect(obj.metadata).toEqual(metadata);
    }
  });
});

describe("remote write 2.0 against protobufjs", () => {
  function randomV2(g: Gen): PromSeriesV2[] {
    return Array.from({ length: g.int(30) }, () => {
      const s = g.series();
      const out: PromSeriesV2 = { labels: s.labels, samples: { timestamps: s.timestamps, values: s.values } };
      if (g.int(3) === 0) out.metadata = { type: g.int(8), help: g.int(2) ? g.str(30) : "", unit: g.int(2) ? g.str(5, true) : "" };
      if (g.int(3) === 0) out.createdTimestamp = 1_600_000_000_000 + g.int(1e9);
      if (g.int(5) === 0) out.histograms = 1 + g.int(3);
      if (g.int(5) === 0) out.exemplars = 1 + g.int(3);
      return out;
    });
  }

  function expectedMetadata(series: PromSeriesV2[]): MetricMetadata[] {
    const out: MetricMetadata[] = [];
    const seen = new Map<string, MetricMetadata>();
    for (const s of series) {
      const m = s.metadata;
      if (m === undefined || (m.type === 0 && !m.help && !m.unit)) continue;
      const md = { type: m.type as MetricType, metricFamilyName: s.labels.__name__, help: m.help ?? "", unit: m.unit ?? "" };
      const prev = seen.get(md.metricFamilyName);
      if (prev && prev.type === md.type && prev.help === md.help && prev.unit === md.unit) continue;
      seen.set(md.metricFamilyName, md);
      out.push(md);
    }
    return out;
  }

  for (const as of ["sample", "series"] as const) {
    it(`decodes 200 random protobufjs-encoded requests identically (created timestamp per ${as})`, () => {
      const g = new Gen(rng(as === "sample" ? 3 : 4));
      for (let iter = 0; iter < 200; iter++) {
        const series = randomV2(g);
        const bytes = encodeWriteV2(series, { createdTimestampAs: as });
        const got = plain(decodeWriteRequestV2(bytes));
        expect(got).toEqual({
          series: series.map((s) => {
            const c = s.samples as { timestamps: Float64Array; values: Float64Array };
            return {
              labels: flat(s.labels),
              timestamps: Array.from(c.timestamps),
              valueBits: bitsOf(c.values),
              histogramCount: s.histograms ?? 0,
              exemplarCount: s.exemplars ?? 0,
              // Per-sample start timestamps only exist when the series has samples.
              createdTimestamp: as === "series" || c.timestamps.length > 0 ? (s.createdTimestamp ?? 0) : 0,
            };
          }),
          metadata: expectedMetadata(series),
          sampleCount: series.reduce((a, s) => a + (s.samples as { values: Float64Array }).values.length, 0),
          histogramCount: series.reduce((a, s) => a + (s.histograms ?? 0), 0),
          exemplarCount: series.reduce((a, s) => a + (s.exemplars ?? 0), 0),
        });
      }
    });
  }

  it("our encoder's output decodes identically with protobufjs", () => {
    const g = new Gen(rng(5));
    for (let iter = 0; iter < 200; iter++) {
      const raw = Array.from({ length: g.int(30) }, () => g.series());
      const metadata: MetricMetadata[] = [];
      const series: WriteSeriesV2[] = raw.map((s) => {
        const out: WriteSeriesV2 = { labels: flat(s.labels), timestamps: s.timestamps, values: s.values };
        if (g.int(3) === 0) out.createdTimestamp = 1_700_000_000_000 + g.int(1e6);
        if (g.int(3) === 0) metadata.push({ type: (1 + g.int(7)) as MetricType, metricFamilyName: s.labels.__name__, help: g.str(20), unit: g.str(3, true) });
        return out;
      });
      const as = g.int(2) ? "sample" : "series";
      const bytes = encodeWriteRequestV2(series, metadata, { createdTimestampAs: as });
      const msg = WriteRequestV2.decode(bytes) as unknown as { timeseries: { samples: { value: number }[] }[] };
      const obj = WriteRequestV2.toObject(WriteRequestV2.decode(bytes), toObjectOptions) as {
        symbols: string[];
        timeseries: {
          labelsRefs: number[];
          samples: { timestamp: number; startTimestamp: number }[];
          metadata?: { type: number; helpRef: number; unitRef: number };
          createdTimestamp: number;
        }[];
      };
      expect(obj.symbols[0]).toBe("");
      expect(new Set(obj.symbols).size).toBe(obj.symbols.length);
      const byName = new Map(metadata.map((m) => [m.metricFamilyName, m]));
      obj.timeseries.forEach((ts, i) => {
        const s = series[i];
        expect(ts.labelsRefs.map((r) => obj.symbols[r])).toEqual(s.labels);
        expect(ts.samples.map((x) => x.timestamp)).toEqual(Array.from(s.timestamps));
        const v = new Float64Array(msg.timeseries[i].samples.length);
        msg.timeseries[i].samples.forEach((x, j) => (v[j] = x.value));
        expect(bitsOf(v)).toEqual(bitsOf(s.values));
        const created = s.createdTimestamp ?? 0;
        if (as === "sample") {
          expect(ts.createdTimestamp).toBe(0);
          for (const x of ts.samples) expect(x.startTimestamp).toBe(created);
        } else {
          expect(ts.createdTimestamp).toBe(created);
          for (const x of ts.samples) expect(x.startTimestamp).toBe(0);
        }
        const md = byName.get(s.labels[s.labels.indexOf("__name__") + 1]);
        if (md === undefined) expect(ts.metadata ?? null).toBeNull();
        else {
          expect(ts.metadata!.type).toBe(md.type);
          expect(obj.symbols[ts.metadata!.helpRef]).toBe(md.help);
          expect(obj.symbols[ts.metadata!.unitRef]).toBe(md.unit);
        }
      });
    }
  });
});

describe("remote read against protobufjs", () => {
  it("decodes 200 random protobufjs-encoded read requests identically", () => {
    const g = new Gen(rng(6));
    for (let iter = 0; iter < 200; iter++) {
      const queries: PromQuery[] = Array.from({ length: g.int(4) }, () => ({
        startMs: g.timestamp(),
        endMs: g.timestamp(),
        matchers: Array.from({ length: g.int(5) }, () => ({ type: g.int(4), name: g.str(10), value: g.labelValue() })),
      }));
      const types = Array.from({ length: g.int(3) }, () => g.int(2));
      expect(decodeReadRequest(encodeReadRequest(queries, types))).toEqual({ queries, acceptedResponseTypes: types });
    }
  });

  it("our read responses decode identically with protobufjs (also through snappy)", () => {
    const g = new Gen(rng(7));
    for (let iter = 0; iter < 100; iter++) {
      const results: SeriesSamples[][] = Array.from({ length: g.int(4) }, () =>
        Array.from({ length: g.int(10) }, () => {
          const s = g.series();
          return { labels: flat(s.labels), timestamps: s.timestamps, values: s.values };
        }),
      );
      const bytes = snappyDecompress(snappyCompress(encodeReadResponse(results)), 1 << 26);
      const decoded = decodeReadResponse(bytes);
      expect(decoded.length).toBe(results.length);
      decoded.forEach((r, i) => {
        expect(r.map((s) => s.flatLabels)).toEqual(results[i].map((s) => s.labels));
        expect(r.map((s) => Array.from(s.timestamps))).toEqual(results[i].map((s) => Array.from(s.timestamps)));
        expect(r.map((s) => bitsOf(s.values))).toEqual(results[i].map((s) => bitsOf(s.values)));
      });
    }
  });
});

describe("stale markers and extremes through protobufjs", () => {
  it("keeps 0x7ff0000000000002 bit for bit both ways", () => {
    expect(bitsOf(SPECIAL).slice(14, 16)).toEqual([2, 0x7ff00000]);
    const values = floats([0, -0, NaN, Infinity], [0]);
    const timestamps = new Float64Array([-1, -(2 ** 53 - 1), 2 ** 53 - 1, 0]);
    const theirs = decodeWriteRequestV1(encodeWriteV1([{ labels: { __name__: "up" }, samples: { timestamps, values } }]));
    expect(bitsOf(theirs.values)).toEqual([2, 0x7ff00000, 0, 0x80000000, ...bitsOf(new Float64Array([NaN, Infinity]))]);
    expect(Array.from(theirs.timestamps)).toEqual(Array.from(timestamps));
    const back = decodeReadResponse(encodeReadResponse([[{ labels: ["__name__", "up"], timestamps, values }]]));
    expect(bitsOf(back[0][0].values)).toEqual(bitsOf(values));
    expect(Array.from(back[0][0].timestamps)).toEqual(Array.from(timestamps));
  });
});
