//! `orchestratr agent spawn|list|show|send|keys|screen|logs|attach|kill`
//! (API.md §10) and the hidden `agent-exec` wrapper of agent panes.

use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE, Env, err, fail, out, out_json};
use crate::client::{ClientError, next_frame};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

/// `orchestratr agent …`
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: AgentCmd,
}

/// Agent subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Start an interactive session of an agent type (agents.<type>.interactive).
    Spawn {
        /// Agent type from config.yml.
        agent_type: String,
        /// Working directory (inside a configured workspace).
        #[arg(long)]
        cwd: Option<String>,
        /// A label.
        #[arg(long)]
        name: Option<String>,
        /// A first message, sent once the agent has started.
        #[arg(long)]
        prompt: Option<String>,
        /// Extra environment, NAME=VALUE (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Print the Agent as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List sessions.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this agent type.
        #[arg(long = "type")]
        agent_type: Option<String>,
        /// Print the daemon's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one session as JSON.
    Show {
        /// Session id.
        id: String,
    },
    /// Paste text into a session and press Enter (unless --no-submit).
    Send {
        /// Session id.
        id: String,
        /// The text (pasted literally).
        text: String,
        /// Do not press Enter.
        #[arg(long)]
        no_submit: bool,
    },
    /// Send tmux key names (Enter, C-c, Up, y …).
    Keys {
        /// Session id.
        id: String,
        /// Key names.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print the visible screen.
    Screen {
        /// Session id.
        id: String,
    },
    /// Print the output log; --follow streams it until the session ends.
    Logs {
        /// Session id.
        id: String,
        /// Keep streaming.
        #[arg(long, short)]
        follow: bool,
    },
    /// Attach this terminal to the session's tmux pane (detach: C-b d).
    Attach {
        /// Session id.
        id: String,
    },
    /// Kill a session (SIGTERM, then SIGKILL) and its tmux session.
    Kill {
        /// Session id.
        id: String,
    },
}

fn enc(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn table(agents: &[Value]) {
    out(&format!(
        "{:<28} {:<10} {:<8} {:<9} {:>10}  {}",
        "SESSION", "TYPE", "STATUS", "SOURCE", "OUTPUT", "NAME"
    ));
    for a in agents {
        out(&format!(
            "{:<28} {:<10} {:<8} {:<9} {:>10}  {}",
            a["session_id"].as_str().unwrap_or(""),
            a["agent_type"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["status_source"].as_str().unwrap_or(""),
            a["output_bytes"].as_u64().unwrap_or(0),
            a["name"].as_str().unwrap_or("")
        ));
    }
}

/// Run `orchestratr agent …`; the exit code.
pub(super) fn run(env: &Env, a: &AgentArgs) -> u8 {
    let client = match env.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let p = &env.paths;
    let r: Result<u8, ClientError> = (|| match &a.cmd {
        AgentCmd::Spawn {
            agent_type,
            cwd,
            name,
            prompt,
            env: vars,
            json,
        } => {
            let mut e = serde_json::Map::new();
            for v in vars {
                let Some((k, val)) = v.split_once('=') else {
                    err(&format!("--env '{v}' must be NAME=VALUE"));
                    return Ok(EXIT_USAGE);
                };
                e.insert(k.into(), Value::String(val.into()));
            }
            let body = json!({"agent_type": agent_type, "working_dir": cwd, "name": name,
                              "prompt": prompt, "env": e});
            let (_, v) = client.post("/agents/spawn", Some(&body), p)?;
            if *json {
                out_json(&v);
            } else {
                out(v["session_id"].as_str().unwrap_or(""));
            }
            Ok(EXIT_OK)
        }
        AgentCmd::List {
            status,
            agent_type,
            json,
        } => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = status {
                q.append_pair("status", s);
            }
            if let Some(t) = agent_type {
                q.append_pair("agent_type", t);
            }
            let v = client.get(&format!("/agents?{}", q.finish()), p)?;
            if *json {
                out_json(&v);
            } else {
                table(v["agents"].as_array().map(Vec::as_slice).unwrap_or(&[]));
            }
            Ok(EXIT_OK)
        }
        AgentCmd::Show { id } => {
            out_json(&client.get(&format!("/agents/{}", enc(id)), p)?);
            Ok(EXIT_OK)
        }
        AgentCmd::Send {
            id,
            text,
            no_submit,
        } => {
            client.post(
                &format!("/agents/{}/input", enc(id)),
                Some(&json!({"text": text, "submit": !no_submit})),
                p,
            )?;
            Ok(EXIT_OK)
        }
        AgentCmd::Keys { id, keys } => {
            client.post(
                &format!("/agents/{}/input", enc(id)),
                Some(&json!({"keys": keys})),
                p,
            )?;
            Ok(EXIT_OK)
        }
        AgentCmd::Screen { id } => {
            let v = client.get(&format!("/agents/{}/screen", enc(id)), p)?;
            out(v["text"].as_str().unwrap_or("").trim_end_matches('\n'));
            Ok(EXIT_OK)
        }
        AgentCmd::Logs { id, follow } => {
            if !follow {
                let b = client.get_bytes(&format!("/agents/{}/output", enc(id)), p)?;
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&b).and_then(|_| o.flush());
                return Ok(EXIT_OK);
            }
            follow_logs(env, id)
        }
        AgentCmd::Attach { id } => {
            let v = client.get(&format!("/agents/{}/attach", enc(id)), p)?;
            let argv: Vec<String> = v["command"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let Some((prog, rest)) = argv.split_first() else {
                err("the daemon sent no attach command");
                return Ok(EXIT_FAIL);
            };
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new(prog)
                .args(rest)
                .env_remove("TMUX")
                .env_remove("TMUX_PANE")
                .exec();
            err(&format!("cannot run {prog}: {e}"));
            Ok(EXIT_FAIL)
        }
        AgentCmd::Kill { id } => {
            let (_, v) = client.delete(&format!("/agents/{}", enc(id)), p)?;
            out(&format!(
                "killed {}",
                v["session_id"].as_str().unwrap_or(id.as_str())
            ));
            Ok(EXIT_OK)
        }
    })();
    r.unwrap_or_else(|e| fail(&e))
}

fn follow_logs(env: &Env, id: &str) -> Result<u8, ClientError> {
    let path = format!("/agents/{}/stream", enc(id));
    let mut from = 0u64;
    let mut failures = 0;
    loop {
        let mut reader = match env
            .client()
            .and_then(|c| c.stream(&path, Some(from), &env.paths))
        {
            Ok(r) => r,
            Err(e @ ClientError::Api { .. }) => return Err(e),
            Err(e) => {
                failures += 1;
                if failures > 120 {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        failures = 0;
        while let Ok(Some(f)) = next_frame(&mut *reader) {
            let v: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
            match f.event.as_str() {
                "output" => {
                    if let Some(t) = v["text"].as_str() {
                        let mut o = std::io::stdout().lock();
                        if o.write_all(t.as_bytes()).and_then(|_| o.flush()).is_err() {
                            return Ok(EXIT_OK);
                        }
                    }
                    if let Some(next) = f.id.as_deref().and_then(|i| i.parse().ok()) {
                        from = next;
                    }
                }
                "end" => return Ok(EXIT_OK),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `orchestratr agent-exec DIR` (hidden): the first process of an agent pane.
pub(super) fn agent_exec(dir: &std::path::Path) -> u8 {
    crate::agents::wrapper::run(dir)
}
