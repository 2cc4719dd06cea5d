// Debian's Chromium driven by playwright-core, for the browser end-to-end tests.
// The browser is the system's (/usr/bin/chromium, installed by .ci/run), never a
// downloaded one; a missing binary is a test failure, not a skip: CI installs it.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { makeTempDir } from "./wrangler";

export const CHROMIUM_BIN = "/usr/bin/chromium";

/** Flags for a quiet headless Chromium in a container: no sandbox (root), no GPU, no calls home. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh Chromium profile (its own user-data-dir under the OS temp dir). Close the context to end the browser. */
export async function launchChromium(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM_BIN)) {
    throw new Error(`${CHROMIUM_BIN} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)`);
  }
  const userDataDir = join(makeTempDir("edge-ingester-chromium"), "profile");
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}
