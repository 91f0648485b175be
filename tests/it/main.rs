//! The integration tests, one binary (issue 8: it links once). Each module is
//! one area; every test boots the real `orchestratr` binary (or talks to one
//! it started) on port 0 with private config and state dirs. Shared helpers:
//! `common` (daemon harness, raw HTTP/1.1, SSE, polling, /proc) and
//! `exec_support` (the executions harness on top of it).

mod common;
mod exec_support;
// Shared by the agent tests.
mod agent_support;

mod agents;
mod api_routes;
mod approvals;
mod audit;
mod cli_snapshots;
mod cli_ux;
mod config_fuzz;
mod config_reload;
mod dashboard;
mod delegate_live;
mod events_prop;
mod events_v3;
mod exec_storm;
mod executions;
mod guards;
mod hook_claude_code;
mod hot_reads;
mod lifecycle_cli;
mod listener;
mod mcp;
mod openapi;
mod packaging;
mod parsers_prop;
mod processes;
mod reload_once;
mod same_user;
mod sse;
mod tiny_http_upgrade;
mod tokens;
mod transport;
mod transport_prop;
mod ws;
