// Reading request bodies with a size cap, so an oversized push costs us at most
// the cap in memory, and Content-Type negotiation for remote write.

import { HttpError } from "./errors";
import { concatBytes } from "../model/bytes";

export async function readBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && Number(declared) > maxBytes) {
    throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes (maxRequestBodyBytes)`);
  }
  if (request.body === null) throw new HttpError(400, "empty request body");
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new HttpError(413, `request body exceeds the limit of ${maxBytes} bytes (maxRequestBodyBytes)`);
    }
    parts.push(value);
  }
  if (total === 0) throw new HttpError(400, "empty request body");
  return concatBytes(parts);
}

export const enum RemoteWriteVersion {
  V1 = 1,
  V2 = 2,
}

/**
 * The remote write message a request carries, from its Content-Type as the 2.0 spec
 * negotiates it: no Content-Type or bare application/x-protobuf means 1.0.
 */
export function remoteWriteVersion(contentType: string | null): RemoteWriteVersion {
  if (contentType === null || contentType.trim() === "") return RemoteWriteVersion.V1;
  const [media, ...params] = contentType.split(";").map((p) => p.trim());
  if (media.toLowerCase() !== "application/x-protobuf") {
    throw new HttpError(415, `unsupported Content-Type ${JSON.stringify(contentType)}: remote write needs application/x-protobuf`);
  }
  for (const p of params) {
    const [k, v] = p.split("=").map((x) => x.trim());
    if (k.toLowerCase() !== "proto") continue;
    if (v === "prometheus.WriteRequest") return RemoteWriteVersion.V1;
    if (v === "io.prometheus.write.v2.Request") return RemoteWriteVersion.V2;
    throw new HttpError(415, `unsupported remote write message ${JSON.stringify(v)}: expected prometheus.WriteRequest or io.prometheus.write.v2.Request`);
  }
  return RemoteWriteVersion.V1;
}

/** Remote write bodies are snappy block-compressed; no Content-Encoding is taken as snappy, as Prometheus does. */
export function requireSnappy(request: Request): void {
  const enc = request.headers.get("Content-Encoding");
  if (enc !== null && enc.trim() !== "" && enc.trim().toLowerCase() !== "snappy") {
    throw new HttpError(415, `unsupported Content-Encoding ${JSON.stringify(enc)}: remote write bodies must be snappy-compressed`);
  }
}

/** Beyond this, an unread body is cancelled rather than read (a client sending that much to be refused gets no courtesy). */
const DRAIN_LIMIT_BYTES = 16 << 20;

/**
 * Reads and drops a request body the handler left unread (a refusal before the body:
 * authentication, CORS origin, content type, encoding). Answering a POST before its
 * body is read breaks the next request on the connection under `wrangler dev` (its
 * proxy answers 503 "Your worker restarted mid-request", or the connection stalls): a
 * Prometheus queue with a wrong password made other clients' pushes fail, and a refused
 * browser beacon stalled the next request. Cancelling the stream is not enough there;
 * reading it is. Called once per request by the Worker's fetch (src/index.ts).
 */
export async function discardBody(request: Request): Promise<void> {
  if (request.body === null || request.bodyUsed) return;
  try {
    const reader = request.body.getReader();
    let read = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
      if (read > DRAIN_LIMIT_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The client went away: nothing left to drain.
  }
}
