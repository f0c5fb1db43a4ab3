//! `serve` verifies the whole archive on a schedule (`verify.schedule`, weekly by default) and
//! records each run for the administrators' page. Several instances sharing one database run
//! it once between them: a unique index admits one scheduled run at a time.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::runs::{self, Trigger};
use super::{Quiet, Scope};
use crate::error::Result;
use crate::secrets::Keys;

/// How often the task looks whether a run is due.
const CHECK_EVERY: Duration = Duration::from_secs(600);
/// A run whose heartbeat is older than this was interrupted.
const ABANDONED_AFTER: Duration = Duration::from_secs(900);

/// Whether a scheduled run is due now, given when the last one started.
pub fn is_due(last_start: Option<OffsetDateTime>, every: Duration, now: OffsetDateTime) -> bool {
    match last_start {
        None => true,
        Some(last) => now - last >= every,
    }
}

/// Runs a scheduled verify if one is due; returns whether it ran.
pub async fn run_if_due(pool: &PgPool, keys: &Keys, every: Duration) -> Result<bool> {
    runs::close_abandoned(pool, ABANDONED_AFTER).await?;
    let last = runs::last_scheduled_start(pool).await?;
    if !is_due(last, every, OffsetDateTime::now_utc()) {
        return Ok(false);
    }
    tracing::info!("scheduled archive verification starting");
    let done = runs::run_recorded(
        pool,
        Some(&keys.sealing),
        &Scope::default(),
        Trigger::Schedule,
        &Quiet,
    )
    .await?;
    match done {
        None => Ok(false),
        Some((id, summary)) if summary.is_clean() => {
            tracing::info!(
                run = id,
                messages = summary.messages_checked,
                bytes = summary.bytes_checked,
                "scheduled archive verification passed"
            );
            Ok(true)
        }
        Some((id, summary)) => {
            tracing::error!(
                run = id,
                problems = summary.problem_count,
                messages = summary.messages_checked,
                "scheduled archive verification found problems; see the Verify page or run `daygle verify archive`"
            );
            Ok(true)
        }
    }
}

/// The serve task: waits one check period after start (so a restart loop does not re-verify),
/// then runs whenever a run is due, until shutdown.
pub async fn run_until_stopped(
    pool: PgPool,
    keys: Arc<Keys>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                tokio::select! {
                    result = run_if_due(&pool, &keys, every) => {
                        if let Err(e) = result {
                            tracing::warn!(error = %e, "scheduled archive verification failed");
                        }
                    }
                    _ = shutdown.cancelled() => break,
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_due_when_none_ran_or_the_last_is_old_enough() {
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(86_400);
        assert!(is_due(None, day, now));
        assert!(!is_due(Some(now - time::Duration::hours(23)), day, now));
        assert!(is_due(Some(now - time::Duration::hours(25)), day, now));
    }
}
