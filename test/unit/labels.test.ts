import { describe, expect, it } from "vitest";
import { compareLabels, formatLabels, labelsFromKey, seriesKey } from "../../src/model/labels";

describe("series keys", () => {
  it("round-trip any label values, including separators, digits and unicode", () => {
    const cases: string[][] = [
      ["__name__", "up"],
      ["__name__", "up", "job", "a=1:2", "x", "=:="],
      ["__name__", "m", "v", "12:", "w", ""],
      ["__name__", "m", "v", "\u0000\uffff日本語🙂"],
      [],
    ];
    for (const labels of cases) expect(labelsFromKey(seriesKey(labels))).toEqual(labels);
  });

  it("never maps two different label sets to one key", () => {
    // Candidates built to collide under naive joining.
    const a = ["__name__", "m", "a", "b=1:c"];
    const b = ["__name__", "m", "a", "b", "c", "x"];
    const c = ["__name__", "m", "a", "1:b"];
    const set = new Set([seriesKey(a), seriesKey(b), seriesKey(c)]);
    expect(set.size).toBe(3);
  });

  it("rejects corrupt keys", () => {
    expect(() => labelsFromKey("a=5:xy")).toThrow(/corrupt series key/);
    expect(() => labelsFromKey("a=x:y")).toThrow(/corrupt series key/);
  });

  it("formats as Prometheus does", () => {
    expect(formatLabels(["__name__", "up", "job", 'a"b'])).toBe('up{job="a\\"b"}');
  });

  it("orders like labels.Compare", () => {
    expect(compareLabels(["a", "1"], ["a", "2"])).toBeLessThan(0);
    expect(compareLabels(["a", "1"], ["a", "1", "b", "1"])).toBeLessThan(0);
    expect(compareLabels(["b", "1"], ["a", "1"])).toBeGreaterThan(0);
    expect(compareLabels(["a", "1"], ["a", "1"])).toBe(0);
  });
});
