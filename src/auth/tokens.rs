// Why this file is past ~600 lines: only with its unit tests (the code is ~610 lines: the store, the token string and the file reload belong to one file format).
//! The token store (API.md §12 "Tokens"): the admin token in `<cfg>/token`
//! (every scope) and scoped tokens in `<cfg>/tokens.json` (0600, written
//! atomically, holding only SHA-256 hashes).
//!
//! A scoped token is `ort_<id>_<secret>`: `<id>` is 12 lowercase hex digits
//! (public, used for lookup, listing and audit), `<secret>` 64 lowercase hex
//! digits (32 random bytes) shown once. The stored hash is the hex SHA-256 of
//! the whole token string; comparisons are constant-time (`subtle`).
//!
//! Hot reload: at most every [`RECHECK_MS`] a request stats both files (mtime,
//! size, inode); a changed file is re-read. A broken `tokens.json` or token
//! file keeps the previous set and reports through the `on_invalid` callback
//! (the daemon emits `config.invalid`).

use super::cidr;
use super::scopes::{self, Scope};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// Prefix of every scoped token string.
pub const PREFIX: &str = "ort_";
/// Length of a token id, hex digits.
pub const ID_LEN: usize = 12;
/// Length of a token secret, hex digits.
pub const SECRET_LEN: usize = 64;
/// How often a request may re-check the token files on disk, milliseconds.
pub const RECHECK_MS: u64 = 250;
/// How often `last_used_at` is written back to `tokens.json`, seconds.
pub const PERSIST_LAST_USED_S: u64 = 60;
/// At most this many scoped tokens.
pub const MAX_TOKENS: usize = 1000;
/// Largest `grace_s` of a rotation (one day).
pub const MAX_GRACE_S: u64 = 86_400;

/// Split `ort_<id>_<secret>` into id and secret. `None` for anything else
/// (wrong prefix, lengths, or non-lowercase-hex characters).
pub fn parse_token(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |x: &str, n: usize| {
        x.len() == n
            && x.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (hex(id, ID_LEN) && hex(secret, SECRET_LEN)).then_some((id, secret))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `s`.
pub fn sha256(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

fn random_hex(n_bytes: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; n_bytes];
    getrandom::fill(&mut b).map_err(|e| StoreError::Invalid(format!("no randomness: {e}")))?;
    Ok(hex(&b))
}

/// One scoped token as stored in `tokens.json` (the hash, never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    /// 12 lowercase hex digits.
    pub id: String,
    /// Free text (1-64 characters) naming who holds it: "phone", "ci".
    pub name: String,
    /// Granted scopes, sorted.
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the whole token string.
    pub sha256: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `null` = never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// RFC 3339 of the last authenticated request; `null` = never used.
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// CIDRs the client address must be in; empty = any.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
}

impl TokenRecord {
    /// The API's `Token` (API.md §12): every field but the hash.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "scopes": self.scopes,
            "created_at": self.created_at, "expires_at": self.expires_at,
            "last_used_at": self.last_used_at, "allowed_ips": self.allowed_ips,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenRecord>,
}

/// Who made an authenticated request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id, or `"admin"` for the admin token file.
    pub token_id: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Per-token `allowed_ips` (empty = any).
    pub allowed_ips: Arc<Vec<IpNet>>,
    /// `true` for the admin token (`<cfg>/token`), current or in its grace period.
    pub is_admin_file: bool,
}

impl Principal {
    /// Does it hold `s`?
    pub fn has(&self, s: Scope) -> bool {
        self.scopes.contains(&s)
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Unknown or wrong token (no detail is given to the client).
    Invalid,
    /// A known token past its `expires_at`.
    Expired {
        /// Token id.
        id: String,
        /// RFC 3339 expiry.
        at: String,
    },
}

/// Errors of store changes.
#[derive(Debug)]
pub enum StoreError {
    /// No token with this id.
    NotFound(String),
    /// A bad request value (name, scopes, CIDR, grace).
    Invalid(String),
    /// Writing a file failed.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(id) => write!(f, "no token with id '{id}'"),
            StoreError::Invalid(m) => f.write_str(m),
            StoreError::Io(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

struct Entry {
    rec: TokenRecord,
    hash: [u8; 32],
    expires: Option<SystemTime>,
    nets: Arc<Vec<IpNet>>,
    last_used_ms: AtomicU64,
}

#[derive(Default)]
struct Snapshot {
    by_id: BTreeMap<String, Arc<Entry>>,
}

struct Admin {
    current: [u8; 32],
    previous: Option<([u8; 32], SystemTime)>,
}

type Sig = (i64, i64, u64, u64);

fn sig_of(p: &Path) -> Option<Sig> {
    fs::metadata(p)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
}

/// Callback for a broken file: `(path, message, line, column)`.
pub type OnInvalid = Box<dyn Fn(&Path, &str, u64, u64) + Send + Sync>;

/// The token store shared by every HTTP worker.
pub struct TokenStore {
    tokens_path: PathBuf,
    token_path: PathBuf,
    snap: RwLock<Arc<Snapshot>>,
    admin: RwLock<Admin>,
    sigs: Mutex<(Option<Sig>, Option<Sig>)>,
    epoch: std::time::Instant,
    last_check_ms: AtomicU64,
    last_persist_ms: AtomicU64,
    dirty: AtomicU64,
    write_lock: Mutex<()>,
    on_invalid: OnInvalid,
}

fn entry_of(rec: TokenRecord) -> Result<Entry, String> {
    let mut hash = [0u8; 32];
    let raw = rec.sha256.as_bytes();
    if raw.len() != 64 {
        return Err(format!("token '{}': sha256 must be 64 hex digits", rec.id));
    }
    for (i, ch) in raw.chunks(2).enumerate() {
        let s = std::str::from_utf8(ch).map_err(|_| format!("token '{}': bad sha256", rec.id))?;
        hash[i] =
            u8::from_str_radix(s, 16).map_err(|_| format!("token '{}': bad sha256", rec.id))?;
    }
    let expires = match &rec.expires_at {
        None => None,
        Some(s) => Some(
            humantime::parse_rfc3339_weak(s)
                .map_err(|e| format!("token '{}': invalid expires_at '{s}': {e}", rec.id))?,
        ),
    };
    let nets =
        cidr::parse_list(&rec.allowed_ips).map_err(|e| format!("token '{}': {e}", rec.id))?;
    let last = rec
        .last_used_at
        .as_deref()
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .map(crate::time::unix_ms)
        .unwrap_or(0);
    Ok(Entry {
        rec,
        hash,
        expires,
        nets: Arc::new(nets),
        last_used_ms: AtomicU64::new(last),
    })
}

fn parse_file(text: &str) -> Result<Snapshot, (String, u64, u64)> {
    let f: TokenFile = serde_json::from_str(text)
        .map_err(|e| (e.to_string(), e.line() as u64, e.column() as u64))?;
    let mut by_id = BTreeMap::new();
    for rec in f.tokens {
        let id = rec.id.clone();
        let e = entry_of(rec).map_err(|m| (m, 0, 0))?;
        by_id.insert(id, Arc::new(e));
    }
    Ok(Snapshot { by_id })
}

fn admin_hash(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha256(t.as_bytes()))
}

impl TokenStore {
    /// Open the store for `<cfg>` with the admin token already ensured by the
    /// daemon. A broken `tokens.json` at start-up is reported through
    /// `on_invalid` and treated as empty (the admin token still works).
    pub fn open(cfg_dir: &Path, admin_token: &str, on_invalid: OnInvalid) -> TokenStore {
        let s = TokenStore {
            tokens_path: cfg_dir.join("tokens.json"),
            token_path: cfg_dir.join("token"),
            snap: RwLock::new(Arc::new(Snapshot::default())),
            admin: RwLock::new(Admin {
                current: sha256(admin_token.trim().as_bytes()),
                previous: None,
            }),
            sigs: Mutex::new((None, sig_of(&cfg_dir.join("token")))),
            epoch: std::time::Instant::now(),
            last_check_ms: AtomicU64::new(0),
            last_persist_ms: AtomicU64::new(0),
            dirty: AtomicU64::new(0),
            write_lock: Mutex::new(()),
            on_invalid,
        };
        s.reload_tokens_file(true);
        s
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// `<cfg>/tokens.json`.
    pub fn tokens_path(&self) -> &Path {
        &self.tokens_path
    }

    fn reload_tokens_file(&self, force: bool) {
        let sig = sig_of(&self.tokens_path);
        {
            let mut g = lock(&self.sigs);
            if !force && g.0 == sig {
                return;
            }
            g.0 = sig;
        }
        let text = match fs::read_to_string(&self.tokens_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                *write(&self.snap) = Arc::new(Snapshot::default());
                return;
            }
            Err(e) => {
                (self.on_invalid)(&self.tokens_path, &format!("cannot read: {e}"), 0, 0);
                return;
            }
        };
        match parse_file(&text) {
            Ok(s) => {
                log::info!(
                    "loaded {} scoped tokens from {}",
                    s.by_id.len(),
                    self.tokens_path.display()
                );
                *write(&self.snap) = Arc::new(s);
            }
            Err((m, line, col)) => {
                log::warn!(
                    "{}: {m}; keeping the previous tokens",
                    self.tokens_path.display()
                );
                (self.on_invalid)(&self.tokens_path, &m, line, col);
            }
        }
    }

    fn reload_admin_file(&self) {
        let sig = sig_of(&self.token_path);
        {
            let mut g = lock(&self.sigs);
            if g.1 == sig {
                return;
            }
            g.1 = sig;
        }
        match fs::read_to_string(&self.token_path)
            .ok()
            .as_deref()
            .and_then(admin_hash)
        {
            Some(h) => {
                let mut a = write(&self.admin);
                if !bool::from(a.current.ct_eq(&h)) {
                    log::info!(
                        "admin token file {} changed; using the new token",
                        self.token_path.display()
                    );
                    a.current = h;
                    a.previous = None;
                }
            }
            None => {
                let m = "the token file does not hold 64 hex characters; keeping the previous admin token";
                log::warn!("{}: {m}", self.token_path.display());
                (self.on_invalid)(&self.token_path, m, 0, 0);
            }
        }
    }

    /// Re-read changed files (at most every [`RECHECK_MS`]) and write back
    /// `last_used_at` when due. Called on every authentication.
    pub fn maybe_reload(&self) {
        let now = self.now_ms();
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RECHECK_MS
            || self
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.reload_tokens_file(false);
        self.reload_admin_file();
        if self.dirty.load(Ordering::Relaxed) != 0
            && now.saturating_sub(self.last_persist_ms.load(Ordering::Relaxed))
                >= PERSIST_LAST_USED_S * 1000
        {
            let _g = lock(&self.write_lock);
            let snap = read(&self.snap).clone();
            if let Err(e) = self.persist(&snap) {
                log::warn!("{e}");
            }
        }
    }

    /// Authenticate a presented token string.
    ///
    /// Errors: [`Rejected::Invalid`] for an unknown or wrong token,
    /// [`Rejected::Expired`] for a known token past its expiry.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, Rejected> {
        self.maybe_reload();
        let presented = presented.trim();
        let h = sha256(presented.as_bytes());
        if let Some((id, _)) = parse_token(presented) {
            let snap = read(&self.snap).clone();
            let Some(e) = snap.by_id.get(id) else {
                return Err(Rejected::Invalid);
            };
            if !bool::from(e.hash.ct_eq(&h)) {
                return Err(Rejected::Invalid);
            }
            let now = SystemTime::now();
            if let Some(exp) = e.expires
                && now >= exp
            {
                return Err(Rejected::Expired {
                    id: e.rec.id.clone(),
                    at: e.rec.expires_at.clone().unwrap_or_default(),
                });
            }
            e.last_used_ms
                .store(crate::time::unix_ms(now), Ordering::Relaxed);
            self.dirty.store(1, Ordering::Relaxed);
            return Ok(Principal {
                token_id: e.rec.id.clone(),
                scopes: e.rec.scopes.clone(),
                allowed_ips: e.nets.clone(),
                is_admin_file: false,
            });
        }
        let a = read(&self.admin);
        let ok = bool::from(a.current.ct_eq(&h))
            || a.previous
                .as_ref()
                .is_some_and(|(p, until)| bool::from(p.ct_eq(&h)) && SystemTime::now() < *until);
        if ok {
            Ok(Principal {
                token_id: "admin".into(),
                scopes: scopes::ALL.to_vec(),
                allowed_ips: Arc::new(Vec::new()),
                is_admin_file: true,
            })
        } else {
            Err(Rejected::Invalid)
        }
    }

    fn records(snap: &Snapshot) -> Vec<TokenRecord> {
        snap.by_id
            .values()
            .map(|e| {
                let mut r = e.rec.clone();
                let ms = e.last_used_ms.load(Ordering::Relaxed);
                if ms > 0 {
                    r.last_used_at = Some(crate::time::rfc3339(
                        SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
                    ));
                }
                r
            })
            .collect()
    }

    /// Every scoped token (expired ones included), by id.
    pub fn list(&self) -> Vec<TokenRecord> {
        self.maybe_reload();
        Self::records(&read(&self.snap))
    }

    fn persist(&self, snap: &Snapshot) -> Result<(), StoreError> {
        let file = TokenFile {
            tokens: Self::records(snap),
        };
        let mut text = serde_json::to_string_pretty(&file)
            .map_err(|e| StoreError::Invalid(format!("cannot serialize tokens: {e}")))?;
        text.push('\n');
        crate::fsutil::write_atomic(&self.tokens_path, text.as_bytes(), 0o600)
            .map_err(|e| StoreError::Io(self.tokens_path.clone(), e))?;
        lock(&self.sigs).0 = sig_of(&self.tokens_path);
        self.dirty.store(0, Ordering::Relaxed);
        self.last_persist_ms.store(self.now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Create a scoped token. Returns the token string (shown once) and its record.
    ///
    /// Errors: [`StoreError::Invalid`] for an empty or over-long name, no
    /// scopes, a bad CIDR, more than [`MAX_TOKENS`]; [`StoreError::Io`].
    pub fn create(
        &self,
        name: &str,
        scopes: Vec<Scope>,
        expires_in_s: Option<u64>,
        allowed_ips: Vec<String>,
    ) -> Result<(String, TokenRecord), StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "token name must be 1-64 printable characters".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(StoreError::Invalid(
                "a token needs at least one scope".into(),
            ));
        }
        cidr::parse_list(&allowed_ips).map_err(StoreError::Invalid)?;
        let now = SystemTime::now();
        let expires_at = match expires_in_s {
            None => None,
            Some(0) => {
                return Err(StoreError::Invalid(
                    "expires_in_s must be at least 1".into(),
                ));
            }
            Some(s) if s > 100 * 365 * 86_400 => {
                return Err(StoreError::Invalid(
                    "expires_in_s is more than 100 years".into(),
                ));
            }
            Some(s) => Some(crate::time::rfc3339(now + Duration::from_secs(s))),
        };
        let _g = lock(&self.write_lock);
        self.reload_tokens_file(false);
        let snap = read(&self.snap).clone();
        if snap.by_id.len() >= MAX_TOKENS {
            return Err(StoreError::Invalid(format!("at most {MAX_TOKENS} tokens")));
        }
        let mut id = random_hex(ID_LEN / 2)?;
        while snap.by_id.contains_key(&id) {
            id = random_hex(ID_LEN / 2)?;
        }
        let token = format!("{PREFIX}{id}_{}", random_hex(SECRET_LEN / 2)?);
        let rec = TokenRecord {
            id: id.clone(),
            name: name.to_string(),
            scopes: scopes::normalize(scopes),
            sha256: hex(&sha256(token.as_bytes())),
            created_at: crate::time::rfc3339(now),
            expires_at,
            last_used_at: None,
            allowed_ips: allowed_ips.iter().map(|s| s.trim().to_string()).collect(),
        };
        let entry = entry_of(rec.clone()).map_err(StoreError::Invalid)?;
        let mut next = Snapshot {
            by_id: snap.by_id.clone(),
        };
        next.by_id.insert(id, Arc::new(entry));
        self.persist(&next)?;
        *write(&self.snap) = Arc::new(next);
        Ok((token, rec))
    }

    /// Revoke (delete) a scoped token; effective for the next request.
    ///
    /// Errors: [`StoreError::NotFound`]; [`StoreError::Io`].
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, StoreError> {
        let _g = lock(&self.write_lock);
        self.reload_tokens_file(false);
        let snap = read(&self.snap).clone();
        let mut next = Snapshot {
            by_id: snap.by_id.clone(),
        };
        let Some(gone) = next.by_id.remove(id) else {
            return Err(StoreError::NotFound(id.to_string()));
        };
        self.persist(&next)?;
        *write(&self.snap) = Arc::new(next);
        Ok(gone.rec.clone())
    }

    /// Replace the admin token file atomically with a fresh token; the old one
    /// keeps working for `grace_s` seconds. Returns when the old one stops
    /// working (RFC 3339; now for `grace_s == 0`).
    ///
    /// Errors: [`StoreError::Invalid`] for `grace_s` over [`MAX_GRACE_S`]; [`StoreError::Io`].
    pub fn rotate_admin(&self, grace_s: u64) -> Result<String, StoreError> {
        if grace_s > MAX_GRACE_S {
            return Err(StoreError::Invalid(format!(
                "grace_s must be at most {MAX_GRACE_S}, not {grace_s}"
            )));
        }
        let _g = lock(&self.write_lock);
        let token = random_hex(32)?;
        crate::fsutil::write_atomic(&self.token_path, format!("{token}\n").as_bytes(), 0o600)
            .map_err(|e| StoreError::Io(self.token_path.clone(), e))?;
        let until = SystemTime::now() + Duration::from_secs(grace_s);
        let mut a = write(&self.admin);
        let old = a.current;
        a.current = sha256(token.as_bytes());
        a.previous = (grace_s > 0).then_some((old, until));
        lock(&self.sigs).1 = sig_of(&self.token_path);
        Ok(crate::time::rfc3339(until))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn store(dir: &Path) -> TokenStore {
        TokenStore::open(dir, &"ab".repeat(32), Box::new(|_, _, _, _| {}))
    }

    #[test]
    fn token_strings() {
        let t = format!("ort_{}_{}", "a1".repeat(6), "0f".repeat(32));
        assert_eq!(parse_token(&t).map(|x| x.0), Some("a1a1a1a1a1a1"));
        assert!(parse_token(&t.to_uppercase()).is_none());
        assert!(parse_token("ort__").is_none());
        assert!(parse_token(&"ab".repeat(32)).is_none());
    }

    #[test]
    fn create_authenticate_revoke_rotate() {
        let d = tempfile::tempdir().expect("tmp");
        let s = store(d.path());
        let (tok, rec) = s
            .create(
                "phone",
                scopes::preset("approver").expect("p"),
                None,
                vec![],
            )
            .expect("create");
        let p = s.authenticate(&tok).expect("valid");
        assert_eq!(p.token_id, rec.id);
        assert!(p.has(Scope::Approve) && !p.has(Scope::Execute));
        let mode = fs::metadata(s.tokens_path()).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            !fs::read_to_string(s.tokens_path())
                .expect("read")
                .contains(&tok)
        );
        // a wrong secret with a valid id is refused
        let wrong = format!(
            "{}{}",
            &tok[..tok.len() - 1],
            if tok.ends_with('0') { '1' } else { '0' }
        );
        assert_eq!(s.authenticate(&wrong).err(), Some(Rejected::Invalid));
        // a second store sees the same file
        assert!(store(d.path()).authenticate(&tok).is_ok());
        s.revoke(&rec.id).expect("revoke");
        assert_eq!(s.authenticate(&tok).err(), Some(Rejected::Invalid));
        assert!(matches!(s.revoke(&rec.id), Err(StoreError::NotFound(_))));
        // admin rotation without grace
        assert!(
            s.authenticate(&"ab".repeat(32))
                .expect("admin")
                .is_admin_file
        );
        s.rotate_admin(0).expect("rotate");
        assert!(s.authenticate(&"ab".repeat(32)).is_err());
        let new = fs::read_to_string(d.path().join("token")).expect("token");
        assert!(s.authenticate(new.trim()).is_ok());
        // with grace the old one keeps working
        s.rotate_admin(60).expect("rotate");
        assert!(s.authenticate(new.trim()).is_ok());
    }

    #[test]
    fn broken_file_keeps_previous_set() {
        let d = tempfile::tempdir().expect("tmp");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let s = TokenStore::open(
            d.path(),
            &"ab".repeat(32),
            Box::new(move |_, m, _, _| seen2.lock().expect("l").push(m.to_string())),
        );
        let (tok, _) = s.create("ci", vec![Scope::Read], None, vec![]).expect("c");
        fs::write(s.tokens_path(), "{ not json").expect("w");
        s.reload_tokens_file(false);
        assert!(s.authenticate(&tok).is_ok());
        assert_eq!(seen.lock().expect("l").len(), 1);
    }

    proptest! {
        #[test]
        fn token_parser_never_panics(x in ".{0,100}") {
            let _ = parse_token(&x);
        }

        #[test]
        fn generated_shapes_parse(id in "[0-9a-f]{12}", sec in "[0-9a-f]{64}") {
            let t = format!("ort_{id}_{sec}");
            prop_assert_eq!(parse_token(&t), Some((id.as_str(), sec.as_str())));
        }
    }
}
