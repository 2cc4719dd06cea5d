// Client-side encoders and decoders for in-runtime tests, from src/proto (protobufjs
// cannot run inside workerd; test/node/ cross-checks these against it).
import { decodeReadResponse, encodeReadRequest, encodeWriteRequestV1, encodeWriteRequestV2 } from "../../src/proto/remote_read";
import type { ReadQuery, ReadResponseType } from "../../src/proto/types";

export { decodeReadResponse, encodeReadRequest, encodeWriteRequestV1, encodeWriteRequestV2 };

export function encodeReadRequestTypes(queries: ReadQuery[], types: ReadResponseType[]): Uint8Array {
  return encodeReadRequest(queries, types);
}
