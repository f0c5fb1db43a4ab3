//! Checking settings: `Settings::validate` reports every problem at once, one line each, with
//! the key, what is wrong and how to fix it.

use std::net::SocketAddr;

use super::Settings;

/// The secret values printed in `daygle_mail_archiver.conf.example`. Anyone can read them, so
/// the archiver refuses to run with them unless `security.dev_mode` is on.
pub const EXAMPLE_SESSION_KEY: &str = "ZXhhbXBsZS1zZXNzaW9uLWtleS1kby1ub3QtdXNlISE=";
pub const EXAMPLE_SEALING_KEY: &str = "ZXhhbXBsZS1zZWFsaW5nLWtleS1kby1ub3QtdXNlISE=";

pub use crate::error::{ConfigErrors, Problem};

pub(super) fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
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
        if let Err(e) = super::parse_networks(&self.server.trusted_proxies) {
            p.push(problem("server.trusted_proxies", e));
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
        self.validate_workers(&mut p);
        if let Err(e) = super::parse_daily_time(&self.retention.schedule) {
            p.push(problem("retention.schedule", e));
        }
        if self.retention.batch_size < 1 {
            p.push(problem("retention.batch_size", "must be at least 1"));
        }
        if let Err(e) = self.api.origins() {
            p.push(problem("api.cors_origins", e));
        }
        if self.api.rate_limit_per_minute == 0 {
            p.push(problem("api.rate_limit_per_minute", "must be at least 1"));
        }
        for (key, e) in self.oidc.problems() {
            p.push(problem(key, e));
        }
        p.extend(self.validate_oauth());
        if let Err(e) = self.verify.interval() {
            p.push(problem("verify.schedule", e));
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
            (
                "security.audit_key",
                &s.audit_key,
                "security.audit_key_file",
                &s.audit_key_file,
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
        if !(1..=24 * 30).contains(&s.invitation_expiry_hours) {
            p.push(problem(
                "security.invitation_expiry_hours",
                "must be between 1 and 720 (30 days)",
            ));
        }
        if s.password_reset_per_hour == 0 {
            p.push(problem(
                "security.password_reset_per_hour",
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
        if s.timeout_secs == 0 {
            p.push(problem("smtp.timeout_secs", "must be at least 1"));
        }
        if s.enabled && !s.ca_file.is_empty() && !std::path::Path::new(&s.ca_file).is_file() {
            p.push(problem(
                "smtp.ca_file",
                format!("{} is not a readable file", s.ca_file),
            ));
        }
    }

    fn validate_workers(&self, p: &mut Vec<Problem>) {
        if let Err(e) = crate::ingest::processes::Role::parse(&self.server.role) {
            p.push(problem("server.role", e.to_string().replace("role: ", "")));
        }
        if !(3..=3600).contains(&self.workers.lease_secs) {
            p.push(problem(
                "workers.lease_secs",
                "must be between 3 and 3600 seconds",
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
        if !(1..=1740).contains(&s.idle_renew_secs) {
            p.push(problem(
                "sync.idle_renew_secs",
                "must be between 1 and 1740 seconds (servers may end an IDLE after 30 minutes)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Settings::default().validate(), vec![]);
    }
}
