//! "Did you mean" for unknown config keys (issue 8 part 2). Unknown keys stay
//! warnings (API.md §6); the warning names the closest known key when one is
//! close enough.
//!
//! The known keys are read from the raw schema itself (serde's derive hands its
//! field list to `deserialize_struct`), so a key added to a raw struct is a
//! candidate without a second list to keep in sync. Similarity is Jaro-Winkler
//! from `strsim` (the crate clap uses for the same purpose).

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::path::Path;

/// Which schema a key path starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    /// `config.yml`.
    Main,
    /// An `apps.d/*.yml` drop-in (one flat app entry).
    Dropin,
}

/// Minimum Jaro-Winkler similarity for a suggestion.
const THRESHOLD: f64 = 0.8;

/// A deserializer that only records the field list `T`'s derive passes.
struct Probe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The field names of a derived struct.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The known keys at the place `path` (a cleaned `serde_ignored` path such as
/// `apps[0].chord_x` or `pools.gpu.max_concurent`) points into.
fn candidates(path: &str, root: Root) -> &'static [&'static str] {
    let parent = match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    };
    let segs: Vec<&str> = if parent.is_empty() {
        Vec::new()
    } else {
        parent.split('.').collect()
    };
    let strip_index = |s: &str| s.split('[').next().unwrap_or("").to_string();
    match (root, segs.as_slice()) {
        (Root::Main, []) => fields_of::<super::RawConfig>(),
        (Root::Dropin, []) => fields_of::<super::RawApp>(),
        (Root::Main, [s]) if s.ends_with(']') && strip_index(s) == "apps" => {
            fields_of::<super::RawApp>()
        }
        (Root::Main, [s]) if s.ends_with(']') && strip_index(s) == "tasks" => {
            fields_of::<super::exec::RawTask>()
        }
        (Root::Main, [s]) if s.ends_with(']') && strip_index(s) == "notify" => {
            fields_of::<super::notify::RawNotify>()
        }
        (Root::Main, ["retention"]) => fields_of::<super::RawRetention>(),
        (Root::Main, ["pools", _]) => fields_of::<super::exec::RawPool>(),
        (Root::Main, ["agents", _]) => fields_of::<super::exec::RawAgent>(),
        _ => &[],
    }
}

/// The known key closest to the last segment of `path`, if close enough.
pub(crate) fn closest(path: &str, root: Root) -> Option<&'static str> {
    let key = path.rsplit('.').next().unwrap_or(path);
    candidates(path, root)
        .iter()
        .map(|c| (strsim::jaro_winkler(key, c), *c))
        .filter(|(score, c)| *score >= THRESHOLD && *c != key)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The warning for an unknown key: `<file>: unknown key '<path>' ignored`, plus
/// ` (did you mean '<key>'?)` when a known key is close.
pub(crate) fn unknown_key(file: &Path, path: &str, root: Root) -> String {
    match closest(path, root) {
        Some(k) => format!(
            "{}: unknown key '{path}' ignored (did you mean '{k}'?)",
            file.display()
        ),
        None => format!("{}: unknown key '{path}' ignored", file.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_in_each_place() {
        assert_eq!(
            closest("sse_queue_capcity", Root::Main),
            Some("sse_queue_capacity")
        );
        assert_eq!(closest("apps[0].comand", Root::Main), Some("command"));
        assert_eq!(closest("comand", Root::Dropin), Some("command"));
        assert_eq!(
            closest("retention.executons", Root::Main),
            Some("executions")
        );
        assert_eq!(
            closest("pools.gpu.max_concurent", Root::Main),
            Some("max_concurrent")
        );
        assert_eq!(closest("tasks[2].timeout", Root::Main), Some("timeout_ms"));
        assert_eq!(
            closest("agents.claude.delegat", Root::Main),
            Some("delegate")
        );
    }

    #[test]
    fn far_keys_get_no_suggestion() {
        assert_eq!(closest("leader_key", Root::Main), None);
        assert_eq!(closest("zzz", Root::Dropin), None);
        let w = unknown_key(Path::new("/c/config.yml"), "leader_key", Root::Main);
        assert_eq!(w, "/c/config.yml: unknown key 'leader_key' ignored");
    }
}
