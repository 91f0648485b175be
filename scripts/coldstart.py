#!/usr/bin/env python3
"""Cold-start benchmark for `orchestratr serve` (stdlib only).

Measures the time from exec (just before the process is spawned) until
`<cfg>/port` appears with a valid port number, for:

  first  - fresh, empty config and state dirs (the daemon writes the token and
           a default config.yml before listening);
  warm   - the same dirs right after a clean shutdown of the first start
           (token and config exist).

Each run uses its own fresh temporary dirs. The port file is detected with
inotify (through ctypes; no busy polling that would steal a CPU from the daemon
on a small machine), or by polling every 0.2 ms with --poll or where inotify is
not available. After detection (outside the timed window) the script checks
that the port really accepts connections and answers GET /health, then stops
the daemon with SIGTERM and waits for it.

Usage: coldstart.py BINARY [--runs N] [--poll] [--keep]
The last line of the output is machine readable:
  RESULT first_median_ms=... warm_median_ms=... ...
"""

import argparse
import ctypes
import ctypes.util
import os
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

IN_CREATE = 0x100
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class Inotify:
    """Minimal inotify watcher on one directory."""

    def __init__(self, directory):
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self.libc = ctypes.CDLL(libc_name, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = self.libc.inotify_add_watch(
            self.fd, os.fsencode(directory), IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO
        )
        if wd < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, "inotify_add_watch")

    def wait(self, timeout_s):
        """Block until some event arrives (or timeout); return names seen."""
        r, _, _ = select.select([self.fd], [], [], timeout_s)
        if not r:
            return None
        names = []
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return names
        i = 0
        while i + 16 <= len(buf):
            _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16 : i + 16 + length].rstrip(b"\0")
            names.append(name.decode(errors="replace"))
            i += 16 + length
        return names

    def close(self):
        os.close(self.fd)


def read_port(path):
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if not text.endswith(b"\n"):
        return None  # being written (should never be seen with temp+rename)
    try:
        port = int(text.strip())
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def http_get(port, path, timeout=2.0):
    """Tiny HTTP/1.1 GET; returns (status, body) or raises."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


class Run:
    def __init__(self):
        self.startup_ms = None  # exec -> port file
        self.health_ms = None  # exec -> first /health answered (after the port file)
        self.stop_ms = None  # SIGTERM -> exit
        self.exit_code = None
        self.problems = []


def one_start(binary, cfg, state, log_path, use_inotify):
    env = dict(os.environ)
    env["ORCHESTRATR_CONFIG_DIR"] = cfg
    env["ORCHESTRATR_STATE_DIR"] = state
    env.pop("RUST_LOG", None)
    port_path = os.path.join(cfg, "port")
    run = Run()
    if os.path.exists(port_path):
        run.problems.append("stale port file present before start (removed)")
        os.unlink(port_path)

    watcher = None
    if use_inotify:
        try:
            watcher = Inotify(cfg)
        except OSError:
            watcher = None

    log = open(log_path, "ab")
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen(
        [binary, "serve", "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        close_fds=True,
    )
    port = None
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if watcher is not None:
                names = watcher.wait(0.05)
                if names is not None and "port" in names:
                    port = read_port(port_path)
                elif names is None:
                    # timeout slice: also check in case an event was missed
                    port = read_port(port_path)
            else:
                port = read_port(port_path)
                if port is None:
                    time.sleep(0.0002)
            if port is not None:
                t1 = time.perf_counter_ns()
                break
            if proc.poll() is not None:
                run.problems.append(f"daemon exited with code {proc.returncode} before writing the port file")
                run.exit_code = proc.returncode
                if watcher is not None:
                    watcher.close()
                return run, proc
            if time.monotonic() > deadline:
                run.problems.append(f"no port file after {STARTUP_TIMEOUT_S:.0f}s")
                break
    finally:
        log.close()
    # Closing an inotify fd can take ~10-20 ms (the kernel waits for an SRCU
    # grace period), so it is closed only after the /health probe below.

    if port is not None:
        run.startup_ms = (t1 - t0) / 1e6
        try:
            status, _ = http_get(port, "/health")
            t2 = time.perf_counter_ns()
            run.health_ms = (t2 - t0) / 1e6
            if status != 200:
                run.problems.append(f"GET /health right after the port file answered {status}")
        except ConnectionRefusedError:
            run.problems.append("port file written but connection refused (port file before listen?)")
        except OSError as e:
            run.problems.append(f"GET /health right after the port file failed: {e}")

    if watcher is not None:
        watcher.close()

    # stop
    ts = time.perf_counter_ns()
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
        run.stop_ms = (time.perf_counter_ns() - ts) / 1e6
    except subprocess.TimeoutExpired:
        run.problems.append(f"did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM; killed")
        proc.kill()
        proc.wait()
    run.exit_code = proc.returncode
    if proc.returncode not in (0,):
        run.problems.append(f"exit code {proc.returncode} after SIGTERM")
    if os.path.exists(port_path):
        run.problems.append("port file not removed on clean shutdown")
    return run, proc


def stats(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return {
        "n": len(values),
        "min": values[0],
        "median": statistics.median(values),
        "max": values[-1],
        "mean": statistics.fmean(values),
    }


def fmt(s, key):
    return "-" if s is None else f"{s[key]:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--poll", action="store_true", help="poll every 0.2 ms instead of inotify")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (for debugging)")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    use_inotify = not args.poll and sys.platform.startswith("linux")
    base = tempfile.mkdtemp(prefix="orchestratr-coldstart-")
    results = {"first": [], "warm": []}
    problems = {}
    procs = []

    def note(kind, i, run):
        for p in run.problems:
            problems.setdefault(f"{kind}: {p}", []).append(i)

    try:
        # one untimed start to warm the page cache with the binary
        d = os.path.join(base, "prewarm")
        os.makedirs(os.path.join(d, "cfg"))
        os.makedirs(os.path.join(d, "state"))
        run, proc = one_start(binary, os.path.join(d, "cfg"), os.path.join(d, "state"),
                              os.path.join(d, "daemon.log"), use_inotify)
        procs.append(proc)

        for i in range(args.runs):
            d = os.path.join(base, f"run{i:02d}")
            cfg, state = os.path.join(d, "cfg"), os.path.join(d, "state")
            os.makedirs(cfg)
            os.makedirs(state)
            log_path = os.path.join(d, "daemon.log")
            run, proc = one_start(binary, cfg, state, log_path, use_inotify)
            procs.append(proc)
            results["first"].append(run)
            note("first", i, run)
            run, proc = one_start(binary, cfg, state, log_path, use_inotify)
            procs.append(proc)
            results["warm"].append(run)
            note("warm", i, run)
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if args.keep:
            print(f"temp dirs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    # harness floor: spawning and reaping a process that does nothing
    floor = []
    for _ in range(args.runs):
        t0 = time.perf_counter_ns()
        subprocess.run(["/bin/true"], stdin=subprocess.DEVNULL)
        floor.append((time.perf_counter_ns() - t0) / 1e6)
    floor_s = stats(floor)

    method = "inotify" if use_inotify else "poll 0.2 ms"
    print(f"cold start: exec -> port file ({args.runs} runs each, detection: {method})")
    print(f"  {'start':<6} {'metric':<26} {'n':>3} {'min':>8} {'median':>8} {'mean':>8} {'max':>8}  (ms)")
    summary = {}
    for kind in ("first", "warm"):
        for label, attr in (("exec -> port file", "startup_ms"),
                            ("exec -> /health answered", "health_ms"),
                            ("SIGTERM -> exit", "stop_ms")):
            s = stats(getattr(r, attr) for r in results[kind])
            summary[(kind, attr)] = s
            n = 0 if s is None else s["n"]
            print(f"  {kind:<6} {label:<26} {n:>3} {fmt(s, 'min'):>8} {fmt(s, 'median'):>8} "
                  f"{fmt(s, 'mean'):>8} {fmt(s, 'max'):>8}")
    print(f"  {'floor':<6} {'spawn+exit of /bin/true':<26} {floor_s['n']:>3} {fmt(floor_s, 'min'):>8} "
          f"{fmt(floor_s, 'median'):>8} {fmt(floor_s, 'mean'):>8} {fmt(floor_s, 'max'):>8}  (harness baseline)")
    if problems:
        print("  problems:")
        for p, runs in problems.items():
            print(f"    - {p} (runs {','.join(map(str, runs))})")

    def val(kind, attr, key):
        s = summary[(kind, attr)]
        return "nan" if s is None else f"{s[key]:.3f}"

    print("RESULT "
          f"first_median_ms={val('first', 'startup_ms', 'median')} "
          f"first_min_ms={val('first', 'startup_ms', 'min')} "
          f"first_max_ms={val('first', 'startup_ms', 'max')} "
          f"warm_median_ms={val('warm', 'startup_ms', 'median')} "
          f"warm_min_ms={val('warm', 'startup_ms', 'min')} "
          f"warm_max_ms={val('warm', 'startup_ms', 'max')} "
          f"stop_median_ms={val('warm', 'stop_ms', 'median')} "
          f"problems={sum(len(v) for v in problems.values())}")


if __name__ == "__main__":
    main()
