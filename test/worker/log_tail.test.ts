// Live tail on a log shard over hibernatable WebSockets: a socket opened with
// stream matchers receives Loki tail messages for matching streams on each push,
// and keeps receiving them after the object is evicted (the matchers come back
// from the socket's attachment).

import { describe, expect, it } from "vitest";
import { evictDurableObject } from "cloudflare:test";
import { T0, eq, push, re, stub } from "./log_support";
import type { LabelMatcher } from "../../src/proto/types";

const A = '{app="api", env="prod"}';
const B = '{app="web", env="prod"}';

interface Tail {
  ws: WebSocket;
  messages: unknown[];
  closed: Promise<CloseEvent>;
}

async function openTail(tenant: string, matchers: LabelMatcher[]): Promise<Tail> {
  const res = await stub(tenant).fetch(`http://shard/tail?matchers=${encodeURIComponent(JSON.stringify(matchers))}`, { headers: { Upgrade: "websocket" } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const messages: unknown[] = [];
  ws.addEventListener("message", (e) => {
    messages.push(JSON.parse(e.data as string));
  });
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  ws.accept();
  return { ws, messages, closed };
}

/** Waits (without asserting on time) until n messages arrived; fails after many turns of the event loop. */
async function received(t: Tail, n: number): Promise<unknown[]> {
  for (let i = 0; i < 500 && t.messages.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(t.messages.length).toBe(n);
  return t.messages;
}

describe("log ingester: live tail", () => {
  it("sends each push's matching entries as one Loki tail message", async () => {
    const tenant = "tail-basic";
    const t = await openTail(tenant, [eq("app", "api")]);
    await push(tenant, [
      [A, [[T0, 5, "first"], [T0 + 1, 0, "second", ["trace_id", "t1"]]]],
      [B, [[T0, 0, "not for this tail"]]],
    ]);
    await push(tenant, [[B, [[T0 + 2, 0, "still not"]]]]);
    await push(tenant, [[A, [[T0 + 3, 0, "third"]]]]);
    expect(await received(t, 2)).toEqual([
      {
        streams: [{ stream: { app: "api", env: "prod" }, values: [[`${T0}000005`, "first"], [`${T0 + 1}000000`, "second", { trace_id: "t1" }]] }],
        dropped_entries: null,
      },
      { streams: [{ stream: { app: "api", env: "prod" }, values: [[`${T0 + 3}000000`, "third"]] }], dropped_entries: null },
    ]);
    t.ws.close(1000, "done");
  });

  it("sends only what was accepted: duplicates and refused entries are not tailed", async () => {
    const tenant = "tail-accepted";
    const t = await openTail(tenant, [re("app", ".+")]);
    await push(tenant, [[A, [[T0, 0, "x"], [T0, 0, "x"], [T0 - 3 * 3600_000, 0, "too old"]]]]);
    const [msg] = (await received(t, 1)) as { streams: { values: string[][] }[] }[];
    expect(msg.streams[0].values).toEqual([[`${T0}000000`, "x"]]);
    t.ws.close(1000, "done");
  });

  it("keeps tailing after the object is evicted (hibernation restores the matchers)", async () => {
    const tenant = "tail-hibernate";
    const t = await openTail(tenant, [eq("app", "web")]);
    await push(tenant, [[B, [[T0, 0, "before eviction"]]]]);
    await received(t, 1);
    await evictDurableObject(stub(tenant));
    await push(tenant, [[A, [[T0 + 1, 0, "other stream"]]], [B, [[T0 + 1, 0, "after eviction"]]]]);
    const msgs = (await received(t, 2)) as { streams: { stream: Record<string, string>; values: string[][] }[] }[];
    expect(msgs[1].streams).toEqual([{ stream: { app: "web", env: "prod" }, values: [[`${T0 + 1}000000`, "after eviction"]] }]);
    // A fresh instance answered (its push counter restarted), with the socket still attached.
    expect(await stub(tenant).stats()).toMatchObject({ pushes: 1, tailers: 1 });
    t.ws.close(1000, "done");
    await t.closed;
    for (let i = 0; i < 100 && (await stub(tenant).stats()).tailers > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await stub(tenant).stats()).tailers).toBe(0);
  });

  it("splits a push too large for one WebSocket message, keeping entry order", async () => {
    const tenant = "tail-large";
    const t = await openTail(tenant, [eq("app", "api")]);
    const big = (i: number) => `${i}:` + "z".repeat(200_000);
    await push(tenant, [[A, Array.from({ length: 6 }, (_, i): [number, number, string] => [T0 + i, 0, big(i)])], [B, [[T0, 0, "other"]]]]);
    await push(tenant, [[A, [[T0 + 10, 0, "small"]]]]);
    for (let i = 0; i < 500 && t.messages.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    const msgs = t.messages as { streams: { values: string[][] }[] }[];
    expect(msgs.length).toBeGreaterThan(2);
    const lines = msgs.flatMap((m) => m.streams.flatMap((s) => s.values.map((v) => v[1])));
    expect(lines).toEqual([...Array.from({ length: 6 }, (_, i) => big(i)), "small"]);
    for (const m of msgs) expect(JSON.stringify(m).length).toBeLessThan(1 << 20);
    t.ws.close(1000, "done");
  });

  it("refuses requests that are not WebSocket upgrades or carry bad matchers", async () => {
    const plain = await stub("tail-bad").fetch("http://shard/tail");
    expect(plain.status).toBe(426);
    expect(await plain.text()).toMatch(/requires a websocket/);
    const missing = await stub("tail-bad").fetch("http://shard/tail", { headers: { Upgrade: "websocket" } });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toMatch(/missing \?matchers=/);
    const badRe = await stub("tail-bad").fetch(`http://shard/tail?matchers=${encodeURIComponent(JSON.stringify([re("app", "(")]))}`, {
      headers: { Upgrade: "websocket" },
    });
    expect(badRe.status).toBe(400);
    expect(await badRe.text()).toMatch(/invalid regular expression/);
    const badShape = await stub("tail-bad").fetch(`http://shard/tail?matchers=${encodeURIComponent('[{"type":9,"name":"a","value":"b"}]')}`, {
      headers: { Upgrade: "websocket" },
    });
    expect(badShape.status).toBe(400);
    const tooLong = await stub("tail-bad").fetch(`http://shard/tail?matchers=${encodeURIComponent(JSON.stringify([re("app", "x".repeat(3000))]))}`, {
      headers: { Upgrade: "websocket" },
    });
    expect(tooLong.status).toBe(400);
    expect(await tooLong.text()).toMatch(/too long for a tail/);
  });
});
