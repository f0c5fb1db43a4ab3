//! Worker status rows (`workers`): what each sync worker is doing, when it last ran and
//! succeeded, its last error, and when it runs next. Status writes never fail a sync.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::auth::Grants;
use crate::error::Result;

/// What a worker is doing (`workers.state`, checked by the table to these four values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum WorkerState {
    Idle,
    Running,
    /// The last run failed; it waits longer before the next one.
    Backoff,
    Disabled,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Running => "running",
            WorkerState::Backoff => "backoff",
            WorkerState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn sync_worker_name(account_id: i64) -> String {
    format!("sync:account:{account_id}")
}

/// Writes the current activity of one running worker.
pub struct Heartbeat {
    pool: PgPool,
    name: String,
}

impl Heartbeat {
    /// Marks the worker as running.
    pub async fn start(pool: &PgPool, name: String, account_id: Option<i64>) -> Self {
        let r = sqlx::query!(
            "INSERT INTO workers (name, account_id, state, activity, last_run_at, heartbeat_at)
             VALUES ($1, $2, $3, 'starting', now(), now())
             ON CONFLICT (name) DO UPDATE SET state = $3, activity = 'starting',
               last_run_at = now(), heartbeat_at = now()",
            name,
            account_id,
            WorkerState::Running as WorkerState,
        )
        .execute(pool)
        .await;
        log_failure(r.map(|_| ()));
        Self {
            pool: pool.clone(),
            name,
        }
    }

    pub async fn activity(&self, text: &str) {
        let r = sqlx::query!(
            "UPDATE workers SET activity = $2, heartbeat_at = now() WHERE name = $1",
            self.name,
            text,
        )
        .execute(&self.pool)
        .await;
        log_failure(r.map(|_| ()));
    }

    pub async fn progress(&self, folder: &str, done: usize, total: usize, archived: u64) {
        let r = sqlx::query!(
            "UPDATE workers SET activity = $2, heartbeat_at = now(),
               messages_archived = messages_archived + $3 WHERE name = $1",
            self.name,
            format!("{folder}: {done} of {total} new messages"),
            archived as i64,
        )
        .execute(&self.pool)
        .await;
        log_failure(r.map(|_| ()));
    }

    /// Ends the run: success clears the error and failure count; failure records the error.
    pub async fn finish(self, result: std::result::Result<(), String>, next_run: OffsetDateTime) {
        let r = match result {
            Ok(()) => {
                sqlx::query!(
                    "UPDATE workers SET state = $3, activity = NULL, last_success_at = now(),
                   consecutive_failures = 0, last_error = NULL, next_run_at = $2,
                   heartbeat_at = now() WHERE name = $1",
                    self.name,
                    next_run,
                    WorkerState::Idle as WorkerState,
                )
                .execute(&self.pool)
                .await
            }
            Err(error) => {
                sqlx::query!(
                    "UPDATE workers SET state = $4, activity = NULL, last_error = $3,
                   last_error_at = now(), consecutive_failures = consecutive_failures + 1,
                   next_run_at = $2, heartbeat_at = now() WHERE name = $1",
                    self.name,
                    next_run,
                    crate::archive::strip_nul(&error),
                    WorkerState::Backoff as WorkerState,
                )
                .execute(&self.pool)
                .await
            }
        };
        log_failure(r.map(|_| ()));
    }
}

fn log_failure(r: std::result::Result<(), sqlx::Error>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not update worker status");
    }
}

/// One row of the status page.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    pub name: String,
    pub account_id: Option<i64>,
    pub account_name: Option<String>,
    pub state: WorkerState,
    pub activity: Option<String>,
    pub last_run_at: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub last_error_at: Option<OffsetDateTime>,
    pub consecutive_failures: i32,
    pub messages_archived: i64,
    pub next_run_at: Option<OffsetDateTime>,
    pub heartbeat_at: Option<OffsetDateTime>,
}

/// The workers of the archives `grants` reach. Workers that belong to no archive (their
/// activity and errors may name any archive) are listed only for `Grants::All`.
pub async fn list(pool: &PgPool, grants: &Grants) -> Result<Vec<WorkerStatus>> {
    Ok(sqlx::query_as!(
        WorkerStatus,
        r#"SELECT w.name, w.account_id, a.name::text AS "account_name?",
                  w.state AS "state: WorkerState", w.activity,
                  w.last_run_at, w.last_success_at, w.last_error, w.last_error_at,
                  w.consecutive_failures, w.messages_archived, w.next_run_at, w.heartbeat_at
           FROM workers w LEFT JOIN accounts a ON a.id = w.account_id
           WHERE ($1::bigint[] IS NULL OR w.account_id = ANY($1))
           ORDER BY w.name"#,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, name: &str) -> Result<Option<WorkerStatus>> {
    Ok(list(pool, &Grants::All)
        .await?
        .into_iter()
        .find(|w| w.name == name))
}

/// Failures in a row so far for this worker (0 when it has never failed or never ran).
pub async fn consecutive_failures(pool: &PgPool, name: &str) -> Result<i32> {
    Ok(sqlx::query_scalar!(
        "SELECT consecutive_failures FROM workers WHERE name = $1",
        name
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or(0))
}

/// "Sync now": the account's next run is due at once and its backoff is forgotten (failures
/// in a row back to 0), so the scheduler takes it within seconds. Audited. Refused for a
/// paused account or one that is not synced from a server.
pub async fn sync_now(pool: &PgPool, actor: &crate::audit::Actor, account_id: i64) -> Result<()> {
    use crate::audit::{self, Action, AuditEvent, Target};
    let mut tx = pool.begin().await?;
    let account = crate::ingest::accounts::get(&mut *tx, account_id).await?;
    if !crate::ingest::source::SYNCED_KINDS.contains(&account.kind.as_str()) {
        return Err(crate::error::Error::Conflict(
            "Only accounts synced from a mail server can be synced now.".into(),
        ));
    }
    if !account.enabled {
        return Err(crate::error::Error::Conflict(
            "Syncing of this account is paused: resume it first.".into(),
        ));
    }
    sqlx::query!(
        "INSERT INTO workers (name, account_id, state, next_run_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (name) DO UPDATE SET next_run_at = now(), consecutive_failures = 0,
           state = CASE WHEN workers.state = 'running' THEN workers.state ELSE $3 END",
        sync_worker_name(account_id),
        account_id,
        WorkerState::Idle as WorkerState,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::AccountSyncNow).target(Target::Account(account_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a person reads about an account's sync at `now`: a state word for styling and a
/// sentence, e.g. ("running", "Syncing: INBOX: 20 of 100 new messages", "").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncView {
    /// running, idle, backoff, paused, due.
    pub state: &'static str,
    pub text: String,
    /// "next sync in 4 min"; empty while running or paused.
    pub next: String,
}

impl SyncView {
    pub fn describe(w: Option<&WorkerStatus>, enabled: bool, now: OffsetDateTime) -> Self {
        let next_text = |at: Option<OffsetDateTime>| match at {
            Some(t) if t > now + time::Duration::seconds(4) => {
                format!("next sync {}", crate::render::format::relative(t, now))
            }
            _ => "next sync within seconds".into(),
        };
        if !enabled {
            return Self {
                state: "paused",
                text: "Syncing is paused.".into(),
                next: String::new(),
            };
        }
        let Some(w) = w else {
            return Self {
                state: "due",
                text: "Waiting for the first sync.".into(),
                next: next_text(None),
            };
        };
        match w.state {
            WorkerState::Running => Self {
                state: "running",
                text: match &w.activity {
                    Some(a) if !a.is_empty() => format!("Syncing: {a}"),
                    _ => "Syncing…".into(),
                },
                next: String::new(),
            },
            WorkerState::Backoff => Self {
                state: "backoff",
                text: match w.consecutive_failures {
                    n if n > 1 => format!("The last {n} attempts failed; it retries by itself."),
                    _ => "The last attempt failed; it retries by itself.".into(),
                },
                next: next_text(w.next_run_at),
            },
            WorkerState::Disabled => Self {
                state: "paused",
                text: "Syncing is paused.".into(),
                next: String::new(),
            },
            WorkerState::Idle => Self {
                state: if w.next_run_at.is_some_and(|t| t > now) {
                    "idle"
                } else {
                    "due"
                },
                text: match w.last_success_at {
                    Some(t) => format!("Last synced {}.", crate::render::format::relative(t, now)),
                    None => "Waiting for the first sync.".into(),
                },
                next: next_text(w.next_run_at),
            },
        }
    }
}

/// The sync of every server-synced account `grants` reach, as people read it, by account id.
pub async fn sync_views(pool: &PgPool, grants: &Grants) -> Result<Vec<(i64, SyncView)>> {
    let accounts = sqlx::query!(
        "SELECT id, enabled FROM accounts
         WHERE kind IN ('imap', 'gmail', 'graph') AND ($1::bigint[] IS NULL OR id = ANY($1))
         ORDER BY id",
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?;
    let workers = list(pool, grants).await?;
    let now = OffsetDateTime::now_utc();
    Ok(accounts
        .into_iter()
        .map(|a| {
            let w = workers.iter().find(|w| w.name == sync_worker_name(a.id));
            (a.id, SyncView::describe(w, a.enabled, now))
        })
        .collect())
}
