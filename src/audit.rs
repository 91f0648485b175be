//! The audit log (API.md §12 "Audit log"): `<state>/audit.jsonl`, mode 0600,
//! one JSON line per control action, hash-chained and rotated.
//!
//! - Line: `{"time","seq","actor":{"token_id","via","peer"},"action","target",
//!   "outcome","status","prev_sha256"}` (`detail` only on repair lines).
//!   `prev_sha256` is the hex SHA-256 of the previous line's bytes without its
//!   newline; the first line of a new file chains to the last line of the
//!   rotated one; the very first line of a log has `null`.
//! - Durability: each line is one `write(2)` of the line plus newline on an
//!   `O_APPEND` file, done before the reply is sent. No fsync: a line survives
//!   a crash or `kill -9` of the daemon (it is in the kernel), not a power
//!   loss; a torn last line is cut at start-up and the cut itself audited.
//! - Rotation: past `audit_max_bytes` (default 16 MiB) `audit.jsonl` becomes
//!   `audit.jsonl.1` (older ones shift up to `.5`, the oldest is deleted).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// File name of the live log under `<state>`.
pub const FILE: &str = "audit.jsonl";
/// Rotated files kept (`audit.jsonl.1` … `.5`).
pub const KEEP: usize = 5;

/// Who did it.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    /// Token id, `"admin"` for the admin token file, `null` when unauthenticated.
    pub token_id: Option<String>,
    /// `http`, later `ws` or `mcp`.
    pub via: &'static str,
    /// Client address (the peer, or `X-Forwarded-For` from a trusted proxy).
    pub peer: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    seq: u64,
    actor: &'a Actor,
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a Value>,
    prev_sha256: Option<&'a str>,
}

struct Inner {
    file: File,
    seq: u64,
    prev: Option<String>,
    size: u64,
}

/// The open audit log, shared by every worker (one mutex: only control
/// actions and refusals are written, never plain reads).
pub struct AuditLog {
    dir: PathBuf,
    inner: Mutex<Inner>,
    max_bytes: AtomicU64,
}

fn sha_hex(b: &[u8]) -> String {
    crate::auth::tokens::hex(&Sha256::digest(b))
}

/// Path of rotated file `n` (0 = the live file).
pub fn file_path(state_dir: &Path, n: usize) -> PathBuf {
    if n == 0 {
        state_dir.join(FILE)
    } else {
        state_dir.join(format!("{FILE}.{n}"))
    }
}

fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    let trimmed = bytes.strip_suffix(b"\n")?;
    let start = trimmed
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    Some(&trimmed[start..])
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(p)
}

impl AuditLog {
    /// Open (or create) `<state>/audit.jsonl`. A torn last line (no newline)
    /// is cut off and the repair recorded as an `audit.repair` line.
    ///
    /// Errors: the I/O error of reading, truncating or opening the file.
    pub fn open(state_dir: &Path, max_bytes: u64) -> io::Result<AuditLog> {
        let path = file_path(state_dir, 0);
        let mut bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut torn = 0usize;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            torn = bytes.len() - keep;
            bytes.truncate(keep);
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(keep as u64)?;
            f.sync_all()?;
            log::warn!(
                "{}: cut a torn last line of {torn} bytes (left by a crash)",
                path.display()
            );
        }
        let prev_line: Option<Vec<u8>> = match last_line(&bytes) {
            Some(l) => Some(l.to_vec()),
            None => fs::read(file_path(state_dir, 1))
                .ok()
                .and_then(|b| last_line(&b).map(<[u8]>::to_vec)),
        };
        let seq = prev_line
            .as_ref()
            .and_then(|l| serde_json::from_slice::<Value>(l).ok())
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0);
        let file = open_append(&path)?;
        let _ = fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let log = AuditLog {
            dir: state_dir.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                seq,
                prev: prev_line.map(|l| sha_hex(&l)),
                size: bytes.len() as u64,
            }),
            max_bytes: AtomicU64::new(max_bytes.max(4096)),
        };
        if torn > 0 {
            let actor = Actor {
                token_id: None,
                via: "daemon",
                peer: None,
            };
            log.write(
                &actor,
                "audit.repair",
                Some(FILE),
                "repaired",
                0,
                Some(&serde_json::json!({"torn_bytes": torn})),
            )?;
        }
        Ok(log)
    }

    /// Change the rotation size (config reload).
    pub fn set_max_bytes(&self, n: u64) {
        self.max_bytes.store(n.max(4096), Ordering::Relaxed);
    }

    /// Append one line; returns its `seq`. Rotates first when the file would
    /// pass the size limit.
    ///
    /// Errors: the I/O error of writing or rotating (the line is then lost and
    /// the caller logs it; the reply is not changed).
    pub fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        status: u16,
    ) -> io::Result<u64> {
        self.write(actor, action, target, outcome, status, None)
    }

    /// [`AuditLog::record`] with a `detail` object (e.g. a tool call's
    /// argument length and hash, never the arguments).
    ///
    /// Errors: as [`AuditLog::record`].
    pub fn record_detail(
        &self,
        actor: &Actor,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        status: u16,
        detail: Option<&Value>,
    ) -> io::Result<u64> {
        self.write(actor, action, target, outcome, status, detail)
    }

    fn write(
        &self,
        actor: &Actor,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        status: u16,
        detail: Option<&Value>,
    ) -> io::Result<u64> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = g.seq + 1;
        let line = Line {
            time: crate::time::now_rfc3339(),
            seq,
            actor,
            action,
            target,
            outcome,
            status,
            detail,
            prev_sha256: g.prev.as_deref(),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        let hash = sha_hex(&bytes);
        bytes.push(b'\n');
        if g.size > 0 && g.size + bytes.len() as u64 > self.max_bytes.load(Ordering::Relaxed) {
            self.rotate(&mut g)?;
        }
        g.file.write_all(&bytes)?;
        g.size += bytes.len() as u64;
        g.seq = seq;
        g.prev = Some(hash);
        Ok(seq)
    }

    fn rotate(&self, g: &mut Inner) -> io::Result<()> {
        let _ = fs::remove_file(file_path(&self.dir, KEEP));
        for n in (1..KEEP).rev() {
            let from = file_path(&self.dir, n);
            if from.exists() {
                fs::rename(&from, file_path(&self.dir, n + 1))?;
            }
        }
        fs::rename(file_path(&self.dir, 0), file_path(&self.dir, 1))?;
        g.file = open_append(&file_path(&self.dir, 0))?;
        g.size = 0;
        Ok(())
    }

    /// Entries with `seq > since`, oldest first, at most `limit`; and how many
    /// such entries the retained files hold.
    pub fn read_since(&self, since: u64, limit: usize) -> (Vec<Value>, usize) {
        // Hold the lock so a rotation cannot move files under us.
        let _g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut files = Vec::new();
        for n in 0..=KEEP {
            let Ok(text) = fs::read_to_string(file_path(&self.dir, n)) else {
                continue;
            };
            let first = text
                .lines()
                .next()
                .and_then(|l| serde_json::from_str::<Value>(l).ok())
                .and_then(|v| v["seq"].as_u64())
                .unwrap_or(0);
            files.push(text);
            if first <= since.saturating_add(1) {
                break;
            }
        }
        let mut out = Vec::new();
        let mut total = 0usize;
        for text in files.iter().rev() {
            for l in text.lines() {
                let Ok(v) = serde_json::from_str::<Value>(l) else {
                    continue;
                };
                if v["seq"].as_u64().unwrap_or(0) > since {
                    total += 1;
                    if out.len() < limit {
                        out.push(v);
                    }
                }
            }
        }
        (out, total)
    }
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file holding the bad line.
    pub file: PathBuf,
    /// Its 1-based line number.
    pub line: usize,
    /// What is wrong, lowercase.
    pub reason: String,
}

/// Walk the chain over the rotated files (oldest first) and the live one.
/// Returns the number of lines checked.
///
/// Errors: [`Broken`] naming the first line whose `prev_sha256` does not match
/// the line before it, whose `seq` does not follow, or that is not JSON.
pub fn verify(state_dir: &Path) -> Result<usize, Broken> {
    let mut prev: Option<(String, u64)> = None;
    let mut count = 0;
    for n in (0..=KEEP).rev() {
        let path = file_path(state_dir, n);
        let Ok(bytes) = fs::read(&path) else { continue };
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            if raw.is_empty() {
                continue;
            }
            let broken = |reason: String| Broken {
                file: path.clone(),
                line: i + 1,
                reason,
            };
            let v: Value =
                serde_json::from_slice(raw).map_err(|e| broken(format!("not a json line: {e}")))?;
            let seq = v["seq"].as_u64().ok_or_else(|| broken("no seq".into()))?;
            if let Some((h, pseq)) = &prev {
                if v["prev_sha256"].as_str() != Some(h.as_str()) {
                    return Err(broken(format!(
                        "prev_sha256 does not match the line before (seq {pseq}): the log was edited or lines were removed"
                    )));
                }
                if seq != pseq + 1 {
                    return Err(broken(format!("seq {seq} does not follow {pseq}")));
                }
            }
            prev = Some((sha_hex(raw), seq));
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            token_id: Some("admin".into()),
            via: "http",
            peer: Some("127.0.0.1".into()),
        }
    }

    #[test]
    fn chain_rotation_and_tamper_detection() {
        let d = tempfile::tempdir().expect("tmp");
        let log = AuditLog::open(d.path(), 4096).expect("open");
        for i in 0..60 {
            log.record(&actor(), "tokens.create", Some(&format!("t{i}")), "ok", 201)
                .expect("rec");
        }
        assert!(file_path(d.path(), 1).exists(), "rotated");
        assert_eq!(verify(d.path()), Ok(60));
        let (e, total) = log.read_since(55, 2);
        assert_eq!((e.len(), total), (2, 5));
        assert_eq!(e[0]["seq"], 56);
        // reopen continues the chain
        drop(log);
        let log = AuditLog::open(d.path(), 4096).expect("reopen");
        log.record(&actor(), "x", None, "ok", 200).expect("rec");
        assert_eq!(verify(d.path()), Ok(61));
        // edit one line
        let p = file_path(d.path(), 0);
        let text = fs::read_to_string(&p)
            .expect("read")
            .replacen("\"ok\"", "\"OK\"", 1);
        fs::write(&p, text).expect("write");
        let b = verify(d.path()).expect_err("broken");
        assert_eq!(b.file, p);
    }

    #[test]
    fn torn_line_is_cut_and_audited() {
        let d = tempfile::tempdir().expect("tmp");
        let log = AuditLog::open(d.path(), 1 << 20).expect("open");
        log.record(&actor(), "a", None, "ok", 200).expect("rec");
        drop(log);
        let p = file_path(d.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(b"{\"time\":\"2026").expect("w");
        drop(f);
        let log = AuditLog::open(d.path(), 1 << 20).expect("reopen");
        drop(log);
        let text = fs::read_to_string(&p).expect("read");
        assert!(text.ends_with('\n'));
        assert!(text.contains("audit.repair"));
        assert_eq!(verify(d.path()), Ok(2));
    }
}
