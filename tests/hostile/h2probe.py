#!/usr/bin/env python3
"""A raw HTTP/2 client (Python's `h2`) for the hostile-client tests: it sends what a
well-behaved gRPC library never would, and reports what the server did, as one JSON
object on stdout. Loopback only; every loop is bounded in count and time.

    h2probe.py call ADDR PATH [--payload HEX] [--timeout 2S] [--encoding gzip] [--flag 1]
               [--wait SECONDS]
        One call. Prints {"status", "message", "details_b64", "elapsed_ms", "messages"}
        (status -1: no status within --wait seconds).
    h2probe.py stall ADDR PATH --calls N --hold SECONDS
        Opens N calls that send headers and never their message, answers pings, and holds
        the connection for SECONDS. Prints {"opened", "answered", "reset", "goaway"}.
    h2probe.py unread ADDR PATH --payload HEX [--payload HEX...] --calls N --connections C
                      --hold SECONDS
        Opens N calls spread over C connections whose receive window is 0 (their requests
        taking the payloads in turn), sends each request whole, and never reads an answer; holds them for SECONDS (printing
        {"ready": true} once all are sent, on stderr), then prints {"opened", "headers"}.
    h2probe.py rapid-reset ADDR PATH --count N
        HEADERS then RST_STREAM for N new streams, written in one burst (CVE-2023-44487).
        Prints {"sent", "goaway", "error_code", "seconds"}.
"""

import argparse
import base64
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def connect(addr, window=None):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    sock.sendall(conn.data_to_send())
    return sock, conn


def request_headers(addr, path, timeout=None, encoding=None):
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", addr),
        (":path", path),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if timeout:
        headers.append(("grpc-timeout", timeout))
    if encoding:
        headers.append(("grpc-encoding", encoding))
    return headers


def frame(payload, flag=0):
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


def pump(sock, conn, until, deadline):
    """Reads events until `until(event)` is true or `deadline` passes; returns events."""
    seen = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, min(1.0, deadline - time.monotonic())))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            seen.append("closed")
            return seen
        if not data:
            seen.append("closed")
            return seen
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            seen.append("closed")
            return seen
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
        for event in events:
            seen.append(event)
            if isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if until(event):
                return seen
    return seen


def status_of(headers):
    fields = dict(headers)
    return {
        "status": int(fields.get("grpc-status", "-1")),
        "message": fields.get("grpc-message", ""),
        "details_b64": fields.get("grpc-status-details-bin", ""),
    }


def call(args):
    sock, conn = connect(args.addr)
    started = time.monotonic()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream, request_headers(args.addr, args.path, args.timeout, args.encoding)
    )
    conn.send_data(stream, frame(bytes.fromhex(args.payload), args.flag), end_stream=True)
    sock.sendall(conn.data_to_send())
    result = {"status": -1, "message": "", "details_b64": "", "messages": 0}
    messages = 0
    received = bytearray()

    def done(event):
        nonlocal messages, received
        if isinstance(event, h2.events.DataReceived):
            # Count whole gRPC messages (5-byte prefix, then the message), however the
            # DATA frames cut them.
            received += event.data
            while len(received) >= 5:
                size = int.from_bytes(received[1:5], "big")
                if len(received) < 5 + size:
                    break
                del received[: 5 + size]
                messages += 1
        if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
            got = status_of(event.headers)
            if got["status"] >= 0:
                result.update(got)
                return True
        return isinstance(event, h2.events.StreamReset)

    pump(sock, conn, done, started + args.wait)
    result["messages"] = messages
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    print(json.dumps(result))


def stall(args):
    sock, conn = connect(args.addr)
    opened = 0
    for _ in range(args.calls):
        stream = conn.get_next_available_stream_id()
        try:
            conn.send_headers(stream, request_headers(args.addr, args.path))
        except h2.exceptions.TooManyStreamsError:
            break
        opened += 1
    sock.sendall(conn.data_to_send())
    answered, reset, goaway = 0, 0, False

    def count(event):
        nonlocal answered, reset, goaway
        if isinstance(event, h2.events.ResponseReceived):
            answered += 1
        elif isinstance(event, h2.events.StreamReset):
            reset += 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            goaway = True
        return False

    pump(sock, conn, count, time.monotonic() + args.hold)
    print(json.dumps({"opened": opened, "answered": answered, "reset": reset, "goaway": goaway}))


def unread(args):
    conns = [connect(args.addr, window=0) for _ in range(args.connections)]
    payloads = [frame(bytes.fromhex(p)) for p in args.payload]
    opened = 0
    for i in range(args.calls):
        sock, conn = conns[i % len(conns)]
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, request_headers(args.addr, args.path))
        conn.send_data(stream, payloads[i % len(payloads)], end_stream=True)
        opened += 1
    for sock, conn in conns:
        sock.sendall(conn.data_to_send())
    print(json.dumps({"ready": True}), file=sys.stderr, flush=True)
    headers = 0
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        for sock, conn in conns:
            sock.settimeout(0.05)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                continue
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers += 1
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    print(json.dumps({"opened": opened, "headers": headers}))


def rapid_reset(args):
    sock, conn = connect(args.addr)
    sock.setblocking(True)
    # Every pair is encoded first and then written in one burst, as an attacker would:
    # the server reads them all before it can accept any.
    sent = 0
    for _ in range(args.count):
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, request_headers(args.addr, args.path))
        conn.reset_stream(stream)
        sent += 1
    burst = conn.data_to_send()
    started = time.monotonic()
    try:
        sock.sendall(burst)
    except OSError:
        pass
    goaway = {"goaway": False, "error_code": None}

    def terminated(event):
        if isinstance(event, h2.events.ConnectionTerminated):
            goaway["goaway"] = True
            goaway["error_code"] = int(event.error_code)
            return True
        return False

    seen = pump(sock, conn, terminated, time.monotonic() + 5)
    if not goaway["goaway"] and "closed" in seen:
        goaway["goaway"] = True
    print(json.dumps({"sent": sent, **goaway, "seconds": round(time.monotonic() - started, 2)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("call")
    c.add_argument("addr")
    c.add_argument("path")
    c.add_argument("--payload", default="")
    c.add_argument("--timeout")
    c.add_argument("--encoding")
    c.add_argument("--flag", type=int, default=0)
    c.add_argument("--wait", type=float, default=10)
    s = sub.add_parser("stall")
    s.add_argument("addr")
    s.add_argument("path")
    s.add_argument("--calls", type=int, required=True)
    s.add_argument("--hold", type=float, required=True)
    u = sub.add_parser("unread")
    u.add_argument("addr")
    u.add_argument("path")
    u.add_argument("--payload", action="append", required=True)
    u.add_argument("--calls", type=int, required=True)
    u.add_argument("--connections", type=int, default=1)
    u.add_argument("--hold", type=float, required=True)
    r = sub.add_parser("rapid-reset")
    r.add_argument("addr")
    r.add_argument("path")
    r.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    {"call": call, "stall": stall, "unread": unread, "rapid-reset": rapid_reset}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
