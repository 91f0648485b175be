//! Server-Sent Events writer (WHATWG HTML §9.2 "Server-sent events", the
//! `text/event-stream` format) over a raw tiny_http connection.
//!
//! tiny_http buffers chunked responses (DESIGN.md §4), so streams write the status
//! line, headers and `Transfer-Encoding: chunked` framing themselves, one chunk per
//! frame, and flush after each batch of frames that were ready at once.

use crate::events::Subscription;
use crossbeam_channel::RecvTimeoutError;
use serde_json::json;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The `retry:` advice sent first, milliseconds (API.md §5).
pub const RETRY_MS: u64 = 2000;

/// A slot among the capped concurrent streams; released on drop.
pub struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// Take a slot if fewer than `cap` streams are open.
    pub fn acquire(counter: &Arc<AtomicUsize>, cap: usize) -> Option<StreamSlot> {
        let mut cur = counter.load(Ordering::Acquire);
        loop {
            if cur >= cap {
                return None;
            }
            match counter.compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(StreamSlot(counter.clone())),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Format one SSE frame. `data` must be a single line (our JSON always is).
pub fn frame(id: Option<&str>, event: &str, data: &str) -> String {
    let mut s = String::with_capacity(data.len() + event.len() + 32);
    if let Some(id) = id {
        s.push_str("id: ");
        s.push_str(id);
        s.push('\n');
    }
    s.push_str("event: ");
    s.push_str(event);
    s.push_str("\ndata: ");
    s.push_str(data);
    s.push_str("\n\n");
    s
}

/// A chunked `text/event-stream` response writer.
pub struct SseWriter {
    w: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl SseWriter {
    /// Write the status line and headers. Errors: the client went away.
    pub fn begin(mut w: Box<dyn Write + Send>) -> io::Result<SseWriter> {
        w.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
              X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )?;
        Ok(SseWriter {
            w,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Queue one frame as one chunk (not yet flushed).
    pub fn push(&mut self, frame: &str) {
        if frame.is_empty() {
            return;
        }
        self.buf
            .extend_from_slice(format!("{:x}\r\n", frame.len()).as_bytes());
        self.buf.extend_from_slice(frame.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Write and flush everything queued. Errors: the client went away or the
    /// send timed out.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.w.flush()
    }

    /// End the chunked body and close.
    pub fn finish(mut self) {
        let _ = self.flush();
        let _ = self.w.write_all(b"0\r\n\r\n");
        let _ = self.w.flush();
    }
}

/// Serve `GET /events/stream` (API.md §5): `retry`, optional `stream.gap`, the
/// replay, then live events with a `: keep-alive` comment every `heartbeat`.
/// Ends when the client goes away, the bus stops, or the subscriber lagged
/// (then a final `stream.lagged` frame is sent).
pub fn serve_events(
    w: Box<dyn Write + Send>,
    sub: Subscription,
    heartbeat: Duration,
    slot: StreamSlot,
) {
    let _slot = slot;
    let Ok(mut out) = SseWriter::begin(w) else {
        return;
    };
    out.push(&format!("retry: {RETRY_MS}\n\n"));
    if let Some((from, to)) = sub.gap {
        out.push(&frame(
            None,
            "stream.gap",
            &json!({"from": from, "to": to}).to_string(),
        ));
    }
    let event_frame = |e: &crate::events::Event| {
        let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
        frame(Some(&e.id.to_string()), &e.kind, &data)
    };
    for e in &sub.replay {
        out.push(&event_frame(e));
        if out.buf.len() > 64 * 1024 && out.flush().is_err() {
            return;
        }
    }
    if out.flush().is_err() {
        return;
    }
    loop {
        match sub.rx.recv_timeout(heartbeat) {
            Ok(e) => {
                out.push(&event_frame(&e));
                // Batch whatever else is already queued, then flush once.
                while out.buf.len() < 64 * 1024 {
                    match sub.rx.try_recv() {
                        Ok(e) => out.push(&event_frame(&e)),
                        Err(_) => break,
                    }
                }
                if out.flush().is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                out.push(": keep-alive\n\n");
                if out.flush().is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if sub.lagged.load(Ordering::Acquire) {
                    let last = sub.last_queued.load(Ordering::Acquire);
                    out.push(&frame(
                        None,
                        "stream.lagged",
                        &json!({"last_id": last, "message": "client too slow; reconnect with Last-Event-ID"}).to_string(),
                    ));
                }
                out.finish();
                return;
            }
        }
    }
}

/// Largest `output` event payload, bytes.
pub const OUTPUT_CHUNK: usize = 16 * 1024;

/// Serve `GET /executions/{id}/stream` (API.md §7): replay the output log from byte
/// offset `from`, then live chunks as they arrive. Frames: `event: output` with
/// `id: <offset after the chunk>` and `data: {"offset": <start>, "text": ...}`
/// (lossy UTF-8, never split inside a character); `event: status` with the
/// Execution first and on each state change; `event: end` with the final
/// Execution, after which the stream closes. `status`/`end` carry no `id`, so
/// `Last-Event-ID` is always a byte offset.
pub fn serve_output(
    w: Box<dyn Write + Send>,
    out: Arc<crate::executor::output::Output>,
    from: u64,
    heartbeat: Duration,
    slot: StreamSlot,
) {
    use crate::executor::output::{read_at, utf8_boundary};
    let _slot = slot;
    let Ok(mut sw) = SseWriter::begin(w) else {
        return;
    };
    sw.push(&format!("retry: {RETRY_MS}\n\n"));
    let mut offset = from;
    let mut view = out.view();
    let status_frame = |e: &crate::executor::record::Execution, kind: &str| {
        frame(
            None,
            kind,
            &serde_json::to_string(e).unwrap_or_else(|_| "{}".into()),
        )
    };
    sw.push(&status_frame(&view.snapshot, "status"));
    let mut seen_version = view.version;
    loop {
        // `stuck`: bytes that cannot be sent yet — an incomplete character at the
        // end of a live log, or a log that cannot be read (pruned). Then wait for
        // the log to grow past its current length instead of spinning.
        let mut stuck = false;
        // Output first, so `end` always follows the last byte.
        while offset < view.len {
            let want = ((view.len - offset) as usize).min(OUTPUT_CHUNK);
            let bytes = match read_at(out.path(), offset, want) {
                Ok(b) if !b.is_empty() => b,
                _ => {
                    stuck = true;
                    break;
                }
            };
            let at_end = offset + bytes.len() as u64 >= view.len;
            let n = if at_end && view.finished {
                bytes.len()
            } else {
                utf8_boundary(&bytes)
            };
            if n == 0 {
                stuck = true; // an incomplete character at the end: wait for the rest
                break;
            }
            let text = String::from_utf8_lossy(&bytes[..n]);
            let next = offset + n as u64;
            sw.push(&frame(
                Some(&next.to_string()),
                "output",
                &json!({"offset": offset, "text": text}).to_string(),
            ));
            offset = next;
            if sw.buf.len() >= 64 * 1024 && sw.flush().is_err() {
                return;
            }
        }
        if view.version != seen_version {
            seen_version = view.version;
            if !view.finished {
                sw.push(&status_frame(&view.snapshot, "status"));
            }
        }
        // A finished run ends the stream once everything readable was sent (a log
        // removed by retention while streaming cannot be read any further).
        if view.finished && (offset >= view.len || stuck) {
            sw.push(&status_frame(&view.snapshot, "status"));
            sw.push(&status_frame(&view.snapshot, "end"));
            sw.finish();
            return;
        }
        if sw.flush().is_err() {
            return;
        }
        let before = (view.len, view.version);
        let threshold = if stuck { view.len } else { offset };
        view = out.wait(threshold, seen_version, heartbeat);
        if (view.len, view.version) == before && !view.finished {
            sw.push(": keep-alive\n\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_event_stream_format() {
        assert_eq!(
            frame(Some("3"), "app.ready", "{}"),
            "id: 3\nevent: app.ready\ndata: {}\n\n"
        );
        assert_eq!(
            frame(None, "stream.gap", "{}"),
            "event: stream.gap\ndata: {}\n\n"
        );
    }

    #[test]
    fn slots_are_capped_and_released() {
        let c = Arc::new(AtomicUsize::new(0));
        let a = StreamSlot::acquire(&c, 1).expect("first");
        assert!(StreamSlot::acquire(&c, 1).is_none());
        drop(a);
        assert!(StreamSlot::acquire(&c, 1).is_some());
    }
}
