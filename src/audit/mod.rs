//! The append-only, hash-chained audit log.
//!
//! Record from anywhere with [`record`] (inside your own transaction, so the audit row commits
//! or rolls back with the change it describes) or [`record_now`] (its own transaction):
//!
//! ```ignore
//! let mut tx = pool.begin().await?;
//! // ... change something ...
//! audit::record(&mut tx, &AuditEvent::by(&actor, Action::UserDisable).target(Target::User(id))).await?;
//! tx.commit().await?;
//! ```

pub mod chain;
pub mod event;
pub mod query;
pub mod seal;
pub mod writer;

pub use event::{Action, Actor, AuditEvent, Target};
pub use writer::Writer;

use sqlx::{Acquire, PgConnection, PgPool};
use time::OffsetDateTime;

use crate::error::Result;

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
    let mut prev = lock_chain(&mut tx).await?;
    let id = append(&mut tx, &mut prev, event).await?;
    tx.commit().await?;
    Ok(id)
}

/// Takes the chain lock until the end of the transaction; returns the hash of the newest row.
async fn lock_chain(conn: &mut PgConnection) -> Result<String> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)
        .execute(&mut *conn)
        .await?;
    let prev = sqlx::query_scalar!("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(prev.unwrap_or_else(|| chain::GENESIS.to_string()))
}

/// Inserts `event` after the row whose hash is `prev` (the caller holds the chain lock) and
/// moves `prev` on to the new row's hash.
async fn append(conn: &mut PgConnection, prev: &mut String, event: &AuditEvent) -> Result<i64> {
    let at = chain::truncate_to_micros(OffsetDateTime::now_utc());
    let row = chain::Row {
        id: 0,
        at,
        user_id: event.user_id,
        username: event.username.clone(),
        ip: event.ip.clone(),
        user_agent: event.user_agent.clone(),
        action: event.action.as_str().to_string(),
        target: event.target.to_string(),
        details: with_token(&event.details, event.api_token),
        prev_hash: prev.clone(),
        hash: String::new(),
    };
    let hash = chain::hash_row(&row);
    // Which archives the row concerns: given by the caller, else derived from the target in
    // the same statement (the target still exists: the row is written with its action).
    let id = sqlx::query_scalar!(
        "INSERT INTO audit_log (at, user_id, username, ip, user_agent, action, target, details,
                                prev_hash, hash, accounts, all_accounts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                 COALESCE($11::bigint[], audit_target_accounts($7)), $12 OR $7 = 'archive')
         RETURNING id",
        row.at,
        row.user_id,
        row.username,
        row.ip,
        row.user_agent,
        row.action,
        row.target,
        row.details,
        row.prev_hash,
        hash,
        event.accounts.as_deref() as Option<&[i64]>,
        event.all_accounts,
    )
    .fetch_one(&mut *conn)
    .await?;
    *prev = hash;
    Ok(id)
}

/// `details` with the API token that made the request, when one did.
fn with_token(details: &serde_json::Value, token: Option<i64>) -> serde_json::Value {
    let mut details = details.clone();
    if let Some(id) = token {
        match details.as_object_mut() {
            Some(map) => {
                map.insert("api_token".into(), id.into());
            }
            None => details = serde_json::json!({ "details": details, "api_token": id }),
        }
    }
    details
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
