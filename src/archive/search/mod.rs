//! Search: the one tokenizer, the search vectors and queries it builds, the query language
//! and the SQL it becomes.

pub mod query;
pub mod reindex;
pub mod sql;
pub mod tokenize;
pub mod tsquery;
pub mod vector;

pub use query::{ParseError, Query, Term, TermKind, TextField, parse};
pub use tokenize::Language;
pub use tsquery::Stemmers;
pub use vector::message_vector;

use crate::error::Result;

/// The stemming language of an archive account (English unless set otherwise).
pub async fn account_language<'e>(
    db: impl sqlx::PgExecutor<'e>,
    account_id: i64,
) -> Result<Language> {
    let name: Option<String> = sqlx::query_scalar!(
        "SELECT search_language FROM accounts WHERE id = $1",
        account_id
    )
    .fetch_optional(db)
    .await?;
    Ok(name
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or(Language::English))
}

/// Stemmers for every language the archive's accounts use: a query word matches its forms
/// in each of them.
pub async fn archive_stemmers<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<Stemmers> {
    let names = sqlx::query_scalar!("SELECT DISTINCT search_language FROM accounts")
        .fetch_all(db)
        .await?;
    let mut languages: Vec<Language> = names.iter().filter_map(|n| Language::parse(n)).collect();
    if languages.is_empty() {
        languages.push(Language::English);
    }
    Ok(Stemmers::new(&languages))
}
