//! The HTTP server: a 127.0.0.1 listener handed to tiny_http, and a fixed pool of
//! worker threads that guard, route and answer requests. tiny_http stays behind
//! this file so it can be swapped (DESIGN.md §4: it is unmaintained).
//!
//! Traps handled here: a panicking handler answers 500 and the worker lives on
//! (`catch_unwind`); a dead accept thread surfaces as a `recv()` error and is
//! reported on `dead` so the daemon rebinds or exits; the listener gets
//! `SO_SNDTIMEO` (inherited by connections) so a stuck client cannot pin a
//! thread forever; streaming replies take over the connection on their own thread.
//!
//! Transport limits (API.md §9) live in the vendored tiny_http
//! (`ServerOptions`: deadlines, sizes, `max_connections`; bodies are read on
//! the connection's thread before a worker sees the request). This file feeds
//! it the config and the same-user policy: each connection's peer uid is looked
//! up once ([`peer::lookup`]) and a peer of another uid, not in `allow_users`,
//! is answered `403 forbidden` on the connection thread for every route but
//! `GET /health`, before routing, body reading and token checks.

mod peer;

pub use peer::PeerUid;

use super::router::{self, RouteId, RouteMatch};
use super::routes::{Ctx, dispatch};
use super::{HttpError, Reply, Resp};
use crossbeam_channel::Sender;
use std::io;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Environment switch for benchmarks only: `1` skips the peer-uid lookup and
/// the same-user gate (every peer is treated as the daemon's own user). Logged
/// as a warning at start-up.
pub const INSECURE_NO_PEER_CHECK_ENV: &str = "ORCHESTRATR_INSECURE_NO_PEER_CHECK";

/// What the server knows about a connection, computed once per connection and
/// carried by each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The uid owning the client's socket, or unknown.
    pub uid: PeerUid,
}

/// The peer of the connection `req` came on ([`PeerUid::Unknown`] when the
/// platform cannot tell). The dispatch layer requires the token on open routes
/// for unknown peers (API.md §9).
pub fn peer_of(req: &tiny_http::Request) -> PeerUid {
    req.connection_data()
        .and_then(|d| d.downcast_ref::<Peer>())
        .map_or(PeerUid::Unknown, |p| p.uid)
}

/// The auth a route needs on `req`'s connection: an open route (other than
/// `/health`) needs the token when the peer's uid is unknown (API.md §9).
pub fn token_needed(auth: router::Auth, is_health: bool, req: &tiny_http::Request) -> router::Auth {
    if auth == router::Auth::Open && !is_health && peer_of(req) == PeerUid::Unknown {
        router::Auth::Token
    } else {
        auth
    }
}

/// The same-user gate: `Some(403)` for a peer of another uid than `own` that is
/// not in `allow_users`, on every route but `GET /health`.
fn same_user_gate(ctx: &Ctx, own: u32, req: &tiny_http::Request) -> Option<tiny_http::GateReply> {
    let PeerUid::Uid(uid) = peer_of(req) else {
        return None;
    };
    if uid == own {
        return None;
    }
    let is_health = req.method().as_str().eq_ignore_ascii_case("GET")
        && matches!(
            router::route("GET", req.url()),
            RouteMatch::Found(RouteId::Health, ..)
        );
    if is_health || ctx.registry.settings().transport.allow_users.contains(&uid) {
        return None;
    }
    let body = HttpError::new(
        403,
        "forbidden",
        format!(
            "this daemon serves only its own user (uid {own}); the connection comes from uid {uid} (add it to allow_users in config.yml to let it in)"
        ),
    )
    .into_resp()
    .body;
    Some(tiny_http::GateReply {
        status: 403,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The tiny_http options for `ctx`'s settings: limits and deadlines of
/// config `max_connections`, `*_timeout_ms` (read when the listener starts),
/// the body cap of API.md §3, and the same-user hooks.
fn server_options(ctx: &Arc<Ctx>) -> tiny_http::ServerOptions {
    let t = ctx.registry.settings().transport.clone();
    let own = nix::unistd::geteuid().as_raw();
    let mut o = tiny_http::ServerOptions {
        max_connections: t.max_connections,
        header_timeout: Duration::from_millis(t.header_timeout_ms),
        body_timeout: Duration::from_millis(t.body_timeout_ms),
        idle_timeout: Duration::from_millis(t.idle_timeout_ms),
        max_body: super::MAX_BODY_BYTES,
        ..tiny_http::ServerOptions::default()
    };
    if std::env::var(INSECURE_NO_PEER_CHECK_ENV).is_ok_and(|v| v == "1") {
        log::warn!(
            "{INSECURE_NO_PEER_CHECK_ENV}=1: every connection is treated as the daemon's own user (benchmarks only)"
        );
        let me: tiny_http::ConnData = Arc::new(Peer {
            uid: PeerUid::Uid(own),
        });
        o.on_connect = Some(Arc::new(move |_, _| Some(me.clone())));
        return o;
    }
    o.on_connect = Some(Arc::new(|ours, peer| {
        let p: tiny_http::ConnData = Arc::new(Peer {
            uid: peer::lookup(ours, peer),
        });
        Some(p)
    }));
    let gctx = ctx.clone();
    o.gate = Some(Arc::new(move |req| same_user_gate(&gctx, own, req)));
    o
}

/// Number of request worker threads. Handlers that wait (app stop) hold one;
/// streams and long polls do not.
pub const WORKERS: usize = 8;
/// Send timeout for every connection, seconds.
pub const SEND_TIMEOUT_S: i64 = 10;

/// Raise the soft limit on open files to the hard limit (API.md §9: running
/// out of descriptors must not be the first limit hit; systemd's default soft
/// limit is 1,024). Returns `(old soft, new soft)`; failures are logged and
/// leave the limit as it was.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(x) => x,
        Err(e) => {
            log::warn!("cannot read the open-files limit: {e}");
            return None;
        }
    };
    if soft >= hard {
        return Some((soft, soft));
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            log::debug!("open-files limit raised from {soft} to {hard}");
            Some((soft, hard))
        }
        Err(e) => {
            log::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
            None
        }
    }
}

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
        let server = Arc::new(
            tiny_http::Server::from_listener_with(listener, server_options(&ctx))
                .map_err(|e| e.to_string())?,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_peers_need_the_token_on_open_routes() {
        // A request without connection data: the platform could not tell.
        let req: tiny_http::Request = tiny_http::TestRequest::new().into();
        assert_eq!(peer_of(&req), PeerUid::Unknown);
        assert_eq!(
            token_needed(router::Auth::Open, false, &req),
            router::Auth::Token
        );
        assert_eq!(
            token_needed(router::Auth::Open, true, &req),
            router::Auth::Open
        );
        assert_eq!(
            token_needed(router::Auth::TokenOrQuery, false, &req),
            router::Auth::TokenOrQuery
        );
    }
}
