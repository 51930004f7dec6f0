"""HTTP/2 edge cases against a running msgbus, driven by tests/http2_edges.rs.

Usage: http2_edges.py CASE PORT. Frames are written by hand (with the `hpack` encoder that comes
with Python's `h2` package) because the cases break rules a well-behaved client library will
not. Prints one line saying what the server did; every read is bounded by a timeout.
"""

import socket
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1
DEADLINE = 10.0


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class Client:
    def __init__(self, port, settings=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.enc = hpack.Encoder()
        self.buf = b""
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data):
        self.sock.sendall(data)

    def block(self, path, extra=()):
        fields = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "t")]
        return self.enc.encode(fields + list(extra))

    def request(self, stream, path, extra=(), end_stream=True):
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        self.send(frame(HEADERS, flags, stream, self.block(path, extra)))

    def read_frame(self, until):
        """The next frame, or None at EOF or when `until` (a time) passes."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = until - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                more = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                return None
            if not more:
                return None
            self.buf += more
        length = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = self.buf[9 : 9 + length]
        self.buf = self.buf[9 + length :]
        return kind, flags, stream, payload

    def wait_for(self, want, seconds=DEADLINE):
        """Frames until one for which want(frame) is true; that frame, or None."""
        until = time.monotonic() + seconds
        while True:
            f = self.read_frame(until)
            if f is None or want(f):
                return f

    def goaway(self):
        f = self.wait_for(lambda f: f[0] == GOAWAY)
        if f is None:
            return "no GOAWAY"
        code = int.from_bytes(f[3][4:8], "big")
        return "GOAWAY %d %s" % (code, f[3][8:].decode())


def publish(port, channel, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.sendall(
        b"POST /msgbus/%s HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
        % (channel.encode(), len(body), body)
    )
    answer = b""
    while True:
        more = s.recv(4096)
        if not more:
            break
        answer += more
    s.close()
    return answer


def subscribers(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.sendall(b"GET /status.json HTTP/1.0\r\n\r\n")
    answer = b""
    while True:
        more = s.recv(65536)
        if not more:
            break
        answer += more
    text = answer.decode()
    at = text.index('"subscribers":') + len('"subscribers":')
    return int(text[at:].split(",")[0].split("}")[0])


def wait_subscribers(port, n):
    until = time.monotonic() + DEADLINE
    for _ in range(10000):
        if subscribers(port) == n:
            return
        if time.monotonic() > until:
            break
        time.sleep(0.01)
    raise SystemExit("subscribers never reached %d" % n)


def rapid_reset(port):
    c = Client(port)
    for i in range(500):
        stream = 1 + 2 * i
        c.request(stream, "/msgbus/rr", [("accept", "text/event-stream")])
        c.send(frame(RST_STREAM, 0, stream, struct.pack(">I", 8)))
    print(c.goaway())


def ping_flood(port):
    c = Client(port)
    c.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(1000)))
    print(c.goaway())


def settings_flood(port):
    c = Client(port)
    c.send(b"".join(frame(SETTINGS, 0, 0) for _ in range(1000)))
    print(c.goaway())


def continuation_flood(port):
    c = Client(port)
    block = c.block("/msgbus/cf")
    c.send(frame(HEADERS, END_STREAM, 1, block) + b"".join(frame(CONTINUATION, 0, 1, b"") for _ in range(1000)))
    print(c.goaway())


def stream_id_reuse(port):
    c = Client(port)
    c.request(3, "/status.json")
    c.wait_for(lambda f: f[0] == DATA and f[1] & END_STREAM and f[2] == 3)
    c.request(1, "/status.json")
    print(c.goaway())


def too_many_streams(port):
    """Opens one stream more than the limit (argument 3, default 128) allows."""
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    c = Client(port)
    for i in range(limit + 1):
        c.request(1 + 2 * i, "/msgbus/many", [("accept", "text/event-stream")])
    f = c.wait_for(lambda f: f[0] == RST_STREAM)
    print("RST_STREAM %d on %d" % (int.from_bytes(f[3], "big"), f[2]) if f else "no RST_STREAM")


def streams_past_the_connection_limit(port):
    """Two connections with three held streams each, the server run with --max-connections 5:
    streams count against that limit too, so the sixth stream in all is refused."""
    a = Client(port)
    for i in range(3):
        a.request(1 + 2 * i, "/msgbus/limit", [("accept", "text/event-stream")])
    heads = 0
    while heads < 3:
        f = a.wait_for(lambda f: f[0] in (HEADERS, RST_STREAM, GOAWAY))
        if f is None or f[0] != HEADERS:
            print("first connection: %s" % ("nothing" if f is None else "frame %d" % f[0]))
            return
        heads += 1
    b = Client(port)
    for i in range(3):
        b.request(1 + 2 * i, "/msgbus/limit", [("accept", "text/event-stream")])
    f = b.wait_for(lambda f: f[0] == RST_STREAM)
    print("RST_STREAM %d on %d" % (int.from_bytes(f[3], "big"), f[2]) if f else "no RST_STREAM")


def header_list_too_large(port):
    c = Client(port)
    c.request(1, "/msgbus/big", [("x-big", "v" * 10000)])
    f = c.wait_for(lambda f: f[0] == HEADERS and f[2] == 1)
    print(hpack.Decoder().decode(f[3]) if f else "no HEADERS")


def zero_window(port):
    """Stream windows start at 0: an SSE stream gets its head but no data until its window is
    opened; one stream's window opened leaves the other's shut; the shut one is reset at the
    write timeout while the connection goes on."""
    c = Client(port, settings=struct.pack(">HI", 4, 0))
    c.request(1, "/msgbus/zw", [("accept", "text/event-stream")])
    c.request(3, "/msgbus/zw", [("accept", "text/event-stream")])
    wait_subscribers(port, 2)
    publish(port, "zw", b"held back")
    heads = set()
    # A short look: both streams have been waiting since their heads, and the write timeout
    # (2 s in the test) runs for both until a window opens.
    until = time.monotonic() + 0.3
    while True:
        f = c.read_frame(until)
        if f is None:
            break
        if f[0] == HEADERS:
            heads.add(f[2])
        if f[0] == DATA and f[3]:
            print("DATA with a shut window on %d" % f[2])
            return
    c.send(frame(WINDOW_UPDATE, 0, 3, struct.pack(">I", 1 << 20)))
    got = b""
    while b"held back" not in got:
        f = c.wait_for(lambda f: f[0] in (DATA, RST_STREAM))
        if f is None or f[0] == RST_STREAM:
            print("stream 3 got no data (%s)" % (f and "RST_STREAM on %d" % f[2]))
            return
        if f[2] != 3:
            print("DATA on %d" % f[2])
            return
        got += f[3]
    f = c.wait_for(lambda f: f[0] in (DATA, RST_STREAM, GOAWAY))
    if f is None:
        print("stream 1 never reset")
        return
    kind = {DATA: "DATA", RST_STREAM: "RST_STREAM", GOAWAY: "GOAWAY"}[f[0]]
    c.send(frame(PING, 0, 0, b"stillok!"))
    pong = c.wait_for(lambda f: f[0] == PING and f[1] & ACK)
    data = [line for line in got.split(b"\n") if line.startswith(b"data: ")]
    code = int.from_bytes(f[3][:4], "big") if f[0] == RST_STREAM else -1
    print(
        "heads %s, stream 3 got %s, then %s %d on %d, ping %s"
        % (sorted(heads), data[0].decode(), kind, code, f[2], pong[3].decode() if pong else "lost")
    )


def goaway_on_signal(port):
    """Prints "ready" once an SSE stream is open, then what the server does when the test
    signals it: GOAWAY (code, last stream), then whether the stream ends (shutdown: after a
    reconnection delay) or goes on (reload: the connection still answers a PING)."""
    c = Client(port)
    c.request(1, "/msgbus/sig", [("accept", "text/event-stream")])
    c.wait_for(lambda f: f[0] == DATA and f[2] == 1)
    print("ready", flush=True)
    f = c.wait_for(lambda f: f[0] == GOAWAY)
    if f is None:
        print("no GOAWAY")
        return
    last = int.from_bytes(f[3][:4], "big")
    code = int.from_bytes(f[3][4:8], "big")
    got = b""
    until = time.monotonic() + 1.0
    ended = False
    while not ended:
        g = c.read_frame(until)
        if g is None:
            break
        if g[0] == DATA and g[2] == 1:
            got += g[3]
            ended = bool(g[1] & END_STREAM)
    if ended:
        retry = got.split(b"\n")[0].split(b":")[0].decode()
        print("GOAWAY %d last %d, stream 1 ended after %s" % (code, last, retry))
        return
    c.send(frame(PING, 0, 0, b"still on"))
    pong = c.wait_for(lambda f: f[0] == PING and f[1] & ACK)
    print("GOAWAY %d last %d, stream 1 open, ping %s" % (code, last, pong[3].decode() if pong else "lost"))


def ws_frame(opcode, payload, mask=b"\x01\x02\x03\x04"):
    """A client's (masked) WebSocket frame, payload under 126 bytes."""
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def websocket(port):
    """WebSocket over a stream (RFC 8441): the server offers extended CONNECT; the stream gets
    200, a published message as a text frame, its own message back (a socket on one channel
    publishes to it), and a close answered by a close and the stream's end."""
    c = Client(port)
    f = c.wait_for(lambda f: f[0] == SETTINGS and not f[1] & ACK)
    offered = dict(struct.unpack(">HI", f[3][i : i + 6]) for i in range(0, len(f[3]), 6))
    fields = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":path", "/msgbus/wsh2"),
        (":authority", "t"),
        ("sec-websocket-version", "13"),
    ]
    c.send(frame(HEADERS, END_HEADERS, 1, c.enc.encode(fields)))
    head = c.wait_for(lambda f: f[0] == HEADERS and f[2] == 1)
    status = dict(hpack.Decoder().decode(head[3]))[":status"] if head else "none"
    wait_subscribers(port, 1)
    publish(port, "wsh2", b"over h2")

    def text_frame():
        got = b""
        while len(got) < 2 or len(got) < 2 + (got[1] & 0x7F):
            f = c.wait_for(lambda f: f[0] in (DATA, RST_STREAM) and f[2] == 1)
            if f is None or f[0] == RST_STREAM:
                return "nothing"
            got += f[3]
        return "%02x %s" % (got[0], got[2 : 2 + (got[1] & 0x7F)].decode())

    first = text_frame()
    c.send(frame(DATA, 0, 1, ws_frame(0x1, b"from ws")))
    echoed = text_frame()
    c.send(frame(DATA, 0, 1, ws_frame(0x8, struct.pack(">H", 1000))))
    closed = c.wait_for(lambda f: f[0] == DATA and f[2] == 1 and f[3][:1] == b"\x88")
    ended = closed is not None and (
        closed[1] & END_STREAM or c.wait_for(lambda f: f[0] == DATA and f[2] == 1 and f[1] & END_STREAM)
    )
    print(
        "ENABLE_CONNECT_PROTOCOL %s, status %s, got %s, then %s, close %s"
        % (offered.get(8), status, first, echoed, "and end" if ended else "missing")
    )


def slow_stream(port):
    """One stream never opens its window, another reads everything: past --max-queue the slow
    one alone is dropped (close policy), the other gets every message."""
    c = Client(port, settings=struct.pack(">HI", 4, 0))
    c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30)))
    c.request(1, "/msgbus/slow", [("accept", "text/event-stream")])
    c.request(3, "/msgbus/slow", [("accept", "text/event-stream")])
    wait_subscribers(port, 2)
    c.send(frame(WINDOW_UPDATE, 0, 3, struct.pack(">I", 1 << 30)))
    body = b"m" * 1000
    for _ in range(50):
        publish(port, "slow", body)
    got = 0
    reset = None
    until = time.monotonic() + DEADLINE
    while got < 50 or reset is None:
        f = c.read_frame(until)
        if f is None:
            break
        if f[0] == DATA and f[2] == 3:
            got += f[3].count(b"data: " + body)
        if f[0] == RST_STREAM:
            reset = "RST_STREAM %d on %d" % (int.from_bytes(f[3], "big"), f[2])
    print("stream 3 got %d, %s" % (got, reset))


def slow_upload(port):
    """A body that comes slower than --head-timeout: with a declared length the session reads
    it under the body timeout and publishes it; without one it must be whole within the head
    timeout, and is answered 408."""
    c = Client(port)
    statuses = []
    for stream, length in [(1, [("content-length", "10")]), (3, [])]:
        fields = [(":method", "POST"), (":scheme", "http"), (":path", "/msgbus/up"), (":authority", "t"),
                  ("content-type", "text/plain")] + length
        c.send(frame(HEADERS, END_HEADERS, stream, c.enc.encode(fields)))
        time.sleep(1.0)  # past the head timeout on purpose: what is tested is waiting
        c.send(frame(DATA, 0, stream, b"01234") + frame(DATA, END_STREAM, stream, b"56789"))
        f = c.wait_for(lambda f: f[0] in (HEADERS, RST_STREAM) and f[2] == stream)
        statuses.append(dict(hpack.Decoder().decode(f[3]))[":status"] if f and f[0] == HEADERS else "none")
    print("statuses %s" % " ".join(statuses))


def settings(port):
    """What the server advertises: its SETTINGS in the order sent, and the connection window's
    raise that follows."""
    c = Client(port)
    f = c.wait_for(lambda f: f[0] == SETTINGS and not f[1] & ACK)
    params = " ".join("%d=%d" % struct.unpack(">HI", f[3][i : i + 6]) for i in range(0, len(f[3]), 6))
    w = c.wait_for(lambda f: f[0] == WINDOW_UPDATE and f[2] == 0)
    print("SETTINGS %s, WINDOW_UPDATE %s" % (params, int.from_bytes(w[3], "big") if w else "none"))


def stream_window(port):
    """Half the stream window we were given, sent as a body, is granted back at once."""
    c = Client(port)
    f = c.wait_for(lambda f: f[0] == SETTINGS and not f[1] & ACK)
    window = dict(struct.unpack(">HI", f[3][i : i + 6]) for i in range(0, len(f[3]), 6))[4]
    fields = [(":method", "POST"), (":scheme", "http"), (":path", "/msgbus/win"), (":authority", "t"),
              ("content-type", "text/plain"), ("content-length", str(window))]
    c.send(frame(HEADERS, END_HEADERS, 1, c.enc.encode(fields)))
    half = window // 2
    c.send(b"".join(frame(DATA, 0, 1, b"w" * min(16384, half - at)) for at in range(0, half, 16384)))
    w = c.wait_for(lambda f: f[0] == WINDOW_UPDATE and f[2] == 1, seconds=2)
    print("window %d, granted %s after %d" % (window, int.from_bytes(w[3], "big") if w else "nothing", half))


def hpack_table(port):
    """A table size below the default binds once our SETTINGS are acknowledged: a block that
    does not shrink the table then, or that grows it past the size, ends the connection; one
    that shrinks it is answered."""
    outcomes = []
    for prefix in [b"", b"\x3f\xe1\x01", b"\x3f\xe1\x1f"]:
        c = Client(port)
        c.wait_for(lambda f: f[0] == SETTINGS and not f[1] & ACK)
        c.send(frame(SETTINGS, ACK, 0))
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, prefix + c.block("/status.json")))
        f = c.wait_for(lambda f: f[0] == GOAWAY or (f[0] == HEADERS and f[2] == 1))
        if f is None:
            outcomes.append("nothing")
        elif f[0] == GOAWAY:
            outcomes.append("GOAWAY %d" % int.from_bytes(f[3][4:8], "big"))
        else:
            outcomes.append("status %s" % dict(hpack.Decoder().decode(f[3]))[":status"])
    print(", ".join(outcomes))


CASES = {
    f.__name__: f
    for f in [
        rapid_reset,
        ping_flood,
        settings_flood,
        continuation_flood,
        stream_id_reuse,
        too_many_streams,
        streams_past_the_connection_limit,
        header_list_too_large,
        zero_window,
        goaway_on_signal,
        websocket,
        slow_stream,
        slow_upload,
        settings,
        stream_window,
        hpack_table,
    ]
}

if __name__ == "__main__":
    CASES[sys.argv[1]](int(sys.argv[2]))
