// Credentials from the Worker secret AUTH_CONFIG (docs/configuration.md,
// "Authentication"): bearer tokens and HTTP basic users, each allowed on a list of
// tenants (or "*") with a set of scopes. Parsed and hashed once per isolate. A
// malformed AUTH_CONFIG fails closed: every authenticated route answers 500 naming
// the problem (never a secret), rather than falling back to open access.

import { validateTenant } from "../http/tenant";
import { HttpError } from "../http/errors";
import type { Scope } from "./context";
import { fromHex, sha256 } from "./secrets";
import { jsonSyntaxError } from "../config/json_syntax";

export const SCOPES: readonly Scope[] = ["write", "read", "admin"];

export interface Credential {
  name: string;
  /** Bearer token: SHA-256 of the token. */
  tokenDigest: Uint8Array | null;
  /** HTTP basic: the user name and the SHA-256 of the password. */
  username: string | null;
  passwordDigest: Uint8Array | null;
  /** null: every tenant ("*"). */
  tenants: Set<string> | null;
  scopes: Set<Scope>;
}

export interface AuthConfig {
  credentials: Credential[];
}

let cachedSource: string | undefined;
let cached: Promise<AuthConfig> | null = null;

/** The parsed AUTH_CONFIG, or null when it is not set (open mode: local development only). */
export async function authConfig(env: { AUTH_CONFIG?: string }): Promise<AuthConfig | null> {
  const source = env.AUTH_CONFIG;
  if (source === undefined || source.trim() === "") return null;
  if (source !== cachedSource || cached === null) {
    cachedSource = source;
    cached = parseAuthConfig(source);
  }
  return cached;
}

function invalid(where: string, what: string): HttpError {
  // A server misconfiguration, not the client's fault: 500, with the place to fix.
  return new HttpError(500, `AUTH_CONFIG is invalid: ${where} ${what} (docs/configuration.md, "Authentication")`);
}

export async function parseAuthConfig(source: string): Promise<AuthConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(source);
  } catch {
    // JSON.parse's message may quote the text, which holds secrets: only the position.
    throw invalid("the secret", `is not valid JSON (${jsonSyntaxError(source)})`);
  }
  if (typeof raw !== "object" || raw === null || !Array.isArray((raw as { credentials?: unknown }).credentials)) {
    throw invalid("the secret", 'must be an object {"credentials": [...]}');
  }
  const list = (raw as { credentials: unknown[] }).credentials;
  const credentials: Credential[] = [];
  const names = new Set<string>();
  const users = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const c = list[i] as Record<string, unknown>;
    const at = `credentials[${i}]`;
    if (typeof c !== "object" || c === null) throw invalid(at, "must be an object");
    for (const k of Object.keys(c)) {
      if (!["name", "token", "tokenSha256", "username", "password", "passwordSha256", "tenants", "scopes"].includes(k)) throw invalid(at, `has an unknown field "${k}"`);
    }
    if (typeof c.name !== "string" || c.name === "") throw invalid(at, "needs a non-empty string name");
    if (names.has(c.name)) throw invalid(at, `repeats the name "${c.name}"`);
    names.add(c.name);
    const where = `credential "${c.name}"`;

    let tokenDigest: Uint8Array | null = null;
    let username: string | null = null;
    let passwordDigest: Uint8Array | null = null;
    const isBearer = c.token !== undefined || c.tokenSha256 !== undefined;
    const isBasic = c.username !== undefined;
    if (isBearer === isBasic) throw invalid(where, "needs either a token (token or tokenSha256) or a username with a password (password or passwordSha256)");
    if (isBearer) {
      tokenDigest = await secretDigest(c.token, c.tokenSha256, where, "token");
    } else {
      if (typeof c.username !== "string" || c.username === "" || c.username.includes(":")) throw invalid(where, "needs a non-empty username without ':'");
      if (users.has(c.username)) throw invalid(where, `repeats the username "${c.username}"`);
      users.add(c.username);
      username = c.username;
      passwordDigest = await secretDigest(c.password, c.passwordSha256, where, "password");
    }

    let tenants: Set<string> | null;
    if (c.tenants === "*") tenants = null;
    else if (Array.isArray(c.tenants) && c.tenants.length > 0 && c.tenants.every((t) => typeof t === "string")) {
      if (c.tenants.includes("*")) tenants = null;
      else {
        for (const t of c.tenants as string[]) {
          try {
            validateTenant(t);
          } catch (e) {
            throw invalid(where, `lists a bad tenant: ${(e as Error).message}`);
          }
        }
        tenants = new Set(c.tenants as string[]);
      }
    } else throw invalid(where, 'needs tenants: a non-empty array of tenant IDs, or "*" for all');

    if (!Array.isArray(c.scopes) || c.scopes.length === 0 || !c.scopes.every((s) => SCOPES.includes(s as Scope))) {
      throw invalid(where, `needs scopes: a non-empty array of ${SCOPES.map((s) => `"${s}"`).join(", ")}`);
    }
    credentials.push({ name: c.name, tokenDigest, username, passwordDigest, tenants, scopes: new Set(c.scopes as Scope[]) });
  }
  return { credentials };
}

async function secretDigest(plain: unknown, hex: unknown, where: string, what: string): Promise<Uint8Array> {
  if (plain !== undefined && hex !== undefined) throw invalid(where, `gives both ${what} and ${what}Sha256; keep one`);
  if (hex !== undefined) {
    const d = typeof hex === "string" ? fromHex(hex) : null;
    if (d === null) throw invalid(where, `${what}Sha256 must be 64 hex digits (the SHA-256 of the ${what})`);
    return d;
  }
  // Short secrets can be guessed; tokens are machine-made, so ask for 16 characters.
  if (typeof plain !== "string" || plain.length < 16) throw invalid(where, `${what} must be a string of at least 16 characters`);
  return sha256(plain);
}
