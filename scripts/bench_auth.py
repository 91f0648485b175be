#!/usr/bin/env python3
"""Cost of scoped tokens + rate limits (API.md §12) on the hot read paths.

Starts two daemons from the same binary with the same 20 registered apps:
  none:  `auth: none` (guard 4 off, no limiter, nothing to audit);
  token: `auth: token`, a read-only scoped token (`ort_…`) on every request,
         `rate_limits` on for every class and for the open routes
         (`open_routes: true`), with limits far above what wrk can reach so
         they never trigger (every request still takes a bucket token).
Then runs wrk (32 connections, 2 threads) against GET /health, GET /apps and
GET /executions (a token route: token check + scope + bucket), alternating
none/token for --rounds rounds, and reports the median req/s of each and the
cost in percent (target <= 5%): the median over rounds of the paired
(same-round) differences, since a shared machine's load drifts. Reads are never audited, so the audit log
costs nothing here; a write that is audited pays one write(2) of ~250 bytes.

Prints a table and one machine-readable line per route:
  RESULT_AUTH route=/apps none_rps=… token_rps=… cost_pct=…
Exit 0 unless it cannot run (no binary, no wrk, a daemon does not start).
Usage: bench_auth.py --bin target/release/orchestratr [--duration 5] [--rounds 3]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

APPS = "".join(
    f'  - name: app{i:02d}\n    command: "sleep 1000"\n    description: "bench app {i}"\n'
    for i in range(20)
)
CFG_NONE = "auth: none\napps:\n" + APPS
CFG_TOKEN = (
    "auth: token\n"
    "rate_limits:\n"
    "  read: \"1000000000/1s\"\n"
    "  write: \"1000000000/1s\"\n"
    "  failed_auth: \"1000000000/1s\"\n"
    "  open_routes: true\n"
    "  admin_token: true\n"
    "apps:\n" + APPS
)
ROUTES = ["/health", "/apps", "/executions"]


def start(binary, root, name, cfg):
    c, s = os.path.join(root, name, "cfg"), os.path.join(root, name, "state")
    os.makedirs(c)
    os.makedirs(s)
    with open(os.path.join(c, "config.yml"), "w") as f:
        f.write(cfg)
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=c, ORCHESTRATR_STATE_DIR=s, ORCHESTRATR_LOG="warn")
    log = open(os.path.join(root, name, "daemon.log"), "w")
    p = subprocess.Popen([binary, "serve", "--port", "0"], env=env, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    port_file = os.path.join(c, "port")
    deadline = time.time() + 20
    while time.time() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"bench_auth: daemon {name} exited; see {log.name}")
        try:
            with open(port_file) as f:
                port = int(f.read().strip())
            return p, port, c
        except (OSError, ValueError):
            time.sleep(0.01)
    p.kill()
    raise SystemExit(f"bench_auth: daemon {name} did not start")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def scoped_token(port, cfg):
    with open(os.path.join(cfg, "token")) as f:
        admin = f.read().strip()
    body = json.dumps({"name": "bench", "preset": "read-only"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/tokens", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {admin}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["token"]


def wrk(port, route, token, duration):
    cmd = ["wrk", "-t2", "-c32", f"-d{duration}s", f"http://127.0.0.1:{port}{route}"]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        print(f"  warning: {bad.group(1)} non-2xx answers on {route}", file=sys.stderr)
    return float(m.group(1)) if m else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench_auth: wrk is required (apt-get install wrk)")
    root = tempfile.mkdtemp(prefix="orchestratr-bench-auth.")
    procs = []
    try:
        pn, port_n, _ = start(a.bin, root, "none", CFG_NONE)
        procs.append(pn)
        pt, port_t, cfg_t = start(a.bin, root, "token", CFG_TOKEN)
        procs.append(pt)
        tok = scoped_token(port_t, cfg_t)
        print(f"auth bench: wrk -t2 -c32 -d{a.duration}s, {a.rounds} alternating rounds; "
              f"load {open('/proc/loadavg').read().split()[:3]}")
        res = {r: {"none": [], "token": []} for r in ROUTES}
        for i in range(a.rounds):
            for route in ROUTES:
                # ABBA order cancels a load that drifts during the run
                pair = [("none", port_n, None), ("token", port_t, tok)]
                for kind, port, t in (pair if i % 2 == 0 else pair[::-1]):
                    res[route][kind].append(wrk(port, route, t, a.duration))
        audit = os.path.join(root, "token", "state", "audit.jsonl")
        lines = sum(1 for _ in open(audit)) if os.path.exists(audit) else 0
        print(f"{'route':<14} {'auth: none':>12} {'token+limits':>13} {'cost':>8}")
        for route in ROUTES:
            n = statistics.median(res[route]["none"])
            t = statistics.median(res[route]["token"])
            # cost = median of the paired (same round) ratios: robust to a
            # machine whose load changes between rounds
            ratios = [(x - y) / x * 100 for x, y in zip(res[route]["none"], res[route]["token"]) if x > 0]
            cost = statistics.median(ratios) if ratios else float("nan")
            print(f"{route:<14} {n:>10.0f}/s {t:>11.0f}/s {cost:>7.1f}%  "
                  f"(runs none {[round(x) for x in res[route]['none']]}, "
                  f"token {[round(x) for x in res[route]['token']]})")
            print(f"RESULT_AUTH route={route} none_rps={n:.0f} token_rps={t:.0f} cost_pct={cost:.1f}")
        print(f"audit lines written during the reads: {lines} (1 = the token creation)")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
