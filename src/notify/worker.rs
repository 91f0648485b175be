//! The notifier's two threads: `notify-match` (bus subscriber: filters events
//! and enqueues deliveries without ever waiting) and `notify-send` (posts
//! them, with retries). See the module docs of [`super`].

use super::deliver::{self, Delivery};
use super::{BACKOFF_MS, NotifyState, QUEUE_CAPACITY, TRIES};
use crate::approvals::{Approvals, Status};
use crate::config::notify::{NotifyFormat, NotifySpec};
use crate::events::{Bus, Event, EventFilter};
use crate::registry::Registry;
use crossbeam_channel::{TrySendError, bounded};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

/// Live events the subscription may queue before the bus drops it (then the
/// matcher re-subscribes from the last event it saw).
const SUBSCRIPTION_CAPACITY: usize = 8192;

/// What the matcher needs.
pub struct Deps {
    /// The event bus.
    pub bus: Bus,
    /// Settings (`notify:` entries, re-read for every event: reloads apply at once).
    pub registry: Registry,
    /// To read an approval's title and check it is pending.
    pub approvals: Approvals,
    /// Counters and action tokens shared with the HTTP layer.
    pub state: NotifyState,
    /// Default base of click/action URLs (`http://127.0.0.1:<port>`).
    pub base_url: String,
}

/// Start both threads. They end when the bus stops.
///
/// Errors: the OS refused a thread.
pub fn start(deps: Deps) -> std::io::Result<JoinHandle<()>> {
    let (tx, rx) = bounded::<Delivery>(QUEUE_CAPACITY);
    let st = deps.state.clone();
    std::thread::Builder::new()
        .name("notify-send".into())
        .spawn(move || {
            let agent = deliver::agent();
            for d in rx {
                let secret = match (&d.spec.format, &d.spec.secret_env) {
                    (NotifyFormat::Json, Some(var)) => match std::env::var(var) {
                        Ok(s) if !s.is_empty() => Some(s.into_bytes()),
                        _ => {
                            log::warn!(
                                "notify: secret_env {var} is not set; not sending an unsigned delivery to {}",
                                d.spec.url
                            );
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                    _ => None,
                };
                let p = deliver::prepare(&d, secret.as_deref());
                if deliver::send(&agent, &p, TRIES, Duration::from_millis(BACKOFF_MS)) {
                    st.delivered.fetch_add(1, Ordering::Relaxed);
                } else {
                    st.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })?;
    std::thread::Builder::new()
        .name("notify-match".into())
        .spawn(move || {
            let mut after: Option<u64> = None;
            loop {
                let Ok(sub) =
                    deps.bus
                        .subscribe(EventFilter::default(), after, SUBSCRIPTION_CAPACITY)
                else {
                    return;
                };
                for ev in sub.replay.iter().chain(std::iter::empty()) {
                    after = Some(ev.id);
                    matched(&deps, ev, &tx);
                }
                for ev in sub.rx.iter() {
                    after = Some(ev.id);
                    matched(&deps, &ev, &tx);
                }
                if !sub.lagged.load(Ordering::Acquire) {
                    return; // the bus stopped
                }
                log::warn!("notify: fell behind the event bus; resubscribing");
            }
        })
}

/// Does `spec` want event `ev` (whose data is `data`)?
pub fn wants(spec: &NotifySpec, ev: &Event, data: &Value) -> bool {
    let status = data.get("status").and_then(Value::as_str);
    if !spec.events.iter().any(|p| p.matches(&ev.kind, status)) {
        return false;
    }
    match data.get("duration_ms").and_then(Value::as_u64) {
        Some(d) if ev.kind.starts_with("execution.") => d >= spec.min_duration_ms,
        _ => true,
    }
}

fn matched(deps: &Deps, ev: &Arc<Event>, tx: &crossbeam_channel::Sender<Delivery>) {
    let data: Value = ev.data();
    let approval_id = data.get("id").and_then(Value::as_str).map(str::to_string);
    if matches!(ev.kind.as_str(), "approval.decided" | "approval.expired")
        && let Some(id) = &approval_id
    {
        deps.state.actions.forget(id);
    }
    let settings = deps.registry.settings();
    for spec in settings.notify.iter().filter(|s| wants(s, ev, &data)) {
        let approval = match (&approval_id, ev.kind.starts_with("approval.")) {
            (Some(id), true) => deps.approvals.get(id).ok().flatten(),
            _ => None,
        };
        let mut actions = Vec::new();
        if spec.actions
            && spec.format == NotifyFormat::Ntfy
            && ev.kind == "approval.requested"
            && let Some(a) = approval.as_ref().filter(|a| a.status == Status::Pending)
        {
            let decisions: Vec<&str> = ["approve", "deny"]
                .into_iter()
                .filter(|d| a.options.iter().any(|o| o == d))
                .collect();
            actions = deps
                .state
                .actions
                .mint(&a.id, &decisions)
                .unwrap_or_default();
        }
        let d = Delivery {
            spec: spec.clone(),
            event: ev.clone(),
            approval,
            actions,
            base_url: spec
                .public_url
                .clone()
                .unwrap_or_else(|| deps.base_url.clone()),
        };
        match tx.try_send(d) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                deps.state.dropped.fetch_add(1, Ordering::Relaxed);
                log::debug!("notify: queue full; dropped a delivery of {}", ev.kind);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}
