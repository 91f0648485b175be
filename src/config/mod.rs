// Why this file is past ~600 lines: because the raw schema and its validation read the same private structs; ranges, sources, diagnostics and the sub-schemas live in their own files.
//! Config: `<cfg>/config.yml` plus drop-ins `<cfg>/apps.d/*.yml` (API.md §6,
//! docs/api.md §6).
//!
//! Parsing uses `serde-saphyr` (line/column in every syntax or type error) with
//! `serde_ignored` to turn unknown keys into warnings ("did you mean" from
//! `suggest.rs`). Semantic checks (name pattern, duplicates, enumerations, the
//! numeric ranges of `ranges.rs`) are done here and carry the location of the
//! offending value through `serde_saphyr::Spanned`. Files are read by
//! `sources.rs` (4 MiB cap, content fingerprint); `diag.rs` holds the error
//! types; `check.rs` the daemon-less `config check`.

pub mod agents;
mod check;
mod diag;
pub mod exec;
pub mod mcp_inputs;
pub mod notify;
pub mod ranges;
mod sources;
mod suggest;
pub mod transport;

pub use check::{CheckReport, check};
pub(crate) use diag::diag_at;
pub use diag::{ConfigError, Diagnostic};
use diag::{diag_from_yaml, parse_with_unknown};
pub use exec::{AgentSpec, CommandSpec, ExecConfig, PoolSpec, TaskSpec};
use ranges::Num;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
pub use sources::{MAX_FILE_BYTES, fingerprint};
use std::collections::BTreeMap;
use std::path::Path;

/// The commented default `config.yml` written on first start, and the config a
/// fresh daemon runs on (it registers no apps).
pub const DEFAULT_CONFIG: &str = include_str!("default_config.yml");

/// Default `api_port` (API.md §1).
pub const DEFAULT_PORT: u16 = 9876;
/// Minimum and default size of the event ring buffer (API.md §5).
pub const MIN_EVENT_BUFFER: usize = 10_000;
/// Default byte cap of the event ring: 32 MiB of serialized events (API.md §9).
pub const DEFAULT_EVENT_BUFFER_BYTES: usize = 32 * 1024 * 1024;

/// Minimum of `event_buffer_bytes`: room for a few events of the largest size.
pub const MIN_EVENT_BUFFER_BYTES: usize = 1024 * 1024;

/// Whether control routes need the bearer token (API.md §3 guard 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// `Authorization: Bearer <token>` required on control routes (the default).
    Token,
    /// Guard 4 is off: anything that passes guards 1-3 may call every route.
    None,
}

/// Daemon-wide settings: the top-level keys of `config.yml` other than `apps`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Port to bind on 127.0.0.1; `0` = any free port. Default 9876.
    pub api_port: u16,
    /// `error|warn|info|debug|trace`, default `info`.
    pub log_level: log::LevelFilter,
    /// Guard 4 mode, default [`AuthMode::Token`].
    pub auth: AuthMode,
    /// Extra `Host` names accepted by guard 2 (e.g. a tunnel's hostname), lowercase.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted by guard 3 (exact match), default none.
    pub allowed_origins: Vec<String>,
    /// Events kept in the ring buffer for `GET /events` and SSE resume (≥ 10,000).
    pub event_buffer: usize,
    /// Serialized bytes the event ring may hold; the oldest events go first
    /// (API.md §9 "bounded state"; 1 MiB..=1 GiB, default 32 MiB).
    pub event_buffer_bytes: usize,
    /// Interval of the SSE `: keep-alive` comment, milliseconds (≥ 100).
    pub sse_heartbeat_ms: u64,
    /// Concurrent SSE streams before `503 unavailable` (≥ 1).
    pub sse_max_streams: usize,
    /// Events queued per SSE client before it is sent `stream.lagged` (≥ 1).
    pub sse_queue_capacity: usize,
    /// How many finished records are kept (`retention:`).
    pub retention: Retention,
    /// Transport limits and `allow_users` (API.md §9; config/transport.rs).
    pub transport: transport::Transport,
    /// `rate_limits`, `ip_allowlist`, `trusted_proxies`, `audit_max_bytes` (API.md §12).
    pub security: crate::auth::config::SecurityConfig,
    /// Webhooks fed from the event bus (`notify:`, API.md §13).
    pub notify: Vec<notify::NotifySpec>,
}

/// Retention limits (`retention:` in config.yml; API.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Newest execution records kept (default 1000).
    pub executions: usize,
    /// Output kept per execution, bytes (default 64 MiB); the rest is dropped and
    /// the cap noted in the log.
    pub output_bytes: u64,
    /// Newest decided or expired approvals kept (default 1000); pending ones are
    /// always kept.
    pub approvals: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            executions: 1000,
            output_bytes: 64 * 1024 * 1024,
            approvals: 1000,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_port: DEFAULT_PORT,
            log_level: log::LevelFilter::Info,
            auth: AuthMode::Token,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            event_buffer: MIN_EVENT_BUFFER,
            event_buffer_bytes: DEFAULT_EVENT_BUFFER_BYTES,
            sse_heartbeat_ms: 15_000,
            sse_max_streams: 64,
            sse_queue_capacity: 1024,
            retention: Retention::default(),
            transport: transport::Transport::default(),
            security: Default::default(),
            notify: Vec::new(),
        }
    }
}

/// One registered app (API.md §4 `App`, minus its runtime state).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AppSpec {
    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
    pub name: String,
    /// Shell command line, run by `/bin/sh -c`.
    pub command: String,
    /// Free text for front-ends.
    pub description: Option<String>,
    /// `native`, `wsl` or `wsl:<distro>`.
    pub environment: String,
    /// Hotkey chord, kept for hotkey front-ends.
    pub chord: Option<String>,
    /// Readiness probe: polled every 500 ms after launch; exit 0 = ready.
    pub ready_cmd: Option<String>,
    /// How long the readiness probe may keep failing, milliseconds (default 5000).
    pub ready_timeout_ms: u64,
    /// `true`: the daemon does not track the process (it still reaps it).
    pub detached: bool,
    /// Working directory (`~` expanded at launch).
    pub cwd: Option<String>,
    /// Extra environment for the command. Not exposed by the API (may hold secrets).
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// Grace between SIGTERM and SIGKILL on stop, milliseconds (default 5000).
    pub stop_timeout_ms: u64,
    /// Where the entry came from, relative to `<cfg>`: `config.yml` or `apps.d/x.yml`.
    pub source: String,
}

/// A loaded, validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Top-level settings.
    pub settings: Settings,
    /// Registered apps by name (sorted).
    pub apps: BTreeMap<String, AppSpec>,
    /// Tasks, pools, agents and workspaces of executions (API.md §7).
    pub exec: ExecConfig,
    /// Human-readable warnings (unknown keys, skipped drop-ins, shadowed names,
    /// duplicate chords).
    pub warnings: Vec<String>,
    /// Why each skipped drop-in was skipped (also among `warnings`); what
    /// [`check`] reports as errors.
    pub skipped: Vec<Diagnostic>,
    /// Hash of every file read (names and bytes): equal fingerprints mean nothing
    /// changed on disk, so the watcher can skip a reload.
    pub fingerprint: u64,
}

impl Config {
    /// The config the daemon runs on when `config.yml` is the embedded default.
    pub fn embedded_default() -> Config {
        let mut cfg = Config {
            settings: Settings::default(),
            apps: BTreeMap::new(),
            exec: ExecConfig::default(),
            warnings: Vec::new(),
            skipped: Vec::new(),
            fingerprint: 0,
        };
        if let Ok(parsed) = parse_main(DEFAULT_CONFIG, Path::new("config.yml")) {
            cfg.settings = parsed.0;
        }
        cfg
    }
}

// ---------------------------------------------------------------- raw schema

#[derive(Deserialize)]
struct RawConfig {
    api_port: Option<Spanned<Num>>,
    log_level: Option<Spanned<String>>,
    auth: Option<Spanned<String>>,
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    event_buffer: Option<Spanned<Num>>,
    event_buffer_bytes: Option<Spanned<Num>>,
    sse_heartbeat_ms: Option<Spanned<Num>>,
    sse_max_streams: Option<Spanned<Num>>,
    sse_queue_capacity: Option<Spanned<Num>>,
    apps: Option<Vec<Spanned<RawApp>>>,
    retention: Option<RawRetention>,
    tasks: Option<Vec<Spanned<exec::RawTask>>>,
    pools: Option<BTreeMap<String, Spanned<exec::RawPool>>>,
    agents: Option<BTreeMap<String, Spanned<exec::RawAgent>>>,
    workspaces: Option<Vec<String>>,
    shutdown_timeout_ms: Option<Spanned<Num>>,
    max_connections: Option<Spanned<Num>>,
    header_timeout_ms: Option<Spanned<Num>>,
    body_timeout_ms: Option<Spanned<Num>>,
    idle_timeout_ms: Option<Spanned<Num>>,
    allow_users: Option<Vec<Spanned<transport::RawUser>>>,
    rate_limits: Option<crate::auth::config::RawRateLimits>,
    ip_allowlist: Option<Vec<Spanned<String>>>,
    trusted_proxies: Option<Vec<Spanned<String>>>,
    audit_max_bytes: Option<Spanned<u64>>,
    notify: Option<Vec<Spanned<notify::RawNotify>>>,
}

#[derive(Deserialize)]
struct RawRetention {
    executions: Option<Spanned<Num>>,
    output_bytes: Option<Spanned<Num>>,
    approvals: Option<Spanned<Num>>,
}

#[derive(Deserialize)]
struct RawApp {
    name: Spanned<String>,
    command: Spanned<String>,
    description: Option<String>,
    environment: Option<Spanned<String>>,
    chord: Option<String>,
    ready_cmd: Option<String>,
    ready_timeout_ms: Option<Spanned<Num>>,
    detached: Option<bool>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
    stop_timeout_ms: Option<Spanned<Num>>,
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$` (API.md §6).
pub fn valid_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Validate one raw app entry; returns the spec or the problems found.
fn validate_app(raw: RawApp, file: &Path, source: &str) -> Result<AppSpec, Vec<Diagnostic>> {
    let mut errs = Vec::new();
    if !valid_app_name(&raw.name.value) {
        errs.push(diag_at(
            file,
            &raw.name,
            format!(
                "invalid app name '{}': must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$",
                raw.name.value
            ),
        ));
    }
    if raw.command.value.trim().is_empty() {
        errs.push(diag_at(
            file,
            &raw.command,
            format!("app '{}': command must not be empty", raw.name.value),
        ));
    }
    let environment = match &raw.environment {
        None => "native".to_string(),
        Some(e) => {
            let v = e.value.trim();
            let ok = v == "native"
                || v == "wsl"
                || v.strip_prefix("wsl:").is_some_and(|d| !d.is_empty());
            if !ok {
                errs.push(diag_at(
                    file,
                    e,
                    format!(
                        "app '{}': invalid environment '{}': expected native, wsl or wsl:<distro>",
                        raw.name.value, e.value
                    ),
                ));
            }
            v.to_string()
        }
    };
    let owner = format!("app '{}':", raw.name.value);
    let ready_timeout_ms = raw
        .ready_timeout_ms
        .as_ref()
        .and_then(|t| {
            ranges::READY_TIMEOUT_MS.check(file, t, &format!("{owner} ready_timeout_ms"), &mut errs)
        })
        .unwrap_or(5000);
    let stop_timeout_ms = raw
        .stop_timeout_ms
        .as_ref()
        .and_then(|t| {
            ranges::STOP_TIMEOUT_MS.check(file, t, &format!("{owner} stop_timeout_ms"), &mut errs)
        })
        .unwrap_or(5000);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(AppSpec {
        name: raw.name.value,
        command: raw.command.value,
        description: raw.description,
        environment,
        chord: raw.chord,
        ready_cmd: raw.ready_cmd.filter(|c| !c.trim().is_empty()),
        ready_timeout_ms,
        detached: raw.detached.unwrap_or(false),
        cwd: raw.cwd,
        env: raw.env.unwrap_or_default(),
        stop_timeout_ms,
        source: source.to_string(),
    })
}

type MainParse = (Settings, Vec<AppSpec>, ExecConfig, Vec<String>);

/// Parse and validate the text of `config.yml`. `file` is used in messages.
fn parse_main(text: &str, file: &Path) -> Result<MainParse, Vec<Diagnostic>> {
    let mut unknown = Vec::new();
    let raw: RawConfig = match parse_with_unknown(text, &mut unknown) {
        Ok(r) => r,
        Err(e) => return Err(vec![diag_from_yaml(file, &e)]),
    };
    let mut errs = Vec::new();
    let mut s = Settings::default();
    if let Some(p) = ranges::API_PORT.check_opt(file, &raw.api_port, &mut errs) {
        s.api_port = u16::try_from(p).unwrap_or(DEFAULT_PORT);
    }
    if let Some(l) = &raw.log_level {
        match crate::logging::parse_level(&l.value) {
            Some(v) => s.log_level = v,
            None => errs.push(diag_at(
                file,
                l,
                format!(
                    "invalid log_level '{}': expected error, warn, info, debug or trace",
                    l.value
                ),
            )),
        }
    }
    if let Some(a) = &raw.auth {
        match a.value.as_str() {
            "token" => s.auth = AuthMode::Token,
            "none" => s.auth = AuthMode::None,
            other => errs.push(diag_at(
                file,
                a,
                format!("invalid auth '{other}': expected token or none"),
            )),
        }
    }
    s.allowed_hosts = raw
        .allowed_hosts
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    s.allowed_origins = raw
        .allowed_origins
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    use ranges::to_usize;
    if let Some(v) = ranges::EVENT_BUFFER.check_opt(file, &raw.event_buffer, &mut errs) {
        s.event_buffer = to_usize(v);
    }
    if let Some(v) = ranges::EVENT_BUFFER_BYTES.check_opt(file, &raw.event_buffer_bytes, &mut errs)
    {
        s.event_buffer_bytes = to_usize(v);
    }
    if let Some(v) = ranges::SSE_HEARTBEAT_MS.check_opt(file, &raw.sse_heartbeat_ms, &mut errs) {
        s.sse_heartbeat_ms = v;
    }
    if let Some(v) = ranges::SSE_MAX_STREAMS.check_opt(file, &raw.sse_max_streams, &mut errs) {
        s.sse_max_streams = to_usize(v);
    }
    if let Some(v) = ranges::SSE_QUEUE_CAPACITY.check_opt(file, &raw.sse_queue_capacity, &mut errs)
    {
        s.sse_queue_capacity = to_usize(v);
    }
    if let Some(r) = &raw.retention {
        if let Some(v) = ranges::RETENTION_EXECUTIONS.check_opt(file, &r.executions, &mut errs) {
            s.retention.executions = to_usize(v);
        }
        if let Some(v) = ranges::RETENTION_OUTPUT_BYTES.check_opt(file, &r.output_bytes, &mut errs)
        {
            s.retention.output_bytes = v;
        }
        if let Some(v) = ranges::RETENTION_APPROVALS.check_opt(file, &r.approvals, &mut errs) {
            s.retention.approvals = to_usize(v);
        }
    }
    let raw_transport = transport::RawTransport {
        max_connections: raw.max_connections,
        header_timeout_ms: raw.header_timeout_ms,
        body_timeout_ms: raw.body_timeout_ms,
        idle_timeout_ms: raw.idle_timeout_ms,
        allow_users: raw.allow_users,
    };
    transport::validate(raw_transport, file, &mut s.transport, &mut errs);
    let (rl, ipa, tp, amb) = (
        raw.rate_limits,
        raw.ip_allowlist,
        raw.trusted_proxies,
        raw.audit_max_bytes,
    );
    match crate::auth::config::parse(rl, ipa, tp, amb, file) {
        Ok(sec) => s.security = sec,
        Err(d) => errs.extend(d),
    }
    if let Some(n) = raw.notify {
        s.notify = notify::validate(n, file, &mut errs);
    }
    let raw_exec = exec::RawExec {
        tasks: raw.tasks,
        pools: raw.pools,
        agents: raw.agents,
        workspaces: raw.workspaces,
        shutdown_timeout_ms: raw.shutdown_timeout_ms,
    };
    let exec_cfg = exec::validate(raw_exec, file, &mut errs);
    let mut apps: Vec<AppSpec> = Vec::new();
    let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for entry in raw.apps.unwrap_or_default() {
        let at = (entry.referenced.line(), entry.referenced.column());
        let name_span = (
            entry.value.name.referenced.line(),
            entry.value.name.referenced.column(),
        );
        match validate_app(entry.value, file, "config.yml") {
            Ok(app) => {
                if let Some((l, _)) = seen.get(&app.name) {
                    errs.push(Diagnostic {
                        file: file.display().to_string(),
                        line: name_span.0,
                        column: name_span.1,
                        message: format!("duplicate app name '{}' (first at line {l})", app.name),
                    });
                } else {
                    seen.insert(app.name.clone(), at);
                    apps.push(app);
                }
            }
            Err(mut e) => errs.append(&mut e),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let warnings = unknown
        .iter()
        .map(|k| suggest::unknown_key(file, k, suggest::Root::Main))
        .collect();
    Ok((s, apps, exec_cfg, warnings))
}

/// Parse and validate one drop-in manifest (a flat app entry).
fn parse_dropin(
    text: &str,
    file: &Path,
    source: &str,
) -> Result<(AppSpec, Vec<String>), Vec<Diagnostic>> {
    let mut unknown = Vec::new();
    let raw: RawApp = match parse_with_unknown(text, &mut unknown) {
        Ok(r) => r,
        Err(e) => return Err(vec![diag_from_yaml(file, &e)]),
    };
    let app = validate_app(raw, file, source)?;
    let warnings = unknown
        .iter()
        .map(|k| suggest::unknown_key(file, k, suggest::Root::Dropin))
        .collect();
    Ok((app, warnings))
}

/// Is `name` a drop-in manifest (not hidden, not an editor temporary)?
pub fn is_dropin_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('#')
        && !name.ends_with('~')
        && (name.ends_with(".yml") || name.ends_with(".yaml"))
}

/// Load `<dir>/config.yml` and `<dir>/apps.d/*.yml` and merge them (API.md §6).
///
/// A missing `config.yml` is the embedded default; a missing `apps.d/` is empty.
///
/// Errors: [`ConfigError::Invalid`] when `config.yml` has syntax, type or semantic
/// errors (all of them, with positions); [`ConfigError::Io`] when a file exists but
/// cannot be read. A broken drop-in is never an error: it is skipped with a warning.
pub fn load(dir: &Path) -> Result<Config, ConfigError> {
    load_with_fingerprint(dir).1
}

/// [`load`], also returning the content fingerprint of the bytes it read (the
/// same value as [`Config::fingerprint`] on success), so a caller can tell an
/// invalid config it already reported from a new one (API.md §6 reload).
pub fn load_with_fingerprint(dir: &Path) -> (u64, Result<Config, ConfigError>) {
    let src = sources::read(dir);
    let fp = src.fingerprint;
    (fp, load_sources(src))
}

fn load_sources(src: sources::Sources) -> Result<Config, ConfigError> {
    let text = src.main?;
    let (settings, main_apps, exec_cfg, mut warnings) =
        parse_main(&text, &src.main_path).map_err(ConfigError::Invalid)?;
    drop(text);

    // Drop-ins, in name order so warnings are stable.
    let mut skipped = Vec::new();
    let mut dropins: BTreeMap<String, Vec<AppSpec>> = BTreeMap::new();
    for d in src.dropins {
        let source = format!("apps.d/{}", d.fname);
        let parsed = d
            .text
            .map_err(|e| vec![e])
            .and_then(|text| parse_dropin(&text, &d.path, &source));
        match parsed {
            Ok((app, mut w)) => {
                warnings.append(&mut w);
                dropins.entry(app.name.clone()).or_default().push(app);
            }
            Err(diags) => {
                for d in diags {
                    warnings.push(format!("{d}; drop-in skipped"));
                    skipped.push(d);
                }
            }
        }
    }

    let mut apps: BTreeMap<String, AppSpec> = BTreeMap::new();
    for a in main_apps {
        apps.insert(a.name.clone(), a);
    }
    for (name, mut list) in dropins {
        if list.len() > 1 {
            let srcs: Vec<String> = list.iter().map(|a| a.source.clone()).collect();
            warnings.push(format!(
                "app '{name}' is defined by several drop-ins ({}): all of them rejected",
                srcs.join(", ")
            ));
            continue;
        }
        let Some(app) = list.pop() else { continue };
        if apps.contains_key(&name) {
            warnings.push(format!(
                "app '{name}' in {} is shadowed by config.yml",
                app.source
            ));
            continue;
        }
        apps.insert(name, app);
    }
    warnings.extend(duplicate_chords(&apps));
    Ok(Config {
        settings,
        apps,
        exec: exec_cfg,
        warnings,
        skipped,
        fingerprint: src.fingerprint,
    })
}

/// One warning per chord bound to more than one app, naming every app and
/// where it is defined (API.md §9: "two apps with the same chord is a reload
/// warning naming both"). Chords compare trimmed and case-sensitively.
pub fn duplicate_chords(apps: &BTreeMap<String, AppSpec>) -> Vec<String> {
    let mut by_chord: BTreeMap<&str, Vec<&AppSpec>> = BTreeMap::new();
    for a in apps.values() {
        if let Some(c) = a.chord.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            by_chord.entry(c).or_default().push(a);
        }
    }
    by_chord
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(chord, v)| {
            let names: Vec<String> = v
                .iter()
                .map(|a| format!("'{}' ({})", a.name, a.source))
                .collect();
            format!(
                "chord '{chord}' is bound to several apps: {}; a trigger of it is ambiguous",
                names.join(", ")
            )
        })
        .collect()
}

/// Write the commented default `config.yml` (and create `apps.d/`) if `config.yml`
/// does not exist yet. Returns `true` when the file was written.
///
/// Errors: I/O errors creating the directory or writing the file.
pub fn write_default_if_missing(dir: &Path) -> std::io::Result<bool> {
    crate::fsutil::create_private_dir(&dir.join("apps.d"))?;
    let path = dir.join("config.yml");
    if path.exists() {
        return Ok(false);
    }
    crate::fsutil::write_atomic(&path, DEFAULT_CONFIG.as_bytes(), 0o644)?;
    Ok(true)
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
