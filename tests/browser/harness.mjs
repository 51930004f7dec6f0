// Starts the real msgbus binary and a headless Chromium for the browser tests.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../..");
const binary = process.env.MSGBUS_BIN || join(root, "target/debug/msgbus");
/** How long msgbus may take to say it listens, or to exit after SIGTERM. */
const DEADLINE_MS = 10000;

// Whatever happens to a test, no server outlives the runner.
const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts msgbus serving static/ on `port` (0: a port the server picks and reports); resolves
 * once it listens. A fixed port (a restart on the port a stopped server had) is retried a few
 * times if it is still taken.
 */
export async function startMsgbus(port = 0, extra = []) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(port, extra);
    } catch (e) {
      if (port === 0 || attempt >= 5 || !/in use/i.test(e.message)) throw e;
      await new Promise((ok) => setTimeout(ok, 200));
    }
  }
}

function startOnce(port, extra) {
  return new Promise((ok, fail) => {
    const child = spawn(binary, ["-l", "127.0.0.1", "-p", String(port), "-d", join(root, "static"), ...extra], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, RUST_LOG: "info" },
    });
    running.add(child);
    let log = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`msgbus did not say where it listens within ${DEADLINE_MS} ms:\n${log}`));
    }, DEADLINE_MS);
    child.on("exit", (code, signal) => {
      running.delete(child);
      clearTimeout(timer);
      fail(new Error(`msgbus exited (${code ?? signal}) before listening:\n${log}`));
    });
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const listening = log.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (listening && log.includes("connections (open-files limit")) {
        clearTimeout(timer);
        const actual = Number(listening[1]);
        ok({
          child,
          port: actual,
          url: `http://127.0.0.1:${actual}`,
          stop: () => stop(child),
        });
      }
    });
    child.on("error", (e) => { clearTimeout(timer); fail(e); });
  });
}

/** SIGTERM, and the exit within the deadline; past it, SIGKILL and a failure. */
function stop(child) {
  return new Promise((done, fail) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`msgbus did not exit within ${DEADLINE_MS} ms of SIGTERM`));
    }, DEADLINE_MS);
    child.once("exit", () => { clearTimeout(timer); done(); });
    child.kill("SIGTERM");
  });
}

/** Asks /status.json until `ok(status)` holds: a bounded number of round trips. */
export async function waitForStatus(base, ok, what) {
  const deadline = Date.now() + DEADLINE_MS;
  for (let look = 0; look < 10000 && Date.now() < deadline; look++) {
    const answer = await fetch(`${base}/status.json`, { signal: AbortSignal.timeout(DEADLINE_MS) });
    const status = await answer.json();
    if (ok(status)) return status;
  }
  throw new Error(`${what}: not seen in /status.json within ${DEADLINE_MS} ms`);
}

/** Waits until channel `name` has a subscriber of its own (the page's other subscriptions, such
 * as flood.html's, do not count). */
export async function waitForChannel(base, name, what) {
  const deadline = Date.now() + DEADLINE_MS;
  for (let look = 0; look < 10000 && Date.now() < deadline; look++) {
    const answer = await fetch(`${base}/msgbus-status/channels/${name}.json`, {
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    if (answer.ok && (await answer.json()).subscribers_total > 0) return;
  }
  throw new Error(`${what}: no subscriber of ${name} within ${DEADLINE_MS} ms`);
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
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  if (!r.ok) throw new Error(`publish: ${r.status}`);
  return r.json();
}

/**
 * Starts nats-server with JetStream on a port it picks, with a store of its own; resolves once
 * it is ready. stop() ends it and removes the store.
 */
export function startNats() {
  const store = mkdtempSync(join(tmpdir(), "msgbus-nats-"));
  return new Promise((ok, fail) => {
    const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    running.add(child);
    let log = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`nats-server not ready within ${DEADLINE_MS} ms:\n${log}`));
    }, DEADLINE_MS);
    child.on("exit", (code, signal) => {
      running.delete(child);
      rmSync(store, { recursive: true, force: true });
      clearTimeout(timer);
      fail(new Error(`nats-server exited (${code ?? signal}) before it was ready:\n${log}`));
    });
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const port = log.match(/Listening for client connections on [\d.]+:(\d+)/);
      if (port && log.includes("Server is ready")) {
        clearTimeout(timer);
        ok({ url: `nats://127.0.0.1:${port[1]}`, stop: () => stop(child) });
      }
    });
    child.on("error", (e) => { clearTimeout(timer); fail(e); });
  });
}
