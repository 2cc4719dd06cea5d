// The Worker that bench/logs_compression.mjs bundles and runs inside workerd
// (Miniflare): every codec available to a Worker, timed from outside because
// workerd's clocks do not advance during CPU work. Each request runs one
// operation `iters` times over a data set's 256 KiB raw blocks.

import * as zlib from "node:zlib";
import { snappyCompress, snappyDecompress } from "../src/proto/snappy";
import { LogChunkBuilder, LogChunkEncoding, logChunkBlocks, readLogChunk } from "../src/storage/logs/chunk";

interface Codec {
  compress(raw: Uint8Array): Uint8Array | Promise<Uint8Array>;
  decompress(data: Uint8Array, rawLen: number): Uint8Array | Promise<Uint8Array>;
}

async function viaStream(data: Uint8Array, t: TransformStream<Uint8Array, Uint8Array>): Promise<Uint8Array> {
  const out = new Blob([data]).stream().pipeThrough(t);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function zlibCodecs(): Record<string, Codec> {
  const out: Record<string, Codec> = {};
  for (const level of [1, 6, 9]) {
    out[`gzip-${level} (node:zlib sync)`] = {
      compress: (r) => u8(zlib.gzipSync(r, { level })),
      decompress: (d) => u8(zlib.gunzipSync(d)),
    };
    out[`deflate-raw-${level} (node:zlib sync)`] = {
      compress: (r) => u8(zlib.deflateRawSync(r, { level })),
      decompress: (d) => u8(zlib.inflateRawSync(d)),
    };
  }
  for (const q of [1, 2, 3, 4, 6]) {
    out[`brotli-${q} (node:zlib sync)`] = {
      compress: (r) =>
        u8(zlib.brotliCompressSync(r, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: q, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: r.length } })),
      decompress: (d) => u8(zlib.brotliDecompressSync(d)),
    };
  }
  return out;
}

const CODECS: Record<string, Codec> = {
  ...zlibCodecs(),
  "snappy (snappyjs / own decoder, sync)": {
    compress: (r) => snappyCompress(r),
    decompress: (d, n) => snappyDecompress(d, n),
  },
  "gzip (CompressionStream, async)": {
    compress: (r) => viaStream(r, new CompressionStream("gzip")),
    decompress: (d) => viaStream(d, new DecompressionStream("gzip")),
  },
  "deflate (CompressionStream, async)": {
    compress: (r) => viaStream(r, new CompressionStream("deflate")),
    decompress: (d) => viaStream(d, new DecompressionStream("deflate")),
  },
  "deflate-raw (CompressionStream, async)": {
    compress: (r) => viaStream(r, new CompressionStream("deflate-raw")),
    decompress: (d) => viaStream(d, new DecompressionStream("deflate-raw")),
  },
};

interface DataSet {
  lines: Uint8Array[];
  raws: Uint8Array[];
  rawBytes: number;
  lineBytes: number;
}

const sets = new Map<string, DataSet>();
const compressed = new Map<string, Uint8Array[]>();
const BLOCK = 256 * 1024;

function tsOf(i: number): [number, number] {
  // Deterministic, increasing, sub-millisecond spacing as busy streams have.
  return [1_780_000_000_000 + Math.floor(i / 3), (i * 7919) % 1_000_000];
}

function load(name: string, body: Uint8Array): DataSet {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === 10) {
      lines.push(body.subarray(start, i));
      start = i + 1;
    }
  }
  // Raw blocks exactly as the chunk stores them (ts deltas, lengths, lines): a None-encoded chunk.
  const b = new LogChunkBuilder({ blockSize: BLOCK, encoding: LogChunkEncoding.None });
  let lineBytes = 0;
  for (let i = 0; i < lines.length; i++) {
    const [ms, ns] = tsOf(i);
    b.append(ms, ns, lines[i], null);
    lineBytes += lines[i].length;
  }
  const chunk = b.finish();
  const raws = logChunkBlocks(chunk).map((x) => chunk.slice(x.dataAt, x.dataEnd));
  const set = { lines, raws, rawBytes: raws.reduce((n, r) => n + r.length, 0), lineBytes };
  sets.set(name, set);
  return set;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function json(v: unknown): Response {
  return new Response(JSON.stringify(v), { headers: { "content-type": "application/json" } });
}

export default {
  async fetch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const p = url.searchParams;
    const iters = Number(p.get("iters") ?? "1");
    switch (url.pathname) {
      case "/noop":
        return json({});
      case "/codecs":
        return json(Object.keys(CODECS));
      case "/load": {
        const s = load(p.get("set")!, new Uint8Array(await req.arrayBuffer()));
        return json({ lines: s.lines.length, lineBytes: s.lineBytes, rawBytes: s.rawBytes, blocks: s.raws.length });
      }
      case "/compress": {
        const codec = CODECS[p.get("codec")!];
        const set = sets.get(p.get("set")!)!;
        let out: Uint8Array[] = [];
        for (let k = 0; k < iters; k++) {
          out = [];
          for (const r of set.raws) out.push(await codec.compress(r));
        }
        compressed.set(`${p.get("codec")}|${p.get("set")}`, out);
        return json({ rawBytes: set.rawBytes, compressedBytes: out.reduce((n, b) => n + b.length, 0) });
      }
      case "/decompress": {
        const codec = CODECS[p.get("codec")!];
        const set = sets.get(p.get("set")!)!;
        const data = compressed.get(`${p.get("codec")}|${p.get("set")}`)!;
        // ?verify=1 checks the round trip (untimed); timed runs only decompress.
        const verify = p.get("verify") === "1";
        for (let k = 0; k < iters; k++) {
          for (let i = 0; i < data.length; i++) {
            const r = await codec.decompress(data[i], set.raws[i].length);
            if (verify && !equal(r, set.raws[i])) return new Response(`round trip failed for block ${i}`, { status: 500 });
          }
        }
        return json({});
      }
      case "/build": {
        // The ingester's real path: append every line, cut 256 KiB blocks, finish.
        const encoding = Number(p.get("encoding")) as LogChunkEncoding;
        const set = sets.get(p.get("set")!)!;
        let bytes = 0;
        for (let k = 0; k < iters; k++) {
          const b = new LogChunkBuilder({ blockSize: BLOCK, encoding });
          for (let i = 0; i < set.lines.length; i++) {
            const [ms, ns] = tsOf(i);
            b.append(ms, ns, set.lines[i], null);
          }
          bytes = b.finish().length;
        }
        return json({ chunkBytes: bytes });
      }
      case "/read": {
        // The query's path over a finished chunk: every entry decoded to strings, in order.
        const encoding = Number(p.get("encoding")) as LogChunkEncoding;
        const set = sets.get(p.get("set")!)!;
        const b = new LogChunkBuilder({ blockSize: BLOCK, encoding });
        for (let i = 0; i < set.lines.length; i++) {
          const [ms, ns] = tsOf(i);
          b.append(ms, ns, set.lines[i], null);
        }
        const chunk = b.finish();
        let n = 0;
        const sink = { entry: () => void n++ };
        // iters + 1 runs: the first is the build above, amortised by the caller's subtraction.
        for (let k = 0; k < iters; k++) readLogChunk(chunk, -Infinity, 0, Infinity, 0, sink);
        return json({ entries: n / Math.max(1, iters) });
      }
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
