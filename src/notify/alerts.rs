//! The alert store (`alerts`): an alert opens once per (trigger, subject), counts how often it
//! was seen while open, and resolves when its condition clears. A unique index over the open
//! alerts makes "open once" hold even with two evaluators.

use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;

use super::conditions::Finding;
use super::triggers::Trigger;
use crate::audit::{self, Actor, AuditEvent};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub id: i64,
    pub trigger: String,
    pub subject: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub link: String,
    pub opened_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub seen_count: i32,
    pub resolved_at: Option<OffsetDateTime>,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub acknowledged_by: Option<String>,
    pub emailed_at: Option<OffsetDateTime>,
    pub email_error: Option<String>,
}

/// What one reconciliation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Alerts opened now (their ids), to be mailed.
    pub opened: Vec<i64>,
    pub resolved: u64,
}

/// Makes the open alerts of `trigger` match `findings`: new findings open an alert, ones
/// already open are refreshed, open alerts whose condition cleared are resolved.
pub async fn reconcile(
    tx: &mut Transaction<'_, Postgres>,
    trigger: Trigger,
    findings: &[Finding],
) -> Result<Changes> {
    let mut changes = Changes::default();
    for f in findings {
        let row = sqlx::query!(
            r#"INSERT INTO alerts (trigger, subject, severity, title, detail, link)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (trigger, subject) WHERE resolved_at IS NULL DO UPDATE
                 SET last_seen_at = now(), seen_count = alerts.seen_count + 1,
                     severity = excluded.severity, title = excluded.title,
                     detail = excluded.detail, link = excluded.link
               RETURNING id, (xmax = 0) AS "inserted!""#,
            trigger.key(),
            f.subject,
            f.severity as Severity,
            f.title,
            f.detail,
            f.link,
        )
        .fetch_one(&mut **tx)
        .await?;
        if row.inserted {
            changes.opened.push(row.id);
        }
    }
    let still: Vec<String> = findings.iter().map(|f| f.subject.clone()).collect();
    changes.resolved = sqlx::query!(
        "UPDATE alerts SET resolved_at = now()
         WHERE trigger = $1 AND resolved_at IS NULL AND NOT (subject = ANY($2))",
        trigger.key(),
        &still,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changes)
}

/// Claims the open alerts of `triggers` that still need their mail: each claim counts as an
/// attempt and holds the alert for five minutes, so two evaluators never send the same mail.
/// A failed send is retried on later passes, `max_attempts` times in all.
pub async fn claim_unsent(
    tx: &mut Transaction<'_, Postgres>,
    triggers: &[&str],
    max_attempts: i32,
) -> Result<Vec<Alert>> {
    let triggers: Vec<String> = triggers.iter().map(|t| t.to_string()).collect();
    Ok(sqlx::query_as!(
        Alert,
        r#"UPDATE alerts SET email_attempts = email_attempts + 1, email_claimed_at = now()
           WHERE id IN (SELECT id FROM alerts
                        WHERE resolved_at IS NULL AND emailed_at IS NULL AND email_attempts < $2
                          AND trigger = ANY($1)
                          AND (email_claimed_at IS NULL
                               OR email_claimed_at < now() - interval '5 minutes')
                        ORDER BY id FOR UPDATE SKIP LOCKED)
           RETURNING id, trigger, subject, severity AS "severity: Severity", title, detail, link,
                     opened_at, last_seen_at, seen_count, resolved_at, acknowledged_at,
                     acknowledged_by, emailed_at, email_error"#,
        &triggers,
        max_attempts,
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// The outcome of a claimed send: sent (no error) or why not.
pub async fn record_email(pool: &PgPool, id: i64, error: Option<&str>) -> Result<()> {
    sqlx::query!(
        "UPDATE alerts SET emailed_at = CASE WHEN $2::text IS NULL THEN now() END,
           email_error = $2, email_claimed_at = NULL
         WHERE id = $1",
        id,
        error,
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn open_count(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM alerts WHERE resolved_at IS NULL"#)
            .fetch_one(pool)
            .await?,
    )
}

/// Open alerts first (critical before warning, newest first), then the `limit` most
/// recently resolved.
pub async fn list(pool: &PgPool, resolved_limit: i64) -> Result<(Vec<Alert>, Vec<Alert>)> {
    let alerts = sqlx::query_as!(
        Alert,
        r#"SELECT id, trigger, subject, severity AS "severity: Severity", title, detail, link,
                  opened_at, last_seen_at, seen_count, resolved_at, acknowledged_at,
                  acknowledged_by, emailed_at, email_error
           FROM alerts
           WHERE resolved_at IS NULL
              OR id IN (SELECT id FROM alerts WHERE resolved_at IS NOT NULL
                        ORDER BY resolved_at DESC LIMIT $1)
           ORDER BY resolved_at IS NOT NULL,
                    (resolved_at IS NULL AND severity = 'critical') DESC,
                    resolved_at DESC, opened_at DESC"#,
        resolved_limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(alerts.into_iter().partition(|a| a.resolved_at.is_none()))
}

/// Marks an open alert as seen by `actor`, audited; false when there is no such open,
/// unacknowledged alert.
pub async fn acknowledge(pool: &PgPool, actor: &Actor, id: i64) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let title = sqlx::query_scalar!(
        "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2
         WHERE id = $1 AND resolved_at IS NULL AND acknowledged_at IS NULL
         RETURNING title",
        id,
        actor.username,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(title) = title else {
        return Ok(false);
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, audit::Action::AlertAcknowledge)
            .target(audit::Target::Alert(id))
            .details(serde_json::json!({ "title": title })),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
