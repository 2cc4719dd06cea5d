import { describe, expect, it } from "vitest";
import { BitWriter } from "../../src/storage/chunk/bstream";
import { ChunkCorruptError } from "../../src/storage/chunk/errors";
import { XOR_MAX_SAMPLES, XorAppender, XorIterator, decodeXor, xorNumSamples } from "../../src/storage/chunk/xor";
import { mulberry32 } from "../support/prng";


// Floats are built from and checked against raw words (Float64Array/Uint32Array
// aliasing, platform word order), never compared as numbers.
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LE ? 1 : 0;
const LO = LE ? 0 : 1;
const f64 = new Float64Array(1);
const w32 = new Uint32Array(f64.buffer);

function fromBits(hi: number, lo: number): number {
  w32[HI] = hi;
  w32[LO] = lo;
  return f64[0];
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => new Uint8Array(s.match(/../g)!.map((x) => parseInt(x, 16)));

const STALE_HI = 0x7ff00000;
const STALE_LO = 0x00000002;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

interface Series {
  ts: Float64Array;
  vs: Float64Array; // filled through raw words
}

function series(n: number, t: (i: number) => number, bits: (i: number, w: Uint32Array) => void): Series {
  const ts = new Float64Array(n);
  const vs = new Float64Array(n);
  const w = new Uint32Array(vs.buffer);
  const one = new Uint32Array(2);
  for (let i = 0; i < n; i++) {
    ts[i] = t(i);
    bits(i, one);
    w[2 * i + HI] = one[HI];
    w[2 * i + LO] = one[LO];
  }
  return { ts, vs };
}

/** Value words from a number (for series whose values are ordinary floats). */
function numeric(f: (i: number) => number): (i: number, w: Uint32Array) => void {
  return (i, w) => {
    f64[0] = f(i);
    w[0] = w32[0];
    w[1] = w32[1];
  };
}

/** Signalling NaN (quiet bit clear): V8 may quiet these whenever they travel as numbers. */
function isSignallingNaN(hi: number, lo: number): boolean {
  return (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) !== 0 || lo !== 0) && (hi & 0x80000) === 0;
}

/** Encodes from raw words (appendBits), the path that is exact for every bit pattern. */
function encode(s: Series, capacity?: number): XorAppender {
  const app = new XorAppender(capacity);
  const w = new Uint32Array(s.vs.buffer);
  for (let i = 0; i < s.ts.length; i++) app.appendBits(s.ts[i], w[2 * i + HI], w[2 * i + LO]);
  return app;
}

/** Encodes through append(t, number). */
function encodeNumbers(s: Series): XorAppender {
  const app = new XorAppender();
  for (let i = 0; i < s.ts.length; i++) app.append(s.ts[i], s.vs[i]);
  return app;
}

/** Encodes, decodes both ways, and checks every timestamp and every value bit. */
function roundTrip(s: Series, capacity?: number): Uint8Array {
  const n = s.ts.length;
  const app = encode(s, capacity);
  const chunk = app.finish();
  expect(app.numSamples).toBe(n);
  expect(xorNumSamples(chunk)).toBe(n);
  if (n > 0) {
    expect(app.minTime).toBe(Math.min(...s.ts));
    expect(app.maxTime).toBe(Math.max(...s.ts));
  }
  expect(hex(app.bytes())).toBe(hex(chunk));

  const want = new Uint32Array(s.vs.buffer);
  let numbersSafe = true;
  for (let i = 0; i < n; i++) {
    const hi = want[2 * i + HI];
    const lo = want[2 * i + LO];
    if (isSignallingNaN(hi, lo) && !(hi === STALE_HI && lo === STALE_LO)) numbersSafe = false;
  }
  // append(number) gives the same bytes whenever numbers can carry the values.
  if (numbersSafe) expect(hex(encodeNumbers(s).finish())).toBe(hex(chunk));

  const d = decodeXor(chunk);
  expect(Array.from(d.timestamps)).toEqual(Array.from(s.ts));
  expect(Array.from(new Uint32Array(d.values.buffer))).toEqual(Array.from(want));

  const it = new XorIterator(chunk);
  let i = 0;
  while (it.next()) {
    expect(it.t).toBe(s.ts[i]);
    const hi = want[2 * i + HI];
    const lo = want[2 * i + LO];
    expect([it.valueHi, it.valueLo]).toEqual([hi, lo]);
    if (isSignallingNaN(hi, lo)) {
      expect(Number.isNaN(it.v)).toBe(true);
    } else {
      f64[0] = it.v;
      expect([w32[HI], w32[LO]]).toEqual([hi, lo]);
    }
    i++;
  }
  expect(i).toBe(n);
  expect(it.next()).toBe(false);
  return chunk;
}

function gen(seed: number, kind: string, n: number): Series {
  const rnd = mulberry32(seed);
  const start = Math.floor(1.7e12 + rnd() * 1e9);
  const scrape = (interval: number, jitter: number) => {
    let t = start;
    return (i: number) => (i === 0 ? t : (t += interval + Math.round((rnd() - 0.5) * 2 * jitter)));
  };
  switch (kind) {
    case "gauge-walk": {
      let v = 100 * rnd();
      return series(n, scrape(15_000, 25), numeric(() => (v += (rnd() - 0.5) * 3)));
    }
    case "counter": {
      let v = 0;
      return series(n, scrape(15_000, 10), numeric(() => (v += Math.floor(rnd() * 1000))));
    }
    case "counter-reset": {
      let v = 0;
      return series(n, scrape(30_000, 0), numeric(() => (v = rnd() < 0.02 ? 0 : v + rnd() * 50)));
    }
    case "constant":
      return series(n, scrape(60_000, 0), numeric(() => 42));
    case "integers":
      return series(n, scrape(10_000, 100), numeric(() => Math.floor((rnd() - 0.5) * 2 ** (1 + rnd() * 52))));
    case "tiny":
      return series(n, scrape(1_000, 3), numeric(() => (rnd() - 0.5) * 10 ** -(300 + rnd() * 23)));
    case "huge":
      return series(n, scrape(1_000, 3), numeric(() => (rnd() < 0.1 ? Number.MAX_VALUE : (rnd() - 0.5) * 10 ** (250 + rnd() * 58))));
    case "random-bits":
      // Any 64-bit pattern, including NaNs with arbitrary payloads and denormals.
      return series(n, scrape(15_000, 7_000), (_i, w) => {
        w[0] = (rnd() * 4294967296) >>> 0;
        w[1] = (rnd() * 4294967296) >>> 0;
      });
    case "specials": {
      const specials: Array<[number, number]> = [
        [STALE_HI, STALE_LO], // Prometheus stale marker
        [0x7ff80000, 0], // canonical quiet NaN
        [0xfff80000, 1], // negative NaN with payload
        [0x7ff00000, 0], // +Inf
        [0xfff00000, 0], // -Inf
        [0x80000000, 0], // -0
        [0, 0], // +0
        [0, 1], // smallest denormal
        [0x7fefffff, 0xffffffff], // MAX_VALUE
        [0x3ff00000, 0], // 1
      ];
      return series(n, scrape(15_000, 50), (_i, w) => {
        const [hi, lo] = specials[Math.floor(rnd() * specials.length)];
        w[HI] = hi;
        w[LO] = lo;
      });
    }
    case "negative-time": {
      let t = -Math.floor(rnd() * 2 ** 45);
      return series(n, (i) => (i === 0 ? t : (t += 1 + Math.floor(rnd() * 5_000))), numeric((i) => i));
    }
    case "huge-deltas": {
      // Deltas beyond 2^32 ms and delta-of-deltas of either sign in every bucket.
      let t = -(2 ** 50);
      return series(
        n,
        (i) => (i === 0 ? t : (t += rnd() < 0.3 ? 2 ** 32 + Math.floor(rnd() * 2 ** 44) : Math.floor(rnd() * 2 ** Math.floor(rnd() * 30)))),
        numeric(() => rnd()),
      );
    }
    case "out-of-order": {
      // Not something the head appends, but the format carries it (negative first delta
      // becomes a 10-byte varint), so it must round-trip.
      return series(n, () => Math.floor((rnd() - 0.5) * 2 ** 40), numeric(() => Math.floor(rnd() * 4)));
    }
    default:
      throw new Error(kind);
  }
}

const KINDS = [
  "gauge-walk",
  "counter",
  "counter-reset",
  "constant",
  "integers",
  "tiny",
  "huge",
  "random-bits",
  "specials",
  "negative-time",
  "huge-deltas",
  "out-of-order",
];

describe("XOR chunk golden bytes", () => {
  it("(1000,1.0),(2000,1.0),(3000,2.0) is byte-identical to Prometheus", () => {
    // Derived by hand from xor.go/bstream.go (Go's bstream appends a spare byte
    // after every writeByte, i.e. after any write whose width is a multiple of 8):
    //   00 03                 uint16 BE sample count = 3
    //   d0 0f                 PutVarint(1000): zigzag 2000 = 0x7d0 -> 0xd0 0x0f
    //   3f f0 00 00 00 00 00 00   1.0 = 0x3ff0000000000000, 64 raw bits
    //   e8 07                 PutUvarint(1000) -> 0xe8 0x07 (lands in the spare byte)
    //   then bits: 0          value 1.0 ^ 1.0 == 0
    //              0          dod = 1000 - 1000 = 0
    //              1 1        2.0 ^ 1.0 = 0x7ff0000000000000 != 0, no window yet
    //              00001      leading zeros = 1
    //              001011     significant bits = 64 - 1 - 52 = 11
    //              11111111111  xor >> 52 = 0x7ff
    //   0011 0000 | 1001 0111 | 1111 1111 | 11 + 000000 padding = 30 97 ff c0
    const app = new XorAppender();
    app.append(1000, 1.0);
    app.append(2000, 1.0);
    app.append(3000, 2.0);
    expect(hex(app.finish())).toBe("0003d00f3ff0000000000000e8073097ffc0");
  });

  it("a one-sample chunk ends with Go's spare zero byte", () => {
    // 00 01 | d0 0f | 3f f0 00.. | 00: the 64-bit value write is byte-wise in Go,
    // so the stream already holds the next (empty) byte.
    const app = new XorAppender();
    app.append(1000, 1.0);
    expect(hex(app.finish())).toBe("0001d00f3ff000000000000000");
  });

  it("an empty chunk is just the header", () => {
    const app = new XorAppender();
    expect(hex(app.finish())).toBe("0000");
    expect(app.minTime).toBe(Infinity);
    expect(app.maxTime).toBe(-Infinity);
    expect(decodeXor(app.bytes()).timestamps.length).toBe(0);
  });

  it("covers every dod bucket edge, sigbits 64, NaN payloads and -0", () => {
    // Expected bytes come from a line-by-line transliteration of xor.go and
    // bstream.go (Go's writeBit/writeByte/writeBits, PutVarint, bitRange and
    // writeVDelta), run outside this repository; it also agreed with this
    // encoder on 400 random series (62k samples) of all kinds above.
    // Timestamps: first delta 1000, then dods 1000 (14-bit), 9000 (17-bit),
    // -70000 (20-bit), 600000 (64-bit), 0, -8191 and 8192 (14-bit edges), -8192 (17-bit).
    const ts = [-1000, 0, 2000, 13000, -46000, 495000, 1036000, 1568809, 2109810, 2642619];
    // 0 -> -5e-324 XORs to 0x8000000000000001: leading 0, trailing 0, sigbits 64 written as 0.
    const words: Array<[number, number]> = [
      [0, 0],
      [0x80000000, 1],
      [STALE_HI, STALE_LO],
      [STALE_HI, STALE_LO],
      [0x7ff00000, 0],
      [0x80000000, 0],
      [0x3ff80000, 0],
      [0x3ffc0000, 0],
      [0x40450000, 0],
      [0x40450000, 0],
    ];
    const s = series(ts.length, (i) => ts[i], (i, w) => {
      w[HI] = words[i][0];
      w[LO] = words[i][1];
    });
    const chunk = roundTrip(s);
    expect(hex(chunk)).toBe(
      "000acf0f0000000000000000e807c004000000000000000c1f45ffe000000000000784650eeee908000000000000000bc0000000000249f02fff000000000000057ff00000000000014003000200000000000050004ff72000000000001bc000",
    );
  });

  it("a constant 15s series costs 2 bits per sample after the second", () => {
    // header 2 + varint(zigzag 1.7e12) 6 + value 8 + uvarint(15000) 2 = 18 bytes,
    // then 1 value bit for sample 2 and '0' dod + '0' value for each of the other 118:
    // 144 + 1 + 236 = 381 bits -> 48 bytes.
    const s = series(120, (i) => 1.7e12 + i * 15_000, numeric(() => 1));
    expect(roundTrip(s).length).toBe(48);
  });
});

describe("XOR chunk round trips", () => {
  for (const n of [1, 2, 3, 120, 1000]) {
    it(`${n} samples, every series kind, several seeds`, () => {
      for (let k = 0; k < KINDS.length; k++) {
        for (let seed = 1; seed <= (n <= 3 ? 40 : 5); seed++) roundTrip(gen(seed * 1000 + k, KINDS[k], n), seed % 2 === 0 ? 1 : undefined);
      }
    });
  }

  it("many random mixed series", () => {
    const rnd = mulberry32(99);
    for (let i = 0; i < 300; i++) {
      const kind = KINDS[Math.floor(rnd() * KINDS.length)];
      roundTrip(gen(i, kind, 1 + Math.floor(rnd() * 300)));
    }
  });

  it("keeps the stale marker's NaN payload bit-exact", () => {
    const s = series(5, (i) => 1000 * (i + 1), (i, w) => {
      w[HI] = i % 2 === 0 ? STALE_HI : 0x40000000;
      w[LO] = i % 2 === 0 ? STALE_LO : 0;
    });
    roundTrip(s);
    for (const app of [encode(s), encodeNumbers(s)]) {
      const d = decodeXor(app.bytes());
      const words = new Uint32Array(d.values.buffer);
      expect([words[HI], words[LO]]).toEqual([0x7ff00000, 0x00000002]);
      expect([words[4 + HI], words[4 + LO]]).toEqual([0x7ff00000, 0x00000002]);
      const it = new XorIterator(app.bytes());
      it.next();
      expect([it.valueHi, it.valueLo]).toEqual([0x7ff00000, 2]);
    }
  });

  it("append(number) takes a quieted stale marker back to the stale marker", () => {
    // V8 in workerd sets the quiet bit of signalling NaNs passed around as
    // numbers once code is optimised, so the marker can arrive as 0x7ff8000000000002.
    const app = new XorAppender();
    app.append(1000, fromBits(0x7ff80000, 2));
    app.append(2000, fromBits(STALE_HI, STALE_LO));
    app.append(3000, fromBits(0x7ff80000, 1)); // Go's math.NaN() is left alone
    const it = new XorIterator(app.bytes());
    const seen: Array<[number, number]> = [];
    while (it.next()) seen.push([it.valueHi, it.valueLo]);
    expect(seen).toEqual([
      [STALE_HI, STALE_LO],
      [STALE_HI, STALE_LO],
      [0x7ff80000, 1],
    ]);
    // appendBits stores exactly what it is given.
    const raw = new XorAppender();
    raw.appendBits(1000, 0x7ff80000, 2);
    const it2 = new XorIterator(raw.bytes());
    it2.next();
    expect([it2.valueHi, it2.valueLo]).toEqual([0x7ff80000, 2]);
  });

  it("-0, +Inf and -Inf survive", () => {
    const vals = [-0, Infinity, -Infinity, -0, 0, -0];
    const s = series(vals.length, (i) => i * 15_000, numeric((i) => vals[i]));
    roundTrip(s);
    const d = decodeXor(encode(s).finish());
    expect(Object.is(d.values[0], -0)).toBe(true);
    expect(d.values[1]).toBe(Infinity);
    expect(d.values[2]).toBe(-Infinity);
    expect(Object.is(d.values[4], 0)).toBe(true);
  });

  it("timestamps at the edges of the safe range and huge negative dods", () => {
    const cases = [
      [-MAX_SAFE, -MAX_SAFE + 1, 0, 1, MAX_SAFE - 1, MAX_SAFE - 1],
      [MAX_SAFE - 2, MAX_SAFE - 1, MAX_SAFE],
      [0, 2 ** 52, 2 ** 52 + 1], // dod = 1 - 2^52
      [0, 1, 2 ** 53 - 1], // dod just under 2^53
      [5, 2 ** 33, 2 ** 34, 2 ** 34 + 15_000, 2 ** 34 + 30_000, 2 ** 34 + 30_001],
      [0, 2 ** 40, 2 ** 40, 2 ** 41, 2 ** 41 - 1],
    ];
    for (const ts of cases) roundTrip(series(ts.length, (i) => ts[i], numeric((i) => i * 0.5)));
  });

  it("dod bucket boundaries on both sides", () => {
    for (const dod of [1, -1, 8191, -8191, 8192, -8192, 8193, 65535, -65535, 65536, -65536, 65537, 524287, -524287, 524288, -524288, 524289, 2 ** 31, -(2 ** 31), 2 ** 32 + 3, -(2 ** 32) - 3]) {
      const ts = [10 ** 12, 10 ** 12 + 10 ** 7, 10 ** 12 + 2 * 10 ** 7 + dod, 10 ** 12 + 3 * 10 ** 7 + 2 * dod];
      roundTrip(series(ts.length, (i) => ts[i], numeric(() => 1)));
    }
  });

  it("a full chunk of 65535 samples, and no more", () => {
    const app = new XorAppender();
    for (let i = 0; i < XOR_MAX_SAMPLES; i++) app.append(i * 1000, i % 7);
    expect(app.numSamples).toBe(XOR_MAX_SAMPLES);
    const before = hex(app.finish());
    expect(() => app.append(XOR_MAX_SAMPLES * 1000, 1)).toThrow(RangeError);
    expect(hex(app.finish())).toBe(before);
    const d = decodeXor(app.finish());
    expect(d.timestamps.length).toBe(XOR_MAX_SAMPLES);
    expect(d.timestamps[XOR_MAX_SAMPLES - 1]).toBe((XOR_MAX_SAMPLES - 1) * 1000);
    expect(d.values[XOR_MAX_SAMPLES - 1]).toBe((XOR_MAX_SAMPLES - 1) % 7);
  });
});

describe("XorAppender", () => {
  it("rejects timestamps it cannot encode exactly, leaving the chunk unchanged", () => {
    const app = new XorAppender();
    for (const bad of [1.5, NaN, Infinity, 2 ** 53, -(2 ** 53)]) expect(() => app.append(bad, 1)).toThrow(RangeError);
    expect(app.numSamples).toBe(0);
    app.append(-MAX_SAFE, 1);
    const one = hex(app.finish());
    expect(() => app.append(MAX_SAFE, 1)).toThrow(RangeError); // delta 2^54 - 2
    expect(hex(app.finish())).toBe(one);
    app.append(0, 2); // delta 2^53 - 1
    const two = hex(app.finish());
    expect(() => app.append(-MAX_SAFE, 3)).toThrow(RangeError); // dod -(2^54 - 2)
    expect(hex(app.finish())).toBe(two);
    app.append(1, 3);
    roundTrip(series(3, (i) => [-MAX_SAFE, 0, 1][i], numeric((i) => i + 1)));
    expect(decodeXor(app.finish()).timestamps).toEqual(new Float64Array([-MAX_SAFE, 0, 1]));
  });

  it("bytes() is a live view, finish() an exact copy, reset() starts over", () => {
    const app = new XorAppender(1);
    app.append(1000, 1);
    app.append(2000, 1);
    const copy = app.finish();
    const view = app.bytes();
    expect(hex(view)).toBe(hex(copy));
    copy.fill(0);
    expect(xorNumSamples(app.bytes())).toBe(2);
    app.append(3000, 2);
    expect(hex(app.bytes())).toBe("0003d00f3ff0000000000000e8073097ffc0");
    app.reset();
    expect(app.numSamples).toBe(0);
    expect(hex(app.bytes())).toBe("0000");
    app.append(1000, 1.0);
    app.append(2000, 1.0);
    app.append(3000, 2.0);
    expect(hex(app.finish())).toBe("0003d00f3ff0000000000000e8073097ffc0");
  });
});

describe("XorIterator", () => {
  it("is reusable across chunks and restarts on reset", () => {
    const chunks = KINDS.map((k, i) => encode(gen(i + 7, k, 50 + i)).finish());
    const it = new XorIterator(chunks[0]);
    for (let round = 0; round < 2; round++) {
      for (const chunk of chunks) {
        it.reset(chunk);
        const d = decodeXor(chunk);
        expect(it.numSamples).toBe(d.timestamps.length);
        // Stop halfway, then restart the same chunk from the top.
        for (let i = 0; i < 10; i++) it.next();
        it.reset(chunk);
        const words = new Uint32Array(d.values.buffer);
        let i = 0;
        while (it.next()) {
          expect(it.t).toBe(d.timestamps[i]);
          expect(it.valueHi).toBe(words[2 * i + HI]);
          expect(it.valueLo).toBe(words[2 * i + LO]);
          i++;
        }
        expect(i).toBe(d.timestamps.length);
        expect(it.next()).toBe(false);
        expect(it.next()).toBe(false);
      }
    }
  });

  it("reads a chunk while it is being appended", () => {
    const app = new XorAppender();
    const s = gen(5, "gauge-walk", 200);
    const it = new XorIterator(app.bytes());
    for (let n = 0; n < 200; n++) {
      app.append(s.ts[n], s.vs[n]);
      it.reset(app.bytes());
      let count = 0;
      let last = NaN;
      while (it.next()) {
        count++;
        last = it.t;
      }
      expect(count).toBe(n + 1);
      expect(last).toBe(s.ts[n]);
    }
  });
});

describe("corrupt XOR chunks", () => {
  const small = (() => {
    const ts = [1_700_000_000_000, 1_700_000_015_000, 1_700_000_030_010, 1_700_000_045_000, 1_700_000_160_000, 1_700_000_175_000];
    const vals = [0.5, 0.5, 12.25, -3, fromBits(STALE_HI, STALE_LO), 7];
    const app = new XorAppender();
    for (let i = 0; i < ts.length; i++) app.append(ts[i], vals[i]);
    return app.finish();
  })();

  /** Decodes fully; returns the error thrown, if any. Fails the test on a non-ChunkCorruptError. */
  function tryDecode(chunk: Uint8Array): { ok: boolean; ts?: Float64Array; values?: Float64Array } {
    try {
      const d = decodeXor(chunk);
      return { ok: true, ts: d.timestamps, values: d.values };
    } catch (e) {
      expect(e).toBeInstanceOf(ChunkCorruptError);
      return { ok: false };
    }
  }

  it("every truncation either throws ChunkCorruptError or (padding only) decodes the same samples", () => {
    const full = decodeXor(small);
    for (const chunk of [small, encode(gen(3, "random-bits", 40)).finish(), encode(gen(4, "counter", 40)).finish()]) {
      const whole = decodeXor(chunk);
      let undetected = 0;
      for (let len = 0; len < chunk.length; len++) {
        const r = tryDecode(chunk.subarray(0, len));
        if (r.ok) {
          // All bits it read were in the prefix, so the samples are the real ones.
          undetected++;
          expect(Array.from(r.ts!)).toEqual(Array.from(whole.timestamps));
          expect(Array.from(new Uint32Array(r.values!.buffer))).toEqual(Array.from(new Uint32Array(whole.values.buffer)));
        }
      }
      // Only Go's spare byte (or a byte of pure padding) can go unnoticed.
      expect(undetected).toBeLessThanOrEqual(1);
    }
    expect(full.timestamps.length).toBe(6);
  });

  it("a header count larger than the stream holds throws", () => {
    // Up to 15 bits of zero padding (7 + Go's spare byte) can read as a few
    // '0' dod + '0' value samples, as in Prometheus; 8 or more extra cannot hide.
    for (const extra of [8, 100, 65535 - 6]) {
      const c = small.slice();
      const n = 6 + extra;
      c[0] = n >>> 8;
      c[1] = n & 0xff;
      expect(() => decodeXor(c)).toThrow(ChunkCorruptError);
    }
    const real = decodeXor(small);
    for (let extra = 1; extra < 8; extra++) {
      const c = small.slice();
      c[1] = 6 + extra;
      const r = tryDecode(c);
      if (r.ok) {
        // Padding reads as samples continuing the last delta and value; the real ones are intact.
        expect(Array.from(r.ts!.subarray(0, 6))).toEqual(Array.from(real.timestamps));
      }
    }
  });

  it("chunks shorter than the header throw", () => {
    for (const c of [new Uint8Array(0), new Uint8Array([1])]) {
      expect(() => new XorIterator(c)).toThrow(ChunkCorruptError);
      expect(() => xorNumSamples(c)).toThrow(ChunkCorruptError);
      expect(() => decodeXor(c)).toThrow(ChunkCorruptError);
    }
    const it = new XorIterator(small);
    expect(() => it.reset(new Uint8Array([0]))).toThrow(/shorter than its 2-byte header/);
  });

  it("random byte flips and random garbage terminate with samples or ChunkCorruptError", () => {
    const rnd = mulberry32(5);
    const base = encode(gen(11, "gauge-walk", 120)).finish();
    for (let i = 0; i < 2000; i++) {
      const c = base.slice();
      for (let k = 0; k < 1 + Math.floor(rnd() * 3); k++) c[Math.floor(rnd() * c.length)] ^= 1 << Math.floor(rnd() * 8);
      tryDecode(c);
    }
    for (let i = 0; i < 2000; i++) {
      const c = new Uint8Array(Math.floor(rnd() * 64));
      for (let k = 0; k < c.length; k++) c[k] = Math.floor(rnd() * 256);
      tryDecode(c);
    }
  });

  /** A chunk header for `count` samples plus a first sample (t=0, v=0), built bit by bit. */
  function craft(count: number, rest: (w: BitWriter) => void): Uint8Array {
    const w = new BitWriter();
    w.writeBits(count, 16);
    w.writeBits(0, 8); // varint 0
    w.writeBits64(0, 0, 64);
    rest(w);
    return w.trimmed();
  }

  it("rejects a value window wider than 64 bits", () => {
    const c = craft(2, (w) => {
      w.writeBits(15, 8); // delta 15
      w.writeBits(0b11, 2);
      w.writeBits(31, 5); // leading 31
      w.writeBits(40, 6); // + 40 significant > 64
      w.writeBits64(0xff, 0xffffffff, 40);
    });
    expect(() => decodeXor(c)).toThrow(/exceeds 64/);
  });

  it("rejects reuse of a window that was never opened", () => {
    const c = craft(2, (w) => {
      w.writeBits(15, 8);
      w.writeBits(0b10, 2);
      w.writeBits64(0xffffffff, 0xffffffff, 64);
    });
    expect(() => decodeXor(c)).toThrow(/never set/);
  });

  it("rejects an overlong varint", () => {
    const w = new BitWriter();
    w.writeBits(1, 16);
    for (let i = 0; i < 11; i++) w.writeBits(0xff, 8);
    w.writeBits64(0, 0, 64);
    expect(() => decodeXor(w.trimmed())).toThrow(/varint overflows/);
    // Ten bytes whose last carries more than 1 bit also overflow.
    const w2 = new BitWriter();
    w2.writeBits(1, 16);
    for (let i = 0; i < 9; i++) w2.writeBits(0x80, 8);
    w2.writeBits(0x02, 8);
    w2.writeBits64(0, 0, 64);
    expect(() => decodeXor(w2.trimmed())).toThrow(/varint overflows/);
  });

  it("rejects timestamps outside the safe-integer range", () => {
    // First timestamp 2^60 (a valid Go int64 that a JS number cannot hold exactly).
    const w = new BitWriter();
    w.writeBits(1, 16);
    let hi = 0x20000000; // zigzag(2^60) = 2^61 as hi:lo
    let lo = 0;
    while (hi !== 0 || lo >= 0x80) {
      w.writeBits((lo & 0x7f) | 0x80, 8);
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    w.writeBits(lo, 8);
    w.writeBits64(0, 0, 64);
    expect(() => decodeXor(w.trimmed())).toThrow(/safe-integer range/);

    // A 64-bit dod that pushes the timestamp out of range.
    const c = craft(3, (w2) => {
      w2.writeBits(1, 8);
      w2.writeBit(0);
      w2.writeBits(0b1111, 4);
      w2.writeBits64(0x001fffff, 0xffffffff, 64); // dod 2^53 - 1
      w2.writeBit(0);
    });
    expect(() => decodeXor(c)).toThrow(/safe-integer range/);
  });

  it("keeps throwing after an error until reset", () => {
    const it = new XorIterator(small.subarray(0, 20));
    expect(() => {
      while (it.next());
    }).toThrow(ChunkCorruptError);
    expect(() => it.next()).toThrow(ChunkCorruptError);
    it.reset(small);
    let n = 0;
    while (it.next()) n++;
    expect(n).toBe(6);
  });
});
