"""Notifications (API.md §13) to a local HTTP receiver: ntfy headers, HMAC
signatures, retries after a 500, one-time action URLs, filters."""

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from daemon_fixture import Daemon, wait_for

SECRET = "s3cret-for-tests"


class Receiver:
    """Records every POST; `/flaky` answers 500 to its first two tries."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.fail_left = {"/flaky": 2}
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rec.lock:
                    rec.requests.append((self.path, dict(self.headers), body))
                    fail = rec.fail_left.get(self.path, 0) > 0
                    if fail:
                        rec.fail_left[self.path] -= 1
                self.send_response(500 if fail else 200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path):
        with self.lock:
            return [r for r in self.requests if r[0] == path]

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    rx = Receiver()
    base = f"http://127.0.0.1:{rx.port}"
    config = f"""
tasks:
  - name: fail
    command: "echo boom; exit 3"
  - name: ok
    command: ["true"]
notify:
  - url: {base}/ntfy
    format: ntfy
    events: ["execution.finished:failed"]
  - url: {base}/json
    format: json
    secret_env: ORCH_TEST_SECRET
    events: ["approval.requested"]
  - url: {base}/flaky
    format: json
    events: ["flaky.test"]
  - url: {base}/actions
    format: ntfy
    actions: true
    events: ["approval.requested"]
  - url: {base}/long-only
    format: ntfy
    events: ["execution.finished"]
    min_duration_ms: 600000
"""
    d = Daemon(tmp_path_factory.mktemp("notifyd"), config, {"ORCH_TEST_SECRET": SECRET})
    yield d, rx
    d.stop()
    rx.close()


def test_ntfy_headers_on_a_failed_run_only(env):
    d, rx = env
    _, ok = d.request("POST", "/executions", {"task": "ok"})
    _, ex = d.request("POST", "/executions", {"task": "fail"})
    got = wait_for(lambda: rx.at("/ntfy"), what="an ntfy delivery")
    path, headers, body = got[0]
    h = {k.lower(): v for k, v in headers.items()}
    assert h["title"] == "fail failed"
    assert h["priority"] == "4"
    assert h["tags"] == "x"
    assert h["click"] == f"{d.url}/executions/{ex['id']}/output"
    assert b"exit code 3" in body
    assert len(rx.at("/ntfy")) == 1  # the successful run did not match ":failed"


def test_json_delivery_is_hmac_signed(env):
    d, rx = env
    _, a = d.request("POST", "/approvals", {"title": "Sign me?"})
    got = wait_for(lambda: [r for r in rx.at("/json") if a["id"].encode() in r[2]], what="a json delivery")
    _, headers, body = got[0]
    h = {k.lower(): v for k, v in headers.items()}
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert h["x-orchestratr-signature"] == expected
    assert h["x-orchestratr-event"] == "approval.requested"
    ev = json.loads(body)["event"]
    assert ev["type"] == "approval.requested" and ev["approval"]["title"] == "Sign me?"


def test_delivery_is_retried_after_a_500(env):
    d, rx = env
    d.request("POST", "/events", {"type": "flaky.test", "source": "pytest", "data": {"n": 1}})
    got = wait_for(lambda: len(rx.at("/flaky")) >= 3 and rx.at("/flaky"), what="three tries")
    assert len({r[2] for r in got}) == 1  # the same body each time
    _, health = d.request("GET", "/health")
    assert health["notify_dropped"] == 0


def test_action_url_works_once_then_410(env):
    d, rx = env
    _, a = d.request("POST", "/approvals", {"title": "Deploy?"})
    got = wait_for(
        lambda: [r for r in rx.at("/actions") if b"Deploy?" in r[2]], what="an ntfy delivery with actions"
    )
    h = {k.lower(): v for k, v in got[0][1].items()}
    actions = [x.strip() for x in h["actions"].split(";")]
    assert len(actions) == 2
    approve_url = actions[0].split(",")[2].strip()
    deny_url = actions[1].split(",")[2].strip()
    assert actions[0].startswith("http, Approve, ") and "method=POST" in actions[0]
    req = urllib.request.Request(approve_url, method="POST")  # no token: the URL is the credential
    with urllib.request.urlopen(req, timeout=30) as r:
        decided = json.loads(r.read())
    assert decided["id"] == a["id"] and decided["status"] == "approved" and decided["decided_by"] == "ntfy"
    for url in (approve_url, deny_url):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30)
        assert e.value.code == 410
        assert json.loads(e.value.read())["code"] == "gone"


def test_min_duration_skips_short_runs(env):
    d, rx = env
    d.request("POST", "/executions", {"task": "ok"})
    # Deliveries leave one queue in event order: once a later approval's
    # notification arrived, the run's would have arrived before it.
    _, a = d.request("POST", "/approvals", {"title": "Marker"})
    wait_for(lambda: [r for r in rx.at("/json") if a["id"].encode() in r[2]], what="the marker")
    assert rx.at("/long-only") == []
