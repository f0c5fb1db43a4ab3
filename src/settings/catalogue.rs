//! The keys the settings page offers: each reads and writes one field of [`Settings`].

use crate::config::{Secret, Settings};

/// How a value is entered and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A whole number, at least 0.
    Number,
    Text,
    Choice(&'static [&'static str]),
    /// Write-only: stored sealed, never shown.
    Secret,
}

/// One runtime setting.
pub struct Field {
    /// `section.key`, as in the config file.
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    /// The heading it is shown under.
    pub group: &'static str,
    pub kind: Kind,
}

pub const SMTP: &str = "E-mail (SMTP)";
pub const SYNC: &str = "Archiving";
pub const SESSIONS: &str = "Sign-in sessions";
pub const OIDC: &str = "Single sign-on (OIDC)";

/// Every runtime setting, in the order the page shows them.
pub const FIELDS: &[Field] = &[
    Field {
        key: "smtp.enabled",
        label: "Send e-mail",
        help: "Alerts and test messages go out through this server.",
        group: SMTP,
        kind: Kind::Bool,
    },
    Field {
        key: "smtp.host",
        label: "Server",
        help: "Host name of the SMTP server, e.g. smtp.example.org.",
        group: SMTP,
        kind: Kind::Text,
    },
    Field {
        key: "smtp.port",
        label: "Port",
        help: "587 for STARTTLS, 465 for TLS from the start, 25 for none.",
        group: SMTP,
        kind: Kind::Number,
    },
    Field {
        key: "smtp.tls",
        label: "Encryption",
        help: "starttls, implicit (TLS from the start) or none.",
        group: SMTP,
        kind: Kind::Choice(&["starttls", "implicit", "none"]),
    },
    Field {
        key: "smtp.username",
        label: "User name",
        help: "Leave empty when the server takes mail without signing in.",
        group: SMTP,
        kind: Kind::Text,
    },
    Field {
        key: "smtp.password",
        label: "Password",
        help: "Stored encrypted and never shown again. Leave empty to keep the current one.",
        group: SMTP,
        kind: Kind::Secret,
    },
    Field {
        key: "smtp.from",
        label: "Sender address",
        help: "The From address of alert mail, e.g. archive@example.org.",
        group: SMTP,
        kind: Kind::Text,
    },
    Field {
        key: "sync.default_poll_secs",
        label: "Poll interval for new accounts (seconds)",
        help: "How often a newly added account is checked for new mail. At least 10.",
        group: SYNC,
        kind: Kind::Number,
    },
    Field {
        key: "clamav.quarantine_expiry_days",
        label: "Delete quarantined mail after (days)",
        help: "Counted from arrival; 0 keeps quarantined mail until someone deletes it.",
        group: SYNC,
        kind: Kind::Number,
    },
    Field {
        key: "retention.schedule",
        label: "Daily retention purge at",
        help: "A time of day as HH:MM in the server's time zone, or off.",
        group: SYNC,
        kind: Kind::Text,
    },
    Field {
        key: "security.session_idle_minutes",
        label: "Sign out after inactivity (minutes)",
        help: "A session ends after this long without a request.",
        group: SESSIONS,
        kind: Kind::Number,
    },
    Field {
        key: "security.session_absolute_hours",
        label: "Sign out after (hours)",
        help: "A session ends this long after sign-in, however active.",
        group: SESSIONS,
        kind: Kind::Number,
    },
    Field {
        key: "oidc.jit_provisioning",
        label: "Create users at their first sign-in",
        help: "Someone the identity provider signs in who has no user here gets one (just-in-time provisioning).",
        group: OIDC,
        kind: Kind::Bool,
    },
    Field {
        key: "oidc.link_by_email",
        label: "Link existing users by verified e-mail",
        help: "A first sign-in takes over the local user with the same e-mail address, only when the provider says the address is verified.",
        group: OIDC,
        kind: Kind::Bool,
    },
    Field {
        key: "oidc.group_roles",
        label: "Groups → roles",
        help: "group=Role pairs, comma-separated, e.g. archive-admins=Administrator, legal=Auditor. Applied at every sign-in: leaving a group removes the role. Needs the manage users and manage roles permissions, and only roles within your own rights.",
        group: OIDC,
        kind: Kind::Text,
    },
    Field {
        key: "oidc.group_archives",
        label: "Groups → archive accounts",
        help: "group=archive account pairs, comma-separated, e.g. sales=sales@example.com. Applied at every sign-in like the roles.",
        group: OIDC,
        kind: Kind::Text,
    },
];

/// The runtime setting `key`, if there is one.
pub fn field(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.key == key)
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a whole number in range", value.trim()))
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" | "" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

impl Field {
    /// Sets this field of `s` from its text form; the error is a sentence for the form.
    pub fn apply(&self, s: &mut Settings, value: &str) -> Result<(), String> {
        if let Kind::Choice(choices) = self.kind
            && !choices.contains(&value.trim())
        {
            return Err(format!(
                "`{}` is not known; use {}",
                value.trim(),
                choices.join(", ")
            ));
        }
        let text = value.trim().to_string();
        match self.key {
            "smtp.enabled" => s.smtp.enabled = boolean(value)?,
            "smtp.host" => s.smtp.host = text,
            "smtp.port" => s.smtp.port = number(value)?,
            "smtp.tls" => s.smtp.tls = text,
            "smtp.username" => s.smtp.username = text,
            "smtp.password" => s.smtp.password = Secret::new(value),
            "smtp.from" => s.smtp.from = text,
            "sync.default_poll_secs" => s.sync.default_poll_secs = number(value)?,
            "clamav.quarantine_expiry_days" => s.clamav.quarantine_expiry_days = number(value)?,
            "retention.schedule" => s.retention.schedule = text,
            "security.session_idle_minutes" => s.security.session_idle_minutes = number(value)?,
            "security.session_absolute_hours" => s.security.session_absolute_hours = number(value)?,
            "oidc.jit_provisioning" => s.oidc.jit_provisioning = boolean(value)?,
            "oidc.link_by_email" => s.oidc.link_by_email = boolean(value)?,
            "oidc.group_roles" => s.oidc.group_roles = text,
            "oidc.group_archives" => s.oidc.group_archives = text,
            other => return Err(format!("{other} cannot be changed here")),
        }
        Ok(())
    }

    /// This field's value in `s` as text; a secret shows only whether it is set.
    pub fn read(&self, s: &Settings) -> String {
        match self.key {
            "smtp.enabled" => s.smtp.enabled.to_string(),
            "smtp.host" => s.smtp.host.clone(),
            "smtp.port" => s.smtp.port.to_string(),
            "smtp.tls" => s.smtp.tls.clone(),
            "smtp.username" => s.smtp.username.clone(),
            "smtp.password" => masked(!s.smtp.password.is_empty()),
            "smtp.from" => s.smtp.from.clone(),
            "sync.default_poll_secs" => s.sync.default_poll_secs.to_string(),
            "clamav.quarantine_expiry_days" => s.clamav.quarantine_expiry_days.to_string(),
            "retention.schedule" => s.retention.schedule.clone(),
            "security.session_idle_minutes" => s.security.session_idle_minutes.to_string(),
            "security.session_absolute_hours" => s.security.session_absolute_hours.to_string(),
            "oidc.jit_provisioning" => s.oidc.jit_provisioning.to_string(),
            "oidc.link_by_email" => s.oidc.link_by_email.to_string(),
            "oidc.group_roles" => s.oidc.group_roles.clone(),
            "oidc.group_archives" => s.oidc.group_archives.clone(),
            _ => String::new(),
        }
    }

    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    /// `DAYGLE__SMTP__HOST`: the environment variable that sets this key.
    pub fn env_var(&self) -> String {
        format!(
            "DAYGLE__{}",
            self.key.replace('.', "__").to_ascii_uppercase()
        )
    }
}

/// How a secret shows in the page and the audit log.
pub fn masked(set: bool) -> String {
    if set { "********" } else { "(not set)" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back_what_it_applies() {
        for f in FIELDS {
            let mut s = Settings::default();
            let value = match f.kind {
                Kind::Bool => "true",
                Kind::Number => "42",
                Kind::Choice(c) => c[c.len() - 1],
                Kind::Text => "03:00",
                Kind::Secret => "hunter2",
            };
            f.apply(&mut s, value).unwrap();
            let expected = if f.is_secret() { "********" } else { value };
            assert_eq!(f.read(&s), expected, "{}", f.key);
        }
        let port = field("smtp.port").unwrap();
        assert!(
            port.apply(&mut Settings::default(), "70000")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert_eq!(
            field("sync.default_poll_secs").unwrap().env_var(),
            "DAYGLE__SYNC__DEFAULT_POLL_SECS"
        );
    }
}
