"""The official MCP Python SDK (`mcp` on PyPI) as the client of orchestratr,
over both transports: Streamable HTTP (`POST /mcp`) and stdio (`orchestratr mcp`)."""

import json
import threading
import time
from contextlib import asynccontextmanager

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from daemon_fixture import BIN, wait_for

TRANSPORTS = ["http", "stdio"]


@asynccontextmanager
async def raw_session(daemon, transport):
    if transport == "http":
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {daemon.token}"})
        async with client:
            async with streamable_http_client(daemon.url + "/mcp", http_client=client) as streams:
                async with ClientSession(streams[0], streams[1]) as s:
                    yield s
    else:
        params = StdioServerParameters(
            command=str(BIN),
            args=["mcp"],
            env={"ORCHESTRATR_CONFIG_DIR": str(daemon.cfg), "ORCHESTRATR_STATE_DIR": str(daemon.state)},
        )
        async with stdio_client(params) as streams:
            async with ClientSession(streams[0], streams[1]) as s:
                yield s


@asynccontextmanager
async def session(daemon, transport):
    async with raw_session(daemon, transport) as s:
        await s.initialize()
        yield s


def run(fn):
    return anyio.run(fn)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "asked,answered",
    [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ],
)
def test_initialize_with_each_protocol_version(daemon, transport, asked, answered):
    async def go():
        async with raw_session(daemon, transport) as s:
            result = await s.send_request(
                types.InitializeRequest(
                    params=types.InitializeRequestParams(
                        protocol_version=asked,
                        capabilities=types.ClientCapabilities(),
                        client_info=types.Implementation(name="pytest", version="1"),
                    )
                ),
                types.InitializeResult,
            )
            assert result.protocol_version == answered
            assert result.server_info.name == "orchestratr"
            assert result.capabilities.tools is not None
            s.adopt(result)
            await s.send_notification(types.InitializedNotification())
            tools = await s.list_tools()
            assert any(t.name == "echo" for t in tools.tools)

    run(go)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_list_tools_has_tasks_and_builtins(daemon, transport):
    async def go():
        async with session(daemon, transport) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            for name in ["echo", "shell_echo", "fail", "slow", "gated", "run_task", "get_execution",
                         "execution_output", "cancel_execution", "delegate", "ask_human"]:
                assert name in tools, name
            assert "hidden" not in tools
            echo = tools["echo"]
            assert echo.input_schema["required"] == ["text"]
            assert echo.input_schema["properties"]["count"]["type"] == "integer"
            assert echo.output_schema["type"] == "object"
            assert "approval" in tools["gated"].description

    run(go)


METACHARS = "$(touch /tmp/orchestratr-pwned); `id` 'q' \"dq\" * ~ ; | & > x \\ \n second line {text}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_task_tool_gets_inputs_verbatim_in_argv(daemon, transport):
    async def go():
        async with session(daemon, transport) as s:
            r = await s.call_tool("echo", {"text": METACHARS, "count": 5})
            assert not r.is_error, r
            sc = r.structured_content
            assert sc["status"] == "completed" and sc["exit_code"] == 0
            assert json.loads(sc["output_tail"]) == [METACHARS, "--count=5"]
            assert sc["output_url"].endswith(f"/executions/{sc['execution_id']}/output")
            r = await s.call_tool("shell_echo", {"text": METACHARS})
            assert r.structured_content["output_tail"] == METACHARS + "|"

    run(go)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_failing_task_is_error(daemon, transport):
    async def go():
        async with session(daemon, transport) as s:
            r = await s.call_tool("fail", {})
            assert r.is_error
            assert r.structured_content["exit_code"] == 3
            assert r.structured_content["status"] == "failed"
            assert "boom" in r.content[0].text
            bad = await s.call_tool("echo", {"count": "x"})
            assert bad.is_error and "count" in bad.content[0].text

    run(go)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_builtins_run_task_get_execution_output(daemon, transport):
    async def go():
        async with session(daemon, transport) as s:
            r = await s.call_tool("run_task", {"task": "slow", "wait_ms": 50})
            sc = r.structured_content
            assert not r.is_error and sc["finished"] is False
            assert "get_execution" in r.content[0].text
            done = await s.call_tool("get_execution", {"execution_id": sc["execution_id"], "wait_ms": 30000})
            assert done.structured_content["status"] == "completed"
            out = await s.call_tool("execution_output", {"execution_id": sc["execution_id"], "offset": 0})
            assert out.structured_content["text"] == "start\ndone\n"
            d = await s.call_tool("delegate", {"agent_type": "fake", "task": "write tests"})
            assert d.structured_content["status"] == "completed"
            assert "delegated: write tests" in d.structured_content["output_tail"]

    run(go)


def test_progress_notifications_over_sse(daemon):
    seen = []

    async def progress(p, total, message):
        seen.append((p, message))

    async def go():
        async with session(daemon, "http") as s:
            r = await s.call_tool("slow", {}, progress_callback=progress)
            assert r.structured_content["status"] == "completed"

    run(go)
    assert seen, "no notifications/progress arrived before the result"


def decide_when_pending(daemon, decision, out, match="gated"):
    def pending():
        _, body = daemon.request("GET", "/approvals?status=pending")
        return [a for a in body["approvals"] if match in (a["title"] + json.dumps(a.get("context")))]

    try:
        a = wait_for(pending, what="a pending approval")[0]
        out["approval"] = a
        daemon.request("POST", f"/approvals/{a['id']}", {"decision": decision, "by": "pytest", "comment": "ok"})
    except Exception as e:  # reported by the test
        out["error"] = e


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_approval_gated_tool_waits_for_a_person(daemon, transport, decision):
    out = {}
    t = threading.Thread(target=decide_when_pending, args=(daemon, decision, out))
    t.start()

    async def go():
        async with session(daemon, transport) as s:
            return await s.call_tool("gated", {})

    try:
        r = run(go)
    finally:
        t.join(timeout=60)
    assert "error" not in out, out
    assert out["approval"]["source"] == "mcp"
    if decision == "approve":
        assert not r.is_error
        assert r.structured_content["output_tail"] == "approved-run"
    else:
        assert r.is_error
        assert "not approved" in r.content[0].text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ask_human_returns_the_decision(daemon, transport):
    out = {}
    t = threading.Thread(target=decide_when_pending, args=(daemon, "approve", out, "Ship it?"))
    t.start()

    async def go():
        async with session(daemon, transport) as s:
            return await s.call_tool("ask_human", {"question": "Ship it?"})

    try:
        r = run(go)
    finally:
        t.join(timeout=60)
    assert r.structured_content["decision"] == "approve"
    assert r.structured_content["decided_by"] == "pytest"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_tool_is_a_protocol_error(daemon, transport):
    async def go():
        async with session(daemon, transport) as s:
            with pytest.raises(Exception) as e:
                await s.call_tool("no_such_tool", {})
            assert "unknown tool" in str(e.value)
            await s.send_ping()

    run(go)


def test_plain_http_tools_routes(daemon):
    status, body = daemon.request("GET", "/tools")
    assert status == 200 and body["total"] == len(body["tools"])
    status, body = daemon.request("POST", "/tools/echo", {"text": "a b"})
    assert status == 200 and not body["is_error"]
    assert json.loads(body["result"]["output_tail"]) == ["a b", "--count="]
    status, body = daemon.request("POST", "/tools/fail", {})
    assert status == 200 and body["is_error"] and body["result"]["exit_code"] == 3
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as e:
        daemon.request("POST", "/tools/echo", {})
    assert e.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as e:
        daemon.request("GET", "/mcp")
    assert e.value.code == 405


def test_stdio_bridge_writes_only_protocol_messages(daemon):
    import subprocess

    env = dict(daemon.env)
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    p = subprocess.run(
        [str(BIN), "mcp"], input="\n".join(json.dumps(x) for x in lines) + "\nnot json\n",
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert p.returncode == 0
    msgs = [json.loads(line) for line in p.stdout.splitlines()]
    assert all(m.get("jsonrpc") == "2.0" for m in msgs)
    assert sorted(str(m.get("id")) for m in msgs) == ["1", "2", "None"]


def test_stdio_bridge_without_daemon_answers_errors(tmp_path):
    import os
    import subprocess

    env = dict(os.environ, ORCHESTRATR_CONFIG_DIR=str(tmp_path), ORCHESTRATR_STATE_DIR=str(tmp_path))
    env.pop("ORCHESTRATR_URL", None)
    p = subprocess.run(
        [str(BIN), "mcp"], input=json.dumps({"jsonrpc": "2.0", "id": 7, "method": "ping"}) + "\n",
        capture_output=True, text=True, env=env, timeout=60,
    )
    msg = json.loads(p.stdout)
    assert msg["id"] == 7 and "not running" in msg["error"]["message"]
    assert "not running" in p.stderr


def test_high_level_client_auto_mode_falls_back_from_discover(daemon):
    """The SDK's default `Client` probes `server/discover` (2026 revision)
    first; orchestratr answers -32601 and the client falls back to
    `initialize`, like current Claude clients do."""
    from mcp.client import Client

    params = StdioServerParameters(
        command=str(BIN),
        args=["mcp"],
        env={"ORCHESTRATR_CONFIG_DIR": str(daemon.cfg), "ORCHESTRATR_STATE_DIR": str(daemon.state)},
    )

    async def go():
        async with Client(params) as c:
            assert c.protocol_version == "2025-11-25"
            tools = await c.list_tools()
            assert any(t.name == "run_task" for t in tools.tools)
            r = await c.call_tool("echo", {"text": "auto"})
            assert json.loads(r.structured_content["output_tail"]) == ["auto", "--count="]

    run(go)
