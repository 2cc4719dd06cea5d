import { describe, expect, it } from "vitest";
import { LogBatchReader, LogBatchWriter } from "../../src/ingester/logs/batch";
import { CorruptDataError } from "../../src/model/bytes";
import { mulberry32 } from "../support/prng";

type Entry = [number, number, string, string[] | null];

function readAll(buf: Uint8Array): [string, Entry[]][] {
  const r = new LogBatchReader(buf);
  const out: [string, Entry[]][] = [];
  while (r.nextStream()) {
    const entries: Entry[] = [];
    while (r.nextEntry()) entries.push([r.ms, r.ns, r.line(), r.meta]);
    out.push([r.labels, entries]);
  }
  return out;
}

describe("log batch", () => {
  it("round-trips random streams, including non-ASCII lines, metadata and negative times", () => {
    const rand = mulberry32(7);
    const w = new LogBatchWriter();
    for (let round = 0; round < 20; round++) {
      w.reset();
      const want: [string, Entry[]][] = [];
      const nStreams = Math.floor(rand() * 5);
      for (let s = 0; s < nStreams; s++) {
        const labels = `{app="a${s}", env="é${round}"}`;
        w.beginStream(labels);
        const entries: Entry[] = [];
        const n = Math.floor(rand() * 200);
        for (let i = 0; i < n; i++) {
          const ms = Math.floor((rand() - 0.1) * 2e12);
          const ns = Math.floor(rand() * 1e6);
          const line = "x".repeat(Math.floor(rand() * 40)) + (i % 3 === 0 ? "ünïcödé ✓" : "");
          const meta = i % 4 === 0 ? ["trace_id", String(i), "user", "ü"] : null;
          w.entry(ms, ns, i % 2 ? line : new TextEncoder().encode(line), meta);
          entries.push([ms, ns, line, meta]);
        }
        want.push([labels, entries]);
      }
      expect(readAll(w.finish())).toEqual(want);
    }
  });

  it("skips unread entries when moving to the next stream", () => {
    const w = new LogBatchWriter();
    w.beginStream('{a="1"}');
    w.entry(1, 2, "one", null);
    w.entry(3, 4, "two", null);
    w.beginStream('{a="2"}');
    w.entry(5, 6, "three", null);
    const r = new LogBatchReader(w.finish());
    expect(r.nextStream()).toBe(true);
    expect(r.nextStream()).toBe(true);
    expect(r.labels).toBe('{a="2"}');
    expect(r.nextEntry()).toBe(true);
    expect(r.line()).toBe("three");
    expect(r.nextStream()).toBe(false);
  });

  it("rejects every truncation and a wrong magic", () => {
    const w = new LogBatchWriter();
    w.beginStream('{a="1"}');
    w.entry(1700000000000, 5, "hello", ["k", "v"]);
    const buf = w.finish();
    for (let n = 0; n < buf.length; n++) {
      expect(() => readAll(buf.subarray(0, n)), `truncated to ${n}`).toThrow(CorruptDataError);
    }
    const bad = buf.slice();
    bad[0] = 0;
    expect(() => readAll(bad)).toThrow(/magic/);
  });
});
