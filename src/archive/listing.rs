//! Listing and searching archived messages, newest first (or by relevance), a page at a time.
//!
//! Pages are keyset-paginated on (sort_date, id) — never OFFSET, so page 500 costs what page 1
//! does — and every query passes through the reader's [`Grants`].

use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use time::{Date, OffsetDateTime, Time};

use super::labels;
use super::search::{self, Query, Stemmers, sql};
use crate::auth::Grants;
use crate::error::Result;
use crate::scan::ScanStatus;

/// Up to this many matches, a search collects its matches first and sorts them.
const FEW_MATCHES: i64 = 1_000;

/// How many of the newest matches "best match" ranks.
pub const RANK_WINDOW: i64 = 2_000;

/// Filters from the list page's controls (the search box is [`Query`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub account_id: Option<i64>,
    pub folder: Option<String>,
    /// Inclusive first day and last day, in UTC.
    pub from_day: Option<Date>,
    pub to_day: Option<Date>,
    pub has_attachment: bool,
    pub verdict: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Newest,
    /// Best matches first; only meaningful with full-text terms.
    Relevance,
}

/// Where the next page starts: the last row of this page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cursor {
    Date { micros: i64, id: i64 },
    Rank { rank: f32, id: i64 },
}

impl Cursor {
    /// Compact text for a URL: `d<micros>_<id>` or `r<rank>_<id>`.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Date { micros, id } => format!("d{micros}_{id}"),
            Cursor::Rank { rank, id } => format!("r{rank}_{id}"),
        }
    }

    /// The cursor for a page link: [`Self::encode`] plus an HMAC-SHA-256 (under `key`, the
    /// session key) over it and `context` — the reader and the search it continues — so a link
    /// cannot be made up, edited, or carried over to another search or another person.
    pub fn sign(&self, key: &[u8; 32], context: &str) -> String {
        let text = self.encode();
        format!("{text}.{}", cursor_mac(key, context, &text))
    }

    /// The cursor of a link made by [`Self::sign`] with the same key and context; `None` for
    /// anything else.
    pub fn verify(signed: &str, key: &[u8; 32], context: &str) -> Option<Self> {
        let (text, mac) = signed.rsplit_once('.')?;
        let expected = cursor_mac(key, context, text);
        crate::auth::csrf::matches(&expected, mac)
            .then(|| Self::decode(text))
            .flatten()
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_at_checked(1)?;
        let (a, id) = rest.split_once('_')?;
        let id = id.parse().ok()?;
        match kind {
            "d" => Some(Cursor::Date {
                micros: a.parse().ok()?,
                id,
            }),
            "r" => Some(Cursor::Rank {
                rank: a.parse().ok().filter(|r: &f32| r.is_finite())?,
                id,
            }),
            _ => None,
        }
    }
}

fn cursor_mac(key: &[u8; 32], context: &str, text: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes a key of any length");
    for part in ["daygle-cursor-v1", context, text] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let tag = mac.finalize().into_bytes();
    base64::Engine::encode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, &tag[..16])
}

/// One row of the message list.
#[derive(Debug, Clone, FromRow)]
pub struct MessageSummary {
    pub id: i64,
    pub account_id: i64,
    pub account_name: String,
    pub folder: String,
    pub sort_date: OffsetDateTime,
    /// No Date header: `sort_date` is when the server received it or when it was archived.
    pub undated: bool,
    pub from_addr: Option<String>,
    pub to_addrs: Option<String>,
    pub subject: Option<String>,
    pub snippet: Option<String>,
    pub attachment_count: i32,
    pub scan_status: ScanStatus,
    pub virus_name: Option<String>,
    pub size: i64,
    pub rank: Option<f32>,
    /// Its labels as tags (see [`labels::of_messages`]), filled in after the page is read.
    #[sqlx(skip)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<MessageSummary>,
    pub next: Option<Cursor>,
}

/// What to list.
pub struct Listing<'a> {
    pub grants: &'a Grants,
    pub query: &'a Query,
    pub filters: &'a Filters,
    pub sort: Sort,
}

impl Listing<'_> {
    fn ranked(&self) -> bool {
        self.sort == Sort::Relevance && !self.query.is_empty()
    }

    /// `FROM … WHERE …` shared by the page query, the count and exports.
    fn push_from_where<'q>(&'q self, qb: &mut QueryBuilder<'q, Postgres>, stemmers: &Stemmers) {
        qb.push(" FROM messages m JOIN accounts a ON a.id = m.account_id WHERE ");
        self.grants.push_filter(qb, "m.account_id");
        sql::push_conditions(qb, self.query, stemmers);
        let f = self.filters;
        if let Some(account) = f.account_id {
            qb.push(" AND m.account_id = ").push_bind(account);
        }
        if let Some(folder) = &f.folder {
            qb.push(" AND m.folder = ").push_bind(folder.clone());
        }
        if let Some(day) = f.from_day {
            qb.push(" AND m.sort_date >= ")
                .push_bind(day.with_time(Time::MIDNIGHT).assume_utc());
        }
        if let Some(day) = f.to_day.and_then(|d| d.next_day()) {
            qb.push(" AND m.sort_date < ")
                .push_bind(day.with_time(Time::MIDNIGHT).assume_utc());
        }
        if f.has_attachment {
            qb.push(" AND m.has_attachments");
        }
        if let Some(verdict) = &f.verdict {
            qb.push(" AND m.scan_status = ").push_bind(verdict.clone());
        }
    }

    /// One page of at most `limit` rows after `cursor`.
    pub async fn page(&self, pool: &PgPool, cursor: Option<Cursor>, limit: i64) -> Result<Page> {
        let stemmers = search::archive_stemmers(pool).await?;
        let fence = !self.ranked() && self.few_matches(pool, &stemmers).await?;
        self.page_with(pool, cursor, limit, fence, &stemmers).await
    }

    /// [`page`](Self::page) for a caller that has already counted the matches with
    /// [`count`](Self::count), so the rare-match check needs no query of its own.
    pub async fn page_counted(
        &self,
        pool: &PgPool,
        cursor: Option<Cursor>,
        limit: i64,
        counted: i64,
    ) -> Result<Page> {
        let fence = !self.ranked() && sql::has_full_text(self.query) && counted <= FEW_MATCHES;
        let stemmers = search::archive_stemmers(pool).await?;
        self.page_with(pool, cursor, limit, fence, &stemmers).await
    }

    async fn page_with(
        &self,
        pool: &PgPool,
        cursor: Option<Cursor>,
        limit: i64,
        fence: bool,
        stemmers: &Stemmers,
    ) -> Result<Page> {
        let limit = limit.clamp(1, 500);
        let ranked = self.ranked();
        let mut qb = self.page_query("", cursor, limit, fence, stemmers);
        let mut items: Vec<MessageSummary> = qb.build_query_as().fetch_all(pool).await?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|last| match (ranked, last.rank) {
                (true, Some(rank)) => Cursor::Rank { rank, id: last.id },
                _ => Cursor::Date {
                    micros: micros(last.sort_date),
                    id: last.id,
                },
            })
        } else {
            None
        };
        let ids: Vec<i64> = items.iter().map(|m| m.id).collect();
        let mut tags = labels::of_messages(pool, &ids).await?;
        for m in &mut items {
            m.labels = tags.remove(&m.id).unwrap_or_default();
        }
        Ok(Page { items, next })
    }

    /// PostgreSQL's plan for [`page`](Self::page), executed (`EXPLAIN ANALYZE`): for the
    /// benchmark's checks that search shapes use the intended indexes.
    pub async fn explain_page(
        &self,
        pool: &PgPool,
        cursor: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let stemmers = search::archive_stemmers(pool).await?;
        let fence = !self.ranked() && self.few_matches(pool, &stemmers).await?;
        let mut qb = self.page_query(
            "EXPLAIN (ANALYZE, BUFFERS) ",
            cursor,
            limit,
            fence,
            &stemmers,
        );
        Ok(qb.build_query_scalar().fetch_all(pool).await?)
    }

    /// Whether a full-text search matches few messages. PostgreSQL cannot estimate how rare a
    /// word is, and for "newest first" it likes to walk the date index until it has a page of
    /// matches: fast for common words, a scan of most of the archive for rare ones. A capped
    /// count (cheap either way: it stops at the cap) tells the two apart.
    async fn few_matches(&self, pool: &PgPool, stemmers: &Stemmers) -> Result<bool> {
        if !sql::has_full_text(self.query) {
            return Ok(false);
        }
        Ok(self.count_with(pool, FEW_MATCHES, stemmers).await? <= FEW_MATCHES)
    }

    fn page_query(
        &self,
        prefix: &str,
        cursor: Option<Cursor>,
        limit: i64,
        fence: bool,
        stemmers: &Stemmers,
    ) -> QueryBuilder<'_, Postgres> {
        let mut qb = QueryBuilder::new(prefix);
        qb.push(
            "SELECT * FROM (SELECT m.id, m.account_id, a.name AS account_name, m.folder, \
             m.sort_date, (m.date IS NULL) AS undated, m.from_addr, m.to_addrs, m.subject, m.snippet, m.attachment_count, \
             m.scan_status, m.virus_name, m.size, ",
        );
        let ranked = self.ranked();
        if ranked {
            qb.push("ts_rank_cd(m.search, ");
            if !sql::push_rank_query(&mut qb, self.query, stemmers) {
                qb.push("''::tsquery");
            }
            qb.push(")::real AS rank");
        } else {
            qb.push("NULL::real AS rank");
        }
        self.push_from_where(&mut qb, stemmers);
        if let (false, Some(Cursor::Date { micros, id })) = (ranked, cursor) {
            qb.push(" AND (m.sort_date, m.id) < (")
                .push_bind(from_micros(micros))
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        if fence {
            // OFFSET 0 keeps the planner from walking the date index: it collects the few
            // matches through the full-text index and sorts them.
            qb.push(" OFFSET 0");
        }
        if ranked {
            // Ranking every match of a common word in a large archive is slow; best match
            // ranks the newest matches, which is what people looking for "the" mail want.
            qb.push(" ORDER BY m.sort_date DESC, m.id DESC LIMIT ")
                .push_bind(RANK_WINDOW);
        }
        qb.push(") page");
        if let (true, Some(Cursor::Rank { rank, id })) = (ranked, cursor) {
            qb.push(" WHERE (page.rank, page.id) < (")
                .push_bind(rank)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        if ranked {
            qb.push(" ORDER BY page.rank DESC, page.id DESC");
        } else {
            qb.push(" ORDER BY page.sort_date DESC, page.id DESC");
        }
        qb.push(" LIMIT ").push_bind(limit + 1);
        qb
    }

    /// The messages just newer and just older than `id` (at `sort_date`) in this listing's
    /// newest-first order: the message page's "previous" and "next" within a search. `None`
    /// both ways for a best-match listing, whose order a single message cannot place.
    pub async fn neighbours(
        &self,
        pool: &PgPool,
        id: i64,
        sort_date: OffsetDateTime,
    ) -> Result<(Option<i64>, Option<i64>)> {
        if self.ranked() {
            return Ok((None, None));
        }
        let stemmers = search::archive_stemmers(pool).await?;
        let mut found = [None, None];
        for (slot, (op, order)) in found.iter_mut().zip([(">", "ASC"), ("<", "DESC")]) {
            let mut qb = QueryBuilder::new("SELECT m.id");
            self.push_from_where(&mut qb, &stemmers);
            qb.push(format!(" AND (m.sort_date, m.id) {op} ("))
                .push_bind(sort_date)
                .push(", ")
                .push_bind(id)
                .push(format!(
                    ") ORDER BY m.sort_date {order}, m.id {order} LIMIT 1"
                ));
            *slot = qb.build_query_scalar().fetch_optional(pool).await?;
        }
        Ok((found[0], found[1]))
    }

    /// How many messages match, counting no further than `cap` (so a huge archive stays fast;
    /// the page shows "10,000+").
    pub async fn count(&self, pool: &PgPool, cap: i64) -> Result<i64> {
        let stemmers = search::archive_stemmers(pool).await?;
        self.count_with(pool, cap, &stemmers).await
    }

    async fn count_with(&self, pool: &PgPool, cap: i64, stemmers: &Stemmers) -> Result<i64> {
        let mut qb = QueryBuilder::new("SELECT count(*) FROM (SELECT 1");
        self.push_from_where(&mut qb, stemmers);
        qb.push(" LIMIT ").push_bind(cap + 1).push(") capped");
        Ok(qb.build_query_scalar().fetch_one(pool).await?)
    }

    /// Ids of every matching message, newest first, for exports (streamed by the caller in
    /// chunks of ids, so memory stays bounded by the id list).
    pub async fn all_ids(&self, pool: &PgPool, max: i64) -> Result<Vec<i64>> {
        let stemmers = search::archive_stemmers(pool).await?;
        let mut qb = QueryBuilder::new("SELECT m.id");
        self.push_from_where(&mut qb, &stemmers);
        qb.push(" ORDER BY m.sort_date DESC, m.id DESC LIMIT ")
            .push_bind(max);
        Ok(qb.build_query_scalar().fetch_all(pool).await?)
    }
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_ignored() {
        for c in [
            Cursor::Date {
                micros: 1_700_000_000_123_456,
                id: 42,
            },
            Cursor::Rank { rank: 0.25, id: 7 },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in [
            "", "x", "d", "d12", "dx_1", "r1_x", "rNaN_1", "rinf_2", "é1_2",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
