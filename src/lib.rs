//! orchestratr — a small, fast, per-user orchestration daemon and its own CLI client.
//!
//! The binary (`src/main.rs`) is a thin wrapper around [`cli::main`]. The daemon is
//! [`daemon::run`], a library function so tests can boot it in-process. See
//! `ARCHITECTURE.md` for the code map and invariants, `docs/api.md` for the HTTP
//! contract as built.

pub mod actor;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod events;
pub mod executor;
pub mod fsutil;
pub mod hooks;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod notify;
pub mod openapi;
pub mod paths;
pub mod proc;
pub mod records;
pub mod registry;
pub mod time;
pub mod tracker;
pub mod watcher;
pub mod ws;

/// The daemon's version, reported by `GET /health` (`Cargo.toml` `version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
