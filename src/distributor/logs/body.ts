// A Loki push body: which format it is (Content-Type), how it is compressed
// (Content-Encoding), and decompression with a running size cap.
//
// As Loki's push parser (pkg/loghttp/push/push.go): application/json is JSON; no
// Content-Type (or application/x-protobuf, application/octet-stream) is a
// snappy-compressed logproto.PushRequest. Content-Encoding may be gzip or deflate
// (applied before either), or snappy (a no-op: the protobuf body is snappy anyway,
// and some clients say so). text/plain is the JSON that navigator.sendBeacon sends
// (it cannot set another Content-Type), accepted when the tenant allows it.

import { HttpError } from "../../http/errors";
import { concatBytes } from "../../model/bytes";

export const enum PushFormat {
  Protobuf = 1,
  Json = 2,
  /** JSON sent as text/plain (navigator.sendBeacon). */
  Beacon = 3,
}

const ACCEPTED =
  "application/x-protobuf (snappy-compressed logproto.PushRequest; also no Content-Type or application/octet-stream), application/json (Loki's JSON push), or text/plain holding that JSON (navigator.sendBeacon, when the tenant's allowBeaconPush is 1)";

/** The body's format from its Content-Type; 415 for anything else, listing what is accepted. */
export function pushFormat(contentType: string | null, allowBeacon: boolean, tenant: string): PushFormat {
  const media = (contentType ?? "").split(";")[0].trim().toLowerCase();
  switch (media) {
    case "":
    case "application/x-protobuf":
    case "application/octet-stream":
      return PushFormat.Protobuf;
    case "application/json":
      return PushFormat.Json;
    case "text/plain":
      if (!allowBeacon) {
        throw new HttpError(415, `Content-Type text/plain (navigator.sendBeacon) is not accepted for tenant ${tenant}: its limit allowBeaconPush is 0; send application/json, or set allowBeaconPush to 1`);
      }
      return PushFormat.Beacon;
    default:
      throw new HttpError(415, `unsupported Content-Type ${JSON.stringify(contentType)}; a Loki push must be ${ACCEPTED}`);
  }
}

export type Encoding = "" | "gzip" | "deflate";

/** The body's Content-Encoding; 415 for anything but gzip, deflate, snappy or none. */
export function pushEncoding(header: string | null): Encoding {
  const enc = (header ?? "").trim().toLowerCase();
  switch (enc) {
    case "":
    case "identity":
    case "snappy":
      return "";
    case "gzip":
    case "x-gzip":
      return "gzip";
    case "deflate":
      return "deflate";
    default:
      throw new HttpError(415, `Content-Encoding ${JSON.stringify(header)} not supported; use gzip, deflate, snappy (protobuf bodies) or none`);
  }
}

/**
 * Decompresses a gzip or deflate body, stopping as soon as the output passes
 * maxBytes (413): a small "bomb" costs at most maxBytes of memory. "deflate" is
 * zlib-wrapped per HTTP (RFC 9110) but Loki reads it with Go's compress/flate, i.e.
 * raw DEFLATE, which is what clients of Loki send; both are accepted, told apart by
 * the zlib header.
 */
export async function decompressBody(body: Uint8Array, encoding: "gzip" | "deflate", maxBytes: number): Promise<Uint8Array> {
  const format: "gzip" | "deflate" | "deflate-raw" = encoding === "gzip" ? "gzip" : isZlibHeader(body) ? "deflate" : "deflate-raw";
  const stream = new Blob([body]).stream().pipeThrough(new DecompressionStream(format));
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new HttpError(413, `request body decompresses to more than the limit of ${maxBytes} bytes (maxDecompressedBytes)`);
      }
      parts.push(value);
    }
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, `request body is not valid ${format === "deflate-raw" ? "deflate" : format} data (Content-Encoding: ${encoding}): ${(e as Error).message}`);
  }
  if (total === 0) throw new HttpError(400, `request body decompresses to nothing (Content-Encoding: ${encoding})`);
  return concatBytes(parts);
}

/** RFC 1950: CM = 8 (deflate), CINFO <= 7, and the first two bytes a multiple of 31. */
function isZlibHeader(b: Uint8Array): boolean {
  return b.length >= 2 && (b[0] & 0x0f) === 8 && b[0] >> 4 <= 7 && ((b[0] << 8) | b[1]) % 31 === 0;
}
