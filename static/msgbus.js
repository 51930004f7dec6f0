// msgbus.js: the browser client for msgbus (API in the README, types in msgbus.d.ts). One source
// for a classic <script> (window.msgbus) and an ES module (msgbus.mjs re-exports it). Reconnects
// with backoff and resumes after the last id delivered: nothing twice, nothing missed unannounced.
// The tabs of an origin share one connection: the tab holding the Web Lock "msgbus" connects for
// all of them and relays over a BroadcastChannel; without those, each tab connects for itself.
(function (global) {
  "use strict";
  var base = [""], token = null, nextId = 0;
  var tab = Math.random().toString(36).slice(2);
  var mine = {};    // this tab's subscriptions, by id
  var groups = {};  // connections this tab runs: all of them when leader, else unshared ones
  var bc = null, leader = false;

  function url(b, channels, query) {
    var names = [].concat(channels).map(function (c) {
      return c.split("/").map(encodeURIComponent).join("/");
    });
    var q = Object.keys(query).filter(function (k) { return query[k] != null; })
      .map(function (k) { return k + "=" + encodeURIComponent(query[k]); }).join("&");
    return b + "/msgbus/" + names.join(",") + (q ? "?" + q : "");
  }

  // A refusal that asking again will not change (bad token, no grant, no such path, deleted).
  function final(status) { return status >= 400 && status < 500 && status !== 408 && status !== 429; }

  function bearer(t) { return t ? { Authorization: "Bearer " + t } : {}; }

  // One connection to `channels` resuming after `since`, for cfg {base, token, transport}. It
  // tries the bases (a cluster's nodes: one order of ids), then the next transport, until one
  // works, reconnects with backoff, and stops for good on a final refusal. on: message(msg),
  // state(s), transport(name), error({status, reason}).
  function connect(cfg, channels, since, on) {
    var cursor = since, closed = false, attempt = 0, failures = 0, current = null, timer = null;
    var bases = cfg.base, where = bases[0];
    var order = { sse: ["sse"], ws: ["ws"], longpoll: ["longpoll"] }[cfg.transport] ||
      ["sse", "ws", "longpoll"].filter(function (t) {
        return t !== "sse" || global.EventSource;
      }).filter(function (t) { return t !== "ws" || global.WebSocket; });

    function got(msg) {
      if (!msg.missed) {
        if (cursor != null && msg.id <= cursor) return; // already delivered before a reconnect
        cursor = msg.id;
      }
      on.message(msg);
    }

    function link(extra) {
      var q = { format: "json", since: cursor };
      for (var k in extra) q[k] = extra[k];
      return url(where, channels, q);
    }

    // EventSource and WebSocket hide why they failed: ask with fetch, which sees the status.
    function probe(done) {
      if (!global.AbortController) return done();
      var ctrl = new AbortController();
      fetch(link({ transport: "sse", token: cfg.token }), { cache: "no-store", signal: ctrl.signal })
        .then(function (r) {
          if (r.ok) { ctrl.abort(); return done(); }
          return r.text().then(function (t) { done({ status: r.status, reason: t.trim() }); });
        })
        .catch(function () { done(); });
    }

    // An opener calls up() once open, down(refusal?, probe?) once gone; it returns its closer.
    var openers = {
      sse: function (up, down) {
        var es = new EventSource(link({ transport: "sse", token: cfg.token }));
        es.onopen = up;
        es.onmessage = function (e) { got(JSON.parse(e.data)); };
        es.addEventListener("msgbus-missed", function (e) { got({ missed: JSON.parse(e.data) }); });
        es.addEventListener("msgbus-deleted", function () {
          es.close();
          down({ status: 410, reason: "channel deleted" });
        });
        // EventSource would reconnect by itself, without our backoff or cursor: take over.
        es.onerror = function () { es.close(); down(null, true); };
        return function () { es.close(); };
      },
      ws: function (up, down) {
        var ws = new WebSocket(new URL(link({ token: cfg.token }), location.href).href.replace(/^http/, "ws"));
        ws.onopen = up;
        ws.onmessage = function (e) { got(JSON.parse(e.data)); };
        ws.onclose = function () { down(null, true); };
        return function () { ws.onclose = null; ws.close(); };
      },
      longpoll: function (up, down) {
        var stopped = false, ctrl = global.AbortController ? new AbortController() : null;
        function poll() {
          fetch(link({ transport: "longpoll" }), {
            signal: ctrl && ctrl.signal, cache: "no-store", headers: bearer(cfg.token),
          })
            .then(function (r) {
              if (r.ok) return r.json();
              return r.text().then(function (t) { throw { status: r.status, reason: t.trim() }; });
            })
            .then(function (answer) {
              up();
              if (answer.missed) got({ missed: answer.missed });
              answer.messages.forEach(got);
              if (cursor == null || answer.cursor > cursor) cursor = answer.cursor;
              if (!stopped) poll();
            })
            .catch(function (e) { if (!stopped) down(e && e.status ? e : null); });
        }
        poll();
        return function () { stopped = true; if (ctrl) ctrl.abort(); };
      },
    };

    function open() {
      if (closed) return;
      var transport = order[Math.floor(failures / bases.length) % order.length], wasUp = false, gone = false;
      where = bases[failures % bases.length];
      on.transport(transport);
      current = openers[transport](function () {
        if (!wasUp) { wasUp = true; attempt = 0; on.state("open"); }
      }, function (refusal, unexplained) {
        if (gone || closed) return;
        gone = true;
        if (!wasUp) failures++; // not here: try the next base or transport
        var retry = function (refusal) {
          if (closed) return;
          if (refusal && final(refusal.status)) { stop(); return on.error(refusal); }
          on.state("reconnecting");
          var delay = Math.min(10000, 250 * Math.pow(2, attempt++)) * (0.5 + Math.random() / 2);
          timer = setTimeout(open, delay);
        };
        if (unexplained && !wasUp) probe(retry); else retry(refusal);
      });
    }

    function stop() {
      closed = true;
      clearTimeout(timer);
      if (current) current();
    }

    open();
    return { close: stop, cursor: function () { return cursor; } };
  }

  // Whether a subscription to `names` covers `channel` ("a/" is a subtree, "" every channel).
  function covers(names, channel) {
    return names.some(function (n) {
      return n === channel || (n === "" || n.charAt(n.length - 1) === "/") && channel.indexOf(n) === 0;
    });
  }

  // Runs a group's connection: the union of its members' channels, from the earliest point any
  // new member asked for. A member joining with a channel or a past the connection lacks restarts
  // it; the others drop what they already had.
  function reconnect(g) {
    var group = groups[g], channels = [], since = group.link ? group.link.cursor() : null, grow = false;
    for (var id in group.members) {
      var m = group.members[id];
      m.ch.forEach(function (c) { if (channels.indexOf(c) < 0) channels.push(c); });
      if (m.since != null && (since == null || m.since < since)) { since = m.since; grow = true; }
      m.since = null;
    }
    grow = grow || !group.link || channels.some(function (c) { return group.channels.indexOf(c) < 0; });
    if (!grow) return send(group.shared, { t: "state", g: g, s: group.state, tr: group.transport });
    if (group.link) group.link.close();
    group.channels = channels;
    group.link = connect(group.cfg, channels, since, {
      message: function (m) { send(group.shared, { t: "msg", g: g, m: m }); },
      state: function (s) { group.state = s; send(group.shared, { t: "state", g: g, s: s, tr: group.transport }); },
      transport: function (tr) { group.transport = tr; send(group.shared, { t: "state", g: g, tr: tr }); },
      error: function (e) { delete groups[g]; send(group.shared, { t: "error", g: g, e: e }); },
    });
  }

  // Hub messages reach every tab of the origin, this one included; shared ones travel by the
  // BroadcastChannel. join/leave are for whoever runs the group; the rest for its members.
  function send(shared, msg) {
    if (shared && bc) bc.postMessage(msg);
    hear(msg, shared);
  }

  function hear(msg, shared) {
    var group = groups[msg.g];
    if (msg.t === "join" && (leader || !shared)) {
      if (!group) group = groups[msg.g] = { members: {}, cfg: msg.cfg, shared: shared, channels: [] };
      group.members[msg.id] = { ch: msg.ch, since: msg.since };
      // One reconnect for the joins of one task (a microtask: a hidden tab's timers are slowed).
      if (!group.due) {
        group.due = true;
        Promise.resolve().then(function () {
          group.due = false;
          if (groups[msg.g] === group) reconnect(msg.g);
        });
      }
    } else if (msg.t === "leave" && group && group.members[msg.id]) {
      delete group.members[msg.id];
      if (Object.keys(group.members).length) return;
      if (group.link) group.link.close();
      delete groups[msg.g];
    } else if (msg.t === "hello") {
      for (var id in mine) if (mine[id].shared) mine[id].join();
    } else {
      for (var i in mine) if (mine[i].g === msg.g) mine[i].hear(msg);
    }
  }

  // Sharing needs both; without them (an old browser, or plain http:// off localhost, where Web
  // Locks are missing) each tab keeps its own connection.
  function startHub() {
    if (bc !== null) return !!bc;
    bc = false;
    if (!global.BroadcastChannel || !global.navigator || !navigator.locks) return false;
    bc = new BroadcastChannel("msgbus");
    bc.onmessage = function (e) { hear(e.data, true); };
    navigator.locks.request("msgbus", function () {
      leader = true;
      send(true, { t: "hello" }); // every tab joins again, saying how far it got
      return new Promise(function () {}); // lead until this tab goes
    });
    global.addEventListener("pagehide", function () {
      for (var id in mine) if (mine[id].shared) send(true, { t: "leave", g: mine[id].g, id: id });
    });
    global.addEventListener("pageshow", function (e) { if (e.persisted) hear({ t: "hello" }); });
    return true;
  }

  function subscribe(channels, onMessage, options) {
    options = options || {};
    var names = [].concat(channels), lastId = options.since == null ? null : options.since;
    var cfg = {
      base: base,
      token: options.token !== undefined ? options.token : token,
      transport: options.transport || "auto",
    };
    var id = tab + "." + nextId++, shared = options.share !== false && startHub(), state = null;
    var g = shared ? JSON.stringify(cfg) : id;
    var sub = {
      g: g,
      shared: shared,
      lastId: function () { return lastId; },
      close: function () {
        if (!mine[id]) return;
        delete mine[id];
        send(shared, { t: "leave", g: g, id: id });
        setState("closed");
      },
      join: function () { send(shared, { t: "join", g: g, id: id, cfg: cfg, ch: names, since: lastId }); },
      hear: function (msg) {
        if (msg.t === "msg") return receive(msg.m);
        if (msg.t === "state") {
          if (msg.tr) sub.transport = msg.tr;
          if (msg.s) setState(msg.s);
        } else if (msg.t === "error") {
          sub.close();
          if (options.onError) options.onError(msg.e);
        }
      },
    };

    function setState(s) {
      if (s === state) return;
      state = s;
      if (options.onState) options.onState(s);
    }

    function receive(msg) {
      if (msg.missed) {
        // The connection may have started before this subscription's cursor: only news counts.
        var m = msg.missed;
        if (lastId != null && lastId < m.oldest && options.onMissed) {
          options.onMissed({ after: Math.max(m.after, lastId), oldest: m.oldest });
        }
        return;
      }
      if (lastId != null && msg.id <= lastId) return;
      lastId = msg.id;
      if (covers(names, msg.channel)) onMessage(msg);
    }

    mine[id] = sub;
    sub.join();
    return sub;
  }

  // publish(channel, body, type) or publish(channel, body, {type, key, event, token}).
  function publish(channel, body, options) {
    if (typeof options !== "object" || options === null) options = { type: options };
    var headers = bearer(options.token !== undefined ? options.token : token);
    headers["Content-Type"] = options.type || "text/plain; charset=utf-8";
    headers.Accept = "application/json";
    if (options.key != null) headers["Msgbus-Key"] = options.key;
    if (options.event != null) headers["Msgbus-Event"] = options.event;
    return fetch(url(base[0], channel, {}), { method: "POST", headers: headers, body: body })
      .then(function (r) {
        if (r.ok) return r.json();
        return r.text().then(function (t) {
          var e = new Error(r.status + " " + t.trim());
          e.status = r.status;
          throw e;
        });
      });
  }

  var api = {
    subscribe: subscribe,
    publish: publish,
    setBase: function (b) {
      base = (b && b.length ? [].concat(b) : [""]).map(function (s) { return String(s).replace(/\/+$/, ""); });
    },
    setToken: function (t) { token = t || null; },
  };
  global.msgbus = api;
  if (typeof module === "object" && module && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this);
