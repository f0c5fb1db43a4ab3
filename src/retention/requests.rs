//! Manual deletion and erasure requests. A request fixes the messages it covers when it is
//! made (so an approver approves exactly what the requester saw); executing it deletes them in
//! batches, skipping held mail in SQL, and marks which ones went — the deletion record keeps
//! ids and SHA-256 sums, never content. With `retention.require_approval` a manual deletion
//! waits for a second user holding `delete_mail`.

use serde_json::json;
use sqlx::{FromRow, PgConnection, PgPool, QueryBuilder};
use time::OffsetDateTime;

use super::holds::HeldFilter;
use super::remove::{self, Cause, Collected};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::auth::Grants;
use crate::error::{Error, Result};

const BATCH: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manual,
    Erasure,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Manual => "manual",
            Kind::Erasure => "erasure",
        }
    }
    fn cause(self) -> Cause {
        match self {
            Kind::Manual => Cause::Manual,
            Kind::Erasure => Cause::Erasure,
        }
    }
}

/// What a request asks for.
pub struct NewRequest<'a> {
    pub kind: Kind,
    /// The messages (those outside the actor's grants are dropped in SQL).
    pub ids: &'a [i64],
    pub reason: &'a str,
    /// The search that found them, for the record.
    pub query: Option<&'a str>,
    pub addresses: &'a [String],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Executed {
    pub deleted: u64,
    /// Covered by the request but under a legal hold: they stay.
    pub kept_held: u64,
    pub collected: Collected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for a second person's approval.
    Pending,
    Done(Executed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    pub id: i64,
    pub messages: i64,
    pub held: i64,
    pub outcome: Outcome,
}

/// How many of `ids` the actor may delete, and how many of those are held (for the
/// confirmation: "12 messages; 3 are under a legal hold and will stay").
pub async fn count_selection(pool: &PgPool, grants: &Grants, ids: &[i64]) -> Result<(i64, i64)> {
    let mut conn = pool.acquire().await?;
    let held = HeldFilter::load(&mut conn).await?;
    let mut qb = QueryBuilder::new("SELECT count(*), count(*) FILTER (WHERE ");
    held.push(&mut qb);
    qb.push(") FROM messages m WHERE m.id = ANY(")
        .push_bind(ids.to_vec())
        .push(") AND ");
    grants.push_filter(&mut qb, "m.account_id");
    Ok(qb.build_query_as().fetch_one(&mut *conn).await?)
}

/// Records a request; runs it at once unless it must wait for approval.
pub async fn request(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    new: &NewRequest<'_>,
    require_approval: bool,
) -> Result<Requested> {
    if new.reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required"));
    }
    let pending = require_approval && new.kind == Kind::Manual;
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO deletion_requests
             (kind, state, reason, query, addresses, requested_by_id, requested_by,
              decided_by_id, decided_by, decided_at)
         VALUES ($1, $2::text, $3, $4, $5, $6::bigint, $7::text,
                 CASE WHEN $2 = 'approved' THEN $6 END, CASE WHEN $2 = 'approved' THEN $7 END,
                 CASE WHEN $2 = 'approved' THEN now() END)
         RETURNING id",
        new.kind.as_str(),
        if pending { "pending" } else { "approved" },
        new.reason.trim(),
        new.query,
        new.addresses,
        actor.user_id,
        actor.username,
    )
    .fetch_one(&mut *tx)
    .await?;
    let messages = sqlx::query!(
        "INSERT INTO deletion_request_items (request_id, message_id, account_id, blob_sha256, size)
         SELECT $1, m.id, m.account_id, m.blob_sha256, m.size FROM messages m
         WHERE m.id = ANY($2) AND ($3::bigint[] IS NULL OR m.account_id = ANY($3))",
        id,
        new.ids,
        grants.as_ids() as Option<&[i64]>,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    if messages == 0 {
        return Err(Error::invalid(
            "selection",
            "no messages you may delete were selected",
        ));
    }
    let held = HeldFilter::load(&mut tx).await?;
    let mut qb = QueryBuilder::new(
        "SELECT count(*) FROM deletion_request_items i JOIN messages m ON m.id = i.message_id
         WHERE i.request_id = ",
    );
    qb.push_bind(id).push(" AND ");
    held.push(&mut qb);
    let held_count: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
    let action = match (new.kind, pending) {
        (Kind::Erasure, _) => Action::MailEraseRequest,
        (Kind::Manual, true) => Action::MailDeleteRequest,
        (Kind::Manual, false) => Action::MailDeleteStart,
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, action)
            .target(Target::DeletionRequest(id))
            .details(json!({
                "reason": new.reason.trim(), "query": new.query, "addresses": new.addresses,
                "messages": messages, "held": held_count, "awaiting_approval": pending,
            })),
    )
    .await?;
    tx.commit().await?;
    let outcome = if pending {
        Outcome::Pending
    } else {
        Outcome::Done(execute(pool, actor, grants, id).await?)
    };
    Ok(Requested {
        id,
        messages,
        held: held_count,
        outcome,
    })
}

/// A second person approves a pending manual deletion, which then runs. The requester cannot
/// approve their own request, and the approver must hold `delete_mail` and read every archive
/// the request reaches (both checked in the SQL).
pub async fn approve(pool: &PgPool, actor: &Actor, grants: &Grants, id: i64) -> Result<Executed> {
    let Some(user_id) = actor.user_id else {
        return Err(Error::Forbidden);
    };
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query!(
        "SELECT requested_by_id, requested_by, state FROM deletion_requests
         WHERE id = $1 AND kind = 'manual' FOR UPDATE",
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(Error::NotFound);
    };
    if row.state != "pending" {
        return Err(Error::Conflict(format!(
            "this request is already {}",
            row.state
        )));
    }
    if row.requested_by_id == Some(user_id) || row.requested_by == actor.username {
        return Err(Error::Conflict(
            "a deletion must be approved by someone other than the requester".into(),
        ));
    }
    let approved = sqlx::query!(
        "UPDATE deletion_requests SET state = 'approved', decided_by_id = $2, decided_by = $3,
                decided_at = now()
         WHERE id = $1 AND EXISTS (
             SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
             JOIN users u ON u.id = ur.user_id
             WHERE ur.user_id = $2 AND u.enabled AND 'delete_mail' = ANY(r.permissions))
           AND NOT EXISTS (SELECT 1 FROM deletion_request_items i
                           WHERE i.request_id = $1 AND NOT ($4::bigint[] IS NULL OR i.account_id = ANY($4)))",
        id,
        user_id,
        actor.username,
        grants.as_ids() as Option<&[i64]>,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if approved == 0 {
        return Err(Error::Forbidden);
    }
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::MailDeleteApprove).target(Target::DeletionRequest(id)),
    )
    .await?;
    tx.commit().await?;
    execute(pool, actor, grants, id).await
}

/// Rejects a pending request; nothing is deleted. Only someone who reads every archive the
/// request reaches may decide on it.
pub async fn reject(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    id: i64,
    reason: &str,
) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required to reject a deletion"));
    }
    let mut tx = pool.begin().await?;
    let done = sqlx::query!(
        "UPDATE deletion_requests SET state = 'rejected', decided_by_id = $2, decided_by = $3,
                decided_at = now(), decision_reason = $4
         WHERE id = $1 AND state = 'pending'
           AND NOT EXISTS (SELECT 1 FROM deletion_request_items i
                           WHERE i.request_id = $1 AND NOT ($5::bigint[] IS NULL OR i.account_id = ANY($5)))",
        id,
        actor.user_id,
        actor.username,
        reason.trim(),
        grants.as_ids() as Option<&[i64]>,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(Error::Conflict(
            "this request is not pending, or reaches archives you cannot read".into(),
        ));
    }
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::MailDeleteReject)
            .target(Target::DeletionRequest(id))
            .details(json!({ "reason": reason.trim() })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes an approved request's messages in batches (resumable: done items are marked).
pub async fn execute(pool: &PgPool, actor: &Actor, grants: &Grants, id: i64) -> Result<Executed> {
    let kind = sqlx::query_scalar!(
        "SELECT kind FROM deletion_requests WHERE id = $1 AND state = 'approved'",
        id,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::Conflict("this request is not approved".into()))?;
    let kind = if kind == "erasure" {
        Kind::Erasure
    } else {
        Kind::Manual
    };
    let mut done = Executed::default();
    let mut after_id = 0i64;
    loop {
        let mut tx = pool.begin().await?;
        let held = HeldFilter::lock(&mut tx).await?;
        let (gone, collected) = remove::delete_batch(
            &mut tx,
            &held,
            kind.cause(),
            BATCH,
            |qb| {
                qb.push("NULL");
            },
            |qb| {
                qb.push(
                    "m.id IN (SELECT i.message_id FROM deletion_request_items i
                              WHERE i.request_id = ",
                )
                .push_bind(id)
                .push(" AND NOT i.deleted) AND m.id > ")
                .push_bind(after_id)
                .push(" AND ");
                grants.push_filter(qb, "m.account_id");
            },
        )
        .await?;
        if gone.is_empty() {
            tx.commit().await?;
            break;
        }
        let ids: Vec<i64> = gone.iter().map(|g| g.id).collect();
        mark_deleted(&mut tx, id, &ids).await?;
        audit::record(
            &mut tx,
            &AuditEvent::by(actor, batch_action(kind))
                .target(Target::DeletionRequest(id))
                .details(json!({
                    "messages": gone.len(), "bytes": gone.iter().map(|g| g.size).sum::<i64>(),
                    "blobs_freed": collected.blobs, "bytes_freed": collected.bytes,
                })),
        )
        .await?;
        tx.commit().await?;
        after_id = ids.iter().copied().max().unwrap_or(after_id);
        done.deleted += gone.len() as u64;
        done.collected = done.collected.plus(collected);
    }
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        "UPDATE deletion_requests r SET state = 'done', done_at = now(),
             deleted = (SELECT count(*) FROM deletion_request_items WHERE request_id = r.id AND deleted),
             kept_held = (SELECT count(*) FROM deletion_request_items i JOIN messages m ON m.id = i.message_id
                          WHERE i.request_id = r.id AND NOT i.deleted)
         WHERE id = $1 RETURNING deleted, kept_held",
        id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (deleted, kept) = (row.deleted, row.kept_held);
    done.kept_held = kept as u64;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, done_action(kind))
            .target(Target::DeletionRequest(id))
            .details(json!({
                "deleted": deleted, "kept_held": kept,
                "blobs_freed": done.collected.blobs, "bytes_freed": done.collected.bytes,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(done)
}

fn batch_action(kind: Kind) -> Action {
    match kind {
        Kind::Manual => Action::MailDeleteBatch,
        Kind::Erasure => Action::MailEraseBatch,
    }
}

fn done_action(kind: Kind) -> Action {
    match kind {
        Kind::Manual => Action::MailDelete,
        Kind::Erasure => Action::MailErase,
    }
}

async fn mark_deleted(tx: &mut PgConnection, id: i64, ids: &[i64]) -> Result<()> {
    sqlx::query!(
        "UPDATE deletion_request_items SET deleted = true
         WHERE request_id = $1 AND message_id = ANY($2)",
        id,
        ids,
    )
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub reason: String,
    pub query: Option<String>,
    pub addresses: Vec<String>,
    pub requested_by_id: Option<i64>,
    pub requested_by: String,
    pub requested_at: OffsetDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_reason: Option<String>,
    pub items: i64,
    pub deleted: i64,
    pub kept_held: i64,
}

/// The newest requests whose messages all lie in archives `grants` allows, pending first.
pub async fn list(pool: &PgPool, grants: &Grants, limit: i64) -> Result<Vec<RequestRow>> {
    Ok(sqlx::query_as!(
        RequestRow,
        r#"SELECT r.id, r.kind, r.state, r.reason, r.query, r.addresses, r.requested_by_id,
                r.requested_by, r.requested_at, r.decided_by, r.decided_at, r.decision_reason,
                (SELECT count(*) FROM deletion_request_items i WHERE i.request_id = r.id) AS "items!",
                r.deleted, r.kept_held
         FROM deletion_requests r
         WHERE NOT EXISTS (SELECT 1 FROM deletion_request_items i
                           WHERE i.request_id = r.id AND NOT ($2::bigint[] IS NULL OR i.account_id = ANY($2)))
         ORDER BY r.state <> 'pending', r.requested_at DESC LIMIT $1"#,
        limit,
        grants.as_ids() as Option<&[i64]>,
    )
    .fetch_all(pool)
    .await?)
}

/// One item of a deletion record: what was (or was not) deleted.
#[derive(Debug, Clone, FromRow)]
pub struct RecordItem {
    pub message_id: i64,
    pub account_id: i64,
    pub blob_sha256: Vec<u8>,
    pub size: i64,
    pub deleted: bool,
}

pub async fn record_items(pool: &PgPool, id: i64) -> Result<Vec<RecordItem>> {
    Ok(sqlx::query_as!(
        RecordItem,
        "SELECT message_id, account_id, blob_sha256, size, deleted FROM deletion_request_items
         WHERE request_id = $1 ORDER BY message_id",
        id,
    )
    .fetch_all(pool)
    .await?)
}
