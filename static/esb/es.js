// eventsource-broker's browser client, the ESHQ API, as msgbus serves it at /es.js.
//
//   var es = new ESHQ("chat", { auth_url: "/eshq/socket", presence_id: "alice" });
//   es.onopen = function (e) {};  es.onmessage = function (e) { e.data };
//   es.addEventListener("greet", function (e) { e.data });
//   es.send("hello");  es.close();
//
// The page's own server answers `auth_url` (POST, form `channel=...`) by asking the broker for
// a socket (POST /socket with the api key and a signed token) and passing on its JSON. The
// stream itself runs in a hidden iframe from the broker's origin (/iframe), which talks to this
// script with postMessage in the original client's message format, so either side works with
// the original's other side. The older `eshq.open(channel, options)` / `eshq.send(channel,
// data)` API is kept too.
(function () {
  "use strict";

  // Filled in by the server (--esb-origin); empty: the origin this script was loaded from.
  var configured = "$origin$";
  // A stream that has said nothing (not even its 9 s ping) for this long is opened again.
  var SILENCE_MS = 30000;
  var CHECK_MS = 10000;

  function scriptBase() {
    if (window.ESHQ_ORIGIN) return String(window.ESHQ_ORIGIN).replace(/\/+$/, "");
    if (configured) return configured;
    var script = document.currentScript;
    if (!script) {
      var scripts = document.getElementsByTagName("script");
      script = scripts[scripts.length - 1];
    }
    var src = (script && script.src) || "";
    var at = src.lastIndexOf("/es.js");
    if (at < 0) return window.location.protocol + "//" + window.location.host;
    return src.slice(0, at);
  }

  // Where /iframe is (the broker, possibly under a path), and the origin its messages carry.
  var base = scriptBase();
  var origin = (/^[a-z][a-z0-9+.-]*:\/\/[^\/?#]+/i.exec(base) || [base])[0];

  var channels = {};

  function now() {
    return new Date().getTime();
  }

  function hasOwn(object, name) {
    return Object.prototype.hasOwnProperty.call(object, name);
  }

  function postForm(url, body, headers, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url, true);
    xhr.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
    for (var name in headers) {
      if (!hasOwn(headers, name)) continue;
      var value = headers[name];
      if (value && typeof value.call === "function") value = value();
      xhr.setRequestHeader(name, value);
    }
    xhr.onreadystatechange = function () {
      if (xhr.readyState === 4) done(xhr);
    };
    xhr.send(body);
  }

  function call(handler, event) {
    if (typeof handler === "function") handler.call(null, event);
  }

  // One channel's link to the broker: a socket asked for through auth_url, and the iframe
  // that streams it.
  function Link(es) {
    var old = channels[es.channel];
    if (old) old.close();
    channels[es.channel] = this;
    this.es = es;
    this.listeners = {};
    this.frame = null;
    this.ready = false;
    this.outbox = [];
    this.closed = false;
    this.lastEvent = now();
    var link = this;
    this.timer = setInterval(function () {
      link.check();
    }, CHECK_MS);
    this.connect();
  }

  Link.prototype.connect = function () {
    var link = this;
    var options = this.es.options;
    var body = "channel=" + encodeURIComponent(this.es.channel);
    if (options.presence_id) body += "&presence_id=" + encodeURIComponent(options.presence_id);
    postForm(options.auth_url || "/eshq/socket", body, options.auth_headers || {}, function (xhr) {
      if (link.closed) return;
      var answer = null;
      if (/^20\d$/.test(String(xhr.status))) {
        try {
          answer = JSON.parse(xhr.responseText);
        } catch (e) {
          answer = null;
        }
      }
      if (answer && answer.socket) {
        link.open(answer.socket);
      } else {
        call(link.es.onerror, { type: "error", data: xhr.responseText, status: xhr.status });
      }
    });
  };

  Link.prototype.open = function (socket) {
    this.es.socket_id = socket;
    this.removeFrame();
    var src = base + "/iframe?channel=" + encodeURIComponent(this.es.channel) +
      "&socket=" + encodeURIComponent(socket) + "&t=" + now();
    if (this.es.lastEventId) src += "&last-event-id=" + encodeURIComponent(this.es.lastEventId);
    var frame = document.createElement("iframe");
    frame.setAttribute("style", "display: none;");
    frame.setAttribute("src", src);
    this.frame = frame;
    this.ready = false;
    var attach = function () {
      document.body.appendChild(frame);
    };
    if (document.body) attach();
    else document.addEventListener("DOMContentLoaded", attach, false);
  };

  Link.prototype.removeFrame = function () {
    if (this.frame && this.frame.parentNode) this.frame.parentNode.removeChild(this.frame);
    this.frame = null;
    this.ready = false;
  };

  Link.prototype.toFrame = function (action, data) {
    var text = JSON.stringify({ action: action, data: data });
    if (this.ready && this.frame && this.frame.contentWindow) {
      this.frame.contentWindow.postMessage(text, "*");
    } else {
      this.outbox.push(text);
    }
  };

  Link.prototype.bind = function (type, callback) {
    if (!hasOwn(this.listeners, type)) {
      this.listeners[type] = [];
      if (this.ready) this.toFrame("bind", { type: type });
    }
    this.listeners[type].push(callback);
  };

  // A message from this link's iframe.
  Link.prototype.receive = function (message) {
    var event = message.originalEvent || {};
    if (event.type !== "error") this.lastEvent = now();
    switch (message.eshqEvent) {
      case "open":
        this.ready = true;
        for (var type in this.listeners) {
          if (hasOwn(this.listeners, type)) this.toFrame("bind", { type: type });
        }
        var waiting = this.outbox;
        this.outbox = [];
        for (var i = 0; i < waiting.length; i++) this.frame.contentWindow.postMessage(waiting[i], "*");
        call(this.es.onopen, event);
        break;
      case "message":
        if (event.lastEventId) this.es.lastEventId = event.lastEventId;
        if (!event.type || event.type === "message") {
          call(this.es.onmessage, event);
        } else if (hasOwn(this.listeners, event.type)) {
          var callbacks = this.listeners[event.type].slice();
          for (var j = 0; j < callbacks.length; j++) call(callbacks[j], event);
        }
        break;
      case "error":
        call(this.es.onerror, event);
        break;
      default:
        break; // "ping": only keeps the link alive
    }
  };

  // A link whose stream went silent asks for a new socket (the old one may have expired).
  Link.prototype.check = function () {
    if (this.closed) return;
    if (now() - this.lastEvent > SILENCE_MS) {
      this.lastEvent = now();
      this.connect();
    }
  };

  Link.prototype.close = function () {
    this.closed = true;
    clearInterval(this.timer);
    this.removeFrame();
    if (channels[this.es.channel] === this) delete channels[this.es.channel];
  };

  function ESHQ(channel, options) {
    this.channel = channel;
    this.options = options || {};
    this.link = new Link(this);
  }

  ESHQ.prototype.onopen = null;
  ESHQ.prototype.onmessage = null;
  ESHQ.prototype.onerror = null;

  ESHQ.prototype.addEventListener = function (type, callback) {
    this.link.bind(type, callback);
  };

  // Publishes `data` on the channel (through the iframe, POST /socket/ID).
  ESHQ.prototype.send = function (data) {
    this.link.toFrame("send", data);
  };

  ESHQ.prototype.close = function () {
    this.link.close();
  };

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || typeof event.data !== "string") return;
    var message;
    try {
      message = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!message || !message.eshqEvent || !hasOwn(channels, message.channel)) return;
    var link = channels[message.channel];
    if (!link.frame || event.source !== link.frame.contentWindow) return;
    link.receive(message);
  }, false);

  window.ESHQ = ESHQ;

  // The first client's API: callbacks named open, message and error in the options.
  window.eshq = {
    open: function (channel, options) {
      options = options || {};
      var es = new ESHQ(channel, options);
      es.onopen = options.open || null;
      es.onmessage = options.message || null;
      es.onerror = options.error || null;
      return es;
    },
    send: function (channel, data) {
      if (!hasOwn(channels, channel)) throw "You must open a channel before sending to it";
      channels[channel].toFrame("send", data);
    }
  };
})();
