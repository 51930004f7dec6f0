// HTTP/2 in a real Chromium, over HTTPS with a throwaway certificate: many streams on one
// connection (EventSource and WebSocket, the latter through RFC 8441 extended CONNECT), and the
// chat demo in seven tabs, which over HTTP/1.1 would need more than the six connections a
// browser allows an origin.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { root } from "./harness.mjs";

const binary = process.env.MSGBUS_BIN || join(root, "target/debug/msgbus");
const DEADLINE_MS = 10000;

let dir;
let browser;
let context;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "msgbus-h2-browser-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
  });
  context = await browser.newContext({ ignoreHTTPSErrors: true });
});

after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts msgbus with a TLS listener serving static/; resolves with its https base URL. */
function startTls() {
  return new Promise((ok, fail) => {
    const child = spawn(binary, [
      "--tls-listen", "127.0.0.1:0", "--tls-cert", join(dir, "cert.pem"), "--tls-key", join(dir, "key.pem"),
      "-d", join(root, "static"),
    ], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "info" } });
    let log = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`msgbus did not listen within ${DEADLINE_MS} ms:\n${log}`));
    }, DEADLINE_MS);
    child.on("exit", (code, signal) => { clearTimeout(timer); fail(new Error(`msgbus exited (${code ?? signal}):\n${log}`)); });
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const listening = log.match(/listening \(TLS\) on 127\.0\.0\.1:(\d+)/);
      if (listening && log.includes("connections (open-files limit")) {
        clearTimeout(timer);
        ok({ url: `https://127.0.0.1:${listening[1]}`, stop: () => child.kill("SIGKILL") });
      }
    });
  });
}

test("twenty EventSource streams and a WebSocket on one HTTP/2 connection all get the message", async () => {
  const server = await startTls();
  try {
    const page = await context.newPage();
    await page.goto(`${server.url}/msgbus.js`);
    const out = await page.evaluate(async (deadline) => {
      const timeout = (what) => new Promise((_, fail) => setTimeout(() => fail(new Error(what)), deadline));
      const got = [];
      const streams = [];
      for (let i = 0; i < 20; i++) {
        const es = new EventSource(`/msgbus/h2b?n=${i}`);
        streams.push(new Promise((ok) => { es.onmessage = (e) => { got.push(e.data); es.close(); ok(); }; }));
      }
      const ws = new WebSocket(`${location.origin.replace(/^https/, "wss")}/msgbus/h2b`);
      const wsMessage = new Promise((ok) => { ws.onmessage = (e) => ok(e.data); });
      await Promise.race([new Promise((ok) => { ws.onopen = ok; }), timeout("WebSocket did not open")]);
      for (let look = 0; look < 1000; look++) {
        const status = await (await fetch("/status.json")).json();
        if (status.subscribers >= 21) break;
      }
      const published = await fetch("/msgbus/h2b", { method: "POST", body: "to all", headers: { "content-type": "text/plain" } });
      await Promise.race([Promise.all(streams), timeout("EventSource streams missed the message")]);
      const wsGot = await Promise.race([wsMessage, timeout("the WebSocket missed the message")]);
      const status = await (await fetch("/status.json")).json();
      return {
        protocol: performance.getEntriesByType("navigation")[0].nextHopProtocol,
        published: published.status,
        got,
        wsGot,
        connections: status.connections,
      };
    }, DEADLINE_MS);
    assert.equal(out.protocol, "h2");
    assert.equal(out.published, 204);
    assert.deepEqual(out.got, Array(20).fill("to all"));
    assert.equal(out.wsGot, "to all");
    // The page, its twenty streams, its WebSocket and its fetches: one connection.
    assert.equal(out.connections, 1);
  } finally {
    server.stop();
  }
});

test("the chat page works in seven tabs of one origin", async () => {
  const server = await startTls();
  try {
    const pages = [];
    for (let i = 0; i < 7; i++) {
      const page = await context.newPage();
      await page.goto(`${server.url}/?nick=u${i}&room=seven`);
      pages.push(page);
    }
    for (const page of pages) {
      await page.waitForFunction(() => document.body.dataset.state === "open", null, { timeout: DEADLINE_MS });
    }
    await pages[6].fill("input[name=text]", "hello from the seventh tab");
    await pages[6].press("input[name=text]", "Enter");
    for (const page of pages) {
      await page.getByText("u6: hello from the seventh tab").waitFor({ timeout: DEADLINE_MS });
    }
  } finally {
    server.stop();
  }
});
