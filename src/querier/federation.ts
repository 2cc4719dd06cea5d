// Tenant federation for reads (Cortex's pkg/querier/tenantfederation): X-Scope-OrgID
// "A|B" queries every listed tenant and merges the results, each series labelled
// with __tenant_id__ (a series that already has that label keeps its value as
// original___tenant_id__). Matchers on __tenant_id__ choose the tenants and are not
// passed down. Authorization (src/auth/authorize.ts) has already checked that the
// caller may read every listed tenant.

import { limitsFor, type Limits } from "../config/limits";
import { MAX_CONCURRENT_SUBREQUESTS, Semaphore } from "../model/concurrency";
import { compileMatcher } from "../model/matchers";
import { getLabel, setLabel } from "../model/labels";
import { MatchType, type LabelMatcher } from "../proto/types";
import type { SelectedSeries } from "../ingester/rpc";
import { mergeSeries, select } from "./select";

export const TENANT_LABEL = "__tenant_id__";
export const ORIGINAL_TENANT_LABEL = "original_" + TENANT_LABEL;
/** Separator of federated tenant IDs in X-Scope-OrgID (Cortex's tenant.JoinTenantIDs). */
export const TENANT_SEPARATOR = "|";

export function isFederated(tenant: string): boolean {
  return tenant.includes(TENANT_SEPARATOR);
}

/**
 * The limits a read query runs under, for one tenant or for "A|B". Every limit the
 * query handlers read for the whole query (not per tenant inside select()) is the
 * smallest over the tenants, as Mimir's query path takes it
 * (validation.SmallestPositiveIntPerTenant): federating must not lift a tenant's
 * stricter limit. Here none of these has a "0 = unlimited" meaning (0 series, 0 ms
 * refuse everything), so the plain minimum holds. Per-tenant limits (retention,
 * creation grace period) are applied by select() for each tenant on its own.
 */
export function queryLimitsFor(env: Env, tenant: string): Limits {
  if (!isFederated(tenant)) return limitsFor(env, tenant);
  const each = tenant.split(TENANT_SEPARATOR).map((t) => limitsFor(env, t));
  const limits: Limits = { ...limitsFor(env, tenant) };
  for (const key of FEDERATED_QUERY_LIMITS) limits[key] = Math.min(...each.map((l) => l[key]));
  return limits;
}

/** The limits queryLimitsFor() takes the smallest of: query size, time, and the remote read body. */
export const FEDERATED_QUERY_LIMITS = ["maxSeriesPerQuery", "maxSamplesPerQuery", "queryTimeoutMs", "maxRequestBodyBytes", "maxDecompressedBytes"] as const satisfies readonly (keyof Limits)[];

/** select() over every tenant of "A|B", each series labelled with its tenant. */
export async function selectFederated(
  env: Env,
  tenant: string,
  matchers: LabelMatcher[],
  mint: number,
  maxt: number,
  gate = new Semaphore(MAX_CONCURRENT_SUBREQUESTS),
): Promise<SelectedSeries[]> {
  const byTenant = matchers.filter((m) => m.name === TENANT_LABEL).map(compileMatcher);
  let rest = matchers.filter((m) => m.name !== TENANT_LABEL);
  // {__tenant_id__="a"} alone still selects every series of tenant a.
  if (rest.length === 0) rest = [{ type: MatchType.RE, name: "__name__", value: ".+" }];
  const tenants = tenant.split(TENANT_SEPARATOR).filter((t) => byTenant.every((m) => m.matches(t)));
  const perTenant = await Promise.all(tenants.map((t) => select(env, t, rest, mint, maxt, gate)));
  const labelled = perTenant.map((list, i) =>
    list.map((s) => {
      let labels = s.labels;
      const own = getLabel(labels, TENANT_LABEL);
      if (own !== "") labels = setLabel(labels, ORIGINAL_TENANT_LABEL, own);
      return { ...s, labels: setLabel(labels, TENANT_LABEL, tenants[i]) };
    }),
  );
  return mergeSeries(labelled);
}
