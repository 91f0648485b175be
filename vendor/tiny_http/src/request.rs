// orchestratr note: past ~600 lines because it keeps upstream's `Request`
// API (accessors, upgrade, respond) next to the patched answer paths
// (`Output`, split upgrade halves); see ORCHESTRATR-PATCH.md.
use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::Arc;

use crate::client::{BodyLease, Completion, Link, Shared};
use crate::limits::ConnData;
use crate::{HTTPVersion, Header, Method, Response};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // orchestratr patch: where the answer goes; `None` once answered
    output: Option<Output>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // orchestratr patch: the connection closes after this request
    last_on_connection: bool,

    // orchestratr patch: per-connection value and id
    conn_data: Option<ConnData>,
    conn_id: u64,

    // orchestratr patch: this body's share of max_body_bytes_in_flight
    body_lease: Option<BodyLease>,
}

/// orchestratr patch: where a request's answer goes.
enum Output {
    /// A real connection (see `client.rs`).
    Conn(Link),
    /// `TestRequest`: any writer.
    Test(Box<dyn Write + Send + 'static>),
    /// Head only (gate or error answered by the connection thread).
    Answered,
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a request for `TestRequest`: the whole body is read from
/// `source_data`, the answer goes to `writer`.
#[allow(clippy::too_many_arguments)]
pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source_data: R,
    writer: W,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let content_length = headers
        .iter()
        .find(|h: &&Header| h.field.equiv("Content-Length"))
        .and_then(|h| FromStr::from_str(h.value.as_str()).ok());
    let mut body = Vec::new();
    source_data.read_to_end(&mut body)?;
    Ok(Request {
        data_reader: Some(Box::new(Cursor::new(body))),
        output: Some(Output::Test(Box::new(writer))),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length,
        last_on_connection: false,
        conn_data: None,
        conn_id: 0,
        body_lease: None,
    })
}

impl Request {
    /// orchestratr patch: a request whose head has been read; the body is
    /// attached with [`Request::attach`] once read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_head(
        method: Method,
        path: String,
        http_version: HTTPVersion,
        headers: Vec<Header>,
        remote_addr: Option<SocketAddr>,
        body_length: Option<usize>,
        conn_data: Option<ConnData>,
        conn_id: u64,
    ) -> Request {
        Request {
            data_reader: Some(Box::new(io::empty())),
            output: Some(Output::Answered),
            remote_addr,
            secure: false,
            method,
            path,
            http_version,
            headers,
            body_length,
            last_on_connection: false,
            conn_data,
            conn_id,
            body_lease: None,
        }
    }

    /// orchestratr patch: the connection thread answered this head itself.
    pub(crate) fn mark_answered(&mut self) {
        self.output = None;
    }

    /// orchestratr patch: attach the body read by the connection thread and
    /// the link the answer goes through.
    pub(crate) fn attach(
        &mut self,
        body: Vec<u8>,
        link: Link,
        last: bool,
        lease: Option<BodyLease>,
    ) {
        self.body_lease = lease;
        self.data_reader = Some(Box::new(Cursor::new(body)));
        self.output = Some(Output::Conn(link));
        self.last_on_connection = last;
    }

    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// orchestratr patch: the value [`crate::ServerOptions::on_connect`]
    /// computed once for this request's connection.
    #[inline]
    pub fn connection_data(&self) -> Option<&ConnData> {
        self.conn_data.as_ref()
    }

    /// orchestratr patch: a number unique to this request's connection within
    /// the server (0 for test requests).
    #[inline]
    pub fn connection_id(&self) -> u64 {
        self.conn_id
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// One combined stream: a thread blocked reading it cannot write. Use
    /// [`Request::upgrade_split`] for full-duplex protocols (WebSocket).
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        let leftover = self.data_reader.take();
        match self.output.take() {
            Some(Output::Conn(link)) => {
                let shared = link.detach();
                let _ = write_upgrade(&shared, response, &self.http_version, &self.headers, protocol);
                Box::new(CombinedStream {
                    reader: UpgradeReader {
                        leftover: leftover.unwrap_or_else(|| Box::new(io::empty())),
                        shared: shared.clone(),
                    },
                    writer: UpgradeWriter { shared },
                })
            }
            Some(Output::Test(mut w)) => {
                let _ = response.raw_print(
                    &mut w,
                    self.http_version.clone(),
                    &self.headers,
                    false,
                    Some(protocol),
                );
                Box::new(CombinedTest {
                    reader: leftover.unwrap_or_else(|| Box::new(io::empty())),
                    writer: w,
                })
            }
            _ => Box::new(CombinedTest {
                reader: Box::new(io::empty()),
                writer: Box::new(io::sink()),
            }),
        }
    }

    /// orchestratr patch: like [`Request::upgrade`] (writes `response` with
    /// `Connection: upgrade` + `Upgrade: protocol` and takes the connection
    /// over), but returns SEPARATE read and write halves of the socket, so one
    /// thread can block reading while another writes (DESIGN.md §5,
    /// WebSocket). Bytes the client sent after the request head come first
    /// from the reader. The socket closes when both halves are dropped (or
    /// on [`UpgradeWriter::shutdown`]).
    ///
    /// Errors: the request does not come from a connection (test requests),
    /// or writing the response failed.
    pub fn upgrade_split<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> io::Result<(UpgradeReader, UpgradeWriter)> {
        let leftover = self.data_reader.take();
        match self.output.take() {
            Some(Output::Conn(link)) => {
                let shared = link.detach();
                write_upgrade(&shared, response, &self.http_version, &self.headers, protocol)?;
                Ok((
                    UpgradeReader {
                        leftover: leftover.unwrap_or_else(|| Box::new(io::empty())),
                        shared: shared.clone(),
                    },
                    UpgradeWriter { shared },
                ))
            }
            _ => Err(io::Error::new(
                ErrorKind::Unsupported,
                "upgrade_split needs a request from a connection",
            )),
        }
    }

    /// orchestratr patch: take the connection over WITHOUT writing anything:
    /// separate read and write halves, as [`Request::upgrade_split`] returns
    /// them. For streamed answers that must notice a client hang-up while
    /// idle (read the reader half, or poll its fd: end of stream = gone).
    ///
    /// Errors: the request does not come from a connection (test requests).
    pub fn into_split(mut self) -> io::Result<(UpgradeReader, UpgradeWriter)> {
        let leftover = self.data_reader.take();
        match self.output.take() {
            Some(Output::Conn(link)) => {
                let shared = link.detach();
                Ok((
                    UpgradeReader {
                        leftover: leftover.unwrap_or_else(|| Box::new(io::empty())),
                        shared: shared.clone(),
                    },
                    UpgradeWriter { shared },
                ))
            }
            _ => Err(io::Error::new(
                ErrorKind::Unsupported,
                "into_split needs a request from a connection",
            )),
        }
    }

    /// Allows to read the body of the request (already read in full by the
    /// connection thread; `100 Continue` was sent there when asked for).
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.data_reader.is_none() {
            self.data_reader = Some(Box::new(io::empty()));
        }
        match self.data_reader.as_mut() {
            Some(r) => r,
            None => unreachable!(),
        }
    }

    /// Turns the `Request` into a writer with raw access to the socket (for
    /// streaming replies). orchestratr patch: the connection is handed over:
    /// no further request is read from it, and it closes when the writer is
    /// dropped.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        match self.output.take() {
            Some(Output::Conn(link)) => Box::new(UpgradeWriter {
                shared: link.detach(),
            }),
            Some(Output::Test(w)) => w,
            _ => Box::new(io::sink()),
        }
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        self.respond_impl(response)
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let do_not_send_body = self.method == Method::Head;
        match self.output.take() {
            Some(Output::Conn(link)) => {
                // Serialize, then write without blocking; the connection
                // thread writes what the socket does not take at once.
                let mut bytes = Vec::with_capacity(256);
                let printed = response.raw_print(
                    &mut bytes,
                    self.http_version.clone(),
                    &self.headers,
                    do_not_send_body,
                    None,
                );
                match printed {
                    Ok(()) => {
                        link.finish(bytes, self.last_on_connection);
                        Ok(())
                    }
                    Err(e) => {
                        let _ = link.done.send(Completion::Done { close: true });
                        Err(e)
                    }
                }
            }
            Some(Output::Test(mut writer)) => {
                Self::ignore_client_closing_errors(response.raw_print(
                    writer.by_ref(),
                    self.http_version.clone(),
                    &self.headers,
                    do_not_send_body,
                    None,
                ))?;
                Self::ignore_client_closing_errors(writer.flush())
            }
            _ => Ok(()),
        }
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }
}

/// Write the `101`/upgrade response straight to the socket (blocking).
fn write_upgrade<R: Read>(
    shared: &Arc<Shared>,
    response: Response<R>,
    version: &HTTPVersion,
    headers: &[Header],
    protocol: &str,
) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(256);
    response.raw_print(&mut bytes, version.clone(), headers, false, Some(protocol))?;
    (&shared.conn).write_all(&bytes)
}

/// orchestratr patch: the read half of an upgraded connection
/// ([`Request::upgrade_split`]).
pub struct UpgradeReader {
    leftover: Box<dyn Read + Send + 'static>,
    shared: Arc<Shared>,
}

impl UpgradeReader {
    /// `SO_RCVTIMEO` for this socket (`None` = block). Note: it is the
    /// socket's, shared with the writer's reads (it has none).
    pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.shared.conn.set_read_timeout(t)
    }

    /// A `TcpStream` on the same socket (a `dup`), for libraries that need a
    /// std type; `None` for Unix sockets.
    pub fn try_clone_tcp(&self) -> io::Result<Option<std::net::TcpStream>> {
        self.shared.conn.try_clone_tcp()
    }
}

#[cfg(unix)]
impl std::os::unix::io::AsRawFd for UpgradeReader {
    fn as_raw_fd(&self) -> std::os::unix::io::RawFd {
        self.shared.conn.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::unix::io::AsRawFd for UpgradeWriter {
    fn as_raw_fd(&self) -> std::os::unix::io::RawFd {
        self.shared.conn.as_raw_fd()
    }
}

impl Read for UpgradeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.leftover.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        (&self.shared.conn).read(buf)
    }
}

/// orchestratr patch: the write half of an upgraded or handed-over
/// connection ([`Request::upgrade_split`], [`Request::into_writer`]). Writes
/// block at most the socket's `SO_SNDTIMEO`.
pub struct UpgradeWriter {
    shared: Arc<Shared>,
}

impl UpgradeWriter {
    /// Shut the socket down both ways (wakes a thread blocked reading the
    /// other half, which then sees end of stream).
    pub fn shutdown(&self) -> io::Result<()> {
        self.shared.conn.shutdown(std::net::Shutdown::Both)
    }

    /// `SO_SNDTIMEO` for this socket (`None` = block).
    pub fn set_write_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.shared.conn.set_write_timeout(t)
    }
}

impl Write for UpgradeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.shared.conn).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct CombinedStream {
    reader: UpgradeReader,
    writer: UpgradeWriter,
}

impl Read for CombinedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}
impl Write for CombinedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

struct CombinedTest {
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
}

impl Read for CombinedTest {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}
impl Write for CombinedTest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if matches!(self.output, Some(Output::Conn(_)) | Some(Output::Test(_))) {
            // orchestratr patch: a request is only dropped unanswered when the
            // server stops with it still queued; tell the client so (API.md §2
            // error body) instead of an empty 500.
            let mut response = Response::from_string(
                r#"{"error":"the daemon is shutting down","code":"unavailable"}"#,
            )
            .with_status_code(503);
            if let Ok(h) = crate::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
                response.add_header(h);
            }
            if let Ok(h) = crate::Header::from_bytes(&b"Retry-After"[..], &b"2"[..]) {
                response.add_header(h);
            }
            let _ = self.respond_impl(response); // ignoring any potential error
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
