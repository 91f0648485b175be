//! Where execution records live: `<state>/executions/<id>/execution.json`
//! (record.rs), written through the shared record writer and commit point
//! (`crate::records`: nothing is shown before it is on disk).

use super::record::{self, ExecRecord};
use crate::records::{RecordWriter, Store};
use std::path::PathBuf;

/// The executions' record writer.
pub type Persister = RecordWriter<ExecStore>;

/// Execution records under `root` (`<state>/executions`).
pub struct ExecStore {
    root: PathBuf,
}

impl Store for ExecStore {
    type Record = ExecRecord;
    fn id(rec: &ExecRecord) -> &str {
        &rec.exec.id
    }
    fn save(&self, rec: &ExecRecord) -> std::io::Result<()> {
        record::save(&self.root, rec)
    }
    /// Deletes the execution's directory (record and output).
    fn remove(&self, id: &str) {
        let _ = std::fs::remove_dir_all(record::exec_dir(&self.root, id));
    }
}

/// Start the record writer for executions under `root`.
pub fn start(root: PathBuf) -> Persister {
    RecordWriter::start("exec-persist", ExecStore { root })
}
