// Turning errors into responses, at the edge only. HttpError carries its status;
// anything else is our bug or the platform's: 500 for the sender to retry, and logged.

import { HttpError } from "./errors";

export function toResponse(err: unknown): Response {
  if (err instanceof HttpError) {
    return new Response(err.message + "\n", { status: err.status, headers: { "Content-Type": "text/plain; charset=utf-8", ...err.headers } });
  }
  console.error("internal error:", err);
  const msg = err instanceof Error ? err.message : String(err);
  return new Response(`internal error: ${msg}\n`, { status: 500, headers: { "Content-Type": "text/plain; charset=utf-8" } });
}
