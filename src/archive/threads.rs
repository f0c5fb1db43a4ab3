//! Conversations: messages linked by Message-ID / In-Reply-To / References, in both directions,
//! and — for mail that carries no references — by subject (minus Re:/Fwd:) within a few weeks.

use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;

use super::reading::MessageRow;
use crate::auth::Grants;
use crate::error::Result;

/// Longest conversation shown; a runaway mailing-list thread is cut, not loaded whole.
const MAX_THREAD: i64 = 200;
const MAX_HOPS: usize = 20;
/// How far apart two messages with the same subject may be to count as one conversation.
const SUBJECT_WINDOW_DAYS: i32 = 30;

#[derive(Debug, Clone, FromRow)]
pub struct ThreadEntry {
    pub id: i64,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub sort_date: OffsetDateTime,
}

/// Walks Message-ID / In-Reply-To / References links outwards from `start`, one round (one
/// indexed query) per hop, never revisiting a message: it stops when a round finds nothing new,
/// after [`MAX_HOPS`] rounds, or once [`MAX_THREAD`] messages are found — so a dense mailing
/// list thread costs at most a few queries, not a recursion over every path through it.
async fn linked_by_references(
    pool: &PgPool,
    grants: &Grants,
    start: i64,
) -> Result<Vec<ThreadEntry>> {
    let mut visited: Vec<i64> = vec![start];
    let mut frontier: Vec<i64> = vec![start];
    for _ in 0..MAX_HOPS {
        let room = MAX_THREAD - visited.len() as i64;
        if frontier.is_empty() || room <= 0 {
            break;
        }
        let found: Vec<i64> = sqlx::query_scalar!(
            r#"WITH f AS (
                 SELECT message_id,
                        string_to_array(trim(coalesce(in_reply_to, '') || ' ' || coalesce(refs, '')), ' ') AS ref_ids
                 FROM messages WHERE id = ANY($1))
               SELECT m.id AS "id!" FROM messages m
               WHERE m.id <> ALL($2)
                 AND ($3::bigint[] IS NULL OR m.account_id = ANY($3))
                 AND (m.message_id IN (SELECT unnest(ref_ids) FROM f)
                      OR string_to_array(trim(coalesce(m.in_reply_to, '') || ' ' || coalesce(m.refs, '')), ' ')
                         && ARRAY(SELECT message_id FROM f WHERE message_id IS NOT NULL))
               ORDER BY m.id LIMIT $4"#,
            &frontier,
            &visited,
            grants.as_ids(),
            room,
        )
        .fetch_all(pool)
        .await?;
        visited.extend(&found);
        frontier = found;
    }
    Ok(sqlx::query_as!(
        ThreadEntry,
        r#"SELECT m.id, m.subject, m.from_addr, m.sort_date AS "sort_date!"
         FROM messages m WHERE m.id = ANY($1)
         ORDER BY m.sort_date, m.id"#,
        &visited,
    )
    .fetch_all(pool)
    .await?)
}

/// The conversation `message` belongs to, oldest first, including `message` itself. Only
/// messages `grants` allow are followed or returned.
pub async fn conversation(
    pool: &PgPool,
    grants: &Grants,
    message: &MessageRow,
) -> Result<Vec<ThreadEntry>> {
    let linked = linked_by_references(pool, grants, message.id).await?;
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
