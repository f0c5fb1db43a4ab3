//! Runs account syncs: once on demand (`daygle sync --once`), or on a schedule inside `serve`.
//! One connection per account, at most `sync.concurrency` accounts at a time, an advisory lock
//! per account so two processes never sync the same account at once, exponential backoff
//! after failures.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::db::DbHealth;
use crate::error::Result;
use crate::ingest::accounts::{self, Account};
use crate::ingest::imap::idle::Watchers;
use crate::ingest::imap::sync::{SyncDeps, SyncOutcome};
use crate::ingest::source::sync_account;
use crate::ingest::workers::{self, Heartbeat};
use crate::ingest::{leader, leases};
use crate::secrets::SealingKeys;

/// Advisory lock namespace for account syncs ("dygl").
const LOCK_NAMESPACE: i32 = 0x6479_676c;
/// How soon a pass cut short by a database outage is tried again.
const DATABASE_RETRY_SECS: u64 = 5;
const TICK: Duration = Duration::from_secs(2);

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
            if e.is_database_unavailable() {
                // The database went away mid-pass (it is being restarted): carry on as soon as
                // it is back; the account did nothing wrong.
                wait = wait.min(DATABASE_RETRY_SECS);
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

/// Enabled accounts synced from a server (IMAP, Gmail, Microsoft 365) whose next run is due.
/// An OAuth account waiting to be connected again is left alone until someone does.
pub async fn due_accounts(pool: &PgPool) -> Result<Vec<Account>> {
    let due = sqlx::query_scalar!(
        "SELECT a.id FROM accounts a
         LEFT JOIN workers w ON w.name = 'sync:account:' || a.id
         WHERE a.kind IN ('imap', 'gmail', 'graph') AND a.enabled AND a.oauth_state = 'ok'
           AND (w.next_run_at IS NULL OR w.next_run_at <= now())
         ORDER BY w.next_run_at NULLS FIRST",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(due.len());
    for id in due {
        out.push(accounts::get(pool, id).await?);
    }
    Ok(out)
}

/// Who the scheduler syncs for: every due account (`daygle sync` without `--once`), or only
/// the accounts this worker holds leases on (`serve`, which may share the database with other
/// workers).
#[derive(Clone)]
pub enum Assignment {
    Everything,
    Leased {
        me: Uuid,
        lease_secs: u32,
        health: DbHealth,
    },
}

/// How often the set of IDLE watchers is brought in line with the accounts (and after every
/// lease change).
const WATCH_RECONCILE: Duration = Duration::from_secs(15);

/// The scheduler: every couple of seconds it renews its leases (when leased), reaps finished
/// passes and starts due accounts, at most `sync.concurrency` at a time, until shutdown. Passes
/// run beside the loop, so a long pass never delays lease renewal. A pass cut short by
/// shutdown rolls back its open batch; the next start replays it.
///
/// Accounts that IDLE ([`crate::ingest::imap::idle`]) are watched while this scheduler syncs
/// them (holds their lease); a watcher's wake-up makes the account due at once, or right after
/// its running pass.
pub async fn run_until_stopped(
    pool: PgPool,
    settings: Arc<crate::settings::Live>,
    keys: Arc<crate::secrets::Keys>,
    assignment: Assignment,
    shutdown: CancellationToken,
) {
    let every = match &assignment {
        Assignment::Leased { lease_secs, .. } => TICK.min(leader::renew_every(*lease_secs)),
        Assignment::Everything => TICK,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut running: JoinSet<i64> = JoinSet::new();
    let mut busy: HashSet<i64> = HashSet::new();
    let mut held: Option<HashSet<i64>> = None;
    let mut renewed_at: Option<Instant> = None;
    let (mut watchers, mut wakes) = Watchers::new();
    let mut woken: HashSet<i64> = HashSet::new();
    let mut reconciled: Option<(Instant, Option<HashSet<i64>>)> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Some(id) = wakes.recv() => {
                woken.insert(id);
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                match done {
                    Ok(id) if woken.contains(&id) => {
                        busy.remove(&id);
                    }
                    Ok(id) => {
                        busy.remove(&id);
                        continue;
                    }
                    Err(_) => continue,
                }
            }
        }
        if let Assignment::Leased {
            me,
            lease_secs,
            health,
        } = &assignment
        {
            if health.is_down() {
                continue;
            }
            let due_renewal = renewed_at
                .is_none_or(|t| t.elapsed() + TICK / 10 >= leader::renew_every(*lease_secs));
            if due_renewal {
                let busy_now: Vec<i64> = busy.iter().copied().collect();
                match leases::renew_and_claim(&pool, *me, *lease_secs, &busy_now).await {
                    Ok(ids) => {
                        let ids: HashSet<i64> = ids.into_iter().collect();
                        if held.as_ref() != Some(&ids) {
                            tracing::info!(accounts = ?ids, "account leases held");
                        }
                        held = Some(ids);
                        renewed_at = Some(Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::error::chain(&e), "could not renew the account leases");
                        // Leases not renewed within their time belong to nobody: stop starting them.
                        if renewed_at.is_none_or(|t| {
                            t.elapsed() >= Duration::from_secs(u64::from(*lease_secs))
                        }) {
                            held = Some(HashSet::new());
                        }
                    }
                }
            }
        }
        // Settings saved on the settings page apply from the next pass.
        let now = settings.get();
        let leased = matches!(assignment, Assignment::Leased { .. });
        if reconciled
            .as_ref()
            .is_none_or(|(at, h)| at.elapsed() >= WATCH_RECONCILE || *h != held)
        {
            match watched_accounts(&pool, now.sync.idle).await {
                Ok(list) => {
                    let mine = list
                        .into_iter()
                        .filter(|a| mine(leased, held.as_ref(), a.id))
                        .collect();
                    watchers.reconcile(mine, &now.sync, &keys);
                    reconciled = Some((Instant::now(), held.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "could not list the accounts to watch with IDLE");
                }
            }
        }
        let free = now.sync.concurrency.saturating_sub(busy.len());
        if free == 0 {
            continue;
        }
        let due = match due_accounts(&pool).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "sync scheduler step failed");
                continue;
            }
        };
        let mut start: Vec<Account> = due
            .into_iter()
            .filter(|a| !busy.contains(&a.id))
            .filter(|a| mine(leased, held.as_ref(), a.id))
            .take(free)
            .collect();
        // Woken accounts that were not due anyway, as far as the concurrency allows.
        let waiting: Vec<i64> = woken
            .iter()
            .copied()
            .filter(|id| !busy.contains(id) && !start.iter().any(|a| a.id == *id))
            .filter(|id| mine(leased, held.as_ref(), *id))
            .collect();
        for id in waiting {
            if start.len() >= free {
                break;
            }
            match pool.acquire().await {
                Ok(mut conn) => match accounts::get(&mut *conn, id).await {
                    Ok(a) if a.enabled && a.kind == "imap" => start.push(a),
                    Ok(_) | Err(crate::error::Error::NotFound) => {
                        woken.remove(&id);
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::error::chain(&e), "could not load a woken account");
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not load a woken account");
                }
            }
        }
        for account in start {
            let id = account.id;
            // This pass looks at everything the wake-up announced.
            woken.remove(&id);
            busy.insert(id);
            let (pool, settings, keys) = (pool.clone(), now.clone(), keys.clone());
            running.spawn(async move {
                sync_one(&pool, &settings, &keys.sealing, account).await;
                id
            });
        }
    }
    watchers.stop_all().await;
    running.shutdown().await;
    tracing::info!("sync scheduler stopped");
}

/// Whether this scheduler syncs the account: every account, or only those it holds a lease on.
fn mine(leased: bool, held: Option<&HashSet<i64>>, id: i64) -> bool {
    match held {
        Some(h) => h.contains(&id),
        None => !leased,
    }
}

/// Enabled IMAP accounts that IDLE, given the installation's default.
async fn watched_accounts(pool: &PgPool, default: bool) -> Result<Vec<Account>> {
    Ok(accounts::list(pool)
        .await?
        .into_iter()
        .filter(|a| a.enabled && a.idles(default))
        .collect())
}
