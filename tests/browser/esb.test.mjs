// eventsource-broker's browser client in a real Chromium: an app page on its own origin loads
// the broker's /es.js, opens a channel through the app's /eshq/socket (which asks the broker for
// a socket with the api key and a signed token, as the eshq gem does), receives plain messages
// and named events published with POST /event, and sends one with `send`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMsgbus, startBrowser } from "./harness.mjs";

const KEY = "k1";
const SECRET = "s3cret";
const DEADLINE_MS = 10000;

/** key, timestamp and token as the eshq gem signs them: sha1("key:secret:timestamp"). */
function credentials() {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const token = createHash("sha1").update(`${KEY}:${SECRET}:${timestamp}`).digest("hex");
  return { key: KEY, timestamp, token };
}

/** POSTs a form to the broker; resolves with status and text. */
async function postForm(base, path, fields) {
  const r = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  return { status: r.status, text: await r.text() };
}

/** The app: its page embeds the broker's es.js; its /eshq/socket is the server-side step. */
function startApp(broker) {
  const app = createServer((req, res) => {
    if (req.method === "POST" && req.url === "/eshq/socket") {
      let body = "";
      req.on("data", (chunk) => { body += chunk; });
      req.on("end", async () => {
        const asked = new URLSearchParams(body);
        const fields = { channel: asked.get("channel"), ...credentials() };
        if (asked.get("presence_id")) fields.presence_id = asked.get("presence_id");
        const answer = await postForm(broker, "/socket", fields);
        app.sockets.push(JSON.parse(answer.text));
        res.writeHead(answer.status, { "Content-Type": "application/json" });
        res.end(answer.text);
      });
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!DOCTYPE html><html><head><title>app</title></head><body>
<script src="${broker}/es.js"></script>
</body></html>`);
  });
  app.sockets = [];
  return new Promise((ok) => app.listen(0, "127.0.0.1", () => {
    ok({ app, url: `http://127.0.0.1:${app.address().port}` });
  }));
}

/** Opens `channel` in a new page of the app, recording what arrives in window.got. */
async function openChannel(context, appUrl, channel, presence) {
  const page = await context.newPage();
  await page.goto(appUrl);
  await page.evaluate(([channel, presence]) => {
    window.got = [];
    window.opened = 0;
    const es = new ESHQ(channel, presence ? { presence_id: presence } : undefined);
    es.onopen = () => { window.opened++; };
    es.onmessage = (e) => window.got.push(["message", e.data]);
    es.addEventListener("greet", (e) => window.got.push(["greet", e.data]));
    window.es = es;
  }, [channel, presence]);
  await page.waitForFunction(() => window.opened > 0, null, { timeout: DEADLINE_MS });
  return page;
}

let browser;
let dir;
before(async () => {
  browser = await startBrowser();
  dir = mkdtempSync(join(tmpdir(), "msgbus-esb-"));
});
after(async () => {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
});

test("eshq.js's API works against the eventsource-broker door from another origin", async () => {
  const users = join(dir, "users");
  writeFileSync(users, `${KEY}:${SECRET}\n`);
  const server = await startMsgbus(0, ["--esb-users", users]);
  const { app, url: appUrl } = await startApp(server.url);
  try {
    const alice = await openChannel(browser.context, appUrl, "room 1", "alice");
    const bob = await openChannel(browser.context, appUrl, "room 1");
    // The socket came through the app, with the presence id es.js passed on.
    assert.equal(app.sockets.length, 2);
    assert.deepEqual(
      { channel: app.sockets[0].channel, presence: app.sockets[0].presence_id },
      { channel: "room 1", presence: "alice" },
    );
    // The iframe is the broker's, on the broker's origin.
    const frames = alice.frames().map((f) => f.url()).filter((u) => u.includes("/iframe?"));
    assert.equal(frames.length, 1);
    assert.ok(frames[0].startsWith(`${server.url}/iframe?channel=room%201&socket=`), frames[0]);

    // A plain message and a named event from the app's server.
    const published = await postForm(server.url, "/event", {
      channel: "room 1", data: "hello", ...credentials(),
    });
    assert.deepEqual(published, { status: 200, text: "{}" });
    await postForm(server.url, "/event", {
      channel: "room 1", data: "{\"n\":1}", name: "greet", ...credentials(),
    });
    // Another key's channel of the same name, or another channel, reaches neither.
    await postForm(server.url, "/event", { channel: "room 2", data: "elsewhere", ...credentials() });
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => window.got.length >= 2, null, { timeout: DEADLINE_MS });
      assert.deepEqual(await page.evaluate(() => window.got), [
        ["message", "hello"],
        ["greet", "{\"n\":1}"],
      ]);
    }

    // send: through alice's iframe to POST /socket/ID; bob gets it.
    await alice.evaluate(() => window.es.send("from alice & co"));
    await bob.waitForFunction(() => window.got.length === 3, null, { timeout: DEADLINE_MS });
    assert.deepEqual(await bob.evaluate(() => window.got[2]), ["message", "from alice & co"]);

    // close: no more events for alice's page; bob still gets them.
    await alice.evaluate(() => window.es.close());
    assert.equal(await alice.evaluate(() => document.querySelectorAll("iframe").length), 0);
    await postForm(server.url, "/event", { channel: "room 1", data: "after", ...credentials() });
    await bob.waitForFunction(() => window.got.length === 4, null, { timeout: DEADLINE_MS });
    assert.equal((await alice.evaluate(() => window.got)).filter(([, d]) => d === "after").length, 0);
    await alice.close();
    await bob.close();
  } finally {
    app.close();
    await server.stop();
  }
});

test("the first client's eshq.open / eshq.send API works too", async () => {
  const users = join(dir, "users-old");
  writeFileSync(users, `${KEY}:${SECRET}\n`);
  const server = await startMsgbus(0, ["--esb-users", users]);
  const { app, url: appUrl } = await startApp(server.url);
  try {
    const page = await browser.context.newPage();
    await page.goto(appUrl);
    await page.evaluate(() => {
      window.got = [];
      eshq.open("old", {
        open: () => { window.opened = true; },
        message: (e) => window.got.push(e.data),
      });
    });
    await page.waitForFunction(() => window.opened === true, null, { timeout: DEADLINE_MS });
    await page.evaluate(() => eshq.send("old", "sent the old way"));
    await page.waitForFunction(() => window.got.length === 1, null, { timeout: DEADLINE_MS });
    assert.deepEqual(await page.evaluate(() => window.got), ["sent the old way"]);
    await assert.rejects(page.evaluate(() => eshq.send("never opened", "x")), /open a channel/);
    await page.close();
  } finally {
    app.close();
    await server.stop();
  }
});
