//! The append-only, hash-chained audit log.
//!
//! Record from anywhere with [`record`] (inside your own transaction, so the audit row commits
//! or rolls back with the change it describes) or [`record_now`] (its own transaction):
//!
//! ```ignore
//! let mut tx = pool.begin().await?;
//! // ... change something ...
//! audit::record(&mut tx, &AuditEvent::by(&actor, "user.disable").target(format!("user:{id}"))).await?;
//! tx.commit().await?;
//! ```

pub mod chain;
pub mod query;
pub mod seal;

use sqlx::{Acquire, PgConnection, PgPool};
use time::OffsetDateTime;

use crate::error::Result;

/// Who did something, from where. Built by the web layer per request (or by the CLI).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: String,
    pub ip: String,
    pub user_agent: String,
}

impl Actor {
    /// The command line: no address, the operator's login name when known.
    pub fn cli() -> Self {
        Self {
            user_id: None,
            username: format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            ),
            ip: String::new(),
            user_agent: "daygle cli".into(),
        }
    }
}

/// One audit row before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub user_id: Option<i64>,
    pub username: String,
    pub ip: String,
    pub user_agent: String,
    /// Dotted verb, e.g. `login.success`, `user.create`, `role.delete`.
    pub action: String,
    /// What it was done to, e.g. `user:42`.
    pub target: String,
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn by(actor: &Actor, action: impl Into<String>) -> Self {
        Self {
            user_id: actor.user_id,
            username: actor.username.clone(),
            ip: actor.ip.clone(),
            user_agent: actor.user_agent.clone(),
            action: action.into(),
            target: String::new(),
            details: serde_json::json!({}),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Any fixed number works; it only has to be the same for every writer of the chain.
const CHAIN_LOCK: i64 = 0x6461_7967_6c65_4155; // "daygleAU"

/// Appends `event` to the chain inside the caller's transaction (a savepoint when one is open,
/// a transaction of its own otherwise). Concurrent writers queue on an advisory lock held to the
/// end of the outer transaction, so each row links to the row committed just before it.
pub async fn record(conn: &mut PgConnection, event: &AuditEvent) -> Result<()> {
    record_returning_id(conn, event).await.map(|_| ())
}

/// [`record`], returning the new row's id (its sequence number in the log), e.g. for an
/// export's manifest to cite.
pub async fn record_returning_id(conn: &mut PgConnection, event: &AuditEvent) -> Result<i64> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHAIN_LOCK)
        .execute(&mut *tx)
        .await?;
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let prev = prev.unwrap_or_else(|| chain::GENESIS.to_string());
    let at = chain::truncate_to_micros(OffsetDateTime::now_utc());
    let row = chain::Row {
        id: 0,
        at,
        user_id: event.user_id,
        username: event.username.clone(),
        ip: event.ip.clone(),
        user_agent: event.user_agent.clone(),
        action: event.action.clone(),
        target: event.target.clone(),
        details: event.details.clone(),
        prev_hash: prev,
        hash: String::new(),
    };
    let hash = chain::hash_row(&row);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(row.at)
    .bind(row.user_id)
    .bind(&row.username)
    .bind(&row.ip)
    .bind(&row.user_agent)
    .bind(&row.action)
    .bind(&row.target)
    .bind(&row.details)
    .bind(&row.prev_hash)
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// [`record`] in a transaction of its own.
pub async fn record_now(pool: &PgPool, event: &AuditEvent) -> Result<()> {
    record_now_returning_id(pool, event).await.map(|_| ())
}

/// [`record_now`], returning the new row's id.
pub async fn record_now_returning_id(pool: &PgPool, event: &AuditEvent) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let id = record_returning_id(&mut tx, event).await?;
    tx.commit().await?;
    Ok(id)
}
