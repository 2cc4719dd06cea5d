// GET /api/v1/status/buildinfo. Grafana reads it to learn which Prometheus API
// this is: answering Prometheus's shape with a 3.x version lets Grafana use the
// 3.x features we serve (label values with match[], /series with limit, UTF-8 names).

import { jsonString, successResponse } from "./respond";

/** The Prometheus HTTP API version this server answers as. */
export const PROMETHEUS_API_VERSION = "3.0.0";

export function handleBuildInfo(): Response {
  const info: Record<string, string> = {
    version: PROMETHEUS_API_VERSION,
    revision: "edge-ingester",
    branch: "main",
    buildUser: "edge-ingester",
    buildDate: "",
    goVersion: "none (TypeScript on Cloudflare Workers)",
  };
  const body = Object.entries(info).map(([k, v]) => `${jsonString(k)}:${jsonString(v)}`);
  return successResponse("{" + body.join(",") + "}");
}
