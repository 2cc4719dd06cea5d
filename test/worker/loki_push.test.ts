// The Loki push path through the Worker (SELF.fetch), as real clients send it:
// snappy protobuf (promtail, Alloy, winston-loki), JSON (plain, gzip, deflate),
// sendBeacon's text/plain, the legacy /api/prom/push JSON; every bad input's 4xx;
// partial errors; CORS. Written entries are read back from the log ingester shards
// (env.LOGS selectLogs), exactly: nanosecond timestamps, line bytes, metadata.

import { describe, expect, it } from "vitest";
import { SELF, env } from "cloudflare:test";
import { snappyCompress } from "../../src/proto/snappy";
import { MatchType } from "../../src/proto/types";
import { readLogChunk } from "../../src/storage/logs/chunk";
import { formatNs } from "../../src/model/logtime";
import { configuredOrigins, preflightAllows } from "../../src/http/cors";
import { parseRfc3339Nano } from "../../src/distributor/logs/decode_json";
import { compress, encodePushRequest, jsonPushBody, ns, type PushStream } from "../support/loki_wire";
import { scrape, value, type ParsedFamily } from "./exposition_reader";

const NOW = Date.now();
const PB = { "Content-Type": "application/x-protobuf" };
const JSON_CT = { "Content-Type": "application/json" };
const PAGE = "http://localhost:5173";

function push(body: Uint8Array | string, headers: Record<string, string>, opts: { tenant?: string; path?: string; query?: string } = {}): Promise<Response> {
  const h: Record<string, string> = { ...headers };
  if (opts.tenant) h["X-Scope-OrgID"] = opts.tenant;
  return SELF.fetch(`http://ingester${opts.path ?? "/loki/api/v1/push"}${opts.query ?? ""}`, { method: "POST", body, headers: h });
}

function pushProto(streams: PushStream[], tenant?: string): Promise<Response> {
  return push(snappyCompress(encodePushRequest(streams)), PB, { tenant });
}

async function expectStatus(res: Response, status: number, pattern?: RegExp): Promise<string> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  if (pattern) expect(text).toMatch(pattern);
  return text;
}

type Entry = [ts: string, line: string, meta: string[] | null];

/** Every stream of a tenant (all carry an `app` label) from its shards' heads: canonical labels -> entries by time. */
async function readBack(tenant: string, shards = 4): Promise<Map<string, Entry[]>> {
  const out = new Map<string, Entry[]>();
  for (let shard = 0; shard < shards; shard++) {
    const stub = env.LOGS.get(env.LOGS.idFromName(`${tenant}/${shard}`));
    const streams = await stub.selectLogs({
      tenant,
      shard,
      matchers: [{ type: MatchType.RE, name: "app", value: ".+" }],
      startMs: 0,
      startNs: 0,
      endMs: 8.64e15,
      endNs: 0,
    });
    for (const st of streams) {
      const entries = out.get(st.labels) ?? [];
      for (const chunk of st.chunks) {
        readLogChunk(chunk, 0, 0, 8.64e15, 0, { entry: (ms, n, line, meta) => entries.push([formatNs(ms, n), line, meta]) });
      }
      out.set(st.labels, entries);
    }
  }
  for (const entries of out.values()) entries.sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : BigInt(a[0]) > BigInt(b[0]) ? 1 : 0));
  return out;
}

describe("Loki push: accepted formats", () => {
  it("snappy protobuf: 204, entries stored exactly (ns timestamps, UTF-8 and binary-ish lines, structured metadata)", async () => {
    const t0 = ns(NOW - 60_000, 123_456);
    const t1 = ns(NOW - 30_000, 999_999);
    const res = await pushProto(
      [
        { labels: '{env="prod", app="shop"}', entries: [{ ts: t0, line: "hello 日本 😀" }, { ts: t1, line: "second", metadata: [["trace_id", "abc"], ["user", "u1"]] }] },
        { labels: "{app='api'}", entries: [{ ts: t0, line: "tab\there" }] },
      ],
      "lp_proto",
    );
    await expectStatus(res, 204);
    const got = await readBack("lp_proto");
    expect(got).toEqual(
      new Map<string, Entry[]>([
        ['{app="shop", env="prod"}', [[t0, "hello 日本 😀", null], [t1, "second", ["trace_id", "abc", "user", "u1"]]]],
        ['{app="api"}', [[t0, "tab\there", null]]],
      ]),
    );
  });

  it("JSON: 204, same stream identity as protobuf (canonical labels), metadata as the third element", async () => {
    const t0 = ns(NOW - 10_000, 1);
    const body = jsonPushBody([{ stream: { env: "dev", app: "web" }, values: [[t0, "from json", { trace_id: "t1" }]] }]);
    await expectStatus(await push(body, JSON_CT, { tenant: "lp_json" }), 204);
    const t1 = ns(NOW - 9_000);
    await expectStatus(await pushProto([{ labels: '{app="web",env="dev"}', entries: [{ ts: t1, line: "from proto" }] }], "lp_json"), 204);
    expect(await readBack("lp_json")).toEqual(new Map<string, Entry[]>([['{app="web", env="dev"}', [[t0, "from json", ["trace_id", "t1"]], [t1, "from proto", null]]]]));
  });

  for (const format of ["gzip", "deflate", "deflate-raw"] as const) {
    it(`JSON with Content-Encoding ${format === "deflate-raw" ? "deflate (raw, as Go's compress/flate writes it)" : format}: 204`, async () => {
      const tenant = `lp_${format.replace("-", "_")}`;
      const t = ns(NOW - 5_000, 42);
      const body = await compress(jsonPushBody([{ stream: { app: "z" }, values: [[t, `compressed ${format}`]] }]), format);
      await expectStatus(await push(body, { ...JSON_CT, "Content-Encoding": format === "deflate-raw" ? "deflate" : format }, { tenant }), 204);
      expect(await readBack(tenant)).toEqual(new Map([['{app="z"}', [[t, `compressed ${format}`, null]]]]));
    });
  }

  it("gzip on a protobuf body (Loki decompresses Content-Encoding before snappy): 204", async () => {
    const t = ns(NOW - 4_000);
    const body = await compress(snappyCompress(encodePushRequest([{ labels: '{app="g"}', entries: [{ ts: t, line: "pb+gzip" }] }])), "gzip");
    await expectStatus(await push(body, { ...PB, "Content-Encoding": "gzip" }, { tenant: "lp_pbgzip" }), 204);
    expect(await readBack("lp_pbgzip")).toEqual(new Map([['{app="g"}', [[t, "pb+gzip", null]]]]));
  });

  it("no Content-Type is protobuf, as Loki treats it; Content-Encoding: snappy is accepted and ignored", async () => {
    const t = ns(NOW - 3_000);
    const body = snappyCompress(encodePushRequest([{ labels: '{app="n"}', entries: [{ ts: t, line: "no content type" }] }]));
    const res = await SELF.fetch("http://ingester/loki/api/v1/push", { method: "POST", body, headers: { "Content-Encoding": "snappy", "X-Scope-OrgID": "lp_noct" } });
    await expectStatus(res, 204);
    expect(await readBack("lp_noct")).toEqual(new Map([['{app="n"}', [[t, "no content type", null]]]]));
  });

  it("navigator.sendBeacon: text/plain JSON with ?tenant= and an Origin the tenant allows: 204 readable by the page", async () => {
    const t = ns(NOW - 2_000, 7);
    const body = jsonPushBody([{ stream: { app: "beacon" }, values: [[t, "page unloaded", { page: "/cart" }]] }]);
    const res = await push(body, { "Content-Type": "text/plain;charset=UTF-8", Origin: PAGE }, { query: "?tenant=browser" });
    await expectStatus(res, 204);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe(PAGE);
    expect(res.headers.get("Vary")).toMatch(/Origin/);
    expect(await readBack("browser")).toEqual(new Map([['{app="beacon"}', [[t, "page unloaded", ["page", "/cart"]]]]]));
  });

  it("X-Scope-OrgID wins over ?tenant=", async () => {
    const t = ns(NOW - 1_500);
    const body = jsonPushBody([{ stream: { app: "hdr" }, values: [[t, "header tenant"]] }]);
    await expectStatus(await push(body, JSON_CT, { tenant: "lp_header", query: "?tenant=lp_param" }), 204);
    expect((await readBack("lp_header")).get('{app="hdr"}')).toEqual([[t, "header tenant", null]]);
    expect((await readBack("lp_param")).size).toBe(0);
  });

  it("legacy JSON on /api/prom/push (labels string, RFC 3339 ts): 204", async () => {
    const iso = new Date(NOW - 20_000).toISOString().replace("Z", "123456Z"); // .mmm + 6 more digits = ns
    const body = JSON.stringify({ streams: [{ labels: '{app="legacy"}', entries: [{ ts: iso, line: "old client" }] }] });
    await expectStatus(await push(body, JSON_CT, { tenant: "lp_legacy", path: "/api/prom/push" }), 204);
    const ms = NOW - 20_000;
    expect(await readBack("lp_legacy")).toEqual(new Map([['{app="legacy"}', [[ns(ms, 123_456), "old client", null]]]]));
  });

  it("a push whose streams have no entries: 204, nothing written (Loki skips them)", async () => {
    await expectStatus(await push(jsonPushBody([{ stream: { app: "empty" }, values: [] }]), JSON_CT, { tenant: "lp_noentries" }), 204);
    expect((await readBack("lp_noentries")).size).toBe(0);
  });

  it("200 streams over every shard, one stream repeated later in the push: every entry stored in its stream", async () => {
    const streams: PushStream[] = [];
    const want = new Map<string, Entry[]>();
    for (let s = 0; s < 200; s++) {
      const entries = Array.from({ length: 10 }, (_, i) => ({ ts: ns(NOW - 100_000 + i * 1000, s), line: `s${s} e${i}` }));
      streams.push({ labels: `{app="many", n="${s}"}`, entries });
      want.set(`{app="many", n="${s}"}`, entries.map((e) => [e.ts as string, e.line, null]));
    }
    // Stream 0 again, after the others: its shard's batch holds two records of it.
    const more = [{ ts: ns(NOW - 50_000), line: "s0 again" }];
    streams.push({ labels: '{n="0", app="many"}', entries: more });
    want.get('{app="many", n="0"}')!.push([more[0].ts, "s0 again", null]);
    await expectStatus(await pushProto(streams, "lp_many"), 204);
    const got = await readBack("lp_many");
    expect(got).toEqual(want);
    // Placement spread the streams over all 4 shards.
    const perShard = await Promise.all([0, 1, 2, 3].map((shard) => env.LOGS.get(env.LOGS.idFromName(`lp_many/${shard}`)).stats()));
    expect(perShard.map((st) => st.streams).every((n) => n > 20)).toBe(true);
    expect(perShard.reduce((a, st) => a + st.streams, 0)).toBe(200);
  });

  it("an exact duplicate (same time and line) is accepted and stored once, as Loki does", async () => {
    const t = ns(NOW - 800);
    const s = [{ labels: '{app="dup"}', entries: [{ ts: t, line: "same" }] }];
    await expectStatus(await pushProto(s, "lp_dup"), 204);
    await expectStatus(await pushProto(s, "lp_dup"), 204);
    expect(await readBack("lp_dup")).toEqual(new Map([['{app="dup"}', [[t, "same", null]]]]));
  });
});

/** A snappy block whose preamble claims n bytes (refused before decompressing). */
function snappyClaiming(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n, 0, 1, 2, 3);
  return new Uint8Array(out);
}

const okLine = (labels: string, line = "x", ts = ns(NOW - 1000)): PushStream[] => [{ labels, entries: [{ ts, line }] }];
const json = (v: unknown) => JSON.stringify(v);

describe("Loki push: bad input answers its 4xx with a message", () => {
  const labels16 = "{" + Array.from({ length: 16 }, (_, i) => `l${String(i).padStart(2, "0")}="v"`).join(", ") + "}";
  const cases: [string, () => Promise<Response>, number, RegExp][] = [
    ["empty body", () => push(new Uint8Array(0), PB), 400, /empty request body/],
    ["not snappy", () => push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), PB), 400, /not valid snappy/],
    ["truncated protobuf", () => push(snappyCompress(encodePushRequest(okLine('{app="x"}')).subarray(0, 9)), PB), 400, /not a valid logproto.PushRequest protobuf message/],
    ["timestamp nanos out of range", () => push(snappyCompress(encodePushRequest([{ labels: '{app="x"}', entries: [{ ts: { seconds: 1, nanos: 2e9 }, line: "x" }] }])), PB), 400, /nanos 2000000000 not in range/],
    ["bad JSON", () => push('{"streams": [', JSON_CT), 400, /not valid JSON/],
    ["JSON not an object", () => push("[1,2]", JSON_CT), 400, /must be a JSON object/],
    ["number timestamp", () => push(json({ streams: [{ stream: { app: "x" }, values: [[1.7e18, "l"]] }] }), JSON_CT), 400, /stream \{app="x"\} \(streams\[0\]\): values\[0\] has timestamp 1700000000000000000; timestamps must be strings of integer Unix nanoseconds/],
    ["float string timestamp", () => push(json({ streams: [{ stream: { app: "x" }, values: [["1.5e18", "l"]] }] }), JSON_CT), 400, /values\[0\] has timestamp "1.5e18"/],
    ["non-string line", () => push(json({ streams: [{ stream: { app: "x" }, values: [[ns(NOW), 5]] }] }), JSON_CT), 400, /non-string log line 5/],
    ["non-string label value", () => push(json({ streams: [{ stream: { app: 1 }, values: [[ns(NOW), "l"]] }] }), JSON_CT), 400, /label "app" has a non-string value 1/],
    ["four-element value", () => push(json({ streams: [{ stream: { app: "x" }, values: [[ns(NOW), "l", {}, 1]] }] }), JSON_CT), 400, /values\[0\] must be/],
    ["zero streams", () => push(json({ streams: [] }), JSON_CT), 422, /^error at least one valid stream is required for ingestion/],
    ["unparsable labels", () => push(snappyCompress(encodePushRequest(okLine("{app=x}"))), PB), 400, /Error parsing labels '\{app=x\}' with error: 1:6: parse error/],
    ["no labels", () => push(snappyCompress(encodePushRequest(okLine("{}"))), PB), 400, /error at least one label pair is required per stream/],
    ["invalid label name (JSON)", () => push(json({ streams: [{ stream: { "bad-name": "x" }, values: [[ns(NOW), "l"]] }] }), JSON_CT), 400, /invalid label name "bad-name"/],
    ["16 label names", () => push(snappyCompress(encodePushRequest(okLine(labels16))), PB), 400, /has 16 label names; limit 15 \(maxLogLabelNamesPerStream\)/],
    ["line too long", () => push(snappyCompress(encodePushRequest(okLine('{app="x"}', "a".repeat(256 * 1024 + 1)))), PB), 400, /Max entry size '262144' bytes exceeded for stream '\{app="x"\}' while adding an entry with length '262145' bytes/],
    ["line too long in UTF-8 bytes (JSON)", () => push(json({ streams: [{ stream: { app: "x" }, values: [[ns(NOW), "é".repeat(131073)]] }] }), JSON_CT), 400, /with length '262146' bytes/],
    ["too old", () => push(snappyCompress(encodePushRequest(okLine('{app="x"}', "old", ns(NOW - 8 * 86400_000)))), PB), 400, /entry for stream '\{app="x"\}' has timestamp too old: .*Z, oldest acceptable timestamp is: .*Z/],
    ["too new", () => push(snappyCompress(encodePushRequest(okLine('{app="x"}', "future", ns(NOW + 3600_000)))), PB), 400, /entry for stream '\{app="x"\}' has timestamp too new/],
    ["invalid structured metadata name", () => push(json({ streams: [{ stream: { app: "x" }, values: [[ns(NOW), "l", { "trace-id": "1" }]] }] }), JSON_CT), 400, /structured metadata with an invalid name "trace-id"/],
    ["gzip bomb past maxDecompressedBytes", async () => push(await compress(new Uint8Array(100_000), "gzip"), { ...JSON_CT, "Content-Encoding": "gzip", "X-Scope-OrgID": "small" }), 413, /decompresses to more than the limit of 8192 bytes \(maxDecompressedBytes\)/],
    ["corrupt gzip", () => push(new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6]), { ...JSON_CT, "Content-Encoding": "gzip" }), 400, /not valid gzip data/],
    ["snappy preamble past maxDecompressedBytes", () => push(snappyClaiming(1 << 30), PB), 413, /maxDecompressedBytes/],
    ["body past maxRequestBodyBytes", () => push(new Uint8Array(5000), { ...PB, "X-Scope-OrgID": "small" }), 413, /maxRequestBodyBytes/],
    // Loki reads any Content-Type but application/json as snappy protobuf (pkg/loghttp/push/push.go ParseLokiRequest).
    ["other Content-Type, not snappy", () => push("x", { "Content-Type": "application/xml" }), 400, /not valid snappy/],
    ["malformed Content-Type (Go's mime.ParseMediaType)", () => push("x", { "Content-Type": "application json" }), 400, /^mime: expected slash after first token: Content-Type "application json"/],
    ["unsupported Content-Encoding: Loki's 400 and text", () => push("x", { ...JSON_CT, "Content-Encoding": "br" }), 400, /^Content-Encoding "br" not supported/],
    ["text/plain JSON for a tenant without beacons is read as protobuf, as Loki does", () => push(json({ streams: [] }), { "Content-Type": "text/plain" }, { tenant: "nobeacon" }), 400, /not valid snappy.*allowBeaconPush is 0/],
    ["bad ?tenant=", () => push("{}", JSON_CT, { query: "?tenant=a%2Fb" }), 400, /tenant ID "a\/b" contains unsupported characters/],
    ["wrong method", () => SELF.fetch("http://ingester/loki/api/v1/push"), 405, /method GET is not allowed/],
    ["wrong method (legacy path)", () => SELF.fetch("http://ingester/api/prom/push", { method: "PUT", body: "x" }), 405, /use POST, OPTIONS/],
  ];
  for (const [name, send, status, pattern] of cases) {
    it(`${name}: ${status}`, async () => {
      await expectStatus(await send(), status, pattern);
    });
  }
});

describe("Loki push: partial errors keep the valid entries", () => {
  it("400 names the first refused entry and counts; the valid entries are stored", async () => {
    const good0 = ns(NOW - 50_000, 5);
    const good1 = ns(NOW - 40_000);
    const res = await pushProto(
      [
        { labels: '{app="p"}', entries: [{ ts: good0, line: "kept 1" }, { ts: ns(NOW - 30 * 86400_000), line: "too old" }, { ts: good1, line: "kept 2" }] },
        { labels: "{app=}", entries: [{ ts: good0, line: "bad labels" }, { ts: good1, line: "bad labels too" }] },
        { labels: '{app="q"}', entries: [{ ts: good1, line: "b".repeat(300_000) }] },
      ],
      "lp_partial",
    );
    const text = await expectStatus(res, 400);
    // Loki's util.GroupedErrors: each distinct message once, "N errors like: " when there are several, joined by "; "
    // (a stream refused for its labels is one error); then our counts line, after the first line that clients print.
    const [first, counts, end, ...rest] = text.split("\n");
    const parts = first.split("; ");
    expect(parts.length).toBe(3);
    expect(parts[0]).toMatch(/^1 errors like: entry for stream '\{app="p"\}' has timestamp too old: /);
    expect(parts[1]).toMatch(/^1 errors like: Error parsing labels '\{app=\}' with error: /);
    expect(parts[2]).toBe("1 errors like: Max entry size '262144' bytes exceeded for stream '{app=\"q\"}' while adding an entry with length '300000' bytes (maxLineSize)");
    expect(counts).toBe("4 of 6 entries in this request were dropped (greater_than_max_sample_age: 1, invalid_labels: 2, line_too_long: 1); 2 were written");
    expect([end, rest]).toEqual(["", []]);
    expect(await readBack("lp_partial")).toEqual(new Map([['{app="p"}', [[good0, "kept 1", null], [good1, "kept 2", null]]]]));
  });
});

describe("Loki push: the 400 body lists distinct errors as Loki's GroupedErrors, at most 10", () => {
  it("the same message twice is '2 errors like'; past 10 distinct messages the rest are counted, not listed", async () => {
    const line = "l".repeat(101); // lp_maxline: maxLineSize 100
    const t = ns(NOW - 30_000);
    const streams: PushStream[] = [{ labels: '{app="s00"}', entries: [{ ts: t, line }, { ts: ns(NOW - 29_000), line }] }];
    for (let i = 1; i < 15; i++) streams.push({ labels: `{app="s${String(i).padStart(2, "0")}"}`, entries: [{ ts: t, line }] });
    streams.push({ labels: '{app="ok"}', entries: [{ ts: t, line: "fits" }] });
    const text = await expectStatus(await pushProto(streams, "lp_maxline"), 400);
    const msg = (s: string) => `Max entry size '100' bytes exceeded for stream '{app="${s}"}' while adding an entry with length '101' bytes (maxLineSize)`;
    const listed = [`2 errors like: ${msg("s00")}`];
    for (let i = 1; i < 10; i++) listed.push(`1 errors like: ${msg(`s0${i}`)}`);
    expect(text).toBe(`${listed.join("; ")}; 5 more errors not listed (max_returned_stream_errors: 10)\n16 of 17 entries in this request were dropped (line_too_long: 16); 1 were written\n`);
    expect((await readBack("lp_maxline")).get('{app="ok"}')).toEqual([[t, "fits", null]]);
  });
});

describe("Loki push: CORS", () => {
  it("preflight from an origin some tenant allows: 204 with the grant", async () => {
    const res = await SELF.fetch("http://ingester/loki/api/v1/push", {
      method: "OPTIONS",
      headers: { Origin: PAGE, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-scope-orgid" },
    });
    await expectStatus(res, 204);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe(PAGE);
    expect(res.headers.get("Access-Control-Allow-Methods")).toBe("POST, OPTIONS");
    expect(res.headers.get("Access-Control-Allow-Headers")).toBe("content-type, content-encoding, x-scope-orgid, authorization");
    expect(res.headers.get("Access-Control-Max-Age")).toBe("86400");
    expect(res.headers.get("Vary")).toBe("Origin");
  });

  it("preflight on the legacy path too", async () => {
    const res = await SELF.fetch("http://ingester/api/prom/push", { method: "OPTIONS", headers: { Origin: PAGE, "Access-Control-Request-Method": "POST" } });
    await expectStatus(res, 204);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe(PAGE);
  });

  it("preflight from an origin no tenant allows: 403, no grant", async () => {
    const res = await SELF.fetch("http://ingester/loki/api/v1/push", { method: "OPTIONS", headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" } });
    await expectStatus(res, 403, /origin https:\/\/evil.example is not allowed to push logs here: no tenant lists it in corsAllowedOrigins/);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("POST from an origin the tenant allows: 204 with the grant; its errors carry it too", async () => {
    const t = ns(NOW - 700);
    const ok = await push(jsonPushBody([{ stream: { app: "cors" }, values: [[t, "from a page"]] }]), { ...JSON_CT, Origin: PAGE }, { tenant: "browser" });
    await expectStatus(ok, 204);
    expect(ok.headers.get("Access-Control-Allow-Origin")).toBe(PAGE);
    // Retry-After is not CORS-safelisted: without this a page could not read it on a 429.
    expect(ok.headers.get("Access-Control-Expose-Headers")).toBe("Retry-After");
    const bad = await push("{not json", { ...JSON_CT, Origin: PAGE }, { tenant: "browser" });
    await expectStatus(bad, 400, /not valid JSON/);
    expect(bad.headers.get("Access-Control-Allow-Origin")).toBe(PAGE);
    expect(bad.headers.get("Access-Control-Expose-Headers")).toBe("Retry-After");
  });

  it("POST to a tenant that does not list the origin: 403 naming both, nothing written", async () => {
    const res = await push(jsonPushBody([{ stream: { app: "cors" }, values: [[ns(NOW), "nope"]] }]), { ...JSON_CT, Origin: PAGE }, { tenant: "lp_cors_other" });
    await expectStatus(res, 403, /origin http:\/\/localhost:5173 is not allowed to push for tenant lp_cors_other; add it to corsAllowedOrigins/);
    expect((await readBack("lp_cors_other")).size).toBe(0);
  });

  it("POST from an origin nobody lists: 403 without a grant", async () => {
    const res = await push(jsonPushBody([{ stream: { app: "cors" }, values: [[ns(NOW), "nope"]] }]), { ...JSON_CT, Origin: "https://evil.example" }, { tenant: "browser" });
    await expectStatus(res, 403, /not allowed to push for tenant browser/);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("requests without Origin (servers) get no CORS headers", async () => {
    const res = await push(jsonPushBody([{ stream: { app: "srv" }, values: [[ns(NOW - 600), "server"]] }]), JSON_CT, { tenant: "lp_server" });
    await expectStatus(res, 204);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("the preflight's origin list is every tenant's corsAllowedOrigins; '*' anywhere allows any origin", () => {
    const a = { LIMITS: JSON.stringify({ t1: { corsAllowedOrigins: ["https://a.example"] }, t2: { corsAllowedOrigins: ["https://b.example"] } }) };
    expect([...configuredOrigins(a)].sort()).toEqual(["https://a.example", "https://b.example"]);
    expect(preflightAllows(a, "https://b.example")).toBe(true);
    expect(preflightAllows(a, "https://c.example")).toBe(false);
    const star = { LIMITS: JSON.stringify({ "*": { corsAllowedOrigins: ["*"] } }) };
    expect(preflightAllows(star, "https://c.example")).toBe(true);
  });
});

/** Scrapes /metrics once the tenant's log shards are listed (each registers in R2 at its first write, not awaited by the push). */
async function scrapeWithLogTenant(tenant: string): Promise<Map<string, ParsedFamily>> {
  for (let i = 0; i < 100; i++) {
    const f = await scrape();
    if (f.get("loki_distributor_lines_received_total")?.samples.some((s) => s.labels.tenant === tenant)) return f;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`tenant ${tenant} never appeared in /metrics`);
}

const MiB = 1 << 20;
const metadataTooLarge = (stream: string, bytes: number, limit: number) =>
  `stream '${stream}' has structured metadata too large: '${bytes}' bytes, limit: '${limit}' bytes. Please see \`limits_config.max_structured_metadata_size\` or contact your Loki administrator to increase it. (maxStructuredMetadataSize)`;
const metadataTooMany = (stream: string, count: number, limit: number) =>
  `stream '${stream}' has too many structured metadata labels: '${count}', limit: '${limit}'. Please see \`limits_config.max_structured_metadata_entries_count\` or contact your Loki administrator to increase it. (maxStructuredMetadataEntriesCount)`;

describe("Loki push: structured metadata limits (Loki's max_structured_metadata_size, max_structured_metadata_entries_count)", () => {
  it("one entry with 33 MiB of metadata (a few KiB under snappy): 400 structured_metadata_too_large, the push's valid entries stored and the discard counted", async () => {
    const tenant = "lp_meta_huge";
    const t0 = ns(NOW - 60_000);
    const t1 = ns(NOW - 50_000);
    const t2 = ns(NOW - 40_000);
    const blob = "x".repeat(33 * MiB);
    const res = await pushProto(
      [
        {
          labels: '{app="m"}',
          entries: [
            { ts: t0, line: "kept 1" },
            { ts: t1, line: "big meta", metadata: [["blob", blob]] },
            { ts: t2, line: "kept 2", metadata: [["trace_id", "t"]] },
          ],
        },
        { labels: '{app="n"}', entries: [{ ts: t1, line: "other" }] },
      ],
      tenant,
    );
    const size = "blob".length + blob.length; // Loki: name + value bytes of every pair
    expect(await expectStatus(res, 400)).toBe(`${metadataTooLarge('{app="m"}', size, 65536)}\n1 of 4 entries in this request were dropped (structured_metadata_too_large: 1); 3 were written\n`);
    expect(await readBack(tenant)).toEqual(
      new Map<string, Entry[]>([
        ['{app="m"}', [[t0, "kept 1", null], [t2, "kept 2", ["trace_id", "t"]]]],
        ['{app="n"}', [[t1, "other", null]]],
      ]),
    );
    const f = await scrapeWithLogTenant(tenant);
    // Loki's discarded bytes are the entry's: its line and its metadata.
    expect(value(f, "loki_discarded_samples_total", { tenant, reason: "structured_metadata_too_large" })).toBe(1);
    expect(value(f, "loki_discarded_bytes_total", { tenant, reason: "structured_metadata_too_large" })).toBe("big meta".length + size);
  });

  it("129 pairs: 400 structured_metadata_too_many; 128 pairs are accepted", async () => {
    const tenant = "lp_meta_many";
    const pairs = (n: number): [string, string][] => Array.from({ length: n }, (_, i) => [`k${String(i).padStart(3, "0")}`, "v"]);
    const t0 = ns(NOW - 20_000);
    const res = await pushProto([{ labels: '{app="m"}', entries: [{ ts: t0, line: "128", metadata: pairs(128) }, { ts: ns(NOW - 10_000), line: "129", metadata: pairs(129) }] }], tenant);
    expect(await expectStatus(res, 400)).toBe(`${metadataTooMany('{app="m"}', 129, 128)}\n1 of 2 entries in this request were dropped (structured_metadata_too_many: 1); 1 were written\n`);
    expect(await readBack(tenant)).toEqual(new Map([['{app="m"}', [[t0, "128", pairs(128).flat()]]]]));
  });

  it("per-tenant limits (lp_meta: 100 bytes, 2 pairs), in UTF-8 bytes of names and values", async () => {
    const t = (k: number) => ns(NOW - 10_000 + k);
    const exact = { ab: "é".repeat(49) }; // 2 + 98 bytes
    const body = jsonPushBody([
      {
        stream: { app: "lim" },
        values: [
          [t(0), "exactly 100", exact],
          [t(1), "101", { ab: "é".repeat(49) + "x" }],
          [t(2), "3 pairs", { a: "1", b: "2", c: "3" }],
          [t(3), "2 pairs", { a: "1", b: "2" }],
        ],
      },
    ]);
    const text = await expectStatus(await push(body, JSON_CT, { tenant: "lp_meta" }), 400);
    expect(text).toBe(
      `1 errors like: ${metadataTooLarge('{app="lim"}', 101, 100)}; 1 errors like: ${metadataTooMany('{app="lim"}', 3, 2)}\n` +
        "2 of 4 entries in this request were dropped (structured_metadata_too_large: 1, structured_metadata_too_many: 1); 2 were written\n",
    );
    expect(await readBack("lp_meta")).toEqual(new Map([['{app="lim"}', [[t(0), "exactly 100", ["ab", exact.ab]], [t(3), "2 pairs", ["a", "1", "b", "2"]]]]]));
  });
});

describe("Loki push: no entry or batch is larger than a shard RPC can carry (32 MiB)", () => {
  it("a 33 MiB line where maxLineSize is 0 (unlimited, as in Loki): 413 naming the limit, not a retryable 5xx; nothing stored", async () => {
    const body = snappyCompress(encodePushRequest([{ labels: '{app="big"}', entries: [{ ts: ns(NOW - 5_000), line: "small" }, { ts: ns(NOW - 4_000), line: "a".repeat(33 * MiB) }] }]));
    expect(body.length).toBeLessThan(4 * MiB); // within maxRequestBodyBytes: the refusal is the RPC cap's
    await expectStatus(await push(body, PB, { tenant: "lp_unlimited" }), 413, /^entry for stream '\{app="big"\}' is 34603008 bytes, more than one shard RPC carries \(\d+ bytes; Durable Object RPC messages are limited to 32 MiB\); set maxLineSize, maxStructuredMetadataSize/);
    expect((await readBack("lp_unlimited")).size).toBe(0);
  });

  it("33 MiB of structured metadata where the metadata limits are 0: 413, nothing stored", async () => {
    const body = snappyCompress(encodePushRequest([{ labels: '{app="big"}', entries: [{ ts: ns(NOW - 3_000), line: "m", metadata: [["blob", "b".repeat(33 * MiB)]] }] }]));
    await expectStatus(await push(body, PB, { tenant: "lp_unlimited" }), 413, /more than one shard RPC carries/);
    expect((await readBack("lp_unlimited")).size).toBe(0);
  });

  it("three 12 MiB lines for one shard (36 MiB): 204, sent in several RPCs, each under the limit; every line stored", async () => {
    const lines = ["p", "q", "r"].map((c) => c.repeat(12 * MiB));
    const ts = [ns(NOW - 2_000), ns(NOW - 1_900), ns(NOW - 1_800)];
    const body = snappyCompress(encodePushRequest([{ labels: '{app="huge"}', entries: lines.map((line, i) => ({ ts: ts[i], line })) }]));
    await expectStatus(await push(body, PB, { tenant: "lp_unlimited" }), 204);
    const got = (await readBack("lp_unlimited")).get('{app="huge"}')!;
    expect(got.map(([t, line, meta]) => [t, line.length, line[0], meta])).toEqual(lines.map((l, i) => [ts[i], l.length, l[0], null]));
    expect(got.map(([, line], i) => line === lines[i])).toEqual([true, true, true]);
  });
});

describe("Loki push: Content-Type as Loki reads it (anything but application/json is snappy protobuf)", () => {
  it("an unknown Content-Type with a snappy protobuf body: 204, stored", async () => {
    const t = ns(NOW - 2_500);
    const body = snappyCompress(encodePushRequest([{ labels: '{app="xml"}', entries: [{ ts: t, line: "odd content type" }] }]));
    await expectStatus(await push(body, { "Content-Type": "application/xml" }, { tenant: "lp_xml" }), 204);
    expect(await readBack("lp_xml")).toEqual(new Map([['{app="xml"}', [[t, "odd content type", null]]]]));
  });

  it("text/plain where the tenant takes no beacons is protobuf too (Loki); where it does, sendBeacon's JSON", async () => {
    const t = ns(NOW - 2_400);
    const body = snappyCompress(encodePushRequest([{ labels: '{app="tp"}', entries: [{ ts: t, line: "text/plain protobuf" }] }]));
    await expectStatus(await push(body, { "Content-Type": "text/plain" }, { tenant: "nobeacon" }), 204);
    expect((await readBack("nobeacon")).get('{app="tp"}')).toEqual([[t, "text/plain protobuf", null]]);
  });
});

describe("Loki push: per-tenant limits through the Worker (vitest.config.mts LIMITS)", () => {
  it("maxLineSize 100 (lp_maxline): 100 bytes stored, 101 refused with the tenant's limit in the message", async () => {
    const t0 = ns(NOW - 9_000);
    const res = await pushProto([{ labels: '{app="edge"}', entries: [{ ts: t0, line: "a".repeat(100) }, { ts: ns(NOW - 8_000), line: "b".repeat(101) }] }], "lp_maxline");
    expect(await expectStatus(res, 400)).toBe(
      "Max entry size '100' bytes exceeded for stream '{app=\"edge\"}' while adding an entry with length '101' bytes (maxLineSize)\n1 of 2 entries in this request were dropped (line_too_long: 1); 1 were written\n",
    );
    expect((await readBack("lp_maxline")).get('{app="edge"}')).toEqual([[t0, "a".repeat(100), null]]);
  });

  it("rejectOldLogsMaxAgeMs 1 h (lp_oldage): 30 min old stored, 2 h old refused (the default, 7 days, would take it)", async () => {
    const before = Date.now();
    const young = ns(before - 30 * 60_000);
    const oldMs = before - 2 * 3_600_000;
    const res = await pushProto([{ labels: '{app="age"}', entries: [{ ts: young, line: "young" }, { ts: ns(oldMs), line: "old" }] }], "lp_oldage");
    const after = Date.now();
    const text = await expectStatus(res, 400);
    const m = /^entry for stream '\{app="age"\}' has timestamp too old: (\S+), oldest acceptable timestamp is: (\S+) \(rejectOldLogsMaxAgeMs\)\n1 of 2 entries in this request were dropped \(greater_than_max_sample_age: 1\); 1 were written\n$/.exec(text);
    expect(m, text).not.toBeNull();
    expect(m![1]).toBe(new Date(Math.floor(oldMs / 1000) * 1000).toISOString().replace(".000Z", "Z"));
    const oldest = Date.parse(m![2]);
    expect(oldest).toBeGreaterThanOrEqual(Math.floor((before - 3_600_000) / 1000) * 1000);
    expect(oldest).toBeLessThanOrEqual(after - 3_600_000);
    expect((await readBack("lp_oldage")).get('{app="age"}')).toEqual([[young, "young", null]]);
  });

  it("creationGracePeriodMs 60 s (lp_grace): 30 s ahead stored, 5 min ahead refused (the default, 10 min, would take it)", async () => {
    const soon = ns(Date.now() + 30_000);
    const laterMs = Date.now() + 5 * 60_000;
    const res = await pushProto([{ labels: '{app="future"}', entries: [{ ts: soon, line: "soon" }, { ts: ns(laterMs), line: "later" }] }], "lp_grace");
    expect(await expectStatus(res, 400)).toBe(
      `entry for stream '{app="future"}' has timestamp too new: ${new Date(Math.floor(laterMs / 1000) * 1000).toISOString().replace(".000Z", "Z")} (more than creationGracePeriodMs ahead of now)\n` +
        "1 of 2 entries in this request were dropped (too_far_in_future: 1); 1 were written\n",
    );
    expect((await readBack("lp_grace")).get('{app="future"}')).toEqual([[soon, "soon", null]]);
  });

  it("maxGlobalStreamsPerUser 4 over 2 shards (lp_streams): 2 new streams per shard, the rest refused as stream_limit and counted on /metrics", async () => {
    const tenant = "lp_streams";
    const t = ns(NOW - 7_000);
    const line = (i: number) => `line-${String(i).padStart(5, "0")}`; // 10 bytes
    const streams: PushStream[] = Array.from({ length: 20 }, (_, i) => ({ labels: `{app="st", n="${i}"}`, entries: [{ ts: t, line: line(i) }] }));
    const text = await expectStatus(await pushProto(streams, tenant), 400);
    expect(text).toMatch(/^1 errors like: Maximum active stream limit exceeded when trying to create stream \{app="st", n="\d+"\}, reduce the number of active streams .*user: 'lp_streams'/);
    expect(text).toContain("\n16 of 20 entries in this request were dropped (stream_limit: 16); 4 were written\n");
    const perShard = await Promise.all([0, 1].map((s) => env.LOGS.get(env.LOGS.idFromName(`${tenant}/${s}`)).stats()));
    expect(perShard.map((st) => st.streams)).toEqual([2, 2]);
    const stored = await readBack(tenant, 2);
    expect(stored.size).toBe(4);
    for (const [labels, entries] of stored) {
      const n = Number(/n="(\d+)"/.exec(labels)![1]);
      expect(entries).toEqual([[t, line(n), null]]);
    }
    const f = await scrapeWithLogTenant(tenant);
    expect(value(f, "loki_discarded_samples_total", { tenant, reason: "stream_limit" })).toBe(16);
    expect(value(f, "loki_discarded_bytes_total", { tenant, reason: "stream_limit" })).toBe(160);
  });
});

describe("Loki push: one RPC and one WAL row per shard it touches", () => {
  it("a push of 3 streams (one repeated later in the push), 150 entries: each shard holding them got exactly one push, one WAL record, one row", async () => {
    const tenant = "lp_rpc";
    const shards = [0, 1, 2, 3];
    const stub = (s: number) => env.LOGS.get(env.LOGS.idFromName(`${tenant}/${s}`));
    // A first push to every shard, so that the rows a shard writes once (its identity, chunk rules) are behind us.
    const warm: PushStream[] = Array.from({ length: 40 }, (_, i) => ({ labels: `{app="warm", n="${i}"}`, entries: [{ ts: ns(NOW - 90_000), line: "w" }] }));
    await expectStatus(await pushProto(warm, tenant), 204);
    const before = await Promise.all(shards.map((s) => stub(s).stats()));
    expect(before.every((st) => st.pushes === 1)).toBe(true);

    const entries = (k: string, n: number, from: number) => Array.from({ length: n }, (_, i) => ({ ts: ns(NOW - 80_000 + from + i), line: `${k}${i}` }));
    const res = await pushProto(
      [
        { labels: '{app="rpc", s="a"}', entries: entries("a", 50, 0) },
        { labels: '{app="rpc", s="b"}', entries: entries("b", 50, 0) },
        { labels: '{app="rpc", s="c"}', entries: entries("c", 25, 0) },
        { labels: '{app="rpc", s="a"}', entries: entries("a", 25, 100) },
      ],
      tenant,
    );
    await expectStatus(res, 204);
    const after = await Promise.all(shards.map((s) => stub(s).stats()));
    // Which shards hold the pushed streams, and how many of its entries each got, from the shards' own data.
    const held = await Promise.all(
      shards.map(async (s) => {
        const streams = await stub(s).selectLogs({ tenant, shard: s, matchers: [{ type: MatchType.EQ, name: "app", value: "rpc" }], startMs: 0, startNs: 0, endMs: 8.64e15, endNs: 0 });
        let n = 0;
        for (const st of streams) for (const c of st.chunks) readLogChunk(c, 0, 0, 8.64e15, 0, { entry: () => void n++ });
        return n;
      }),
    );
    expect(held.reduce((a, b) => a + b, 0)).toBe(150);
    for (const s of shards) {
      const touched = held[s] > 0 ? 1 : 0;
      const d = { pushes: after[s].pushes - before[s].pushes, walRecords: after[s].walRecords - before[s].walRecords, rowsWritten: after[s].rowsWritten - before[s].rowsWritten, entries: after[s].entriesAppended - before[s].entriesAppended };
      expect(d, `shard ${s}`).toEqual({ pushes: touched, walRecords: touched, rowsWritten: touched, entries: held[s] });
    }
  });
});

describe("Loki push: a browser key pays for what it sends, valid or not", () => {
  const key = "lp-browser-key-0123456789abcdef";
  const origin = "https://lp.example";
  // One key id per test: a bucket keeps its tokens across configurations.
  const configure = async (id: string, burstBytes: number) => {
    const put = await SELF.fetch("http://ingester/api/v1/runtime_config", {
      method: "PUT",
      // 0.001 bytes/s: the bucket does not refill during the test, so what it holds is burst minus what was charged.
      body: JSON.stringify({ overrides: { lp_bk: { corsAllowedOrigins: [origin] } }, browserKeys: [{ id, key, tenant: "lp_bk", origins: [origin], bytesPerSecond: 0.001, burstBytes }] }),
    });
    expect(put.status, await put.text()).toBe(200);
  };
  const reset = async () => expect((await SELF.fetch("http://ingester/api/v1/runtime_config", { method: "PUT", body: "{}" })).status).toBe(200);
  const keyTokens = async (id: string) => (await env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName("lp_bk")).stats()).buckets[`browserKey:${id}`]?.tokens;

  it("invalid pushes are charged their body bytes: with a burst of 3000, the fourth 1000-byte bad body is 429", async () => {
    await configure("lpbk1", 3000);
    try {
      const bad = "{" + " ".repeat(998) + "x"; // 1000 bytes, not JSON
      const statuses: number[] = [];
      let last: Response | null = null;
      for (let i = 0; i < 4; i++) {
        last = await push(bad, { ...JSON_CT, Origin: origin }, { query: `?key=${key}` });
        statuses.push(last.status);
        if (i < 3) await expectStatus(last, 400, /not valid JSON/);
      }
      expect(statuses).toEqual([400, 400, 400, 429]);
      await expectStatus(last!, 429, /browser key lpbk1 exceeded its rate limit/);
      expect(last!.headers.get("Retry-After")).not.toBeNull();
      expect(last!.headers.get("Access-Control-Expose-Headers")).toBe("Retry-After");
      expect(await keyTokens("lpbk1")).toBe(0);
    } finally {
      await reset();
    }
  });

  it("a valid push is charged once: its body bytes, or its decoded bytes when compression made the body smaller", async () => {
    await configure("lpbk2", 100_000);
    try {
      const t = ns(NOW - 1_000);
      const plain = jsonPushBody([{ stream: { app: "bk" }, values: [[t, "y".repeat(400)]] }]);
      await expectStatus(await push(plain, { ...JSON_CT, Origin: origin }, { query: `?key=${key}` }), 204);
      // JSON's quotes and brackets make the body larger than the line it carries: the body is what is charged.
      const afterPlain = await keyTokens("lpbk2");
      expect(afterPlain).toBe(100_000 - new TextEncoder().encode(plain).length);
      const zipped = await compress(jsonPushBody([{ stream: { app: "bk" }, values: [[ns(NOW - 900), "z".repeat(50_000)]] }]), "gzip");
      expect(zipped.length).toBeLessThan(1000);
      await expectStatus(await push(zipped, { ...JSON_CT, "Content-Encoding": "gzip", Origin: origin }, { query: `?key=${key}` }), 204);
      // The 50,000-byte line is what it costs, not the few hundred bytes of gzip (plus at most a few bytes of framing).
      const charged = afterPlain! - (await keyTokens("lpbk2"))!;
      expect(charged).toBeGreaterThanOrEqual(50_000);
      expect(charged).toBeLessThan(50_100);
      expect((await readBack("lp_bk")).get('{app="bk"}')!.map(([ts, line]) => [ts, line.length])).toEqual([[t, 400], [ns(NOW - 900), 50_000]]);
    } finally {
      await reset();
    }
  });
});

describe("legacy JSON timestamps (Go's RFC 3339 with nanoseconds)", () => {
  it("parses offsets and fractions exactly; refuses what Go refuses", () => {
    expect(parseRfc3339Nano("2024-05-01T10:00:00Z")).toEqual({ ms: Date.UTC(2024, 4, 1, 10), ns: 0 });
    expect(parseRfc3339Nano("2024-05-01T12:00:00.000000001+02:00")).toEqual({ ms: Date.UTC(2024, 4, 1, 10), ns: 1 });
    expect(parseRfc3339Nano("2024-05-01T09:30:00.5-00:30")).toEqual({ ms: Date.UTC(2024, 4, 1, 10, 0, 0, 500), ns: 0 });
    for (const bad of ["2024-05-01 10:00:00Z", "2024-13-01T10:00:00Z", "2024-05-01T10:00:00", "2024-05-01T10:00:00.1234567890Z", "1714557600"]) {
      expect(parseRfc3339Nano(bad), bad).toBeNull();
    }
  });
});
