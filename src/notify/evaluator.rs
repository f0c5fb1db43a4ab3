//! The one background task that evaluates every trigger each minute, keeps the alert store in
//! step, and mails new alerts. With several `daygle` processes on one database, an advisory
//! lock lets one of them reconcile at a time, and the store's unique index opens each alert
//! once, so each is mailed once.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::alerts::{self, Alert};
use super::conditions::{self, Context, Finding};
use super::mailer::{Mailer, Outgoing};
use super::triggers::{self, Trigger, TriggerConfig};
use crate::error::Result;
use crate::scan::Scanner;

pub const EVERY: Duration = Duration::from_secs(60);
/// A mail that failed is tried again on later passes, this many times in all.
const MAIL_ATTEMPTS: i32 = 5;
/// `pg_try_advisory_xact_lock` key of the evaluator ("alerts" in ASCII).
const LOCK_KEY: i64 = 0x616c_6572_7473;

pub struct Evaluator {
    pub pool: PgPool,
    pub scanner: Option<Scanner>,
    pub data_dir: PathBuf,
    pub smtp: Smtp,
    /// For absolute links in mail, e.g. `https://archive.example.org`.
    pub public_url: String,
}

/// Where the evaluator's SMTP settings come from.
pub enum Smtp {
    /// Fixed for the evaluator's life (tests, one-off runs); `None`: no mail.
    Fixed(Option<Mailer>),
    /// The settings in force at each pass, so a change on the settings page applies.
    Live(std::sync::Arc<crate::settings::Live>),
}

impl Smtp {
    fn mailer(&self) -> Option<Mailer> {
        match self {
            Smtp::Fixed(m) => m.clone(),
            Smtp::Live(live) => Mailer::from_settings(&live.get().smtp),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub opened: usize,
    pub resolved: u64,
    pub mailed: usize,
    pub mail_failed: usize,
    /// Another process held the lock: this pass changed nothing.
    pub skipped: bool,
}

impl Evaluator {
    /// One pass over every trigger. A trigger whose check fails keeps its alerts as they are
    /// (an error must not look like "all clear").
    pub async fn run_once(&self) -> Result<Outcome> {
        let configs = triggers::load_all(&self.pool).await?;
        let ctx = Context {
            pool: &self.pool,
            scanner: self.scanner.as_ref(),
            data_dir: &self.data_dir,
        };
        let mut checked: Vec<(Trigger, Vec<Finding>)> = Vec::new();
        for config in &configs {
            if !config.enabled {
                checked.push((config.trigger, Vec::new()));
                continue;
            }
            match conditions::check(&ctx, config).await {
                Ok(findings) => checked.push((config.trigger, findings)),
                Err(e) => tracing::warn!(trigger = config.trigger.key(), error = %e,
                    "alert check failed; its alerts stay as they are"),
            }
        }
        let mut outcome = Outcome::default();
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
            LOCK_KEY
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            outcome.skipped = true;
            return Ok(outcome);
        }
        for (trigger, findings) in &checked {
            let changes = alerts::reconcile(&mut tx, *trigger, findings).await?;
            for id in &changes.opened {
                tracing::warn!(alert = id, trigger = trigger.key(), "alert opened");
            }
            outcome.opened += changes.opened.len();
            outcome.resolved += changes.resolved;
        }
        let mailer = self.smtp.mailer();
        let claimed = match &mailer {
            Some(_) => {
                let mailing: Vec<&str> = configs
                    .iter()
                    .filter(|c| c.enabled && c.send_email)
                    .map(|c| c.trigger.key())
                    .collect();
                alerts::claim_unsent(&mut tx, &mailing, MAIL_ATTEMPTS).await?
            }
            None => Vec::new(),
        };
        tx.commit().await?;
        if let Some(mailer) = &mailer {
            self.mail(mailer, &configs, claimed, &mut outcome).await?;
        }
        Ok(outcome)
    }

    async fn mail(
        &self,
        mailer: &Mailer,
        configs: &[TriggerConfig],
        claimed: Vec<Alert>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        if claimed.is_empty() {
            return Ok(());
        }
        let admins = administrator_addresses(&self.pool).await?;
        for alert in claimed {
            let to = configs
                .iter()
                .find(|c| c.trigger.key() == alert.trigger)
                .map(|c| c.recipients.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| admins.clone());
            let (subject, body) = self.compose(&alert);
            let sent = mailer
                .send(&Outgoing {
                    to: &to,
                    subject: &subject,
                    body: &body,
                })
                .await;
            match &sent {
                Ok(()) => outcome.mailed += 1,
                Err(e) => {
                    outcome.mail_failed += 1;
                    tracing::warn!(alert = alert.id, error = %e, "alert mail not sent");
                }
            }
            let error = sent.err().map(|e| e.0);
            alerts::record_email(&self.pool, alert.id, error.as_deref()).await?;
        }
        Ok(())
    }

    fn compose(&self, alert: &Alert) -> (String, String) {
        let severity = match alert.severity {
            alerts::Severity::Critical => "Critical",
            alerts::Severity::Warning => "Warning",
        };
        let subject = format!("[Daygle] {severity}: {}", alert.title);
        let link = format!("{}{}", self.public_url.trim_end_matches('/'), alert.link);
        let alerts_page = format!("{}/alerts", self.public_url.trim_end_matches('/'));
        let body = format!(
            "{title}\n\n{detail}\n\nOpened: {opened} UTC\nSee: {link}\nAll alerts: {alerts_page}\n\n\
             You get this mail because you administer this Daygle Mail Archiver. You will not \
             get another one for this alert while it stays open; it closes by itself when the \
             condition clears. Alerts and their e-mail are set up on the Settings page.\n",
            title = alert.title,
            detail = alert.detail,
            opened = alert
                .opened_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        );
        (subject, body)
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        // The first pass one interval after start: a restart does not race the checks of a
        // process that is still stopping, and the scanner has a moment to come up.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.run_once().await {
                        tracing::error!(error = %e, "alert evaluation failed");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
    }
}

/// Where alert mail goes by default: enabled users who may change settings and have an
/// address.
pub async fn administrator_addresses(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT DISTINCT u.email FROM users u
         JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
         WHERE u.enabled AND u.email <> '' AND 'manage_settings' = ANY(r.permissions)
         ORDER BY u.email",
    )
    .fetch_all(pool)
    .await?)
}
