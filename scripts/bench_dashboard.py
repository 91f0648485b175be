#!/usr/bin/env python3
"""Benchmark of `orchestratr dashboard` (issue 11, part 6).

Boots a private daemon, fills it with N executions, opens the dashboard in a
private tmux server (200x50), then publishes events at RATE/s for SECONDS:
  - dashboard CPU: utime+stime of its process over the window, % of one core;
  - event -> screen latency: a marker event every 250 ms, `capture-pane`
    polled every 2 ms until the marker's id shows in the overview's latest
    events (p50/p99; includes tmux's own redraw and the capture cost);
  - daemon load: the daemon's CPU over the same window with and without the
    dashboard attached (the difference is the dashboard's cost to it).

With --agents N (default 50) it also spawns N stand-in agents (`/bin/sh` in
the daemon's private tmux server) before the window, so the agents list and
their status events are part of the load.

Usage: scripts/bench_dashboard.py [--bin target/release/orchestratr]
       [--executions 1000] [--agents 50] [--rate 200] [--seconds 20]
Only the standard library and tmux (>= 3.2) are needed.
"""
import argparse, http.client, json, os, shutil, subprocess, sys, tempfile, time

HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


class Api:
    def __init__(self, port, token):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, auth=True):
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for _ in range(2):
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        raise RuntimeError(f"{method} {path} failed")


def tmux(sock, *args):
    return subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}).stdout


def window(api, rate, seconds, on_marker=None):
    """Publish `rate` events/s for `seconds`; every 250 ms a marker via on_marker."""
    start = time.monotonic()
    sent, next_marker, latencies = 0, start, []
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        due = int((now - start) * rate)
        while sent < due:
            api.call("POST", "/events", {"type": "bench.tick", "source": "bench", "data": {"n": sent}}, auth=False)
            sent += 1
        if on_marker and now >= next_marker:
            next_marker = now + 0.25
            lat = on_marker(api)
            if lat is not None:
                latencies.append(lat)
        else:
            time.sleep(0.001)
    return sent, latencies


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/orchestratr")
    ap.add_argument("--executions", type=int, default=1000)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="orchestratr-bench-")
    cfg, state = os.path.join(tmp, "cfg"), os.path.join(tmp, "state")
    os.makedirs(cfg), os.makedirs(state)
    with open(os.path.join(cfg, "config.yml"), "w") as f:
        f.write("tasks:\n  - name: quick\n    command: [\"true\"]\n"
                "pools:\n  default: {max_concurrent: 16, max_queued: 5000}\n"
                "retention: {executions: 5000}\nshutdown_timeout_ms: 500\n"
                f"workspaces: [\"{tmp}\"]\n"
                "agents:\n  sh:\n    interactive: [\"/bin/sh\"]\n    detect: shell\n"
                f"    max_sessions: {max(a.agents, 1)}\n")
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=cfg, ORCHESTRATR_STATE_DIR=state)
    env.pop("ORCHESTRATR_URL", None), env.pop("ORCHESTRATR_TOKEN", None)
    daemon = subprocess.Popen([binary, "serve", "--port", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "daemon.log"), "w"))
    sock = os.path.join(tmp, "tmux.sock")
    try:
        port_file = os.path.join(cfg, "port")
        deadline = time.time() + 30
        while not os.path.exists(port_file) and time.time() < deadline:
            time.sleep(0.05)
        port = int(open(port_file).read().strip())
        token = open(os.path.join(cfg, "token")).read().strip()
        api = Api(port, token)
        t0 = time.time()
        for _ in range(a.executions):
            st, _ = api.call("POST", "/executions", {"task": "quick"})
            assert st == 202, st
        while True:
            st, v = api.call("GET", "/executions?status=completed&limit=1000")
            if v["total"] >= min(a.executions, 1000):
                break
            time.sleep(0.2)
        print(f"{a.executions} executions done in {time.time() - t0:.1f}s")
        spawned = 0
        for i in range(a.agents):
            st, v = api.call("POST", "/agents/spawn", {"agent_type": "sh", "working_dir": tmp, "name": f"a{i}"})
            if st != 201:
                print(f"agent spawn stopped at {i}: {st} {v}")
                break
            spawned += 1
        print(f"{spawned} agents spawned")

        # Baseline: the daemon's CPU under the event load, no dashboard.
        c0 = cpu_ticks(daemon.pid)
        sent, _ = window(api, a.rate, a.seconds)
        base = (cpu_ticks(daemon.pid) - c0) / HZ / a.seconds * 100
        print(f"baseline: {sent} events, daemon CPU {base:.1f}% of a core")

        with open(os.path.join(tmp, "tmux.conf"), "w") as f:
            f.write("set -g status off\n")
        tmux(sock, "-f", os.path.join(tmp, "tmux.conf"), "new-session", "-d", "-s", "b", "-x", "200", "-y", "50",
             "-e", f"ORCHESTRATR_URL=http://127.0.0.1:{port}", "-e", f"ORCHESTRATR_TOKEN={token}",
             "-e", "TERM=xterm-256color", f"exec {binary} dashboard")
        dash = int(tmux(sock, "display", "-p", "-t", "b", "#{pane_pid}").strip())
        deadline = time.time() + 30
        while "● live" not in tmux(sock, "capture-pane", "-p", "-t", "b") and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(2)  # let the first list read settle before measuring

        counter = [0]

        def marker(api):
            counter[0] += 1
            name = f"bench.mark{counter[0]}"
            st, v = api.call("POST", "/events", {"type": name, "source": "bench", "data": {}}, auth=False)
            want = f"#{v['id']} {name} "
            t = time.monotonic()
            while time.monotonic() - t < 2:
                if want in tmux(sock, "capture-pane", "-p", "-t", "b"):
                    return (time.monotonic() - t) * 1000
                time.sleep(0.002)
            return 2000.0

        c0, d0 = cpu_ticks(daemon.pid), cpu_ticks(dash)
        sent, lat = window(api, a.rate, a.seconds, marker)
        dcpu = (cpu_ticks(dash) - d0) / HZ / a.seconds * 100
        with_dash = (cpu_ticks(daemon.pid) - c0) / HZ / a.seconds * 100
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
        print(f"with dashboard: {sent} events ({sent / a.seconds:.0f}/s), {len(lat)} markers")
        print(f"dashboard CPU: {dcpu:.1f}% of a core")
        print(f"event -> screen: p50 {p(0.5):.1f} ms, p90 {p(0.9):.1f} ms, p95 {p(0.95):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1]:.1f} ms")
        print(f"daemon CPU: {base:.1f}% without, {with_dash:.1f}% with the dashboard")
        tmux(sock, "send-keys", "-t", "b", "q")
    finally:
        tmux(sock, "kill-server")
        tmux(os.path.join(state, "agents", "tmux.sock"), "kill-server")
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
