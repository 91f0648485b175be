//! `config check` (validate without a daemon; exit 0 or 2) and `config path`.
//!
//! `check` calls `crate::config::check`, the daemon's own loader, so what it
//! accepts is what `serve` accepts; a broken drop-in (which the daemon skips
//! with a warning) is an error here.

use super::{CliError, EXIT_OK, Env, Outcome, err, out, out_json};
use clap::{Args, Subcommand};
use serde_json::json;

/// `orchestratr config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate config.yml and apps.d/ without a daemon: exit 0 if valid, 2 if not;
    /// every error as file:line:column, warnings too.
    Check(CheckArgs),
    /// Print the path of config.yml (and, with --all, every file orchestratr reads).
    Path(PathArgs),
}

/// `config check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print a JSON report ({"valid":bool,"errors":[...],"warnings":[...]}).
    #[arg(long)]
    pub json: bool,
}

/// `config path`
#[derive(Debug, Args)]
pub struct PathArgs {
    /// Also print the apps.d/, port, token, remotes and state paths.
    #[arg(long)]
    pub all: bool,
}

/// Run one `config` subcommand.
pub fn dispatch(env: &Env, c: ConfigCmd) -> Outcome {
    match c {
        ConfigCmd::Check(a) => check(env, &a),
        ConfigCmd::Path(a) => path(env, &a),
    }
}

fn check(env: &Env, a: &CheckArgs) -> Outcome {
    let file = env.paths.config_file();
    let report = crate::config::check(&env.paths.config_dir);
    let lines: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
    if a.json {
        out_json(
            &json!({"valid": report.is_valid(), "file": file, "errors": lines,
            "warnings": report.warnings, "apps": report.apps, "tasks": report.tasks}),
        );
    } else {
        for w in &report.warnings {
            err(&format!("warning: {w}"));
        }
    }
    if !report.is_valid() {
        return Err(CliError::Config(
            format!("{} is invalid ({} errors)", file.display(), lines.len()),
            if a.json { Vec::new() } else { lines },
        ));
    }
    if !a.json {
        let exists = if file.exists() {
            ""
        } else {
            " (not written yet: the built-in default)"
        };
        out(&format!(
            "{}{exists}: valid ({} apps, {} tasks, {} warnings)",
            file.display(),
            report.apps,
            report.tasks,
            report.warnings.len()
        ));
    }
    Ok(EXIT_OK)
}

fn path(env: &Env, a: &PathArgs) -> Outcome {
    let p = &env.paths;
    out(&p.config_file().display().to_string());
    if a.all {
        out(&p.apps_dir().display().to_string());
        out(&p.port_file().display().to_string());
        out(&p.token_file().display().to_string());
        out(&super::remote_cmds::remotes_file(p).display().to_string());
        out(&p.state_dir.display().to_string());
    }
    Ok(EXIT_OK)
}
