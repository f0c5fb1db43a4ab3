//! An archive's folders with their message counts: what `/archives/{id}` lists, each folder a
//! way into the search.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::auth::Grants;
use crate::error::Result;

/// One archived folder of an account.
#[derive(Debug, Clone)]
pub struct FolderCount {
    pub folder: String,
    pub messages: i64,
    /// The newest message's sort date (its Date header, else when it arrived).
    pub newest: Option<OffsetDateTime>,
}

/// The folders of `account_id` that hold archived mail, by name; none when `grants` does not
/// allow the account (checked in the query, like every read of mail).
pub async fn of_account(
    pool: &PgPool,
    grants: &Grants,
    account_id: i64,
) -> Result<Vec<FolderCount>> {
    Ok(sqlx::query_as!(
        FolderCount,
        r#"SELECT folder, count(*) AS "messages!", max(sort_date) AS newest
           FROM messages
           WHERE account_id = $1 AND ($2::bigint[] IS NULL OR account_id = ANY($2))
           GROUP BY folder ORDER BY folder"#,
        account_id,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}
