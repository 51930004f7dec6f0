// A martd-compatible browser client, served by msgbus at /client.js when the martd door is
// open (--martd). Pages written for martd's own /client.js keep working:
//
//   var s = martd.sub("news", function (payload) { ... }, etag);  // etag: optional, default 0
//   s.cancel();
//   martd.pub("news", size, life, one2one, key, "hello", function (text, xhr) { ... });
//
// martd.SERVER (default: this origin), martd.cid, martd.channels (name -> { name, etag,
// callbacks }), martd.request (the running /sub's XMLHttpRequest, or null) and the gid of a
// subscription (a GUID string) are as martd's client had them. Unlike martd's, this
// client URL-encodes channel names, backs off after an error instead of retrying at once,
// aborts the pending request when cancel() leaves it with nothing to wait for, sends no
// Content-Type on GET (so a cross-origin page needs no preflight), and leaves out the /pub
// parameters it was not given (martd read "undefined" as an invalid number).
(function (root) {
  "use strict";
  var martd = root.martd || (root.martd = {});
  if (martd.SERVER === undefined) martd.SERVER = "";
  function s4() {
    return Math.floor((1 + Math.random()) * 0x10000).toString(16).substring(1);
  }
  function guid() {
    return s4() + s4() + "-" + s4() + "-" + s4() + "-" + s4() + "-" + s4() + s4() + s4();
  }
  martd.cid = guid();
  // name -> { name, etag, callbacks: { gid: fn } }
  martd.channels = {};
  martd.request = null; // the XMLHttpRequest of the running /sub
  martd.ever_bumped = false;
  martd.forcing_close = false; // martd's way to redo a /sub; this client redoes it at once

  var pendingNames = ""; // the channels it names, to know when it must be redone
  var timer = null;
  var failures = 0;

  function listened() {
    var names = [];
    for (var name in martd.channels) {
      for (var gid in martd.channels[name].callbacks) {
        names.push(name);
        break;
      }
    }
    return names;
  }

  function stop() {
    if (martd.request) {
      var req = martd.request;
      martd.request = null;
      req.abort();
    }
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
  }

  // Redoes the /sub when the set of channels changed; a message answered to the aborted one
  // is asked for again, since its etag was not moved.
  function refresh() {
    if (listened().join("\n") === pendingNames && (martd.request || timer)) return;
    stop();
    bump();
  }

  function later(ms) {
    timer = setTimeout(function () {
      timer = null;
      bump();
    }, ms);
  }

  function deliver(resp) {
    for (var name in resp.channels) {
      var channel = martd.channels[name];
      var data = resp.channels[name];
      if (!channel || !data) continue;
      channel.etag = data.etag;
      var payload = data.payload || [];
      for (var i = 0; i < payload.length; i++) {
        var gids = Object.keys(channel.callbacks);
        for (var k = 0; k < gids.length; k++) {
          var callback = channel.callbacks[gids[k]];
          if (callback) callback(payload[i]);
        }
      }
    }
  }

  function bump() {
    var names = listened();
    pendingNames = names.join("\n");
    if (!names.length) return;
    var url = martd.SERVER + "/sub?cid=" + encodeURIComponent(martd.cid);
    for (var i = 0; i < names.length; i++) {
      url += "&" + encodeURIComponent(names[i]) + "=" + encodeURIComponent(martd.channels[names[i]].etag);
    }
    var req = new XMLHttpRequest();
    martd.request = req;
    req.open("GET", url, true);
    req.onreadystatechange = function () {
      if (req.readyState !== 4 || martd.request !== req) return;
      martd.request = null;
      var resp = null;
      if (req.status === 200) {
        try {
          resp = JSON.parse(req.responseText);
        } catch (e) {
          resp = null;
        }
      }
      if (!resp || !resp.channels) {
        failures++;
        if (req.responseText && root.console) root.console.log("martd: " + req.responseText);
        later(Math.min(30000, 1000 * Math.pow(2, failures - 1)));
        return;
      }
      failures = 0;
      deliver(resp);
      later(0);
    };
    req.send();
  }

  martd.sub = function (name, callback, etag) {
    var channel = martd.channels[name];
    var idle = !channel || !Object.keys(channel.callbacks).length;
    if (!channel) channel = martd.channels[name] = { name: name, etag: 0, callbacks: {} };
    if (idle && etag !== undefined && etag !== null) channel.etag = etag;
    var gid = guid();
    while (channel.callbacks[gid]) gid = guid();
    channel.callbacks[gid] = callback;
    martd.ever_bumped = true;
    refresh();
    return {
      gid: gid,
      cancel: function () {
        delete channel.callbacks[gid];
        refresh();
      },
    };
  };

  martd.pub = function (name, size, life, one2one, key, payload, callback) {
    var url = martd.SERVER + "/pub?channel=" + encodeURIComponent(name);
    var params = { size: size, life: life, one2one: one2one, key: key };
    for (var p in params) {
      if (params[p] !== undefined && params[p] !== null) {
        url += "&" + p + "=" + encodeURIComponent(params[p]);
      }
    }
    var req = new XMLHttpRequest();
    req.open(payload ? "POST" : "GET", url, true);
    req.onreadystatechange = function () {
      if (req.readyState === 4 && callback) callback(req.responseText, req);
    };
    if (payload) {
      req.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
      req.send(payload);
    } else {
      req.send();
    }
  };
})(typeof window !== "undefined" ? window : this);
