//! An execution's combined output: `output.log` on disk (never whole in memory),
//! its current length, and a condition variable that wakes live readers (SSE
//! streams, `logs --follow`) on new bytes or state changes.
//!
//! The child writes `output.log` itself: its stdout and stderr are one file
//! descriptor opened with `O_APPEND` (as pueue does), so no byte is copied
//! through the daemon. The daemon follows the file by its size (`fstat` on its
//! own descriptor of the same open file): a live reader re-checks it every
//! [`FOLLOW_POLL`] while it waits, the run thread every [`CAP_CHECK`] to
//! enforce the cap. Retention (`retention.output_bytes`, API.md §7): readers
//! never see past the cap; a log found past it is truncated back to the cap
//! (the child's next `O_APPEND` write lands at the new end, and is cut again on
//! the next check); when the run ends the log is cut to the cap and the note
//! appended. Disk use is therefore bounded by the cap plus what the child can
//! write in one [`CAP_CHECK`]. The run is not killed for its output.

use super::record::Execution;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often a waiting live reader re-checks the size of a log a child writes
/// (latency target: child line → SSE client p99 ≤ 10 ms).
pub const FOLLOW_POLL: Duration = Duration::from_millis(2);
/// How often the run thread checks a running child's log against the cap.
pub const CAP_CHECK: Duration = Duration::from_millis(50);

struct Inner {
    /// The daemon's descriptor of the log (same open file as the child's).
    file: Option<File>,
    /// Bytes readers may read (never past the cap, except for the cap's note).
    len: u64,
    cap: u64,
    capped: bool,
    /// A child process writes the file.
    live: bool,
    version: u64,
    finished: bool,
    snapshot: Arc<Execution>,
}

/// Shared state of one execution's output.
pub struct Output {
    path: PathBuf,
    inner: Mutex<Inner>,
    cond: Condvar,
}

/// What a waiting reader sees.
#[derive(Clone)]
pub struct OutputView {
    /// Bytes in the log.
    pub len: u64,
    /// Bumped on every state change of the execution.
    pub version: u64,
    /// No more bytes will come.
    pub finished: bool,
    /// The execution as of `version`.
    pub snapshot: Arc<Execution>,
}

impl Inner {
    fn view(&self) -> OutputView {
        OutputView {
            len: self.len,
            version: self.version,
            finished: self.finished,
            snapshot: self.snapshot.clone(),
        }
    }

    /// Re-read the size of a live log; enforce the cap. Returns whether `len` grew.
    fn refresh(&mut self, path: &Path) -> bool {
        if !self.live {
            return false;
        }
        let Some(f) = self.file.as_ref() else {
            return false;
        };
        let Ok(size) = f.metadata().map(|m| m.len()) else {
            return false;
        };
        if size > self.cap {
            if !self.capped {
                log::info!("{}: output capped at {} bytes", path.display(), self.cap);
            }
            self.capped = true;
            let _ = f.set_len(self.cap);
        }
        let len = size.min(self.cap);
        if len > self.len {
            self.len = len;
            true
        } else {
            false
        }
    }
}

impl Output {
    /// Output of `exec` at `path`, with the current file length. A run's child
    /// writes it after [`Output::begin_run`].
    pub fn new(path: &Path, exec: Execution, cap: u64) -> Output {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let finished = exec.status.is_final();
        Output {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file: None,
                len,
                cap,
                capped: false,
                live: false,
                version: 0,
                finished,
                snapshot: Arc::new(exec),
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Path of `output.log`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open (create) the log for appending, mode 0600, and return the
    /// descriptor a run's child gets as stdout and stderr; the daemon keeps a
    /// clone to follow the size. Errors: I/O opening the file.
    pub fn begin_run(&self) -> std::io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        let mine = f.try_clone()?;
        let mut g = self.lock();
        g.len = mine.metadata().map(|m| m.len()).unwrap_or(g.len).min(g.cap);
        g.file = Some(mine);
        g.live = true;
        g.finished = false;
        Ok(f)
    }

    /// Check the size of a live log now (new bytes wake readers; the cap is
    /// enforced). Called by the run thread every [`CAP_CHECK`].
    pub fn refresh(&self) {
        let grew = self.lock().refresh(&self.path);
        if grew {
            self.cond.notify_all();
        }
    }

    /// The run's process group is gone: take the final size, cut the log to the
    /// cap and append the cap's note if it was reached. Bytes written later by
    /// a process that escaped the group are not counted.
    pub fn end_run(&self) {
        let mut g = self.lock();
        g.refresh(&self.path);
        g.live = false;
        let size = g
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(g.len, |m| m.len());
        if g.capped || size > g.cap {
            let note = format!(
                "\n[orchestratr: output truncated at {} bytes (retention.output_bytes)]\n",
                g.cap
            );
            let cap = g.cap;
            if let Some(f) = g.file.as_mut() {
                let _ = f.set_len(cap);
                if f.write_all(note.as_bytes()).is_ok() {
                    g.len = cap + note.len() as u64;
                }
            }
            g.capped = true;
        } else {
            g.len = size;
        }
        drop(g);
        self.cond.notify_all();
    }

    /// Append a note of the daemon's (e.g. why a run could not start), creating
    /// the log if needed. Errors writing are logged and the note dropped.
    pub fn note(&self, data: &[u8]) {
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                f.write_all(data)?;
                f.metadata()
            });
        match res {
            Ok(m) => {
                self.lock().len = m.len();
                self.cond.notify_all();
            }
            Err(e) => log::warn!("cannot write {}: {e}", self.path.display()),
        }
    }

    /// Publish a new state of the execution; `final_` closes the log for writing.
    pub fn set_state(&self, exec: Execution, final_: bool) {
        let mut g = self.lock();
        g.snapshot = Arc::new(exec);
        g.version += 1;
        if final_ {
            g.refresh(&self.path);
            g.finished = true;
            g.live = false;
            g.file = None;
        }
        drop(g);
        self.cond.notify_all();
    }

    /// Current length of the log, bytes (a live log is checked now).
    pub fn len(&self) -> u64 {
        let mut g = self.lock();
        g.refresh(&self.path);
        g.len
    }

    /// Is the log empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current view (a live log is checked now).
    pub fn view(&self) -> OutputView {
        let mut g = self.lock();
        g.refresh(&self.path);
        g.view()
    }

    /// Wait until the log grows past `offset`, the version moves past `version`,
    /// the output is finished, or `timeout` passes. Returns the view then.
    /// While a child writes the log, its size is re-checked every [`FOLLOW_POLL`].
    pub fn wait(&self, offset: u64, version: u64, timeout: Duration) -> OutputView {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            g.refresh(&self.path);
            if g.len > offset || g.version != version || g.finished {
                return g.view();
            }
            let now = Instant::now();
            if now >= deadline {
                return g.view();
            }
            let mut step = deadline - now;
            if g.live {
                step = step.min(FOLLOW_POLL);
            }
            g = match self.cond.wait_timeout(g, step) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// Read up to `max` bytes of `path` at `offset`. Errors: I/O.
pub fn read_at(path: &Path, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut buf = vec![0u8; max];
    let mut n = 0;
    while n < max {
        let k = f.read_at(&mut buf[n..], offset + n as u64)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    buf.truncate(n);
    Ok(buf)
}

/// The largest prefix length of `b` that does not end inside a UTF-8 character.
/// Invalid sequences are not held back (they are shown lossily).
pub fn utf8_boundary(b: &[u8]) -> usize {
    let n = b.len();
    // Look at most 3 bytes back for the start of the last character.
    for back in 1..=3.min(n) {
        let i = n - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue; // continuation byte
        }
        let need = if c < 0x80 {
            1
        } else if c & 0xE0 == 0xC0 {
            2
        } else if c & 0xF0 == 0xE0 {
            3
        } else if c & 0xF8 == 0xF0 {
            4
        } else {
            1
        };
        return if back < need { i } else { n };
    }
    n
}

/// The last `lines` lines of the log (lossy UTF-8), reading at most the last 64 KiB.
pub fn tail_lines(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start)).is_err()
        || f.read_to_end(&mut buf).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.trim_end_matches('\n').lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Execution {
        serde_json::from_value(serde_json::json!({
            "id": "exec-000000000001", "task": "t", "argv": ["x"], "cwd": "/",
            "pool": "default", "status": "running", "queue_position": null,
            "pid": null, "exit_code": null, "signal": null, "error": null,
            "retry_of": null, "created_at": "", "started_at": null,
            "finished_at": null, "duration_ms": null, "output_bytes": 0,
            "timeout_ms": null, "agent": null
        }))
        .expect("execution")
    }

    #[test]
    fn a_child_written_log_is_followed_and_capped() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("output.log");
        let out = Arc::new(Output::new(&path, exec(), 10));
        let mut child = out.begin_run().expect("open");
        child.write_all(b"abc").expect("write");
        // A waiting reader sees bytes it was not told about.
        let v = out.wait(0, 0, Duration::from_secs(5));
        assert_eq!(v.len, 3);
        child.write_all(b"defghijklmnop").expect("write");
        assert_eq!(out.len(), 10, "never past the cap");
        assert!(std::fs::metadata(&path).expect("meta").len() <= 10);
        child.write_all(b"qrs").expect("write"); // lands after the cut
        out.end_run();
        let log = std::fs::read(&path).expect("read");
        assert!(log.starts_with(b"abcdefghij\n[orchestratr: output truncated at 10 bytes"));
        assert_eq!(out.len(), log.len() as u64);
    }

    #[test]
    fn boundary_never_splits_a_character() {
        let s = "aé€😀".as_bytes();
        assert_eq!(utf8_boundary(s), s.len());
        assert_eq!(utf8_boundary(&s[..s.len() - 1]), s.len() - 4);
        assert_eq!(utf8_boundary(&s[..2]), 1);
        assert_eq!(utf8_boundary(&s[..3]), 3);
        assert_eq!(utf8_boundary(b""), 0);
        assert_eq!(utf8_boundary(&[0xff]), 1);
    }
}
