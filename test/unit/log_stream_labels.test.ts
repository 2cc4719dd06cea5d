// parseStreamLabels reads back the canonical label strings the distributor writes
// (Go-quoted values), including every escape strconv.Quote produces.

import { describe, expect, it } from "vitest";
import { parseStreamLabels } from "../../src/ingester/logs/labels";
import { canonicalString } from "../../src/distributor/logs/stream_labels";
import { CorruptDataError } from "../../src/model/bytes";
import { mulberry32 } from "../support/prng";

describe("parseStreamLabels", () => {
  it("parses plain and escaped values", () => {
    expect(parseStreamLabels('{app="api", env="prod"}')).toEqual(["app", "api", "env", "prod"]);
    expect(parseStreamLabels("{}")).toEqual([]);
    expect(parseStreamLabels('{a="q\\"b\\\\s\\n\\t\\a\\v\\x7f\\u200b\\U0001f600"}')).toEqual(["a", 'q"b\\s\n\t\x07\v\x7f\u200b\u{1f600}']);
  });

  it("round-trips random values through canonicalString", () => {
    const rand = mulberry32(3);
    const alphabet = ['"', "\\", "\n", "\t", "\x00", "\x7f", "é", "\u200b", "\u{1f600}", "a", "Z", " ", ",", "=", "}", "{"];
    for (let round = 0; round < 500; round++) {
      const flat: string[] = [];
      const n = 1 + Math.floor(rand() * 4);
      for (let i = 0; i < n; i++) {
        let v = "";
        const len = Math.floor(rand() * 12);
        for (let j = 0; j < len; j++) v += alphabet[Math.floor(rand() * alphabet.length)];
        flat.push(`l${i}`, v);
      }
      expect(parseStreamLabels(canonicalString(flat))).toEqual(flat);
    }
  });

  it("refuses malformed strings with CorruptDataError", () => {
    for (const bad of ["", "app=x", '{app="x"', '{app="x",env="y"}', '{app=x}', '{="x"}', '{a="\\q"}', '{a="\\x4"}', '{a="x"']) {
      expect(() => parseStreamLabels(bad), bad).toThrow(CorruptDataError);
    }
  });
});
