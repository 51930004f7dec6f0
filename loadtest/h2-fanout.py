#!/usr/bin/env python3
"""SSE fan-out over HTTP/2 against HTTP/1.1: server CPU per delivery and memory per idle subscriber.

Starts a fresh msgbus (release build) for each run, opens N SSE subscribers on one channel, either
each on its own HTTP/1.1 connection or as streams spread over C HTTP/2 connections (cleartext,
prior knowledge; the client opens its windows wide at the start, so flow control never waits),
reads the server's resident memory before and after (VmRSS from /proc), publishes M messages and
reads until every subscriber has every one, and takes the server CPU time (utime + stime) per
delivery. Then, with no subscriber, `h2load` publishes P messages over one HTTP/2 connection, 50
streams at a time. Runs RUNS times and prints medians.

    python3 loadtest/h2-fanout.py [N] [C] [M] [RUNS]    # default 10000 100 20 3

Needs Python's h2 package (for its hpack encoder) and h2load (nghttp2-client). Everything stays on
127.0.0.1; the server is the only process started besides h2load and is stopped by PID.
"""
import json
import os
import re
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import hpack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("MSGBUS", os.path.join(ROOT, "target/release/msgbus"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
C = int(sys.argv[2]) if len(sys.argv) > 2 else 100
M = int(sys.argv[3]) if len(sys.argv) > 3 else 20
RUNS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
P = 20000
DEADLINE = 120.0  # seconds any one phase may take
MARKER = b"h2-fanout-payload"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode("latin1")
            out += chunk


def status(port):
    return json.loads(request(port, b"GET /status.json HTTP/1.0\r\n\r\n").split("\r\n\r\n", 1)[1])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def start_server():
    port = free_port()
    proc = subprocess.Popen(
        [BINARY, "-l", "127.0.0.1", "-p", str(port), "--max-per-address", str(N + 1000)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            status(port)
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("msgbus did not start")


def open_h1(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /msgbus/fan HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n")
    return s, 1


def open_h2(port, streams):
    s = socket.create_connection(("127.0.0.1", port))
    enc = hpack.Encoder()
    out = PREFACE + frame(4, 0, 0, struct.pack(">HI", 4, (1 << 31) - 1))
    out += frame(8, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535))
    fields = [(":method", "GET"), (":scheme", "http"), (":path", "/msgbus/fan"), (":authority", "b"),
              ("accept", "text/event-stream")]
    for i in range(streams):
        out += frame(1, 0x4 | 0x1, 1 + 2 * i, enc.encode(fields))
    s.sendall(out)
    return s, streams


def one_run(mode):
    proc, port = start_server()
    socks = []
    try:
        rss_before = rss_kib(proc.pid)
        if mode == "h1":
            for _ in range(N):
                socks.append(open_h1(port))
        else:
            for i in range(C):
                socks.append(open_h2(port, N // C + (1 if i < N % C else 0)))
        sel = selectors.DefaultSelector()
        for s, subs in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, [subs, 0, b""])
        end = time.monotonic() + DEADLINE
        while status(port)["subscribers"] < N:
            # Drain what arrives meanwhile (heads, SETTINGS) so no socket buffer fills.
            for key, _ in sel.select(timeout=0.05):
                key.fileobj.recv(1 << 20)
            if time.monotonic() > end:
                raise SystemExit(f"{mode}: only {status(port)['subscribers']} of {N} subscribed")
        # Settled: what the server holds for N idle subscribers.
        for key, _ in sel.select(timeout=0.2):
            key.fileobj.recv(1 << 20)
        rss_after = rss_kib(proc.pid)
        cpu_before = cpu_seconds(proc.pid)
        body = b"x" * 40 + MARKER
        for _ in range(M):
            request(port, b"POST /msgbus/fan HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body))
        done = 0
        end = time.monotonic() + DEADLINE
        while done < len(socks):
            if time.monotonic() > end:
                raise SystemExit(f"{mode}: {done} of {len(socks)} connections got every message")
            for key, _ in sel.select(timeout=1):
                state = key.data
                data = state[2] + key.fileobj.recv(1 << 20)
                state[1] += data.count(MARKER)
                state[2] = data[-len(MARKER):]
                if state[1] >= state[0] * M:
                    sel.unregister(key.fileobj)
                    done += 1
        cpu = cpu_seconds(proc.pid) - cpu_before
        return cpu / (N * M), (rss_after - rss_before) * 1024 / N
    finally:
        for s, _ in socks:
            s.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def publish_rate():
    proc, port = start_server()
    try:
        with tempfile.NamedTemporaryFile() as body:
            body.write(b"a message")
            body.flush()
            out = subprocess.run(
                ["h2load", "-n", str(P), "-c", "1", "-m", "50", "-d", body.name,
                 "-H", "Content-Type: text/plain", f"http://127.0.0.1:{port}/msgbus/rate"],
                capture_output=True, text=True, timeout=DEADLINE, check=True,
            ).stdout
        if f"{P} succeeded" not in out:
            raise SystemExit(out)
        return float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"{N} SSE subscribers, {M} messages, {RUNS} runs each, medians")
    print(f"{'':<34} {'server CPU/delivery':>20} {'RSS/idle subscriber':>20}")
    for mode, label in [("h1", f"HTTP/1.1, {N} connections"), ("h2", f"HTTP/2, {C} connections")]:
        cpus, rss = [], []
        for _ in range(RUNS):
            cpu, mem = one_run(mode)
            cpus.append(cpu)
            rss.append(mem)
        print(f"{label:<34} {statistics.median(cpus) * 1e9:>17.0f} ns {statistics.median(rss):>14.0f} bytes")
    rates = [publish_rate() for _ in range(RUNS)]
    print(f"publish rate, h2load, 1 connection, 50 streams: {statistics.median(rates):.0f} req/s")


if __name__ == "__main__":
    main()
