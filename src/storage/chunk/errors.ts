/**
 * Chunk bytes that cannot be decoded: truncated, or holding a bit pattern no
 * encoder produces. Thrown instead of returning garbage so callers can drop or
 * quarantine the chunk rather than serve wrong samples.
 */
export class ChunkCorruptError extends Error {
  override readonly name = "ChunkCorruptError";

  constructor(message: string) {
    super(message);
  }
}
