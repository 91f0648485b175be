//! The WebSocket bridge of API.md §11 (`GET /ws/observe`), Orchestra's
//! observer protocol: terminal output of agent sessions resumable by byte
//! offset, user messages into a pane, agent status and task updates, plus the
//! extensions `subscribe_events` and `decide_approval`. The HTTP upgrade lives
//! in `http/ws.rs`; this module speaks frames and messages only.

pub mod protocol;
pub mod session;

pub use session::{Deps, MAX_MESSAGES_PER_MIN, start};
