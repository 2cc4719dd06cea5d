// Runtime configuration that a person changes without a deploy (Mimir's runtime
// config file): per-tenant limit overrides and browser keys, one JSON object in R2 at
// config/runtime.json. Every Worker isolate reads it at the start of a request and
// keeps it RUNTIME_CONFIG_TTL_MS (10 s), so a change reaches every isolate within
// about 10 s (at once in the isolate that wrote it). Limit overrides layer on top of
// the LIMITS var (src/config/limits.ts, setRuntimeOverrides), so limitsFor() stays
// synchronous.
//
// Browser key secrets are never stored: a PUT may give `key` (the plaintext) and it
// is kept as `keySha256`; GET shows only the digests, so its output can be PUT back.

import { checkOverrides, setRuntimeOverrides, type Overrides } from "./limits";
import { HttpError } from "../http/errors";
import { readBody } from "../http/body";
import { validateTenant } from "../http/tenant";
import { fromHex, sha256, toHex } from "../auth/secrets";
import { jsonSyntaxError } from "./json_syntax";

export const RUNTIME_CONFIG_KEY = "config/runtime.json";
export const RUNTIME_CONFIG_TTL_MS = 10_000;
const MAX_CONFIG_BYTES = 1 << 20;
/** Browser key defaults: 64 KiB/s, 256 KiB burst: plenty for a page's logs, little for abuse. */
export const DEFAULT_BROWSER_KEY_BYTES_PER_SECOND = 65_536;
export const DEFAULT_BROWSER_KEY_BURST_BYTES = 262_144;

/** A write-only key for web pages: one tenant, a list of origins, its own rate limit. */
export interface BrowserKey {
  id: string;
  /** SHA-256 of the key. */
  digest: Uint8Array;
  tenant: string;
  /** Exact origins (scheme://host[:port]) whose pages may use the key. */
  origins: string[];
  bytesPerSecond: number;
  burstBytes: number;
  revoked: boolean;
}

export interface RuntimeConfig {
  overrides: Overrides;
  browserKeys: BrowserKey[];
}

const EMPTY: RuntimeConfig = { overrides: {}, browserKeys: [] };

let current: RuntimeConfig = EMPTY;
let loadedAt = -Infinity;
let loading: Promise<void> | null = null;

/** The runtime config as of this request (refreshRuntimeConfig ran at its start). */
export function runtimeConfig(): RuntimeConfig {
  return current;
}

/**
 * Loads config/runtime.json when the isolate's copy is older than the TTL; once per
 * request, before routing. An unreadable or invalid object keeps the last good
 * config (logged), so a bad edit made directly in R2 cannot drop every override.
 */
export async function refreshRuntimeConfig(env: { BLOCKS: R2Bucket }): Promise<void> {
  if (Date.now() - loadedAt < RUNTIME_CONFIG_TTL_MS) return;
  loading ??= (async () => {
    try {
      const obj = await env.BLOCKS.get(RUNTIME_CONFIG_KEY);
      install(obj === null ? EMPTY : await parseRuntimeConfig(await obj.text()));
    } catch (e) {
      console.error(`runtime config ${RUNTIME_CONFIG_KEY} not applied, keeping the previous one:`, e instanceof Error ? e.message : e);
      loadedAt = Date.now();
    } finally {
      loading = null;
    }
  })();
  await loading;
}

function install(config: RuntimeConfig): void {
  current = config;
  loadedAt = Date.now();
  setRuntimeOverrides(config.overrides);
}

/** GET /api/v1/runtime_config: the stored config (keys as their SHA-256). */
export async function handleGetRuntimeConfig(env: Env): Promise<Response> {
  const obj = await env.BLOCKS.get(RUNTIME_CONFIG_KEY);
  const config = obj === null ? EMPTY : await parseRuntimeConfig(await obj.text()).catch(() => null);
  if (config === null) {
    // Someone wrote an invalid object straight to R2: show it as it is, so it can be fixed with a PUT.
    return new Response(await obj!.text(), { headers: { "Content-Type": "application/json", Warning: '199 - "stored runtime config is invalid; the last valid one is in use"' } });
  }
  return Response.json(toJson(config));
}

/** PUT /api/v1/runtime_config: validates (400 naming the field), stores, applies in this isolate at once. */
export async function handlePutRuntimeConfig(request: Request, env: Env): Promise<Response> {
  const body = await readBody(request, MAX_CONFIG_BYTES);
  const config = await parseRuntimeConfig(new TextDecoder().decode(body));
  const json = toJson(config);
  await env.BLOCKS.put(RUNTIME_CONFIG_KEY, JSON.stringify(json, null, 2), { httpMetadata: { contentType: "application/json" } });
  install(config);
  return Response.json(json);
}

/** Validates a runtime config (text or parsed JSON); HttpError 400 names the bad field. */
export async function parseRuntimeConfig(input: unknown): Promise<RuntimeConfig> {
  let raw = input;
  if (typeof input === "string") {
    try {
      raw = JSON.parse(input);
    } catch {
      // Not JSON.parse's message: V8's may quote the body, which can hold a browser key.
      throw bad(`is not valid JSON: ${jsonSyntaxError(input)}`);
    }
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad('must be a JSON object {"overrides": {...}, "browserKeys": [...]}');
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (k !== "overrides" && k !== "browserKeys") throw bad(`has an unknown field "${k}" (known: overrides, browserKeys)`);

  let overrides: Overrides = {};
  if (obj.overrides !== undefined) {
    try {
      overrides = checkOverrides(obj.overrides, "overrides");
    } catch (e) {
      throw bad(`: ${(e as Error).message}`);
    }
    for (const [tenant, limits] of Object.entries(overrides)) {
      if (tenant !== "*") validateOrBad(tenant, `overrides["${tenant}"]`);
      // Changing the shard count moves series between Durable Objects: reads would miss the data on the old ones.
      if ("shards" in limits) throw bad(`: overrides["${tenant}"].shards cannot be changed at runtime (series would move to other shards); set it in LIMITS with a deploy`);
    }
  }

  const browserKeys: BrowserKey[] = [];
  if (obj.browserKeys !== undefined) {
    if (!Array.isArray(obj.browserKeys)) throw bad(": browserKeys must be an array");
    const ids = new Set<string>();
    const digests = new Set<string>();
    for (let i = 0; i < obj.browserKeys.length; i++) {
      const k = obj.browserKeys[i] as Record<string, unknown>;
      const at = `browserKeys[${i}]`;
      if (typeof k !== "object" || k === null || Array.isArray(k)) throw bad(`: ${at} must be an object`);
      for (const f of Object.keys(k)) {
        if (!["id", "key", "keySha256", "tenant", "origins", "bytesPerSecond", "burstBytes", "revoked"].includes(f)) throw bad(`: ${at} has an unknown field "${f}"`);
      }
      if (typeof k.id !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(k.id)) throw bad(`: ${at}.id must be 1-64 characters of A-Z a-z 0-9 _ . -`);
      if (ids.has(k.id)) throw bad(`: ${at}.id "${k.id}" is used twice`);
      ids.add(k.id);
      let digest: Uint8Array;
      if ((k.key === undefined) === (k.keySha256 === undefined)) throw bad(`: ${at} needs exactly one of key (the secret) or keySha256`);
      if (k.key !== undefined) {
        if (typeof k.key !== "string" || !/^[\x21-\x7e]{16,256}$/.test(k.key)) throw bad(`: ${at}.key must be 16-256 printable ASCII characters without spaces`);
        digest = await sha256(k.key);
      } else {
        const d = typeof k.keySha256 === "string" ? fromHex(k.keySha256) : null;
        if (d === null) throw bad(`: ${at}.keySha256 must be 64 hex digits`);
        digest = d;
      }
      const hex = toHex(digest);
      if (digests.has(hex)) throw bad(`: ${at} has the same key as another browser key`);
      digests.add(hex);
      if (typeof k.tenant !== "string") throw bad(`: ${at}.tenant must be a tenant ID`);
      validateOrBad(k.tenant, `${at}.tenant`);
      if (!Array.isArray(k.origins) || k.origins.length === 0) throw bad(`: ${at}.origins must be a non-empty array of origins like "https://shop.example"`);
      for (const o of k.origins) {
        if (typeof o !== "string" || !isOrigin(o)) throw bad(`: ${at}.origins has ${JSON.stringify(o)}, which is not an origin (scheme://host[:port], no path or trailing slash)`);
      }
      const bytesPerSecond = k.bytesPerSecond ?? DEFAULT_BROWSER_KEY_BYTES_PER_SECOND;
      const burstBytes = k.burstBytes ?? DEFAULT_BROWSER_KEY_BURST_BYTES;
      if (typeof bytesPerSecond !== "number" || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) throw bad(`: ${at}.bytesPerSecond must be a positive number`);
      if (typeof burstBytes !== "number" || !Number.isFinite(burstBytes) || burstBytes < 1) throw bad(`: ${at}.burstBytes must be a number of at least 1`);
      if (k.revoked !== undefined && typeof k.revoked !== "boolean") throw bad(`: ${at}.revoked must be true or false`);
      browserKeys.push({ id: k.id, digest, tenant: k.tenant, origins: k.origins as string[], bytesPerSecond, burstBytes, revoked: k.revoked === true });
    }
  }
  return { overrides, browserKeys };
}

function toJson(config: RuntimeConfig) {
  return {
    overrides: config.overrides,
    browserKeys: config.browserKeys.map((k) => ({
      id: k.id,
      keySha256: toHex(k.digest),
      tenant: k.tenant,
      origins: k.origins,
      bytesPerSecond: k.bytesPerSecond,
      burstBytes: k.burstBytes,
      ...(k.revoked ? { revoked: true } : {}),
    })),
  };
}

function isOrigin(o: string): boolean {
  try {
    const u = new URL(o);
    return (u.protocol === "https:" || u.protocol === "http:") && u.origin === o;
  } catch {
    return false;
  }
}

function validateOrBad(tenant: string, where: string): void {
  try {
    validateTenant(tenant);
  } catch (e) {
    throw bad(`: ${where}: ${(e as Error).message}`);
  }
}

function bad(what: string): HttpError {
  return new HttpError(400, `runtime config${what.startsWith(":") ? "" : " "}${what}`);
}
