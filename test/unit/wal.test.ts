import { describe, expect, it } from "vitest";
import { WalRecordBuilder, decodeWalRecord, type WalVisitor } from "../../src/ingester/wal";
import { MetricType, type MetricMetadata } from "../../src/proto/types";
import { CorruptDataError } from "../../src/model/bytes";

function collect(rec: Uint8Array) {
  const series: [number, string][] = [];
  const samples: [number, number, number][] = [];
  const metadata: MetricMetadata[] = [];
  const v: WalVisitor = {
    series: (id, key) => series.push([id, key]),
    sample: (id, t, val) => samples.push([id, t, val]),
    metadata: (m) => metadata.push(m),
    chunk: () => {
      throw new Error("no chunks in WAL records");
    },
    last: () => {
      throw new Error("no LAST in WAL records");
    },
  };
  decodeWalRecord(rec, v);
  return { series, samples, metadata };
}

const STALE = (() => {
  const b = new Uint32Array([2, 0x7ff00000]);
  return new Float64Array(b.buffer)[0];
})();

function bits(v: number): string {
  const w = new Uint32Array(new Float64Array([v]).buffer);
  return w[1].toString(16) + ":" + w[0].toString(16);
}

describe("WAL records", () => {
  it("round-trip series, metadata and samples (bit-exact values, any timestamps)", () => {
    const b = new WalRecordBuilder();
    b.reset();
    b.addSeries(1, "__name__=2:up");
    b.addSeries(300, "__name__=4:日本");
    b.addMetadata({ type: MetricType.COUNTER, metricFamilyName: "http_requests_total", help: "Requests.", unit: "" });
    const samples: [number, number, number][] = [
      [1, 1_700_000_000_000, 1],
      [1, 1_700_000_015_000, NaN],
      [1, 1_700_000_030_000, STALE],
      [300, -5, -0],
      [300, 2 ** 52, Infinity],
      [300, 0, -Infinity],
    ];
    b.beginSamples(1, 3);
    for (const s of samples.slice(0, 3)) b.addSample(s[1], s[2]);
    b.beginSamples(300, 3);
    for (const s of samples.slice(3)) b.addSample(s[1], s[2]);
    const got = collect(b.build().slice());
    expect(got.series).toEqual([
      [1, "__name__=2:up"],
      [300, "__name__=4:日本"],
    ]);
    expect(got.metadata).toEqual([{ type: MetricType.COUNTER, metricFamilyName: "http_requests_total", help: "Requests.", unit: "" }]);
    expect(got.samples.map(([id, t, v]) => [id, t, bits(v)])).toEqual(samples.map(([id, t, v]) => [id, t, bits(v)]));
  });

  it("costs about 10 bytes per sample for a scrape-like push (delta timestamps, raw values)", () => {
    const b = new WalRecordBuilder();
    b.reset();
    for (let id = 1; id <= 2000; id++) {
      b.beginSamples(id, 1);
      b.addSample(1_700_000_000_000 + (id % 7), id * 1.5);
    }
    const n = b.build().length;
    expect(n / 2000).toBeLessThan(12);
  });

  it("is empty until something is added, and reset clears it", () => {
    const b = new WalRecordBuilder();
    b.reset();
    expect(b.empty).toBe(true);
    b.addSeries(1, "a=1:b");
    expect(b.empty).toBe(false);
    b.reset();
    expect(b.empty).toBe(true);
    expect(b.build().length).toBe(4); // just the checksum
  });

  it("refuses truncated or unknown records with a clear error, never wrong data", () => {
    const b = new WalRecordBuilder();
    b.reset();
    b.addSeries(7, "__name__=2:up");
    b.beginSamples(7, 2);
    b.addSample(1000, 1);
    b.addSample(2000, 2);
    const rec = b.build().slice();
    for (let len = 1; len < rec.length; len++) {
      expect(() => collect(rec.subarray(0, len))).toThrow(CorruptDataError);
    }
    for (let i = 0; i < rec.length; i++) {
      const bad = rec.slice();
      bad[i] ^= 0x10;
      expect(() => collect(bad)).toThrow(/corrupt WAL record/);
    }
  });
});
