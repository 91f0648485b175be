//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![allow(unused_imports, dead_code)] // orchestratr vendored copy: silence upstream warnings
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]


use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use limits::{ConnData, Gate, GateReply, OnConnect, ServerOptions};
pub use request::{ReadWrite, Request, UpgradeReader, UpgradeWriter};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod input;
mod limits;
mod parse;
mod request;
mod response;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // orchestratr patch: connections open now
    open: Arc<std::sync::atomic::AtomicUsize>,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if ssl_config.is_some() {
            return Err("this vendored tiny_http has no SSL support (orchestratr patch)".into());
        }
        Self::from_listener_with(listener, ServerOptions::default())
    }

    /// orchestratr patch: like [`Server::from_listener`], with limits,
    /// deadlines and hooks (see [`ServerOptions`]).
    ///
    /// Errors: the listener has no local address, or the accept thread cannot
    /// be spawned.
    pub fn from_listener_with<L: Into<Listener>>(
        listener: L,
        options: ServerOptions,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let close_trigger = Arc::new(AtomicBool::new(false));
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);

        let messages = MessagesQueue::with_capacity(8);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let opts = Arc::new(options);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        let inside_open = open.clone();
        thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || {
                accept_loop(listener, inside_close_trigger, inside_messages, inside_open, opts)
            })?;

        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            open,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        // orchestratr patch: implemented (upstream: unimplemented!()).
        self.open.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

/// orchestratr patch: the accept loop. Every connection gets a thread from the
/// task pool (a spawn failure drops that connection, never the loop); beyond
/// `max_connections` a connection is answered `503` at once and closed.
fn accept_loop(
    listener: Listener,
    close: Arc<AtomicBool>,
    messages: Arc<MessagesQueue<Message>>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    opts: Arc<ServerOptions>,
) {
    use std::sync::atomic::Ordering;
    let tasks_pool = util::TaskPool::new(opts.connection_stack_size);
    // Refused sockets linger a moment (write side shut) so the 503 is not
    // destroyed by a reset when the client's request arrives after it.
    let mut refused: std::collections::VecDeque<(std::time::Instant, Connection)> =
        std::collections::VecDeque::new();
    let mut next_id: u64 = 0;
    let bodies = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    log::debug!("Running accept thread");
    while !close.load(Relaxed) {
        let accepted = listener.accept();
        let now = std::time::Instant::now();
        while refused.front().is_some_and(|(t, _)| *t <= now) || refused.len() > 64 {
            if let Some((_, c)) = refused.pop_front() {
                drain_nonblocking(&c);
            }
        }
        match accepted {
            Ok((sock, _)) => {
                if close.load(Relaxed) {
                    break;
                }
                if open.load(Ordering::Acquire) >= opts.max_connections {
                    refuse(&sock, opts.max_connections);
                    refused.push_back((now + Duration::from_millis(500), sock));
                    continue;
                }
                open.fetch_add(1, Ordering::AcqRel);
                let slot = client::SlotGuard(open.clone());
                next_id += 1;
                let ctx = client::ConnCtx {
                    opts: opts.clone(),
                    queue: messages.clone(),
                    id: next_id,
                    closed: close.clone(),
                    bodies: bodies.clone(),
                };
                let mut job = Some((sock, slot, ctx));
                let spawned = tasks_pool.spawn(Box::new(move || {
                    if let Some((sock, slot, ctx)) = job.take() {
                        client::serve(sock, slot, ctx);
                    }
                }));
                if let Err(e) = spawned {
                    // The job (and its socket) was dropped: that connection
                    // is refused, the server goes on.
                    log::error!("cannot spawn a connection thread, connection dropped: {}", e);
                    thread::sleep(Duration::from_millis(20));
                }
            }
            // orchestratr patch: resource exhaustion and aborted handshakes are
            // transient; back off and keep accepting instead of ending the
            // accept thread (which left the server deaf).
            Err(e) if is_transient_accept_error(&e) => {
                log::error!("accept failed, retrying: {}", e);
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => {
                log::error!("Error accepting new client: {}", e);
                messages.push(e.into());
                break;
            }
        }
    }
    log::debug!("Terminating accept thread");
}

/// Answer `503 unavailable` without blocking and shut the write side.
fn refuse(sock: &Connection, max: usize) {
    use std::io::Write;
    let _ = sock.set_nonblocking(true);
    let body = limits::error_body(
        "unavailable",
        &format!("too many open connections (max_connections = {max})"),
    );
    let mut bytes = limits::json_response(503, &body, true);
    bytes.splice(
        bytes.len() - body.len() - 2..bytes.len() - body.len() - 2,
        b"Retry-After: 1\r\n".iter().copied(),
    );
    let _ = (&*sock).write_all(&bytes);
    let _ = sock.shutdown(Shutdown::Write);
    drain_nonblocking(sock);
}

fn drain_nonblocking(sock: &Connection) {
    use std::io::Read;
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        match (&*sock).read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// orchestratr patch: accept errors after which the listener still works.
fn is_transient_accept_error(e: &IoError) -> bool {
    matches!(
        e.kind(),
        IoErrorKind::ConnectionAborted | IoErrorKind::ConnectionReset | IoErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(23) | Some(24) | Some(105) | Some(12))
    // ENFILE, EMFILE, ENOBUFS, ENOMEM (Linux numbering)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // orchestratr patch: requests still queued are answered (503, see
        // `Drop for Request`) instead of waiting for ever with their clients.
        while let Some(m) = self.messages.try_pop() {
            drop(m);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
