// The flood page in a real Chromium: its chart has axes with units and a legend, and draws what
// arrives.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMsgbus, startBrowser, publish } from "./harness.mjs";

let browser;
before(async () => { browser = await startBrowser(); });
after(async () => { await browser.close(); });

test("flood.html charts the rate and latency percentiles with axes, units and a legend", async () => {
  const server = await startMsgbus(0);
  const page = await browser.context.newPage();
  try {
    await page.goto(`${server.url}/flood.html?channel=f`);
    const text = (selector) => page.locator(selector).allTextContents();
    assert.deepEqual(await text("#legend text"), [
      "delivered (msg/s, left axis)", "latency p50 (ms, right axis)", "latency p99 (ms, right axis)",
    ]);
    assert.deepEqual(await text("#x-title"), ["time (seconds ago)"]);
    assert.deepEqual(await text("#rate-title"), ["messages per second (msg/s)"]);
    assert.deepEqual(await text("#latency-title"), ["latency (ms)"]);
    assert.deepEqual(await text(".tick-time"), ["now", "−10", "−20", "−30", "−40", "−50"]);
    assert.equal((await text(".tick-rate")).length, 6);
    // Messages marked as msgbus-load marks them, sent 5 ms before now by the publisher's clock.
    await page.waitForFunction(() => document.querySelector("#chart") && window.msgbus);
    for (let i = 0; i < 400; i++) {
      const s = await (await fetch(`${server.url}/status.json`)).json();
      if (s.subscribers === 1) break;
    }
    for (let seq = 0; seq < 5; seq++) {
      const ns = (BigInt(Date.now()) - 5n) * 1000000n;
      await publish(server.url, "f", `@@m${seq},${ns};payload`);
    }
    await page.waitForFunction(() => document.getElementById("total").textContent === "5 messages");
    // Within two redraws (one a second) all five are on the chart, in the seconds they came.
    await page.waitForFunction(() => rates.reduce((a, b) => a + b) === 5, null, { timeout: 5000 });
    assert.notEqual(await page.locator("#rate-line").getAttribute("d"), "");
    assert.notEqual(await page.locator("#p50-line").getAttribute("d"), "");
    if (process.env.FLOOD_SHOT) await page.screenshot({ path: process.env.FLOOD_SHOT });
    const latency = await page.locator("#latency").textContent();
    const [, p50, p99] = /^latency p50 (\d+) ms, p99 (\d+) ms$/.exec(latency) || [];
    assert.ok(Number(p50) >= 5 && Number(p99) >= Number(p50), latency);
    assert.ok(Number(await page.locator(".tick-latency").last().textContent()) >= Number(p99), "latency axis covers p99");
  } finally {
    await page.close();
    await server.stop();
  }
});
