// The credentials the "auth" vitest project gives the Worker as its AUTH_CONFIG
// secret (vitest.config.mts), and that test/worker/auth_matrix.test.ts presents.
// Test-only secrets.

export const TOKENS = {
  writer: "writer-token-0123456789",
  reader: "reader-token-0123456789",
  ops: "ops-token-0123456789abc",
  adminA: "admin-a-token-0123456789",
  adminAll: "admin-all-token-0123456789",
  hashed: "hashed-token-0123456789",
} as const;

export const GRAFANA = { username: "grafana", password: "grafana-password-0123" } as const;

export const AUTH_TEST_CONFIG = {
  credentials: [
    { name: "writer", token: TOKENS.writer, tenants: ["team-a"], scopes: ["write"] },
    { name: "reader", token: TOKENS.reader, tenants: ["team-a", "team-b"], scopes: ["read"] },
    { name: "grafana", username: GRAFANA.username, password: GRAFANA.password, tenants: ["team-a"], scopes: ["read"] },
    { name: "ops", token: TOKENS.ops, tenants: "*", scopes: ["write", "read", "admin"] },
    { name: "admin-a", token: TOKENS.adminA, tenants: ["team-a"], scopes: ["admin"] },
    // Admin and nothing else, on every tenant: the routes that act on all tenants.
    { name: "admin-all", token: TOKENS.adminAll, tenants: "*", scopes: ["admin"] },
    // sha256("hashed-token-0123456789"): the plaintext is stored nowhere.
    { name: "hashed", tokenSha256: "b22fd458dbe2426bebe59cfafe4c46e013df3efd439e4d91cda767ac3052ddd0", tenants: ["team-c"], scopes: ["write", "read"] },
  ],
};
