#!/usr/bin/env python3
"""SSE publish-to-receive latency benchmark for orchestratr (stdlib only).

N subscribers connect to GET /events/stream over raw sockets (Host: 127.0.0.1,
no Origin header), decode the chunked transfer encoding and the SSE frames
(`id: N` / `event: T` / `data: {json}` / blank line). One publisher sends
POST /events with {"source":"bench","type":"bench.ping","data":{"t_ns":T}} on a
keep-alive connection every --interval-ms, T = time.perf_counter_ns() taken just
before the request is written. Everything runs in one process, so every
subscriber computes (receive time - T) on the same clock; the receive time is
taken right after recv() returns the bytes that complete the frame.

Usage: bench_sse.py --port P [--subscribers 10] [--events 1000] [--interval-ms 5]
The last line of the output is machine readable:
  RESULT p50_ms=... p99_ms=... max_ms=... received=... expected=... errors=...
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (connect, fmt, is_chunked, parse_sse_frame, percentile,  # noqa: E402
                      pump_sse, read_head, read_response, shutdown)

CONNECT_TIMEOUT_S = 5.0


class Subscriber(threading.Thread):
    def __init__(self, idx, port, path):
        super().__init__(name=f"sub{idx}", daemon=True)
        self.idx = idx
        self.port = port
        self.path = path
        self.sock = None
        self.connected = threading.Event()  # retry: frame seen
        self.latencies_ns = []
        self.seen_ping_seq = set()
        self.warmups = set()
        self.last_id = None
        self.ids_out_of_order = 0
        self.duplicates = 0
        self.other_events = {}
        self.error = None
        self.headers = {}
        self.status = None
        self.chunked = False
        self.retry_seen = False
        self.closed_by_server = False
        self.stop = False

    # --- HTTP (response and chunked decoding: benchlib) ---------------------
    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - report anything
            if not self.stop:
                self.error = f"{type(e).__name__}: {e}"
        finally:
            self.connected.set()

    def _run(self):
        s = connect(self.port, CONNECT_TIMEOUT_S)
        self.sock = s
        s.sendall(
            (f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
        )
        self.status, self.headers, raw = read_head(s, b"", "closed before response headers")
        if self.status != 200:
            raise ConnectionError(f"status {self.status}: {raw[:200]!r}")
        # The subscription exists once the head arrived (`retry:` now rides on
        # the first event frame, API.md §9).
        self.connected.set()
        self.chunked = is_chunked(self.headers)
        s.settimeout(None)
        pump_sse(s, raw, self.chunked, self._frame, normalize_crlf=True,
                 end_error="server ended the chunked stream")
        if not self.stop:
            self.closed_by_server = True

    # --- SSE frames ---------------------------------------------------------
    def _frame(self, frame, now):
        if all(line.startswith(":") for line in frame.split("\n")):
            return  # comments only
        fields, data_lines = parse_sse_frame(frame)
        if "retry" in fields and not data_lines:
            self.retry_seen = True
            self.connected.set()
            return
        etype = fields.get("event", "message")
        if "id" in fields:
            try:
                eid = int(fields["id"])
            except ValueError:
                eid = None
            if eid is not None and self.last_id is not None:
                if eid == self.last_id:
                    self.duplicates += 1
                elif eid < self.last_id:
                    self.ids_out_of_order += 1
            if eid is not None:
                self.last_id = eid
        if not self.retry_seen:
            # some servers might not send retry first; count as connected anyway
            self.connected.set()
        try:
            ev = json.loads("\n".join(data_lines)) if data_lines else {}
        except ValueError:
            self.other_events["<bad json>"] = self.other_events.get("<bad json>", 0) + 1
            return
        if etype == "bench.ping":
            d = ev.get("data") or {}
            seq = d.get("seq")
            if seq in self.seen_ping_seq:
                self.duplicates += 1
                return
            self.seen_ping_seq.add(seq)
            self.latencies_ns.append(now - int(d["t_ns"]))
        elif etype == "bench.warmup":
            self.warmups.add((ev.get("data") or {}).get("n"))
        else:
            self.other_events[etype] = self.other_events.get(etype, 0) + 1

    def close(self):
        self.stop = True
        shutdown(self.sock)


class Publisher:
    """POST /events on one keep-alive connection (raw socket, minimal HTTP)."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b""
        self.reconnects = -1

    def _connect(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = connect(self.port, CONNECT_TIMEOUT_S)
        self.buf = b""
        self.reconnects += 1

    def post(self, event_type, data, t_ns=None):
        """Return (status, body, t_ns). t_ns is stamped into data if requested."""
        for attempt in range(2):
            if self.sock is None:
                self._connect()
            if t_ns is not None:
                t = time.perf_counter_ns()
                data = dict(data, t_ns=t)
            else:
                t = None
            body = json.dumps({"source": "bench", "type": event_type, "data": data},
                              separators=(",", ":")).encode()
            req = (b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Content-Type: application/json\r\nContent-Length: "
                   + str(len(body)).encode() + b"\r\n\r\n" + body)
            try:
                self.sock.sendall(req)
                return self._response() + (t,)
            except (ConnectionError, OSError):
                self.sock = None
                if attempt:
                    raise

    def _response(self):
        status, hdrs, body, self.buf = read_response(self.sock, self.buf, closed_msg="closed")
        if hdrs.get("connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
        return status, body

    def close(self):
        if self.sock is not None:
            self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--subscribers", type=int, default=10)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--path", default="/events/stream",
                    help="stream path incl. query, e.g. '/events/stream?type=bench.*'")
    args = ap.parse_args()

    # Threads blocked in recv() release the GIL; a short switch interval keeps a
    # busy thread from delaying the receive timestamp of another by up to 5 ms.
    sys.setswitchinterval(0.0001)

    subs = [Subscriber(i, args.port, args.path) for i in range(args.subscribers)]
    pub = Publisher(args.port)
    errors = []
    live = []
    stalled = 0
    expected_each = 0
    pub_elapsed_s = float("nan")
    pub_rtt_ns = []
    pub_fail = {}
    try:
        for s in subs:
            s.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        for s in subs:
            s.connected.wait(max(0.0, deadline - time.monotonic()))
        bad = [s for s in subs if s.error or not s.connected.is_set()]
        stalled = len(bad)
        if bad:
            errors.append(
                f"{len(bad)} of {len(subs)} subscribers connecting at the same time got no "
                f"response within {CONNECT_TIMEOUT_S:.0f} s (subscribers "
                f"{','.join(str(s.idx) for s in bad)}: {bad[0].error or 'no response'}); "
                "reconnecting them one at a time")
            for s in bad:
                s.close()
                fresh = Subscriber(s.idx, args.port, args.path)
                subs[subs.index(s)] = fresh
                fresh.start()
                fresh.connected.wait(CONNECT_TIMEOUT_S)
        bad = [s for s in subs if s.error or not s.connected.is_set()]
        for s in bad:
            errors.append(f"subscriber {s.idx}: {s.error or 'no response within %.0f s of connecting' % CONNECT_TIMEOUT_S}")
        live = [s for s in subs if s not in bad]
        if not live:
            raise SystemExit(f"no subscriber connected: {errors}")
        s0 = live[0]
        ctype = s0.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            errors.append(f"stream Content-Type is {ctype!r}, expected text/event-stream")
        if not s0.chunked:
            errors.append(f"stream is not chunked (Transfer-Encoding: {s0.headers.get('transfer-encoding')!r})")
        if not s0.retry_seen:
            errors.append("first frame was not 'retry: 2000'")

        # Warm-up: make sure every subscriber is registered with the daemon
        # (it may send `retry:` before it subscribes) before measuring.
        n = 0
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            n += 1
            pub.post("bench.warmup", {"n": n})
            time.sleep(0.05)
            if all(s.warmups for s in live):
                break
        laggards = [s.idx for s in live if not s.warmups]
        if laggards:
            errors.append(f"subscribers {laggards} received no warm-up event within 5 s")
        time.sleep(0.05)

        interval_ns = int(args.interval_ms * 1e6)
        t_next = time.perf_counter_ns()
        t_pub_start = t_next
        for seq in range(args.events):
            now = time.perf_counter_ns()
            if t_next > now:
                time.sleep((t_next - now) / 1e9)
            t_next += interval_ns
            try:
                status, body, t_sent = pub.post("bench.ping", {"seq": seq}, t_ns=True)
            except (ConnectionError, OSError) as e:
                pub_fail[str(e)] = pub_fail.get(str(e), 0) + 1
                continue
            pub_rtt_ns.append(time.perf_counter_ns() - t_sent)
            if status != 202:
                key = f"POST /events -> {status} {body[:120]!r}"
                pub_fail[key] = pub_fail.get(key, 0) + 1
        pub_elapsed_s = (time.perf_counter_ns() - t_pub_start) / 1e9
        # let the last events arrive
        expected_each = args.events - sum(pub_fail.values())
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if all(len(s.latencies_ns) >= expected_each or s.error or s.closed_by_server for s in live):
                break
            time.sleep(0.01)
    finally:
        for s in subs:
            s.close()
        pub.close()
        for s in subs:
            s.join(timeout=1.0)

    for k, v in pub_fail.items():
        errors.append(f"publish failed {v}x: {k}")
    lat = sorted(x / 1e6 for s in live for x in s.latencies_ns)
    received = len(lat)
    # subscribers that never connected count as missing deliveries
    expected = args.subscribers * expected_each
    per_sub = [len(s.latencies_ns) for s in live] or [0]
    for s in live:
        if s.error:
            errors.append(f"subscriber {s.idx}: {s.error}")
        if s.closed_by_server:
            errors.append(f"subscriber {s.idx}: stream closed by the server ({s.other_events})")
        if s.ids_out_of_order or s.duplicates:
            errors.append(f"subscriber {s.idx}: {s.ids_out_of_order} ids out of order, {s.duplicates} duplicates")
    lagged = sum(s.other_events.get("stream.lagged", 0) for s in live)
    if lagged:
        errors.append(f"{lagged} stream.lagged frames")
    rtt = sorted(x / 1e6 for x in pub_rtt_ns)

    print(f"SSE publish -> receive latency: {len(live)}/{args.subscribers} subscribers connected, {args.events} events "
          f"every {args.interval_ms:g} ms (stream {args.path})")
    if lat:
        print(f"  latency ms: p50 {percentile(lat, 50):.3f}  p90 {percentile(lat, 90):.3f}  "
              f"p99 {percentile(lat, 99):.3f}  p99.9 {percentile(lat, 99.9):.3f}  "
              f"max {lat[-1]:.3f}  mean {statistics.fmean(lat):.3f}")
    print(f"  published {args.events} in {pub_elapsed_s:.2f} s "
          f"({args.events / pub_elapsed_s:.0f} events/s; target pace {1000 / args.interval_ms:.0f}/s)")
    print(f"  received {received}/{expected} (per subscriber min {min(per_sub)} max {max(per_sub)})")
    if rtt:
        print(f"  POST /events round trip ms: p50 {percentile(rtt, 50):.3f}  "
              f"p99 {percentile(rtt, 99):.3f}  max {rtt[-1]:.3f}")
    others = {}
    for s in live:
        for k, v in s.other_events.items():
            others[k] = others.get(k, 0) + v
    if others:
        print(f"  other frames seen (all subscribers): {others}")
    for e in errors:
        print(f"  problem: {e}")

    print(f"RESULT p50_ms={fmt(percentile(lat, 50))} p99_ms={fmt(percentile(lat, 99))} "
          f"max_ms={fmt(lat[-1] if lat else None)} "
          f"pub_p50_ms={fmt(percentile(rtt, 50))} pub_p99_ms={fmt(percentile(rtt, 99))} "
          f"received={received} expected={expected} connected={len(live)} "
          f"stalled_concurrent={stalled} errors={len(errors)}")


if __name__ == "__main__":
    if "--fanout" in sys.argv:
        sys.argv.remove("--fanout")
        from bench_sse_fanout import main as fanout_main  # noqa: E402
        fanout_main()
    else:
        main()
