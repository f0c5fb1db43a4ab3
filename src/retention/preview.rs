//! What a purge with a given [`Plan`] would delete: counts, bytes, dates and a sample, per
//! policy and account, built from the same conditions the purge's DELETE uses.

use sqlx::{FromRow, PgPool, QueryBuilder};
use time::OffsetDateTime;

use super::holds::HeldFilter;
use super::plan::Plan;
use crate::error::Result;

#[derive(Debug, Clone, FromRow)]
pub struct PreviewRow {
    pub policy_id: i64,
    #[sqlx(skip)]
    pub policy_name: String,
    pub account_id: i64,
    pub account_name: String,
    /// Messages that would be deleted (held ones excluded).
    pub messages: i64,
    /// Their archived size.
    pub bytes: i64,
    /// Storage freed: blobs no remaining message references (a shared blob frees nothing).
    pub freed_bytes: i64,
    pub oldest: Option<OffsetDateTime>,
    pub newest: Option<OffsetDateTime>,
    /// Past their policy, but under a legal hold: they stay.
    pub held: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct SampleMessage {
    pub id: i64,
    pub account_name: String,
    pub folder: String,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub sort_date: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct Preview {
    pub as_of: OffsetDateTime,
    pub max_id: i64,
    pub fingerprint: String,
    pub rows: Vec<PreviewRow>,
    pub sample: Vec<SampleMessage>,
}

impl Preview {
    pub fn messages(&self) -> i64 {
        self.rows.iter().map(|r| r.messages).sum()
    }
    pub fn bytes(&self) -> i64 {
        self.rows.iter().map(|r| r.bytes).sum()
    }
    pub fn freed_bytes(&self) -> i64 {
        self.rows.iter().map(|r| r.freed_bytes).sum()
    }
    pub fn held(&self) -> i64 {
        self.rows.iter().map(|r| r.held).sum()
    }
}

pub async fn preview(pool: &PgPool, plan: &Plan, sample_size: i64) -> Result<Preview> {
    let mut conn = pool.acquire().await?;
    let held = HeldFilter::load(&mut conn).await?;
    let mut qb = summary_query("", plan, &held);
    let mut rows: Vec<PreviewRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    for r in &mut rows {
        r.policy_name = plan.policy_name(r.policy_id).to_string();
    }
    rows.sort_by(|a, b| {
        (a.policy_name.as_str(), a.account_name.as_str())
            .cmp(&(b.policy_name.as_str(), b.account_name.as_str()))
    });
    let mut qb = QueryBuilder::new(
        "SELECT m.id, a.name::text AS account_name, m.folder, m.subject, m.from_addr, m.sort_date
         FROM messages m JOIN accounts a ON a.id = m.account_id WHERE ",
    );
    plan.push_purgeable(&mut qb);
    qb.push(" AND NOT ");
    held.push(&mut qb);
    qb.push(" ORDER BY m.sort_date, m.id LIMIT ")
        .push_bind(sample_size);
    let sample = qb.build_query_as().fetch_all(&mut *conn).await?;
    Ok(Preview {
        as_of: plan.as_of,
        max_id: plan.max_id,
        fingerprint: plan.fingerprint(),
        rows,
        sample,
    })
}

/// The preview's per-policy-and-account summary, after `prefix` (empty, or `EXPLAIN …`).
fn summary_query<'a>(
    prefix: &str,
    plan: &'a Plan,
    held: &'a HeldFilter,
) -> QueryBuilder<'a, sqlx::Postgres> {
    // One pass over the purgeable messages, then only aggregates: per (policy, account) the
    // counts, and per blob (only among messages that would go) how many copies go and which
    // message "owns" the freed bytes (the lowest id; every copy has the blob's size, the raw
    // length). A blob frees its size only when no other message uses it: one index probe per
    // blob. The two small aggregates are joined last,
    // so no join ever pairs two large unindexed intermediates.
    let mut qb = QueryBuilder::new(prefix);
    qb.push(
        "WITH s AS MATERIALIZED (
             SELECT m.id, m.account_id, m.blob_sha256, m.size, m.sort_date, ",
    );
    plan.push_policy_tag(&mut qb);
    qb.push("::bigint AS policy_id, ");
    held.push(&mut qb);
    qb.push(" AS held FROM messages m WHERE ");
    plan.push_purgeable(&mut qb);
    qb.push(
        "),
         counts AS (
             SELECT s.policy_id, s.account_id,
                    count(*) FILTER (WHERE NOT s.held) AS messages,
                    coalesce(sum(s.size) FILTER (WHERE NOT s.held), 0)::bigint AS bytes,
                    min(s.sort_date) FILTER (WHERE NOT s.held) AS oldest,
                    max(s.sort_date) FILTER (WHERE NOT s.held) AS newest,
                    count(*) FILTER (WHERE s.held) AS held
             FROM s GROUP BY s.policy_id, s.account_id),
         per_blob AS (
             SELECT s.blob_sha256, count(*) AS n,
                    min(ARRAY[s.id, coalesce(s.policy_id, 0), s.account_id, s.size]) AS owner
             FROM s WHERE NOT s.held GROUP BY s.blob_sha256),
         freed AS (
             SELECT pb.owner[2] AS policy_id, pb.owner[3] AS account_id,
                    sum(pb.owner[4])::bigint AS freed_bytes
             FROM per_blob pb
             WHERE NOT EXISTS (
                 SELECT 1 FROM messages o WHERE o.blob_sha256 = pb.blob_sha256
                 OFFSET pb.n)
             GROUP BY 1, 2)
         SELECT c.policy_id, c.account_id, a.name::text AS account_name, c.messages, c.bytes,
                coalesce(f.freed_bytes, 0)::bigint AS freed_bytes, c.oldest, c.newest, c.held
         FROM counts c JOIN accounts a ON a.id = c.account_id
         LEFT JOIN freed f ON f.policy_id = coalesce(c.policy_id, 0) AND f.account_id = c.account_id
         ORDER BY c.policy_id, a.name",
    );
    qb
}

/// The plan PostgreSQL runs for the preview's summary, with timings (for the benchmark).
pub async fn explain(pool: &PgPool, plan: &Plan) -> Result<Vec<String>> {
    let mut conn = pool.acquire().await?;
    let held = HeldFilter::load(&mut conn).await?;
    let mut qb = summary_query("EXPLAIN (ANALYZE, BUFFERS) ", plan, &held);
    Ok(qb.build_query_scalar().fetch_all(&mut *conn).await?)
}

/// Every message id the purge with `plan` would delete now, in id order.
pub async fn matching_ids(pool: &PgPool, plan: &Plan) -> Result<Vec<i64>> {
    let mut conn = pool.acquire().await?;
    let held = HeldFilter::load(&mut conn).await?;
    let mut qb = QueryBuilder::new("SELECT m.id FROM messages m WHERE ");
    plan.push_purgeable(&mut qb);
    qb.push(" AND NOT ");
    held.push(&mut qb);
    qb.push(" ORDER BY m.id");
    Ok(qb.build_query_scalar().fetch_all(&mut *conn).await?)
}
