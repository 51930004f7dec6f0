// msgbus.js's options in a real Chromium: tokens, channel keys, refusals that stop it, another
// origin, one connection for many tabs, the ES module, and its size.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { startMsgbus, startBrowser, publish, root } from "./harness.mjs";

const SECRET = "browser-test-secret";

/** An HS256 token for `claims`, signed as `--jwt-secret SECRET` expects. */
function mint(claims, secret = SECRET) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** Open streams of every transport (`subscribers` counts one per channel of each). */
const streams = (s) => Object.entries(s.connections_by_transport)
  .filter(([t]) => t !== "http").reduce((n, [, count]) => n + count, 0);

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

async function status(server) {
  return (await fetch(`${server.url}/status.json`)).json();
}

/** Reads /status.json until `ok(status)` holds (at most 200 reads, 10 s). */
async function statusUntil(server, ok, what) {
  const deadline = Date.now() + 10000;
  let last;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    last = await status(server);
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: ${JSON.stringify(last)}`);
}

/** A page of `server`'s origin with msgbus.js loaded and nothing else running; window.opened
 * counts the EventSources it opens. */
async function clientPage(server) {
  const page = await browser.context.newPage();
  await page.addInitScript(() => {
    window.opened = 0;
    window.EventSource = class extends EventSource {
      constructor(...args) { super(...args); window.opened++; }
    };
  });
  await page.goto(`${server.url}/msgbus.js`);
  await page.addScriptTag({ url: "/msgbus.js" });
  return page;
}

/** Subscribes in `page` as window.subs[name], recording messages, states and errors. */
function subscribeIn(page, name, channels, options) {
  return page.evaluate(([name, channels, options]) => {
    window.subs = window.subs || {};
    const record = (window.subs[name] = { got: [], states: [], errors: [] });
    record.sub = msgbus.subscribe(channels, (m) => record.got.push(m.data), {
      ...options,
      onState: (s) => record.states.push(s),
      onError: (e) => record.errors.push(e),
    });
  }, [name, channels, options]);
}

const recorded = (page, name) => page.evaluate((name) => {
  const { got, states, errors } = window.subs[name];
  return { got, states, errors };
}, name);

let browser;
before(async () => { browser = await startBrowser(); });
after(async () => { await browser.close(); });

test("a token reaches the server on every transport, and publish carries it and the channel key", async () => {
  const server = await startMsgbus(0, ["--jwt-secret", SECRET]);
  const page = await clientPage(server);
  try {
    const token = mint({ sub: "ann", subscribe: ["room/*"], publish: ["room/*"], exp: inAnHour() });
    await page.evaluate((token) => msgbus.setToken(token), token);
    for (const transport of ["sse", "ws", "longpoll"]) {
      await subscribeIn(page, transport, "room/1", { transport });
    }
    await statusUntil(server, (s) => s.subscribers === 3, "three subscribers");
    // The first publish sets the channel's key; one without it is refused, one with it is not.
    const first = await page.evaluate(() => msgbus.publish("room/1", "one", { key: "k1" }));
    assert.equal(first.subscribers, 3);
    const refused = await page.evaluate(() => msgbus.publish("room/1", "nope").then(
      () => null, (e) => [e.status, e.message]));
    assert.deepEqual(refused, [403, "403 wrong or missing channel key"]);
    await page.evaluate(() => msgbus.publish("room/1", "two", { key: "k1", type: "text/plain" }));
    for (const transport of ["sse", "ws", "longpoll"]) {
      await page.waitForFunction((t) => window.subs[t].got.length === 2, transport);
      const { got, errors } = await recorded(page, transport);
      assert.deepEqual(got, ["one", "two"], transport);
      assert.deepEqual(errors, [], transport);
    }
    // The token's subject is the sender.
    const from = await page.evaluate(() => new Promise((done) => {
      const sub = msgbus.subscribe("room/1", (m) => { sub.close(); done(m.from); }, { share: false });
      setTimeout(() => msgbus.publish("room/1", "three", { key: "k1" }), 200);
    }));
    assert.equal(from, "ann");
  } finally {
    await page.close();
    await server.stop();
  }
});

test("onError reports 401, 403 and 404 and the client stops asking", async () => {
  const server = await startMsgbus(0, ["--jwt-secret", SECRET]);
  const page = await clientPage(server);
  try {
    const cases = [
      // [name, transport, token, status, reason]
      ["none-auto", undefined, null, 401, "a token is required"],
      ["none-sse", "sse", null, 401, "a token is required"],
      ["none-ws", "ws", null, 401, "a token is required"],
      ["none-longpoll", "longpoll", null, 401, "a token is required"],
      ["forged-ws", "ws", mint({ subscribe: ["*"] }, "not-the-secret"), 401, "bad token signature"],
      ["expired-sse", "sse", mint({ subscribe: ["*"], exp: 1000 }), 401, "token expired"],
      ["grant-auto", undefined, mint({ subscribe: ["other"], exp: inAnHour() }), 403,
        "token does not allow you to subscribe to secret"],
      ["grant-longpoll", "longpoll", mint({ subscribe: ["other"], exp: inAnHour() }), 403,
        "token does not allow you to subscribe to secret"],
    ];
    for (const [name, transport, token] of cases) {
      await subscribeIn(page, name, "secret", { transport, token });
    }
    // A base with no msgbus behind it: 404, whatever the transport.
    await page.evaluate(() => msgbus.setBase("/nothere"));
    for (const transport of ["sse", "ws", "longpoll"]) {
      const name = `404-${transport}`;
      cases.push([name, transport, null, 404, "not found"]);
      await subscribeIn(page, name, "secret", { transport });
    }
    await page.evaluate(() => msgbus.setBase(""));
    for (const [name, , , status, reason] of cases) {
      await page.waitForFunction((n) => window.subs[n].errors.length > 0, name);
      const { errors, states, got } = await recorded(page, name);
      assert.deepEqual(errors, [{ status, reason }], name);
      assert.equal(states.at(-1), "closed", name);
      assert.deepEqual(got, [], name);
    }
    // Nothing asks again: the refusal counters stay where they are while backoff would retry.
    const before = (await status(server)).refused;
    await new Promise((r) => setTimeout(r, 1500));
    const later = (await status(server)).refused;
    assert.deepEqual([later["401"], later["403"], later["404"]], [before["401"], before["403"], before["404"]]);
    assert.ok(before["401"] >= 6 && before["403"] >= 2 && before["404"] >= 3, JSON.stringify(before));
    assert.equal((await status(server)).subscribers, 0);
  } finally {
    await page.close();
    await server.stop();
  }
});

test("setBase() reaches another origin over every transport, WebSocket included", async () => {
  const home = await startMsgbus(0);
  const origin = home.url;
  const push = await startMsgbus(0, ["--allow-origin", origin, "--jwt-secret", SECRET]);
  const page = await clientPage(home);
  try {
    const token = mint({ subscribe: ["x"], publish: ["x"], exp: inAnHour() });
    await page.evaluate(([base, token]) => { msgbus.setBase(base + "/"); msgbus.setToken(token); },
      [push.url, token]);
    for (const transport of ["sse", "ws", "longpoll"]) {
      await subscribeIn(page, transport, "x", { transport });
    }
    const s = await statusUntil(push, (s) => s.subscribers === 3, "three subscribers on the other origin");
    assert.deepEqual(
      [s.connections_by_transport.sse, s.connections_by_transport.websocket, s.connections_by_transport.longpoll],
      [1, 1, 1]);
    assert.equal((await status(home)).subscribers, 0);
    const answer = await page.evaluate(() => msgbus.publish("x", "across"));
    assert.equal(answer.subscribers, 3);
    for (const transport of ["sse", "ws", "longpoll"]) {
      await page.waitForFunction((t) => window.subs[t].got.length === 1, transport);
      assert.deepEqual((await recorded(page, transport)).got, ["across"], transport);
    }
  } finally {
    await page.close();
    await Promise.all([home.stop(), push.stop()]);
  }
});

test("the tabs of an origin share one connection, and another tab takes over when it goes", async () => {
  const server = await startMsgbus(0);
  const pages = [];
  try {
    for (let i = 0; i < 4; i++) {
      const page = await clientPage(server);
      pages.push(page);
      // The last tab also reads another channel: the shared connection grows to cover it.
      await subscribeIn(page, "news", i === 3 ? ["news", "other"] : "news", { since: 0 });
    }
    for (const page of pages) await page.waitForFunction(() => window.subs.news.states.includes("open"));
    await statusUntil(server, (s) => streams(s) === 1 && s.connections_by_transport.sse === 1,
      "one connection for four tabs");
    await publish(server.url, "news", "one");
    await publish(server.url, "other", "o");
    await publish(server.url, "news", "two");
    for (const [i, page] of pages.entries()) {
      const want = i === 3 ? ["one", "o", "two"] : ["one", "two"];
      await page.waitForFunction((n) => window.subs.news.got.length === n, want.length);
      assert.deepEqual((await recorded(page, "news")).got, want, `tab ${i}`);
    }
    // The first tab holds the connection; when it goes another tab connects, resuming where
    // each tab got to: a message published in between reaches them all, once.
    const opened = () => Promise.all(pages.map((p) => p.evaluate(() => window.opened)));
    assert.ok((await opened())[0] >= 1);
    assert.deepEqual((await opened()).slice(1), [0, 0, 0]);
    await pages.shift().close();
    await publish(server.url, "news", "three");
    for (const [i, page] of pages.entries()) {
      await page.waitForFunction(() => window.subs.news.got.at(-1) === "three");
      const want = i === 2 ? ["one", "o", "two", "three"] : ["one", "two", "three"];
      assert.deepEqual((await recorded(page, "news")).got, want, `tab ${i + 1}`);
    }
    assert.equal((await opened()).filter((n) => n > 0).length, 1, "one of the others took over");
    await statusUntil(server, (s) => streams(s) === 1, "still one connection");
    // A tab that opts out keeps a connection of its own.
    await subscribeIn(pages[0], "own", "news", { share: false });
    await statusUntil(server, (s) => streams(s) === 2, "a second connection for share: false");
    // Closing every subscription of every tab closes the shared connection.
    for (const page of pages) await page.evaluate(() => Object.values(window.subs).forEach((r) => r.sub.close()));
    await statusUntil(server, (s) => streams(s) === 0, "no connection left");
  } finally {
    await Promise.all(pages.map((p) => p.close()));
    await server.stop();
  }
});

test("without Web Locks each tab keeps a connection of its own", async () => {
  const server = await startMsgbus(0);
  const pages = [];
  try {
    for (let i = 0; i < 2; i++) {
      const page = await browser.context.newPage();
      await page.addInitScript(() => Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined }));
      await page.goto(`${server.url}/msgbus.js`);
      await page.addScriptTag({ url: "/msgbus.js" });
      await subscribeIn(page, "news", "news", {});
      pages.push(page);
    }
    await statusUntil(server, (s) => streams(s) === 2, "a connection per tab");
    await publish(server.url, "news", "each");
    for (const page of pages) {
      await page.waitForFunction(() => window.subs.news.got.length === 1);
      assert.deepEqual((await recorded(page, "news")).got, ["each"]);
    }
  } finally {
    await Promise.all(pages.map((p) => p.close()));
    await server.stop();
  }
});

test("msgbus.mjs imports as an ES module with the same API as the script and its types", async () => {
  const server = await startMsgbus(0);
  const page = await browser.context.newPage();
  try {
    await page.goto(`${server.url}/msgbus.js`);
    const keys = await page.evaluate(async () => {
      const mod = await import("/msgbus.mjs");
      window.got = [];
      mod.subscribe("m", (m) => window.got.push(m.data));
      return [Object.keys(mod).sort(), Object.keys(mod.default).sort()];
    });
    assert.deepEqual(keys, [["default", "publish", "setBase", "setToken", "subscribe"],
      ["publish", "setBase", "setToken", "subscribe"]]);
    await statusUntil(server, (s) => s.subscribers === 1, "the module's subscriber");
    await publish(server.url, "m", "via the module");
    await page.waitForFunction(() => window.got.length === 1);
    const types = readFileSync(join(root, "static/msgbus.d.ts"), "utf8");
    const declared = [...types.matchAll(/^export declare const (\w+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(declared, keys[1]);
    const pkg = JSON.parse(readFileSync(join(root, "static/package.json"), "utf8"));
    for (const file of pkg.files) readFileSync(join(root, "static", file));
  } finally {
    await page.close();
    await server.stop();
  }
});

test("msgbus.js stays within the size the README states", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const bound = /`static\/msgbus\.js` \(under ([\d.]+) KB gzipped/.exec(readme);
  assert.ok(bound, "the README states the client's gzipped size");
  const size = gzipSync(readFileSync(join(root, "static/msgbus.js")), { level: 9 }).length;
  assert.ok(size <= Number(bound[1]) * 1024, `${size} bytes gzipped, README says under ${bound[1]} KB`);
});
