// The runtime config (src/config/runtime.ts): PUT /api/v1/runtime_config changes a
// tenant's limits and a later push sees them, with no restart or deploy; bad configs
// are refused with a 400 naming the field; GET shows what is stored (keys only as
// their SHA-256). Open mode (no AUTH_CONFIG): the admin scope is not checked here
// (test/worker/auth_matrix.test.ts covers that).

import { SELF, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pushV1 } from "./helpers";

const URL = "http://ingester/api/v1/runtime_config";

function put(body: string): Promise<Response> {
  return SELF.fetch(URL, { method: "PUT", body, headers: { "Content-Type": "application/json" } });
}

describe("runtime config", () => {
  it("starts empty", async () => {
    const r = await SELF.fetch(URL);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ overrides: {}, browserKeys: [] });
  });

  it("a PUT changes a tenant's limit and the next push obeys it, without a restart", async () => {
    const t = Date.now() - 60_000;
    const longValue = "v".repeat(100);
    const before = await pushV1([{ labels: { __name__: "rc_metric", long: longValue }, samples: [[t, 1]] }], { tenant: "rc_tenant" });
    expect(before.status, await before.text()).toBe(204);

    const r = await put(JSON.stringify({ overrides: { rc_tenant: { maxLabelValueLength: 50 } } }));
    expect(r.status, await r.text()).toBe(200);

    // The same series again (the distributor's series cache must notice the new limit), and a new one.
    const after = await pushV1([{ labels: { __name__: "rc_metric", long: longValue }, samples: [[t + 1000, 1]] }], { tenant: "rc_tenant" });
    const text = await after.text();
    expect(after.status).toBe(400);
    expect(text).toContain("label_value_too_long");
    // Other tenants keep the defaults.
    const other = await pushV1([{ labels: { __name__: "rc_metric", long: longValue }, samples: [[t, 1]] }], { tenant: "rc_other" });
    expect(other.status, await other.text()).toBe(204);
  });

  it("a PUT of an ingestion rate takes effect at once (429 past it)", async () => {
    const r = await put(JSON.stringify({ overrides: { rc_rate: { ingestionRate: 10, ingestionBurstSize: 10 } } }));
    expect(r.status, await r.text()).toBe(200);
    const samples = Array.from({ length: 20 }, (_, i) => [Date.now() - 60_000 + i, i] as [number, number]);
    const push = await pushV1([{ labels: { __name__: "rc_rate" }, samples }], { tenant: "rc_rate" });
    expect(push.status).toBe(429);
    expect(await push.text()).toContain("ingestionBurstSize");
  });

  it("layers over the LIMITS var: '*' and tenant entries, most specific last", async () => {
    const r = await put(JSON.stringify({ overrides: { "*": { maxLabelNamesPerSeries: 2 }, rc_wide: { maxLabelNamesPerSeries: 10 } } }));
    expect(r.status, await r.text()).toBe(200);
    const labels = { __name__: "rc_layers", a: "1", b: "2" };
    const narrow = await pushV1([{ labels, samples: [[Date.now() - 1000, 1]] }], { tenant: "rc_narrow" });
    expect(narrow.status).toBe(400);
    expect(await narrow.text()).toContain("max_label_names_per_series");
    const wide = await pushV1([{ labels, samples: [[Date.now() - 1000, 1]] }], { tenant: "rc_wide" });
    expect(wide.status, await wide.text()).toBe(204);
    // Reset, so later tests are not narrowed.
    expect((await put("{}")).status).toBe(200);
  });

  it("stores browser keys as their SHA-256 only, and GET's output can be PUT back", async () => {
    const key = "rc-browser-key-0123456789";
    const r = await put(JSON.stringify({ browserKeys: [{ id: "web", key, tenant: "rc_tenant", origins: ["https://a.example"] }] }));
    expect(r.status).toBe(200);
    const stored = await (await env.BLOCKS.get("config/runtime.json"))!.text();
    expect(stored).not.toContain(key);
    const got = await (await SELF.fetch(URL)).json<{ browserKeys: { keySha256: string; bytesPerSecond: number }[] }>();
    expect(got.browserKeys[0].keySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(got.browserKeys[0].bytesPerSecond).toBe(65536);
    const back = await put(JSON.stringify(got));
    const backText = await back.text();
    expect(back.status, backText).toBe(200);
    expect(JSON.parse(backText)).toEqual(got);
  });

  it("refuses bad configs with a 400 naming the field, and keeps the previous config", async () => {
    const good = { overrides: { rc_keep: { maxLabelNamesPerSeries: 7 } } };
    expect((await put(JSON.stringify(good))).status).toBe(200);
    const cases: [string, string][] = [
      ["not json", "runtime config is not valid JSON"],
      ["[]", "runtime config must be a JSON object"],
      [JSON.stringify({ limits: {} }), 'unknown field "limits"'],
      [JSON.stringify({ overrides: { t: { noSuchLimit: 1 } } }), 'overrides["t"].noSuchLimit is not a known limit'],
      [JSON.stringify({ overrides: { t: { ingestionRate: -1 } } }), 'overrides["t"].ingestionRate must be a non-negative number'],
      [JSON.stringify({ overrides: { t: { corsAllowedOrigins: "x" } } }), 'overrides["t"].corsAllowedOrigins must be an array of strings'],
      [JSON.stringify({ overrides: { t: { shards: 8 } } }), 'overrides["t"].shards cannot be changed at runtime'],
      [JSON.stringify({ overrides: { "bad tenant": { ingestionRate: 1 } } }), "contains unsupported characters"],
      [JSON.stringify({ browserKeys: {} }), "browserKeys must be an array"],
      [JSON.stringify({ browserKeys: [{ id: "a", key: "short", tenant: "t", origins: ["https://a.example"] }] }), "browserKeys[0].key must be 16-256 printable ASCII"],
      [JSON.stringify({ browserKeys: [{ id: "a", tenant: "t", origins: ["https://a.example"] }] }), "browserKeys[0] needs exactly one of key"],
      [JSON.stringify({ browserKeys: [{ id: "a", key: "k".repeat(20), tenant: "t", origins: ["https://a.example/path"] }] }), "which is not an origin"],
      [JSON.stringify({ browserKeys: [{ id: "a", key: "k".repeat(20), tenant: "t", origins: [] }] }), "browserKeys[0].origins must be a non-empty array"],
      [
        JSON.stringify({ browserKeys: [0, 1].map((i) => ({ id: "dup", key: `k${i}`.repeat(10), tenant: "t", origins: ["https://a.example"] })) }),
        'browserKeys[1].id "dup" is used twice',
      ],
      [JSON.stringify({ browserKeys: [{ id: "a", key: "k".repeat(20), tenant: "t", origins: ["https://a.example"], bytesPerSecond: 0 }] }), "bytesPerSecond must be a positive number"],
    ];
    for (const [body, message] of cases) {
      const r = await put(body);
      const text = await r.text();
      expect(r.status, `${body}: ${text}`).toBe(400);
      expect(text).toContain(message);
    }
    expect(await (await SELF.fetch(URL)).json()).toEqual({ ...good, browserKeys: [] });
  });

  it("answers 405 to other methods", async () => {
    const r = await SELF.fetch(URL, { method: "POST", body: "{}" });
    expect(r.status).toBe(405);
    expect(r.headers.get("Allow")).toBe("GET, PUT");
  });
});
