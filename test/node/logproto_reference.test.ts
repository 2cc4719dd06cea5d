// Cross-checks the Loki push decoder (src/proto/logproto.ts) and the tests' hand-written
// encoder (test/support/loki_wire.ts) against protobufjs with Loki's push.proto
// (test/support/proto/logproto.proto). Runs in Node: protobufjs cannot run in workerd.

import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { decodePushRequest, entryLine, entryMeta } from "../../src/proto/logproto";
import { ProtoError } from "../../src/proto/types";
import { encodePushRequest, nsToTimestamp, type PushStream } from "../support/loki_wire";
import { mulberry32 } from "../support/prng";

const dir = fileURLToPath(new URL("../support/proto/", import.meta.url));
const root = protobuf.loadSync(dir + "logproto.proto");
const PushRequest = root.lookupType("logproto.PushRequest");

const ALPHABET = ["a", "b", "=", '"', "\\", "{", "}", ",", " ", "é", "日", "😀", "\n", "\u0000", "Z", "9"];

class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  str(max: number): string {
    let s = "";
    const n = this.int(max + 1);
    for (let i = 0; i < n; i++) s += ALPHABET[this.int(ALPHABET.length)];
    return s;
  }
  /** Seconds across Go's valid range, mostly recent. */
  seconds(): number {
    const k = this.int(5);
    if (k === 0) return 0;
    if (k === 1) return -62135596800 + this.int(1000);
    if (k === 2) return 253402300799 - this.int(1000);
    if (k === 3) return -this.int(2 ** 31);
    return 1_700_000_000 + this.int(10 ** 8);
  }
  nanos(): number {
    const k = this.int(4);
    return k === 0 ? 0 : k === 1 ? 999_999_999 : this.int(1e9);
  }
}

interface Want {
  labels: string;
  entries: { ms: number; ns: number; line: string; meta: string[] | null }[];
}

function expected(streams: { labels: string; entries: { seconds: number; nanos: number; line: string; meta: [string, string][] }[] }[]): Want[] {
  return streams.map((s) => ({
    labels: s.labels,
    entries: s.entries.map((e) => {
      const msIn = Math.floor(e.nanos / 1e6);
      return { ms: e.seconds * 1000 + msIn, ns: e.nanos - msIn * 1e6, line: e.line, meta: e.meta.length > 0 ? e.meta.flat() : null };
    }),
  }));
}

function decoded(buf: Uint8Array): Want[] {
  const push = decodePushRequest(buf);
  const dec = new TextDecoder();
  return push.streams.map((s) => {
    const entries: Want["entries"] = [];
    for (let i = s.entryStart; i < s.entryStart + s.entryCount; i++) {
      const line = entryLine(push, i);
      entries.push({ ms: push.tsMs[i], ns: push.tsNs[i], line: typeof line === "string" ? line : dec.decode(line), meta: entryMeta(push, i) });
    }
    return { labels: s.labels ?? "", entries };
  });
}

function randomRequest(g: Gen) {
  const streams = [];
  const n = g.int(6);
  for (let s = 0; s < n; s++) {
    const entries = [];
    const m = g.int(8);
    for (let e = 0; e < m; e++) {
      const meta: [string, string][] = [];
      const k = g.int(3) === 0 ? g.int(4) : 0;
      for (let j = 0; j < k; j++) meta.push([g.str(6), g.str(10)]);
      entries.push({ seconds: g.seconds(), nanos: g.nanos(), line: g.int(10) === 0 ? g.str(300) : g.str(40), meta });
    }
    streams.push({ labels: g.int(5) === 0 ? g.str(30) : `{app="a${g.int(3)}", env="${g.str(4).replace(/["\\\n]/g, "")}"}`, entries, hash: g.int(3) === 0 ? g.int(2 ** 40) : 0 });
  }
  return streams;
}

function toProtobufjs(streams: ReturnType<typeof randomRequest>, withParsed: boolean) {
  return {
    streams: streams.map((s) => ({
      labels: s.labels,
      hash: s.hash,
      entries: s.entries.map((e) => ({
        timestamp: { seconds: e.seconds, nanos: e.nanos },
        line: e.line,
        structuredMetadata: e.meta.map(([name, value]) => ({ name, value })),
        // Query-side field: a pushed message with it must decode the same (it is skipped).
        parsed: withParsed ? [{ name: "p", value: "q" }] : [],
      })),
    })),
  };
}

describe("logproto.PushRequest decoder vs protobufjs", () => {
  it("decodes 300 random requests encoded by protobufjs exactly", () => {
    const g = new Gen(mulberry32(11));
    for (let round = 0; round < 300; round++) {
      const streams = randomRequest(g);
      const buf = PushRequest.encode(PushRequest.fromObject(toProtobufjs(streams, round % 3 === 0))).finish();
      expect(decoded(buf), `round ${round}`).toEqual(expected(streams));
    }
  });

  it("the tests' hand encoder round-trips through protobufjs", () => {
    const g = new Gen(mulberry32(12));
    for (let round = 0; round < 200; round++) {
      const streams = randomRequest(g);
      const ours: PushStream[] = streams.map((s) => ({
        labels: s.labels,
        hash: s.hash,
        entries: s.entries.map((e) => ({ ts: { seconds: e.seconds, nanos: e.nanos }, line: e.line, metadata: e.meta })),
      }));
      const buf = encodePushRequest(ours);
      const obj = PushRequest.toObject(PushRequest.decode(buf), { longs: Number, defaults: true, arrays: true }) as {
        streams: { labels: string; hash: number; entries: { timestamp: { seconds: number; nanos: number } | null; line: string; structuredMetadata: { name: string; value: string }[] }[] }[];
      };
      const back = obj.streams.map((s) => ({
        labels: s.labels,
        hash: s.hash,
        entries: s.entries.map((e) => ({ seconds: e.timestamp?.seconds ?? 0, nanos: e.timestamp?.nanos ?? 0, line: e.line, meta: e.structuredMetadata.map((m) => [m.name, m.value]) })),
      }));
      expect(back, `round ${round}`).toEqual(streams);
      // And our decoder agrees with both.
      expect(decoded(buf)).toEqual(expected(streams));
    }
  });

  it("converts ns strings to Timestamps and back exactly, negative ones included", () => {
    expect(nsToTimestamp("1700000000123456789")).toEqual({ seconds: 1700000000, nanos: 123456789 });
    expect(nsToTimestamp("-1")).toEqual({ seconds: -1, nanos: 999999999 });
    const [s] = decoded(encodePushRequest([{ labels: "{a=\"b\"}", entries: [{ ts: "1700000000123456789", line: "x" }, { ts: "-1", line: "y" }] }]));
    expect(s.entries.map((e) => [e.ms, e.ns])).toEqual([
      [1700000000123, 456789],
      [-1, 999999],
    ]);
  });

  it("refuses Timestamps outside Go's range and nanos outside [0, 1e9), as gogo-protobuf does", () => {
    const bad = [
      { seconds: 1, nanos: 1_000_000_000 },
      { seconds: 1, nanos: -1 },
      { seconds: -62135596801, nanos: 0 },
      { seconds: 253402300800, nanos: 0 },
    ];
    for (const ts of bad) {
      const buf = PushRequest.encode(PushRequest.fromObject({ streams: [{ labels: '{a="b"}', entries: [{ timestamp: ts, line: "x" }] }] })).finish();
      expect(() => decodePushRequest(buf), JSON.stringify(ts)).toThrow(ProtoError);
    }
  });

  it("every truncation either decodes (a message boundary) or throws ProtoError, nothing else", () => {
    const g = new Gen(mulberry32(13));
    const buf = PushRequest.encode(PushRequest.fromObject(toProtobufjs(randomRequest(g).concat(randomRequest(g)), true))).finish();
    let refused = 0;
    for (let cut = 0; cut < buf.length; cut++) {
      try {
        decodePushRequest(buf.subarray(0, cut));
      } catch (e) {
        expect(e).toBeInstanceOf(ProtoError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it("refuses a known field sent with the wrong wire type", () => {
    // PushRequest.streams (field 1) as a varint.
    expect(() => decodePushRequest(new Uint8Array([0x08, 0x01]))).toThrow(/PushRequest.streams/);
    // StreamAdapter.labels (field 1) as a varint, inside a stream.
    expect(() => decodePushRequest(new Uint8Array([0x0a, 0x02, 0x08, 0x01]))).toThrow(/StreamAdapter.labels/);
  });
});
