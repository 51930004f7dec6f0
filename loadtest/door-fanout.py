#!/usr/bin/env python3
"""One message to N held reads, through each long-poll door, against native long-poll.

Starts a fresh msgbus (release build) with the Simple-Comet and martd doors open, holds N reads
on one channel through one door (Simple-Comet `GET /channels/C.json?since=`, martd
`GET /sub?C=ETAG`, or msgbus's own `GET /msgbus/C?transport=longpoll`), publishes one message,
and measures the wall time until the last read is answered and the server CPU time spent
(utime + stime from /proc) per answer. Every answer is checked to carry the message. Runs each
door RUNS times and prints medians.

    python3 loadtest/door-fanout.py [N] [RUNS]      # default 10000 3

Everything stays on 127.0.0.1; the server is the only process started and is stopped by PID.
"""
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("MSGBUS", os.path.join(ROOT, "target/release/msgbus"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DEADLINE = 60.0  # seconds any one phase may take
MARKER = b"door-fanout-payload"


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


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def subscribers(port):
    body = request(port, b"GET /status.json HTTP/1.0\r\n\r\n").split("\r\n\r\n", 1)[1]
    return json.loads(body)["subscribers"]


def start_server():
    port = free_port()
    proc = subprocess.Popen(
        [BINARY, "-l", "127.0.0.1", "-p", str(port), "--simple-comet", "--martd",
         "--max-per-address", str(N + 100)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            request(port, b"GET /status.json HTTP/1.0\r\n\r\n")
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("msgbus did not start")


def post(port, target, body, content_type="application/x-www-form-urlencoded"):
    raw = (f"POST {target} HTTP/1.1\r\nHost: b\r\nContent-Type: {content_type}\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    return request(port, raw)


def read_target(door, port):
    """Sets the channel up for a door; returns the held read's request."""
    if door == "simple-comet":
        post(port, "/channels.json", b"channel_id=bench")
        answer = post(port, "/channels/bench.json", b"content=first")
        since = json.loads(answer.split("\r\n\r\n", 1)[1])["message_id"]
        return f"GET /channels/bench.json?since={since} HTTP/1.1\r\nHost: b\r\n\r\n"
    if door == "martd":
        answer = post(port, "/pub?channel=bench", b"first", "text/plain")
        etag = json.loads(answer.split("\r\n\r\n", 1)[1])["etag"]
        return f"GET /sub?cid=b&bench={etag} HTTP/1.1\r\nHost: b\r\n\r\n"
    return "GET /msgbus/bench?transport=longpoll HTTP/1.1\r\nHost: b\r\n\r\n"


def one_run(door):
    proc, port = start_server()
    socks = []
    try:
        target = read_target(door, port).encode()
        sel = selectors.DefaultSelector()
        for _ in range(N):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(target)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, bytearray())
        end = time.monotonic() + DEADLINE
        while subscribers(port) < N:
            if time.monotonic() > end:
                raise SystemExit(f"{door}: only {subscribers(port)} of {N} reads held")
            time.sleep(0.05)
        cpu_before = cpu_seconds(proc.pid)
        started = time.monotonic()
        post(port, "/msgbus/bench", MARKER, "text/plain")
        answered = 0
        end = time.monotonic() + DEADLINE
        while answered < N:
            if time.monotonic() > end:
                raise SystemExit(f"{door}: {answered} of {N} answered")
            for key, _ in sel.select(timeout=1):
                buf = key.data
                chunk = key.fileobj.recv(65536)
                buf += chunk
                head, sep, body = bytes(buf).partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                              if l.lower().startswith(b"content-length:")][0])
                if len(body) >= length:
                    if MARKER not in body:
                        raise SystemExit(f"{door}: an answer without the message: {body[:200]!r}")
                    sel.unregister(key.fileobj)
                    answered += 1
        wall = time.monotonic() - started
        cpu = cpu_seconds(proc.pid) - cpu_before
        return wall, cpu
    finally:
        for s in socks:
            s.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def main():
    print(f"one message to {N} held reads, {RUNS} runs each, medians")
    print(f"{'door':<14} {'last answer':>12} {'server CPU/answer':>18}")
    for door in ["native", "simple-comet", "martd"]:
        walls, cpus = [], []
        for _ in range(RUNS):
            wall, cpu = one_run(door)
            walls.append(wall)
            cpus.append(cpu)
        print(f"{door:<14} {statistics.median(walls) * 1000:>9.1f} ms "
              f"{statistics.median(cpus) / N * 1e6:>15.2f} µs")


if __name__ == "__main__":
    main()
