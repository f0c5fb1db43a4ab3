//! Runs account syncs: once on demand (`daygle sync --once`), or on a schedule inside `serve`.
//! One connection per account, at most `sync.concurrency` accounts at a time, an advisory lock
//! per account so two processes never sync the same account at once, exponential backoff
//! after failures.

use std::time::Duration;

use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::error::Result;
use crate::ingest::accounts::{self, Account};
use crate::ingest::imap::sync::{SyncDeps, SyncOutcome, sync_account};
use crate::ingest::workers::{self, Heartbeat};
use crate::secrets::SealingKeys;

/// Advisory lock namespace for account syncs ("dygl").
const LOCK_NAMESPACE: i32 = 0x6479_676c;
const TICK: Duration = Duration::from_secs(5);

/// How one account's pass ended.
#[derive(Debug)]
pub enum RunResult {
    Done(SyncOutcome),
    Failed(String),
    /// Another process is syncing this account right now.
    Busy,
}

#[derive(Debug)]
pub struct AccountRun {
    pub account: String,
    pub result: RunResult,
}

/// Syncs `list` once, `sync.concurrency` accounts at a time.
pub async fn sync_accounts(
    pool: &PgPool,
    settings: &Settings,
    keys: &SealingKeys,
    list: Vec<Account>,
) -> Vec<AccountRun> {
    futures::stream::iter(list)
        .map(|account| sync_one(pool, settings, keys, account))
        .buffer_unordered(settings.sync.concurrency)
        .collect()
        .await
}

/// One pass over one account, with its status row and lock.
pub async fn sync_one(
    pool: &PgPool,
    settings: &Settings,
    keys: &SealingKeys,
    account: Account,
) -> AccountRun {
    let name = account.name.clone();
    let result = match lock(pool, account.id).await {
        Ok(Some(lock)) => {
            let r = run_locked(pool, settings, keys, &account).await;
            unlock(lock, account.id).await;
            r
        }
        Ok(None) => RunResult::Busy,
        Err(e) => RunResult::Failed(crate::error::chain(&e)),
    };
    AccountRun {
        account: name,
        result,
    }
}

async fn run_locked(
    pool: &PgPool,
    settings: &Settings,
    keys: &SealingKeys,
    account: &Account,
) -> RunResult {
    let worker = workers::sync_worker_name(account.id);
    let failures = workers::consecutive_failures(pool, &worker)
        .await
        .unwrap_or(0);
    let heartbeat = Heartbeat::start(pool, worker, Some(account.id)).await;
    let deps = SyncDeps {
        pool,
        settings,
        keys,
        heartbeat: Some(&heartbeat),
    };
    let poll = u64::try_from(account.poll_interval_secs).unwrap_or(300);
    let span = tracing::info_span!("sync", account = %account.name);
    let result = tracing::Instrument::instrument(sync_account(&deps, account), span).await;
    match result {
        Ok(outcome) => {
            tracing::info!(account = %account.name, archived = outcome.archived, skipped = outcome.skipped, failed = outcome.failed, deleted = outcome.deleted, "sync pass done");
            heartbeat.finish(Ok(()), after(poll)).await;
            RunResult::Done(outcome)
        }
        Err(e) => {
            let text = crate::error::chain(&e);
            tracing::warn!(account = %account.name, error = %text, "sync pass failed");
            let mut wait = backoff(poll, failures + 1, settings.sync.max_backoff_secs);
            if matches!(e, crate::error::Error::ScannerUnavailable(_)) {
                // Mail is waiting only for clamd: look again sooner (clamav.retry_max_secs).
                wait = wait.min(settings.clamav.retry_max_secs);
            }
            heartbeat.finish(Err(text.clone()), after(wait)).await;
            RunResult::Failed(text)
        }
    }
}

/// Doubles the wait with every failure in a row, from the poll interval up to `max`.
pub fn backoff(poll_secs: u64, failures: i32, max_secs: u64) -> u64 {
    let exp = u32::try_from(failures.clamp(1, 20) - 1).unwrap_or(0);
    poll_secs.min(60).saturating_mul(1u64 << exp).min(max_secs)
}

fn after(secs: u64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// A session-level advisory lock on its own connection: a crashed process's lock goes with
/// its connection.
async fn lock(pool: &PgPool, account_id: i64) -> Result<Option<PgConnection>> {
    let mut conn = pool.acquire().await?.detach();
    let got = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1, $2) AS "got!""#,
        LOCK_NAMESPACE,
        account_id as i32,
    )
    .fetch_one(&mut conn)
    .await?;
    if got {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

async fn unlock(mut conn: PgConnection, account_id: i64) {
    let _ = sqlx::query_scalar!(
        "SELECT pg_advisory_unlock($1, $2)",
        LOCK_NAMESPACE,
        account_id as i32,
    )
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
}

/// Enabled IMAP accounts whose next run is due.
pub async fn due_accounts(pool: &PgPool) -> Result<Vec<Account>> {
    let due = sqlx::query_scalar!(
        "SELECT a.id FROM accounts a
         LEFT JOIN workers w ON w.name = 'sync:account:' || a.id
         WHERE a.kind = 'imap' AND a.enabled
           AND (w.next_run_at IS NULL OR w.next_run_at <= now())
         ORDER BY w.next_run_at NULLS FIRST",
    )
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let mut out = Vec::with_capacity(due.len());
    for id in due {
        out.push(accounts::get(&mut conn, id).await?);
    }
    Ok(out)
}

/// One scheduler step: sync every due account once.
pub async fn run_once(pool: &PgPool, settings: &Settings, keys: &SealingKeys) -> Result<usize> {
    let due = due_accounts(pool).await?;
    let n = due.len();
    if n > 0 {
        sync_accounts(pool, settings, keys, due).await;
    }
    Ok(n)
}

/// The scheduler inside `serve`: checks for due accounts every few seconds until shutdown.
/// A pass cut short by shutdown rolls back its open batch; the next start replays it.
pub async fn run_until_stopped(
    pool: PgPool,
    settings: std::sync::Arc<crate::settings::Live>,
    keys: std::sync::Arc<crate::secrets::Keys>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = settings.get();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = run_once(&pool, &now, &keys.sealing) => {
                if let Err(e) = r {
                    tracing::warn!(error = %crate::error::chain(&e), "sync scheduler step failed");
                }
            }
        }
    }
    tracing::info!("sync scheduler stopped");
}
