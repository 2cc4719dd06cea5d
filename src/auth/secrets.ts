// Comparing secrets without leaking them through timing: both sides are hashed with
// SHA-256 and the digests compared with crypto.subtle.timingSafeEqual (workerd), so
// neither the time taken nor an early exit depends on how much of a secret matched.
// Configured secrets may be given as their SHA-256 (hex) so that the plaintext is
// stored nowhere.

const encoder = new TextEncoder();

export async function sha256(secret: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(secret)));
}

/** Constant-time equality of two digests (both 32 bytes). */
export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && crypto.subtle.timingSafeEqual(a, b);
}

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** A SHA-256 given as 64 hex digits, or null when `hex` is not one. */
export function fromHex(hex: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
