import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package, also when not installed
sys.path.insert(0, str(HERE.parents[2] / "tests" / "python"))
from daemon_fixture import Daemon, ensure_binary  # noqa: E402

CONFIG = """
apps:
  - name: myapp
    command: "sleep 60"
tasks:
  - name: hello
    command: "echo hello; echo world"
  - name: fail
    command: "echo no; exit 2"
"""


@pytest.fixture(scope="session", autouse=True)
def _binary():
    ensure_binary()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("clientd"), CONFIG)
    yield d
    d.stop()


@pytest.fixture()
def client(daemon):
    import orchestratr

    return orchestratr.Client(config_dir=daemon.cfg)
