// A Loki push body: which format it is (Content-Type), how it is compressed
// (Content-Encoding), and decompression with a running size cap.
//
// As Loki's push parser (pkg/loghttp/push/push.go ParseLokiRequest): application/json
// is JSON; any other media type is a snappy-compressed logproto.PushRequest (its
// `default:` case), and a media type Go's mime.ParseMediaType cannot read is a 400 with
// Go's message. No Content-Type at all is protobuf too (Loki's comment says so; Go's
// parser would refuse it, we keep what protobuf clients mean). Content-Encoding may be
// gzip or deflate (applied before either), or snappy (a no-op: the protobuf body is
// snappy anyway, and some clients say so); anything else is Loki's 400
// `Content-Encoding %q not supported`. text/plain is the JSON that navigator.sendBeacon
// sends (it cannot set another Content-Type) where the tenant allows beacons, and
// protobuf, as Loki reads it, where it does not.

import { HttpError } from "../../http/errors";
import { concatBytes } from "../../model/bytes";

export const enum PushFormat {
  Protobuf = 1,
  Json = 2,
  /** JSON sent as text/plain (navigator.sendBeacon). */
  Beacon = 3,
}

/** The body's format from its Content-Type. */
export function pushFormat(contentType: string | null, allowBeacon: boolean): PushFormat {
  switch (mediaType(contentType)) {
    case "application/json":
      return PushFormat.Json;
    case "text/plain":
      return allowBeacon ? PushFormat.Beacon : PushFormat.Protobuf;
    default:
      return PushFormat.Protobuf;
  }
}

/** What to add to a protobuf decoding error when the Content-Type suggests the sender meant something else. */
export function protobufHint(contentType: string | null, tenant: string): string {
  switch (mediaType(contentType)) {
    case "":
    case "application/x-protobuf":
    case "application/octet-stream":
      return "";
    case "text/plain":
      return ` (Content-Type text/plain is read as protobuf for tenant ${tenant}, whose allowBeaconPush is 0, as Loki reads every type but application/json; send application/json, or set allowBeaconPush to 1 for navigator.sendBeacon)`;
    default:
      return ` (Content-Type ${JSON.stringify(contentType)} is read as protobuf, as Loki reads every type but application/json)`;
  }
}

/**
 * The lower-cased media type before any parameters, checked as Go's mime.ParseMediaType
 * (checkMediaTypeDisposition) checks it, with its messages; "" for no header.
 */
function mediaType(header: string | null): string {
  if (header === null) return "";
  const semi = header.indexOf(";");
  const media = (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
  if (media === "" && header.trim() === "") return "";
  const slash = tokenEnd(media, 0);
  let problem: string | null = null;
  if (slash === 0) problem = "mime: no media type";
  else if (slash < media.length) {
    if (media[slash] !== "/") problem = "mime: expected slash after first token";
    else {
      const end = tokenEnd(media, slash + 1);
      if (end === slash + 1) problem = "mime: expected token after slash";
      else if (end < media.length) problem = "mime: unexpected content after media subtype";
    }
  }
  if (problem !== null) throw new HttpError(400, `${problem}: Content-Type ${JSON.stringify(header)}`);
  return media;
}

/** Index of the first character from `i` that is not an RFC 2045 token character (Go's mime isTokenChar). */
function tokenEnd(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || '()<>@,;:\\"/[]?='.includes(s[i])) break;
    i++;
  }
  return i;
}

export type Encoding = "" | "gzip" | "deflate";

/** The body's Content-Encoding; Loki's 400 for anything but gzip, deflate, snappy or none. */
export function pushEncoding(header: string | null): Encoding {
  // Loki compares the header exactly; case and "identity"/"x-gzip" (RFC 9110's aliases) are accepted too.
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
      throw new HttpError(400, `Content-Encoding ${JSON.stringify(header)} not supported; use gzip, deflate, snappy (protobuf bodies) or none`);
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
