//! The HTTP server: a 127.0.0.1 listener handed to tiny_http, and a fixed pool of
//! worker threads that guard, route and answer requests. tiny_http stays behind
//! this file so it can be swapped (DESIGN.md §4: it is unmaintained).
//!
//! Traps handled here: a panicking handler answers 500 and the worker lives on
//! (`catch_unwind`); a dead accept thread surfaces as a `recv()` error and is
//! reported on `dead` so the daemon rebinds or exits; the listener gets
//! `SO_SNDTIMEO` (inherited by connections) so a stuck client cannot pin a
//! thread forever; streaming replies take over the connection on their own thread.

use super::routes::{Ctx, dispatch};
use super::{HttpError, Reply, Resp};
use crossbeam_channel::Sender;
use std::io;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Number of request worker threads. Handlers that wait (app stop) hold one;
/// streams and long polls do not.
pub const WORKERS: usize = 8;
/// Send timeout for every connection, seconds.
pub const SEND_TIMEOUT_S: i64 = 10;

/// Bind `127.0.0.1:port`. If the port is taken, bind a free port instead.
/// Returns the listener and whether it fell back.
///
/// Errors: the OS error of the bind (other than "address in use" for a non-zero port).
pub fn bind(port: u16) -> io::Result<(TcpListener, bool)> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => Ok((l, false)),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && port != 0 => {
            TcpListener::bind(("127.0.0.1", 0)).map(|l| (l, true))
        }
        Err(e) => Err(e),
    }
}

/// A running server: tiny_http plus the workers.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    closing: Arc<AtomicBool>,
    /// The bound port.
    pub port: u16,
}

/// Socket options set on the listener and inherited by every accepted connection
/// (Linux): `SO_SNDTIMEO` so a stuck client cannot pin a thread forever, and
/// `TCP_NODELAY` because tiny_http writes headers and body separately, which with
/// Nagle + delayed ACK stalls every response over ~1 KiB by 40 ms.
fn set_socket_options(listener: &TcpListener) {
    use nix::sys::socket::{setsockopt, sockopt};
    use nix::sys::time::TimeVal;
    let timeout = TimeVal::new(SEND_TIMEOUT_S, 0);
    if let Err(e) = setsockopt(listener, sockopt::SendTimeout, &timeout) {
        log::warn!("cannot set SO_SNDTIMEO on the listener: {e}");
    }
    if let Err(e) = setsockopt(listener, sockopt::TcpNoDelay, &true) {
        log::warn!("cannot set TCP_NODELAY on the listener: {e}");
    }
}

impl HttpServer {
    /// Serve `listener` with [`WORKERS`] threads. `dead` receives one message if the
    /// accept loop dies while the server is not closing.
    ///
    /// Errors: tiny_http could not take the listener (its message).
    pub fn start(
        listener: TcpListener,
        ctx: Arc<Ctx>,
        dead: Sender<String>,
    ) -> Result<HttpServer, String> {
        set_socket_options(&listener);
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let server =
            Arc::new(tiny_http::Server::from_listener(listener, None).map_err(|e| e.to_string())?);
        let closing = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let server = server.clone();
            let ctx = ctx.clone();
            let closing = closing.clone();
            let dead = dead.clone();
            let h = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    loop {
                        match server.recv() {
                            Ok(req) => handle(&ctx, req),
                            Err(e) => {
                                if !closing.load(Ordering::Acquire) {
                                    log::error!("http listener failed: {e}");
                                    let _ = dead.send(e.to_string());
                                }
                                break;
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot spawn http worker: {e}"))?;
            workers.push(h);
        }
        Ok(HttpServer {
            server,
            workers,
            closing,
            port,
        })
    }

    /// Stop accepting, wake every worker and join them. Streams end when the
    /// bus stops.
    pub fn stop(self) {
        self.closing.store(true, Ordering::Release);
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
        // Dropping the last Arc<Server> closes the listening socket.
    }
}

/// Write a complete response; a client that went away is logged at debug level.
pub(crate) fn respond(req: tiny_http::Request, r: Resp) {
    let mut resp = tiny_http::Response::from_data(r.body).with_status_code(r.status);
    if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", r.content_type) {
        resp.add_header(h);
    }
    for (k, v) in r.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    if let Err(e) = req.respond(resp) {
        log::debug!("client went away before the response was written: {e}");
    }
}

fn handle(ctx: &Ctx, mut req: tiny_http::Request) {
    let result = catch_unwind(AssertUnwindSafe(|| dispatch(ctx, &mut req)));
    let reply = match result {
        Ok(r) => r,
        Err(_) => {
            log::error!("handler for {} {} panicked", req.method(), req.url());
            Err(HttpError::internal(
                "internal error: the request handler panicked (see the daemon log)",
            ))
        }
    };
    match reply {
        Ok(Reply::Resp(r)) => respond(req, r),
        Err(e) => respond(req, e.into_resp()),
        Ok(Reply::Defer(f)) => {
            if catch_unwind(AssertUnwindSafe(move || f(req))).is_err() {
                log::error!("deferred handler panicked");
            }
        }
        Ok(Reply::Stream(f)) => {
            let writer = req.into_writer();
            let spawned = std::thread::Builder::new()
                .name("sse".into())
                .spawn(move || {
                    // A panic here only ends this stream.
                    let _ = catch_unwind(AssertUnwindSafe(move || f(writer)));
                });
            if let Err(e) = spawned {
                log::error!("cannot spawn stream thread: {e}");
            }
        }
    }
}
