//! What each trigger looks at. Each check returns the findings that hold right now, one per
//! subject (an account, or the whole installation); the alert store turns them into alerts.

use std::path::Path;

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::alerts::Severity;
use super::triggers::{Trigger, TriggerConfig};
use crate::error::Result;
use crate::reports::health::{ScannerState, scanner_state};
use crate::scan::Scanner;

/// One condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about: `account:<id>`, or empty for the installation as a whole.
    pub subject: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    /// Where to look (a page of the UI).
    pub link: String,
}

/// What the checks need.
pub struct Context<'a> {
    pub pool: &'a PgPool,
    pub scanner: Option<&'a Scanner>,
    pub data_dir: &'a Path,
}

pub async fn check(ctx: &Context<'_>, config: &TriggerConfig) -> Result<Vec<Finding>> {
    let t = config.threshold;
    match config.trigger {
        Trigger::SyncFailing => sync_failing(ctx.pool, t).await,
        Trigger::AccountQuiet => account_quiet(ctx.pool, t).await,
        Trigger::ScannerUnreachable => Ok(scanner_unreachable(ctx.scanner).await),
        Trigger::MailQuarantined => mail_quarantined(ctx.pool, t).await,
        Trigger::LedgerFailures => ledger_failures(ctx.pool, t).await,
        Trigger::DatabaseSize => database_size(ctx.pool, t).await,
        Trigger::DiskSpace => Ok(disk_space(ctx.data_dir, t)),
        Trigger::RepeatedLockouts => repeated_lockouts(ctx.pool, t).await,
        Trigger::VerifyFailed => verify_failed(ctx.pool).await,
        Trigger::AccountReconnect => account_reconnect(ctx.pool).await,
        Trigger::ApiRateLimited => api_rate_limited(ctx.pool, t).await,
    }
}

fn whole(severity: Severity, title: String, detail: String, link: &str) -> Finding {
    Finding {
        subject: String::new(),
        severity,
        title,
        detail,
        link: link.into(),
    }
}

/// A finding about the whole installation when `holds`, else none.
fn whole_if(
    holds: bool,
    severity: Severity,
    title: String,
    detail: String,
    link: &str,
) -> Vec<Finding> {
    if holds {
        vec![whole(severity, title, detail, link)]
    } else {
        Vec::new()
    }
}

/// A finding about one archive account, linking to its page.
fn about_account(id: i64, severity: Severity, title: String, detail: String) -> Finding {
    Finding {
        subject: format!("account:{id}"),
        severity,
        title,
        detail,
        link: format!("/accounts/{id}"),
    }
}

async fn sync_failing(pool: &PgPool, attempts: i64) -> Result<Vec<Finding>> {
    let rows = sqlx::query!(
        "SELECT a.id, a.name, w.consecutive_failures, w.last_error
         FROM accounts a JOIN workers w ON w.account_id = a.id
         WHERE a.enabled AND w.consecutive_failures >= greatest($1::bigint, 1)
         ORDER BY a.id",
        attempts,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            about_account(
                r.id,
                Severity::Critical,
                format!("Sync of {} is failing", r.name),
                format!(
                    "{} attempts in a row failed. Last error: {}",
                    r.consecutive_failures,
                    r.last_error.unwrap_or_else(|| "none recorded".into())
                ),
            )
        })
        .collect())
}

/// Silent for longer than both the threshold and four times the account's usual gap between
/// messages (over the last 90 days), while its sync succeeds: mail may be going elsewhere.
async fn account_quiet(pool: &PgPool, hours: i64) -> Result<Vec<Finding>> {
    let rows = sqlx::query!(
        r#"SELECT a.id, a.name, last.at AS "last!", recent.first_at, recent.n AS "n!"
         FROM accounts a
         JOIN workers w ON w.account_id = a.id AND w.consecutive_failures = 0
         CROSS JOIN LATERAL (SELECT max(archived_at) AS at FROM messages
                             WHERE account_id = a.id) last
         CROSS JOIN LATERAL (SELECT min(archived_at) AS first_at, count(*) AS n FROM messages
                             WHERE account_id = a.id
                               AND archived_at > now() - interval '90 days') recent
         WHERE a.enabled AND last.at IS NOT NULL"#,
    )
    .fetch_all(pool)
    .await?;
    let now = OffsetDateTime::now_utc();
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let (id, name, last, first, n) = (r.id, r.name, r.last, r.first_at, r.n);
            let usual = match first {
                Some(first) if n >= 2 => (last - first) / (n as i32 - 1),
                _ => Duration::ZERO,
            };
            let limit = Duration::hours(hours.max(1)).max(usual * 4);
            let silent = now - last;
            (silent > limit).then(|| {
                about_account(
                    id,
                    Severity::Warning,
                    format!("No new mail in {name} for {}", human(silent)),
                    format!(
                        "The last message was archived {} ago; new mail usually arrives every {}. \
                         The sync itself succeeds: check whether mail still reaches this mailbox.",
                        human(silent),
                        human(usual)
                    ),
                )
            })
        })
        .collect())
}

fn human(d: Duration) -> String {
    let hours = d.whole_hours();
    match hours {
        h if h >= 48 => format!("{} days", h / 24),
        h if h >= 1 => format!("{h} hours"),
        _ => format!("{} minutes", d.whole_minutes().max(1)),
    }
}

async fn scanner_unreachable(scanner: Option<&Scanner>) -> Vec<Finding> {
    match scanner_state(scanner).await {
        ScannerState::Unreachable { address, reason } => vec![whole(
            Severity::Critical,
            "The virus scanner is unreachable".into(),
            format!("{address}: {reason}. New mail waits on the mail servers until it is back."),
            "/",
        )],
        _ => Vec::new(),
    }
}

async fn mail_quarantined(pool: &PgPool, at_least: i64) -> Result<Vec<Finding>> {
    let n =
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM quarantine WHERE released_at IS NULL"#)
            .fetch_one(pool)
            .await?;
    Ok(whole_if(
        n >= at_least.max(1),
        Severity::Warning,
        format!("{n} message(s) in the quarantine"),
        "Infected mail is held in the quarantine until someone releases or deletes it.".into(),
        "/quarantine",
    ))
}

async fn ledger_failures(pool: &PgPool, at_least: i64) -> Result<Vec<Finding>> {
    let rows = sqlx::query!(
        r#"SELECT a.id, a.name, count(*) AS "n!",
                  (array_agg(l.reason ORDER BY l.recorded_at DESC))[1] AS "reason!"
           FROM ledger_entries l JOIN accounts a ON a.id = l.account_id
           WHERE l.kind = 'failed'
           GROUP BY a.id, a.name HAVING count(*) >= greatest($1::bigint, 1)
           ORDER BY a.id"#,
        at_least,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            about_account(
                r.id,
                Severity::Warning,
                format!("{} message(s) in {} could not be archived", r.n, r.name),
                format!("Latest reason: {}", r.reason),
            )
        })
        .collect())
}

async fn database_size(pool: &PgPool, gigabytes: i64) -> Result<Vec<Finding>> {
    let bytes = sqlx::query_scalar!(r#"SELECT pg_database_size(current_database()) AS "bytes!""#)
        .fetch_one(pool)
        .await?;
    let limit = gigabytes.max(0).saturating_mul(1_000_000_000);
    Ok(whole_if(
        bytes > limit,
        Severity::Warning,
        format!("The database holds {:.1} GB", bytes as f64 / 1e9),
        format!("That is more than the {gigabytes} GB this alert watches for."),
        "/",
    ))
}

fn disk_space(data_dir: &Path, percent: i64) -> Vec<Finding> {
    let Ok(stat) = nix::sys::statvfs::statvfs(data_dir) else {
        return Vec::new();
    };
    let total = stat.blocks() as f64 * stat.fragment_size() as f64;
    let free = stat.blocks_available() as f64 * stat.fragment_size() as f64;
    if total <= 0.0 {
        return Vec::new();
    }
    let free_percent = free * 100.0 / total;
    if free_percent >= percent as f64 {
        return Vec::new();
    }
    vec![whole(
        Severity::Critical,
        format!("Only {free_percent:.0} % disk space left"),
        format!(
            "{:.1} GB free of {:.1} GB on the disk holding {}.",
            free / 1e9,
            total / 1e9,
            data_dir.display()
        ),
        "/",
    )]
}

async fn repeated_lockouts(pool: &PgPool, at_least: i64) -> Result<Vec<Finding>> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM audit_log
           WHERE action = 'login.lockout' AND at > now() - interval '1 hour'"#
    )
    .fetch_one(pool)
    .await?;
    Ok(whole_if(
        n >= at_least.max(1),
        Severity::Warning,
        format!("{n} sign-in lockouts in the last hour"),
        "Someone may be guessing passwords. The audit log lists the attempts.".into(),
        "/audit?action=login.lockout",
    ))
}

/// Gmail / Microsoft 365 accounts whose authorisation the provider refused: they are not
/// synced until someone connects them again.
async fn account_reconnect(pool: &PgPool) -> Result<Vec<Finding>> {
    let rows = sqlx::query!(
        r#"SELECT id, name::text AS "name!", oauth_error FROM accounts
           WHERE enabled AND oauth_state = 'reconnect' ORDER BY id"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            about_account(
                r.id,
                Severity::Critical,
                format!("Reconnect the account {}", r.name),
                format!(
                    "Its mail is not being archived: the provider refused the stored authorisation ({}). Connect the account again on its page.",
                    r.oauth_error.unwrap_or_else(|| "no reason given".into())
                ),
            )
        })
        .collect())
}

/// The latest finished `verify archive` run found problems (critical: the archive may not be
/// what arrived) or stopped with an error (warning: it is unproven). A later clean run clears it.
async fn verify_failed(pool: &PgPool) -> Result<Vec<Finding>> {
    let Some(run) = crate::verify::runs::latest_finished(pool).await? else {
        return Ok(Vec::new());
    };
    let finding = if run.problem_count > 0 {
        whole(
            Severity::Critical,
            format!(
                "Archive verification found {} problem(s)",
                run.problem_count
            ),
            format!(
                "The run started {} checked {} messages. The Verify page lists each problem; \
                 `daygle verify archive` prints them all.",
                run.started_at.date(),
                run.messages_checked
            ),
            "/verify",
        )
    } else if let Some(error) = &run.error {
        whole(
            Severity::Warning,
            "Archive verification did not finish".into(),
            format!("The run started {} stopped: {error}", run.started_at.date()),
            "/verify",
        )
    } else {
        return Ok(Vec::new());
    };
    Ok(vec![finding])
}

/// API tokens refused by their rate limit at least `at_least` times within the window: a
/// script that ignores `Retry-After`, or one that needs a higher limit. Named by token name
/// and owner, never by secret; clears once the refusals age out of the window.
async fn api_rate_limited(pool: &PgPool, at_least: i64) -> Result<Vec<Finding>> {
    let window = super::triggers::API_RATE_WINDOW_MINUTES;
    let rows = crate::auth::token_limits::refused_at_least(pool, at_least, window).await?;
    Ok(rows
        .into_iter()
        .map(|r| Finding {
            subject: format!("api_token:{}", r.token_id),
            severity: Severity::Warning,
            title: format!(
                "API token \u{201c}{}\u{201d} of {} keeps hitting its rate limit",
                r.token_name, r.username
            ),
            detail: format!(
                "{} requests with this token were refused (429) in the last {window} minutes. \
                 The script using it should wait as long as each answer's Retry-After says; if \
                 it needs more, raise api.rate_limit_per_minute. Revoke the token if you do not \
                 know the script.",
                r.refused
            ),
            link: "/tokens".into(),
        })
        .collect())
}
