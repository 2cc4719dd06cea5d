import { describe, expect, it } from "vitest";
import { cmpNs, formatNs, fromSecondsNanos, parseNsString, toSecondsNanos } from "../../src/model/logtime";

describe("log timestamps", () => {
  it("parse and format exactly, agreeing with BigInt", () => {
    for (const s of ["0", "1", "999999", "1000000", "1700000000123456789", "9223372036854775807", "-1", "-1000000", "-1700000000123456789"]) {
      const t = parseNsString(s)!;
      expect(t, s).not.toBeNull();
      expect(BigInt(t.ms) * 1_000_000n + BigInt(t.ns), s).toBe(BigInt(s));
      expect(t.ns).toBeGreaterThanOrEqual(0);
      expect(t.ns).toBeLessThan(1_000_000);
      expect(formatNs(t.ms, t.ns)).toBe(s);
    }
  });

  it("refuse what is not an integer of nanoseconds", () => {
    for (const s of ["", "-", "1.5", "1e9", " 1", "abc", "12345678901234567890"]) expect(parseNsString(s), s).toBeNull();
  });

  it("convert protobuf Timestamps both ways and compare", () => {
    const t = fromSecondsNanos(1_700_000_000, 123_456_789);
    expect(t).toEqual({ ms: 1_700_000_000_123, ns: 456_789 });
    expect(toSecondsNanos(t.ms, t.ns)).toEqual({ seconds: 1_700_000_000, nanos: 123_456_789 });
    expect(cmpNs(1, 5, 1, 6)).toBeLessThan(0);
    expect(cmpNs(2, 0, 1, 999_999)).toBeGreaterThan(0);
    expect(cmpNs(3, 3, 3, 3)).toBe(0);
  });
});
