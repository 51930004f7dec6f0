// The broker side of eventsource-broker's browser client, as msgbus serves it at /iframe.js
// (loaded by /iframe, which es.js opens hidden with ?channel=...&socket=...). It streams
// /eventsource?socket=... and passes each event to the embedding page, and publishes what the
// page sends, in the original client's message format:
//   to the page:   {"eshqEvent": "open"|"message"|"error"|"ping", "channel": C,
//                   "originalEvent": {"data": ..., "lastEventId": ..., "type": ...}}
//   from the page: {"action": "bind", "data": {"type": NAME}} (pass on events named NAME)
//                  {"action": "send", "data": TEXT}          (POST /socket/ID, form data=TEXT)
//                  or a bare string, which the first client sent: published as it is.
(function () {
  "use strict";

  function param(name) {
    var found = new RegExp("[?&]" + name + "=([^&#]*)").exec(window.location.search);
    if (!found) return null;
    try {
      return decodeURIComponent(found[1]);
    } catch (e) {
      return found[1];
    }
  }

  var channel = param("channel");
  var socket = param("socket") || "";
  var lastId = param("last-event-id");
  // The broker's paths, also when it is served under a path prefix (or as /static/iframe.html).
  var base = window.location.pathname.replace(/\/(static\/)?[^\/]*$/, "");
  var source = null;
  var bound = {};

  function tell(kind, event) {
    parent.postMessage(JSON.stringify({
      eshqEvent: kind,
      channel: channel,
      originalEvent: { data: event.data, lastEventId: event.lastEventId, type: event.type }
    }), "*");
  }

  function publish(data) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", base + "/socket/" + encodeURIComponent(socket), true);
    xhr.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
    var text = typeof data === "string" ? data : JSON.stringify(data);
    xhr.send("data=" + encodeURIComponent(text));
  }

  // Events named `type` go to the page too (plain messages always do).
  function bind(type) {
    if (type === "message" || Object.prototype.hasOwnProperty.call(bound, type)) return;
    bound[type] = true;
    if (source) listen(type);
  }

  function listen(type) {
    source.addEventListener(type, function (event) {
      tell("message", event);
    }, false);
  }

  function open() {
    var url = base + "/eventsource?socket=" + encodeURIComponent(socket);
    if (lastId) url += "&last-event-id=" + encodeURIComponent(lastId);
    source = new EventSource(url);
    source.onopen = function (event) {
      tell("open", event);
    };
    source.onerror = function (event) {
      tell("error", event);
    };
    source.onmessage = function (event) {
      tell("message", event);
    };
    source.addEventListener("ping", function () {
      tell("ping", {});
    }, false);
    for (var type in bound) {
      if (Object.prototype.hasOwnProperty.call(bound, type)) listen(type);
    }
  }

  window.addEventListener("message", function (event) {
    if (event.source !== parent) return;
    var message = null;
    try {
      message = JSON.parse(event.data);
    } catch (e) {
      message = null;
    }
    if (message && message.action === "send") {
      publish(message.data);
    } else if (message && message.action === "bind") {
      if (message.data && typeof message.data.type === "string") bind(message.data.type);
    } else if (typeof event.data === "string") {
      publish(event.data);
    }
  }, false);

  // After the load event, so that the browser shows no endless loading indicator.
  setTimeout(open, 0);
})();
