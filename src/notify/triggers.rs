//! The alert triggers: what each watches, its threshold, and whether it is on and sends
//! e-mail. Defaults live here; an administrator's changes are rows in `alert_triggers`.

use sqlx::PgPool;

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    SyncFailing,
    AccountQuiet,
    ScannerUnreachable,
    MailQuarantined,
    LedgerFailures,
    DatabaseSize,
    DiskSpace,
    RepeatedLockouts,
    VerifyFailed,
    AccountReconnect,
    ApiRateLimited,
}

/// The window of [`Trigger::ApiRateLimited`]: its threshold counts refusals within it.
pub const API_RATE_WINDOW_MINUTES: i64 = 15;

impl Trigger {
    pub const ALL: [Trigger; 11] = [
        Trigger::SyncFailing,
        Trigger::AccountQuiet,
        Trigger::ScannerUnreachable,
        Trigger::MailQuarantined,
        Trigger::LedgerFailures,
        Trigger::DatabaseSize,
        Trigger::DiskSpace,
        Trigger::RepeatedLockouts,
        Trigger::VerifyFailed,
        Trigger::AccountReconnect,
        Trigger::ApiRateLimited,
    ];

    /// Stored in `alerts.trigger` and `alert_triggers.trigger`.
    pub fn key(self) -> &'static str {
        match self {
            Trigger::SyncFailing => "sync_failing",
            Trigger::AccountQuiet => "account_quiet",
            Trigger::ScannerUnreachable => "scanner_unreachable",
            Trigger::MailQuarantined => "mail_quarantined",
            Trigger::LedgerFailures => "ledger_failures",
            Trigger::DatabaseSize => "database_size",
            Trigger::DiskSpace => "disk_space",
            Trigger::RepeatedLockouts => "repeated_lockouts",
            Trigger::VerifyFailed => "verify_failed",
            Trigger::AccountReconnect => "account_reconnect",
            Trigger::ApiRateLimited => "api_rate_limited",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.key() == key)
    }

    pub fn label(self) -> &'static str {
        match self {
            Trigger::SyncFailing => "An account's sync keeps failing",
            Trigger::AccountQuiet => "An account gets no new mail for longer than usual",
            Trigger::ScannerUnreachable => "The virus scanner is unreachable",
            Trigger::MailQuarantined => "Mail is waiting in the quarantine",
            Trigger::LedgerFailures => "Messages could not be archived",
            Trigger::DatabaseSize => "The database grows past a size",
            Trigger::DiskSpace => "Free disk space runs low",
            Trigger::RepeatedLockouts => "Repeated sign-in lockouts",
            Trigger::VerifyFailed => "Archive verification found problems or did not finish",
            Trigger::AccountReconnect => "A Gmail or Microsoft 365 account must be connected again",
            Trigger::ApiRateLimited => "An API token keeps hitting its rate limit",
        }
    }

    /// What the threshold counts; `None` for triggers without one.
    pub fn threshold_unit(self) -> Option<&'static str> {
        match self {
            Trigger::SyncFailing => Some("failed attempts in a row"),
            Trigger::AccountQuiet => Some("hours without new mail, at least"),
            Trigger::ScannerUnreachable => None,
            Trigger::MailQuarantined => Some("messages waiting"),
            Trigger::LedgerFailures => Some("failed messages per account"),
            Trigger::DatabaseSize => Some("GB"),
            Trigger::DiskSpace => Some("% free on the data directory's disk, below"),
            Trigger::RepeatedLockouts => Some("lockouts within an hour"),
            Trigger::VerifyFailed => None,
            Trigger::AccountReconnect => None,
            Trigger::ApiRateLimited => Some("refused requests within 15 minutes"),
        }
    }

    /// The defaults: everything on and mailing the administrators, except the quarantine,
    /// which the dashboard already shows and which would mail for every virus.
    pub fn default_config(self) -> TriggerConfig {
        let threshold = match self {
            Trigger::SyncFailing => 3,
            Trigger::AccountQuiet => 72,
            Trigger::ScannerUnreachable => 0,
            Trigger::MailQuarantined => 1,
            Trigger::LedgerFailures => 1,
            Trigger::DatabaseSize => 100,
            Trigger::DiskSpace => 10,
            Trigger::RepeatedLockouts => 3,
            Trigger::VerifyFailed => 0,
            Trigger::AccountReconnect => 0,
            Trigger::ApiRateLimited => 10,
        };
        let on = self != Trigger::MailQuarantined;
        TriggerConfig {
            trigger: self,
            enabled: on,
            threshold,
            send_email: on,
            recipients: Vec::new(),
        }
    }
}

/// How one trigger is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    pub trigger: Trigger,
    pub enabled: bool,
    pub threshold: i64,
    pub send_email: bool,
    /// Addresses for this trigger's mail; empty = the administrators.
    pub recipients: Vec<String>,
}

struct Row {
    trigger: String,
    enabled: bool,
    threshold: i64,
    send_email: bool,
    recipients: Vec<String>,
}

/// Every trigger's configuration: the stored row where there is one, else the default.
pub async fn load_all(pool: &PgPool) -> Result<Vec<TriggerConfig>> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT trigger, enabled, threshold, send_email, recipients FROM alert_triggers",
    )
    .fetch_all(pool)
    .await?;
    Ok(Trigger::ALL
        .into_iter()
        .map(|t| {
            rows.iter()
                .find(|r| r.trigger == t.key())
                .map(|r| TriggerConfig {
                    trigger: t,
                    enabled: r.enabled,
                    threshold: r.threshold,
                    send_email: r.send_email,
                    recipients: r.recipients.clone(),
                })
                .unwrap_or_else(|| t.default_config())
        })
        .collect())
}

/// Stores one trigger's configuration (the settings page calls this inside its audited
/// transaction).
pub async fn save(db: impl sqlx::PgExecutor<'_>, config: &TriggerConfig) -> Result<()> {
    sqlx::query!(
        "INSERT INTO alert_triggers (trigger, enabled, threshold, send_email, recipients)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (trigger) DO UPDATE SET enabled = $2, threshold = $3, send_email = $4,
           recipients = $5, updated_at = now()",
        config.trigger.key(),
        config.enabled,
        config.threshold,
        config.send_email,
        &config.recipients,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Why a trigger's form values are refused, one sentence per field (`<trigger>.threshold`).
pub fn check(config: &TriggerConfig) -> Vec<crate::config::Problem> {
    let mut problems = Vec::new();
    let key = config.trigger.key();
    if config.threshold < 0 {
        problems.push(crate::config::Problem {
            key: format!("{key}.threshold"),
            message: "must be 0 or more".into(),
        });
    }
    for r in &config.recipients {
        if !r.contains('@') || r.contains(char::is_whitespace) {
            problems.push(crate::config::Problem {
                key: format!("{key}.recipients"),
                message: format!("`{r}` is not an e-mail address"),
            });
        }
    }
    problems
}

/// Stores the triggers that differ from their current configuration, with one audit row
/// listing each change as old and new values. Invalid input is `Error::Config` with every
/// problem; nothing is stored then.
pub async fn update(
    pool: &PgPool,
    actor: &crate::audit::Actor,
    configs: &[TriggerConfig],
) -> Result<usize> {
    let problems: Vec<_> = configs.iter().flat_map(check).collect();
    if !problems.is_empty() {
        return Err(crate::error::Error::Config(crate::config::ConfigErrors(
            problems,
        )));
    }
    let before = load_all(pool).await?;
    let describe = |c: &TriggerConfig| {
        serde_json::json!({
            "enabled": c.enabled,
            "threshold": c.threshold,
            "send_email": c.send_email,
            "recipients": c.recipients,
        })
    };
    let mut tx = pool.begin().await?;
    let mut changes = Vec::new();
    for config in configs {
        let Some(old) = before.iter().find(|b| b.trigger == config.trigger) else {
            continue;
        };
        if old == config {
            continue;
        }
        save(&mut *tx, config).await?;
        changes.push(serde_json::json!({
            "trigger": config.trigger.key(),
            "old": describe(old),
            "new": describe(config),
        }));
    }
    if changes.is_empty() {
        return Ok(0);
    }
    crate::audit::record(
        &mut tx,
        &crate::audit::AuditEvent::by(actor, crate::audit::Action::AlertTriggersUpdate)
            .details(serde_json::json!({ "changes": changes })),
    )
    .await?;
    tx.commit().await?;
    Ok(changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_every_trigger_but_the_quarantine_is_on_and_mails() {
        for t in Trigger::ALL {
            let c = t.default_config();
            assert_eq!(c.enabled, t != Trigger::MailQuarantined, "{t:?}");
            assert_eq!(c.send_email, c.enabled, "{t:?}");
            assert_eq!(Trigger::parse(t.key()), Some(t));
        }
    }

    #[test]
    fn the_rate_limit_trigger_names_its_window() {
        let unit = Trigger::ApiRateLimited.threshold_unit().unwrap_or_default();
        assert!(
            unit.contains(&format!("{API_RATE_WINDOW_MINUTES} minutes")),
            "{unit}"
        );
    }
}
