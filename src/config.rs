//! Settings: built-in defaults < `daygle_mail_archiver.conf` (INI) < `DAYGLE__SECTION__KEY`.
//!
//! Every key has a default in the `Default` impls below; the example config file lists each of
//! them (a test keeps the two in step). `validate` reports every problem at once, one line each.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

/// The secret values printed in `daygle_mail_archiver.conf.example`. Anyone can read them, so
/// the archiver refuses to run with them unless `security.dev_mode` is on.
pub const EXAMPLE_SESSION_KEY: &str = "ZXhhbXBsZS1zZXNzaW9uLWtleS1kby1ub3QtdXNlISE=";
pub const EXAMPLE_SEALING_KEY: &str = "ZXhhbXBsZS1zZWFsaW5nLWtleS1kby1ub3QtdXNlISE=";

/// The config file looked for when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "daygle_mail_archiver.conf";
const ENV_PREFIX: &str = "DAYGLE";

/// A string that never shows up in `Debug` output or in `check-config`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() {
            "\"\""
        } else {
            "\"********\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_empty() { "" } else { "********" })
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub storage: StorageSettings,
    pub clamav: ClamavSettings,
    pub smtp: SmtpSettings,
    pub logging: LoggingSettings,
    pub sync: SyncSettings,
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the web UI listens on.
    pub bind: String,
    /// The URL people use to reach the UI; decides Secure cookies and HSTS. Empty: http://<bind>.
    pub public_url: String,
    pub request_timeout_secs: u64,
    pub max_request_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: String::new(),
            request_timeout_secs: 30,
            max_request_bytes: 10 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL URL. Empty: run a private cluster under the data directory.
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    /// Directory holding initdb/pg_ctl/postgres for the private cluster. Empty: detect.
    pub pg_bin_dir: String,
    /// System user that runs the private cluster when daygle runs as root.
    pub embedded_user: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_connections: 10,
            acquire_timeout_secs: 10,
            pg_bin_dir: String::new(),
            embedded_user: "postgres".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    pub session_key: Secret,
    pub session_key_file: String,
    pub sealing_key: Secret,
    pub sealing_key_file: String,
    /// Allows the example secrets and other shortcuts that are only safe on a developer's desk.
    pub dev_mode: bool,
    /// Shortest password accepted for a user.
    pub min_password_length: usize,
    /// Wrong passwords (or second-factor codes) in a row that lock an account.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked.
    pub lockout_minutes: u32,
    /// Sign-in attempts allowed per client IP address per minute.
    pub login_rate_per_minute: u32,
    /// A session ends after this long without a request.
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, however active.
    pub session_absolute_hours: u32,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            session_key: Secret::default(),
            session_key_file: String::new(),
            sealing_key: Secret::default(),
            sealing_key_file: String::new(),
            dev_mode: false,
            min_password_length: 12,
            lockout_threshold: 5,
            lockout_minutes: 15,
            login_rate_per_minute: 10,
            session_idle_minutes: 60,
            session_absolute_hours: 12,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: String,
    pub zstd_level: i32,
    pub max_message_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            zstd_level: 3,
            max_message_bytes: 50 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClamavSettings {
    pub enabled: bool,
    /// `host:port` for TCP, or an absolute path to clamd's unix socket.
    pub address: String,
    /// What happens to infected mail: quarantine, flag or reject.
    pub action: String,
    pub timeout_secs: u64,
    pub max_scan_bytes: u64,
    pub concurrency: usize,
    /// Store mail while clamd is unreachable as `pending` and scan it when clamd returns,
    /// instead of holding the account's sync position.
    pub archive_unscanned: bool,
    /// Quarantined messages are deleted this many days after arrival; 0 keeps them forever.
    pub quarantine_expiry_days: u32,
    /// Longest wait between retries while clamd is unreachable (the wait doubles up to this).
    pub retry_max_secs: u64,
}

impl Default for ClamavSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            address: "127.0.0.1:3310".into(),
            action: "quarantine".into(),
            timeout_secs: 60,
            max_scan_bytes: 25 * 1024 * 1024,
            concurrency: 2,
            archive_unscanned: false,
            quarantine_expiry_days: 30,
            retry_max_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// implicit, starttls or none.
    pub tls: String,
    pub username: String,
    pub password: Secret,
    pub from: String,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            host: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password: Secret::default(),
            from: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// human or json.
    pub format: String,
    /// A tracing filter such as `info` or `daygle=debug,sqlx=warn`; RUST_LOG wins when set.
    pub level: String,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Run the sync scheduler inside `serve`.
    pub enabled: bool,
    /// How many accounts sync at the same time (one IMAP connection each).
    pub concurrency: usize,
    /// Most messages fetched and committed in one batch.
    pub batch_messages: usize,
    /// Most bytes fetched and committed in one batch (a FETCH response is held in memory whole);
    /// a single message larger than this is fetched on its own.
    pub batch_bytes: u64,
    /// Poll interval for new accounts.
    pub default_poll_secs: u64,
    /// Folders new accounts leave out, comma-separated patterns (`*` = any characters).
    pub exclude_folders: String,
    pub connect_timeout_secs: u64,
    /// Longest wait for one IMAP command (a whole batch FETCH counts as one).
    pub command_timeout_secs: u64,
    /// Longest pause after repeated failures (backoff doubles from the poll interval).
    pub max_backoff_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 4,
            batch_messages: 500,
            batch_bytes: 16 * 1024 * 1024,
            default_poll_secs: 300,
            exclude_folders: "Trash,Junk,Spam".into(),
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            max_backoff_secs: 3600,
        }
    }
}

impl SyncSettings {
    /// `exclude_folders` as a list of patterns.
    pub fn exclude_patterns(&self) -> Vec<String> {
        split_list(&self.exclude_folders)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Daily purge time `HH:MM` in the server's time zone; empty or `off`: no scheduled purge.
    pub schedule: String,
    /// Manual deletions wait for a second user holding `delete_mail` to approve them.
    pub require_approval: bool,
    /// Messages deleted per transaction by purges and deletions.
    pub batch_size: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            schedule: String::new(),
            require_approval: false,
            batch_size: 2000,
        }
    }
}

/// `HH:MM` (24-hour clock) → `Some((hour, minute))`; empty or `off` → `None`.
pub fn parse_daily_time(text: &str) -> std::result::Result<Option<(i8, i8)>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || "must be HH:MM (e.g. 03:00) or off".to_string();
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let hour: i8 = h.parse().map_err(|_| bad())?;
    let minute: i8 = m.parse().map_err(|_| bad())?;
    if !(0..24).contains(&hour) || !(0..60).contains(&minute) || m.len() != 2 {
        return Err(bad());
    }
    Ok(Some((hour, minute)))
}

/// Splits a comma-separated config list, dropping empty items.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// One thing wrong with the configuration: which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// All problems found while loading or validating, printed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Where the settings come from: an explicit file must exist; without one the default file
/// in the working directory is read when present.
pub fn load(
    explicit_path: Option<&Path>,
    overrides: &[(&str, String)],
) -> Result<Settings, ConfigErrors> {
    load_from(explicit_path, std::env::vars(), overrides)
}

/// Like [`load`], with the environment passed in so tests need not touch the process's own;
/// `overrides` (from command-line flags) win over everything.
pub fn load_from(
    explicit_path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(&str, String)],
) -> Result<Settings, ConfigErrors> {
    let mut builder = config::Config::builder();
    match explicit_path {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigErrors(vec![problem(
                    "--config",
                    format!(
                        "file {} does not exist; pass the path of your daygle_mail_archiver.conf, or leave --config out to use defaults",
                        path.display()
                    ),
                )]));
            }
            builder = builder
                .add_source(config::File::from(path.to_path_buf()).format(config::FileFormat::Ini));
        }
        None => {
            builder = builder.add_source(
                config::File::new(DEFAULT_CONFIG_FILE, config::FileFormat::Ini).required(false),
            );
        }
    }
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    for (key, value) in overrides {
        builder = builder
            .set_override(*key, value.as_str())
            .map_err(|e| ConfigErrors(vec![problem(key, e.to_string())]))?;
    }
    let settings: Settings = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigErrors(vec![deserialize_problem(&e)]))?;
    let problems = settings.validate();
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigErrors(problems))
    }
}

fn deserialize_problem(e: &config::ConfigError) -> Problem {
    let text = e.to_string();
    // config names the key in a trailing `for key "x.y"`; lift it to the front of the line.
    if let Some(idx) = text.find(" for key `").or_else(|| text.find(" for key \"")) {
        let key = text[idx + 10..].trim_end_matches(['`', '"', ' ']);
        let key = key.split(['`', '"']).next().unwrap_or(key);
        return problem(
            key,
            format!(
                "{}; fix the value in the config file or the DAYGLE__ variable",
                &text[..idx]
            ),
        );
    }
    if text.contains("unknown field") {
        return problem(
            "config",
            format!(
                "{text}; keys and sections are lower-case, see daygle_mail_archiver.conf.example"
            ),
        );
    }
    problem("config", text)
}

impl Settings {
    /// Every problem with these settings, in key order. Empty means usable.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.server.bind.parse::<SocketAddr>().is_err() {
            p.push(problem(
                "server.bind",
                format!(
                    "`{}` is not an IP address and port; use e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                    self.server.bind
                ),
            ));
        }
        let url = self.server.public_url.trim();
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            p.push(problem(
                "server.public_url",
                format!(
                    "`{url}` must start with http:// or https://, e.g. https://archive.example.org"
                ),
            ));
        }
        if self.server.request_timeout_secs == 0 {
            p.push(problem("server.request_timeout_secs", "must be at least 1"));
        }
        if self.server.max_request_bytes < 1024 {
            p.push(problem(
                "server.max_request_bytes",
                "must be at least 1024 bytes",
            ));
        }
        let db_url = self.database.url.expose().trim();
        if !(db_url.is_empty()
            || db_url.starts_with("postgres://")
            || db_url.starts_with("postgresql://"))
        {
            p.push(problem(
                "database.url",
                "must start with postgres:// or postgresql://, or be empty to use the private cluster",
            ));
        }
        if self.database.max_connections == 0 {
            p.push(problem("database.max_connections", "must be at least 1"));
        }
        if self.database.acquire_timeout_secs == 0 {
            p.push(problem(
                "database.acquire_timeout_secs",
                "must be at least 1",
            ));
        }
        self.validate_secrets(&mut p);
        self.validate_sign_in(&mut p);
        if self.storage.data_dir.trim().is_empty() {
            p.push(problem(
                "storage.data_dir",
                "must not be empty; set a directory the archiver may write, e.g. /var/lib/daygle",
            ));
        }
        if !(1..=19).contains(&self.storage.zstd_level) {
            p.push(problem(
                "storage.zstd_level",
                format!(
                    "{} is out of range; use 1 (fast) to 19 (small), 3 is a good default",
                    self.storage.zstd_level
                ),
            ));
        }
        if self.storage.max_message_bytes < 1024 {
            p.push(problem(
                "storage.max_message_bytes",
                "must be at least 1024 bytes",
            ));
        }
        self.validate_clamav(&mut p);
        self.validate_smtp(&mut p);
        self.validate_sync(&mut p);
        if let Err(e) = parse_daily_time(&self.retention.schedule) {
            p.push(problem("retention.schedule", e));
        }
        if self.retention.batch_size < 1 {
            p.push(problem("retention.batch_size", "must be at least 1"));
        }
        if !matches!(self.logging.format.as_str(), "human" | "json") {
            p.push(problem(
                "logging.format",
                format!("`{}` is not known; use human or json", self.logging.format),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.logging.level).is_err() {
            p.push(problem(
                "logging.level",
                format!(
                    "`{}` is not a log filter; use e.g. info or daygle=debug",
                    self.logging.level
                ),
            ));
        }
        p
    }

    fn validate_secrets(&self, p: &mut Vec<Problem>) {
        let s = &self.security;
        for (key, value, file_key, file, example) in [
            (
                "security.session_key",
                &s.session_key,
                "security.session_key_file",
                &s.session_key_file,
                EXAMPLE_SESSION_KEY,
            ),
            (
                "security.sealing_key",
                &s.sealing_key,
                "security.sealing_key_file",
                &s.sealing_key_file,
                EXAMPLE_SEALING_KEY,
            ),
        ] {
            if !value.is_empty() && !file.trim().is_empty() {
                p.push(problem(
                    key,
                    format!("is set together with {file_key}; keep only one of the two"),
                ));
            }
            if value.expose().trim() == example && !s.dev_mode {
                p.push(problem(
                    key,
                    "is the published example value; generate your own with `daygle keygen` (or set security.dev_mode = true on a test machine)",
                ));
            } else if !value.is_empty() && crate::secrets::decode_key(value.expose()).is_err() {
                p.push(problem(
                    key,
                    "must be 32 bytes in base64; generate one with `daygle keygen`",
                ));
            }
        }
    }

    fn validate_sign_in(&self, p: &mut Vec<Problem>) {
        let s = &self.security;
        if !(8..=128).contains(&s.min_password_length) {
            p.push(problem(
                "security.min_password_length",
                "must be between 8 and 128; 12 or more is recommended",
            ));
        }
        if s.lockout_threshold == 0 {
            p.push(problem("security.lockout_threshold", "must be at least 1"));
        }
        if s.lockout_minutes == 0 {
            p.push(problem("security.lockout_minutes", "must be at least 1"));
        }
        if s.login_rate_per_minute == 0 {
            p.push(problem(
                "security.login_rate_per_minute",
                "must be at least 1",
            ));
        }
        if s.session_idle_minutes == 0 {
            p.push(problem(
                "security.session_idle_minutes",
                "must be at least 1",
            ));
        }
        if s.session_absolute_hours == 0 {
            p.push(problem(
                "security.session_absolute_hours",
                "must be at least 1",
            ));
        }
    }

    fn validate_clamav(&self, p: &mut Vec<Problem>) {
        let c = &self.clamav;
        if !matches!(c.action.as_str(), "quarantine" | "flag" | "reject") {
            p.push(problem(
                "clamav.action",
                format!(
                    "`{}` is not known; use quarantine, flag or reject",
                    c.action
                ),
            ));
        }
        let addr = c.address.trim();
        if c.enabled
            && !(addr.starts_with('/')
                || addr
                    .rsplit_once(':')
                    .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok()))
        {
            p.push(problem(
                "clamav.address",
                format!("`{addr}` is neither host:port nor an absolute socket path; use e.g. 127.0.0.1:3310 or /run/clamav/clamd.ctl"),
            ));
        }
        if c.timeout_secs == 0 {
            p.push(problem("clamav.timeout_secs", "must be at least 1"));
        }
        if c.concurrency == 0 {
            p.push(problem("clamav.concurrency", "must be at least 1"));
        }
        if c.max_scan_bytes < 1024 {
            p.push(problem(
                "clamav.max_scan_bytes",
                "must be at least 1024 bytes",
            ));
        }
        if c.retry_max_secs == 0 {
            p.push(problem("clamav.retry_max_secs", "must be at least 1"));
        }
    }

    fn validate_smtp(&self, p: &mut Vec<Problem>) {
        let s = &self.smtp;
        if !matches!(s.tls.as_str(), "implicit" | "starttls" | "none") {
            p.push(problem(
                "smtp.tls",
                format!("`{}` is not known; use implicit, starttls or none", s.tls),
            ));
        }
        if s.enabled && s.host.trim().is_empty() {
            p.push(problem(
                "smtp.host",
                "must be set when smtp.enabled is true",
            ));
        }
        if s.enabled && !s.from.contains('@') {
            p.push(problem(
                "smtp.from",
                "must be an e-mail address when smtp.enabled is true",
            ));
        }
    }

    fn validate_sync(&self, p: &mut Vec<Problem>) {
        let s = &self.sync;
        for (key, value, min) in [
            ("sync.concurrency", s.concurrency as u64, 1),
            ("sync.batch_messages", s.batch_messages as u64, 1),
            ("sync.batch_bytes", s.batch_bytes, 64 * 1024),
            ("sync.default_poll_secs", s.default_poll_secs, 10),
            ("sync.connect_timeout_secs", s.connect_timeout_secs, 1),
            ("sync.command_timeout_secs", s.command_timeout_secs, 1),
            ("sync.max_backoff_secs", s.max_backoff_secs, 10),
        ] {
            if value < min {
                p.push(problem(key, format!("must be at least {min}")));
            }
        }
    }

    /// The URL people use, with no trailing slash.
    pub fn public_url(&self) -> String {
        let url = self.server.public_url.trim().trim_end_matches('/');
        if url.is_empty() {
            format!("http://{}", self.server.bind)
        } else {
            url.to_string()
        }
    }

    pub fn served_over_https(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.storage.data_dir)
    }

    pub fn uses_embedded_database(&self) -> bool {
        self.database.url.is_empty()
    }

    /// The effective settings as INI, secrets masked: what `check-config` prints.
    pub fn to_masked_ini(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        if let serde_json::Value::Object(sections) = value {
            for (section, keys) in sections {
                out.push_str(&format!("[{section}]\n"));
                if let serde_json::Value::Object(keys) = keys {
                    for (key, v) in keys {
                        let shown = match (section.as_str(), key.as_str(), &v) {
                            ("database", "url", _) => mask_url_password(self.database.url.expose()),
                            (_, _, serde_json::Value::String(s)) => s.clone(),
                            (_, _, other) => other.to_string(),
                        };
                        out.push_str(&format!("{key} = {shown}\n"));
                    }
                }
                out.push('\n');
            }
        }
        out
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:********@host/db`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((creds, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_in_database_url() {
        assert_eq!(
            mask_url_password("postgres://u:hunter2@db:5432/x"),
            "postgres://u:********@db:5432/x"
        );
        assert_eq!(mask_url_password("postgres://u@db/x"), "postgres://u@db/x");
    }

    #[test]
    fn secret_debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"********\"");
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Settings::default().validate(), vec![]);
    }
}
