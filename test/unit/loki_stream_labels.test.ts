// Stream label strings as Loki's distributor reads them (Prometheus ParseMetric, empty
// values dropped, sorted) and the canonical form it stores (labels.String()).

import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type Limits } from "../../src/config/limits";
import { hash32 } from "../../src/distributor/hash";
import { canonicalString, parseLabelString, StreamLabels, streamOfLabelString, streamOfPairs } from "../../src/distributor/logs/stream_labels";
import { ringFor } from "../../src/distributor/ring";
import { parseStreamLabels } from "../../src/ingester/logs/labels";
import { mulberry32 } from "../support/prng";

function ok(raw: string): StreamLabels {
  const s = streamOfLabelString(raw);
  if (!(s instanceof StreamLabels)) throw new Error(`expected ${raw} to parse: ${s.message}`);
  return s;
}

describe("Loki stream label strings", () => {
  const cases: [string, string][] = [
    ['{app="x", env="prod"}', '{app="x", env="prod"}'],
    ['{env="prod",app="x"}', '{app="x", env="prod"}'],
    ['  { env = "prod" ,\n app="x" , }  ', '{app="x", env="prod"}'],
    ["{a='it\\'s', b=`raw\\n`}", '{a="it\'s", b="raw\\\\n"}'],
    ['{a="tab\\there", b="\\u00e9\\x41\\101", c="\\xc3\\xa9"}', '{a="tab\\there", b="éAA", c="é"}'],
    ['{a="", b="c"}', '{b="c"}'],
    ['up{job="x"}', '{__name__="up", job="x"}'],
    ["up", '{__name__="up"}'],
    ['{v="quote\\" backslash\\\\ nul\\x00 bell\\a"}', '{v="quote\\" backslash\\\\ nul\\x00 bell\\a"}'],
    ['{v="日本 😀"}', '{v="日本 😀"}'],
  ];
  for (const [raw, canonical] of cases) {
    it(`${raw} -> ${canonical}`, () => {
      const s = ok(raw);
      expect(s.canonical).toBe(canonical);
      // The canonical form parses back to itself, here and in the ingester.
      expect(ok(s.canonical).flat).toEqual(s.flat);
      expect(parseStreamLabels(s.canonical)).toEqual(s.flat);
    });
  }

  const bad: [string, string, RegExp][] = [
    ['{a!="b"}', "invalid_labels", /Error parsing labels '\{a!="b"\}' with error: 1:3: parse error: unexpected "!=" in label matching, expected "="/],
    ['{a=~"b"}', "invalid_labels", /unexpected "=~"/],
    ['{a="b"', "invalid_labels", /unexpected end of input/],
    ["{a=b}", "invalid_labels", /1:4: parse error: unexpected "b" in label matching, expected string/],
    ['{1a="b"}', "invalid_labels", /expected label name/],
    ['{a="b"} junk', "invalid_labels", /after the closing/],
    ['{"a.b"="c"}', "invalid_labels", /invalid label name "a.b"/],
    ['{a="\\q"}', "invalid_labels", /unknown escape sequence/],
    ['{a="line\nbreak"}', "invalid_labels", /unterminated quoted string/],
    ["", "invalid_labels", /unexpected end of input/],
    ["{}", "missing_labels", /error at least one label pair is required per stream/],
    ['{a=""}', "missing_labels", /at least one label pair/],
    ['{a="1", b="2", a="3"}', "duplicate_label_names", /stream '\{a="1", b="2", a="3"\}' has duplicate label name: 'a'/],
  ];
  for (const [raw, reason, message] of bad) {
    it(`refuses ${JSON.stringify(raw)} (${reason})`, () => {
      const s = streamOfLabelString(raw);
      expect(s).not.toBeInstanceOf(StreamLabels);
      const r = s as { reason: string; message: string };
      expect(r.reason).toBe(reason);
      expect(r.message).toMatch(message);
    });
  }

  it("canonicalises a JSON stream object exactly as the same label string", () => {
    const a = streamOfPairs(["env", "prod", "app", "x", "empty", ""]);
    expect(a).toBeInstanceOf(StreamLabels);
    expect((a as StreamLabels).canonical).toBe(ok('{app="x", env="prod"}').canonical);
    expect(streamOfPairs(["bad-name", "x"])).toMatchObject({ reason: "invalid_labels" });
    // An empty value does not hide an invalid name (Loki parses the whole set first).
    expect(streamOfPairs(["bad-name", ""])).toMatchObject({ reason: "invalid_labels" });
    expect(streamOfPairs([])).toMatchObject({ reason: "missing_labels" });
  });

  it("applies the tenant's limits with Loki's messages, service_name not counted", () => {
    const limits: Limits = { ...DEFAULT_LIMITS, maxLogLabelNamesPerStream: 3, maxLabelNameLength: 12, maxLabelValueLength: 5 };
    const three = ok('{a="1", b="2", c="3"}');
    expect(three.checkLimits(limits, "raw")).toBeNull();
    expect(ok('{a="1", b="2", c="3", service_name="s"}').checkLimits(limits, "raw")).toBeNull();
    expect(ok('{a="1", b="2", c="3", d="4"}').checkLimits(limits, "RAW")).toEqual({
      reason: "max_label_names_per_series",
      message: "entry for stream 'RAW' has 4 label names; limit 3 (maxLogLabelNamesPerStream)",
    });
    expect(ok('{abcdefghijklm="1"}').checkLimits(limits, "r")?.message).toBe("stream 'r' has label name too long: 'abcdefghijklm' (maxLabelNameLength 12)");
    // Lengths are UTF-8 bytes, as Go's len(): "ééé" is 6 bytes.
    expect(ok('{a="ééé"}').checkLimits(limits, "r")?.reason).toBe("label_value_too_long");
    expect(ok('{a="abcde"}').checkLimits(limits, "r")).toBeNull();
  });

  it("places a stream by hash32 of tenant and canonical labels on the tenant's ring, whatever the spelling", () => {
    const a = ok('{env="prod", app="x"}');
    const b = ok("{app='x',env='prod'}");
    for (const tenant of ["t1", "t2"]) {
      for (const shards of [1, 4, 7]) {
        const want = ringFor(shards).shardFor(hash32('{app="x", env="prod"}', hash32(tenant)));
        expect(a.shardFor(hash32(tenant), shards)).toBe(want);
        expect(b.shardFor(hash32(tenant), shards)).toBe(want);
      }
    }
  });

  it("random label sets: canonical strings round-trip through both parsers", () => {
    const r = mulberry32(5);
    const chars = ["a", "Z", " ", '"', "\\", "\n", "\t", "é", "😀", "\u0000", "\u007f", "{", "}", ",", "=", "'", "`"];
    for (let round = 0; round < 500; round++) {
      const n = 1 + Math.floor(r() * 5);
      const pairs: string[] = [];
      const names = new Set<string>();
      for (let i = 0; i < n; i++) {
        const name = "l" + Math.floor(r() * 20);
        if (names.has(name)) continue;
        names.add(name);
        let v = "";
        const len = 1 + Math.floor(r() * 8);
        for (let j = 0; j < len; j++) v += chars[Math.floor(r() * chars.length)];
        pairs.push(name, v);
      }
      const s = streamOfPairs(pairs) as StreamLabels;
      expect(s).toBeInstanceOf(StreamLabels);
      const parsed = parseLabelString(s.canonical);
      expect(parsed, s.canonical).toEqual(s.flat);
      expect(parseStreamLabels(s.canonical)).toEqual(s.flat);
      expect(canonicalString(s.flat)).toBe(s.canonical);
    }
  });
});
