"""The stdlib Python client against the real daemon."""

import os
import threading

import pytest

import orchestratr
from orchestratr import Conflict, NotFound, NotRunning, Unauthorized


def test_discovery_by_files_and_env(daemon, monkeypatch):
    monkeypatch.setenv("ORCHESTRATR_CONFIG_DIR", str(daemon.cfg))
    monkeypatch.delenv("ORCHESTRATR_URL", raising=False)
    c = orchestratr.discover()
    assert c.base_url == daemon.url
    assert c.token == daemon.token
    assert c.health()["status"] == "ok"


def test_app_protocol_helpers(client):
    assert client.notify_launched("myapp", pid=os.getpid())
    assert client.notify_ready("myapp")
    assert client.notify_stopped("myapp")
    assert client.notify_ready("no-such-app") is False


def test_helpers_return_false_when_the_daemon_is_down(tmp_path):
    c = orchestratr.Client(config_dir=tmp_path)
    assert c.notify_launched("x") is False
    assert c.notify_ready("x") is False
    assert not c.is_running()
    with pytest.raises(NotRunning):
        c.health()
    (tmp_path / "port").write_text("1\n")  # stale port file: refused, never hangs
    assert c.notify_ready("x") is False
    with pytest.raises(NotRunning):
        c.health()


def test_run_follows_output(client):
    chunks = []
    ex = client.run("hello", follow=True, on_output=chunks.append)
    assert ex["status"] == "completed" and ex["exit_code"] == 0
    assert "".join(chunks) == "hello\nworld\n"
    failed = client.run("fail")
    assert failed["status"] == "failed" and failed["exit_code"] == 2


def test_typed_errors_carry_the_api_code(client, daemon):
    with pytest.raises(NotFound) as e:
        client.submit("no-such-task")
    assert e.value.code == "not_found" and e.value.status == 404
    bad = orchestratr.Client(url=daemon.url, token="0" * 64)
    with pytest.raises(Unauthorized) as e:
        bad.executions()
    assert e.value.code == "unauthorized"


def test_ask_and_approve(client):
    result = {}

    def asker():
        result["a"] = client.ask("Proceed?", detail="from the client test")

    t = threading.Thread(target=asker)
    t.start()
    from daemon_fixture import wait_for

    pending = wait_for(lambda: [a for a in client.approvals() if a["title"] == "Proceed?"], what="the approval")
    decided = client.approve(pending[0]["id"], comment="yes")
    assert decided["status"] == "approved"
    t.join(timeout=60)
    assert result["a"]["decision"] == "approve"
    with pytest.raises(Conflict) as e:
        client.deny(pending[0]["id"])
    assert e.value.code == "conflict"


def test_events_resume_with_last_event_id(client):
    first = client.publish("test.one", "pytest", {"n": 1})
    second = client.publish("test.two", "pytest", {"n": 2})
    it = client.events(types="test.*", last_event_id=first - 1)
    got = [next(it), next(it)]
    assert [e.id for e in got] == [first, second]
    assert got[1].type == "test.two" and got[1].data == {"n": 2}
    it.close()
    resumed = client.events(types="test.*", last_event_id=first)
    assert next(resumed).id == second
    resumed.close()
