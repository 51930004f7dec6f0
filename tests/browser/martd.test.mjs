// The martd-compatible /client.js in a real Chromium against msgbus's martd door.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMsgbus, startBrowser, publish } from "./harness.mjs";

let browser;
before(async () => { browser = await startBrowser(); });
after(async () => { await browser.close(); });

test("martd's client API subscribes, publishes and cancels through /client.js", async () => {
  const server = await startMsgbus(0, ["--martd"]);
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/msgbus.js`);
    await page.addScriptTag({ url: "/client.js" });
    // Subscribe to a channel with a space in its name (martd's client did not encode it).
    await page.evaluate(() => {
      window.got = [];
      window.subscription = martd.sub("room one", (payload) => window.got.push(payload));
    });
    const answer = await page.evaluate(() => new Promise((done) => {
      martd.pub("room one", 10, 3600 * 1e9, false, "", "from the page", (text) => done(text));
    }));
    assert.match(answer, /^\{\n {5}"etag": "\d+"\n \}$/);
    await page.waitForFunction(() => window.got.length === 1);
    // The names and types of martd's own client: a gid is a GUID string, martd.request the
    // running /sub, martd.channels[name] { name, etag, callbacks }.
    await page.waitForFunction(() => martd.request !== null);
    assert.deepEqual(await page.evaluate(() => ({
      gid: typeof window.subscription.gid,
      guid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(window.subscription.gid),
      request: martd.request instanceof XMLHttpRequest,
      name: martd.channels["room one"].name,
      etag: typeof martd.channels["room one"].etag,
      callback: typeof martd.channels["room one"].callbacks[window.subscription.gid],
      everBumped: martd.ever_bumped,
    })), {
      gid: "string",
      guid: true,
      request: true,
      name: "room one",
      etag: "string",
      callback: "function",
      everBumped: true,
    });
    // A message through the native door reaches the martd client too.
    await publish(server.url, "room%20one", "from msgbus");
    await page.waitForFunction(() => window.got.length === 2);
    assert.deepEqual(await page.evaluate(() => window.got), ["from the page", "from msgbus"]);
    // After cancel() nothing more is delivered, and the page stops asking.
    await page.evaluate(() => window.subscription.cancel());
    await publish(server.url, "room%20one", "after cancel");
    await page.evaluate(() => new Promise((done) => {
      window.after = [];
      martd.sub("other", (payload) => window.after.push(payload));
      martd.pub("other", undefined, undefined, undefined, undefined, "marker", () => done());
    }));
    await page.waitForFunction(() => window.after.length === 1);
    assert.deepEqual(await page.evaluate(() => window.got), ["from the page", "from msgbus"]);
  } finally {
    await server.stop();
  }
});
