//! An execution's combined output: `output.log` on disk (never whole in memory),
//! its current length, and a condition variable that wakes live readers (SSE
//! streams, `logs --follow`) on new bytes or state changes.

use super::record::Execution;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

struct Inner {
    file: Option<File>,
    len: u64,
    cap: u64,
    capped: bool,
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

impl Output {
    /// Output of `exec` at `path`. `writable`: open for appending (a run is about
    /// to start); otherwise read-only with the current file length.
    pub fn new(path: &Path, exec: Execution, cap: u64, writable: bool) -> Output {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let file = if writable {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        } else {
            None
        };
        let finished = exec.status.is_final();
        Output {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                len,
                cap,
                capped: false,
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

    /// (Re)open the log for appending, before a run starts.
    pub fn open_for_append(&self) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let mut g = self.lock();
        g.len = f.metadata().map(|m| m.len()).unwrap_or(g.len);
        g.file = Some(f);
        g.finished = false;
        Ok(())
    }

    /// Append bytes from a pipe. Beyond the cap the bytes are dropped, and a note is
    /// written once. Errors writing the file are logged and the bytes dropped.
    pub fn append(&self, data: &[u8]) {
        let mut g = self.lock();
        let room = g.cap.saturating_sub(g.len) as usize;
        let keep = data.len().min(room);
        let mut wrote = 0u64;
        if keep > 0
            && let Some(f) = g.file.as_mut()
        {
            match f.write_all(&data[..keep]) {
                Ok(()) => wrote += keep as u64,
                Err(e) => log::warn!("cannot write {}: {e}", self.path.display()),
            }
        }
        if keep < data.len() && !g.capped {
            g.capped = true;
            let note = format!(
                "\n[orchestratr: output truncated at {} bytes (retention.output_bytes)]\n",
                g.cap
            );
            if let Some(f) = g.file.as_mut()
                && f.write_all(note.as_bytes()).is_ok()
            {
                wrote += note.len() as u64;
            }
            log::info!("{}: output capped at {} bytes", self.path.display(), g.cap);
        }
        if wrote > 0 {
            g.len += wrote;
            drop(g);
            self.cond.notify_all();
        }
    }

    /// Publish a new state of the execution; `final_` closes the log for writing.
    pub fn set_state(&self, exec: Execution, final_: bool) {
        let mut g = self.lock();
        g.snapshot = Arc::new(exec);
        g.version += 1;
        if final_ {
            g.finished = true;
            g.file = None;
        }
        drop(g);
        self.cond.notify_all();
    }

    /// Current length of the log, bytes.
    pub fn len(&self) -> u64 {
        self.lock().len
    }

    /// Is the log empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current view.
    pub fn view(&self) -> OutputView {
        let g = self.lock();
        OutputView {
            len: g.len,
            version: g.version,
            finished: g.finished,
            snapshot: g.snapshot.clone(),
        }
    }

    /// Wait until the log grows past `offset`, the version moves past `version`,
    /// the output is finished, or `timeout` passes. Returns the view then.
    pub fn wait(&self, offset: u64, version: u64, timeout: Duration) -> OutputView {
        let g = self.lock();
        let res = self.cond.wait_timeout_while(g, timeout, |i| {
            i.len <= offset && i.version == version && !i.finished
        });
        let g = match res {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        OutputView {
            len: g.len,
            version: g.version,
            finished: g.finished,
            snapshot: g.snapshot.clone(),
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
