// The JSON syntax scanner behind the runtime config's and AUTH_CONFIG's "not valid
// JSON" messages (src/config/json_syntax.ts): it must agree with JSON.parse on what
// is JSON, point where V8 points, and never quote the text.

import { describe, expect, it } from "vitest";
import { jsonErrorOffset, jsonSyntaxError } from "../../src/config/json_syntax";
import { mulberry32 } from "../support/prng";

/** V8's offset when its message gives one ("... in JSON at position 7 ..."). */
function v8Offset(text: string): number | null | "none" {
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    const m = /at position (\d+)/.exec((e as Error).message);
    return m === null ? "none" : Number(m[1]);
  }
}

const PIECES = ['{', '}', '[', ']', ',', ':', '"', '"a"', '"\\n"', '"\\u00e9"', '"\\x"', '"\\u12"', "1", "-0", "0.5", "1e-3", "01", "1.", "-", "true", "tru", "null", "nul", "false", " ", "\n", "\t", "x", "\u0001", "\u00e9", "é"];

function randomText(rnd: () => number): string {
  // Mostly valid documents with one mutation, so the errors are spread over the grammar.
  const doc = JSON.stringify({ overrides: { "team-a": { maxSeriesPerQuery: 5 } }, browserKeys: [{ id: "k", key: "secret-key-0123456789", origins: ["https://a.example"], revoked: false, n: -1.5e3 }] }, null, rnd() < 0.5 ? 2 : undefined);
  const at = Math.floor(rnd() * (doc.length + 1));
  const piece = PIECES[Math.floor(rnd() * PIECES.length)];
  const cut = rnd() < 0.3 ? 0 : Math.floor(rnd() * 3);
  return doc.slice(0, at) + (rnd() < 0.2 ? "" : piece) + doc.slice(at + cut);
}

describe("jsonErrorOffset", () => {
  it("agrees with JSON.parse on 5,000 mutated documents, and with V8's position where it gives one", () => {
    const rnd = mulberry32(20240611);
    let invalid = 0;
    let positioned = 0;
    for (let n = 0; n < 5000; n++) {
      const text = randomText(rnd);
      const ours = jsonErrorOffset(text);
      const v8 = v8Offset(text);
      if (v8 === null) {
        expect(ours, text).toBeNull();
        continue;
      }
      invalid++;
      expect(ours, text).not.toBeNull();
      if (v8 !== "none") {
        positioned++;
        expect(ours, text).toBe(v8);
      }
    }
    // The mutations reach both kinds of answer.
    expect(invalid).toBeGreaterThan(1000);
    expect(positioned).toBeGreaterThan(500);
  });

  it("finds the place in the cases V8 reports without a position", () => {
    expect(jsonErrorOffset('{"key": secret-value}')).toBe(8);
    expect(jsonErrorOffset('{"a": tru}')).toBe(9);
    expect(jsonErrorOffset('{"a": 1')).toBe(7);
    expect(jsonErrorOffset("")).toBe(0);
    expect(jsonErrorOffset('  {"a": [1, 2]}  ')).toBeNull();
  });

  it("gives up without a position past the stack, never throwing", () => {
    expect(jsonErrorOffset("[".repeat(1_000_000))).toBeNull();
  });
});

describe("jsonSyntaxError", () => {
  it("names the line and column, never the text", () => {
    const text = '{\n  "browserKeys": [{"key": "a-very-secret-browser-key"\n  ';
    expect(jsonSyntaxError(text)).toBe("unexpected end at line 3, column 3");
    const token = '{\n  "key": a-very-secret-browser-key }';
    const message = jsonSyntaxError(token);
    expect(message).toBe("unexpected character at line 2, column 10");
    expect(message).not.toContain("secret");
    expect(jsonSyntaxError('{"a": 1}x')).toBe("unexpected character at line 1, column 9");
  });
});
