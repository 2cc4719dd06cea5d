// snappyjs 0.7.0 ships no type declarations; this is the part of its API we use
// (src/proto/snappy.ts). It is a CommonJS module: import its default export.
declare module "snappyjs" {
  interface SnappyJS {
    /** Snappy block-format compression. */
    compress(uncompressed: Uint8Array): Uint8Array;
    /** Snappy block-format decompression; throws plain Errors on malformed input. */
    uncompress(compressed: Uint8Array, maxLength?: number): Uint8Array;
  }
  const snappy: SnappyJS;
  export default snappy;
}
