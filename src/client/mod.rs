//! The CLI's client: finds the daemon through the port file (or `--url` /
//! `ORCHESTRATR_URL`), sends the token from the token file (or `--token` /
//! `ORCHESTRATR_TOKEN`), and talks HTTP+JSON with `ureq`.
//!
//! Safety: before sending the token to a port found in the port file, the client
//! checks (Linux, `/proc/net/tcp`) that the listening socket belongs to the current
//! user, so another local user squatting the port never receives it (DESIGN.md §4).

use crate::paths::Paths;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::time::Duration;

/// Errors of the client layer. [`ClientError::exit_code`] maps them to CLI exit codes.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon: no port file, or connection refused (exit code 3).
    NotRunning(String),
    /// The daemon answered with an error status.
    Api {
        /// HTTP status.
        status: u16,
        /// The `code` of the error body.
        code: String,
        /// The `error` message.
        message: String,
        /// The whole body.
        body: Value,
    },
    /// Transport or protocol failure (timeout, garbage answer).
    Transport(String),
    /// Refusing to proceed for safety (e.g. the port belongs to another user).
    Unsafe(String),
    /// The URL given is not usable (no `http://` scheme); exit code 2.
    BadUrl(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(m) => f.write_str(m),
            ClientError::Api {
                status,
                code,
                message,
                ..
            } => write!(f, "{message} ({status} {code})"),
            ClientError::Transport(m) => f.write_str(m),
            ClientError::Unsafe(m) => f.write_str(m),
            ClientError::BadUrl(m) => f.write_str(m),
        }
    }
}
impl std::error::Error for ClientError {}

impl ClientError {
    /// CLI exit code: 3 when the daemon is not running, 2 for a bad URL, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning(_) => 3,
            ClientError::BadUrl(_) => 2,
            _ => 1,
        }
    }
}

/// Where and how to reach the daemon.
#[derive(Debug, Clone)]
pub struct Client {
    /// Base URL without trailing slash, e.g. `http://127.0.0.1:9876`.
    pub base: String,
    /// Bearer token, if known.
    pub token: Option<String>,
    /// Whether `base` came from the port file (vs. an explicit URL).
    pub discovered: bool,
    agent: ureq::Agent,
}

/// The UID owning the listening TCP socket on `127.0.0.1:port` or `0.0.0.0:port`
/// (Linux `/proc/net/tcp`). `None` when unknown (not Linux, not found).
pub fn listener_uid(port: u16) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = format!(":{port:04X}");
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 || cols[3] != "0A" {
            continue;
        }
        let local = cols[1];
        if local.ends_with(&want)
            && (local.starts_with("0100007F") || local.starts_with("00000000"))
        {
            return cols[7].parse().ok();
        }
    }
    None
}

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into()
}

/// Percent-encode one path segment (ids and names typed by a person may hold
/// anything): unreserved characters (RFC 3986 §2.3) pass, the rest is `%XX`.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `u` without a trailing slash, if it has an `http://` or `https://` scheme.
///
/// Errors: [`ClientError::BadUrl`] naming the fix (`add http://`).
pub fn check_url(u: &str) -> Result<String, ClientError> {
    let t = u.trim().trim_end_matches('/');
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(t.to_string());
    }
    if t.contains("://") {
        return Err(ClientError::BadUrl(format!(
            "url '{u}' has an unsupported scheme; use http:// or https://"
        )));
    }
    Err(ClientError::BadUrl(format!(
        "url '{u}' has no scheme; add http:// (e.g. --url http://{t})"
    )))
}

fn not_running(paths: &Paths) -> ClientError {
    ClientError::NotRunning(format!(
        "the daemon is not running (no answer on the port in {}); start it with `orchestratr start`",
        paths.port_file().display()
    ))
}

impl Client {
    /// Discover the daemon. `url` and `token` are explicit overrides (flags or env).
    ///
    /// Errors: [`ClientError::NotRunning`] when there is no override and no port file;
    /// [`ClientError::Unsafe`] when the port's listener belongs to another user.
    pub fn discover(
        paths: &Paths,
        url: Option<&str>,
        token: Option<&str>,
    ) -> Result<Client, ClientError> {
        let (base, discovered) = match url.filter(|u| !u.is_empty()) {
            Some(u) => (check_url(u)?, false),
            None => {
                let port = crate::daemon::read_port_file(&paths.port_file()).ok_or_else(|| {
                    ClientError::NotRunning(format!(
                        "the daemon is not running (no port file at {}); start it with `orchestratr start`",
                        paths.port_file().display()
                    ))
                })?;
                let me = nix::unistd::geteuid().as_raw();
                if let Some(uid) = listener_uid(port)
                    && uid != me
                {
                    return Err(ClientError::Unsafe(format!(
                        "port {port} from {} is listened on by uid {uid}, not by you (uid {me}); refusing to send your token",
                        paths.port_file().display()
                    )));
                }
                (format!("http://127.0.0.1:{port}"), true)
            }
        };
        let token = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(t.to_string()),
            None => std::fs::read_to_string(paths.token_file())
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        };
        Ok(Client {
            base,
            token,
            discovered,
            agent: agent(Some(Duration::from_secs(60))),
        })
    }

    fn map_transport(&self, e: ureq::Error, paths: &Paths) -> ClientError {
        if let ureq::Error::Io(io) = &e
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
            )
        {
            return if self.discovered {
                not_running(paths)
            } else {
                ClientError::NotRunning(format!("no daemon answers at {} ({io})", self.base))
            };
        }
        if matches!(e, ureq::Error::ConnectionFailed) {
            return ClientError::NotRunning(format!("no daemon answers at {}", self.base));
        }
        ClientError::Transport(format!("request to {} failed: {e}", self.base))
    }

    fn finish(resp: ureq::http::Response<ureq::Body>) -> Result<(u16, Value), ClientError> {
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .into_with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| ClientError::Transport(format!("cannot read response: {e}")))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, api_result(status, body)?))
    }

    /// `GET path` (path starts with `/`), JSON answer.
    ///
    /// Errors: `NotRunning` on connection refused, `Api` for 4xx/5xx, `Transport`.
    pub fn get(&self, path: &str, paths: &Paths) -> Result<Value, ClientError> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.call().map_err(|e| self.map_transport(e, paths))?;
        Self::finish(resp).map(|x| x.1)
    }

    /// `GET path`, the JSON answer deserialized into `T` (the crate's own types).
    ///
    /// Errors: as [`Client::get`]; `Transport` when the answer has another shape.
    pub fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        paths: &Paths,
    ) -> Result<T, ClientError> {
        let v = self.get(path, paths)?;
        serde_json::from_value(v)
            .map_err(|e| ClientError::Transport(format!("unexpected answer to GET {path}: {e}")))
    }

    /// `GET path` returning raw bytes (e.g. `text/plain` output).
    ///
    /// Errors: as [`Client::get`]; an error status is decoded as JSON.
    pub fn get_bytes(&self, path: &str, paths: &Paths) -> Result<Vec<u8>, ClientError> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.call().map_err(|e| self.map_transport(e, paths))?;
        if resp.status().as_u16() >= 400 {
            return Self::finish(resp).map(|_| Vec::new());
        }
        resp.into_body()
            .into_with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| ClientError::Transport(format!("cannot read response: {e}")))
    }

    /// `POST path` with an optional JSON body; returns status and JSON answer.
    ///
    /// Errors: as [`Client::get`].
    pub fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        paths: &Paths,
    ) -> Result<(u16, Value), ClientError> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .send(b.to_string())
                .map_err(|e| self.map_transport(e, paths))?,
            None => req.send_empty().map_err(|e| self.map_transport(e, paths))?,
        };
        Self::finish(resp)
    }

    /// `DELETE path`; returns status and JSON answer.
    ///
    /// Errors: as [`Client::get`].
    pub fn delete(&self, path: &str, paths: &Paths) -> Result<(u16, Value), ClientError> {
        let mut req = self.agent.delete(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.call().map_err(|e| self.map_transport(e, paths))?;
        Self::finish(resp)
    }

    /// Open an SSE stream at `path`, resuming after `last_event_id`. Returns a line
    /// reader over the event stream (no overall timeout).
    ///
    /// Errors: as [`Client::get`].
    pub fn stream(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        paths: &Paths,
    ) -> Result<Box<dyn BufRead + Send>, ClientError> {
        let agent = agent(None);
        let mut req = agent
            .get(format!("{}{path}", self.base))
            .header("Accept", "text/event-stream");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.call().map_err(|e| self.map_transport(e, paths))?;
        if resp.status().as_u16() >= 400 {
            return Self::finish(resp)
                .map(|_| -> Box<dyn BufRead + Send> { Box::new(std::io::empty()) });
        }
        Ok(Box::new(BufReader::new(resp.into_body().into_reader())))
    }
}

/// One parsed SSE frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseFrame {
    /// `id:` field, if any.
    pub id: Option<String>,
    /// `event:` field (default `message`).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Read the next frame from an event stream (WHATWG HTML §9.2 parsing, minus
/// `retry`). Comments and `retry:` lines are skipped. `Ok(None)` at end of stream.
///
/// Errors: the read error (connection dropped).
pub fn next_frame(r: &mut dyn BufRead) -> std::io::Result<Option<SseFrame>> {
    let mut f = SseFrame::default();
    let mut has = false;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            if has {
                if f.event.is_empty() {
                    f.event = "message".into();
                }
                return Ok(Some(f));
            }
            continue;
        }
        if l.starts_with(':') {
            continue;
        }
        let (k, v) = match l.split_once(':') {
            Some((k, v)) => (k, v.strip_prefix(' ').unwrap_or(v)),
            None => (l, ""),
        };
        match k {
            "id" => {
                f.id = Some(v.to_string());
                has = true;
            }
            "event" => {
                f.event = v.to_string();
                has = true;
            }
            "data" => {
                if !f.data.is_empty() {
                    f.data.push('\n');
                }
                f.data.push_str(v);
                has = true;
            }
            _ => {}
        }
    }
}

/// An answer of the daemon as a result: a status of 400 or more becomes
/// [`ClientError::Api`] with the API's `code` and `error` message (API.md §2);
/// anything else is the JSON body.
///
/// Errors: `ClientError::Api` for an error status.
pub fn api_result(status: u16, body: Value) -> Result<Value, ClientError> {
    if status >= 400 {
        return Err(ClientError::Api {
            status,
            code: body["code"].as_str().unwrap_or("").to_string(),
            message: body["error"]
                .as_str()
                .unwrap_or("request failed")
                .to_string(),
            body,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn check_url_never_panics_and_keeps_a_scheme(u in ".{0,64}") {
            if let Ok(base) = check_url(&u) {
                let l = base.to_ascii_lowercase();
                prop_assert!(l.starts_with("http://") || l.starts_with("https://"));
                prop_assert!(!base.ends_with('/'));
            }
        }

        #[test]
        fn path_segments_round_trip(s in ".{0,40}") {
            let enc = path_segment(&s);
            prop_assert!(!enc.contains('/') && !enc.contains('?') && !enc.contains('#'));
            let dec: String = form_urlencoded::parse(format!("x={enc}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default();
            prop_assert_eq!(dec, s);
        }
    }

    #[test]
    fn urls_need_a_scheme() {
        assert_eq!(check_url("http://h:1/").unwrap(), "http://h:1");
        let e = check_url("localhost:9876").unwrap_err();
        assert!(e.to_string().contains("add http://"), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(check_url("ftp://x").is_err());
        assert_eq!(path_segment("appr-0a/b c"), "appr-0a%2Fb%20c");
    }

    #[test]
    fn parses_frames_and_skips_comments() {
        let text = "retry: 2000\n\n: keep-alive\n\nid: 3\nevent: app.ready\ndata: {\"a\":1}\n\nevent: stream.gap\ndata: x\ndata: y\n\n";
        let mut r: &[u8] = text.as_bytes();
        let f1 = next_frame(&mut r).expect("io").expect("frame");
        assert_eq!(f1.id.as_deref(), Some("3"));
        assert_eq!(f1.event, "app.ready");
        let f2 = next_frame(&mut r).expect("io").expect("frame");
        assert_eq!((f2.id, f2.data.as_str()), (None, "x\ny"));
        assert!(next_frame(&mut r).expect("io").is_none());
    }
}
