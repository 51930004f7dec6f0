// The chat demo and msgbus.js in a real Chromium against a real msgbus.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { deflateSync, crc32 } from "node:zlib";
import { startMsgbus, startBrowser, publish, waitForStatus, waitForChannel } from "./harness.mjs";

/** A width x height opaque red PNG. */
function pngImage(width, height) {
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, "latin1");
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, Buffer.from([255, 0, 0]))]);
  const pixels = deflateSync(Buffer.concat(Array(height).fill(row)));
  return Buffer.concat([
    Buffer.from("89504e470d0a1a0a", "hex"),
    chunk("IHDR", header),
    chunk("IDAT", pixels),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

let browser;
before(async () => { browser = await startBrowser(); });
after(async () => { await browser.close(); });

const logText = (page) => page.locator("#log").innerText();

test("two pages chat through msgbus, with the room's history on joining", async () => {
  const server = await startMsgbus();
  try {
    await publish(server.url, "chat/t1", JSON.stringify({ nick: "zoe", text: "earlier" }), "application/json");
    const ann = await browser.context.newPage();
    const bob = await browser.context.newPage();
    await ann.goto(`${server.url}/?nick=ann&room=t1`);
    await bob.goto(`${server.url}/?nick=bob&room=t1`);
    for (const page of [ann, bob]) {
      await page.waitForFunction(() => document.body.dataset.state === "open");
      await page.getByText("zoe: earlier").waitFor();
    }
    await ann.fill("input[name=text]", "hello bob");
    await ann.press("input[name=text]", "Enter");
    await bob.getByText("ann: hello bob").waitFor();
    await bob.fill("input[name=text]", "hi ann");
    await bob.press("input[name=text]", "Enter");
    await ann.getByText("bob: hi ann").waitFor();
    // Each message once, in order, on both pages.
    for (const page of [ann, bob]) {
      const lines = (await logText(page)).split("\n").filter((l) => l.includes(":"));
      assert.deepEqual(lines, ["zoe: earlier", "ann: hello bob", "bob: hi ann"]);
    }
    // The screenshot shows the chat, not a blank page.
    const shot = await ann.screenshot();
    const blank = await browser.context.newPage();
    await blank.setViewportSize(ann.viewportSize());
    await blank.goto("about:blank");
    const empty = await blank.screenshot();
    assert.ok(shot.length > empty.length * 2, `chat ${shot.length} bytes, blank ${empty.length}`);
    assert.notDeepEqual(shot, empty);
    await Promise.all([ann.close(), bob.close(), blank.close()]);
  } finally {
    await server.stop();
  }
});

test("a page survives a server restart and resumes with nothing lost or repeated", async () => {
  let server = await startMsgbus();
  const port = server.port;
  const page = await browser.context.newPage();
  try {
    await page.goto(`${server.url}/?nick=kim&room=restart&transport=sse`);
    await page.waitForFunction(() => document.body.dataset.state === "open");
    await publish(server.url, "chat/restart", JSON.stringify({ nick: "a", text: "one" }), "application/json");
    await page.getByText("a: one").waitFor();
    await server.stop();
    await page.waitForFunction(() => document.body.dataset.state === "reconnecting");
    server = await startMsgbus(port);
    // Published before the page is back: kept by the new server and replayed to it.
    await publish(server.url, "chat/restart", JSON.stringify({ nick: "a", text: "two" }), "application/json");
    await page.waitForFunction(() => document.body.dataset.state === "open", null, { timeout: 15000 });
    await page.getByText("a: two").waitFor();
    await publish(server.url, "chat/restart", JSON.stringify({ nick: "a", text: "three" }), "application/json");
    await page.getByText("a: three").waitFor();
    const lines = (await logText(page)).split("\n").filter((l) => l.startsWith("a: "));
    assert.deepEqual(lines, ["a: one", "a: two", "a: three"]);
  } finally {
    await page.close();
    await server.stop();
  }
});

for (const transport of ["sse", "ws", "longpoll"]) {
  test(`msgbus.js delivers over ${transport}`, async () => {
    const server = await startMsgbus();
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/flood.html`);
      await page.evaluate((transport) => {
        window.got = [];
        window.states = [];
        window.sub = msgbus.subscribe(["x", "y"], (m) => window.got.push([m.channel, m.data]), {
          transport,
          onState: (s) => window.states.push(s),
        });
      }, transport);
      if (transport === "longpoll") {
        // A long-poll is "open" only once its first answer comes, and a poll without a cursor
        // waits for the next message: publish once the server holds it (on x and y: the page's
        // own flood chart subscribes too, so the total count says nothing).
        await waitForChannel(server.url, "x", "the first poll held");
        await waitForChannel(server.url, "y", "the first poll held");
      } else {
        await page.waitForFunction(() => window.states.includes("open"));
      }
      await publish(server.url, "x", "to x");
      await publish(server.url, "y", "to y");
      await page.waitForFunction(() => window.got.length >= 2);
      assert.deepEqual(await page.evaluate(() => window.got), [["x", "to x"], ["y", "to y"]]);
      const answer = await page.evaluate(() => msgbus.publish("x", "from page"));
      assert.equal(answer.subscribers, 1);
      await page.waitForFunction(() => window.got.length >= 3);
      assert.deepEqual((await page.evaluate(() => window.got))[2], ["x", "from page"]);
    } finally {
      await page.close();
      await server.stop();
    }
  });
}

test("the cam page renders a multipart/x-mixed-replace image stream", async () => {
  const server = await startMsgbus();
  const page = await browser.context.newPage();
  try {
    // The stream never ends, so the page never "loads": wait for its document only.
    await page.goto(`${server.url}/cam.html`, { waitUntil: "domcontentloaded" });
    // Publish once the image's own request is subscribed (each status read is a round trip).
    await waitForStatus(server.url, (s) => s.subscribers === 1, "the image subscribed");
    // Chromium shows a part once the next one begins, so each frame appears when the one
    // after it arrives: frames of 2x3, then 4x5, then 6x7 pixels replace each other.
    for (const [w, h] of [[2, 3], [4, 5], [6, 7]]) {
      await publish(server.url, "cam", pngImage(w, h), "image/png");
    }
    await page.waitForFunction(() => document.getElementById("cam").naturalWidth === 4);
    assert.equal(await page.evaluate(() => document.getElementById("cam").naturalHeight), 5);
  } finally {
    await page.close();
    await server.stop();
  }
});

test("msgbus.js backs off exponentially with jitter, up to 10 s, and starts again after a success", async () => {
  const server = await startMsgbus();
  const page = await browser.context.newPage();
  try {
    await page.goto(`${server.url}/msgbus.js`);
    await page.addScriptTag({ url: "/msgbus.js" });
    // Every poll fails while the route refuses it; each delay asked of setTimeout is recorded
    // (and the timer fired at once), with Math.random alternating between its extremes.
    let refuse = true;
    await page.route("**/msgbus/**", (route) => (refuse ? route.abort() : route.continue()));
    await page.evaluate(() => {
      window.delays = [];
      const fire = window.setTimeout.bind(window);
      let flip = 0;
      Math.random = () => (flip++ % 2 ? 1 : 0);
      window.setTimeout = (fn, ms) => {
        window.delays.push(ms);
        if (window.delays.length < 9) fire(fn, 0);
        return 0;
      };
      window.states = [];
      window.sub = msgbus.subscribe("b", () => {}, {
        transport: "longpoll",
        onState: (s) => window.states.push(s),
      });
    });
    await page.waitForFunction(() => window.delays.length === 9);
    const delays = await page.evaluate(() => window.delays);
    // 250 ms doubling up to 10 s, times a jitter factor between 0.5 and 1.
    const full = [250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000];
    assert.deepEqual(delays, full.map((d, i) => d * (i % 2 ? 1 : 0.5)));
    // A poll that gets through resets the backoff: the next failure waits 250 ms again.
    refuse = false;
    await page.evaluate(() => {
      window.sub.close();
      window.delays = [];
      Math.random = () => 1;
    });
    await page.evaluate(() => {
      window.sub = msgbus.subscribe("b", () => {}, {
        transport: "longpoll",
        onState: (s) => window.states.push(s),
      });
    });
    await waitForChannel(server.url, "b", "the poll held");
    await publish(server.url, "b", "through");
    await page.waitForFunction(() => window.states.includes("open"));
    refuse = true;
    await publish(server.url, "b", "ends the held poll");
    await page.waitForFunction(() => window.delays.length >= 1);
    assert.equal(await page.evaluate(() => window.delays[0]), 250);
    await page.evaluate(() => window.sub.close());
  } finally {
    await page.close();
    await server.stop();
  }
});
