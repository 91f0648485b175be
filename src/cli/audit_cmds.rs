//! `orchestratr audit [--follow] [--verify]` (API.md §12): show the audit log
//! through `GET /audit`, follow it, or verify its hash chain from the files.

use super::{EXIT_FAIL, EXIT_OK, Env, fail, out};
use crate::client::ClientError;
use clap::Args;
use serde_json::Value;
use std::time::Duration;

/// `orchestratr audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Keep polling for new entries (every second); re-reads the token file
    /// once if the daemon answers 401 (after a rotation).
    #[arg(long, short)]
    pub follow: bool,
    /// Walk the hash chain of <state>/audit.jsonl and its rotated files; exit 0
    /// when intact, 1 naming the first broken line. Needs no daemon.
    #[arg(long, conflicts_with = "follow")]
    pub verify: bool,
    /// Only entries with a seq greater than this (default: the last --limit).
    #[arg(long)]
    pub since: Option<u64>,
    /// At most this many entries at first (1-1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// One JSON entry per line.
    #[arg(long)]
    pub json: bool,
}

fn show(v: &Value, json: bool) -> bool {
    if json {
        return out(&v.to_string());
    }
    out(&format!(
        "{:>6}  {}  {:<12} {:<15} {:<22} {:<16} {} {}",
        v["seq"],
        v["time"].as_str().unwrap_or(""),
        v["actor"]["token_id"].as_str().unwrap_or("-"),
        v["actor"]["peer"].as_str().unwrap_or("-"),
        v["action"].as_str().unwrap_or(""),
        v["target"].as_str().unwrap_or("-"),
        v["outcome"].as_str().unwrap_or(""),
        v["status"],
    ))
}

fn page(env: &Env, since: u64, limit: u64) -> Result<Value, ClientError> {
    let path = format!("/audit?since={since}&limit={limit}");
    match env.client()?.get(&path, &env.paths) {
        // After a rotation the token file holds a new token: read it again, once.
        Err(ClientError::Api { status: 401, .. }) => env.client()?.get(&path, &env.paths),
        r => r,
    }
}

/// Run `orchestratr audit`; returns the exit code.
pub fn run(env: &Env, a: &AuditArgs) -> u8 {
    if a.verify {
        return match crate::audit::verify(&env.paths.state_dir) {
            Ok(n) => {
                out(&format!(
                    "audit chain intact: {n} lines in {}",
                    crate::audit::file_path(&env.paths.state_dir, 0).display()
                ));
                EXIT_OK
            }
            Err(b) => {
                out(&format!(
                    "audit chain broken at {}:{}: {}",
                    b.file.display(),
                    b.line,
                    b.reason
                ));
                EXIT_FAIL
            }
        };
    }
    let limit = a.limit.clamp(1, 1000);
    let mut since = match a.since {
        Some(s) => s,
        None => match page(env, 0, 1) {
            Ok(v) => {
                let first = v["entries"][0]["seq"].as_u64().unwrap_or(1);
                let total = v["total"].as_u64().unwrap_or(0);
                (first + total).saturating_sub(1).saturating_sub(limit)
            }
            Err(e) => return fail(&e),
        },
    };
    loop {
        let v = match page(env, since, if a.follow { 1000 } else { limit }) {
            Ok(v) => v,
            Err(e) => return fail(&e),
        };
        for e in v["entries"].as_array().into_iter().flatten() {
            if !show(e, a.json) {
                return EXIT_OK;
            }
            since = since.max(e["seq"].as_u64().unwrap_or(since));
        }
        if !a.follow {
            return EXIT_OK;
        }
        if v["entries"].as_array().is_some_and(|x| x.len() >= 1000) {
            continue;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
