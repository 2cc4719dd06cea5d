import { describe, expect, it } from "vitest";
import { crc32c } from "../../src/storage/crc32c";

const ascii = (s: string) => new TextEncoder().encode(s);

describe("crc32c", () => {
  it("matches the standard check values", () => {
    // RFC 3720 (iSCSI) and the CRC catalogue's check value for "123456789".
    expect(crc32c(ascii("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it("is incremental: crc(a+b) = crc(b, crc(a)) at every split", () => {
    const data = ascii("The quick brown fox jumps over the lazy dog, 0123456789");
    const whole = crc32c(data);
    for (let k = 0; k <= data.length; k++) expect(crc32c(data.subarray(k), crc32c(data.subarray(0, k)))).toBe(whole);
  });

  it("detects any single flipped bit", () => {
    const data = ascii("prometheus remote write");
    const base = crc32c(data);
    for (let i = 0; i < data.length * 8; i++) {
      const d = data.slice();
      d[i >> 3] ^= 1 << (i & 7);
      expect(crc32c(d)).not.toBe(base);
    }
  });
});
