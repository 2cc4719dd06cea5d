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
    ["wrong content type", () => push("x", { "Content-Type": "application/xml" }), 415, /unsupported Content-Type "application\/xml"; a Loki push must be application\/x-protobuf.*application\/json.*text\/plain/],
    ["wrong encoding", () => push("x", { ...JSON_CT, "Content-Encoding": "br" }), 415, /Content-Encoding "br" not supported/],
    ["text/plain for a tenant without beacons", () => push(json({ streams: [] }), { "Content-Type": "text/plain" }, { tenant: "nobeacon" }), 415, /allowBeaconPush is 0/],
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
    expect(text).toMatch(/^entry for stream '\{app="p"\}' has timestamp too old/);
    expect(text).toMatch(/4 of 6 entries in this request were dropped \(greater_than_max_sample_age: 1, invalid_labels: 2, line_too_long: 1\); 2 were written/);
    expect(await readBack("lp_partial")).toEqual(new Map([['{app="p"}', [[good0, "kept 1", null], [good1, "kept 2", null]]]]));
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
    const bad = await push("{not json", { ...JSON_CT, Origin: PAGE }, { tenant: "browser" });
    await expectStatus(bad, 400, /not valid JSON/);
    expect(bad.headers.get("Access-Control-Allow-Origin")).toBe(PAGE);
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
