import { describe, it, expect } from "vitest";
import { env, SELF } from "cloudflare:test";
describe("smoke", () => {
  it("runs in workerd", async () => {
    const r = await SELF.fetch("http://x/");
    expect(await r.text()).toBe("ok");
    const stub = env.INGESTER.get(env.INGESTER.idFromName("a"));
    expect(await stub.ping()).toBe("pong");
  });
});
