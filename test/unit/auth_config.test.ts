// AUTH_CONFIG parsing (src/auth/config.ts): a malformed secret fails closed with a
// 500 that names the field and never the secret; perShardLimit (src/limits/series.ts).

import { describe, expect, it } from "vitest";
import { parseAuthConfig } from "../../src/auth/config";
import { HttpError } from "../../src/http/errors";
import { sha256, toHex } from "../../src/auth/secrets";
import { perShardLimit } from "../../src/limits/series";

async function refusal(config: unknown): Promise<HttpError> {
  try {
    await parseAuthConfig(typeof config === "string" ? config : JSON.stringify(config));
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return e as HttpError;
  }
  throw new Error("accepted");
}

describe("AUTH_CONFIG", () => {
  it("parses tokens, basic users, hashed secrets, tenants and scopes", async () => {
    const hashed = toHex(await sha256("another-token-0123456789"));
    const c = await parseAuthConfig(
      JSON.stringify({
        credentials: [
          { name: "a", token: "token-a-0123456789", tenants: ["t1", "t2"], scopes: ["write"] },
          { name: "b", username: "u", password: "password-0123456789", tenants: "*", scopes: ["read", "admin"] },
          { name: "c", tokenSha256: hashed, tenants: ["*"], scopes: ["read"] },
        ],
      }),
    );
    expect(c.credentials.map((x) => x.name)).toEqual(["a", "b", "c"]);
    expect([...c.credentials[0].tenants!]).toEqual(["t1", "t2"]);
    expect(c.credentials[1].tenants).toBeNull();
    expect(c.credentials[2].tenants).toBeNull();
    expect(toHex(c.credentials[2].tokenDigest!)).toBe(hashed);
    expect(toHex(c.credentials[0].tokenDigest!)).toBe(toHex(await sha256("token-a-0123456789")));
  });

  it("fails closed with a 500 naming the field, never the secret", async () => {
    const secret = "super-secret-token-0123456789";
    const cases: [unknown, string][] = [
      [`{"credentials": [{"token": "${secret}"`, "is not valid JSON (unexpected end at line 1, column 59)"],
      // V8's own message would quote this text: 'Unexpected token 's', "{"credenti"... is not valid JSON'.
      [`{"credentials": [{"token": ${secret}}]}`, "is not valid JSON (unexpected character at line 1, column 28)"],
      [{ creds: [] }, '{"credentials": [...]}'],
      [{ credentials: [{ token: secret, tenants: ["t"], scopes: ["write"] }] }, "credentials[0] needs a non-empty string name"],
      [{ credentials: [{ name: "x", token: "short", tenants: ["t"], scopes: ["write"] }] }, 'credential "x" token must be a string of at least 16 characters'],
      [{ credentials: [{ name: "x", token: secret, username: "u", tenants: ["t"], scopes: ["write"] }] }, "needs either a token"],
      [{ credentials: [{ name: "x", token: secret, tenants: [], scopes: ["write"] }] }, "needs tenants"],
      [{ credentials: [{ name: "x", token: secret, tenants: ["bad tenant"], scopes: ["write"] }] }, "lists a bad tenant"],
      [{ credentials: [{ name: "x", token: secret, tenants: ["t"], scopes: ["delete"] }] }, "needs scopes"],
      [{ credentials: [{ name: "x", tokenSha256: "abc", tenants: ["t"], scopes: ["read"] }] }, "tokenSha256 must be 64 hex digits"],
      [{ credentials: [{ name: "x", token: secret, tenants: ["t"], scopes: ["read"], extra: 1 }] }, 'unknown field "extra"'],
      [
        {
          credentials: [
            { name: "x", username: "u", password: secret, tenants: ["t"], scopes: ["read"] },
            { name: "y", username: "u", password: secret, tenants: ["t"], scopes: ["read"] },
          ],
        },
        'repeats the username "u"',
      ],
    ];
    for (const [config, message] of cases) {
      const e = await refusal(config);
      expect(e.status).toBe(500);
      expect(e.message).toContain(message);
      expect(e.message).not.toContain(secret);
    }
  });
});

describe("perShardLimit", () => {
  it("divides a tenant-wide limit over shards as Mimir does, never to 0", () => {
    expect(perShardLimit(150_000, 4)).toBe(37_500);
    expect(perShardLimit(10, 4)).toBe(2);
    expect(perShardLimit(1, 4)).toBe(1);
    expect(perShardLimit(0, 4)).toBe(0);
  });
});
