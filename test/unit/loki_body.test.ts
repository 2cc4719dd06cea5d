// The Loki push body's Content-Type and Content-Encoding (src/distributor/logs/body.ts)
// read as Loki's ParseLokiRequest reads them: application/json is JSON, every other
// media type snappy protobuf, and what Go's mime.ParseMediaType refuses is a 400 with
// its message; an unknown Content-Encoding is Loki's 400.

import { describe, expect, it } from "vitest";
import { PushFormat, pushEncoding, pushFormat } from "../../src/distributor/logs/body";
import { HttpError } from "../../src/http/errors";

function refusal(f: () => unknown): [number, string] {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return [(e as HttpError).status, (e as HttpError).message];
  }
  throw new Error("no refusal");
}

describe("pushFormat", () => {
  it("application/json (any case, with parameters) is JSON; everything else Go can parse is protobuf", () => {
    const cases: [string | null, PushFormat][] = [
      [null, PushFormat.Protobuf],
      ["", PushFormat.Protobuf],
      ["application/json", PushFormat.Json],
      ["Application/JSON; charset=utf-8", PushFormat.Json],
      ["application/x-protobuf", PushFormat.Protobuf],
      ["application/octet-stream", PushFormat.Protobuf],
      ["application/xml", PushFormat.Protobuf],
      ["application/x-ndjson", PushFormat.Protobuf],
      // Go's checkMediaTypeDisposition accepts a type without a subtype.
      ["protobuf", PushFormat.Protobuf],
    ];
    for (const [header, want] of cases) expect(pushFormat(header, true), String(header)).toBe(want);
  });

  it("text/plain is sendBeacon's JSON where the tenant allows beacons, protobuf (as Loki reads it) where it does not", () => {
    expect(pushFormat("text/plain;charset=UTF-8", true)).toBe(PushFormat.Beacon);
    expect(pushFormat("text/plain;charset=UTF-8", false)).toBe(PushFormat.Protobuf);
  });

  it("media types Go's mime.ParseMediaType refuses: 400 with Go's message", () => {
    const cases: [string, string][] = [
      ["application json", "mime: expected slash after first token"],
      ["/json", "mime: no media type"],
      ["; charset=utf-8", "mime: no media type"],
      ["application/", "mime: expected token after slash"],
      ["application/json extra", "mime: unexpected content after media subtype"],
      ["application/js(on", "mime: unexpected content after media subtype"],
    ];
    for (const [header, message] of cases) expect(refusal(() => pushFormat(header, true)), header).toEqual([400, `${message}: Content-Type ${JSON.stringify(header)}`]);
  });
});

describe("pushEncoding", () => {
  it("gzip, deflate, snappy and none; anything else is Loki's 400 'Content-Encoding %q not supported'", () => {
    expect([null, "", "snappy", "identity", "gzip", "x-gzip", "GZIP", "deflate"].map(pushEncoding)).toEqual(["", "", "", "", "gzip", "gzip", "gzip", "deflate"]);
    const [status, message] = refusal(() => pushEncoding("br"));
    expect(status).toBe(400);
    expect(message.startsWith('Content-Encoding "br" not supported')).toBe(true);
    expect(refusal(() => pushEncoding("gzip, br"))[1].startsWith('Content-Encoding "gzip, br" not supported')).toBe(true);
  });
});
