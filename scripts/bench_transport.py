#!/usr/bin/env python3
"""Transport benchmarks (issue 7 part 9, issue 13 part 7), stdlib only.

Runs its own daemons (private temp dirs) from --bin:

  attack:  1,000 idle connections + 8 stalled bodies (Content-Length: 5000, no
           body) held open while GET /health is timed from NEW connections and
           on one keep-alive connection. Target: /health p99 <= 10 ms.
  peeruid: the same-user check's cost. Two daemons, one with the check on and
           one with ORCHESTRATR_INSECURE_NO_PEER_CHECK=1, measured alternately
           in one run with wrk (keep-alive) at 1 and 32 connections on /health
           and /apps (50 apps), plus /health with a new connection per
           request (where the once-per-connection lookup is paid every time).
           Target: <= 10% throughput cost.

Prints a report and RESULT_* lines for scripts/bench.
"""

import argparse
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import connect, fmt, percentile, read_response  # noqa: E402


def start_daemon(bin_path, work, name, config, env_extra=None):
    cfg = os.path.join(work, name, "cfg")
    state = os.path.join(work, name, "state")
    os.makedirs(cfg, exist_ok=True)
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(cfg, "config.yml"), "w") as f:
        f.write(config)
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=cfg, ORCHESTRATR_STATE_DIR=state)
    env.update(env_extra or {})
    log = open(os.path.join(work, name, "daemon.log"), "ab")
    p = subprocess.Popen([bin_path, "serve", "--port", "0"], env=env, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    port_file = os.path.join(cfg, "port")
    for _ in range(2000):
        try:
            with open(port_file) as f:
                t = f.read().strip()
            if t.isdigit():
                return p, int(t)
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.01)
    p.kill()
    raise SystemExit(f"daemon {name} did not start; see {work}/{name}/daemon.log")


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def status_of(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def health_new_conn(port):
    """One GET /health on a new connection; latency in ms (None on error)."""
    t0 = time.perf_counter_ns()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            st, _, _, _ = read_response(s, b"")
            if st != 200:
                return None
    except OSError:
        return None
    return (time.perf_counter_ns() - t0) / 1e6


def attack(args, work):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    config = "max_connections: 2048\napps:\n  - name: x\n    command: \"sleep 1000\"\n"
    p, port = start_daemon(args.bin, work, "attack", config)
    try:
        time.sleep(0.5)
        rss0 = status_of(p.pid, "VmRSS:")
        idle = []
        for _ in range(args.idle):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError as e:
                print(f"  could only open {len(idle)} idle connections: {e}")
                break
        stalled = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000\r\n\r\n")
            stalled.append(s)
        time.sleep(0.5)
        lat, errors = [], 0
        for _ in range(args.samples):
            v = health_new_conn(port)
            if v is None:
                errors += 1
            else:
                lat.append(v)
        ka = connect(port, 5)
        ka_lat = []
        for _ in range(args.samples):
            t0 = time.perf_counter_ns()
            ka.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            read_response(ka, b"")
            ka_lat.append((time.perf_counter_ns() - t0) / 1e6)
        ka.close()
        rss = status_of(p.pid, "VmRSS:")
        thr = status_of(p.pid, "Threads:")
        lat.sort()
        ka_lat.sort()
        print(f"  {len(idle)} idle + {len(stalled)} stalled connections open; daemon threads {thr}, "
              f"RSS {rss0 / 1024:.1f} -> {rss / 1024:.1f} MiB")
        print(f"  /health, new connection each: p50 {fmt(percentile(lat, 50))} ms, "
              f"p99 {fmt(percentile(lat, 99))} ms, max {fmt(lat[-1] if lat else None)} ms, errors {errors}")
        print(f"  /health, keep-alive:          p50 {fmt(percentile(ka_lat, 50))} ms, "
              f"p99 {fmt(percentile(ka_lat, 99))} ms")
        for s in idle + stalled:
            s.close()
        print(f"RESULT_ATTACK idle={len(idle)} stalled={len(stalled)} p99_ms={fmt(percentile(lat, 99))} "
              f"p50_ms={fmt(percentile(lat, 50))} ka_p99_ms={fmt(percentile(ka_lat, 99))} errors={errors} "
              f"rss_growth_mib={(rss - rss0) / 1024:.2f} threads={thr}")
    finally:
        stop(p)


def wrk_rps(port, path, conns, duration):
    threads = 1 if conns == 1 else 2
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (float(m.group(1)) if m else float("nan")), (int(bad.group(1)) if bad else 0)


def fresh_rps(port, n):
    t0 = time.perf_counter()
    ok = sum(1 for _ in range(n) if health_new_conn(port) is not None)
    return ok / (time.perf_counter() - t0)


def peeruid(args, work):
    apps = "apps:\n" + "".join(
        f"  - name: app{i:02d}\n    command: \"sleep 1000\"\n    description: \"bench app {i}\"\n" for i in range(50))
    on, on_port = start_daemon(args.bin, work, "uid_on", apps)
    off, off_port = start_daemon(args.bin, work, "uid_off", apps, {"ORCHESTRATR_INSECURE_NO_PEER_CHECK": "1"})
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        print("  wrk not found: keep-alive rows skipped (scripts/bench installs it)")
    try:
        print(f"  {'route':<9} {'conns':>5} {'check on req/s':>15} {'check off req/s':>16} {'cost':>7}"
              f"   (best req/s of {args.rounds} runs each; cost = 1 - median on/off ratio of the pairs)")
        rows = []
        cases = [("/health", 1), ("/health", 32), ("/apps", 1), ("/apps", 32)] if have_wrk else []
        # On and off run back to back in pairs (the order alternates); the cost
        # is 1 - the MEDIAN of the per-pair ratios, which damps the drift of a
        # machine shared with other work better than comparing bests.
        def paired(measure):
            ons, offs, ratios = [], [], []
            for i in range(args.rounds):
                if i % 2 == 0:
                    a, b = measure(on_port), measure(off_port)
                else:
                    b, a = measure(off_port), measure(on_port)
                ons.append(a)
                offs.append(b)
                if b:
                    ratios.append(a / b)
            ratios.sort()
            med = ratios[len(ratios) // 2] if ratios else float("nan")
            return max(ons), max(offs), (1 - med) * 100
        for path, conns in cases:
            bad = [0]

            def m(port, path=path, conns=conns):
                r, b = wrk_rps(port, path, conns, args.duration)
                bad[0] += b
                return r
            best_on, best_off, cost = paired(m)
            rows.append((path, conns, best_on, best_off, cost))
            print(f"  {path:<9} {conns:>5} {best_on:>15.0f} {best_off:>16.0f} {cost:>6.1f}%"
                  + (f"  (non-2xx: {bad[0]})" if bad[0] else ""))
        best_on, best_off, cost = paired(lambda port: fresh_rps(port, args.fresh))
        rows.append(("/health", "new", best_on, best_off, cost))
        print(f"  {'/health':<9} {'new':>5} {best_on:>15.0f} {best_off:>16.0f} {cost:>6.1f}%  "
              f"(a new connection per request: the lookup every time)")
        worst = max((r[4] for r in rows if r[1] != "new"), default=float("nan"))
        print(f"RESULT_PEERUID worst_keepalive_cost_pct={worst:.1f} new_conn_cost_pct={cost:.1f} "
              + " ".join(f"{r[0].strip('/')}_{r[1]}_on={r[2]:.0f} {r[0].strip('/')}_{r[1]}_off={r[3]:.0f}"
                         for r in rows))
    finally:
        stop(on)
        stop(off)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fresh", type=int, default=500)
    ap.add_argument("--only", choices=["attack", "peeruid"])
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="orchestratr-bench-transport.")
    try:
        if args.only in (None, "attack"):
            print("-- 1,000 idle connections + 8 stalled bodies, /health from new connections")
            attack(args, work)
        if args.only in (None, "peeruid"):
            print("-- same-user peer-uid check: on vs off (ORCHESTRATR_INSECURE_NO_PEER_CHECK=1)")
            peeruid(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
