#!/usr/bin/env python3
"""A stand-in for msgbus that says where it listens, as msgbus does, and then never answers.

Run the suite against it to check that every test fails by name within its deadlines instead
of hanging:

    MSGBUS_TEST_BIN=$PWD/tests/silent_server.py cargo test --no-fail-fast

It binds what it is asked to (-l/-p, --tls-listen, --unix), accepts nothing, reads nothing,
and exits on SIGTERM or SIGINT like any process without handlers.
"""
import os
import socket
import sys
import time


def main(args):
    host, port, tls, unix = "127.0.0.1", "8888", None, None
    i = 0
    while i < len(args):
        flag = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if flag == "-l":
            host, i = value, i + 1
        elif flag == "-p":
            port, i = value, i + 1
        elif flag == "--tls-listen":
            tls, i = value, i + 1
        elif flag == "--unix":
            unix, i = value, i + 1
        i += 1
    held = []

    def tcp(address, port_number):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((address, int(port_number)))
        s.listen(1024)
        held.append(s)
        return "%s:%d" % s.getsockname()

    print("listening on %s" % tcp(host, port), file=sys.stderr, flush=True)
    if tls is not None:
        address, _, tls_port = tls.rpartition(":")
        print("listening (TLS) on %s" % tcp(address, tls_port), file=sys.stderr, flush=True)
    if unix is not None:
        if os.path.exists(unix):
            os.unlink(unix)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(unix)
        s.listen(1024)
        held.append(s)
        print("listening on unix:%s" % unix, file=sys.stderr, flush=True)
    print("up to 1000 connections (open-files limit 1024)", file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
