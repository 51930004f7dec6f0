// msgbus.mjs: msgbus.js as an ES module. msgbus.js is the one source; importing it runs it, and it
// leaves its API on globalThis.msgbus, which this re-exports.
import "./msgbus.js";

const msgbus = globalThis.msgbus;
export default msgbus;
export const { subscribe, publish, setBase, setToken } = msgbus;
