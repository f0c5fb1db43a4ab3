//! What retention would delete at one instant: the enabled policies, their cutoffs measured
//! from `as_of`, and the newest message id that existed then. The preview and the purge both
//! build their SQL from one `Plan`, so a purge with the preview's plan deletes exactly what the
//! preview showed (minus anything held in between).
//!
//! A plan belongs to the archive accounts its user may read: a user who manages retention for
//! some archives previews and purges only their mail (the scheduled purge reads all).
//!
//! Overlapping policies: the longest keep wins. A message is purgeable when at least one
//! enabled policy covering it has expired it and no enabled policy covering it still keeps it.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::policies::{self, Policy};
use super::scope::Scope;
use crate::archive::search::{self, Stemmers};
use crate::auth::Grants;
use crate::error::Result;

#[derive(Debug, Clone)]
struct Compiled {
    id: i64,
    scope: Scope,
    column: &'static str,
    cutoff: OffsetDateTime,
}

#[derive(Clone)]
pub struct Plan {
    pub as_of: OffsetDateTime,
    /// Messages archived after the plan was made are not in it.
    pub max_id: i64,
    /// The enabled policies that reach the plan's accounts, by name.
    pub policies: Vec<Policy>,
    /// Whose plan it is: only mail of these accounts is previewed or purged.
    pub grants: Grants,
    compiled: Vec<Compiled>,
    stemmers: Arc<Stemmers>,
}

impl Plan {
    /// The plan for now, over the accounts `grants` allows.
    pub async fn current(pool: &PgPool, grants: &Grants) -> Result<Self> {
        let max_id =
            sqlx::query_scalar!(r#"SELECT coalesce(max(id), 0) AS "max_id!" FROM messages"#)
                .fetch_one(pool)
                .await?;
        Self::at(pool, grants, OffsetDateTime::now_utc(), max_id).await
    }

    /// The plan a preview made at `as_of` with `max_id`, with the policies as they are now.
    pub async fn at(
        pool: &PgPool,
        grants: &Grants,
        as_of: OffsetDateTime,
        max_id: i64,
    ) -> Result<Self> {
        let mut conn = pool.acquire().await?;
        let as_of = as_of
            .replace_nanosecond(as_of.microsecond() * 1_000)
            .unwrap_or(as_of);
        let policies: Vec<Policy> = policies::list(&mut *conn, grants)
            .await?
            .into_iter()
            .filter(|p| p.enabled)
            .collect();
        let compiled = policies
            .iter()
            .map(|p| {
                Ok(Compiled {
                    id: p.id,
                    scope: p.scope()?,
                    column: p.basis().column(),
                    cutoff: p.cutoff(as_of),
                })
            })
            .collect::<Result<_>>()?;
        let stemmers = Arc::new(search::archive_stemmers(&mut *conn).await?);
        Ok(Self {
            as_of,
            max_id,
            policies,
            grants: grants.clone(),
            compiled,
            stemmers,
        })
    }

    /// Identifies the policies a preview was made with; a purge refuses a plan whose policies
    /// changed since (the confirmation would repeat numbers that no longer hold).
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for p in &self.policies {
            h.update(format!("{}|{}|{}\n", p.id, p.updated_at, p.account_ids.len()).as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }

    pub fn policy_name(&self, id: i64) -> &str {
        self.policies
            .iter()
            .find(|p| p.id == id)
            .map_or("(removed policy)", |p| p.name.as_str())
    }

    /// Appends the condition "retention would purge `messages m`" (holds not included).
    pub fn push_purgeable(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if self.compiled.is_empty() {
            qb.push("FALSE");
            return;
        }
        qb.push("m.id <= ").push_bind(self.max_id).push(" AND ");
        self.grants.push_filter(qb, "m.account_id");
        // Implied by the conditions below (a message is expired only before some cutoff), but
        // stated on its own so the planner can range-scan the date index instead of testing
        // every message of the archive.
        qb.push(" AND (");
        for (i, column) in ["m.sort_date", "m.archived_at"].into_iter().enumerate() {
            let latest = self
                .compiled
                .iter()
                .filter(|c| c.column == column)
                .map(|c| c.cutoff)
                .max();
            if let Some(cutoff) = latest {
                if i > 0 && self.compiled.iter().any(|c| c.column != column) {
                    qb.push(" OR ");
                }
                qb.push(format!("{column} < ")).push_bind(cutoff);
            }
        }
        qb.push(") AND (");
        for (i, c) in self.compiled.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            push_expired(qb, c, &self.stemmers);
        }
        qb.push(")");
        for c in &self.compiled {
            qb.push(" AND NOT (");
            c.scope.push(qb, &self.stemmers);
            qb.push(format!(" AND {} >= ", c.column))
                .push_bind(c.cutoff)
                .push(")");
        }
    }

    /// Appends the id of the first policy (by name) that expired `messages m`.
    pub fn push_policy_tag(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if self.compiled.is_empty() {
            qb.push("NULL");
            return;
        }
        qb.push("CASE");
        for c in &self.compiled {
            qb.push(" WHEN ");
            push_expired(qb, c, &self.stemmers);
            qb.push(" THEN ").push_bind(c.id);
        }
        qb.push(" END");
    }
}

fn push_expired(qb: &mut QueryBuilder<'_, Postgres>, c: &Compiled, stemmers: &Stemmers) {
    qb.push("(");
    c.scope.push(qb, stemmers);
    qb.push(format!(" AND {} < ", c.column))
        .push_bind(c.cutoff)
        .push(")");
}
