import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_fixture import Daemon, ensure_binary  # noqa: E402

MCP_CONFIG = r"""
tasks:
  - name: echo
    mcp: true
    description: Print the argv it receives as JSON.
    command: ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", "{text}", "--count={count}"]
    inputs:
      text: {type: string, required: true, description: any text}
      count: {type: integer}
  - name: shell.echo
    mcp: true
    command: "printf '%s|' {text}"
    inputs:
      text: {type: string, required: true}
  - name: fail
    mcp: true
    command: "echo boom; exit 3"
  - name: slow
    mcp: true
    command: "echo start; sleep 3; echo done"
  - name: gated
    mcp: true
    mcp_approval: always
    command: ["echo", "approved-run"]
  - name: hidden
    command: ["echo", "not a tool"]
agents:
  fake:
    delegate: ["python3", "-c", "import sys; print('delegated:', sys.argv[1][:40])", "{prompt}"]
"""


@pytest.fixture(scope="session", autouse=True)
def _binary():
    ensure_binary()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("mcpd"), MCP_CONFIG)
    yield d
    d.stop()
