import { describe, expect, it } from "vitest";
import { ChunkCache } from "../../src/storage/chunk_cache";

describe("ChunkCache", () => {
  it("serves stored chunks as copies, per block", () => {
    const c = new ChunkCache(1024);
    const range = new Uint8Array([1, 2, 3, 4, 5, 6]);
    c.add("a", [10, 20], [range.subarray(0, 2), range.subarray(2, 6)]);
    const got = c.block("a");
    expect(got?.get(10)).toEqual(new Uint8Array([1, 2]));
    expect(got?.get(20)).toEqual(new Uint8Array([3, 4, 5, 6]));
    // A copy: the coalesced range buffer is not pinned by the cache.
    expect(got?.get(20)?.buffer).not.toBe(range.buffer);
    expect(c.block("b")).toBeUndefined();
    expect(c.size).toBe(6);
  });

  it("evicts least recently used blocks to stay within its byte bound", () => {
    const c = new ChunkCache(10);
    c.add("a", [0], [new Uint8Array(4)]);
    c.add("b", [0], [new Uint8Array(4)]);
    c.block("a"); // a is now the most recently used
    c.add("c", [0], [new Uint8Array(4)]);
    expect(c.block("b")).toBeUndefined();
    expect(c.block("a")).toBeDefined();
    expect(c.block("c")).toBeDefined();
    expect(c.size).toBeLessThanOrEqual(10);
    // Larger than the whole budget: not cached at all.
    c.add("d", [0], [new Uint8Array(11)]);
    expect(c.block("d")?.get(0)).toBeUndefined();
    expect(c.size).toBeLessThanOrEqual(10);
  });
});
