//! `orchestratr token list|create|revoke|rotate` (API.md §12). The secret of
//! a new token is printed once; `--json` prints the daemon's answer.

use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE, Env, err, fail, out, out_json};
use crate::client::ClientError;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::time::Duration;

/// `orchestratr token …`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do with tokens.
    #[command(subcommand)]
    pub cmd: TokenCmd,
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// List scoped tokens (never their secrets).
    List {
        /// Print the daemon's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a scoped token; its secret is printed once.
    Create {
        /// Who holds it, e.g. phone, ci.
        name: String,
        /// A scope: read, execute, approve, agents, admin (repeatable or comma-separated).
        #[arg(
            long = "scope",
            value_delimiter = ',',
            required_unless_present = "preset"
        )]
        scopes: Vec<String>,
        /// A preset instead of scopes: read-only, approver, ci, mcp.
        #[arg(long, conflicts_with = "scopes")]
        preset: Option<String>,
        /// Lifetime, e.g. 30d, 12h (default: never expires).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// Client addresses allowed to use it, CIDR (repeatable).
        #[arg(long = "allowed-ip", value_name = "CIDR")]
        allowed_ips: Vec<String>,
        /// Print the daemon's JSON (holds the secret).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; effective for its next request.
    Revoke {
        /// Token id (12 hex digits, see `token list`).
        id: String,
        /// Print the daemon's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace the admin token file with a new token.
    Rotate {
        /// Seconds the old admin token keeps working (0-86400; also 1m, 1h).
        #[arg(long, default_value = "0", value_parser = parse_grace)]
        grace: u64,
        /// Print the daemon's JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_grace(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .or_else(|_| humantime::parse_duration(s).map(|d| d.as_secs()))
        .map_err(|_| format!("invalid grace '{s}': expected seconds or a duration such as 60s"))
}

/// `DELETE path` with the client's token (the shared client has no DELETE).
fn delete(env: &Env, path: &str) -> Result<Value, ClientError> {
    let c = env.client()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.delete(format!("{}{path}", c.base));
    if let Some(t) = &c.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.call().map_err(|e| match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(format!("no daemon answers at {}", c.base))
        }
        e => ClientError::Transport(format!("request to {} failed: {e}", c.base)),
    })?;
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| ClientError::Transport(format!("cannot read response: {e}")))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    crate::client::api_result(status, body)
}

fn line(t: &Value) -> String {
    let scopes: Vec<&str> = t["scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        "{:<12}  {:<16}  {:<28}  expires {:<24}  last used {}",
        t["id"].as_str().unwrap_or("?"),
        t["name"].as_str().unwrap_or(""),
        scopes.join(","),
        t["expires_at"].as_str().unwrap_or("never"),
        t["last_used_at"].as_str().unwrap_or("never"),
    )
}

/// Run a token subcommand; returns the exit code.
pub fn run(env: &Env, a: &TokenArgs) -> u8 {
    let res = match &a.cmd {
        TokenCmd::List { json } => {
            env.client()
                .and_then(|c| c.get("/tokens", &env.paths))
                .map(|v| {
                    if *json {
                        out_json(&v);
                    } else if v["total"] == 0 {
                        out("no scoped tokens (the admin token is the token file)");
                    } else {
                        for t in v["tokens"].as_array().into_iter().flatten() {
                            out(&line(t));
                        }
                    }
                })
        }
        TokenCmd::Create {
            name,
            scopes,
            preset,
            expires,
            allowed_ips,
            json,
        } => {
            let mut body = json!({"name": name});
            match preset {
                Some(p) => body["preset"] = json!(p),
                None if scopes.is_empty() => {
                    err("give --scope or --preset");
                    return EXIT_USAGE;
                }
                None => body["scopes"] = json!(scopes),
            }
            if let Some(d) = expires {
                body["expires_in_s"] = json!(d.as_secs().max(1));
            }
            if !allowed_ips.is_empty() {
                body["allowed_ips"] = json!(allowed_ips);
            }
            env.client()
                .and_then(|c| c.post("/tokens", Some(&body), &env.paths))
                .map(|(_, v)| {
                    if *json {
                        out_json(&v);
                    } else {
                        out(v["token"].as_str().unwrap_or(""));
                        err(&format!(
                            "created token {} '{}' ({}); the secret above is shown only this once",
                            v["id"].as_str().unwrap_or("?"),
                            v["name"].as_str().unwrap_or(""),
                            v["scopes"]
                        ));
                    }
                })
        }
        TokenCmd::Revoke { id, json } => delete(env, &format!("/tokens/{id}")).map(|v| {
            if *json {
                out_json(&v);
            } else {
                out(&format!("revoked {id}"));
            }
        }),
        TokenCmd::Rotate { grace, json } => env
            .client()
            .and_then(|c| {
                c.post(
                    "/tokens/rotate",
                    Some(&json!({"grace_s": grace})),
                    &env.paths,
                )
            })
            .map(|(_, v)| {
                if *json {
                    out_json(&v);
                } else {
                    out(&format!(
                        "rotated the admin token in {}; the old one works until {}",
                        env.paths.token_file().display(),
                        v["previous_valid_until"].as_str().unwrap_or("now")
                    ));
                }
            }),
    };
    match res {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let code = fail(&e);
            if code == 0 { EXIT_FAIL } else { code }
        }
    }
}
