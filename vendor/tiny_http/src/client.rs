//! orchestratr patch: one thread per connection reads requests with limits and
//! deadlines, reads each whole body BEFORE the request is queued, and keeps
//! one request in flight (the next is read only once the previous response is
//! complete). Workers never read from a client; they write the response
//! without blocking, and whatever the socket does not take at once is written
//! here. Replaces upstream's `ClientConnection` iterator (no limits, no
//! timeouts, unbounded pipelining).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method};
use crate::connection::Connection;
use crate::limits::{error_body, json_response, ConnData, ServerOptions};
use crate::util::MessagesQueue;
use crate::{Message, Request};

/// Counts an open connection against `max_connections` until dropped.
pub(crate) struct SlotGuard(pub(crate) Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket of one connection, shared by its reader (the connection thread)
/// and whoever answers. The connection's slot is freed when the last holder
/// (connection thread, request, detached writer or upgraded halves) drops it.
pub(crate) struct Shared {
    pub(crate) conn: Connection,
    _slot: Option<SlotGuard>,
}

impl Shared {
    pub(crate) fn new(conn: Connection, slot: Option<SlotGuard>) -> Arc<Shared> {
        Arc::new(Shared { conn, _slot: slot })
    }
}

/// How the answer to a request ended.
pub(crate) enum Completion {
    /// Fully written. `close`: the connection must be closed.
    Done { close: bool },
    /// `bytes[from..]` could not be written without blocking: the connection
    /// thread writes them.
    Pending {
        bytes: Vec<u8>,
        from: usize,
        close: bool,
    },
    /// The stream was handed over (`into_writer`, `upgrade`): the connection
    /// thread stops without closing it.
    Detached,
}

/// The answering side of a queued request.
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
    pub(crate) done: Sender<Completion>,
}

impl Link {
    /// Write `bytes` without blocking; hand the rest to the connection thread.
    pub(crate) fn finish(self, bytes: Vec<u8>, close: bool) {
        let conn = &self.shared.conn;
        let mut from = 0;
        let mut failed = false;
        if conn.set_nonblocking(true).is_ok() {
            while from < bytes.len() {
                match (&*conn).write(&bytes[from..]) {
                    Ok(0) => break,
                    Ok(n) => from += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let _ = conn.set_nonblocking(false);
        }
        let msg = if failed {
            Completion::Done { close: true }
        } else if from == bytes.len() {
            Completion::Done { close }
        } else {
            Completion::Pending { bytes, from, close }
        };
        let _ = self.done.send(msg);
    }

    /// The stream is handed over to the caller.
    pub(crate) fn detach(self) -> Arc<Shared> {
        let _ = self.done.send(Completion::Detached);
        self.shared
    }
}

/// Buffered input with deadlines. The buffer is fixed; lines and bodies are
/// copied out under their own limits.
struct Input {
    shared: Arc<Shared>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

enum ReadErr {
    /// The deadline passed.
    Timeout,
    /// The peer closed or the socket failed.
    Closed,
    /// A line exceeded its limit.
    TooLong,
}

impl Input {
    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Read more bytes, waiting at most until `until`. The buffer is only
    /// allocated once the first byte is there, so a silent connection costs
    /// no buffer.
    fn fill(&mut self, until: Instant) -> Result<(), ReadErr> {
        if self.buf.is_empty() {
            loop {
                let now = Instant::now();
                if now >= until {
                    return Err(ReadErr::Timeout);
                }
                let wait = (until - now).max(Duration::from_millis(1));
                if self.shared.conn.set_read_timeout(Some(wait)).is_err() {
                    return Err(ReadErr::Closed);
                }
                match self.shared.conn.wait_readable() {
                    Ok(true) => break,
                    Ok(false) => return Err(ReadErr::Closed),
                    Err(e) => match e.kind() {
                        std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut => continue,
                        _ => return Err(ReadErr::Closed),
                    },
                }
            }
            self.buf = vec![0u8; INPUT_BUFFER].into_boxed_slice();
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            let now = Instant::now();
            if now >= until {
                return Err(ReadErr::Timeout);
            }
            let wait = (until - now).max(Duration::from_millis(1));
            if self.shared.conn.set_read_timeout(Some(wait)).is_err() {
                return Err(ReadErr::Closed);
            }
            let end = self.end;
            match (&self.shared.conn).read(&mut self.buf[end..]) {
                Ok(0) => return Err(ReadErr::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) => match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => continue,
                    _ => return Err(ReadErr::Closed),
                },
            }
        }
    }

    /// Append one line (without CRLF / LF) to `out`; at most `max` bytes
    /// including the line end.
    fn read_line(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        until: &dyn Fn() -> Instant,
    ) -> Result<(), ReadErr> {
        let mut taken = 0usize;
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                if taken + i + 1 > max {
                    return Err(ReadErr::TooLong);
                }
                out.extend_from_slice(&avail[..i]);
                self.start += i + 1;
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                return Ok(());
            }
            if taken + avail.len() >= max {
                return Err(ReadErr::TooLong);
            }
            taken += avail.len();
            out.extend_from_slice(avail);
            self.start = self.end;
            self.fill(until())?;
        }
    }

    /// Append exactly `n` bytes to `out`.
    fn read_exact(
        &mut self,
        out: &mut Vec<u8>,
        mut n: usize,
        until: &dyn Fn(usize) -> Instant,
    ) -> Result<(), ReadErr> {
        let base = out.len();
        while n > 0 {
            if self.available() == 0 {
                self.fill(until(out.len() - base))?;
            }
            let k = n.min(self.available());
            out.extend_from_slice(&self.buf[self.start..self.start + k]);
            self.start += k;
            n -= k;
        }
        Ok(())
    }
}

/// Size of a connection's input buffer, bytes (allocated at its first byte).
const INPUT_BUFFER: usize = 8 * 1024;

/// What to do after a request.
enum Next {
    KeepAlive,
    /// Close; `linger`: the peer may still be sending (drain before closing).
    Close { linger: bool },
    Detached,
}

/// Everything a connection thread needs.
pub(crate) struct ConnCtx {
    pub(crate) opts: Arc<ServerOptions>,
    pub(crate) queue: Arc<MessagesQueue<Message>>,
    pub(crate) id: u64,
    /// Set when the server is dropped: requests are no longer queued.
    pub(crate) closed: Arc<std::sync::atomic::AtomicBool>,
    /// Body bytes held now, over all connections.
    pub(crate) bodies: Arc<AtomicUsize>,
}

/// A share of `max_body_bytes_in_flight`, returned when dropped (with the
/// request that holds the body).
pub(crate) struct BodyLease {
    bytes: usize,
    pool: Arc<AtomicUsize>,
}

impl BodyLease {
    /// Take `bytes` of the pool of `max`, waiting until `until`.
    fn acquire(pool: &Arc<AtomicUsize>, bytes: usize, max: usize, until: Instant) -> Option<BodyLease> {
        loop {
            let cur = pool.load(Ordering::Acquire);
            if cur + bytes <= max || (cur == 0 && bytes <= max) {
                if pool
                    .compare_exchange(cur, cur + bytes, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some(BodyLease {
                        bytes,
                        pool: pool.clone(),
                    });
                }
                continue;
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Give back what the body did not use.
    fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.pool.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for BodyLease {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Serve one connection until it closes or is handed over.
pub(crate) fn serve(conn: Connection, slot: SlotGuard, ctx: ConnCtx) {
    let local = conn.local_addr();
    let mut conn = conn;
    let peer = conn.peer_addr().ok().flatten();
    let shared = Shared::new(conn, Some(slot));
    let mut input = Input {
        shared: shared.clone(),
        buf: Box::new([]),
        start: 0,
        end: 0,
    };
    let mut data: Option<Option<ConnData>> = None;
    loop {
        match serve_one(&mut input, &ctx, local, peer, &mut data) {
            Next::KeepAlive => continue,
            Next::Close { linger } => {
                drop(input);
                close(&shared, linger);
                return;
            }
            Next::Detached => return,
        }
    }
}

/// Shut the connection down. With `linger`, first stop writing and drain what
/// the peer still sends (at most 1 s and 4 MiB), so the last response is not
/// destroyed by a reset.
fn close(shared: &Arc<Shared>, linger: bool) {
    let conn = &shared.conn;
    if linger {
        let _ = conn.shutdown(Shutdown::Write);
        let end = Instant::now() + Duration::from_secs(1);
        let mut scratch = [0u8; 8192];
        let mut drained = 0usize;
        while drained < 4 * 1024 * 1024 {
            let now = Instant::now();
            if now >= end || conn.set_read_timeout(Some(end - now)).is_err() {
                break;
            }
            match (&*conn).read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}

fn write_all(shared: &Shared, bytes: &[u8]) -> bool {
    (&shared.conn).write_all(bytes).is_ok()
}

/// Answer an error from the connection thread and close.
fn fail(input: &Input, status: u16, code: &str, message: &str) -> Next {
    let bytes = json_response(status, &error_body(code, message), true);
    write_all(&input.shared, &bytes);
    Next::Close { linger: true }
}

#[derive(PartialEq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn serve_one(
    input: &mut Input,
    ctx: &ConnCtx,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    data: &mut Option<Option<ConnData>>,
) -> Next {
    let opts = &ctx.opts;
    // Idle: wait for the first byte of the next request.
    if input.available() == 0 {
        let idle_until = Instant::now() + opts.idle_timeout;
        if input.fill(idle_until).is_err() {
            return Next::Close { linger: false };
        }
    }
    let head_until = Instant::now() + opts.header_timeout;
    let head_deadline = move || head_until;

    // Request line (a few empty lines before it are tolerated, RFC 9112 §2.2).
    let mut line = Vec::new();
    for _ in 0..4 {
        line.clear();
        match input.read_line(&mut line, opts.max_request_line, &head_deadline) {
            Ok(()) => {}
            Err(ReadErr::TooLong) => {
                return fail(
                    input,
                    414,
                    "bad_request",
                    &format!(
                        "request line is longer than {} bytes",
                        opts.max_request_line
                    ),
                )
            }
            Err(ReadErr::Timeout) => {
                return fail(
                    input,
                    408,
                    "bad_request",
                    "request headers were not complete in time",
                )
            }
            Err(ReadErr::Closed) => return Next::Close { linger: false },
        }
        if !line.is_empty() {
            break;
        }
    }

    // Header block.
    let mut raw_headers: Vec<Vec<u8>> = Vec::new();
    let mut budget = opts.max_header_bytes;
    loop {
        let mut h = Vec::new();
        match input.read_line(&mut h, budget, &head_deadline) {
            Ok(()) => {}
            Err(ReadErr::TooLong) => {
                return fail(
                    input,
                    431,
                    "bad_request",
                    &format!(
                        "request headers are larger than {} bytes",
                        opts.max_header_bytes
                    ),
                )
            }
            Err(ReadErr::Timeout) => {
                return fail(
                    input,
                    408,
                    "bad_request",
                    "request headers were not complete in time",
                )
            }
            Err(ReadErr::Closed) => return Next::Close { linger: false },
        }
        budget = budget.saturating_sub(h.len() + 2);
        if h.is_empty() {
            break;
        }
        if raw_headers.len() >= opts.max_header_fields {
            return fail(
                input,
                431,
                "bad_request",
                &format!(
                    "more than {} request header fields",
                    opts.max_header_fields
                ),
            );
        }
        raw_headers.push(h);
    }

    // Parse the request line.
    let (method, target, version) = match parse_request_line(&line) {
        Ok(x) => x,
        Err(LineError::Malformed) => {
            return fail(input, 400, "bad_request", "malformed request line")
        }
        Err(LineError::Version(v)) => {
            return fail(
                input,
                505,
                "bad_request",
                &format!("http version {v} is not supported; use HTTP/1.1"),
            )
        }
        Err(LineError::Target) => {
            return fail(
                input,
                400,
                "bad_request",
                "request target is not valid UTF-8 after percent-decoding",
            )
        }
    };

    // Parse headers.
    let mut headers = Vec::with_capacity(raw_headers.len());
    for h in &raw_headers {
        match parse_header(h) {
            Some(h) => headers.push(h),
            None => return fail(input, 400, "bad_request", "malformed request header"),
        }
    }
    drop(raw_headers);

    let mut close_requested = false;
    let mut keep_alive_token = false;
    let mut upgrade_token = false;
    for h in headers.iter().filter(|h| h.field.equiv("Connection")) {
        for tok in h.value.as_str().split(',') {
            let tok = tok.trim();
            close_requested |= tok.eq_ignore_ascii_case("close");
            keep_alive_token |= tok.eq_ignore_ascii_case("keep-alive");
            upgrade_token |= tok.eq_ignore_ascii_case("upgrade");
        }
    }
    let upgrade = upgrade_token && headers.iter().any(|h| h.field.equiv("Upgrade"));
    let keep_alive = !close_requested
        && !upgrade
        && (version == HTTPVersion(1, 1) || keep_alive_token);

    // Body framing (RFC 9112 §6).
    let framing = match body_framing(&headers) {
        Ok(f) => f,
        Err(msg) => return fail(input, 400, "bad_request", &msg),
    };
    let has_body = framing != Framing::None && framing != Framing::Length(0);

    // The per-connection value, once.
    if data.is_none() {
        *data = Some(match &opts.on_connect {
            Some(f) => f(local, peer),
            None => None,
        });
    }
    let conn_data = data.clone().flatten();

    let body_len = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut req = Request::from_head(
        method,
        target,
        version.clone(),
        headers,
        peer,
        body_len,
        conn_data,
        ctx.id,
    );

    if let Some(gate) = &opts.gate {
        if let Some(reply) = gate(&req) {
            req.mark_answered();
            let close = has_body || !keep_alive || upgrade;
            let bytes = json_response(reply.status, &reply.body, close);
            if !write_all(&input.shared, &bytes) {
                return Next::Close { linger: false };
            }
            return if close {
                Next::Close { linger: true }
            } else {
                Next::KeepAlive
            };
        }
    }

    // Expect (RFC 9110 §10.1.1).
    let expect = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Expect"))
        .map(|h| h.value.as_str().to_owned());
    if let Some(e) = &expect {
        if !e.eq_ignore_ascii_case("100-continue") {
            req.mark_answered();
            return fail(input, 417, "bad_request", "unsupported Expect header");
        }
    }

    let mut lease = None;
    let body = if upgrade {
        // The rest of the stream belongs to whoever upgrades.
        let rest = input.buf[input.start..input.end].to_vec();
        input.start = input.end;
        rest
    } else {
        match framing {
            Framing::Length(n) if n > opts.max_body => {
                req.mark_answered();
                return fail(
                    input,
                    413,
                    "payload_too_large",
                    &format!("request body is larger than {} bytes", opts.max_body),
                );
            }
            Framing::None | Framing::Length(0) => Vec::new(),
            _ => {
                let want = match framing {
                    Framing::Length(n) => n,
                    _ => opts.max_body,
                };
                let until = Instant::now() + opts.body_timeout;
                match BodyLease::acquire(&ctx.bodies, want, opts.max_body_bytes_in_flight, until) {
                    Some(l) => lease = Some(l),
                    None => {
                        req.mark_answered();
                        return fail(
                            input,
                            503,
                            "unavailable",
                            "too many request bodies in flight; retry",
                        );
                    }
                }
                if expect.is_some() && version == HTTPVersion(1, 1) && input.available() == 0 {
                    if !write_all(&input.shared, b"HTTP/1.1 100 Continue\r\n\r\n") {
                        req.mark_answered();
                        return Next::Close { linger: false };
                    }
                }
                match read_body(input, &framing, opts) {
                    Ok(b) => {
                        if let Some(l) = lease.as_mut() {
                            l.shrink_to(b.len());
                        }
                        b
                    }
                    Err(BodyErr::TooLarge) => {
                        req.mark_answered();
                        return fail(
                            input,
                            413,
                            "payload_too_large",
                            &format!("request body is larger than {} bytes", opts.max_body),
                        );
                    }
                    Err(BodyErr::Timeout) => {
                        req.mark_answered();
                        return fail(
                            input,
                            408,
                            "bad_request",
                            "request body stalled (too slow or incomplete)",
                        );
                    }
                    Err(BodyErr::Malformed) => {
                        req.mark_answered();
                        return fail(input, 400, "bad_request", "malformed chunked body");
                    }
                    Err(BodyErr::Closed) => {
                        req.mark_answered();
                        return Next::Close { linger: false };
                    }
                }
            }
        }
    };

    // Queue it and wait for its answer: one request in flight per connection.
    let (tx, rx): (Sender<Completion>, Receiver<Completion>) = channel();
    req.attach(
        body,
        Link {
            shared: input.shared.clone(),
            done: tx,
        },
        !keep_alive,
        lease,
    );
    if ctx.closed.load(Ordering::Acquire) {
        // Nobody will take it: its Drop answers 503 through the link.
        drop(req);
    } else {
        ctx.queue.push(Message::NewRequest(req));
    }
    match rx.recv() {
        Ok(Completion::Done { close }) => {
            if close || !keep_alive || upgrade {
                Next::Close { linger: true }
            } else {
                Next::KeepAlive
            }
        }
        Ok(Completion::Pending { bytes, from, close }) => {
            if !write_all(&input.shared, &bytes[from..]) {
                return Next::Close { linger: false };
            }
            if close || !keep_alive || upgrade {
                Next::Close { linger: true }
            } else {
                Next::KeepAlive
            }
        }
        Ok(Completion::Detached) => Next::Detached,
        Err(_) => Next::Close { linger: false },
    }
}

enum BodyErr {
    TooLarge,
    Timeout,
    Malformed,
    Closed,
}

impl From<ReadErr> for BodyErr {
    fn from(e: ReadErr) -> Self {
        match e {
            ReadErr::Timeout => BodyErr::Timeout,
            ReadErr::Closed => BodyErr::Closed,
            ReadErr::TooLong => BodyErr::Malformed,
        }
    }
}

/// Read a whole body under the stall deadline and the minimal rate.
fn read_body(input: &mut Input, framing: &Framing, opts: &ServerOptions) -> Result<Vec<u8>, BodyErr> {
    let start = Instant::now();
    let stall = opts.body_timeout;
    let rate = opts.body_min_rate.max(1);
    // Deadline for the next byte given `got` bytes so far: no stall longer
    // than `stall`, and on average `rate` bytes/s after the first `stall`.
    let last = std::cell::Cell::new(start);
    let until = |got: usize| {
        let now = Instant::now();
        let stall_at = now.max(last.get()) + stall;
        last.set(now);
        let rate_at = start + stall + Duration::from_secs_f64(got as f64 / rate as f64);
        stall_at.min(rate_at)
    };
    match *framing {
        Framing::Length(n) => {
            let mut body = Vec::with_capacity(n);
            input.read_exact(&mut body, n, &until)?;
            Ok(body)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                let mut line = Vec::new();
                let got = body.len();
                input.read_line(&mut line, 1024, &|| until(got))?;
                let size_txt = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let size_txt = std::str::from_utf8(size_txt)
                    .map_err(|_| BodyErr::Malformed)?
                    .trim();
                let size = usize::from_str_radix(size_txt, 16).map_err(|_| BodyErr::Malformed)?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    let mut budget = opts.max_header_bytes;
                    loop {
                        let mut t = Vec::new();
                        input.read_line(&mut t, budget, &|| until(got))?;
                        if t.is_empty() {
                            return Ok(body);
                        }
                        budget = budget.saturating_sub(t.len() + 2);
                    }
                }
                if body.len().saturating_add(size) > opts.max_body {
                    return Err(BodyErr::TooLarge);
                }
                input.read_exact(&mut body, size, &|k| until(got + k))?;
                let mut crlf = Vec::new();
                input.read_line(&mut crlf, 2, &|| until(body.len()))?;
                if !crlf.is_empty() {
                    return Err(BodyErr::Malformed);
                }
            }
        }
        Framing::None => Ok(Vec::new()),
    }
}

fn body_framing(headers: &[Header]) -> Result<Framing, String> {
    let te: Vec<&str> = headers
        .iter()
        .filter(|h| h.field.equiv("Transfer-Encoding"))
        .flat_map(|h| h.value.as_str().split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !te.is_empty() {
        return if te.last().is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            Ok(Framing::Chunked)
        } else {
            Err(format!(
                "transfer-encoding '{}' is not supported",
                te.join(", ")
            ))
        };
    }
    let mut len: Option<usize> = None;
    for h in headers.iter().filter(|h| h.field.equiv("Content-Length")) {
        for v in h.value.as_str().split(',') {
            let v = v.trim();
            let n: usize = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                // Saturate absurd lengths: they are over any limit anyway.
                v.parse().unwrap_or(usize::MAX)
            } else {
                return Err(format!("invalid content-length '{v}'"));
            };
            if len.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".into());
            }
            len = Some(n);
        }
    }
    Ok(len.map_or(Framing::None, Framing::Length))
}

enum LineError {
    Malformed,
    Version(String),
    Target,
}

/// `METHOD SP target SP HTTP/d.d`. Versions other than 1.0 and 1.1 are
/// [`LineError::Version`]; a target that is not ASCII or not UTF-8 after
/// percent-decoding is [`LineError::Target`].
fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), LineError> {
    let mut parts = line.split(|&b| b == b' ');
    let (m, t, v) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(LineError::Malformed),
    };
    if !m.iter().all(|b| b.is_ascii_graphic()) {
        return Err(LineError::Malformed);
    }
    let version = match v {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', maj, b'.', min]
            if maj.is_ascii_digit() && min.is_ascii_digit() =>
        {
            return Err(LineError::Version(
                String::from_utf8_lossy(&v[5..]).into_owned(),
            ))
        }
        [b'H', b'T', b'T', b'P', b'/', maj] if maj.is_ascii_digit() => {
            return Err(LineError::Version(
                String::from_utf8_lossy(&v[5..]).into_owned(),
            ))
        }
        _ => return Err(LineError::Malformed),
    };
    if !t.iter().all(|b| b.is_ascii_graphic()) || std::str::from_utf8(&percent_decode(t)).is_err()
    {
        return Err(LineError::Target);
    }
    let method: Method = std::str::from_utf8(m)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(LineError::Malformed)?;
    let target = String::from_utf8(t.to_vec()).map_err(|_| LineError::Target)?;
    Ok((method, target, version))
}

/// `%XX` → byte; anything else is kept as is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn parse_header(line: &[u8]) -> Option<Header> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let value = &line[colon + 1..];
    let value = trim_ascii(value);
    if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(Header {
        field: HeaderField::from_bytes(name.to_vec()).ok()?,
        value: AsciiString::from_ascii(value.to_vec()).ok()?,
    })
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn request_lines() {
        let (m, p, v) = parse_request_line(b"GET /hello HTTP/1.1").ok().unwrap();
        assert!(m == Method::Get && p == "/hello" && v == HTTPVersion(1, 1));
        assert!(matches!(
            parse_request_line(b"GET / HTTP/2.0"),
            Err(LineError::Version(_))
        ));
        assert!(matches!(
            parse_request_line(b"GET /%ff HTTP/1.1"),
            Err(LineError::Target)
        ));
        assert!(matches!(
            parse_request_line(b"GET /hello"),
            Err(LineError::Malformed)
        ));
        assert!(parse_request_line(b"GET /%e2%82%ac?a=%41 HTTP/1.0").is_ok());
    }
}
