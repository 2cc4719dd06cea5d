// The log ingester Durable Object's write and read path: Loki's push rules
// (duplicates, the out-of-order window, the stream limit), the WAL (an ack means
// durable; a failed insert applies nothing), replay after eviction, the head-bytes
// limit, and reads by matcher and range.

import { describe, expect, it } from "vitest";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { mulberry32 } from "../support/prng";
import { HOUR, MIN, T0, eq, expected, push, re, readShard, stub, type Entry, type Streams } from "./log_support";
import { MatchType } from "../../src/proto/types";

const A = '{app="api", env="prod"}';
const B = '{app="web", env="prod"}';
const C = '{app="web", env="dev"}';

describe("log ingester: push and select", () => {
  it("round-trips streams, metadata and unicode, selecting by matchers", async () => {
    const tenant = "logs-roundtrip";
    const data: Streams = [
      [A, [[T0, 0, "GET /a 200"], [T0 + 1, 5, "GET /b 500", ["trace_id", "abc", "user", "ü"]], [T0 + 2, 999_999, "ünïcödé ✓ 🚀"]]],
      [B, [[T0, 1, "page view"], [T0, 2, ""]]],
      [C, [[T0 + 5, 0, "debug"]]],
    ];
    const res = await push(tenant, data);
    expect(res).toEqual({ accepted: 6, acceptedBytes: expect.any(Number), duplicates: 0, rejected: [], firstError: null });
    expect(await readShard(tenant, [re("app", ".+")])).toEqual(expected(data));
    expect([...(await readShard(tenant, [eq("app", "web")])).keys()]).toEqual([C, B]);
    expect([...(await readShard(tenant, [eq("env", "prod"), { type: MatchType.NEQ, name: "app", value: "web" }])).keys()]).toEqual([A]);
    expect((await readShard(tenant, [eq("app", "nope")])).size).toBe(0);
  });

  it("reads [start, end) exactly at nanosecond boundaries", async () => {
    const tenant = "logs-range";
    await push(tenant, [[A, [[T0, 0, "a"], [T0, 1, "b"], [T0, 2, "c"], [T0 + 1, 0, "d"]]]]);
    const got = await readShard(tenant, [eq("app", "api")], [T0, 1, T0 + 1, 0]);
    expect(got.get(A)).toEqual([[T0, 1, "b"], [T0, 2, "c"]]);
  });

  it("drops an entry identical to the stream's last one, in one push and across pushes, and keeps near-duplicates", async () => {
    const tenant = "logs-dup";
    const first = await push(tenant, [[A, [[T0, 0, "x"], [T0, 0, "x"], [T0, 0, "y"], [T0, 1, "y"]]]]);
    expect(first.accepted).toBe(3);
    expect(first.duplicates).toBe(1);
    const again = await push(tenant, [[A, [[T0, 1, "y"]]]]);
    expect(again).toMatchObject({ accepted: 0, duplicates: 1, rejected: [], firstError: null });
    // Only the last entry counts (Loki's lastLine): an older repeat is appended, and reads drop it.
    const older = await push(tenant, [[A, [[T0, 0, "x"]]]]);
    expect(older.accepted).toBe(1);
    expect((await readShard(tenant, [eq("app", "api")])).get(A)).toEqual([[T0, 0, "x"], [T0, 0, "y"], [T0, 1, "y"]]);
  });

  it("accepts out-of-order entries within the window and refuses older ones, naming the stream", async () => {
    const tenant = "logs-ooo";
    const window = HOUR;
    await push(tenant, [[A, [[T0, 0, "newest"]]]], { outOfOrderWindowMs: window });
    const res = await push(
      tenant,
      [
        [A, [[T0 - 10 * MIN, 0, "late but fine"], [T0 - window, 0, "exactly at the cutoff"], [T0 - window - 1, 0, "too late"], [T0 - 2 * window, 0, "way too late"]]],
        [B, [[T0 - 3 * window, 0, "new stream, any age"]]],
      ],
      { outOfOrderWindowMs: window },
    );
    expect(res.accepted).toBe(3);
    // Their line bytes too: "too late" (8) + "way too late" (12).
    expect(res.rejected).toEqual([{ reason: "too_far_behind", count: 2, bytes: 20 }]);
    expect(res.firstError).toBe(
      `entry with timestamp 2026-01-10 10:59:59.999 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-01-10T10:59:59Z, oldest acceptable timestamp is: 2026-01-10T11:00:00Z',\n` +
        `user '${tenant}', total ignored: 2 out of 4 for stream: ${A}`,
    );
    const got = await readShard(tenant, [re("app", ".+")]);
    expect(got.get(A)?.map((e) => e[2])).toEqual(["exactly at the cutoff", "late but fine", "newest"]);
    expect(got.get(B)?.length).toBe(1);
  });

  it("refuses new streams past maxStreamsPerShard and keeps writing existing ones", async () => {
    const tenant = "logs-stream-limit";
    await push(tenant, [[A, [[T0, 0, "a"]]], [B, [[T0, 0, "b"]]]], { maxStreamsPerShard: 2 });
    const res = await push(tenant, [[C, [[T0, 1, "c1"], [T0, 2, "c2"]]], [A, [[T0, 1, "a2"]]]], { maxStreamsPerShard: 2 });
    expect(res.accepted).toBe(1);
    expect(res.rejected).toEqual([{ reason: "stream_limit", count: 2, bytes: 4 }]);
    expect(res.firstError).toMatch(/^Maximum active stream limit exceeded when trying to create stream \{app="web", env="dev"\}.*user: 'logs-stream-limit'/);
    expect([...(await readShard(tenant, [re("app", ".+")])).keys()]).toEqual([A, B]);
  });

  it("applies nothing when the WAL insert fails, and the retried push lands once", async () => {
    const tenant = "logs-walfail";
    await push(tenant, [[A, [[T0, 0, "before"]]]]);
    type Inst = { wal: { append: (rec: Uint8Array) => void } };
    let orig: ((rec: Uint8Array) => void) | null = null;
    await runInDurableObject(stub(tenant), (inst: unknown) => {
      const wal = (inst as Inst).wal;
      orig = wal.append;
      wal.append = () => {
        throw new Error("injected SQLite failure");
      };
    });
    const data: Streams = [[A, [[T0 + 1, 0, "during"]]], [B, [[T0, 0, "new stream"]]]];
    await expect(push(tenant, data)).rejects.toThrow(/injected SQLite failure/);
    expect([...(await readShard(tenant, [re("app", ".+")])).entries()]).toEqual([[A, [[T0, 0, "before"]]]]);
    await runInDurableObject(stub(tenant), (inst: unknown) => {
      (inst as Inst).wal.append = orig!;
    });
    // The sender retries; no duplicate-state was left behind by the failed attempt.
    expect((await push(tenant, data)).accepted).toBe(2);
    expect(await readShard(tenant, [re("app", ".+")])).toEqual(expected([[A, [[T0, 0, "before"]]], ...data]));
  });

  it("refuses writes with a retryable error past maxHeadBytesPerShard", async () => {
    const tenant = "logs-head-full";
    const line = "x".repeat(1000);
    const limits = { maxHeadBytesPerShard: 20_000 };
    let i = 0;
    let err: Error | null = null;
    for (; i < 100 && err === null; i++) {
      try {
        await push(tenant, [[A, Array.from({ length: 5 }, (_, j): Entry => [T0 + i * 10 + j, 0, line])]], limits);
      } catch (e) {
        err = e as Error;
      }
    }
    expect(err?.message).toMatch(/over the limit of 20000 \(maxHeadBytesPerShard\), until a flush to R2 succeeds; retry later/);
    // Every acked push is there.
    expect((await readShard(tenant, [eq("app", "api")])).get(A)?.length).toBe((i - 1) * 5);
  });
});

describe("log ingester: replay", () => {
  it("every acked entry reads back after eviction, and the push rules' state survives", async () => {
    const tenant = "logs-evict";
    const rand = mulberry32(11);
    const all: Streams = [];
    for (let p = 0; p < 30; p++) {
      const streams: Streams = [];
      for (let s = 0; s < 3; s++) {
        const labels = `{app="svc${s}", pod="p${p % 4}"}`;
        const entries: Entry[] = Array.from({ length: 1 + Math.floor(rand() * 20) }, (_, j): Entry => [T0 + p * 1000 + j, Math.floor(rand() * 1e6), `line ${p}/${j} ${rand().toString(36)}`]);
        streams.push([labels, entries]);
      }
      const res = await push(tenant, streams, { chunkBlockSize: 256, chunkTargetSize: 1024 });
      expect(res.rejected).toEqual([]);
      all.push(...streams);
    }
    const before = await readShard(tenant, [re("app", ".+")]);
    expect(before).toEqual(expected(all));
    const chunks = (await stub(tenant).stats()).chunks;
    expect(chunks).toBeGreaterThan(12 + 6); // 12 streams; the small target size cut more chunks
    await evictDurableObject(stub(tenant));
    expect(await readShard(tenant, [re("app", ".+")])).toEqual(before);
    // Replay cut the chunks by the tenant's rules (kept durable), not the defaults.
    expect((await stub(tenant).stats()).chunks).toBe(chunks);
    // The last entry and the newest timestamp came back with the streams.
    const [lastLabels, lastEntries] = all[all.length - 1];
    const last = lastEntries[lastEntries.length - 1];
    expect(await push(tenant, [[lastLabels, [last]]])).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await push(tenant, [[lastLabels, [[T0 - 3 * HOUR, 0, "too old"]]]])).rejected).toEqual([{ reason: "too_far_behind", count: 1, bytes: 7 }]);
  });

  it("replays a push larger than one SQLite row", async () => {
    const tenant = "logs-big-row";
    const line = "y".repeat(200_000);
    const data: Streams = [[A, Array.from({ length: 12 }, (_, j): Entry => [T0 + j, 0, line + j])]];
    expect((await push(tenant, data)).accepted).toBe(12);
    await evictDurableObject(stub(tenant));
    expect(await readShard(tenant, [eq("app", "api")])).toEqual(expected(data));
  });
});
