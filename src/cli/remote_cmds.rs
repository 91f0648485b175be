//! Named remotes, like docker contexts: `remote add NAME URL --token-file F`,
//! `remote list` (each one's health and version), `remote remove NAME`;
//! `--remote NAME` or `ORCHESTRATR_REMOTE` selects one for any command.
//!
//! Stored in `<cfg>/remotes.json` (mode 0600), `{"remotes": {NAME: {"url": …,
//! "token_file": …}}}`. The token itself is never copied: it is read from the
//! token file at each use, so rotating it needs no `remote add`.

use super::output::{Align, Cell, Table};
use super::{CliError, EXIT_OK, Env, Outcome, out, out_json};
use crate::client::{Client, check_url};
use crate::paths::Paths;
use anstyle::{AnsiColor, Style};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `orchestratr remote …`
#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// Add (or replace) a named remote.
    Add(AddArgs),
    /// List remotes with each one's health and version.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Remove a named remote.
    #[command(visible_alias = "rm")]
    Remove(RemoveArgs),
}

/// `remote add NAME URL --token-file F`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name, e.g. `buildbox` ([A-Za-z0-9_.-], at most 64).
    pub name: String,
    /// The daemon's URL as reachable from here, e.g. http://127.0.0.1:19876 (a tunnel).
    pub url: String,
    /// File holding that daemon's bearer token (e.g. a copy of its <cfg>/token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `remote list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `remote remove NAME`
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Name of the remote.
    pub name: String,
}

/// One remote as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Remote {
    /// Base URL (`http://` or `https://`).
    pub url: String,
    /// Path of the token file, if any.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Store {
    #[serde(default)]
    remotes: BTreeMap<String, Remote>,
}

/// `<cfg>/remotes.json`.
pub fn remotes_file(p: &Paths) -> PathBuf {
    p.config_dir.join("remotes.json")
}

fn load(p: &Paths) -> Result<Store, CliError> {
    let f = remotes_file(p);
    match std::fs::read_to_string(&f) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| CliError::failed(format!("{} is not valid: {e}", f.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::default()),
        Err(e) => Err(CliError::failed(format!(
            "cannot read {}: {e}",
            f.display()
        ))),
    }
}

fn save(p: &Paths, s: &Store) -> Result<(), CliError> {
    let f = remotes_file(p);
    crate::fsutil::create_private_dir(&p.config_dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", p.config_dir.display())))?;
    let text = serde_json::to_string_pretty(s).unwrap_or_default();
    crate::fsutil::write_atomic(&f, text.as_bytes(), 0o600)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", f.display())))
}

fn read_token(r: &Remote) -> Result<Option<String>, CliError> {
    let Some(f) = &r.token_file else {
        return Ok(None);
    };
    std::fs::read_to_string(f)
        .map(|t| Some(t.trim().to_string()).filter(|t| !t.is_empty()))
        .map_err(|e| CliError::failed(format!("cannot read token file {}: {e}", f.display())))
}

/// The URL and token of remote `name`.
///
/// Errors: usage error naming the known remotes when `name` is unknown; the
/// token file cannot be read.
pub fn resolve(p: &Paths, name: &str) -> Result<(String, Option<String>), CliError> {
    let s = load(p)?;
    let Some(r) = s.remotes.get(name) else {
        let known: Vec<&str> = s.remotes.keys().map(String::as_str).collect();
        return Err(CliError::Usage(format!(
            "no remote named '{name}' ({}); add it with `orchestratr remote add {name} URL --token-file FILE`",
            if known.is_empty() {
                "none configured".to_string()
            } else {
                format!("known: {}", known.join(", "))
            }
        )));
    };
    Ok((r.url.clone(), read_token(r)?))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Run one `remote` subcommand.
pub fn dispatch(env: &Env, c: RemoteCmd) -> Outcome {
    let p = &env.paths;
    match c {
        RemoteCmd::Add(a) => {
            if !valid_name(&a.name) {
                return Err(CliError::Usage(format!(
                    "remote name '{}' must be 1-64 of [A-Za-z0-9_.-]",
                    a.name
                )));
            }
            let url = check_url(&a.url).map_err(|e| CliError::Usage(e.to_string()))?;
            let token_file = match a.token_file {
                None => None,
                Some(f) => {
                    let abs = std::path::absolute(&f).unwrap_or(f);
                    if !abs.is_file() {
                        return Err(CliError::Usage(format!(
                            "token file {} does not exist",
                            abs.display()
                        )));
                    }
                    Some(abs)
                }
            };
            let mut s = load(p)?;
            s.remotes.insert(
                a.name.clone(),
                Remote {
                    url: url.clone(),
                    token_file,
                },
            );
            save(p, &s)?;
            out(&format!("added remote {} ({url})", a.name));
            Ok(EXIT_OK)
        }
        RemoteCmd::Remove(a) => {
            let mut s = load(p)?;
            if s.remotes.remove(&a.name).is_none() {
                return Err(CliError::failed(format!("no remote named '{}'", a.name)));
            }
            save(p, &s)?;
            out(&format!("removed remote {}", a.name));
            Ok(EXIT_OK)
        }
        RemoteCmd::List(a) => list(p, a.json),
    }
}

fn list(p: &Paths, as_json: bool) -> Outcome {
    let s = load(p)?;
    let mut rows = Vec::new();
    for (name, r) in &s.remotes {
        let health = read_token(r).and_then(|t| {
            Client::discover(p, Some(&r.url), t.as_deref())
                .and_then(|c| c.get("/health", p))
                .map_err(CliError::from)
        });
        rows.push((name.clone(), r.clone(), health));
    }
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, r, h)| match h {
                Ok(h) => json!({"name": n, "url": r.url, "token_file": r.token_file,
                    "reachable": true, "version": h["version"], "uptime_seconds": h["uptime_seconds"]}),
                Err(e) => json!({"name": n, "url": r.url, "token_file": r.token_file,
                    "reachable": false, "error": e_msg(e)}),
            })
            .collect();
        out_json(&json!({"remotes": v}));
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        out("no remotes (add one with `orchestratr remote add NAME URL --token-file FILE`)");
        return Ok(EXIT_OK);
    }
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("URL", Align::Left),
        ("HEALTH", Align::Left),
        ("VERSION", Align::Left),
    ]);
    let red = Style::new().fg_color(Some(AnsiColor::Red.into()));
    let green = Style::new().fg_color(Some(AnsiColor::Green.into()));
    for (n, r, h) in rows {
        match h {
            Ok(h) => t.row(vec![
                n.into(),
                r.url.into(),
                Cell::styled("ok", green),
                h["version"].as_str().unwrap_or("?").into(),
            ]),
            Err(e) => t.row(vec![
                n.into(),
                r.url.into(),
                Cell::styled(format!("unreachable: {}", e_msg(&e)), red),
                "-".into(),
            ]),
        }
    }
    t.print();
    Ok(EXIT_OK)
}

fn e_msg(e: &CliError) -> String {
    match e {
        CliError::Client(c) => c.to_string(),
        CliError::Usage(m) | CliError::Config(m, _) | CliError::Failed(m, _) => m.clone(),
    }
}
