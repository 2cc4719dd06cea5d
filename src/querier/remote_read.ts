// Prometheus remote read (POST /api/v1/read): snappy protobuf ReadRequest in,
// ReadResponse with SAMPLES out, one QueryResult per query, as Prometheus answers.

import { queryLimitsFor } from "./federation";
import { HttpError } from "../http/errors";
import { readBody } from "../http/body";
import { BodyTooLargeError, snappyCompress, snappyDecompress } from "../proto/snappy";
import { decodeReadRequest, encodeReadResponse } from "../proto/remote_read";
import { ProtoError, ReadResponseType, type ReadRequest, type SeriesSamples } from "../proto/types";
import { MatcherError } from "../model/matchers";
import { select, toSamples } from "./select";

export async function handleRemoteRead(request: Request, env: Env, tenant: string): Promise<Response> {
  // Federated ("A|B"): the smallest body limits of the tenants.
  const limits = queryLimitsFor(env, tenant);
  const body = await readBody(request, limits.maxRequestBodyBytes);
  let req: ReadRequest;
  try {
    req = decodeReadRequest(snappyDecompress(body, limits.maxDecompressedBytes));
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new HttpError(413, e.message);
    if (e instanceof ProtoError) throw new HttpError(400, `request body is not a valid prometheus.ReadRequest: ${e.message}`);
    throw new HttpError(400, `request body is not valid snappy block-format data: ${(e as Error).message}`);
  }
  // Prometheus answers SAMPLES when the client lists no types or lists SAMPLES.
  if (req.acceptedResponseTypes.length > 0 && !req.acceptedResponseTypes.includes(ReadResponseType.SAMPLES)) {
    throw new HttpError(400, `none of the requested response types ${JSON.stringify(req.acceptedResponseTypes)} is supported: this server answers SAMPLES (0)`);
  }
  const results: SeriesSamples[][] = [];
  for (const q of req.queries) {
    let selected;
    try {
      selected = await select(env, tenant, q.matchers, q.startMs, q.endMs);
    } catch (e) {
      if (e instanceof MatcherError) throw new HttpError(400, e.message);
      throw e;
    }
    const series: SeriesSamples[] = [];
    for (const sel of selected) {
      const s = toSamples(sel, q.startMs, q.endMs);
      if (s.timestamps.length > 0) series.push(s);
    }
    results.push(series);
  }
  return new Response(snappyCompress(encodeReadResponse(results)), {
    headers: { "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy" },
  });
}
