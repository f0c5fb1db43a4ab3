//! The `[section]`s of the configuration: one struct per section, every key with its default
//! (the example config file lists each of them; a test keeps the two in step), and the
//! derived values other modules read (`public_url`, `data_dir`, `to_masked_ini`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

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
    pub verify: VerifySettings,
    pub workers: WorkersSettings,
    pub api: super::ApiSettings,
    pub oidc: super::OidcSettings,
    pub google: super::GoogleSettings,
    pub microsoft: super::MicrosoftSettings,
    /// Which keys the config file, the environment or a command-line flag set (`section.key`).
    /// The settings page shows those as locked: a value stored in the database never wins
    /// over them.
    #[serde(skip)]
    pub origins: Origins,
}

/// Where a key's value came from, when not from the built-in default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The config file (its path).
    File(String),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "the config file {path}"),
            Origin::Env(var) => write!(f, "the environment variable {var}"),
            Origin::Flag => f.write_str("a command-line flag"),
        }
    }
}

/// `section.key` → where its value came from; keys left at their default are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub std::collections::BTreeMap<String, Origin>);

impl Origins {
    pub fn get(&self, key: &str) -> Option<&Origin> {
        self.0.get(key)
    }

    pub fn set(&mut self, key: impl Into<String>, origin: Origin) {
        self.0.insert(key.into(), origin);
    }
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
    /// What this process does: web, worker or all (`daygle serve --role` overrides it).
    pub role: String,
    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For
    /// names the client. Empty: the TCP peer is the client.
    pub trusted_proxies: String,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>` (or from
    /// loopback). Empty: `/metrics` is public.
    pub metrics_token: Secret,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: String::new(),
            request_timeout_secs: 30,
            max_request_bytes: 10 * 1024 * 1024,
            role: "all".into(),
            trusted_proxies: String::new(),
            metrics_token: Secret::default(),
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
    /// The server's connections cancel a statement running longer than this (0: no limit), so
    /// one heavy request cannot hold the database. Migrations are exempt.
    pub statement_timeout_secs: u64,
    /// The server's connections end a transaction left idle this long (0: no limit).
    pub idle_in_transaction_timeout_secs: u64,
    /// Directory holding initdb/pg_ctl/postgres for the private cluster. Empty: detect.
    pub pg_bin_dir: String,
    /// System user that runs the private cluster when daygle runs as root.
    pub embedded_user: String,
    /// File holding the password for `url` (Docker secrets); the URL then carries none.
    pub password_file: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_connections: 10,
            acquire_timeout_secs: 10,
            statement_timeout_secs: 60,
            idle_in_transaction_timeout_secs: 60,
            pg_bin_dir: String::new(),
            embedded_user: "postgres".into(),
            password_file: String::new(),
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
    /// During a key rotation: the previous sealing key, still accepted for opening.
    pub previous_sealing_key_file: String,
    /// Key of the audit log's HMAC seals; never stored in the database.
    pub audit_key: Secret,
    pub audit_key_file: String,
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
    /// An invitation link works for this long after it was sent.
    pub invitation_expiry_hours: u32,
    /// "Forgot password" requests per username or e-mail address per hour; more are answered
    /// the same way but send nothing.
    pub password_reset_per_hour: u32,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            session_key: Secret::default(),
            session_key_file: String::new(),
            sealing_key: Secret::default(),
            sealing_key_file: String::new(),
            previous_sealing_key_file: String::new(),
            audit_key: Secret::default(),
            audit_key_file: String::new(),
            dev_mode: false,
            min_password_length: 12,
            lockout_threshold: 5,
            lockout_minutes: 15,
            login_rate_per_minute: 10,
            session_idle_minutes: 60,
            session_absolute_hours: 12,
            invitation_expiry_hours: 72,
            password_reset_per_hour: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: String,
    pub zstd_level: i32,
    pub max_message_bytes: u64,
    /// Attachments whose encoded bytes are at least this long are stored once, apart from
    /// their messages (0: every message is stored whole).
    pub attachment_min_bytes: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: String::new(),
            zstd_level: 3,
            max_message_bytes: 50 * 1024 * 1024,
            attachment_min_bytes: crate::archive::blobs::DEFAULT_MIN_PART_BYTES,
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
    /// File holding the password instead (Docker secrets).
    pub password_file: String,
    pub from: String,
    /// PEM file with an extra CA (or the server's self-signed certificate) to trust, besides
    /// the system's trust store. Empty: the system store only.
    pub ca_file: String,
    pub timeout_secs: u64,
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
            password_file: String::new(),
            from: String::new(),
            ca_file: String::new(),
            timeout_secs: 30,
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
    /// Watch INBOX with IDLE (accounts may override it), so new mail comes within seconds.
    pub idle: bool,
    /// IDLE is ended and issued again after this long (RFC 2177: within 29 minutes).
    pub idle_renew_secs: u64,
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
            idle: true,
            idle_renew_secs: 1500,
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

impl Settings {
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

    /// `storage.data_dir`, or when it is empty the automatic choice (`automatic_data_dir`).
    pub fn data_dir(&self) -> PathBuf {
        let configured = self.storage.data_dir.trim();
        if configured.is_empty() {
            super::automatic_data_dir(
                nix::unistd::Uid::effective().is_root(),
                std::env::var_os("STATE_DIRECTORY"),
            )
        } else {
            PathBuf::from(configured)
        }
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

/// Several `serve` processes on one database: account and leader leases.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersSettings {
    /// Seconds a lease lasts unless its holder renews it (it renews every third of this): how
    /// long a killed worker's accounts and leader jobs wait before another process takes them.
    pub lease_secs: u32,
}

impl Default for WorkersSettings {
    fn default() -> Self {
        Self { lease_secs: 30 }
    }
}

/// Archive verification inside `daygle serve`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VerifySettings {
    /// How often serve re-reads the whole archive: off, daily, weekly, or e.g. 12h / 3d.
    pub schedule: String,
}

impl Default for VerifySettings {
    fn default() -> Self {
        Self {
            schedule: "weekly".into(),
        }
    }
}

impl VerifySettings {
    /// The period between scheduled runs; `None` when switched off.
    pub fn interval(&self) -> Result<Option<std::time::Duration>, String> {
        let text = self.schedule.trim().to_ascii_lowercase();
        let hours = |n: u64| Some(std::time::Duration::from_secs(n * 3600));
        let wrong = || format!("`{text}` is not off, daily, weekly, or a count like 12h or 3d");
        match text.as_str() {
            "off" | "never" | "" => return Ok(None),
            "daily" => return Ok(hours(24)),
            "weekly" => return Ok(hours(24 * 7)),
            _ => {}
        }
        let cut = text.char_indices().last().map_or(0, |(i, _)| i);
        let (number, unit) = text.split_at(cut);
        let n: u64 = number
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(wrong)?;
        match unit {
            "h" => Ok(hours(n)),
            "d" => Ok(hours(n * 24)),
            _ => Err(wrong()),
        }
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
    fn verify_schedules_read_as_people_write_them() {
        use std::time::Duration;
        let every = |s: &str| VerifySettings { schedule: s.into() }.interval();
        assert_eq!(every("weekly"), Ok(Some(Duration::from_secs(604_800))));
        assert_eq!(every("Daily"), Ok(Some(Duration::from_secs(86_400))));
        assert_eq!(every("12h"), Ok(Some(Duration::from_secs(43_200))));
        assert_eq!(every("3d"), Ok(Some(Duration::from_secs(259_200))));
        assert_eq!(every("off"), Ok(None));
        assert!(every("0h").is_err());
        assert!(every("fortnightly").is_err());
        assert!(every("3ü").is_err());
    }
}
