//! Legal holds: mail that must not leave the archive, whatever retention, a user or a mail
//! server's delete-after-archive wants.
//!
//! Holds are not copied onto messages: every delete path ANDs `NOT held` into its own SQL
//! ([`HeldFilter::push`]), evaluated against the holds active at that moment. Mail archived
//! after a hold was placed is therefore held as soon as it matches the hold's scope. Deleting
//! transactions take `legal_holds` in SHARE mode first, so a hold being placed or released
//! waits for them (and they for it): no deletion decides on a stale set of holds.

use std::collections::HashSet;

use serde_json::json;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use time::{Date, OffsetDateTime};

use super::policies::{Owner, check_reach, insert_accounts, name_taken};
use super::scope::{Scope, parse_query};
use crate::archive::search::{self, Stemmers};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::auth::Grants;
use crate::error::{Error, Result};

#[derive(Debug, Clone, FromRow)]
pub struct Hold {
    pub id: i64,
    pub name: String,
    pub reason: String,
    /// `scope` or `messages` (hand-picked).
    pub kind: String,
    pub all_accounts: bool,
    /// The accounts in scope that the reader of this list may read.
    pub account_ids: Vec<i64>,
    pub account_names: Vec<String>,
    pub query: Option<String>,
    pub date_from: Option<Date>,
    pub date_to: Option<Date>,
    /// Hand-picked messages the reader may read.
    pub picked: i64,
    /// Accounts in scope, or hand-picked messages, that the reader may not read.
    pub hidden: i64,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub released_at: Option<OffsetDateTime>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

impl Hold {
    pub fn is_active(&self) -> bool {
        self.released_at.is_none()
    }

    /// Whether a user with `grants` may release this hold: one that reaches mail they cannot
    /// read (every account, another account, or hand-picked mail of one) is out of reach.
    pub fn releasable_by(&self, grants: &Grants) -> bool {
        *grants == Grants::All
            || (self.hidden == 0 && (self.kind == "messages" || !self.all_accounts))
    }

    fn scope(&self) -> Result<Scope> {
        Ok(Scope {
            accounts: (!self.all_accounts).then(|| self.account_ids.clone()),
            folder_pattern: None,
            query: parse_query("query", self.query.as_deref())?,
            from_day: self.date_from,
            to_day: self.date_to,
        })
    }

    /// What the hold covers, in words, for lists.
    pub fn scope_text(&self) -> String {
        if self.kind == "messages" {
            return if self.hidden > 0 {
                format!(
                    "{} hand-picked messages (and some in other accounts)",
                    self.picked
                )
            } else {
                format!("{} hand-picked messages", self.picked)
            };
        }
        let mut parts = vec![if self.all_accounts {
            "all accounts".to_string()
        } else if self.account_names.is_empty() && self.hidden == 0 {
            "no accounts (deleted)".to_string()
        } else if self.hidden > 0 {
            let mut names = self.account_names.clone();
            names.push(format!("{} other accounts", self.hidden));
            names.join(", ")
        } else {
            self.account_names.join(", ")
        }];
        if let Some(q) = &self.query {
            parts.push(format!("query {q}"));
        }
        match (self.date_from, self.date_to) {
            (Some(f), Some(t)) => parts.push(format!("dated {f} to {t}")),
            (Some(f), None) => parts.push(format!("dated from {f}")),
            (None, Some(t)) => parts.push(format!("dated up to {t}")),
            (None, None) => {}
        }
        parts.join("; ")
    }
}

/// The holds that reach mail `grants` allows (`None`: every hold), naming and counting only
/// granted accounts and messages; one hold (`id`) or all; only the active scope holds
/// (`active_scopes`) for the delete filter. Active first, then released, newest first.
async fn fetch(
    db: impl PgExecutor<'_>,
    grants: Option<&[i64]>,
    id: Option<i64>,
    active_scopes: bool,
) -> Result<Vec<Hold>> {
    Ok(sqlx::query_as!(
        Hold,
        r#"SELECT h.id, h.name::text AS "name!", h.reason, h.kind, h.all_accounts,
            coalesce(array_agg(a.id ORDER BY a.name)
                FILTER (WHERE a.id IS NOT NULL AND ($1::bigint[] IS NULL OR a.id = ANY($1))), '{}') AS "account_ids!",
            coalesce(array_agg(a.name::text ORDER BY a.name)
                FILTER (WHERE a.id IS NOT NULL AND ($1::bigint[] IS NULL OR a.id = ANY($1))), '{}') AS "account_names!",
            h.query, h.date_from, h.date_to,
            (SELECT count(*) FROM legal_hold_messages hm JOIN messages m ON m.id = hm.message_id
             WHERE hm.hold_id = h.id AND ($1::bigint[] IS NULL OR m.account_id = ANY($1))) AS "picked!",
            count(a.id) FILTER (WHERE NOT ($1::bigint[] IS NULL OR a.id = ANY($1)))
              + (SELECT count(*) FROM legal_hold_messages hm JOIN messages m ON m.id = hm.message_id
                 WHERE hm.hold_id = h.id AND NOT ($1::bigint[] IS NULL OR m.account_id = ANY($1))) AS "hidden!",
            h.created_by, h.created_at, h.released_at, h.released_by, h.release_reason
         FROM legal_holds h
         LEFT JOIN legal_hold_accounts ha ON ha.hold_id = h.id
         LEFT JOIN accounts a ON a.id = ha.account_id
         WHERE ($2::bigint IS NULL OR h.id = $2)
           AND (NOT $3::bool OR (h.released_at IS NULL AND h.kind = 'scope'))
         GROUP BY h.id
         -- keeps holds over every account, or over at least one granted account or message
         HAVING $1::bigint[] IS NULL OR (h.kind = 'scope' AND h.all_accounts)
            OR count(a.id) FILTER (WHERE a.id = ANY($1)) > 0
            OR EXISTS (SELECT 1 FROM legal_hold_messages hm JOIN messages m ON m.id = hm.message_id
                       WHERE hm.hold_id = h.id AND m.account_id = ANY($1))
         ORDER BY h.released_at IS NOT NULL, h.created_at DESC"#,
        grants as Option<&[i64]>,
        id,
        active_scopes,
    )
    .fetch_all(db)
    .await?)
}

/// The holds that reach mail `grants` allows: active first, then released, newest first.
pub async fn list(db: impl PgExecutor<'_>, grants: &Grants) -> Result<Vec<Hold>> {
    fetch(db, grants.as_ids(), None, false).await
}

/// [`list`] with how many messages `grants` allows that each active hold covers now (0 for
/// released holds), for the holds page and `daygle hold list`.
pub async fn list_with_held(pool: &PgPool, grants: &Grants) -> Result<Vec<(Hold, i64)>> {
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    for hold in list(&mut *conn, grants).await? {
        let held = if hold.is_active() {
            count_held_by(&mut conn, grants, hold.id).await?
        } else {
            0
        };
        out.push((hold, held));
    }
    Ok(out)
}

/// One hold, if it reaches mail `grants` allows (otherwise `NotFound`, as if absent).
pub async fn get(db: impl PgExecutor<'_>, grants: &Grants, id: i64) -> Result<Hold> {
    fetch(db, grants.as_ids(), Some(id), false)
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

pub async fn id_by_name(pool: &PgPool, name: &str) -> Result<i64> {
    sqlx::query_scalar!("SELECT id FROM legal_holds WHERE name = $1", name)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)
}

/// A scope hold as someone entered it. No condition at all holds every message.
#[derive(Debug, Clone, Default)]
pub struct HoldInput {
    pub name: String,
    pub reason: String,
    /// Empty: every account.
    pub account_ids: Vec<i64>,
    pub query: Option<String>,
    pub date_from: Option<Date>,
    pub date_to: Option<Date>,
}

fn check_name_reason(name: &str, reason: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::invalid(
            "name",
            "is required (at most 100 characters)",
        ));
    }
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required"));
    }
    Ok(())
}

/// Places a scope hold. It applies at once, and to mail archived later. A hold over every
/// account needs a user who reads every account; each account must be granted to the actor.
pub async fn place(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    input: &HoldInput,
) -> Result<i64> {
    check_name_reason(&input.name, &input.reason)?;
    check_reach(grants, &input.account_ids)?;
    let query = input
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty());
    parse_query("query", query)?;
    if let (Some(f), Some(t)) = (input.date_from, input.date_to)
        && f > t
    {
        return Err(Error::invalid("date_to", "is before the first day"));
    }
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO legal_holds (name, reason, kind, all_accounts, query, date_from, date_to, created_by)
         VALUES ($1, $2, 'scope', $3, $4, $5, $6, $7) RETURNING id",
        input.name.trim(),
        input.reason.trim(),
        input.account_ids.is_empty(),
        query,
        input.date_from,
        input.date_to,
        actor.username,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| name_taken(e, "a hold with this name exists"))?;
    insert_accounts(&mut tx, Owner::Hold(id), grants, &input.account_ids).await?;
    let held = count_held_by(&mut tx, grants, id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::HoldPlace)
            .target(Target::LegalHold(id))
            .details(json!({
                "name": input.name.trim(), "reason": input.reason.trim(),
                "accounts": input.account_ids, "query": query,
                "from": input.date_from.map(|d| d.to_string()),
                "to": input.date_to.map(|d| d.to_string()), "held_now": held,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Holds hand-picked messages (those `grants` lets the actor read) under a new hold `name`, or
/// adds them to the active hand-picked hold of that name. Returns the hold id and how many
/// messages were added.
pub async fn hold_messages(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    name: &str,
    reason: &str,
    ids: &[i64],
) -> Result<(i64, u64)> {
    check_name_reason(name, reason)?;
    let mut tx = pool.begin().await?;
    let existing = sqlx::query!(
        r#"SELECT id, kind, released_at IS NULL AS "active!" FROM legal_holds WHERE name = $1 FOR UPDATE"#,
        name.trim(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some(hold) if hold.active && hold.kind == "messages" => hold.id,
        Some(_) => {
            return Err(Error::invalid(
                "name",
                "a hold with this name exists and is not an active hand-picked hold",
            ));
        }
        None => {
            sqlx::query_scalar!(
                "INSERT INTO legal_holds (name, reason, kind, created_by)
                 VALUES ($1, $2, 'messages', $3) RETURNING id",
                name.trim(),
                reason.trim(),
                actor.username,
            )
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let added = sqlx::query!(
        "INSERT INTO legal_hold_messages (hold_id, message_id)
         SELECT $1, m.id FROM messages m
         WHERE m.id = ANY($2) AND ($3::bigint[] IS NULL OR m.account_id = ANY($3))
         ON CONFLICT DO NOTHING",
        id,
        ids,
        grants.as_ids() as Option<&[i64]>,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::HoldAddMessages)
            .target(Target::LegalHold(id))
            .details(
                json!({ "name": name.trim(), "reason": reason.trim(), "added": added, "ids": ids }),
            ),
    )
    .await?;
    tx.commit().await?;
    Ok((id, added))
}

/// Releases a hold; its mail becomes subject to retention and deletion again. Only a user
/// who may read all the mail the hold covers may release it (see [`Hold::releasable_by`]).
pub async fn release(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    id: i64,
    reason: &str,
) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required to release a hold"));
    }
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!("SELECT id FROM legal_holds WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut *tx)
        .await?;
    if !get(&mut *tx, grants, id).await?.releasable_by(grants) {
        return Err(Error::Forbidden);
    }
    let name = sqlx::query_scalar!(
        r#"UPDATE legal_holds SET released_at = now(), released_by = $2, release_reason = $3
           WHERE id = $1 AND released_at IS NULL RETURNING name::text AS "name!""#,
        id,
        actor.username,
        reason.trim(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(name) = name else {
        return Err(Error::Conflict(
            "this hold does not exist or is already released".into(),
        ));
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::HoldRelease)
            .target(Target::LegalHold(id))
            .details(json!({ "name": name, "reason": reason.trim() })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The active holds, ready to be ANDed (negated) into a delete.
pub struct HeldFilter {
    scopes: Vec<Scope>,
    stemmers: Stemmers,
}

impl HeldFilter {
    /// Reads the active holds. A deleting transaction calls [`HeldFilter::lock`] instead.
    pub async fn load(conn: &mut PgConnection) -> Result<Self> {
        let holds = fetch(&mut *conn, None, None, true).await?;
        let scopes = holds.iter().map(Hold::scope).collect::<Result<_>>()?;
        let stemmers = search::archive_stemmers(&mut *conn).await?;
        Ok(Self { scopes, stemmers })
    }

    /// Takes `legal_holds` in SHARE mode for the rest of the transaction, then reads the holds.
    pub async fn lock(tx: &mut PgConnection) -> Result<Self> {
        sqlx::query!("LOCK TABLE legal_holds IN SHARE MODE")
            .execute(&mut *tx)
            .await?;
        Self::load(tx).await
    }

    /// Appends a never-NULL condition, true when `messages m` is under an active hold.
    pub fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        qb.push(
            "(EXISTS (SELECT 1 FROM legal_hold_messages hm JOIN legal_holds h ON h.id = hm.hold_id
                      WHERE hm.message_id = m.id AND h.released_at IS NULL)",
        );
        for scope in &self.scopes {
            qb.push(" OR ");
            scope.push(qb, &self.stemmers);
        }
        qb.push(")");
    }
}

/// Which of `ids` are held right now (for badges).
pub async fn held_among(pool: &PgPool, ids: &[i64]) -> Result<HashSet<i64>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut conn = pool.acquire().await?;
    let filter = HeldFilter::load(&mut conn).await?;
    let mut qb = QueryBuilder::new("SELECT m.id FROM messages m WHERE m.id = ANY(");
    qb.push_bind(ids.to_vec()).push(") AND ");
    filter.push(&mut qb);
    let held: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok(held.into_iter().collect())
}

/// How many messages `grants` allows that the hold `id` covers now (released holds: what they
/// would cover).
pub async fn count_held_by(conn: &mut PgConnection, grants: &Grants, id: i64) -> Result<i64> {
    let hold = get(&mut *conn, &Grants::All, id).await?;
    if hold.kind == "messages" {
        return Ok(get(&mut *conn, grants, id).await.map_or(0, |h| h.picked));
    }
    let stemmers = search::archive_stemmers(&mut *conn).await?;
    let mut qb = QueryBuilder::new("SELECT count(*) FROM messages m WHERE ");
    grants.push_filter(&mut qb, "m.account_id");
    qb.push(" AND ");
    hold.scope()?.push(&mut qb, &stemmers);
    Ok(qb.build_query_scalar().fetch_one(conn).await?)
}

/// Whether any message of account `id` is held: removing the account would delete it.
pub async fn account_has_held_mail(conn: &mut PgConnection, account_id: i64) -> Result<bool> {
    let filter = HeldFilter::load(conn).await?;
    let mut qb = QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = ");
    qb.push_bind(account_id).push(" AND ");
    filter.push(&mut qb);
    qb.push(")");
    Ok(qb.build_query_scalar().fetch_one(conn).await?)
}
