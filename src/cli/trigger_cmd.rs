//! `orchestratr trigger CHORD` (API.md §9, compatibility with the Go
//! orchestratr): launch the app bound to a hotkey chord, e.g. from a Wayland
//! compositor keybinding.

use super::{EXIT_OK, Env, fail, out, out_json};
use serde_json::json;

/// Arguments of `orchestratr trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The chord of a registered app (its `chord:` in the config), e.g. `e`.
    pub chord: String,
    /// Print the daemon's JSON ({"status","app","pid"}).
    #[arg(long)]
    pub json: bool,
}

/// `POST /trigger {"chord": CHORD}`; prints what was launched. Exit 0 on
/// `launched`/`already_running`, 1 on an error answer (no app with the chord:
/// 404), 3 when the daemon is not running.
pub fn trigger(env: &Env, a: &TriggerArgs) -> u8 {
    let body = json!({"chord": a.chord});
    match env
        .client()
        .and_then(|c| c.post("/trigger", Some(&body), &env.paths))
    {
        Ok((_, v)) => {
            if a.json {
                out_json(&v);
            } else {
                let app = v["app"].as_str().unwrap_or("?");
                if v["status"] == "already_running" {
                    out(&format!("{app} is already running (pid {})", v["pid"]));
                } else {
                    out(&format!("launched {app} (pid {})", v["pid"]));
                }
            }
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}
