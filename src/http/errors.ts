// The one error type that crosses into HTTP. Core modules throw named errors
// (ProtoError, IngestError, ...); the edge maps them to a status in toResponse().

export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badRequest = (msg: string) => new HttpError(400, msg);
export const unsupportedMediaType = (msg: string) => new HttpError(415, msg);
export const payloadTooLarge = (msg: string) => new HttpError(413, msg);
