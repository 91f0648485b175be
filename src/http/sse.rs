// Why this file is past ~600 lines: only with its unit tests (~600 lines of code: the chunked writer, stream slots and the hangup probe serve every SSE route).
//! Server-Sent Events writer (WHATWG HTML §9.2 "Server-sent events", the
//! `text/event-stream` format) over a raw tiny_http connection.
//!
//! tiny_http buffers chunked responses (DESIGN.md §4), so streams write the status
//! line, headers and `Transfer-Encoding: chunked` framing themselves, one chunk per
//! frame, and flush after each batch of frames that were ready at once.

use crate::events::{Event, Subscription};
use crossbeam_channel::RecvTimeoutError;
use serde_json::json;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `retry:` advice, milliseconds (API.md §5), sent as a field of the first
/// event frame of every stream (API.md §9: never in a frame of its own).
pub const RETRY_MS: u64 = 2000;

/// The heartbeat: one comment line and no blank line after it (API.md §9), so
/// no client sees an empty event after it.
pub const HEARTBEAT: &str = ": keep-alive\n";

/// Longest wait between two checks for a client that hung up: a closed client
/// frees its slot within this (plus one poll), API.md §9 ("within 1 s").
pub const HANGUP_CHECK: Duration = Duration::from_millis(400);

/// After each write a stream pauses this long before it looks for more events,
/// so under load it wakes and writes at most once per interval, sending what
/// arrived meanwhile as one chunk (one syscall and one wake-up per subscriber
/// for many events; the bus never has to wake a busy subscriber). An idle
/// stream writes a new event at once.
pub const COALESCE: Duration = Duration::from_millis(15);

/// Open streams (`GET /events/stream`, `/executions/{id}/stream`): the global
/// count plus one count per uid other than the daemon owner's (API.md §9
/// "bounded state": another allowed user can never take the owner's last slots).
///
/// Rules for a cap `max` (`sse_max_streams`): every stream needs `total < max`;
/// a stream of another uid also needs that uid to hold fewer than
/// `max(1, max / 4)` streams and all other uids together fewer than
/// `max(1, max / 2)`. The owner (or an unknown peer, `None`) may use every slot.
#[derive(Debug, Default)]
pub struct StreamSlots {
    total: AtomicUsize,
    others: Mutex<HashMap<u32, usize>>,
}

impl StreamSlots {
    /// Streams open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

/// A slot among the capped concurrent streams; released on drop.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    other_uid: Option<u32>,
}

/// Streams one uid other than the owner's may hold under a global cap `max`.
pub fn per_uid_cap(max: usize) -> usize {
    (max / 4).max(1)
}

/// Streams all uids other than the owner's may hold together under `max`.
pub fn others_cap(max: usize) -> usize {
    (max / 2).max(1)
}

impl StreamSlot {
    /// Take a slot for the daemon owner if fewer than `cap` streams are open.
    pub fn acquire(slots: &Arc<StreamSlots>, cap: usize) -> Option<StreamSlot> {
        StreamSlot::acquire_as(slots, cap, None)
    }

    /// Take a slot for a peer of uid `peer_uid` (`None`: unknown, counted as the
    /// owner; the daemon's own uid is the owner). See [`StreamSlots`] for the rules.
    pub fn acquire_as(
        slots: &Arc<StreamSlots>,
        cap: usize,
        peer_uid: Option<u32>,
    ) -> Option<StreamSlot> {
        let other_uid = peer_uid.filter(|u| *u != nix::unistd::geteuid().as_raw());
        if let Some(uid) = other_uid {
            let mut others = match slots.others.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let all: usize = others.values().sum();
            let mine = others.get(&uid).copied().unwrap_or(0);
            if mine >= per_uid_cap(cap) || all >= others_cap(cap) {
                return None;
            }
            if !take_total(&slots.total, cap) {
                return None;
            }
            *others.entry(uid).or_insert(0) += 1;
        } else if !take_total(&slots.total, cap) {
            return None;
        }
        Some(StreamSlot {
            slots: slots.clone(),
            other_uid,
        })
    }
}

fn take_total(counter: &AtomicUsize, cap: usize) -> bool {
    let mut cur = counter.load(Ordering::Acquire);
    loop {
        if cur >= cap {
            return false;
        }
        match counter.compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some(uid) = self.other_uid {
            let mut others = match self.slots.others.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some(n) = others.get_mut(&uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    others.remove(&uid);
                }
            }
        }
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Notices a client that hung up while its stream has nothing to send
/// (API.md §9: a closed client frees its slot within 1 s, not at the next write).
///
/// tiny_http hands streams a plain `Write`, so the probe finds the connection's
/// socket among the process's descriptors by its address pair (local port +
/// peer address), keeps its own close-on-exec duplicate and polls it for
/// `POLLRDHUP` (Linux: the peer shut down its side) / `POLLHUP` / `POLLERR`.
/// Without a socket (not found) it never reports a hangup, and the stream ends
/// at its next failed write as before.
pub struct HangupProbe {
    fd: Option<OwnedFd>,
}

fn same_peer(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |x: SocketAddr| match x {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => x,
        },
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// Is `sock` the connection from `peer` to our `local_port`?
fn is_connection(sock: &std::net::TcpStream, local_port: u16, peer: SocketAddr) -> bool {
    sock.local_addr().is_ok_and(|l| l.port() == local_port)
        && sock.peer_addr().is_ok_and(|p| same_peer(p, peer))
}

impl HangupProbe {
    /// A probe that never reports a hangup.
    pub fn none() -> HangupProbe {
        HangupProbe { fd: None }
    }

    /// Find the connection from `peer` to our `local_port` (Linux `/proc/self/fd`).
    pub fn find(local_port: u16, peer: Option<SocketAddr>) -> HangupProbe {
        let Some(peer) = peer else {
            return HangupProbe::none();
        };
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return HangupProbe::none();
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<RawFd>().ok())
            else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|t| t.as_os_str().as_encoded_bytes().starts_with(b"socket:"));
            if !is_socket {
                continue;
            }
            // SAFETY: `fd` was open a moment ago; if another thread closed it since,
            // fcntl fails with EBADF, and if the number was reused the duplicate is
            // checked below (by its addresses) before it is trusted.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let Ok(dup) = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            else {
                continue;
            };
            // SAFETY: `dup` is a new descriptor that nothing else owns.
            let sock = std::net::TcpStream::from(unsafe { OwnedFd::from_raw_fd(dup) });
            if is_connection(&sock, local_port, peer) {
                return HangupProbe {
                    fd: Some(OwnedFd::from(sock)),
                };
            }
        }
        HangupProbe::none()
    }

    /// Whether a socket was found (the probe can report hangups).
    pub fn is_armed(&self) -> bool {
        self.fd.is_some()
    }

    /// Has the client hung up? Never blocks. Linux: the connection's TCP state
    /// (`TCP_INFO`) is no longer `ESTABLISHED` — `CLOSE_WAIT` once the peer sent
    /// its FIN, `CLOSE` after a reset. (Readability or a 0-byte `MSG_PEEK` cannot
    /// tell: tiny_http shuts down our reading side itself after a request with
    /// `Connection: close`.) Elsewhere: never.
    pub fn hung_up(&self) -> bool {
        let Some(fd) = &self.fd else { return false };
        tcp_state(fd).is_some_and(|st| st != TCP_ESTABLISHED)
    }
}

/// `TCP_ESTABLISHED` of Linux `<netinet/tcp.h>` (`enum tcp_state`).
const TCP_ESTABLISHED: u8 = 1;

/// The TCP state of a socket (`tcp_info.tcpi_state`, its first byte), Linux.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn tcp_state(fd: &OwnedFd) -> Option<u8> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    // Big enough for every kernel's `struct tcp_info` (the kernel copies at most
    // `len` bytes and reports how many).
    let mut info = [0u8; 512];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: `fd` is an open socket we own; `info` is a writable buffer of
    // `len` bytes that outlives the call; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len >= 1).then_some(info[0])
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn tcp_state(_fd: &OwnedFd) -> Option<u8> {
    None
}

/// Append one SSE frame (WHATWG `text/event-stream`) to `buf`: optional
/// `retry:`, optional `id:`, `event:`, one `data:` line, blank line. `data` must
/// be a single line (our JSON always is). Writes into `buf` without allocating
/// once it has grown to the usual batch size.
pub fn push_frame(buf: &mut Vec<u8>, retry: Option<u64>, id: Option<u64>, event: &str, data: &str) {
    if let Some(r) = retry {
        let _ = writeln!(buf, "retry: {r}");
    }
    if let Some(id) = id {
        let _ = writeln!(buf, "id: {id}");
    }
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(event.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    buf.extend_from_slice(data.as_bytes());
    buf.extend_from_slice(b"\n\n");
}

/// Format one SSE frame as a string (tests and one-off frames).
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

/// Room kept at the front of the batch buffer for the chunk-size line.
const CHUNK_HEAD: usize = 10;

/// A chunked `text/event-stream` response writer. Frames are batched in one
/// reused buffer and sent as one HTTP chunk (one `write`) per [`SseWriter::flush`].
/// The first event frame carries `retry:` (API.md §9).
pub struct SseWriter {
    w: Box<dyn Write + Send>,
    buf: Vec<u8>,
    retry_sent: bool,
}

impl SseWriter {
    /// Write the status line and headers. Errors: the client went away.
    pub fn begin(w: Box<dyn Write + Send>) -> io::Result<SseWriter> {
        SseWriter::begin_for(w, None)
    }

    /// [`SseWriter::begin`] for a browser `origin` from `allowed_origins`, which
    /// gets `Access-Control-Allow-Origin` and `Vary: Origin` (API.md §9).
    pub fn begin_for(mut w: Box<dyn Write + Send>, origin: Option<&str>) -> io::Result<SseWriter> {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
              X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        );
        if let Some(o) = origin {
            head.extend_from_slice(b"Access-Control-Allow-Origin: ");
            head.extend_from_slice(o.as_bytes());
            head.extend_from_slice(b"\r\nVary: Origin\r\n");
        }
        head.extend_from_slice(b"\r\n");
        w.write_all(&head)?;
        w.flush()?;
        let mut buf = Vec::with_capacity(8192);
        buf.resize(CHUNK_HEAD, 0);
        Ok(SseWriter {
            w,
            buf,
            retry_sent: false,
        })
    }

    /// Bytes queued and not yet flushed.
    pub fn pending(&self) -> usize {
        self.buf.len() - CHUNK_HEAD
    }

    /// The `retry:` value for the next event frame: only the first gets one.
    fn retry(&mut self) -> Option<u64> {
        (!std::mem::replace(&mut self.retry_sent, true)).then_some(RETRY_MS)
    }

    /// Queue one event frame (not yet flushed).
    pub fn push_event(&mut self, id: Option<u64>, event: &str, data: &str) {
        let retry = self.retry();
        push_frame(&mut self.buf, retry, id, event, data);
    }

    /// Queue a bus event: `id`, `event: <type>`, `data: <Event JSON>`.
    pub fn push_bus_event(&mut self, e: &Event) {
        self.push_event(Some(e.id), &e.kind, e.json());
    }

    /// Queue the heartbeat comment line.
    pub fn push_heartbeat(&mut self) {
        self.buf.extend_from_slice(HEARTBEAT.as_bytes());
    }

    /// Write everything queued as one chunk and flush. Errors: the client went
    /// away or the send timed out.
    pub fn flush(&mut self) -> io::Result<()> {
        let n = self.pending();
        if n > 0 {
            let mut head = [0u8; CHUNK_HEAD];
            let mut cur = io::Cursor::new(&mut head[..]);
            let _ = write!(cur, "{n:x}\r\n");
            let hl = cur.position() as usize;
            let start = CHUNK_HEAD - hl;
            self.buf[start..CHUNK_HEAD].copy_from_slice(&head[..hl]);
            self.buf.extend_from_slice(b"\r\n");
            let r = self.w.write_all(&self.buf[start..]);
            self.buf.truncate(CHUNK_HEAD);
            // A burst may have grown the buffer; give large ones back.
            if self.buf.capacity() > 1 << 20 {
                self.buf.shrink_to(64 * 1024);
            }
            r?;
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

/// Serve `GET /events/stream` (API.md §5, §9): optional `stream.gap`, the
/// replay, then live events, the first frame carrying `retry:`; the heartbeat
/// comment when nothing was sent for `heartbeat`. Ends when the client goes
/// away (noticed by `probe` within [`HANGUP_CHECK`]), the bus stops, or the
/// subscriber lagged (then a final `stream.lagged` frame is sent).
pub fn serve_events(
    w: Box<dyn Write + Send>,
    sub: Subscription,
    heartbeat: Duration,
    slot: StreamSlot,
    probe: HangupProbe,
    origin: Option<&str>,
) {
    let _slot = slot;
    let Ok(mut out) = SseWriter::begin_for(w, origin) else {
        return;
    };
    if let Some((from, to)) = sub.gap {
        out.push_event(
            None,
            "stream.gap",
            &json!({"from": from, "to": to}).to_string(),
        );
    }
    for e in &sub.replay {
        out.push_bus_event(e);
        if out.pending() > 64 * 1024 && out.flush().is_err() {
            return;
        }
    }
    if out.flush().is_err() {
        return;
    }
    let mut last_write = Instant::now();
    loop {
        let idle = last_write.elapsed();
        let wait = heartbeat.saturating_sub(idle).min(HANGUP_CHECK);
        match sub.rx.recv_timeout(wait) {
            Ok(e) => {
                out.push_bus_event(&e);
                while out.pending() < 256 * 1024 {
                    match sub.rx.try_recv() {
                        Ok(e) => out.push_bus_event(&e),
                        Err(_) => break,
                    }
                }
                if out.flush().is_err() {
                    return;
                }
                last_write = Instant::now();
                // Let the next events gather (see COALESCE).
                std::thread::sleep(COALESCE);
            }
            Err(RecvTimeoutError::Timeout) => {
                if probe.hung_up() {
                    return;
                }
                if last_write.elapsed() >= heartbeat {
                    out.push_heartbeat();
                    if out.flush().is_err() {
                        return;
                    }
                    last_write = Instant::now();
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if sub.lagged.load(Ordering::Acquire) {
                    let last = sub.last_queued.load(Ordering::Acquire);
                    out.push_event(
                        None,
                        "stream.lagged",
                        &json!({"last_id": last, "message": "client too slow; reconnect with Last-Event-ID"}).to_string(),
                    );
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
    serve_output_probed(w, out, from, heartbeat, slot, HangupProbe::none())
}

/// [`serve_output`] that also ends within [`HANGUP_CHECK`] of the client hanging
/// up (`probe`), without waiting for the next write.
pub fn serve_output_probed(
    w: Box<dyn Write + Send>,
    out: Arc<crate::executor::output::Output>,
    from: u64,
    heartbeat: Duration,
    slot: StreamSlot,
    probe: HangupProbe,
) {
    use crate::executor::output::{read_at, utf8_boundary};
    let _slot = slot;
    let Ok(mut sw) = SseWriter::begin(w) else {
        return;
    };
    let mut offset = from;
    let mut view = out.view();
    let push_status = |sw: &mut SseWriter, e: &crate::executor::record::Execution, kind: &str| {
        let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
        sw.push_event(None, kind, &data);
    };
    push_status(&mut sw, &view.snapshot, "status");
    let mut last_write = Instant::now();
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
            sw.push_event(
                Some(next),
                "output",
                &json!({"offset": offset, "text": text}).to_string(),
            );
            offset = next;
            if sw.pending() >= 64 * 1024 && sw.flush().is_err() {
                return;
            }
        }
        if view.version != seen_version {
            seen_version = view.version;
            if !view.finished {
                push_status(&mut sw, &view.snapshot, "status");
            }
        }
        // A finished run ends the stream once everything readable was sent (a log
        // removed by retention while streaming cannot be read any further).
        if view.finished && (offset >= view.len || stuck) {
            push_status(&mut sw, &view.snapshot, "status");
            push_status(&mut sw, &view.snapshot, "end");
            sw.finish();
            return;
        }
        if sw.pending() > 0 {
            if sw.flush().is_err() {
                return;
            }
            last_write = Instant::now();
        }
        let before = (view.len, view.version);
        let threshold = if stuck { view.len } else { offset };
        let wait = heartbeat
            .saturating_sub(last_write.elapsed())
            .min(HANGUP_CHECK);
        view = out.wait(threshold, seen_version, wait);
        if (view.len, view.version) == before && !view.finished {
            if probe.hung_up() {
                return;
            }
            if last_write.elapsed() >= heartbeat {
                sw.push_heartbeat();
                if sw.flush().is_err() {
                    return;
                }
                last_write = Instant::now();
            }
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
        let c = Arc::new(StreamSlots::default());
        let a = StreamSlot::acquire(&c, 1).expect("first");
        assert!(StreamSlot::acquire(&c, 1).is_none());
        drop(a);
        assert!(StreamSlot::acquire(&c, 1).is_some());
    }

    #[test]
    fn hangup_probe_notices_a_closed_peer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (server_side, peer) = l.accept().expect("accept");
        assert_eq!(Some(peer), client.local_addr().ok());
        let probe = HangupProbe::find(port, Some(peer));
        assert!(probe.is_armed(), "socket not found");
        assert!(!probe.hung_up());
        // tiny_http shuts our reading side down after `Connection: close`: not a hangup
        server_side
            .shutdown(std::net::Shutdown::Read)
            .expect("shutdown");
        assert!(!probe.hung_up(), "a local read shutdown is not a hangup");
        drop(client);
        let end = Instant::now() + Duration::from_secs(5);
        while !probe.hung_up() {
            assert!(Instant::now() < end, "hangup not seen");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(server_side);
    }

    #[test]
    fn other_uids_never_take_the_owners_last_slots() {
        let me = nix::unistd::geteuid().as_raw();
        let other = me.wrapping_add(1000);
        let c = Arc::new(StreamSlots::default());
        // cap 8: one other uid gets 2, all others together 4.
        let a: Vec<_> = (0..3)
            .filter_map(|_| StreamSlot::acquire_as(&c, 8, Some(other)))
            .collect();
        assert_eq!(a.len(), 2);
        let b: Vec<_> = (0..5)
            .filter_map(|_| StreamSlot::acquire_as(&c, 8, Some(other + 1)))
            .collect();
        assert_eq!(b.len(), 2);
        assert!(StreamSlot::acquire_as(&c, 8, Some(other + 2)).is_none());
        // the owner (by uid or unknown) still has the rest
        let mine: Vec<_> = (0..5)
            .filter_map(|i| StreamSlot::acquire_as(&c, 8, if i % 2 == 0 { Some(me) } else { None }))
            .collect();
        assert_eq!(mine.len(), 4);
        assert_eq!(c.open(), 8);
        drop(a);
        drop(b);
        assert_eq!(c.open(), 4);
        assert!(StreamSlot::acquire_as(&c, 8, Some(other)).is_some());
    }

    #[test]
    fn first_event_frame_carries_retry_and_heartbeat_has_no_blank_line() {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| io::Error::other("poisoned"))?
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut w = SseWriter::begin(Box::new(Sink(got.clone()))).expect("begin");
        w.push_heartbeat();
        w.push_event(Some(1), "a", "{}");
        w.push_event(Some(2), "b", "{}");
        w.flush().expect("flush");
        let all = String::from_utf8(got.lock().expect("lock").clone()).expect("utf8");
        let body = all.split("\r\n\r\n").nth(1).expect("body");
        let text =
            ": keep-alive\nretry: 2000\nid: 1\nevent: a\ndata: {}\n\nid: 2\nevent: b\ndata: {}\n\n";
        assert_eq!(body, format!("{:x}\r\n{text}\r\n", text.len()));
    }
}
