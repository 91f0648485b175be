#!/usr/bin/env python3
"""Side-by-side benchmark of orchestratr against its peers (issue 7 parts 7 and 9).

In one run, on the same machine, with the same load generator (wrk, 2 threads,
32 connections by default):

  1. orchestratr with 50 apps running (`sleep infinity`, launched through the
     API, so the tracker samples live memory/CPU): GET /health, GET /apps,
     GET /apps/{name}, GET /apps/{name}/state.
  2. supervisord 4.x (installed from PyPI into a virtualenv this script
     creates, default /tmp/orch-bench-venv) with 50 programs `sleep infinity`:
     the XML-RPC call `supervisor.getAllProcessInfo` (POST /RPC2), its
     equivalent of GET /apps.
  3. pueue, when a `pueued` binary is on PATH or Debian packages it (checked
     with `apt-cache policy pueue`); skipped with a message otherwise
     (`cargo install pueue` takes too long for a benchmark).
  4. pm2 from npm (into a private prefix, PM2_HOME private), when npm is
     present: 50 `sleep infinity` processes, `pm2.list()` through its
     programmatic API (the daemon's RPC socket) from 32 concurrent callers in
     node; skipped with a message otherwise.
  5. 100 x /bin/true through the executions API vs `xargs -P N` (N = 2 and 8),
     via scripts/bench_exec.py (`--only short`), unless --no-exec.

Prints a table and the ratios: /apps vs supervisord getAllProcessInfo
(target >= 10x) and /apps vs /health (target >= 60%). Not a test: exits 0 when
a target is missed; exits non-zero only when orchestratr itself cannot run.

Usage: bench_peers.py --bin target/release/orchestratr [--apps 50] [--conns 32]
       [--duration 5] [--venv /tmp/orch-bench-venv] [--no-exec] [--no-pm2]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
PROCS = []


def log(msg=""):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, xmlrpc.client.Error):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def stop(p, timeout=10):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --------------------------------------------------------------------- wrk ---
def wrk(url, conns, duration, headers=(), lua=None, work=None):
    """-> (req/s, p99 ms, errors text) or (None, None, reason)."""
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    if lua:
        path = os.path.join(work, "wrk.lua")
        with open(path, "w") as f:
            f.write(lua)
        argv += ["-s", path]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        return None, None, "wrk printed no rate: " + out[-300:]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    p99_ms = None
    if p99:
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errs = []
    m2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m2:
        errs.append(f"non-2xx {m2.group(1)}")
    m3 = re.search(r"Socket errors: (.*)", out)
    if m3:
        errs.append("socket: " + m3.group(1))
    return float(m.group(1)), p99_ms, "; ".join(errs) or "-"


# ------------------------------------------------------------- orchestratr ---
def start_orchestratr(binary, work, name, config):
    cfg, state = os.path.join(work, name, "cfg"), os.path.join(work, name, "state")
    os.makedirs(cfg)
    os.makedirs(state)
    with open(os.path.join(cfg, "config.yml"), "w") as f:
        f.write(config)
    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=cfg, ORCHESTRATR_STATE_DIR=state)
    logf = open(os.path.join(work, name, "daemon.log"), "wb")
    p = subprocess.Popen([binary, "serve", "--port", "0"], env=env, stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf)
    PROCS.append(p)
    port_file = os.path.join(cfg, "port")
    port = wait_until(lambda: int(open(port_file).read().strip()), 10, "the daemon's port file")
    token = wait_until(lambda: open(os.path.join(cfg, "token")).read().strip(), 10, "the token file")
    return p, port, token, cfg, state


def api(port, token, method, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None,
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def bench_orchestratr(a, work, res):
    log(f"== orchestratr: {a.apps} apps running `sleep infinity` ==")
    config = "apps:\n" + "".join(
        f"  - name: app{i:02d}\n    command: \"sleep infinity\"\n    description: \"bench app {i}\"\n"
        for i in range(1, a.apps + 1))
    p, port, token, _, _ = start_orchestratr(a.bin, work, "apps", config)
    try:
        for i in range(1, a.apps + 1):
            api(port, token, "POST", f"/apps/app{i:02d}/launch")
        # one sampling tick, so the bodies carry live memory/CPU figures
        wait_until(lambda: all(x["state"]["memory_mb"] is not None
                               for x in api(port, token, "GET", "/apps")["apps"]), 10,
                   "live stats of every app")
        log(f"daemon pid {p.pid}, port {port}; {a.apps} apps launched; /apps body "
            f"{len(json.dumps(api(port, token, 'GET', '/apps')))} bytes")
        hdr = [f"Authorization: Bearer {token}"]
        for route in ("/health", "/apps", "/apps/app01", "/apps/app01/state"):
            rps, p99, errs = wrk(f"http://127.0.0.1:{port}{route}", a.conns, a.duration, hdr)
            res[f"orch {route}"] = (rps, p99, errs)
            log(f"  {route:<20} {rps or 0:>10.0f} req/s  p99 {p99 or float('nan'):.2f} ms  errors {errs}")
        with open(f"/proc/{p.pid}/status") as f:
            rss = re.search(r"VmRSS:\s+(\d+)", f.read())
        log(f"  daemon VmRSS after load: {int(rss.group(1)) / 1024:.1f} MiB" if rss else "")
        for i in range(1, a.apps + 1):
            try:
                api(port, token, "POST", f"/apps/app{i:02d}/stop")
            except OSError:
                pass
    finally:
        stop(p)


# ------------------------------------------------------------- supervisord ---
def ensure_supervisord(venv):
    exe = os.path.join(venv, "bin", "supervisord")
    if os.path.exists(exe):
        return exe
    log(f"installing supervisor 4.x from PyPI into {venv}")
    r = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
    if r.returncode != 0:
        log("  could not create the virtualenv: " + r.stderr[-300:])
        return None
    r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "supervisor>=4,<5"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not os.path.exists(exe):
        log("  pip install supervisor failed: " + (r.stderr or r.stdout)[-300:])
        return None
    return exe


def bench_supervisord(a, work, res):
    log(f"\n== supervisord: {a.apps} programs `sleep infinity` ==")
    exe = ensure_supervisord(a.venv)
    if not exe:
        log("  skipped: supervisord unavailable")
        return
    d = os.path.join(work, "supervisord")
    os.makedirs(d)
    port = free_port()
    conf = os.path.join(d, "supervisord.conf")
    with open(conf, "w") as f:
        f.write(f"""[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
loglevel=warn

[inet_http_server]
port=127.0.0.1:{port}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
""")
        for i in range(1, a.apps + 1):
            f.write(f"\n[program:p{i:02d}]\ncommand=sleep infinity\nautostart=true\nstdout_logfile={d}/p{i:02d}.log\n")
    ver = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    p = subprocess.Popen([exe, "-n", "-c", conf], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    try:
        rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")
        wait_until(lambda: sum(x["statename"] == "RUNNING" for x in rpc.supervisor.getAllProcessInfo()) == a.apps,
                   30, f"{a.apps} RUNNING programs")
        body = ('<?xml version="1.0"?><methodCall><methodName>supervisor.getAllProcessInfo'
                '</methodName><params></params></methodCall>')
        lua = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/xml"\n'
               f"wrk.body = '{body}'\n")
        log(f"supervisord {ver}, pid {p.pid}, port {port}; {a.apps} programs RUNNING")
        rps, p99, errs = wrk(f"http://127.0.0.1:{port}/RPC2", a.conns, a.duration, lua=lua, work=d)
        res["supervisord getAllProcessInfo"] = (rps, p99, errs)
        log(f"  {'getAllProcessInfo':<20} {rps or 0:>10.0f} req/s  p99 {p99 or float('nan'):.2f} ms  errors {errs}")
    except Exception as e:  # noqa: BLE001 - a peer failing must not stop the report
        log(f"  supervisord measurement failed: {type(e).__name__}: {e}")
    finally:
        stop(p, 20)


# ------------------------------------------------------------------- pueue ---
def bench_pueue(a, work, res):
    log("\n== pueue ==")
    if shutil.which("pueued") and shutil.which("pueue"):
        log("  pueued found, but a list-all load generator for its TLS socket protocol is not "
            "implemented here; skipped")
        return
    pol = subprocess.run(["apt-cache", "policy", "pueue"], capture_output=True, text=True).stdout
    if "Candidate:" in pol and "(none)" not in pol:
        log("  Debian packages pueue, but it is not installed (apt-get install pueue); skipped")
    else:
        log("  skipped: no prebuilt pueue (not on PATH, no Debian package; `cargo install pueue` is too slow)")


# --------------------------------------------------------------------- pm2 ---
PM2_LOAD = r"""
const pm2 = require(process.argv[2]);
const conns = +process.argv[3], seconds = +process.argv[4];
pm2.connect(true, (err) => {
  if (err) { console.log("ERR " + err); process.exit(1); }
  let done = 0, errors = 0, lat = [];
  const end = Date.now() + seconds * 1000;
  let live = conns;
  const one = () => {
    if (Date.now() >= end) { if (--live === 0) finish(); return; }
    const t0 = process.hrtime.bigint();
    pm2.list((e, l) => {
      if (e || !l) errors++; else { done++; lat.push(Number(process.hrtime.bigint() - t0) / 1e6); }
      one();
    });
  };
  const t0 = Date.now();
  for (let i = 0; i < conns; i++) one();
  function finish() {
    lat.sort((a, b) => a - b);
    const p99 = lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] : NaN;
    console.log(`RESULT rps=${(done / ((Date.now() - t0) / 1000)).toFixed(1)} p99_ms=${p99.toFixed(2)} errors=${errors}`);
    pm2.disconnect();
  }
});
"""


def bench_pm2(a, work, res):
    log("\n== pm2 ==")
    if not a.pm2:
        log("  skipped (--no-pm2)")
        return
    if not shutil.which("npm") or not shutil.which("node"):
        log("  skipped: npm/node not found")
        return
    prefix = a.pm2_prefix
    mod = os.path.join(prefix, "node_modules", "pm2")
    if not os.path.isdir(mod):
        log(f"installing pm2 from npm into {prefix}")
        r = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", prefix, "pm2"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not os.path.isdir(mod):
            log("  skipped: npm install pm2 failed: " + (r.stderr or r.stdout)[-300:])
            return
    pm2 = os.path.join(prefix, "node_modules", ".bin", "pm2")
    env = dict(os.environ, PM2_HOME=os.path.join(work, "pm2home"))
    try:
        eco = os.path.join(work, "pm2.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = { apps: [" + ",".join(
                f'{{name: "p{i:02d}", script: "sleep", args: "infinity", interpreter: "none", autorestart: false}}'
                for i in range(1, a.apps + 1)) + "] };\n")
        subprocess.run([pm2, "start", eco], env=env, capture_output=True, timeout=120, check=True)
        ver = subprocess.run([pm2, "--version"], env=env, capture_output=True, text=True).stdout.strip().splitlines()
        online = lambda: sum(x.get("pm2_env", {}).get("status") == "online" for x in json.loads(  # noqa: E731
            subprocess.run([pm2, "jlist"], env=env, capture_output=True, text=True).stdout or "[]")) == a.apps
        wait_until(online, 30, f"{a.apps} online pm2 processes")
        script = os.path.join(work, "pm2load.js")
        with open(script, "w") as f:
            f.write(PM2_LOAD)
        out = subprocess.run(["node", script, mod, str(a.conns), str(a.duration)], env=env,
                             capture_output=True, text=True, timeout=a.duration + 60).stdout
        m = re.search(r"RESULT rps=([\d.]+) p99_ms=([\d.naN]+) errors=(\d+)", out)
        if not m:
            log("  pm2 load generator printed no result: " + out[-300:])
            return
        rps, p99 = float(m.group(1)), float(m.group(2))
        res["pm2 list"] = (rps, p99, m.group(3))
        log(f"pm2 {ver[-1] if ver else '?'}; {a.apps} processes online")
        log(f"  {'pm2.list() (node)':<20} {rps:>10.0f} req/s  p99 {p99:.2f} ms  errors {m.group(3)}")
    except Exception as e:  # noqa: BLE001
        log(f"  pm2 measurement failed: {type(e).__name__}: {e}")
    finally:
        subprocess.run([pm2, "kill"], env=env, capture_output=True, timeout=60)


# -------------------------------------------------------------- executions ---
def bench_exec(a, work, res):
    log("\n== 100 x /bin/true through the API vs xargs -P (scripts/bench_exec.py --only short) ==")
    if not a.exec:
        log("  skipped (--no-exec)")
        return
    ex = os.path.join(HERE, "bench_exec.py")
    config = subprocess.run([sys.executable, ex, "config", "--concurrency", "2,8"], capture_output=True,
                            text=True, check=True).stdout
    p, port, _, cfg, state = start_orchestratr(a.bin, work, "exec", config)
    try:
        out = subprocess.run([sys.executable, ex, "run", "--port", str(port), "--cfg", cfg, "--state", state,
                              "--pid", str(p.pid), "--concurrency", "2,8", "--only", "short", "--rounds", "3"],
                             capture_output=True, text=True, timeout=600).stdout
        for line in out.splitlines():
            if not line.startswith("RESULT_"):
                log("  " + line)
            m = re.match(r"RESULT_SHORT n=(\d+) daemon_ms=(\S+) direct_ms=(\S+) ratio=(\S+)", line)
            if m:
                res[f"exec N={m.group(1)}"] = (m.group(2), m.group(3), m.group(4))
    finally:
        stop(p)


# ------------------------------------------------------------------ report ---
def report(a, res):
    log("\n== summary (same machine, same run) ==")
    log(f"{'measure':<34} {'req/s':>10} {'p99 ms':>8}  errors")
    for k, v in res.items():
        if k.startswith("exec"):
            continue
        rps, p99, errs = v
        log(f"{k:<34} {rps or 0:>10.0f} {p99 if p99 is not None else float('nan'):>8.2f}  {errs}")
    apps = (res.get("orch /apps") or (None,))[0]
    health = (res.get("orch /health") or (None,))[0]
    sup = (res.get("supervisord getAllProcessInfo") or (None,))[0]
    pm2 = (res.get("pm2 list") or (None,))[0]

    def ratio(name, x, y, target=None, pct=False):
        if not x or not y:
            log(f"{name:<44} n/a")
            return
        r = x / y
        shown = f"{r * 100:.0f}%" if pct else f"{r:.1f}x"
        verdict = ""
        if target is not None:
            verdict = "PASS" if r >= target else "MISS"
            verdict = f"(target >= {target * 100:.0f}%) {verdict}" if pct else f"(target >= {target}x) {verdict}"
        log(f"{name:<44} {shown:>8}  {verdict}")

    log("")
    ratio("/apps vs supervisord getAllProcessInfo", apps, sup, 10)
    ratio("/apps vs /health", apps, health, 0.6, pct=True)
    ratio("/apps vs pm2.list()", apps, pm2)
    for k, v in res.items():
        if k.startswith("exec"):
            log(f"{'100 x /bin/true, ' + k + ': API / xargs -P':<44} {v[2]:>7}x  "
                f"(median {v[0]} ms vs {v[1]} ms; target <= 1.5x)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--apps", type=int, default=50)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--venv", default="/tmp/orch-bench-venv")
    ap.add_argument("--pm2-prefix", default="/tmp/orch-bench-pm2")
    ap.add_argument("--no-exec", dest="exec", action="store_false")
    ap.add_argument("--no-pm2", dest="pm2", action="store_false")
    ap.add_argument("--only", default="orchestratr,supervisord,pueue,pm2,exec")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        log("bench_peers: wrk not found (scripts/bench installs it with apt-get); nothing measured")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set(a.only.split(","))
    res = {}
    work = tempfile.mkdtemp(prefix="orchestratr-peers.")
    log(f"machine: {os.cpu_count()} cores, load {open('/proc/loadavg').read().split()[0]}; "
        f"wrk -t2 -c{a.conns} -d{a.duration}s; work dir {work}")
    try:
        for name, fn in (("orchestratr", bench_orchestratr), ("supervisord", bench_supervisord),
                         ("pueue", bench_pueue), ("pm2", bench_pm2), ("exec", bench_exec)):
            if name in only:
                try:
                    fn(a, work, res)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except Exception as e:  # noqa: BLE001
                    if name == "orchestratr":
                        raise
                    log(f"  {name} failed: {type(e).__name__}: {e}")
        report(a, res)
    finally:
        for p in PROCS:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
