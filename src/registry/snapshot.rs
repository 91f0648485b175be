//! Pre-serialized bodies of the registry's hot reads (issue 7 part 7):
//! `GET /apps`, `GET /apps/{name}`, `GET /apps/{name}/state` and the app count
//! of `GET /health`.
//!
//! A separate file because it is a job of its own (publishing a read-only,
//! immutable copy of the actor's state) and registry.rs was already past 700
//! lines. The registry actor owns the state; after each command it calls
//! [`Published::publish`], which compares every app with the last snapshot,
//! re-serializes only the apps that changed and, if any did, swaps in a new
//! [`Snapshot`]. Readers clone an `Arc` under a read lock and copy bytes: no
//! round trip to the actor and no `serde_json::Value` tree per request.
//!
//! Bodies are produced exactly as the handlers produced them before (through
//! `serde_json::to_value`, i.e. with the object keys in serde_json's map order),
//! so the output is byte-identical to the former per-request serialization.

use super::{AppState, AppView, Entry};
use crate::config::AppSpec;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The serialized bodies of one app.
#[derive(Debug)]
pub struct AppBodies {
    /// The app as the API shows it (spec and state).
    pub view: AppView,
    /// JSON of `view` (API.md §4 `App`), the body of `GET /apps/{name}`.
    pub app: String,
    /// JSON of `view.state` (API.md §4 `AppState`), the body of `GET /apps/{name}/state`.
    pub state: String,
}

impl AppBodies {
    fn new(spec: &AppSpec, state: &AppState) -> AppBodies {
        let view = AppView {
            spec: spec.clone(),
            state: state.clone(),
        };
        AppBodies {
            app: to_json(&view),
            state: to_json(&view.state),
            view,
        }
    }
}

/// An immutable copy of the registry as the API shows it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every app by name.
    pub apps: BTreeMap<String, Arc<AppBodies>>,
    /// `{"apps":[…],"total":n}`, the body of `GET /apps` (API.md §4).
    pub list: String,
}

impl Snapshot {
    fn build(apps: BTreeMap<String, Arc<AppBodies>>) -> Snapshot {
        // The same bytes as `json!({"total": n, "apps": views})` serialized: the
        // keys in serde_json's map order, each app as its own body.
        let total = apps.len();
        let cap = apps.values().map(|b| b.app.len() + 1).sum::<usize>() + 32;
        let mut items = String::with_capacity(cap);
        items.push('[');
        for (i, b) in apps.values().enumerate() {
            if i > 0 {
                items.push(',');
            }
            items.push_str(&b.app);
        }
        items.push(']');
        let mut map = serde_json::Map::new();
        map.insert("total".into(), serde_json::Value::from(total));
        map.insert("apps".into(), serde_json::Value::Null);
        let mut list = String::with_capacity(cap);
        list.push('{');
        for (i, k) in map.keys().enumerate() {
            if i > 0 {
                list.push(',');
            }
            list.push_str(&to_json(k));
            list.push(':');
            if k == "apps" {
                list.push_str(&items);
            } else {
                list.push_str(&total.to_string());
            }
        }
        list.push('}');
        Snapshot { apps, list }
    }
}

/// Serialize through a `Value` (key order of serde_json's map, as `json!` did).
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .and_then(|v| serde_json::to_string(&v))
        .unwrap_or_else(|e| {
            log::error!("cannot serialize an app: {e}");
            "null".into()
        })
}

/// The published snapshot, shared between the actor (writer) and every
/// [`super::Registry`] handle (readers). Cheap to clone.
#[derive(Clone)]
pub struct Published(Arc<RwLock<Arc<Snapshot>>>);

impl Published {
    /// A first snapshot of `apps` (built even when there are none, so the
    /// empty registry's list body is `{"apps":[],"total":0}`).
    pub fn new(apps: &BTreeMap<String, Entry>) -> Published {
        let all = apps
            .iter()
            .map(|(n, e)| (n.clone(), Arc::new(AppBodies::new(&e.spec, &e.state))))
            .collect();
        Published(Arc::new(RwLock::new(Arc::new(Snapshot::build(all)))))
    }

    /// The current snapshot (an `Arc` clone under a read lock).
    pub fn get(&self) -> Arc<Snapshot> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Publish `apps` if it differs from the current snapshot: re-serializes
    /// only the apps whose spec or state changed. Returns whether a new
    /// snapshot was published.
    pub fn publish(&self, apps: &BTreeMap<String, Entry>) -> bool {
        let old = self.get();
        let mut changed = old.apps.len() != apps.len();
        let mut next = BTreeMap::new();
        for (name, e) in apps {
            let bodies = match old.apps.get(name) {
                Some(b) if b.view.state == e.state && b.view.spec == e.spec => b.clone(),
                _ => {
                    changed = true;
                    Arc::new(AppBodies::new(&e.spec, &e.state))
                }
            };
            next.insert(name.clone(), bodies);
        }
        if !changed {
            return false;
        }
        let snap = Arc::new(Snapshot::build(next));
        match self.0.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
        true
    }
}
