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
use crate::input::{read_body, BodyErr, Input, ReadErr};
use crate::parse::{body_framing, parse_header, parse_request_line, Framing, LineError};
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
