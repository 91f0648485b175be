//! The one resume-and-reconnect loop over an SSE stream (events, an execution's
//! output, an app's log): on a dropped connection or a daemon restart it
//! re-discovers the daemon and reconnects with `Last-Event-ID` (WHATWG HTML
//! §9.2.4) set to the last `id:` seen, so nothing is lost or repeated.

use super::err;
use crate::client::{ClientError, SseFrame, next_frame};
use std::time::Duration;

/// What the frame handler wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Stop following (end of stream, or stdout closed).
    Stop,
}

/// How to follow.
pub struct Follow<'a> {
    /// The CLI's environment (re-discovers the daemon on every reconnect).
    pub env: &'a super::Env,
    /// Stream path, e.g. `/events/stream?type=app.*`.
    pub path: String,
    /// Resume after this id (`Last-Event-ID`), if any.
    pub last_id: Option<u64>,
    /// Give up after this many failed connection attempts in a row (one a
    /// second); `None` retries until interrupted.
    pub give_up_after: Option<u32>,
}

/// Read frames until `on_frame` says [`Flow::Stop`]; returns the last id seen.
///
/// Errors: an error answer (4xx/5xx), an unsafe or bad URL, or — after
/// `give_up_after` attempts — the last connection error.
pub fn follow(
    f: Follow<'_>,
    mut on_frame: impl FnMut(&SseFrame) -> Flow,
) -> Result<Option<u64>, ClientError> {
    let env = f.env;
    let mut last_id = f.last_id;
    let mut failures: u32 = 0;
    let mut warned = false;
    loop {
        let reader = env
            .client()
            .and_then(|c| c.stream(&f.path, last_id, &env.paths));
        let mut reader = match reader {
            Ok(r) => {
                if warned {
                    err("reconnected");
                    warned = false;
                }
                failures = 0;
                r
            }
            Err(
                e @ (ClientError::Api { .. } | ClientError::Unsafe(_) | ClientError::BadUrl(_)),
            ) => return Err(e),
            Err(e) => {
                failures += 1;
                if f.give_up_after.is_some_and(|n| failures > n) {
                    return Err(e);
                }
                if !warned {
                    err(&format!("{e}; retrying every second (Ctrl-C to stop)"));
                    warned = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        // A dropped connection ends this loop; reconnect from `last_id`.
        while let Ok(Some(frame)) = next_frame(&mut *reader) {
            if let Some(id) = frame.id.as_deref().and_then(|i| i.parse().ok()) {
                last_id = Some(id);
            }
            if on_frame(&frame) == Flow::Stop {
                return Ok(last_id);
            }
        }
        if !warned {
            err("stream closed; reconnecting");
            warned = true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
