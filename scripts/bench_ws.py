#!/usr/bin/env python3
"""Agent output byte -> WebSocket client latency (API.md §11; issue 10 part 10).

Starts the daemon (--bin, default target/debug/orchestratr) with private
config/state dirs and a `/bin/sh` agent in its own tmux server, connects N
watchers to GET /ws/observe (a minimal stdlib RFC 6455 client), subscribes
them to the session's terminal, then runs in the pane a Python loop printing
`T<time.time_ns()>` every --interval-ms. Each watcher takes the receive time
(time.time_ns(), same machine and clock) when a terminal_output frame holding
a marker arrives. Latency = receive - print: it includes the pane, tmux's
pipe to the output log, the daemon's tail poll and the WebSocket write.

Usage: bench_ws.py [--bin PATH] [--watchers 10] [--lines 300] [--interval-ms 20]
Last line: RESULT p50_ms=... p99_ms=... max_ms=... received=... expected=...
"""

import argparse
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MARK = re.compile(r"T(\d{19})\r?\n")


def ws_connect(port, token):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws/observe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    return s, rest


def ws_send(s, obj):
    data = json.dumps(obj).encode()
    mask = os.urandom(4)
    n = len(data)
    hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


class Watcher(threading.Thread):
    def __init__(self, port, token, sid):
        super().__init__(daemon=True)
        self.s, self.buf = ws_connect(port, token)
        ws_send(self.s, {"type": "subscribe_terminal", "session_id": sid})
        self.lat = {}
        self.text = ""
        self.stop = False

    def frames(self):
        while not self.stop:
            while True:
                if len(self.buf) >= 2:
                    op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
                    i = 2
                    if n == 126:
                        n, i = struct.unpack(">H", self.buf[2:4])[0], 4
                    elif n == 127:
                        n, i = struct.unpack(">Q", self.buf[2:10])[0], 10
                    if len(self.buf) >= i + n:
                        payload, self.buf = self.buf[i:i + n], self.buf[i + n:]
                        yield op, payload
                        continue
                break
            chunk = self.s.recv(65536)
            if not chunk:
                return
            self.buf += chunk

    def run(self):
        self.s.settimeout(None)
        for op, payload in self.frames():
            now = time.time_ns()
            if op == 0x9:  # ping -> pong
                mask = os.urandom(4)
                self.s.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask +
                               bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            if op != 0x1:
                continue
            m = json.loads(payload)
            if m.get("type") != "terminal_output":
                continue
            self.text += m["data"]
            for t in MARK.findall(self.text):
                self.lat.setdefault(int(t), (now - int(t)) / 1e6)
            self.text = self.text[-40:]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--bin", default=os.path.join(here, "target/debug/orchestratr"))
    ap.add_argument("--watchers", type=int, default=10)
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--interval-ms", type=int, default=20)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-ws-")
    cfg, state, wsdir = (os.path.join(root, d) for d in ("cfg", "state", "ws"))
    for d in (cfg, state, wsdir):
        os.makedirs(d)
    with open(os.path.join(cfg, "config.yml"), "w") as f:
        f.write(f'workspaces: ["{wsdir}"]\nagents:\n  shell:\n    interactive: ["/bin/sh"]\n'
                f'    detect: shell\n    submit_delay_ms: 50\n')
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=cfg, ORCHESTRATR_STATE_DIR=state)
    for k in ("ORCHESTRATR_URL", "ORCHESTRATR_TOKEN", "TMUX", "TMUX_PANE"):
        env.pop(k, None)
    daemon = subprocess.Popen([a.bin, "serve", "--port", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while not (os.path.exists(os.path.join(cfg, "port")) and os.path.exists(os.path.join(cfg, "token"))):
            if time.time() > deadline:
                raise RuntimeError("daemon did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        port = int(open(os.path.join(cfg, "port")).read().strip())
        token = open(os.path.join(cfg, "token")).read().strip()

        def call(method, path, body=None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read() or b"null")

        sid = call("POST", "/agents/spawn", {"agent_type": "shell", "working_dir": wsdir})["session_id"]
        time.sleep(1.0)
        watchers = [Watcher(port, token, sid) for _ in range(a.watchers)]
        for w in watchers:
            w.start()
        time.sleep(0.5)
        prog = (f"import time\nfor i in range({a.lines}):\n print('T%d' % time.time_ns(), flush=True)\n"
                f" time.sleep({a.interval_ms / 1000})\n")
        with open(os.path.join(wsdir, "emit.py"), "w") as f:
            f.write(prog)
        call("POST", f"/agents/{sid}/input", {"text": f"python3 {wsdir}/emit.py"})
        deadline = time.time() + 30 + a.lines * a.interval_ms / 1000
        while time.time() < deadline and any(len(w.lat) < a.lines for w in watchers):
            time.sleep(0.1)
        lats = sorted(v for w in watchers for v in w.lat.values())
        for w in watchers:
            w.stop = True
        expected = a.lines * a.watchers
        if not lats:
            print("RESULT no samples")
            return 1
        p = lambda q: lats[min(len(lats) - 1, int(q * len(lats)))]
        print(f"watchers={a.watchers} lines={a.lines} interval_ms={a.interval_ms}")
        print(f"RESULT p50_ms={p(0.5):.1f} p99_ms={p(0.99):.1f} max_ms={lats[-1]:.1f} "
              f"received={len(lats)} expected={expected}")
        return 0
    finally:
        subprocess.run(["tmux", "-S", os.path.join(state, "agents/tmux.sock"), "kill-server"],
                       env={k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")},
                       capture_output=True)
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
