//! `completions SHELL` (clap_complete) and `man` (clap_mangen), both generated
//! from the same clap tree as `--help`, so they never drift from it.

use super::{Cli, CliError, EXIT_OK, Outcome};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `orchestratr completions SHELL`
#[derive(Debug, Args)]
#[command(
    long_about = "Print a shell completion script on stdout. For example:\n\
  bash: orchestratr completions bash > ~/.local/share/bash-completion/completions/orchestratr\n\
  zsh:  orchestratr completions zsh > \"${fpath[1]}/_orchestratr\"\n\
  fish: orchestratr completions fish > ~/.config/fish/completions/orchestratr.fish"
)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub(super) fn completions(a: &CompletionsArgs) -> Outcome {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "orchestratr", &mut std::io::stdout());
    Ok(EXIT_OK)
}

pub(super) fn man() -> Outcome {
    let cmd = Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| CliError::failed(format!("cannot render the man page: {e}")))?;
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(&buf).and_then(|_| o.flush());
    Ok(EXIT_OK)
}
