//! Small filesystem helpers shared by the daemon and the CLI: atomic writes.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Write `data` to `path` atomically: a temp file beside it (`.<name>.tmp.<pid>`),
/// fsync, then `rename` over the target, so readers see the old or the new content,
/// never a partial one. `mode` sets the temp file's permission bits (e.g. `0o600`).
///
/// Errors: any I/O error of create, write, sync or rename; the temp file is removed
/// on failure.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_replace(path, data, mode, true)
}

/// As [`write_atomic`] without the fsync: atomic against process crashes (the
/// rename is), not against power loss. For records rewritten on every change.
///
/// Errors: as [`write_atomic`].
pub fn write_atomic_nosync(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_replace(path, data, mode, false)
}

fn write_replace(path: &Path, data: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let n = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Create `dir` and its parents with mode 0700 (private to the user) if absent.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
