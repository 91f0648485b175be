"""A small, stdlib-only client of the orchestratr daemon's HTTP API.

Discovery (API.md §1): the port comes from ``<cfg>/port`` and the bearer token
from ``<cfg>/token``, where ``<cfg>`` is ``$ORCHESTRATR_CONFIG_DIR`` or
``$XDG_CONFIG_HOME/orchestratr`` (default ``~/.config/orchestratr``). Both can
be given explicitly, or through ``ORCHESTRATR_URL`` / ``ORCHESTRATR_TOKEN``.

Every method raises a subclass of :class:`orchestratr.errors.ApiError` for an
error answer (carrying the API's ``code``) and
:class:`orchestratr.errors.NotRunning` when no daemon answers; the app
protocol helpers (:meth:`Client.notify_launched` and friends) return ``False``
instead, so an app never fails because the daemon is down.
"""

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from .errors import NotRunning, OrchestratrError, error_for

__all__ = ["Client", "Event", "config_dir", "discover"]

FINAL_STATUSES = ("completed", "failed", "timeout", "cancelled", "lost")


def config_dir() -> Path:
    """``<cfg>``: ``$ORCHESTRATR_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/orchestratr``."""
    env = os.environ.get("ORCHESTRATR_CONFIG_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "orchestratr"


def discover(cfg: Optional[Union[str, Path]] = None) -> "Client":
    """A client for the daemon whose files live in ``cfg`` (default :func:`config_dir`)."""
    return Client(config_dir=cfg)


class Event(dict):
    """One event of the stream (API.md §5): ``id``, ``type``, ``source``,
    ``time``, ``target``, ``data``. A ``dict`` with attribute access for the
    usual fields."""

    @property
    def id(self) -> int:
        """The event id (strictly increasing)."""
        return int(self.get("id", 0))

    @property
    def type(self) -> str:
        """The event type, e.g. ``execution.finished``."""
        return str(self.get("type", ""))

    @property
    def data(self) -> Any:
        """The event's JSON payload."""
        return self.get("data")


class Client:
    """A connection-less client (one HTTP request per call).

    Args:
        url: base URL, e.g. ``http://127.0.0.1:9876``; default from
            ``ORCHESTRATR_URL`` or the port file.
        token: bearer token; default from ``ORCHESTRATR_TOKEN`` or the token file.
        config_dir: where the port and token files are (default :func:`config_dir`).
        timeout: seconds per request (long polls add their wait to it).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        config_dir: Optional[Union[str, Path]] = None,
        timeout: float = 30.0,
    ):
        self._cfg = Path(config_dir) if config_dir else globals()["config_dir"]()
        self._url = url or os.environ.get("ORCHESTRATR_URL") or None
        self._token = token or os.environ.get("ORCHESTRATR_TOKEN") or None
        self.timeout = timeout

    # ------------------------------------------------------------ plumbing

    @property
    def base_url(self) -> str:
        """The daemon's base URL. Raises :class:`NotRunning` without a port file."""
        if self._url:
            return self._url.rstrip("/")
        try:
            port = int((self._cfg / "port").read_text().strip())
        except (OSError, ValueError):
            raise NotRunning(f"the daemon is not running (no port file in {self._cfg})") from None
        return f"http://127.0.0.1:{port}"

    @property
    def token(self) -> Optional[str]:
        """The bearer token, or ``None`` when there is none."""
        if self._token:
            return self._token
        try:
            return (self._cfg / "token").read_text().strip() or None
        except OSError:
            return None

    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        h = {"Accept": "application/json"}
        t = self.token
        if t:
            h["Authorization"] = f"Bearer {t}"
        if extra:
            h.update(extra)
        return h

    def _open(self, method: str, path: str, body: Any = None, headers=None, timeout=None):
        data = None
        hdrs = self._headers(headers)
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            err = error_for(e.code, parsed)
            ra = e.headers.get("Retry-After") if e.headers else None
            if ra is not None:
                try:
                    setattr(err, "retry_after", float(ra))
                except ValueError:
                    pass
            raise err from None
        except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (ConnectionRefusedError, FileNotFoundError)) or isinstance(
                e, ConnectionRefusedError
            ):
                raise NotRunning(f"no daemon answers at {self.base_url}") from None
            raise

    def request(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Any:
        """Send one request and return the decoded JSON answer (``None`` when empty).

        Raises:
            ApiError: an error answer (subclass by ``code``).
            NotRunning: no daemon answers.
        """
        with self._open(method, path, body, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    # ------------------------------------------------------------ daemon

    def health(self) -> Dict[str, Any]:
        """``GET /health``."""
        return self.request("GET", "/health")

    def is_running(self) -> bool:
        """Whether a daemon answers ``/health``."""
        try:
            self.health()
            return True
        except (NotRunning, OSError):
            return False

    # ------------------------------------------------------------ app protocol

    def _report(self, name: str, what: str, body: Any = None) -> bool:
        try:
            self.request("POST", f"/apps/{urllib.parse.quote(name, safe='')}/{what}", body, timeout=2.0)
            return True
        except (OrchestratrError, OSError):
            return False

    def notify_launched(self, app: str, pid: Optional[int] = None) -> bool:
        """Tell the daemon ``app`` started (``POST /apps/{app}/launched``).

        Returns ``False`` (never raises) when the daemon is down or refuses.
        """
        return self._report(app, "launched", {"pid": pid if pid is not None else os.getpid()})

    def notify_ready(self, app: str) -> bool:
        """Tell the daemon ``app`` is ready. ``False`` when the daemon is down."""
        return self._report(app, "ready")

    def notify_stopped(self, app: str) -> bool:
        """Tell the daemon ``app`` stopped. ``False`` when the daemon is down."""
        return self._report(app, "stopped")

    def apps(self) -> List[Dict[str, Any]]:
        """``GET /apps`` → the list of apps."""
        return self.request("GET", "/apps")["apps"]

    # ------------------------------------------------------------ events

    def publish(self, type: str, source: str, data: Any = None) -> int:
        """``POST /events`` → the new event's id."""
        return self.request("POST", "/events", {"type": type, "source": source, "data": data or {}})["id"]

    def events(
        self,
        types: Optional[str] = None,
        last_event_id: Optional[int] = None,
        reconnect: bool = True,
    ) -> Iterator[Event]:
        """Iterate over live events (``GET /events/stream``), forever.

        Resumes after a dropped connection with ``Last-Event-ID`` (no gaps,
        no duplicates while the daemon retains the events); ``stream.gap`` and
        ``stream.lagged`` frames are yielded like other events.

        Args:
            types: comma list of types, ``*`` suffix = prefix (``"execution.*"``).
            last_event_id: resume after this id (default: only new events).
            reconnect: reconnect after a dropped stream (else stop).
        """
        last = last_event_id
        while True:
            q = {"type": types} if types else {}
            path = "/events/stream" + ("?" + urllib.parse.urlencode(q) if q else "")
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                resp = self._open("GET", path, headers=headers, timeout=3600)
            except (NotRunning, OSError):
                if not reconnect:
                    return
                time.sleep(1.0)
                continue
            with resp:
                for ev_id, kind, data in _sse_frames(resp):
                    if not data:
                        continue
                    try:
                        ev = Event(json.loads(data))
                    except ValueError:
                        continue
                    if ev_id is not None and ev_id.isdigit():
                        last = int(ev_id)
                    yield ev
            if not reconnect:
                return

    # ------------------------------------------------------------ executions

    def submit(
        self,
        task: str,
        args: Sequence[str] = (),
        cwd: Optional[str] = None,
        timeout_ms: Optional[int] = None,
    ) -> Dict[str, Any]:
        """``POST /executions`` → the new Execution (``pending`` or ``running``)."""
        body: Dict[str, Any] = {"task": task, "args": list(args)}
        if cwd:
            body["cwd"] = cwd
        if timeout_ms:
            body["timeout_ms"] = timeout_ms
        return self.request("POST", "/executions", body)

    def execution(self, execution_id: str) -> Dict[str, Any]:
        """``GET /executions/{id}``."""
        return self.request("GET", f"/executions/{execution_id}")

    def executions(self, status: Optional[str] = None, task: Optional[str] = None, limit: int = 100):
        """``GET /executions`` → list of Executions, newest first."""
        q = {k: v for k, v in {"status": status, "task": task, "limit": limit}.items() if v}
        return self.request("GET", "/executions?" + urllib.parse.urlencode(q))["executions"]

    def output(self, execution_id: str, offset: int = 0) -> bytes:
        """The combined output log from byte ``offset`` (``GET /executions/{id}/output``)."""
        with self._open("GET", f"/executions/{execution_id}/output?offset={offset}") as r:
            return r.read()

    def follow(self, execution_id: str, offset: int = 0) -> Iterator[str]:
        """Yield output text chunks live until the run ends (SSE, resumable by offset)."""
        last = offset
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            with self._open("GET", f"/executions/{execution_id}/stream", headers=headers, timeout=3600) as r:
                ended = False
                for ev_id, kind, data in _sse_frames(r):
                    if kind == "output":
                        chunk = json.loads(data)
                        last = int(ev_id) if ev_id and ev_id.isdigit() else last
                        yield chunk.get("text", "")
                    elif kind == "end":
                        ended = True
                        break
            if ended:
                return
            if self.execution(execution_id)["status"] in FINAL_STATUSES:
                return

    def run(
        self,
        task: str,
        args: Sequence[str] = (),
        follow: bool = True,
        cwd: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        on_output=None,
    ) -> Dict[str, Any]:
        """Run ``task``; with ``follow`` wait for it and return the final Execution.

        Args:
            on_output: called with each output text chunk while following
                (default: discard).
        Returns:
            The Execution (final when ``follow``; check ``status``/``exit_code``).
        """
        ex = self.submit(task, args, cwd=cwd, timeout_ms=timeout_ms)
        if not follow:
            return ex
        for chunk in self.follow(ex["id"]):
            if on_output:
                on_output(chunk)
        return self.execution(ex["id"])

    def cancel(self, execution_id: str) -> Dict[str, Any]:
        """``POST /executions/{id}/cancel`` → the cancelled Execution."""
        return self.request("POST", f"/executions/{execution_id}/cancel")

    # ------------------------------------------------------------ approvals

    def ask(
        self,
        title: str,
        detail: Optional[str] = None,
        options: Optional[Sequence[str]] = None,
        default: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        source: str = "python",
        wait: bool = True,
    ) -> Dict[str, Any]:
        """Create an approval and (with ``wait``) block until a person decides
        or it expires. Returns the Approval; read ``decision``/``status``."""
        body: Dict[str, Any] = {"title": title, "source": source}
        for k, v in (("detail", detail), ("options", list(options) if options else None),
                     ("default", default), ("timeout_ms", timeout_ms)):
            if v is not None:
                body[k] = v
        a = self.request("POST", "/approvals", body)
        while wait and a["status"] == "pending":
            a = self.request("GET", f"/approvals/{a['id']}?wait=60", timeout=self.timeout + 60)
        return a

    def approvals(self, status: Optional[str] = "pending") -> List[Dict[str, Any]]:
        """``GET /approvals?status=`` → list of Approvals."""
        q = "?" + urllib.parse.urlencode({"status": status}) if status else ""
        return self.request("GET", "/approvals" + q)["approvals"]

    def approve(self, approval_id: str, comment: Optional[str] = None, by: str = "python") -> Dict[str, Any]:
        """Answer ``approve``. Raises :class:`Conflict` if already decided."""
        return self.decide(approval_id, "approve", comment, by)

    def deny(self, approval_id: str, comment: Optional[str] = None, by: str = "python") -> Dict[str, Any]:
        """Answer ``deny``. Raises :class:`Conflict` if already decided."""
        return self.decide(approval_id, "deny", comment, by)

    def decide(self, approval_id: str, decision: str, comment: Optional[str] = None, by: str = "python"):
        """``POST /approvals/{id}`` with any of the approval's options."""
        body: Dict[str, Any] = {"decision": decision, "by": by}
        if comment:
            body["comment"] = comment
        return self.request("POST", f"/approvals/{approval_id}", body)

    # ------------------------------------------------------------ agents (API.md §10)

    def agents(self, status: Optional[str] = None, agent_type: Optional[str] = None) -> List[Dict[str, Any]]:
        """``GET /agents`` → list of Agents."""
        q = {k: v for k, v in {"status": status, "agent_type": agent_type}.items() if v}
        return self.request("GET", "/agents" + ("?" + urllib.parse.urlencode(q) if q else ""))["agents"]

    def spawn_agent(
        self,
        agent_type: str,
        working_dir: Optional[str] = None,
        name: Optional[str] = None,
        prompt: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> Dict[str, Any]:
        """``POST /agents/spawn`` → the new Agent."""
        body: Dict[str, Any] = {"agent_type": agent_type}
        for k, v in (("working_dir", working_dir), ("name", name), ("prompt", prompt), ("env", env)):
            if v is not None:
                body[k] = v
        return self.request("POST", "/agents/spawn", body)

    def send_to_agent(self, session_id: str, text: str, submit: bool = True) -> Dict[str, Any]:
        """``POST /agents/{id}/input`` with text (pasted literally, then Enter)."""
        return self.request("POST", f"/agents/{session_id}/input", {"text": text, "submit": submit})

    def agent_screen(self, session_id: str) -> Dict[str, Any]:
        """``GET /agents/{id}/screen`` → ``{"text","cols","rows","cursor"}``."""
        return self.request("GET", f"/agents/{session_id}/screen")

    def kill_agent(self, session_id: str) -> Dict[str, Any]:
        """``DELETE /agents/{id}``."""
        return self.request("DELETE", f"/agents/{session_id}")

    # ------------------------------------------------------------ tools (API.md §13)

    def tools(self) -> List[Dict[str, Any]]:
        """``GET /tools`` → the MCP tools as plain JSON."""
        return self.request("GET", "/tools")["tools"]

    def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None, timeout: float = 660) -> Dict[str, Any]:
        """``POST /tools/{name}`` → ``{"tool","is_error","result","text"}``."""
        return self.request("POST", f"/tools/{name}", arguments or {}, timeout=timeout)


def _sse_frames(resp) -> Iterator:
    """Yield ``(id, event, data)`` per SSE frame (WHATWG parsing, comments skipped)."""
    ev_id: Optional[str] = None
    kind = ""
    data: List[str] = []
    has = False
    for raw in resp:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if has:
                yield ev_id, kind or "message", "\n".join(data)
            ev_id, kind, data, has = ev_id, "", [], False
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        if v.startswith(" "):
            v = v[1:]
        if k == "id":
            ev_id, has = v, True
        elif k == "event":
            kind, has = v, True
        elif k == "data":
            data.append(v)
            has = True
