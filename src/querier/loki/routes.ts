// The Loki HTTP API (/loki/api/v1/*). Being built.
import type { IRequest } from "itty-router";
import { HttpError } from "../../http/errors";

type Handler = (request: IRequest, env: Env, ctx: ExecutionContext) => Promise<Response>;

const notYet: Handler = async () => {
  throw new HttpError(501, "the Loki query API is not built yet");
};

export const lokiQuery: Handler = notYet;
export const lokiQueryRange: Handler = notYet;
export const lokiLabels: Handler = notYet;
export const lokiLabelValues: Handler = notYet;
export const lokiSeries: Handler = notYet;
export const lokiIndexStats: Handler = notYet;
export const lokiTail: Handler = notYet;
