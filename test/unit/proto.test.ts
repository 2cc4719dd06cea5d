// src/proto inside workerd: round trips through our writer/encoders and decoders,
// bit-exact stale markers, negative timestamps, unicode, and every kind of bad
// input (truncation at every length, garbage, wrong wire types, bad symbol refs,
// corrupt or oversized snappy) failing with the right error type and no other.

import { describe, expect, it } from "vitest";
import { ProtoReader, WireType } from "../../src/proto/reader";
import { ProtoWriter } from "../../src/proto/writer";
import { decodeWriteRequestV1, decodeWriteRequestV2, newDecodeScratch } from "../../src/proto/remote_write";
import {
  decodeReadRequest,
  decodeReadResponse,
  encodeReadRequest,
  encodeReadResponse,
  encodeWriteRequestV1,
  encodeWriteRequestV2,
  type WriteSeriesV2,
} from "../../src/proto/remote_read";
import { BodyTooLargeError, SnappyError, snappyCompress, snappyDecodedLength, snappyDecompress } from "../../src/proto/snappy";
import SnappyJS from "snappyjs";
import { MatchType, MetricType, ProtoError, ReadResponseType, type DecodedWrite, type MetricMetadata, type SeriesSamples } from "../../src/proto/types";

const STALE_BITS = [2, 0x7ff00000];
const STALE = new Float64Array(new Uint32Array(STALE_BITS).buffer)[0];

/** Float64Array from a list, with STALE stored afterwards at `staleAt` (a JS array literal would quiet its NaN payload). */
function floats(list: number[], staleAt: number[] = []): Float64Array {
  const out = Float64Array.from(list);
  for (const i of staleAt) out[i] = STALE;
  return out;
}

function bitsOf(a: Float64Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length * 2));
}

function series(labels: string[], ts: number[], vs: Float64Array | number[]): SeriesSamples {
  return { labels, timestamps: Float64Array.from(ts), values: vs instanceof Float64Array ? vs : Float64Array.from(vs) };
}

/** The samples of decoded series i. */
function samplesOf(d: DecodedWrite, i: number): { ts: number[]; bits: number[] } {
  const s = d.series[i];
  return {
    ts: Array.from(d.timestamps.subarray(s.sampleStart, s.sampleStart + s.sampleCount)),
    bits: bitsOf(d.values.subarray(s.sampleStart, s.sampleStart + s.sampleCount)),
  };
}

/** Runs fn and returns what it threw (or null); fails the test on anything thrown that is not `type`. */
function thrownBy(fn: () => unknown, type: new (...args: never[]) => Error = ProtoError): Error | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (!(e instanceof type)) throw new Error(`expected ${type.name}, got ${String(e)}`, { cause: e });
    return e;
  }
}

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));

const sample: SeriesSamples[] = [
  series(["__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "host:9100", "job", "node", "mode", "idle"], [1_700_000_000_000, 1_700_000_015_000], [1234.5, 1250.25]),
  series(["__name__", "up", "job", "node"], [1_700_000_000_000], floats([0], [0])),
  series(["__name__", "neg", "zone", "日本語 ✓ 😀"], [-1, -1_700_000_000_000, -(2 ** 53 - 1)], [-0, -Infinity, Number.MIN_VALUE]),
];
const metadata: MetricMetadata[] = [
  { type: MetricType.COUNTER, metricFamilyName: "node_cpu_seconds_total", help: "Seconds the CPUs spent in each mode.", unit: "seconds" },
  { type: MetricType.GAUGE, metricFamilyName: "up", help: "", unit: "" },
];

describe("reader and writer", () => {
  it("varints: uint32, int64 (negative as 10-byte two's complement), zigzag, double", () => {
    const w = new ProtoWriter(16);
    w.uint32(1, 0).uint32(1, 127).uint32(1, 128).uint32(1, 0xffffffff);
    w.int64(2, -1).int64(2, -(2 ** 53 - 1)).int64(2, 2 ** 53 - 1).int64(2, 1_700_000_000_000).int64(2, -2_147_483_648);
    w.int32(3, -5).sint32(4, -3).sint64(5, -(2 ** 40)).sint64(5, 2 ** 40);
    w.double(6, STALE).double(6, -0);
    const b = w.finish();
    const r = new ProtoReader(b);
    const next = (wt: WireType) => {
      const t = r.tag();
      expect(t & 7).toBe(wt);
      return t >>> 3;
    };
    for (const v of [0, 127, 128, 0xffffffff]) {
      expect(next(WireType.VARINT)).toBe(1);
      expect(r.uint32()).toBe(v);
    }
    for (const v of [-1, -(2 ** 53 - 1), 2 ** 53 - 1, 1_700_000_000_000, -2_147_483_648]) {
      next(WireType.VARINT);
      const at = r.pos;
      expect(r.int64()).toBe(v);
      if (v < 0) expect(r.pos - at).toBe(10);
    }
    next(WireType.VARINT);
    expect(r.int32()).toBe(-5);
    next(WireType.VARINT);
    expect(r.sint32()).toBe(-3);
    next(WireType.VARINT);
    expect(r.sint64()).toBe(-(2 ** 40));
    next(WireType.VARINT);
    expect(r.sint64()).toBe(2 ** 40);
    next(WireType.I64);
    const out = new Float64Array(2);
    out[0] = r.double();
    next(WireType.I64);
    out[1] = r.double();
    expect(bitsOf(out)).toEqual([...STALE_BITS, 0, 0x80000000]);
    expect(r.more()).toBe(false);
    // -1 as the canonical 10-byte varint, near the end of the buffer (slow path) and with room (fast path).
    expect(new ProtoReader(hex("ffffffffffffffffff01")).int64()).toBe(-1);
    expect(new ProtoReader(hex("ffffffffffffffffff0100000000")).int64()).toBe(-1);
  });

  it("sub-messages of 127, 128 and 20000 bytes get minimal length prefixes (ldelim shifts)", () => {
    for (const n of [0, 1, 126, 127, 128, 16383, 16384, 20000]) {
      const w = new ProtoWriter(8);
      const payload = "x".repeat(n);
      w.message(1, () => {
        w.raw(new TextEncoder().encode(payload));
      });
      w.uint32(2, 7);
      const b = w.finish();
      const r = new ProtoReader(b);
      expect(r.tag()).toBe((1 << 3) | 2);
      const s = r.string();
      expect(s.length).toBe(n);
      expect(s === payload).toBe(true);
      expect(r.tag()).toBe(2 << 3);
      expect(r.uint32()).toBe(7);
      expect(b.length).toBe(1 + (n < 128 ? 1 : n < 16384 ? 2 : 3) + n + 2);
    }
  });

  it("strings: ASCII, unicode, long, interned, invalid UTF-8 as U+FFFD", () => {
    const values = ["", "a", "job", "日本語", "😀x", "é".repeat(100), "a".repeat(48), "b".repeat(49), "c".repeat(300), "job"];
    const w = new ProtoWriter();
    for (const v of values) w.string(1, v);
    w.bytes(1, Uint8Array.of(0x61, 0xff, 0x62)); // invalid UTF-8
    w.bytes(1, Uint8Array.of(0xe6, 0x97)); // truncated sequence
    const r = new ProtoReader(w.finish());
    const got: string[] = [];
    while (r.more()) {
      r.tag();
      got.push(r.string());
    }
    expect(got).toEqual([...values, "a\uFFFDb", "\uFFFD"]);
  });

  it("skips unknown fields of every wire type; refuses groups, wire types 6/7 and field 0", () => {
    const w = new ProtoWriter();
    w.uint32(9, 300).fixed64(10, 5).string(11, "skip me").fixed32(12, 9).int64(13, -1).uint32(2, 1); // 2: reserved (Cortex's source)
    w.message(1, () => {
      w.uint32(15, 1);
      w.message(1, () => w.string(1, "__name__").string(2, "up").double(7, 1));
      w.message(2, () => w.double(1, 3).int64(2, 4).string(9, "x"));
    });
    const d = decodeWriteRequestV1(w.finish());
    expect(d.series).toHaveLength(1);
    expect(d.series[0].labels).toEqual(["__name__", "up"]);
    expect(samplesOf(d, 0).ts).toEqual([4]);
    for (const bad of ["0b", "0c", "0e", "0f", "1b", "4b", "4c", "4e", "4f", "00", "0000", "8000"]) {
      const e = thrownBy(() => decodeWriteRequestV1(hex(bad)));
      expect(e, bad).not.toBeNull();
      expect(e!.message).toMatch(/byte offset 0/);
    }
    // Unknown field 9: group start/end, wire types 6 and 7; known field 1 with a group wire type.
    expect(thrownBy(() => decodeWriteRequestV1(hex("4b")))!.message).toMatch(/group \(wire type 3\) not supported/);
    expect(thrownBy(() => decodeWriteRequestV1(hex("4c")))!.message).toMatch(/group \(wire type 4\) not supported/);
    expect(thrownBy(() => decodeWriteRequestV1(hex("4e")))!.message).toMatch(/invalid wire type 6/);
    expect(thrownBy(() => decodeWriteRequestV1(hex("4f")))!.message).toMatch(/invalid wire type 7/);
    expect(thrownBy(() => decodeWriteRequestV1(hex("0b")))!.message).toMatch(/WriteRequest.timeseries \(number 1\) has wire type 3/);
    expect(thrownBy(() => decodeWriteRequestV1(hex("00")))!.message).toMatch(/field number 0/);
  });

  it("refuses over-long and overflowing varints", () => {
    // 11-byte varint; 10th byte > 1.
    expect(thrownBy(() => new ProtoReader(hex("ffffffffffffffffffff01")).int64())!.message).toMatch(/64 bits|longer than 10/);
    expect(thrownBy(() => new ProtoReader(hex("ffffffffffffffffff02")).int64())!.message).toMatch(/overflows 64 bits/);
    expect(thrownBy(() => new ProtoReader(hex("ffffffffffffffffff0200000000")).int64())!.message).toMatch(/overflows 64 bits/);
    expect(thrownBy(() => new ProtoReader(hex("ff")).uint32())!.message).toMatch(/truncated varint at byte offset 0/);
    // A length prefix beyond the message.
    expect(thrownBy(() => decodeWriteRequestV1(hex("0a05010203")))!.message).toMatch(/5 bytes overruns its message \(3 bytes left\) at byte offset 1/);
  });
});

describe("remote write 1.0", () => {
  it("round trips series, samples and metadata through our encoder and decoder", () => {
    const d = decodeWriteRequestV1(encodeWriteRequestV1(sample, metadata));
    expect(d.series.map((s) => s.labels)).toEqual(sample.map((s) => s.labels));
    expect(d.sampleCount).toBe(6);
    expect(d.timestamps.length).toBe(6);
    sample.forEach((s, i) => {
      expect(samplesOf(d, i)).toEqual({ ts: Array.from(s.timestamps), bits: bitsOf(s.values) });
      expect(d.series[i]).toMatchObject({ histogramCount: 0, exemplarCount: 0, createdTimestamp: 0 });
    });
    expect(samplesOf(d, 1).bits).toEqual(STALE_BITS);
    expect(samplesOf(d, 2).bits.slice(0, 2)).toEqual([0, 0x80000000]); // -0 survives
    expect(d.metadata).toEqual(metadata);
  });

  it("decodes the empty request", () => {
    for (const dec of [decodeWriteRequestV1, decodeWriteRequestV2]) {
      const d = dec(new Uint8Array(0));
      expect(d).toMatchObject({ series: [], sampleCount: 0, metadata: [], histogramCount: 0, exemplarCount: 0 });
      expect(d.timestamps.length).toBe(0);
    }
  });

  it("counts exemplars and histograms without decoding them", () => {
    const w = new ProtoWriter();
    w.message(1, () => {
      w.message(1, () => w.string(1, "__name__").string(2, "h"));
      w.message(3, () => w.double(2, 1));
      w.message(4, () => w.uint64(1, 3).int64(15, 5));
      w.message(4, () => w.uint64(1, 4));
    });
    const d = decodeWriteRequestV1(w.finish());
    expect(d.series[0]).toMatchObject({ sampleCount: 0, exemplarCount: 1, histogramCount: 2 });
    expect([d.exemplarCount, d.histogramCount]).toEqual([1, 2]);
  });

  it("reuses a scratch's capacity across calls and grows it", () => {
    const scratch = newDecodeScratch(2);
    const a = decodeWriteRequestV1(encodeWriteRequestV1(sample), scratch);
    expect(scratch.timestamps.length).toBeGreaterThanOrEqual(6);
    expect(a.timestamps.buffer).toBe(scratch.timestamps.buffer);
    const big = Array.from({ length: 100 }, (_, i) => series(["__name__", `m${i}`], [i, i + 1], [i, -i]));
    const b = decodeWriteRequestV1(encodeWriteRequestV1(big), scratch);
    expect(b.sampleCount).toBe(200);
    expect(b.timestamps.length).toBe(200);
    expect(Array.from(b.values.subarray(198))).toEqual([99, -99]);
    const cap = scratch.values.length;
    decodeWriteRequestV1(encodeWriteRequestV1(sample), scratch);
    expect(scratch.values.length).toBe(cap);
  });

  it("refuses known fields with the wrong wire type", () => {
    const cases: [string, (w: ProtoWriter) => void, RegExp][] = [
      ["timeseries as varint", (w) => w.uint32(1, 1), /WriteRequest.timeseries \(number 1\) has wire type 0/],
      ["metadata as fixed64", (w) => w.fixed64(3, 1), /WriteRequest.metadata/],
      ["label as varint", (w) => w.message(1, () => w.uint32(1, 1)), /TimeSeries.labels/],
      ["label name as varint", (w) => w.message(1, () => w.message(1, () => w.uint32(1, 1))), /Label.name/],
      ["sample value as varint", (w) => w.message(1, () => w.message(2, () => w.uint32(1, 1))), /Sample.value/],
      ["sample timestamp as fixed64", (w) => w.message(1, () => w.message(2, () => w.fixed64(2, 1))), /Sample.timestamp/],
      ["metadata type as string", (w) => w.message(3, () => w.string(1, "x")), /MetricMetadata.type/],
    ];
    for (const [name, build, re] of cases) {
      const w = new ProtoWriter();
      build(w);
      const e = thrownBy(() => decodeWriteRequestV1(w.finish()));
      expect(e, name).not.toBeNull();
      expect(e!.message, name).toMatch(re);
      expect(e!.message, name).toMatch(/at byte offset \d+/);
    }
  });
});

describe("remote write 2.0", () => {
  const v2: WriteSeriesV2[] = [
    { ...sample[0], createdTimestamp: 1_699_999_000_000 },
    { ...sample[1], metadata: { type: MetricType.GAUGE, metricFamilyName: "", help: "1 if up", unit: "" } },
    sample[2],
  ];

  it("round trips labels via symbols, samples, metadata and created timestamps (both 2.0 placements)", () => {
    for (const as of ["sample", "series"] as const) {
      const d = decodeWriteRequestV2(encodeWriteRequestV2(v2, [metadata[0]], { createdTimestampAs: as }));
      expect(d.series.map((s) => s.labels)).toEqual(sample.map((s) => s.labels));
      sample.forEach((s, i) => expect(samplesOf(d, i)).toEqual({ ts: Array.from(s.timestamps), bits: bitsOf(s.values) }));
      expect(d.series.map((s) => s.createdTimestamp)).toEqual([1_699_999_000_000, 0, 0]);
      expect(d.metadata).toEqual([metadata[0], { type: MetricType.GAUGE, metricFamilyName: "up", help: "1 if up", unit: "" }]);
      expect(d.sampleCount).toBe(6);
    }
  });

  it("takes series-level created_timestamp over samples' start_timestamp, else the first non-zero start", () => {
    const w = new ProtoWriter();
    for (const s of ["", "__name__", "a"]) w.string(4, s);
    w.message(5, () => {
      w.packedUint32(1, [1, 2]);
      w.message(2, () => w.double(1, 1).int64(2, 10));
      w.message(2, () => w.double(1, 2).int64(2, 20).int64(3, 7));
      w.message(2, () => w.double(1, 3).int64(2, 30).int64(3, 8));
    });
    w.message(5, () => {
      w.packedUint32(1, [1, 2]);
      w.message(2, () => w.double(1, 1).int64(2, 10).int64(3, 7));
      w.int64(6, 5);
    });
    const d = decodeWriteRequestV2(w.finish());
    expect(d.series.map((s) => s.createdTimestamp)).toEqual([7, 5]);
  });

  it("accepts unpacked label refs, symbols after the series, and counts histograms and exemplars", () => {
    const w = new ProtoWriter();
    w.message(5, () => {
      w.uint32(1, 1).uint32(1, 2).uint32(1, 3).uint32(1, 4); // unpacked
      w.message(2, () => w.double(1, 7).int64(2, 1));
      w.message(3, () => w.int64(15, 1));
      w.message(4, () => w.packedUint32(1, [3, 4]).double(2, 1));
      w.message(4, () => w.double(2, 1));
    });
    for (const s of ["", "__name__", "x", "job", "j"]) w.string(4, s);
    const d = decodeWriteRequestV2(w.finish());
    expect(d.series[0]).toMatchObject({ labels: ["__name__", "x", "job", "j"], sampleCount: 1, histogramCount: 1, exemplarCount: 2 });
    expect([d.histogramCount, d.exemplarCount]).toEqual([1, 2]);
  });

  it("emits metadata only when type, help or unit is set, once per distinct value", () => {
    const s = (name: string, md: MetricMetadata | null): WriteSeriesV2 => ({ ...series(["__name__", name, "i", String(Math.random())], [1], [1]), metadata: md });
    const none = { type: MetricType.UNKNOWN, metricFamilyName: "", help: "", unit: "" };
    const c = { type: MetricType.COUNTER, metricFamilyName: "", help: "h", unit: "" };
    const d = decodeWriteRequestV2(encodeWriteRequestV2([s("a", none), s("b", c), s("b", c), s("b", { ...c, help: "h2" }), s("c", null)]));
    expect(d.metadata).toEqual([
      { type: MetricType.COUNTER, metricFamilyName: "b", help: "h", unit: "" },
      { type: MetricType.COUNTER, metricFamilyName: "b", help: "h2", unit: "" },
    ]);
  });

  it("refuses bad symbol tables and references", () => {
    const build = (symbols: string[], body: (w: ProtoWriter) => void) => {
      const w = new ProtoWriter();
      for (const s of symbols) w.string(4, s);
      w.message(5, () => body(w));
      return w.finish();
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ["symbols[0] not empty", build(["x", "__name__"], (w) => w.packedUint32(1, [1, 0])), /symbols table must start with the empty string/],
      ["label ref out of range", build(["", "__name__", "x"], (w) => w.packedUint32(1, [1, 9])), /label reference 9 out of range of the symbols table \(3 symbols\)/],
      ["odd label refs", build(["", "__name__", "x"], (w) => w.packedUint32(1, [1, 2, 1])), /odd number of label references \(3\)/],
      ["help ref out of range", build(["", "__name__", "x"], (w) => w.packedUint32(1, [1, 2]).message(5, () => w.uint32(3, 3))), /help reference 3 out of range/],
      ["unit ref out of range", build(["", "__name__", "x"], (w) => w.packedUint32(1, [1, 2]).message(5, () => w.uint32(4, 1000))), /unit reference 1000 out of range/],
      ["refs without symbols", build([], (w) => w.packedUint32(1, [0, 0])), /out of range of the symbols table \(0 symbols\)/],
      ["truncated packed refs", build(["", "a"], (w) => w.bytes(1, Uint8Array.of(0x01, 0x80))), /truncated varint/],
      ["sample as varint", build([""], (w) => w.uint32(2, 1)), /TimeSeries.samples/],
      ["start timestamp as fixed64", build([""], (w) => w.message(2, () => w.fixed64(3, 1))), /Sample.start_timestamp/],
      ["symbols as varint", hex("2001"), /Request.symbols/],
    ];
    for (const [name, bytes, re] of cases) {
      const e = thrownBy(() => decodeWriteRequestV2(bytes));
      expect(e, name).not.toBeNull();
      expect(e!.message, name).toMatch(re);
    }
  });
});

describe("remote read", () => {
  it("round trips a read request (packed and unpacked response types, hints skipped)", () => {
    const queries = [
      { startMs: -5, endMs: 1_700_000_000_000, matchers: [{ type: MatchType.EQ, name: "__name__", value: "up" }, { type: MatchType.NRE, name: "job", value: "a|ö" }] },
      { startMs: 0, endMs: 0, matchers: [] },
    ];
    expect(decodeReadRequest(encodeReadRequest(queries, [ReadResponseType.STREAMED_XOR_CHUNKS, ReadResponseType.SAMPLES]))).toEqual({
      queries,
      acceptedResponseTypes: [1, 0],
    });
    const w = new ProtoWriter();
    w.message(1, () => w.int64(1, 1).message(4, () => w.int64(1, 15000).string(2, "rate")).int64(2, 2));
    w.uint32(2, 1).uint32(2, 0);
    expect(decodeReadRequest(w.finish())).toEqual({ queries: [{ startMs: 1, endMs: 2, matchers: [] }], acceptedResponseTypes: [1, 0] });
  });

  it("round trips a read response bit for bit", () => {
    const results = [sample, [], [sample[1]]];
    const back = decodeReadResponse(encodeReadResponse(results));
    expect(back.length).toBe(3);
    back.forEach((r, i) => {
      expect(r.map((s) => s.labels)).toEqual(results[i].map((s) => s.labels));
      expect(r.map((s) => Array.from(s.timestamps))).toEqual(results[i].map((s) => Array.from(s.timestamps)));
      expect(r.map((s) => bitsOf(s.values))).toEqual(results[i].map((s) => bitsOf(s.values)));
    });
    expect(bitsOf(back[2][0].values)).toEqual(STALE_BITS);
    expect(decodeReadResponse(encodeReadResponse([]))).toEqual([]);
  });
});

describe("stale markers once the codecs are optimised", () => {
  it("keep 0x7ff0000000000002 through 3,000 warm round trips of every codec", () => {
    const s = [series(["__name__", "up"], [1, 2, 3], floats([1, 0, -0], [1]))];
    const v1 = encodeWriteRequestV1(s);
    const v2 = encodeWriteRequestV2(s);
    const rr = encodeReadResponse([s]);
    for (let i = 0; i < 3000; i++) {
      const a = decodeWriteRequestV1(i % 2 ? v1 : encodeWriteRequestV1(s));
      const b = decodeWriteRequestV2(i % 2 ? v2 : encodeWriteRequestV2(s));
      const c = decodeReadResponse(i % 2 ? rr : encodeReadResponse([s]))[0][0];
      if (i % 500 === 499) {
        for (const v of [a.values, b.values, c.values]) expect(bitsOf(v)).toEqual([0, 0x3ff00000, ...STALE_BITS, 0, 0x80000000]);
      }
    }
  });
});

describe("truncation and garbage", () => {
  /** Offsets at which a top-level field starts (a prefix ending there is a valid, shorter message). */
  function topLevelBoundaries(bytes: Uint8Array): Set<number> {
    const r = new ProtoReader(bytes);
    const out = new Set<number>([0]);
    while (r.more()) {
      r.skipField(r.tag() & 7);
      out.add(r.pos);
    }
    return out;
  }

  const inputs: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
    ["v1", encodeWriteRequestV1(sample, metadata), decodeWriteRequestV1],
    ["v2", encodeWriteRequestV2([{ ...sample[0], createdTimestamp: 5, metadata: metadata[0] }, ...sample.slice(1)]), decodeWriteRequestV2],
    ["read request", encodeReadRequest([{ startMs: -1, endMs: 2 ** 45, matchers: [{ type: MatchType.RE, name: "job", value: "nöde.*" }] }], [0, 1]), decodeReadRequest],
    ["read response", encodeReadResponse([sample]), decodeReadResponse],
  ];

  for (const [name, bytes, decode] of inputs) {
    it(`${name}: every truncation throws ProtoError, except at top-level field boundaries`, () => {
      const ok = topLevelBoundaries(bytes);
      let refused = 0;
      for (let n = 0; n < bytes.length; n++) {
        const e = thrownBy(() => decode(bytes.subarray(0, n)));
        if (ok.has(n)) expect(e, `prefix ${n} of ${bytes.length}`).toBeNull();
        else {
          expect(e, `prefix ${n} of ${bytes.length}`).not.toBeNull();
          refused++;
        }
      }
      expect(refused).toBeGreaterThan(bytes.length / 2);
      // A copy of the prefix (so the bytes after it are really absent, not just out of range).
      for (let n = 1; n < bytes.length; n += 7) thrownBy(() => decode(bytes.slice(0, n)));
    });
  }

  it("random garbage and random byte flips never throw anything but ProtoError", () => {
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    const t0 = Date.now();
    for (let iter = 0; iter < 3000; iter++) {
      const [, valid, decode] = inputs[iter % inputs.length];
      let bytes: Uint8Array;
      if (iter % 2 === 0) {
        bytes = new Uint8Array(1 + Math.floor(rand() * 200));
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
      } else {
        bytes = valid.slice();
        for (let k = 0; k < 3; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      for (const dec of [decode, decodeWriteRequestV1, decodeWriteRequestV2]) thrownBy(() => dec(bytes));
    }
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});

describe("snappy", () => {
  const text = new TextEncoder().encode("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} ".repeat(200));

  it("round trips, and agrees with snappyjs both ways", () => {
    for (const input of [new Uint8Array(0), Uint8Array.of(1), text, encodeWriteRequestV1(sample, metadata), crypto.getRandomValues(new Uint8Array(5000))]) {
      const c = snappyCompress(input);
      expect(Array.from(snappyDecompress(c, input.length))).toEqual(Array.from(input));
      expect(Array.from(SnappyJS.uncompress(c))).toEqual(Array.from(input));
    }
    expect(snappyCompress(text).length).toBeLessThan(text.length / 5);
  });

  it("refuses a length preamble over the limit before decompressing: BodyTooLargeError, not SnappyError", () => {
    const c = snappyCompress(text);
    const e = thrownBy(() => snappyDecompress(c, text.length - 1), BodyTooLargeError) as BodyTooLargeError;
    expect(e).toBeInstanceOf(BodyTooLargeError);
    expect(e).not.toBeInstanceOf(SnappyError);
    expect([e.size, e.limit]).toEqual([text.length, text.length - 1]);
    expect(e.message).toBe(`decompressed body of ${text.length} bytes exceeds the limit of ${text.length - 1} bytes`);
    // A preamble claiming 4 GiB - 1 followed by garbage: refused on the preamble alone
    // (decompressing would have failed with SnappyError, or allocated 4 GiB).
    expect(thrownBy(() => snappyDecompress(hex("ffffffff0f00ff00"), 1 << 20), BodyTooLargeError)).toBeInstanceOf(BodyTooLargeError);
    expect(snappyDecodedLength(hex("ffffffff0f"))).toEqual({ length: 0xffffffff, headerBytes: 5 });
  });

  it("refuses corrupt input with SnappyError", () => {
    const c = snappyCompress(text);
    const cases: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["truncated preamble", hex("80")],
      ["preamble over 32 bits", hex("ffffffff7f")],
      ["preamble of 6 bytes", hex("ffffffffff01")],
      ["truncated", c.subarray(0, c.length - 3)],
      ["short of the declared length", hex("0a0c616263")], // declares 10, literal of 4
      ["literal past the declared length", hex("020c61626364")],
      ["literal past the input", hex("0a2461")],
      ["copy before the start", hex("0a0461" + "0d05")], // copy offset 5 with 1 byte decoded
      ["copy with offset 0", hex("0a0461" + "0d00")],
      ["truncated copy", hex("0a0461" + "0e")],
      ["copy past the declared length", hex("030461" + "1501")],
      ["truncated long literal length", hex("0af0")],
    ];
    for (const [name, bytes] of cases) {
      const e = thrownBy(() => snappyDecompress(bytes, 1 << 20), SnappyError);
      expect(e, name).toBeInstanceOf(SnappyError);
      expect(e!.message, name).toMatch(/^snappy: /);
    }
    // Random flips after the length preamble (a flipped preamble may declare more than
    // the limit: BodyTooLargeError, tested above): SnappyError or a (wrong) decode, never
    // another exception. Seeded, so a failure reproduces.
    const start = snappyDecodedLength(c).headerBytes;
    let seed = 0x5eed;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 500; i++) {
      const b = c.slice();
      b[start + Math.floor(rand() * (b.length - start))] ^= 1 << Math.floor(rand() * 8);
      thrownBy(() => snappyDecompress(b, 1 << 20), SnappyError);
    }
  });
});
