//! Where approvals live: `<state>/approvals/<id>.json`, one [`Approval`] JSON
//! each, written atomically through the shared record writer
//! (`crate::records`); and reading them back at start.

use super::{Approval, valid_id};
use crate::records::Store;
use std::path::{Path, PathBuf};

/// Approval files under a directory; `None` keeps approvals in memory only
/// (the directory could not be created).
pub struct ApprovalStore {
    dir: Option<PathBuf>,
}

impl ApprovalStore {
    /// A store over `dir` (`<state>/approvals`), or memory only.
    pub fn new(dir: Option<PathBuf>) -> ApprovalStore {
        ApprovalStore { dir }
    }
    fn file_of(&self, id: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{id}.json")))
    }
}

impl Store for ApprovalStore {
    type Record = Approval;
    fn id(a: &Approval) -> &str {
        &a.id
    }
    /// Pretty JSON plus a newline, mode 0600, temp file + rename + fsync.
    fn save(&self, a: &Approval) -> std::io::Result<()> {
        let Some(path) = self.file_of(&a.id) else {
            return Ok(());
        };
        let mut data = serde_json::to_vec_pretty(a).map_err(std::io::Error::other)?;
        data.push(b'\n');
        crate::fsutil::write_atomic(&path, &data, 0o600)
    }
    fn remove(&self, id: &str) {
        if let Some(path) = self.file_of(id)
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Every `<id>.json` under `dir` whose name is a valid id and whose JSON is an
/// approval with that id, with its path. Others are skipped with a warning.
pub fn load_all(dir: &Path) -> Vec<(PathBuf, Approval)> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            log::warn!("cannot read {}: {e}", dir.display());
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if !valid_id(stem) {
            continue;
        }
        let path = ent.path();
        match load_one(&path, stem) {
            Ok(a) => out.push((path, a)),
            Err(m) => log::warn!("skipping {}: {m}", path.display()),
        }
    }
    out
}

/// Read one persisted approval and check its id matches the file name.
fn load_one(path: &Path, stem: &str) -> Result<Approval, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let a: Approval = serde_json::from_str(&text).map_err(|e| format!("invalid json: {e}"))?;
    if a.id != stem {
        return Err(format!("its id '{}' does not match the file name", a.id));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use crate::approvals::{Approvals, Decision, NewApproval, Status};
    use crate::events::Bus;

    #[test]
    fn a_reply_comes_after_its_save_and_a_restart_reads_it() {
        let state = tempfile::tempdir().expect("tmp");
        let (bus, _bus_thread) = Bus::start(100, crate::config::DEFAULT_EVENT_BUFFER_BYTES);
        let (ap, h) = Approvals::start(state.path(), bus.clone(), 10);
        let a = ap
            .create(NewApproval {
                title: "deploy?".into(),
                ..Default::default()
            })
            .expect("created");
        let file = state
            .path()
            .join("approvals")
            .join(format!("{}.json", a.id));
        assert!(file.is_file(), "the reply came before {}", file.display());
        let d = ap
            .decide(Decision {
                id: a.id.clone(),
                decision: "approve".into(),
                comment: None,
                by: None,
            })
            .expect("decided");
        let on_disk = std::fs::read_to_string(&file).expect("read");
        assert!(on_disk.contains("\"approved\""), "{on_disk}");
        ap.shutdown();
        let _ = h.join();
        let (ap, h) = Approvals::start(state.path(), bus.clone(), 10);
        let again = ap.get(&a.id).expect("get").expect("loaded");
        assert_eq!(again.status, Status::Approved);
        assert_eq!(again.decided_at, d.decided_at);
        ap.shutdown();
        let _ = h.join();
        bus.stop();
    }
}
