import { configDefaults, defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { AUTH_TEST_CONFIG } from "./test/support/auth_config";

// Files that need the Worker to hold credentials (AUTH_CONFIG): they run in their
// own project, "auth", so that every other test keeps today's open mode.
const AUTH_TESTS = ["test/worker/auth_matrix.test.ts"];

// Three projects: "workers" runs inside workerd (unit tests of pure modules and the
// Worker/Durable Object tests); "node" runs Node-side cross-checks; "e2e" runs in Node and drives `wrangler dev` with real
// clients (Prometheus, VictoriaMetrics, browsers) over HTTP.
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            // Tenant "ooo" exercises the out-of-order window; "small" the size limits.
            miniflare: {
              bindings: {
                LIMITS: JSON.stringify({
                  ooo: { outOfOrderTimeWindowMs: 600_000 },
                  small: { maxRequestBodyBytes: 4096, maxDecompressedBytes: 8192 },
                  tiny_head: { maxHeadBytesPerShard: 20_000, shards: 1 },
                  // test/worker/rate_limit.test.ts
                  rl_small: { ingestionRate: 100, ingestionBurstSize: 500 },
                  rl_logs: { logIngestionRateBytes: 1000, logIngestionBurstBytes: 4000 },
                  series_small: { maxGlobalSeriesPerUser: 8, shards: 2 },
                  // test/worker/ha_tracker.test.ts: HA-pair de-duplication on; then custom label names and one cluster at most.
                  ha: { acceptHaSamples: 1 },
                  ha_custom: { acceptHaSamples: 1, haClusterLabel: "prom_cluster", haReplicaLabel: "prom_replica", haMaxClusters: 1 },
                  // test/worker/loki_push.test.ts: a browser page's tenant, and one refusing sendBeacon bodies.
                  browser: { corsAllowedOrigins: ["http://localhost:5173"], allowBeaconPush: 1 },
                  nobeacon: { allowBeaconPush: 0 },
                  // test/worker/loki_push.test.ts: per-tenant Loki limits; no line, metadata or rate limits (the RPC cap); streams over 2 shards.
                  lp_maxline: { maxLineSize: 100 },
                  lp_oldage: { rejectOldLogsMaxAgeMs: 3_600_000 },
                  lp_grace: { creationGracePeriodMs: 60_000 },
                  lp_meta: { maxStructuredMetadataSize: 100, maxStructuredMetadataEntriesCount: 2 },
                  lp_unlimited: { maxLineSize: 0, maxStructuredMetadataSize: 0, maxStructuredMetadataEntriesCount: 0, logIngestionRateBytes: 0 },
                  lp_streams: { maxGlobalStreamsPerUser: 4, shards: 2 },
                  // test/worker/retention.test.ts: 24 h retention, one tenant per test.
                  ret_sweep: { retentionPeriodMs: 86_400_000, shards: 2 },
                  ret_clamp: { retentionPeriodMs: 86_400_000, shards: 2 },
                  ret_fail: { retentionPeriodMs: 86_400_000, shards: 2 },
                  ret_gone: { retentionPeriodMs: 86_400_000, shards: 1 },
                  ret_batch: { retentionPeriodMs: 86_400_000, shards: 1 },
                  // test/worker/tail_limit.test.ts: a cap of 2 tails; the default cap (10) on one shard.
                  tail_cap: { maxConcurrentTailRequests: 2, shards: 1 },
                  tail_default: { shards: 1 },
                }),
              },
            },
          }),
        ],
        test: {
          name: "workers",
          // Property tests are CPU-bound: generous limits so a loaded 2-core machine
          // cannot turn them into timing failures (no test here measures time).
          testTimeout: 60_000,
          include: ["test/unit/**/*.test.ts", "test/worker/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...AUTH_TESTS],
        },
      },
      {
        // The Worker with credentials configured (test/support/auth_config.ts).
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: { bindings: { AUTH_CONFIG: JSON.stringify(AUTH_TEST_CONFIG) } },
          }),
        ],
        test: {
          name: "auth",
          testTimeout: 60_000,
          include: AUTH_TESTS,
        },
      },
      {
        // Node-side unit tests: cross-checks against reference implementations
        // (protobufjs) that cannot run inside workerd (they compile code from strings).
        test: {
          name: "node",
          testTimeout: 60_000,
          environment: "node",
          include: ["test/node/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // The e2e files each start their own wrangler dev; run them one at a time
          // on this 2-core machine.
          fileParallelism: false,
        },
      },
    ],
  },
});
