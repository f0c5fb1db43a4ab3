//! Conversations: messages linked by Message-ID / In-Reply-To / References, in both directions,
//! and — for mail that carries no references — by subject (minus Re:/Fwd:) within a few weeks.

use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;

use super::reading::MessageRow;
use crate::auth::Grants;
use crate::error::Result;

/// Longest conversation shown; a runaway mailing-list thread is cut, not loaded whole.
const MAX_THREAD: i64 = 200;
const MAX_HOPS: i32 = 20;
/// How far apart two messages with the same subject may be to count as one conversation.
const SUBJECT_WINDOW_DAYS: i32 = 30;

#[derive(Debug, Clone, FromRow)]
pub struct ThreadEntry {
    pub id: i64,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub sort_date: OffsetDateTime,
}

/// The conversation `message` belongs to, oldest first, including `message` itself. Only
/// messages `grants` allow are followed or returned.
pub async fn conversation(
    pool: &PgPool,
    grants: &Grants,
    message: &MessageRow,
) -> Result<Vec<ThreadEntry>> {
    let linked: Vec<ThreadEntry> = sqlx::query_as!(
        ThreadEntry,
        r#"WITH RECURSIVE conv(id, message_id, ref_ids, hops) AS (
             SELECT m.id, m.message_id,
                    string_to_array(trim(coalesce(m.in_reply_to, '') || ' ' || coalesce(m.refs, '')), ' '),
                    0
             FROM messages m WHERE m.id = $1
           UNION
             SELECT m.id, m.message_id,
                    string_to_array(trim(coalesce(m.in_reply_to, '') || ' ' || coalesce(m.refs, '')), ' '),
                    c.hops + 1
             FROM conv c JOIN messages m
               ON m.message_id = ANY(c.ref_ids)
               OR string_to_array(trim(coalesce(m.in_reply_to, '') || ' ' || coalesce(m.refs, '')), ' ')
                  @> ARRAY[c.message_id]
             WHERE c.hops < $3 AND ($2::bigint[] IS NULL OR m.account_id = ANY($2))
         )
         SELECT m.id, m.subject, m.from_addr, m.sort_date AS "sort_date!"
         FROM messages m WHERE m.id IN (SELECT id FROM conv)
         ORDER BY m.sort_date, m.id LIMIT $4"#,
        message.id,
        grants.as_ids(),
        MAX_HOPS,
        MAX_THREAD,
    )
    .fetch_all(pool)
    .await?;
    if linked.len() > 1 {
        return Ok(linked);
    }
    Ok(sqlx::query_as!(
        ThreadEntry,
        r#"SELECT m.id, m.subject, m.from_addr, m.sort_date AS "sort_date!"
         FROM messages m, messages me
         WHERE me.id = $1 AND thread_subject(me.subject) <> ''
           AND thread_subject(m.subject) = thread_subject(me.subject)
           AND m.sort_date BETWEEN me.sort_date - make_interval(days => $3)
                               AND me.sort_date + make_interval(days => $3)
           AND ($2::bigint[] IS NULL OR m.account_id = ANY($2))
         ORDER BY m.sort_date, m.id LIMIT $4"#,
        message.id,
        grants.as_ids(),
        SUBJECT_WINDOW_DAYS,
        MAX_THREAD,
    )
    .fetch_all(pool)
    .await
    .map(|rows: Vec<ThreadEntry>| if rows.is_empty() { linked } else { rows })?)
}
