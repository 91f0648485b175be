"""Shared pieces of the orchestratr benchmark helpers (stdlib only).

Used by scripts/bench_sse.py and scripts/bench_exec.py, which put this
directory on sys.path so they can be run from any cwd:
  - percentile(), fmt(): the figures in the reports
  - connect(), shutdown(): raw loopback sockets with TCP_NODELAY
  - read_head(), read_response(), is_chunked(): HTTP/1.1 responses on a
    keep-alive connection (Content-Length or chunked bodies)
  - dechunk(), pump_sse(), parse_sse_frame(): an endless chunked
    text/event-stream body, frame by frame, stamped with the receive time
"""

import socket
import time

RECV_SIZE = 65536


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def fmt(v, digits=3):
    return "nan" if v is None or v != v else f"{v:.{digits}f}"


# ----------------------------------------------------------------- sockets ---
def connect(port, timeout):
    """A TCP connection to 127.0.0.1:port with TCP_NODELAY set."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def shutdown(sock):
    """Close sock, first waking any thread blocked in recv() on it."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _recv_more(sock, buf, closed_msg):
    d = sock.recv(RECV_SIZE)
    if not d:
        raise ConnectionError(closed_msg)
    return buf + d


# -------------------------------------------------------------- responses ---
def read_head(sock, buf, closed_msg="connection closed before the response headers"):
    """Read up to the end of the response headers; buf holds bytes already
    received. -> (status, headers with lower-case names, the bytes after them)."""
    while b"\r\n\r\n" not in buf:
        buf = _recv_more(sock, buf, closed_msg)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def is_chunked(hdrs):
    return "chunked" in hdrs.get("transfer-encoding", "").lower()


def read_response(sock, buf, closed_msg=None):
    """Read one whole response (Content-Length or chunked body).
    -> (status, headers, body, bytes received past its end). closed_msg, if
    given, is the error for a connection closed at any point; by default the
    error says where."""
    status, hdrs, rest = read_head(sock, buf, closed_msg or "connection closed before the response headers")
    if is_chunked(hdrs):
        msg = closed_msg or "closed inside a chunked body"
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest = _recv_more(sock, rest, msg)
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest = _recv_more(sock, rest, msg)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            rest = _recv_more(sock, rest, closed_msg or "closed inside a body")
        body, rest = rest[:n], rest[n:]
    return status, hdrs, body, rest


# ------------------------------------------------------------- SSE streams ---
def dechunk(raw):
    """Decode the complete chunks at the start of raw.
    -> (their data, the undecoded rest, whether the terminating chunk was seen)."""
    out = []
    while True:
        crlf = raw.find(b"\r\n")
        if crlf < 0:
            return b"".join(out), raw, False
        size = int(raw[:crlf].split(b";", 1)[0].strip(), 16)
        if size == 0:
            return b"".join(out), b"", True
        if len(raw) < crlf + 2 + size + 2:
            return b"".join(out), raw, False
        out.append(raw[crlf + 2:crlf + 2 + size])
        raw = raw[crlf + 2 + size + 2:]


def pump_sse(sock, raw, chunked, on_frame, recv_size=RECV_SIZE, normalize_crlf=False, end_error=None):
    """Read an SSE response body until it ends, calling on_frame(frame, recv_ns)
    for each complete frame (str, without its blank line); recv_ns is
    time.perf_counter_ns() taken right after the recv() that completed it.
    raw: body bytes already received with the headers. normalize_crlf: treat
    CRLF as LF. Returns True when the terminating chunk arrived, False when the
    connection was closed; with end_error, the terminating chunk raises
    ConnectionError(end_error) instead (dropping the frames that came with it)."""
    text = b""  # decoded bytes not yet split into frames
    now = time.perf_counter_ns()
    while True:
        if chunked:
            body, raw, last = dechunk(raw)
            if last and end_error:
                raise ConnectionError(end_error)
        else:
            body, raw, last = raw, b"", False
        if body:
            text += body
            if normalize_crlf:
                text = text.replace(b"\r\n", b"\n")
            while True:
                end = text.find(b"\n\n")
                if end < 0:
                    break
                frame, text = text[:end], text[end + 2:]
                on_frame(frame.decode("utf-8", "replace"), now)
        if last:
            return True
        data = sock.recv(recv_size)
        now = time.perf_counter_ns()
        if not data:
            return False
        raw += data


def parse_sse_frame(frame):
    """-> (fields other than data, the data lines); empty and comment lines skipped."""
    fields, data = {}, []
    for line in frame.split("\n"):
        if not line or line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        if v.startswith(" "):
            v = v[1:]
        if k == "data":
            data.append(v)
        else:
            fields[k] = v
    return fields, data
