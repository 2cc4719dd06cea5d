// GET /api/v1/metadata: the metric metadata the ingesters keep (the newest
// type/help/unit each shard received per metric family, from remote write),
// merged over shards as Prometheus merges it over targets: per metric, the
// distinct {type, help, unit}; `limit` metrics, `limit_per_metric` entries each.

import { MetricType, type MetricMetadata } from "../../proto/types";
import { shardStub } from "../../distributor/shards";
import { allShards } from "../../distributor/tenant_ring";
import { MAX_CONCURRENT_SUBREQUESTS, mapLimit } from "../../model/concurrency";
import { ApiError, jsonString, successResponse } from "./respond";
import { Form, goAtoi } from "./params";

const TYPE_NAMES: Record<MetricType, string> = {
  [MetricType.UNKNOWN]: "unknown",
  [MetricType.COUNTER]: "counter",
  [MetricType.GAUGE]: "gauge",
  [MetricType.HISTOGRAM]: "histogram",
  [MetricType.GAUGEHISTOGRAM]: "gaugehistogram",
  [MetricType.SUMMARY]: "summary",
  [MetricType.INFO]: "info",
  [MetricType.STATESET]: "stateset",
};

/** Prometheus reads these two with strconv.Atoi and its own message; -1 (absent) means no limit. */
function intParam(form: Form, name: string): number {
  const s = form.value(name);
  if (s === "") return -1;
  const n = goAtoi(s);
  if (typeof n === "string") throw new ApiError("bad_data", `${name} must be a number`);
  return n;
}

export async function handleMetadata(request: Request, env: Env, tenant: string): Promise<Response> {
  const form = await Form.from(request);
  const limit = intParam(form, "limit");
  const limitPerMetric = intParam(form, "limit_per_metric");
  const metric = form.value("metric");
  // Every shard ever listed: a family's home moves with a reshard (src/distributor/tenant_ring.ts).
  const shards = await allShards(env, tenant);
  // Each shard answers its first `limit` families by name: the first `limit` overall are among them.
  const perShard = await mapLimit(shards, MAX_CONCURRENT_SUBREQUESTS, (shard) => shardStub(env, tenant, shard).metadata({ metric, limit }));
  const byName = new Map<string, Map<string, MetricMetadata>>();
  for (const list of perShard) {
    for (const m of list) {
      let set = byName.get(m.metricFamilyName);
      if (!set) byName.set(m.metricFamilyName, (set = new Map()));
      set.set(`${m.type}\u0000${m.help}\u0000${m.unit}`, m);
    }
  }
  const names = [...byName.keys()].sort();
  const parts: string[] = [];
  for (const name of names) {
    if (limit >= 0 && parts.length >= limit) break;
    let entries = [...(byName.get(name) ?? new Map<string, MetricMetadata>()).values()];
    if (limitPerMetric > 0) entries = entries.slice(0, limitPerMetric);
    const items = entries.map((m) => `{"type":${jsonString(TYPE_NAMES[m.type] ?? "unknown")},"help":${jsonString(m.help)},"unit":${jsonString(m.unit)}}`);
    parts.push(`${jsonString(name)}:[${items.join(",")}]`);
  }
  return successResponse("{" + parts.join(",") + "}");
}
