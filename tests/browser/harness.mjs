// Starts the real msgbus binary and a headless Chromium for the browser tests.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../..");
const binary = process.env.MSGBUS_BIN || join(root, "target/debug/msgbus");

/** A free loopback port (so a restarted server can come back on the same one). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

/** Starts msgbus serving static/ on `port`; resolves once it listens. */
export function startMsgbus(port, extra = []) {
  return new Promise((ok, fail) => {
    const child = spawn(binary, ["-l", "127.0.0.1", "-p", String(port), "-d", join(root, "static"), ...extra], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, RUST_LOG: "info" },
    });
    const timer = setTimeout(() => fail(new Error("msgbus did not start")), 10000);
    let log = "";
    child.stderr.on("data", (chunk) => {
      log += chunk;
      if (log.includes("connections (open-files limit")) {
        clearTimeout(timer);
        ok({
          child,
          url: `http://127.0.0.1:${port}`,
          stop: () => new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once("exit", done);
            child.kill("SIGTERM");
          }),
        });
      }
    });
    child.on("error", fail);
  });
}

/** A headless Chromium with a fresh profile, flags as this machine needs them. */
export async function startBrowser() {
  const profile = mkdtempSync(join(tmpdir(), "msgbus-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** POSTs a message; resolves with the server's JSON answer. */
export async function publish(base, channel, body, type = "text/plain") {
  const r = await fetch(`${base}/msgbus/${channel}`, {
    method: "POST",
    headers: { "Content-Type": type, Accept: "application/json" },
    body,
  });
  if (!r.ok) throw new Error(`publish: ${r.status}`);
  return r.json();
}
