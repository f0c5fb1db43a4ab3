//! Deleting every result of a search — the one use case behind `daygle delete --query` and the
//! message list's "Delete all results". The preview pins the result set (the highest id found
//! and a fingerprint of every id), so the deletion removes exactly what the user confirmed:
//! newer mail that matches is left alone, and if anything else changed (a message moved out of
//! the search, was deleted or reindexed) the deletion refuses and asks for a fresh preview.
//! The deletion itself is a manual deletion request ([`requests::request`]): it fixes the ids,
//! skips held mail in SQL, runs in bounded batches (or waits for a second person's approval)
//! and is audited with the query.

use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool, QueryBuilder};
use time::OffsetDateTime;

use super::holds::HeldFilter;
use super::requests::{self, Kind, NewRequest, Requested};
use crate::archive::listing::{Filters, Listing, Sort};
use crate::archive::search::Query;
use crate::audit::Actor;
use crate::auth::Grants;
use crate::error::{Error, Result};

/// The most messages one search deletion may cover; beyond that, a retention policy is the tool.
pub const MAX_MESSAGES: i64 = 1_000_000;

/// A search, as the list page or the command line gives it.
pub struct Search<'a> {
    pub query: &'a Query,
    pub filters: &'a Filters,
    /// How the user wrote it (the search text and filters), for the audit log and the record.
    pub text: &'a str,
}

/// What the search's results are at one moment: a deletion with this pin deletes exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The highest matching id (results that arrive later have higher ids and are left out).
    pub max_id: i64,
    /// SHA-256 (hex, shortened) over every matching id up to `max_id`.
    pub fingerprint: String,
}

/// The confirmation's numbers.
#[derive(Debug, Clone, Default, FromRow)]
pub struct Summary {
    /// Results the actor may delete (held ones included: they are counted, then kept).
    pub messages: i64,
    /// Of those, under a legal hold: they stay.
    pub held: i64,
    /// Archived size of the ones that would go.
    pub bytes: i64,
    pub oldest: Option<OffsetDateTime>,
    pub newest: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct Preview {
    pub summary: Summary,
    pub pin: Pin,
}

impl Preview {
    /// How many would really be deleted.
    pub fn deletable(&self) -> i64 {
        self.summary.messages - self.summary.held
    }
}

/// The matching ids in id order (bounded by the actor's grants in the listing's SQL), at most
/// `max_id` when given. Fails when the search finds more than [`MAX_MESSAGES`].
async fn matching_ids(
    pool: &PgPool,
    grants: &Grants,
    search: &Search<'_>,
    max_id: Option<i64>,
) -> Result<Vec<i64>> {
    let listing = Listing {
        grants,
        query: search.query,
        filters: search.filters,
        sort: Sort::Newest,
    };
    let mut ids = listing.all_ids(pool, MAX_MESSAGES + 1).await?;
    if let Some(max) = max_id {
        ids.retain(|&id| id <= max);
    }
    if ids.len() as i64 > MAX_MESSAGES {
        return Err(Error::invalid(
            "q",
            format!(
                "this search finds more than {MAX_MESSAGES} messages; narrow it, or use a retention policy"
            ),
        ));
    }
    ids.sort_unstable();
    Ok(ids)
}

fn pin(ids: &[i64]) -> Pin {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.to_le_bytes());
    }
    Pin {
        max_id: ids.last().copied().unwrap_or(0),
        fingerprint: hex::encode(&h.finalize()[..16]),
    }
}

/// Counts, size and dates of what deleting the search's results would do now.
pub async fn preview(pool: &PgPool, grants: &Grants, search: &Search<'_>) -> Result<Preview> {
    let ids = matching_ids(pool, grants, search, None).await?;
    let summary = summarize(pool, grants, &ids).await?;
    Ok(Preview {
        summary,
        pin: pin(&ids),
    })
}

async fn summarize(pool: &PgPool, grants: &Grants, ids: &[i64]) -> Result<Summary> {
    let mut conn = pool.acquire().await?;
    let held = HeldFilter::load(&mut conn).await?;
    let mut qb = QueryBuilder::new("WITH s AS (SELECT m.size, m.sort_date, ");
    held.push(&mut qb);
    qb.push(" AS held FROM messages m WHERE m.id = ANY(")
        .push_bind(ids.to_vec())
        .push(") AND ");
    grants.push_filter(&mut qb, "m.account_id");
    qb.push(
        ") SELECT count(*) AS messages, count(*) FILTER (WHERE held) AS held,
                  coalesce(sum(size) FILTER (WHERE NOT held), 0)::bigint AS bytes,
                  min(sort_date) FILTER (WHERE NOT held) AS oldest,
                  max(sort_date) FILTER (WHERE NOT held) AS newest
           FROM s",
    );
    Ok(qb.build_query_as().fetch_one(&mut *conn).await?)
}

/// Deletes the search's results (with `retention.require_approval`: files the request). With
/// `confirmed`, only what that preview showed, and only if the results are still exactly those;
/// without (a script that said `--yes`), what the search finds now.
pub async fn delete(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    search: &Search<'_>,
    confirmed: Option<&Pin>,
    reason: &str,
    require_approval: bool,
) -> Result<Requested> {
    if search.query.is_empty() {
        return Err(Error::invalid(
            "q",
            "search for something first (to delete everything, use a retention policy)",
        ));
    }
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required"));
    }
    let ids = matching_ids(pool, grants, search, confirmed.map(|p| p.max_id)).await?;
    if let Some(expected) = confirmed
        && pin(&ids) != *expected
    {
        return Err(Error::Conflict(
            "the results of this search changed since you previewed them; preview again".into(),
        ));
    }
    requests::request(
        pool,
        actor,
        grants,
        &NewRequest {
            kind: Kind::Manual,
            ids: &ids,
            reason,
            query: Some(search.text),
            addresses: &[],
        },
        require_approval,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_changes_with_any_id() {
        let a = pin(&[1, 5, 9]);
        assert_eq!(a.max_id, 9);
        assert_eq!(a, pin(&[1, 5, 9]));
        assert_ne!(a, pin(&[1, 6, 9]));
        assert_ne!(a, pin(&[1, 9]));
        assert_eq!(pin(&[]).max_id, 0);
    }
}
