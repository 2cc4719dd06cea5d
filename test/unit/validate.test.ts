import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, limitsFor, type Limits } from "../../src/config/limits";
import { validateLabels, validateTimestamp } from "../../src/distributor/validate";
import { Reason } from "../../src/model/errors";

const limits: Limits = { ...DEFAULT_LIMITS };
const long = (n: number) => "a".repeat(n);

describe("validateLabels (Cortex/Mimir rules)", () => {
  const table: [string, string[], Reason | null][] = [
    ["valid", ["__name__", "up", "job", "node"], null],
    ["valid with colon in name", ["__name__", "job:up:sum", "job", "node"], null],
    ["upper-case label sorts before __name__", ["Zone", "a", "__name__", "up"], null],
    ["no labels", [], Reason.MissingMetricName],
    ["missing __name__", ["job", "x"], Reason.MissingMetricName],
    ["metric name starts with digit", ["__name__", "1up"], Reason.InvalidMetricName],
    ["metric name with dash", ["__name__", "up-time"], Reason.InvalidMetricName],
    ["label name with colon", ["__name__", "up", "a:b", "x"], Reason.InvalidLabelName],
    ["label name starts with digit", ["__name__", "up", "1a", "x"], Reason.InvalidLabelName],
    ["empty label name", ["", "x", "__name__", "up"], Reason.InvalidLabelName],
    ["unsorted", ["__name__", "up", "job", "a", "instance", "b"], Reason.LabelsNotSorted],
    ["duplicate", ["__name__", "up", "job", "a", "job", "b"], Reason.DuplicateLabelNames],
    ["empty value", ["__name__", "up", "job", ""], Reason.EmptyLabelValue],
    ["label name too long", ["__name__", "up", long(1025), "x"], Reason.LabelNameTooLong],
    ["label name at limit", ["__name__", "up", long(1024), "x"], null],
    ["value too long", ["__name__", "up", "job", long(2049)], Reason.LabelValueTooLong],
    ["value at limit", ["__name__", "up", "job", long(2048)], null],
    ["invalid utf-8 (decoded as U+FFFD)", ["__name__", "up", "job", "a\uFFFDb"], Reason.InvalidUtf8],
  ];
  for (const [name, labels, want] of table) {
    it(name, () => {
      const got = validateLabels(labels, limits);
      expect(got?.reason ?? null).toBe(want);
      if (got) {
        expect(got.message).toContain(want!);
        expect(got.message.length).toBeGreaterThan(20);
      }
    });
  }

  it("at most 30 label names (the 31st is refused and the message names the limit)", () => {
    const labels = ["__name__", "up"];
    for (let i = 0; i < 29; i++) labels.push(`l${String(i).padStart(2, "0")}`, "v");
    expect(validateLabels(labels, limits)).toBeNull();
    labels.push("l99", "v");
    const r = validateLabels(labels, limits);
    expect(r?.reason).toBe(Reason.MaxLabelNamesPerSeries);
    expect(r?.message).toContain("maxLabelNamesPerSeries");
  });
});

describe("validateTimestamp", () => {
  const now = Date.UTC(2026, 10, 21, 12);
  const labels = ["__name__", "up"];
  it("accepts now, the recent past and up to 10 minutes ahead", () => {
    expect(validateTimestamp(now, now, limits, labels)).toBeNull();
    expect(validateTimestamp(now - 13 * 24 * 3600_000, now, limits, labels)).toBeNull();
    expect(validateTimestamp(now + 10 * 60_000, now, limits, labels)).toBeNull();
  });
  it("rejects more than 10 minutes in the future", () => {
    expect(validateTimestamp(now + 10 * 60_000 + 1, now, limits, labels)?.reason).toBe(Reason.SampleTooFarInFuture);
  });
  it("rejects older than the max age, unless it is 0", () => {
    const old = now - 15 * 24 * 3600_000;
    expect(validateTimestamp(old, now, limits, labels)?.reason).toBe(Reason.SampleTooOld);
    expect(validateTimestamp(old, now, { ...limits, rejectOldSamplesMaxAgeMs: 0 }, labels)).toBeNull();
  });
});

describe("limitsFor", () => {
  it("layers defaults, SHARDS, '*' and per-tenant overrides", () => {
    const env = { SHARDS: "3", LIMITS: JSON.stringify({ "*": { maxLabelNamesPerSeries: 40 }, t1: { shards: 7 } }) };
    expect(limitsFor(env, "t0").shards).toBe(3);
    expect(limitsFor(env, "t0").maxLabelNamesPerSeries).toBe(40);
    expect(limitsFor(env, "t1").shards).toBe(7);
    expect(limitsFor({}, "t0").shards).toBe(DEFAULT_LIMITS.shards);
  });
  it("refuses unknown limits and bad values with a message naming them", () => {
    expect(() => limitsFor({ LIMITS: '{"*": {"nope": 1}}' }, "x")).toThrow(/nope is not a known limit/);
    expect(() => limitsFor({ LIMITS: '{"*": {"shards": -1}}' }, "x")).toThrow(/non-negative/);
    expect(() => limitsFor({ SHARDS: "0" }, "x")).toThrow(/SHARDS/);
  });
});
