// msgbus.js across a cluster: two nodes joined through a real nats-server with JetStream, a page
// subscribed on node A over every transport, A killed (SIGKILL) mid-stream; the client moves to
// node B by itself (setBase with both) and ends with every message exactly once, in order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMsgbus, startNats, startBrowser, waitForStatus, publish } from "./harness.mjs";

const TRANSPORTS = ["sse", "ws", "longpoll"];
/** Published on A and B at once, then on B while A is killed, then on B alone. */
const BOTH = 30, DURING = 30, AFTER = 10;
/** For every message to reach the page after the move. */
const DELIVERY_MS = 30000;

let browser;
before(async () => { browser = await startBrowser(); });
after(async () => { await browser.close(); });

test("msgbus.js moves to another node when its node is killed, nothing lost or repeated", async () => {
  const nats = await startNats();
  const home = await startMsgbus(0);
  const node = (name) => startMsgbus(0, ["--nats", nats.url, "--node-name", name, "--allow-origin", home.url]);
  const a = await node("a");
  const b = await node("b");
  const page = await browser.context.newPage();
  try {
    await page.goto(`${home.url}/msgbus.js`);
    await page.addScriptTag({ url: "/msgbus.js" });
    await page.evaluate(([transports, bases]) => {
      msgbus.setBase(bases);
      window.subs = {};
      for (const transport of transports) {
        const record = (window.subs[transport] = { got: [], states: [], errors: [] });
        msgbus.subscribe("room", (m) => record.got.push([m.id, m.data]), {
          transport,
          share: false,
          onState: (s) => record.states.push(s),
          onError: (e) => record.errors.push(e),
        });
      }
    }, [TRANSPORTS, [a.url, b.url]]);
    await waitForStatus(a.url, (s) => s.subscribers === TRANSPORTS.length, "the page's three subscriptions on A");

    // Every answer carries the message's id, the stream's sequence: the one order to expect.
    const sent = [];
    const send = async (server, body) => sent.push([(await publish(server.url, "room", body)).id, body]);
    await Promise.all(Array.from({ length: BOTH }, (_, i) => send(i % 2 ? b : a, `both ${i}`)));
    // Streaming from A (each subscription has all of those), then A dies while B publishes.
    await page.waitForFunction(([transports, n]) => transports.every((t) => window.subs[t].got.length === n),
      [TRANSPORTS, BOTH], { timeout: DELIVERY_MS });
    const during = (async () => {
      for (let i = 0; i < DURING; i++) await send(b, `during ${i}`);
    })();
    while (sent.length < BOTH + 5) await new Promise((ok) => setTimeout(ok, 5));
    a.child.kill("SIGKILL");
    await during;
    for (let i = 0; i < AFTER; i++) await send(b, `after ${i}`);
    await waitForStatus(b.url, (s) => s.subscribers === TRANSPORTS.length, "the page's three subscriptions on B");
    // A last one: anything repeated would have come before it.
    await send(b, "last");

    sent.sort((x, y) => x[0] - y[0]);
    assert.equal(new Set(sent.map(([id]) => id)).size, sent.length, "ids are unique");
    for (const transport of TRANSPORTS) {
      await page.waitForFunction((t) => window.subs[t].got.some(([, data]) => data === "last"),
        transport, { timeout: DELIVERY_MS });
      const { got, states, errors } = await page.evaluate((t) => window.subs[t], transport);
      assert.deepEqual(got, sent, transport);
      assert.deepEqual(errors, [], transport);
      assert.ok(states.includes("reconnecting"), `${transport}: ${states}`);
    }
  } finally {
    await page.close();
    a.child.kill("SIGKILL");
    await Promise.all([b.stop(), home.stop()]);
    await nats.stop();
  }
});
