#!/usr/bin/env python3
"""MCP and notification benchmark (issue 12 part 7). Stdlib only.

Boots the daemon (ORCHESTRATR_BIN, default target/release/orchestratr, else
target/debug) with private temp dirs and prints:
  - MCP tools/call of a trivial task (`true`, mcp: true), round trip p50/p99
    over Streamable HTTP (one keep-alive connection) and over the stdio
    bridge (`orchestratr mcp`, one process); `ping` round trips as the
    protocol-only baseline;
  - notification delivery latency: POST /events → a json webhook received by
    a local http.server (event published → body received), p50/p99.
Not a test: nothing is asserted.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import fmt, percentile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("BENCH_N", "200"))


def binary():
    env = os.environ.get("ORCHESTRATR_BIN")
    if env:
        return Path(env)
    rel = ROOT / "target" / "release" / "orchestratr"
    return rel if rel.exists() else ROOT / "target" / "debug" / "orchestratr"


def stats(name, xs):
    xs = sorted(xs)
    ms = [x * 1000 for x in xs]
    print(f"{name:<44} n={len(ms):<4} p50={fmt(percentile(ms, 50))} ms  p99={fmt(percentile(ms, 99))} ms  max={fmt(ms[-1])} ms")


def main():
    received = {}
    cond = threading.Condition()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            t = time.perf_counter()
            ev = json.loads(body)["event"]
            with cond:
                received[ev["data"]["seq"]] = t
                cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    rx = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=rx.serve_forever, daemon=True).start()

    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    cfg, state = tmp / "cfg", tmp / "state"
    cfg.mkdir()
    state.mkdir()
    (cfg / "config.yml").write_text(
        f"""
tasks:
  - name: noop
    mcp: true
    command: ["true"]
pools:
  default: {{max_concurrent: 4, max_queued: 1000}}
retention: {{executions: 100000}}
notify:
  - url: http://127.0.0.1:{rx.server_address[1]}/hook
    format: json
    events: ["bench.ping"]
"""
    )
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=str(cfg), ORCHESTRATR_STATE_DIR=str(state), ORCHESTRATR_LOG="warn")
    env.pop("ORCHESTRATR_URL", None)
    env.pop("ORCHESTRATR_TOKEN", None)
    b = binary()
    print(f"binary: {b}")
    d = subprocess.Popen([str(b), "serve", "--port", "0"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (cfg / "port").exists():
            if time.monotonic() > deadline:
                raise SystemExit("daemon did not start")
            time.sleep(0.02)
        port = int((cfg / "port").read_text())
        token = (cfg / "token").read_text().strip()
        hdr = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}

        conn = http.client.HTTPConnection("127.0.0.1", port)

        def post(msg):
            conn.request("POST", "/mcp", json.dumps(msg), hdr)
            r = conn.getresponse()
            return json.loads(r.read())

        post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "noop", "arguments": {}}}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        for _ in range(10):
            assert post(call)["result"]["isError"] is False
        for name, msg in (("http  ping", ping), ("http  tools/call noop (spawn + wait)", call)):
            xs = []
            for _ in range(N):
                t = time.perf_counter()
                post(msg)
                xs.append(time.perf_counter() - t)
            stats(name, xs)

        br = subprocess.Popen([str(b), "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

        def rpc(msg):
            br.stdin.write(json.dumps(msg) + "\n")
            br.stdin.flush()
            return json.loads(br.stdout.readline())

        rpc({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
        for _ in range(10):
            rpc(call)
        for name, msg in (("stdio ping", ping), ("stdio tools/call noop (spawn + wait)", call)):
            xs = []
            for _ in range(N):
                t = time.perf_counter()
                rpc(msg)
                xs.append(time.perf_counter() - t)
            stats(name, xs)
        br.stdin.close()
        br.wait(timeout=30)

        ev_conn = http.client.HTTPConnection("127.0.0.1", port)
        lat = []
        for seq in range(N):
            body = json.dumps({"type": "bench.ping", "source": "bench", "data": {"seq": seq}})
            t = time.perf_counter()
            ev_conn.request("POST", "/events", body, hdr)
            ev_conn.getresponse().read()
            with cond:
                ok = cond.wait_for(lambda: seq in received, timeout=10)
            if ok:
                lat.append(received[seq] - t)
        stats("notify event -> json webhook received", lat)
        conn.request("GET", "/health", headers=hdr)
        h = json.loads(conn.getresponse().read())
        print(f"notify_delivered={h.get('notify_delivered')} notify_dropped={h.get('notify_dropped')} notify_failed={h.get('notify_failed')}")
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
        rx.shutdown()


if __name__ == "__main__":
    main()
