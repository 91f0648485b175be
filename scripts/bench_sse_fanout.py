#!/usr/bin/env python3
"""SSE fan-out benchmark (issue 7 part 9): many subscribers at a high event rate.

Starts its own daemon (--bin) with private temp dirs and a config that allows
the streams, connects --subscribers SSE clients spread over --workers
processes (epoll, raw sockets), then publishes --rate events/s for --seconds
(POST /events from a separate process, two keep-alive connections), while the
main process probes GET /health every 20 ms on a keep-alive connection.

Every event carries t_ns = time.monotonic_ns() taken just before its POST is
written (CLOCK_MONOTONIC is system-wide, so all processes share the clock).
Subscribers in the latency sample (--sample of them) compute receive time -
t_ns for every event; every subscriber counts its events and notes a
stream.lagged. "Fast" subscribers are all that were not lagged.

Usage: bench_sse.py --fanout --bin target/release/orchestratr
           [--subscribers 500] [--rate 1000] [--seconds 10] [--workers 4] [--sample 50]
The last line is machine readable:
  RESULT subs=... connected=... published=... rate=... p50_ms=... p99_ms=... max_ms=...
         health_p50_ms=... health_p99_ms=... complete=... lagged=... rss_mib=...
"""

import argparse
import multiprocessing as mp
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import connect, fmt, percentile, read_head, read_response  # noqa: E402

EVENT_TYPE = "bench.fan"
T_NS = re.compile(rb'"t_ns":(\d+)')
EVENT_MARK = b"event: " + EVENT_TYPE.encode() + b"\n"


def start_daemon(binary, work):
    cfg, state = os.path.join(work, "cfg"), os.path.join(work, "state")
    os.makedirs(cfg)
    os.makedirs(state)
    with open(os.path.join(cfg, "config.yml"), "w") as f:
        f.write("log_level: warn\nsse_max_streams: 1024\nsse_queue_capacity: 4096\n"
                "sse_heartbeat_ms: 15000\napps: []\n")
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=cfg, ORCHESTRATR_STATE_DIR=state)
    log = open(os.path.join(work, "daemon.log"), "w")
    p = subprocess.Popen([binary, "serve", "--port", "0"], env=env, stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL)
    port_file = os.path.join(cfg, "port")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"daemon exited with {p.returncode}; see {work}/daemon.log")
        try:
            with open(port_file) as f:
                return p, int(f.read().strip())
        except (OSError, ValueError):
            time.sleep(0.02)
    p.kill()
    raise SystemExit("daemon did not write its port file within 20 s")


def cpu_s(pid):
    """User + system CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# ------------------------------------------------------------- subscribers ---
def worker(idx, port, n, sampled, ready_q, go_evt, expected_val, done_evt, out_q):
    """n subscribers on one epoll; the first `sampled` measure latency."""
    socks = {}
    sel = selectors.DefaultSelector()
    errors = []
    for i in range(n):
        try:
            s = connect(port, 10)
            s.sendall((f"GET /events/stream?type={EVENT_TYPE},stream.* HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").encode())
            status, _hdrs, rest = read_head(s, b"")
            if status != 200:
                errors.append(f"status {status}")
                s.close()
                continue
            s.setblocking(False)
            st = {"raw": rest, "text": b"", "count": 0, "lagged": False,
                  "lat": [] if i < sampled else None, "closed": False}
            socks[s.fileno()] = (s, st)
            sel.register(s, selectors.EVENT_READ)
        except OSError as e:
            errors.append(str(e))
    ready_q.put((idx, len(socks), errors))
    go_evt.wait()

    def consume(st, now):
        raw = st["raw"]
        body = []
        pos = 0
        while True:
            crlf = raw.find(b"\r\n", pos)
            if crlf < 0:
                break
            size = int(raw[pos:crlf].split(b";")[0], 16)
            if size == 0:
                st["closed"] = True
                pos = len(raw)
                break
            if len(raw) < crlf + 2 + size + 2:
                break
            body.append(raw[crlf + 2:crlf + 2 + size])
            pos = crlf + 2 + size + 2
        st["raw"] = raw[pos:]
        if not body:
            return
        text = st["text"] + b"".join(body)
        end = text.rfind(b"\n\n")
        if end < 0:
            st["text"] = text
            return
        done, st["text"] = text[:end + 2], text[end + 2:]
        st["count"] += done.count(EVENT_MARK)
        if b"stream.lagged" in done:
            st["lagged"] = True
        if st["lat"] is not None:
            st["lat"].extend((now - int(t)) / 1e6 for t in T_NS.findall(done))

    deadline = None
    while True:
        if done_evt.is_set():
            if deadline is None:
                deadline = time.monotonic() + 10
            exp = expected_val.value
            if all(st["count"] >= exp or st["lagged"] or st["closed"] for _, st in socks.values()):
                break
            if time.monotonic() > deadline:
                break
        for key, _ in sel.select(timeout=0.1):
            s, st = socks[key.fd]
            try:
                data = s.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            now = time.monotonic_ns()
            if not data:
                st["closed"] = True
                sel.unregister(s)
                continue
            st["raw"] += data
            consume(st, now)
    counts = [st["count"] for _, st in socks.values()]
    lagged = sum(1 for _, st in socks.values() if st["lagged"])
    lat = [x for _, st in socks.values() if st["lat"] is not None for x in st["lat"]]
    complete = sum(1 for _, st in socks.values()
                   if not st["lagged"] and st["count"] == expected_val.value)
    fast = sum(1 for _, st in socks.values() if not st["lagged"])
    out_q.put((idx, counts, lagged, complete, fast, lat, errors))
    for s, _ in socks.values():
        s.close()


# -------------------------------------------------------------- publisher ---
def publisher(port, rate, seconds, lanes, result_q):
    total = int(rate * seconds)
    sent = [0] * lanes
    failures = [0] * lanes
    start = time.monotonic() + 0.05

    def lane(k):
        s = connect(port, 10)
        buf = b""
        for i in range(k, total, lanes):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = time.monotonic_ns()
            body = (f'{{"type":"{EVENT_TYPE}","source":"bench","data":{{"t_ns":{t},"seq":{i}}}}}').encode()
            s.sendall(b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            status, _h, _b, buf = read_response(s, buf)
            if status == 202:
                sent[k] += 1
            else:
                failures[k] += 1
        s.close()

    threads = [threading.Thread(target=lane, args=(k,)) for k in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    result_q.put((sum(sent), sum(failures), elapsed))


# ------------------------------------------------------------------- health ---
def health_probe(port, stop, out):
    s = connect(port, 10)
    buf = b""
    req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    while not stop.is_set():
        t0 = time.perf_counter_ns()
        s.sendall(req)
        status, _h, _b, buf = read_response(s, buf)
        out.append((time.perf_counter_ns() - t0) / 1e6)
        if status != 200:
            out.append(float("inf"))
        time.sleep(0.02)
    s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--subscribers", type=int, default=500)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--sample", type=int, default=50)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="orchestratr-fanout-")
    daemon, port = start_daemon(args.bin, work)
    ctx = mp.get_context("fork")
    ready_q, out_q, pub_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
    go_evt, done_evt = ctx.Event(), ctx.Event()
    expected_val = ctx.Value("q", 0)
    per = [args.subscribers // args.workers + (1 if i < args.subscribers % args.workers else 0)
           for i in range(args.workers)]
    samp = [args.sample // args.workers + (1 if i < args.sample % args.workers else 0)
            for i in range(args.workers)]
    procs = [ctx.Process(target=worker, args=(i, port, per[i], samp[i], ready_q, go_evt,
                                              expected_val, done_evt, out_q))
             for i in range(args.workers)]
    try:
        for p in procs:
            p.start()
        connected, errors = 0, []
        for _ in procs:
            _i, n, errs = ready_q.get(timeout=120)
            connected += n
            errors += errs
        rss_before = rss_mib(daemon.pid)
        cpu_before = cpu_s(daemon.pid)
        go_evt.set()
        health, stop = [], threading.Event()
        ht = threading.Thread(target=health_probe, args=(port, stop, health))
        ht.start()
        pub = ctx.Process(target=publisher, args=(port, args.rate, args.seconds, 2, pub_q))
        pub.start()
        sent, failures, elapsed = pub_q.get(timeout=args.seconds * 10 + 60)
        pub.join()
        rss_peak = rss_mib(daemon.pid)
        daemon_cpu = cpu_s(daemon.pid) - cpu_before
        stop.set()
        ht.join()
        expected_val.value = sent
        done_evt.set()
        counts, lagged, complete, fast, lat = [], 0, 0, 0, []
        for _ in procs:
            _i, c, lg, cp, fs, lt, errs = out_q.get(timeout=120)
            counts += c
            lagged += lg
            complete += cp
            fast += fs
            lat += lt
            errors += errs
        for p in procs:
            p.join(10)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(work, ignore_errors=True)

    lat.sort()
    health.sort()
    rate = sent / elapsed if elapsed > 0 else float("nan")
    print(f"SSE fan-out: {connected}/{args.subscribers} subscribers over {args.workers} processes, "
          f"{sent} events published in {elapsed:.2f} s ({rate:.0f}/s; target {args.rate:.0f}/s), "
          f"{failures} publish failures")
    print(f"  delivery latency ms ({len(lat)} samples from {args.sample} subscribers): "
          f"p50 {fmt(percentile(lat, 50))}  p99 {fmt(percentile(lat, 99))}  "
          f"p99.9 {fmt(percentile(lat, 99.9))}  max {fmt(lat[-1] if lat else None)}")
    print(f"  GET /health during it ms ({len(health)} probes): p50 {fmt(percentile(health, 50))}  "
          f"p99 {fmt(percentile(health, 99))}  max {fmt(health[-1] if health else None)}")
    print(f"  fast subscribers (not lagged) {fast}, of which complete {complete}; lagged {lagged}; "
          f"per-subscriber count min {min(counts) if counts else 0} max {max(counts) if counts else 0}")
    print(f"  daemon RSS MiB: before publishing {rss_before:.1f}, at the end {rss_peak:.1f}; "
          f"daemon CPU {daemon_cpu:.2f} s while publishing ({daemon_cpu / elapsed * 100:.0f}% of one core); "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    for e in errors[:5]:
        print(f"  problem: {e}")
    print(f"RESULT subs={args.subscribers} connected={connected} published={sent} rate={rate:.0f} "
          f"p50_ms={fmt(percentile(lat, 50))} p99_ms={fmt(percentile(lat, 99))} "
          f"max_ms={fmt(lat[-1] if lat else None)} health_p50_ms={fmt(percentile(health, 50))} "
          f"health_p99_ms={fmt(percentile(health, 99))} fast={fast} complete={complete} "
          f"lagged={lagged} rss_mib={rss_peak:.1f} daemon_cpu_pct={daemon_cpu / elapsed * 100:.0f}")


if __name__ == "__main__":
    main()
