// Loki push (POST /loki/api/v1/push). Being built.
import { HttpError } from "../../http/errors";

export async function handleLokiPush(_request: Request, _env: Env, _tenant: string): Promise<Response> {
  throw new HttpError(501, "Loki push is not built yet");
}
