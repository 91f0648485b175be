"""Boot the real orchestratr binary for a test: private temp config/state
dirs, `serve --port 0`, the port read from the port file. Shared by the MCP,
notification and Python-client suites."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("ORCHESTRATR_BIN", ROOT / "target" / "debug" / "orchestratr"))


def wait_for(pred, timeout=30.0, what="condition"):
    """Poll `pred` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """A running daemon. Attributes: `url`, `token`, `cfg`, `state`, `env`."""

    def __init__(self, tmp: Path, config: str, extra_env=None):
        self.cfg = tmp / "cfg"
        self.state = tmp / "state"
        self.cfg.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        (self.cfg / "config.yml").write_text(config)
        self.env = dict(os.environ)
        self.env.update(
            {
                "ORCHESTRATR_CONFIG_DIR": str(self.cfg),
                "ORCHESTRATR_STATE_DIR": str(self.state),
                "ORCHESTRATR_LOG": "warn",
            }
        )
        self.env.pop("ORCHESTRATR_URL", None)
        self.env.pop("ORCHESTRATR_TOKEN", None)
        if extra_env:
            self.env.update(extra_env)
        self.log = open(tmp / "daemon.log", "wb")
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--port", "0"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        port_file = self.cfg / "port"

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}: {(tmp / 'daemon.log').read_text()}")
            return port_file.exists() and port_file.read_text().strip()

        self.port = int(wait_for(ready, what="the port file"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = (self.cfg / "token").read_text().strip()

    def request(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def ensure_binary():
    if not BIN.exists():
        print(f"missing {BIN}: run `cargo build` first", file=sys.stderr)
        raise SystemExit(1)
