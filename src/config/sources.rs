//! Reading the config files (API.md §6, §9 "bounded state"): `config.yml` and
//! `apps.d/*.yml`, each at most [`MAX_FILE_BYTES`] (checked on the open file's
//! metadata before reading, and again while reading), plus the content
//! fingerprint the watcher and the registry compare to skip reloads of unchanged
//! bytes (DESIGN.md §5: notify reports opens, so only content may decide).

use super::{ConfigError, DEFAULT_CONFIG, Diagnostic, is_dropin_name};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest accepted config file (`config.yml` or one drop-in): 4 MiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One drop-in as read from disk.
pub(crate) struct DropinSource {
    /// Full path.
    pub path: PathBuf,
    /// File name (e.g. `espansr.yml`).
    pub fname: String,
    /// Its text, or the problem that kept it from being read (a skip warning).
    pub text: Result<String, Diagnostic>,
}

/// Everything the config is made of, read once.
pub(crate) struct Sources {
    /// `<cfg>/config.yml`.
    pub main_path: PathBuf,
    /// Its text (the embedded default when missing), or why it cannot be used.
    pub main: Result<String, ConfigError>,
    /// Drop-ins in file-name order.
    pub dropins: Vec<DropinSource>,
    /// Hash of every file name and its bytes (or its size, when over the cap).
    pub fingerprint: u64,
}

/// Why a file could not be read as config text.
enum ReadError {
    /// Larger than [`MAX_FILE_BYTES`]; the size seen.
    TooBig(u64),
    /// The OS error (not-UTF-8 content is `InvalidData`).
    Io(std::io::Error),
}

fn too_big(path: &Path, size: u64) -> Diagnostic {
    Diagnostic {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!(
            "file is {size} bytes, over the {MAX_FILE_BYTES}-byte (4 MiB) limit of a config file"
        ),
    }
}

/// Read `path` as UTF-8 text if it holds at most [`MAX_FILE_BYTES`]. The size is
/// taken from the open file's metadata before any byte is read, and the read
/// itself stops one byte past the cap, so a file growing meanwhile cannot get in.
fn read_capped(path: &Path) -> Result<String, ReadError> {
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    let len = f.metadata().map_err(ReadError::Io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(ReadError::TooBig(len));
    }
    // `len` ≤ 4 MiB here, so the capacity is bounded.
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooBig(buf.len() as u64));
    }
    String::from_utf8(buf).map_err(|_| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "file is not valid UTF-8",
        ))
    })
}

/// Read `<dir>/config.yml` and the drop-ins of `<dir>/apps.d/`, hashing them.
pub(crate) fn read(dir: &Path) -> Sources {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let main_path = dir.join("config.yml");
    let main = match read_capped(&main_path) {
        Ok(t) => Ok(t),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(DEFAULT_CONFIG.to_string())
        }
        Err(ReadError::Io(e)) => Err(ConfigError::Io {
            path: main_path.clone(),
            source: e,
        }),
        Err(ReadError::TooBig(n)) => {
            ("too big", n).hash(&mut hasher);
            Err(ConfigError::Invalid(vec![too_big(&main_path, n)]))
        }
    };
    if let Ok(t) = &main {
        t.hash(&mut hasher);
    }

    let apps_dir = dir.join("apps.d");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&apps_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(is_dropin_name))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut dropins = Vec::with_capacity(files.len());
    for path in files {
        let fname = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        fname.hash(&mut hasher);
        let text = match read_capped(&path) {
            Ok(t) => {
                t.hash(&mut hasher);
                Ok(t)
            }
            Err(ReadError::TooBig(n)) => {
                ("too big", n).hash(&mut hasher);
                Err(too_big(&path, n))
            }
            Err(ReadError::Io(e)) => {
                ("unreadable", e.kind().to_string()).hash(&mut hasher);
                Err(Diagnostic {
                    file: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                })
            }
        };
        dropins.push(DropinSource { path, fname, text });
    }
    Sources {
        main_path,
        main,
        dropins,
        fingerprint: hasher.finish(),
    }
}

/// The content fingerprint of the config in `dir`: equal values mean the same
/// file names and bytes (what [`super::Config::fingerprint`] holds after a
/// load). Reads the files (each at most 4 MiB) but parses nothing.
pub fn fingerprint(dir: &Path) -> u64 {
    read(dir).fingerprint
}
