//! Requests an API token had refused by its rate limit, counted per token and minute. The
//! alert "API token keeps hitting its rate limit" reads them; nothing else does.

use sqlx::PgPool;

use crate::error::Result;

/// Counts one refused request of `token_id` in the current minute, and drops the token's
/// counters older than a day.
pub async fn record_refusal(pool: &PgPool, token_id: i64) -> Result<()> {
    sqlx::query!(
        "WITH pruned AS (
           DELETE FROM api_token_refusals
           WHERE token_id = $1 AND minute < now() - interval '1 day')
         INSERT INTO api_token_refusals (token_id, minute) VALUES ($1, date_trunc('minute', now()))
         ON CONFLICT (token_id, minute) DO UPDATE SET refused = api_token_refusals.refused + 1",
        token_id,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A token refused at least the asked number of times within the window (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub token_id: i64,
    pub token_name: String,
    pub username: String,
    pub refused: i64,
}

/// The tokens refused at least `at_least` times in the last `minutes` minutes (the current,
/// unfinished minute included), most refused first.
pub async fn refused_at_least(pool: &PgPool, at_least: i64, minutes: i64) -> Result<Vec<Refused>> {
    Ok(sqlx::query_as!(
        Refused,
        r#"SELECT t.id AS token_id, t.name AS token_name, u.username::text AS "username!",
                  sum(r.refused)::bigint AS "refused!"
           FROM api_token_refusals r
           JOIN api_tokens t ON t.id = r.token_id
           JOIN users u ON u.id = t.user_id
           WHERE r.minute > date_trunc('minute', now()) - make_interval(mins => $2::int)
           GROUP BY t.id, t.name, u.username
           HAVING sum(r.refused) >= greatest($1::bigint, 1)
           ORDER BY sum(r.refused) DESC, t.id"#,
        at_least,
        minutes as i32,
    )
    .fetch_all(pool)
    .await?)
}
