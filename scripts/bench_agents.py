#!/usr/bin/env python3
"""Agents benchmark (issue 10 part 10), stdlib only. Runs its own daemon
(private temp dirs, its own private tmux server) from --bin:

  idle:   50 idle agents (`/bin/cat` sessions). Daemon CPU over --seconds,
          percent of one core (target <= 2%), and RSS with the 50 agents vs
          the same daemon before spawning any (target <= idle + 10 MiB).
          The tmux server's CPU is shown for information.
  sse:    agent output byte -> SSE client latency with 10 watchers of
          GET /agents/{id}/stream: a ticker agent prints `T<epoch ns>` lines
          every 20 ms; each watcher stamps the frame's arrival (CLOCK_REALTIME,
          same machine). Target p99 <= 50 ms.
  input:  POST /agents/{id}/input (`submit: false`, so no submit_delay_ms)
          -> the bytes in the pane (the tty echo of a `cat` session, seen in
          the session's output.log written by pipe-pane). Target p99 <= 100 ms.

Prints a report and RESULT_* lines for scripts/bench.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import connect, fmt, parse_sse_frame, percentile, pump_sse, read_head, is_chunked, shutdown  # noqa: E402

TICKER = r'''
import sys, time
n = int(sys.argv[1])
print("ticker ready", flush=True)
time.sleep(1.5)
for i in range(n):
    sys.stdout.write("T%d\n" % time.time_ns())
    sys.stdout.flush()
    time.sleep(0.02)
time.sleep(3600)
'''


class Api:
    def __init__(self, port, token):
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.token = token

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")


def start_daemon(bin_path, work, config):
    cfg = os.path.join(work, "cfg")
    state = os.path.join(work, "state")
    os.makedirs(cfg, exist_ok=True)
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(cfg, "config.yml"), "w") as f:
        f.write(config)
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=cfg, ORCHESTRATR_STATE_DIR=state)
    env.pop("TMUX", None)
    log = open(os.path.join(work, "daemon.log"), "ab")
    p = subprocess.Popen([bin_path, "serve", "--port", "0"], env=env, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    port_file = os.path.join(cfg, "port")
    for _ in range(2000):
        try:
            with open(port_file) as f:
                t = f.read().strip()
            if t.isdigit():
                token = None
                tf = os.path.join(cfg, "token")
                if os.path.exists(tf):
                    token = open(tf).read().strip()
                return p, Api(int(t), token), state
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.01)
    p.kill()
    raise SystemExit(f"daemon did not start; see {work}/daemon.log")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tmux_server_pid(sock):
    out = subprocess.run(["tmux", "-S", sock, "display-message", "-p", "#{pid}"],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "TMUX"})
    return int(out.stdout.strip()) if out.stdout.strip().isdigit() else None


def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def spawn(api, agent_type, ws):
    st, a = api.call("POST", "/agents/spawn", {"agent_type": agent_type, "working_dir": ws})
    if st != 201:
        raise SystemExit(f"spawn {agent_type}: {st} {a}")
    return a["session_id"]


def bench_idle(api, daemon_pid, state, ws, n, seconds):
    time.sleep(1.0)
    rss0 = rss_kib(daemon_pid)
    ids = [spawn(api, "cat", ws) for _ in range(n)]

    def all_idle():
        st, l = api.call("GET", "/agents?agent_type=cat")
        return st == 200 and sum(1 for a in l["agents"] if a["status"] == "idle") == n
    wait(all_idle, 120, f"{n} idle agents")
    time.sleep(2.0)
    hz = os.sysconf("SC_CLK_TCK")
    tpid = tmux_server_pid(os.path.join(state, "agents", "tmux.sock"))
    c0, t0 = cpu_ticks(daemon_pid), time.monotonic()
    x0 = cpu_ticks(tpid) if tpid else 0
    time.sleep(seconds)
    c1, t1 = cpu_ticks(daemon_pid), time.monotonic()
    x1 = cpu_ticks(tpid) if tpid else 0
    cpu = (c1 - c0) / hz / (t1 - t0) * 100
    tcpu = (x1 - x0) / hz / (t1 - t0) * 100 if tpid else float("nan")
    rss1 = rss_kib(daemon_pid)
    growth = (rss1 - rss0) / 1024
    print(f"idle: {n} agents, daemon CPU {cpu:.2f}% of one core over {seconds} s "
          f"(tmux server {fmt(tcpu, 2)}%), RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB "
          f"(+{growth:.2f} MiB)")
    print(f"RESULT_AGENTS_IDLE agents={n} cpu_pct={cpu:.3f} tmux_cpu_pct={fmt(tcpu, 3)} "
          f"rss_idle_mib={rss0 / 1024:.2f} rss_mib={rss1 / 1024:.2f} rss_growth_mib={growth:.3f}")
    return ids


class Watcher(threading.Thread):
    def __init__(self, api, sid):
        super().__init__(daemon=True)
        self.api, self.sid = api, sid
        self.lat_ms, self.seen = [], set()
        self.sock, self.error, self.ready = None, None, threading.Event()

    def run(self):
        try:
            s = connect(self.api.port, 5.0)
            self.sock = s
            auth = f"Authorization: Bearer {self.api.token}\r\n" if self.api.token else ""
            s.sendall((f"GET /agents/{self.sid}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                       "Accept: text/event-stream\r\n\r\n").encode())
            st, hdrs, raw = read_head(s, b"")
            if st != 200:
                raise ConnectionError(f"status {st}")
            self.ready.set()
            s.settimeout(None)
            pump_sse(s, raw, is_chunked(hdrs), self.frame, normalize_crlf=True)
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.ready.set()

    def frame(self, frame, _now_perf):
        now = time.time_ns()
        fields, data = parse_sse_frame(frame)
        if fields.get("event") != "output" or not data:
            return
        try:
            text = json.loads("\n".join(data)).get("text", "")
        except ValueError:
            return
        for m in re.finditer(r"T(\d{19})", text):
            t = int(m.group(1))
            if t not in self.seen:
                self.seen.add(t)
                self.lat_ms.append((now - t) / 1e6)

    def close(self):
        shutdown(self.sock)


def bench_sse(api, ws, watchers, lines):
    sid = spawn(api, "ticker", ws)
    ws_ = [Watcher(api, sid) for _ in range(watchers)]
    for w in ws_:
        w.start()
    for w in ws_:
        w.ready.wait(10)
    wait(lambda: all(len(w.seen) >= lines for w in ws_) or any(w.error for w in ws_),
         60 + lines * 0.1, "ticker lines at every watcher")
    for w in ws_:
        w.close()
    lat = sorted(x for w in ws_ for x in w.lat_ms)
    errs = [w.error for w in ws_ if w.error]
    got = sum(len(w.seen) for w in ws_)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(f"sse: {watchers} watchers of one agent, {lines} lines: output -> client "
          f"p50 {fmt(p50, 2)} ms, p99 {fmt(p99, 2)} ms, max {fmt(lat[-1] if lat else None, 2)} ms, "
          f"{got}/{watchers * lines} delivered{', errors: ' + '; '.join(errs) if errs else ''}")
    print(f"RESULT_AGENTS_SSE watchers={watchers} p50_ms={fmt(p50)} p99_ms={fmt(p99)} "
          f"received={got} expected={watchers * lines}")


def bench_input(api, state, sid, samples):
    log = os.path.join(state, "agents", sid, "output.log")
    lat = []
    with open(log, "rb") as f:
        for i in range(samples):
            f.seek(0, 2)
            mark = f"m{i:05d}x".encode()
            t0 = time.perf_counter()
            st, _ = api.call("POST", f"/agents/{sid}/input", {"text": mark.decode(), "submit": False})
            if st != 202:
                raise SystemExit(f"input: {st}")
            buf = b""
            end = t0 + 5
            while mark not in buf and time.perf_counter() < end:
                chunk = f.read()
                if chunk:
                    buf += chunk
                else:
                    time.sleep(0.0005)
            if mark in buf:
                lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    lat.sort()
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(f"input: {samples} requests (submit false) -> bytes in the pane (output.log): "
          f"p50 {fmt(p50, 2)} ms, p99 {fmt(p99, 2)} ms, {len(lat)}/{samples} seen")
    print(f"RESULT_AGENTS_INPUT p50_ms={fmt(p50)} p99_ms={fmt(p99)} seen={len(lat)} expected={samples}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--watchers", type=int, default=10)
    ap.add_argument("--lines", type=int, default=250)
    ap.add_argument("--inputs", type=int, default=200)
    a = ap.parse_args()
    if not shutil.which("tmux"):
        print("bench_agents: tmux not found; skipped")
        return
    work = tempfile.mkdtemp(prefix="orch-bench-agents-")
    ws = os.path.join(work, "ws")
    os.makedirs(ws)
    ticker = os.path.join(work, "ticker.py")
    with open(ticker, "w") as f:
        f.write(TICKER)
    config = (f'workspaces: ["{ws}"]\nagents:\n'
              f'  cat:\n    interactive: ["/bin/sh", "-c", "echo ready; exec cat"]\n'
              f'    detect: shell\n    idle_after_ms: 500\n    submit_delay_ms: 0\n'
              f'    max_sessions: {a.agents + 5}\n'
              f'  ticker:\n    interactive: ["python3", "{ticker}", "{a.lines}"]\n'
              f'    detect: shell\n    max_sessions: 2\n')
    p, api, state = start_daemon(a.bin, work, config)
    try:
        ids = bench_idle(api, p.pid, state, ws, a.agents, a.seconds)
        bench_sse(api, ws, a.watchers, a.lines)
        bench_input(api, state, ids[0], a.inputs)
    finally:
        subprocess.run(["tmux", "-S", os.path.join(state, "agents", "tmux.sock"), "kill-server"],
                       capture_output=True, env={k: v for k, v in os.environ.items() if k != "TMUX"})
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
