//! `approvals`, `approve`, `deny`, `ask` and `hook claude-code`.
//!
//! SCAFFOLD: to be implemented (issue 4).

use super::{EXIT_FAIL, Env, err};
use clap::Args;

/// `orchestratr approvals`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr approve ID` / `orchestratr deny ID`
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Approval id.
    pub id: String,
}

/// `orchestratr ask`
#[derive(Debug, Args)]
pub struct AskArgs {}

/// `orchestratr hook claude-code`
#[derive(Debug, Args)]
pub struct HookArgs {}

pub(super) fn list(_env: &Env, _a: &ListArgs) -> u8 {
    err("not implemented");
    EXIT_FAIL
}
pub(super) fn decide(_env: &Env, _a: &DecideArgs, _decision: &str) -> u8 {
    err("not implemented");
    EXIT_FAIL
}
pub(super) fn ask(_env: &Env, _a: &AskArgs) -> u8 {
    err("not implemented");
    EXIT_FAIL
}
pub(super) fn hook(_env: &Env, _a: &HookArgs) -> u8 {
    err("not implemented");
    EXIT_FAIL
}
