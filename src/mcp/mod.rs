//! MCP server (API.md §13 "MCP server"): JSON-RPC 2.0 framing ([`jsonrpc`]),
//! the protocol methods ([`protocol`]) and the tool catalog ([`tools`]).
//! Transports: `POST /mcp` (Streamable HTTP, `http/mcp.rs`) and the stdio
//! bridge `orchestratr mcp` (`cli/mcp_cmd.rs`), which forwards to it.
//!
//! No async runtime: the official Rust SDK needs tokio, and the protocol is
//! small enough for serde_json (DESIGN.md §5). Shapes are checked against the
//! official Python SDK in `tests/python/`.

mod catalog;
pub mod jsonrpc;
pub mod protocol;
pub mod tools;

use crate::config::ExecConfig;
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};

/// The tasks and agents the tool catalog is built from; replaced on every
/// config reload. Cheap to clone.
#[derive(Clone, Default)]
pub struct McpState {
    exec: Arc<RwLock<Arc<ExecConfig>>>,
}

impl McpState {
    /// A state serving `exec`.
    pub fn new(exec: ExecConfig) -> McpState {
        McpState {
            exec: Arc::new(RwLock::new(Arc::new(exec))),
        }
    }
    /// The current config (an `Arc` clone under a read lock).
    pub fn exec(&self) -> Arc<ExecConfig> {
        match self.exec.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
    /// Apply a reloaded config.
    pub fn set_exec(&self, exec: ExecConfig) {
        let mut g = match self.exec.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Arc::new(exec);
    }
}

/// The one audit point of tool calls (API.md §12: "MCP tool calls by length
/// and hash, never their text"). `via` is `mcp` or `http`; `sink` writes the
/// audit line (`<state>/audit.jsonl`), and the daemon log gets one line too.
pub fn audit_tool_call(
    via: &str,
    sink: Option<&tools::AuditSink>,
    tool: &str,
    args: &serde_json::Value,
    outcome: &tools::Outcome,
) {
    let raw = serde_json::to_vec(args).unwrap_or_default();
    let hash: String = Sha256::digest(&raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let result = if outcome.is_error { "error" } else { "ok" };
    log::info!(
        "tool call via={via} tool={tool} args_len={} args_sha256={hash} outcome={result}",
        raw.len(),
    );
    if let Some(sink) = sink {
        sink(
            tool,
            result,
            &serde_json::json!({"via": via, "args_len": raw.len(), "args_sha256": hash}),
        );
    }
}
