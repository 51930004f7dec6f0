// msgbus.js: a browser client for msgbus (API in the README). Reconnects with backoff and
// resumes after the last id delivered: nothing twice, nothing missed unannounced.
(function (global) {
  "use strict";
  var base = "";

  function url(channels, query) {
    var names = [].concat(channels).map(function (c) {
      return c.split("/").map(encodeURIComponent).join("/");
    });
    var q = Object.keys(query).filter(function (k) { return query[k] != null; })
      .map(function (k) { return k + "=" + encodeURIComponent(query[k]); }).join("&");
    return base + "/msgbus/" + names.join(",") + (q ? "?" + q : "");
  }

  function subscribe(channels, onMessage, options) {
    options = options || {};
    var lastId = options.since == null ? null : options.since;
    var order = { sse: ["sse"], ws: ["ws"], longpoll: ["longpoll"] }[options.transport] ||
      ["sse", "ws", "longpoll"].filter(function (t) {
        return t !== "sse" || global.EventSource;
      }).filter(function (t) { return t !== "ws" || global.WebSocket; });
    var closed = false, attempt = 0, failures = 0, current = null, timer = null;

    function state(s) { if (options.onState) options.onState(s); }

    function deliver(msg) {
      if (msg.missed) { if (options.onMissed) options.onMissed(msg.missed); return; }
      if (lastId != null && msg.id <= lastId) return; // already delivered before a reconnect
      lastId = msg.id;
      onMessage(msg);
    }

    function query(extra) {
      var q = { format: "json", since: lastId };
      for (var k in extra) q[k] = extra[k];
      return q;
    }

    // An opener calls up() once open, down() once gone; it returns its closer.
    var openers = {
      sse: function (up, down) {
        var es = new EventSource(url(channels, query({ transport: "sse" })));
        es.onopen = up;
        es.onmessage = function (e) { deliver(JSON.parse(e.data)); };
        es.addEventListener("msgbus-missed", function (e) {
          deliver({ missed: JSON.parse(e.data) });
        });
        es.addEventListener("msgbus-deleted", function () { es.close(); down(true); });
        // EventSource would reconnect by itself, without our backoff or cursor: take over.
        es.onerror = function () { es.close(); down(); };
        return function () { es.close(); };
      },
      ws: function (up, down) {
        var proto = location.protocol === "https:" ? "wss:" : "ws:";
        var ws = new WebSocket(proto + "//" + location.host + url(channels, query({})));
        ws.onopen = up;
        ws.onmessage = function (e) { deliver(JSON.parse(e.data)); };
        ws.onclose = function () { down(); };
        return function () { ws.onclose = null; ws.close(); };
      },
      longpoll: function (up, down) {
        var stopped = false, ctrl = global.AbortController ? new AbortController() : null;
        function poll() {
          var q = query({ transport: "longpoll" });
          if (q.since == null) delete q.since;
          fetch(url(channels, q), { signal: ctrl && ctrl.signal, cache: "no-store" })
            .then(function (r) {
              if (!r.ok) throw new Error(r.status);
              return r.json();
            })
            .then(function (answer) {
              up();
              if (answer.missed) deliver({ missed: answer.missed });
              answer.messages.forEach(deliver);
              if (lastId == null || answer.cursor > lastId) lastId = answer.cursor;
              if (!stopped) poll();
            })
            .catch(function () { if (!stopped) down(); });
        }
        poll();
        return function () { stopped = true; if (ctrl) ctrl.abort(); };
      },
    };

    function open() {
      if (closed) return;
      var transport = order[failures % order.length], wasUp = false, gone = false;
      current = openers[transport](function () {
        if (!wasUp) { wasUp = true; attempt = 0; state("open"); }
      }, function (final) {
        if (gone || closed) return;
        gone = true;
        if (!wasUp) failures++; // this transport did not work here: try the next
        if (final) return close();
        state("reconnecting");
        var delay = Math.min(10000, 250 * Math.pow(2, attempt++)) * (0.5 + Math.random() / 2);
        timer = setTimeout(open, delay);
      });
      sub.transport = transport;
    }

    function close() {
      closed = true;
      clearTimeout(timer);
      if (current) current();
      state("closed");
    }

    var sub = { close: close, lastId: function () { return lastId; } };
    open();
    return sub;
  }

  function publish(channel, body, type) {
    return fetch(url(channel, {}), {
      method: "POST",
      headers: { "Content-Type": type || "text/plain; charset=utf-8", Accept: "application/json" },
      body: body,
    }).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(r.status + " " + t.trim()); });
      return r.json();
    });
  }

  global.msgbus = {
    subscribe: subscribe,
    publish: publish,
    setBase: function (b) { base = b; },
  };
})(typeof window !== "undefined" ? window : this);
