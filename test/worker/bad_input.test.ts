// Every kind of bad input answers its documented 4xx with a message, never a 5xx.

import { describe, expect, it } from "vitest";
import { SELF } from "cloudflare:test";
import { post, pushV1, pushV2, readAll, re, type TestSeries } from "./helpers";
import { snappyCompress } from "../../src/proto/snappy";
import { ProtoWriter } from "../../src/proto/writer";
import { encodeReadRequestTypes } from "../support/wire";

const NOW = Date.now();
const ok: TestSeries = { labels: { __name__: "up", job: "x" }, samples: [[NOW, 1]] };
const V1 = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy" };
const V2 = { "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy" };

async function expectStatus(res: Response, status: number, pattern: RegExp) {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(text).toMatch(pattern);
}

/** A snappy stream whose preamble claims `n` bytes (the rest is irrelevant: it must be refused before decompressing). */
function snappyClaiming(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n, 0, 1, 2, 3);
  return new Uint8Array(out);
}

describe("bad remote write requests", () => {
  const cases: [string, () => Promise<Response>, number, RegExp][] = [
    ["empty body", () => post("/api/v1/push", new Uint8Array(0), V1), 400, /empty request body/],
    ["not snappy", () => post("/api/v1/push", new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), V1), 400, /snappy/],
    ["snappy of garbage protobuf", () => post("/api/v1/push", snappyCompress(new Uint8Array([0x0a, 0xff, 0x01, 0x02])), V1), 400, /not a valid prometheus.WriteRequest/],
    ["snappy of garbage protobuf (v2)", () => post("/api/v1/write", snappyCompress(new Uint8Array([0x2a, 0x05, 0x01])), V2), 400, /not a valid io.prometheus.write.v2.Request/],
    ["decompresses beyond the limit", () => post("/api/v1/push", snappyClaiming(1 << 30), V1), 413, /maxDecompressedBytes/],
    ["body beyond the limit", () => post("/api/v1/push", new Uint8Array(5000), { ...V1, "X-Scope-OrgID": "small" }), 413, /maxRequestBodyBytes/],
    ["wrong content type", () => post("/api/v1/push", snappyCompress(new Uint8Array(0)), { ...V1, "Content-Type": "application/json" }), 415, /unsupported Content-Type/],
    ["wrong proto message", () => post("/api/v1/push", snappyCompress(new Uint8Array(0)), { ...V1, "Content-Type": "application/x-protobuf;proto=foo.Bar" }), 415, /unsupported remote write message "foo.Bar"/],
    ["wrong encoding", () => post("/api/v1/push", snappyCompress(new Uint8Array(0)), { ...V1, "Content-Encoding": "gzip" }), 415, /unsupported Content-Encoding "gzip"/],
    ["bad tenant", () => pushV1([ok], { tenant: "a/b" }), 400, /tenant ID "a\/b" contains unsupported characters/],
    ["tenant too long", () => pushV1([ok], { tenant: "a".repeat(151) }), 400, /more than the limit of 150/],
    ["invalid label name", () => pushV1([{ labels: { __name__: "up", "bad-label": "x" }, samples: [[NOW, 1]] }]), 400, /invalid label name "bad-label"/],
    ["missing metric name", () => pushV1([{ labels: { job: "x" }, samples: [[NOW, 1]] }]), 400, /without a metric name/],
    ["too old", () => pushV1([{ labels: { __name__: "old" }, samples: [[NOW - 30 * 86400_000, 1]] }]), 400, /older than the limit.*rejectOldSamplesMaxAgeMs/],
    ["too far in the future", () => pushV1([{ labels: { __name__: "future" }, samples: [[NOW + 3600_000, 1]] }]), 400, /too far in the future/],
    ["wrong method", () => SELF.fetch("http://ingester/api/v1/push"), 405, /method GET is not allowed/],
  ];
  for (const [name, send, status, pattern] of cases) {
    it(`${name}: ${status}`, async () => expectStatus(await send(), status, pattern));
  }

  it("refuses native histograms and exemplars with a 4xx while keeping the float samples, with honest v2 headers", async () => {
    // A v2 request: one series with one float sample, one histogram and one exemplar.
    const w = new ProtoWriter();
    for (const s of ["", "__name__", "hist_and_float", "job", "x"]) w.string(4, s);
    w.message(5, () => {
      w.packedUint32(1, [1, 2, 3, 4]);
      w.message(2, () => {
        w.double(1, 7);
        w.int64(2, NOW);
      });
      w.message(3, () => w.int64(15, NOW));
      w.message(4, () => w.int64(3, NOW));
    });
    const res = await post("/api/v1/write", snappyCompress(w.finish()), { ...V2, "X-Scope-OrgID": "hist" });
    expect(res.status).toBe(400);
    expect(res.headers.get("X-Prometheus-Remote-Write-Samples-Written")).toBe("1");
    expect(res.headers.get("X-Prometheus-Remote-Write-Histograms-Written")).toBe("0");
    expect(res.headers.get("X-Prometheus-Remote-Write-Exemplars-Written")).toBe("0");
    const text = await res.text();
    expect(text).toMatch(/native histograms are not supported/);
    expect(text).toMatch(/exemplars are not supported/);
    expect((await readAll("hist")).length).toBe(1);
  });

  it("refuses a v2 request whose label refs point outside the symbol table", async () => {
    const w = new ProtoWriter();
    for (const s of ["", "__name__", "x"]) w.string(4, s);
    w.message(5, () => {
      w.packedUint32(1, [1, 9]);
      w.message(2, () => {
        w.double(1, 1);
        w.int64(2, NOW);
      });
    });
    await expectStatus(await post("/api/v1/write", snappyCompress(w.finish()), V2), 400, /not a valid io.prometheus.write.v2.Request.*9/);
  });

  it("answers a v2 success with 204 and the count of samples written", async () => {
    const res = await pushV2([ok, { labels: { __name__: "up", job: "y" }, samples: [[NOW - 1000, 1], [NOW, 1]] }], { tenant: "v2ok" });
    expect(res.status, await res.text()).toBe(204);
    expect(res.headers.get("X-Prometheus-Remote-Write-Samples-Written")).toBe("3");
  });
});

describe("bad remote read requests", () => {
  const R = { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy" };
  it("garbage: 400", async () => {
    await expectStatus(await post("/api/v1/read", snappyCompress(new Uint8Array([0x0a, 0xff])), R), 400, /not a valid prometheus.ReadRequest/);
  });
  it("invalid regexp: 400 naming it", async () => {
    const body = snappyCompress(encodeReadRequestTypes([{ matchers: [re("__name__", "(")], startMs: 0, endMs: NOW }], []));
    await expectStatus(await post("/api/v1/read", body, R), 400, /invalid regular expression "\("/);
  });
  it("only streamed chunks accepted: 400 saying SAMPLES is what we answer", async () => {
    const body = snappyCompress(encodeReadRequestTypes([{ matchers: [re("__name__", ".+")], startMs: 0, endMs: NOW }], [1]));
    await expectStatus(await post("/api/v1/read", body, R), 400, /SAMPLES/);
  });
});
