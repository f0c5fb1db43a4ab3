//! Recorded runs: each `verify archive` (from the command line or the schedule) leaves a row
//! with when it ran, what it checked and the first problems, for administrators to see.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;

use super::{Observer, Problem, Scope, Summary, verify_archive};
use crate::auth::Grants;
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// Problems kept with a run; the command line prints every one.
const KEPT_PROBLEMS: usize = 200;
const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Cli,
    Schedule,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Schedule => "schedule",
        }
    }
}

/// One recorded run.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub trigger: String,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub sample_percent: Option<f64>,
    pub account: Option<String>,
    pub blobs_checked: i64,
    pub messages_checked: i64,
    pub bytes_checked: i64,
    pub quarantine_checked: i64,
    pub problem_count: i64,
    pub problems: sqlx::types::Json<Vec<Problem>>,
    pub error: Option<String>,
}

impl Run {
    /// Finished, without an error, and nothing wrong found.
    pub fn passed(&self) -> bool {
        self.finished_at.is_some() && self.error.is_none() && self.problem_count == 0
    }
}

/// Keeps the first problems for the record and passes every one on.
struct Recorder<'a> {
    inner: &'a dyn Observer,
    kept: Mutex<Vec<Problem>>,
}

impl Observer for Recorder<'_> {
    fn planned(&self, blobs: u64, bytes: u64) {
        self.inner.planned(blobs, bytes);
    }
    fn advanced(&self, bytes: u64) {
        self.inner.advanced(bytes);
    }
    fn problem(&self, problem: &Problem) {
        if let Ok(mut kept) = self.kept.lock()
            && kept.len() < KEPT_PROBLEMS
        {
            kept.push(problem.clone());
        }
        self.inner.problem(problem);
    }
}

/// Runs `verify archive` and records it. Returns `None` when `trigger` is the schedule and a
/// scheduled run is already in progress (on this or another instance).
pub async fn run_recorded(
    pool: &PgPool,
    keys: Option<&SealingKeys>,
    scope: &Scope,
    trigger: Trigger,
    observer: &dyn Observer,
) -> Result<Option<(i64, Summary)>> {
    let Some(id) = start(pool, trigger, scope).await? else {
        return Ok(None);
    };
    let recorder = Recorder {
        inner: observer,
        kept: Mutex::new(Vec::new()),
    };
    let verify = verify_archive(pool, keys, scope, &recorder);
    tokio::pin!(verify);
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        tokio::select! {
            result = &mut verify => break result,
            _ = tick.tick() => {
                if let Err(e) = heartbeat(pool, id).await {
                    tracing::warn!(error = %e, "could not record verify progress");
                }
            }
        }
    };
    let kept = recorder
        .kept
        .lock()
        .map(|mut kept| std::mem::take(&mut *kept))
        .unwrap_or_default();
    match result {
        Ok(summary) => {
            finish(pool, id, &summary, &kept, None).await?;
            Ok(Some((id, summary)))
        }
        Err(e) => {
            let summary = Summary {
                problem_count: kept.len() as u64,
                ..Summary::default()
            };
            if let Err(record) = finish(pool, id, &summary, &kept, Some(&e.to_string())).await {
                tracing::warn!(error = %record, "could not record the failed verify run");
            }
            Err(e)
        }
    }
}

async fn start(pool: &PgPool, trigger: Trigger, scope: &Scope) -> Result<Option<i64>> {
    let inserted = sqlx::query_scalar!(
        "INSERT INTO verify_runs (trigger, sample_percent, account_id) VALUES ($1, $2, $3)
         RETURNING id",
        trigger.as_str(),
        scope.sample_percent.filter(|p| *p < 100.0),
        scope.account_id,
    )
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(id) => Ok(Some(id)),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("verify_runs_one_scheduled") => {
            Ok(None)
        }
        Err(e) => Err(Error::context("record the start of a verify run", e)),
    }
}

async fn heartbeat(pool: &PgPool, id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE verify_runs SET heartbeat_at = now() WHERE id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn finish(
    pool: &PgPool,
    id: i64,
    summary: &Summary,
    problems: &[Problem],
    error: Option<&str>,
) -> Result<()> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query!(
        "UPDATE verify_runs SET finished_at = now(), heartbeat_at = now(), blobs_checked = $2,
           messages_checked = $3, bytes_checked = $4, quarantine_checked = $5,
           problem_count = $6, problems = $7, error = $8
         WHERE id = $1",
        id,
        count(summary.blobs_checked),
        count(summary.messages_checked),
        count(summary.bytes_checked),
        count(summary.quarantine_checked),
        count(summary.problem_count),
        sqlx::types::Json(problems) as _,
        error,
    )
    .execute(pool)
    .await
    .map_err(|e| Error::context("record the result of a verify run", e))?;
    Ok(())
}

/// Marks runs whose heartbeat stopped (the process died) as interrupted.
pub async fn close_abandoned(pool: &PgPool, silent_for: Duration) -> Result<u64> {
    let done = sqlx::query!(
        "UPDATE verify_runs SET finished_at = now(), error = 'interrupted: the run stopped without finishing'
         WHERE finished_at IS NULL AND heartbeat_at < now() - make_interval(secs => $1)",
        silent_for.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The most recent runs, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<Run>> {
    recent_for(pool, &Grants::All, limit).await
}

/// The most recent runs, newest first, with only the problems in archive accounts `grants`
/// allows (problems of no account, such as an orphaned blob, are shown to those who read all).
pub async fn recent_for(pool: &PgPool, grants: &Grants, limit: i64) -> Result<Vec<Run>> {
    Ok(sqlx::query_as!(
        Run,
        r#"SELECT r.id, r.trigger, r.started_at, r.finished_at, r.sample_percent,
                  a.name AS "account?", r.blobs_checked, r.messages_checked, r.bytes_checked,
                  r.quarantine_checked, r.problem_count,
                  CASE WHEN $2::bigint[] IS NULL THEN r.problems
                       ELSE coalesce((SELECT jsonb_agg(p) FROM jsonb_array_elements(r.problems) p
                                      WHERE p->>'account' IN (SELECT g.name::text FROM accounts g
                                                              WHERE g.id = ANY($2))), '[]')
                  END AS "problems!: sqlx::types::Json<Vec<Problem>>", r.error
           FROM verify_runs r LEFT JOIN accounts a ON a.id = r.account_id
           ORDER BY r.started_at DESC, r.id DESC LIMIT $1"#,
        limit,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}

/// The newest run that has finished (for the alert).
pub async fn latest_finished(pool: &PgPool) -> Result<Option<Run>> {
    Ok(sqlx::query_as!(
        Run,
        r#"SELECT r.id, r.trigger, r.started_at, r.finished_at, r.sample_percent,
                  a.name AS "account?", r.blobs_checked, r.messages_checked, r.bytes_checked,
                  r.quarantine_checked, r.problem_count,
                  r.problems AS "problems: sqlx::types::Json<Vec<Problem>>", r.error
           FROM verify_runs r LEFT JOIN accounts a ON a.id = r.account_id
           WHERE r.finished_at IS NOT NULL
           ORDER BY r.finished_at DESC, r.id DESC LIMIT 1"#,
    )
    .fetch_optional(pool)
    .await?)
}

/// When the last scheduled run started, if any did.
pub async fn last_scheduled_start(pool: &PgPool) -> Result<Option<OffsetDateTime>> {
    Ok(
        sqlx::query_scalar!("SELECT max(started_at) FROM verify_runs WHERE trigger = 'schedule'")
            .fetch_one(pool)
            .await?,
    )
}
