//! Which messages a policy or a hold covers, as SQL conditions on `messages m`. Policies,
//! holds, the preview and every delete path build their SQL from these few functions, so what
//! a preview shows and what a purge deletes cannot drift apart.

use sqlx::{Postgres, QueryBuilder};
use time::{Date, OffsetDateTime, Time};

use crate::archive::search::{self, Query, Stemmers};
use crate::error::{Error, Result};

/// The conditions of a scope; `None` means "no restriction".
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// None: every archive account.
    pub accounts: Option<Vec<i64>>,
    /// `*` matches any run of characters; case-sensitive like IMAP folder names.
    pub folder_pattern: Option<String>,
    pub query: Option<Query>,
    /// Inclusive days (UTC) on the message date (falling back to the archive date).
    pub from_day: Option<Date>,
    pub to_day: Option<Date>,
}

impl Scope {
    /// Appends `(…) IS TRUE`: a condition that is never NULL, so `NOT` of it is safe.
    pub fn push(&self, qb: &mut QueryBuilder<'_, Postgres>, stemmers: &Stemmers) {
        qb.push("(TRUE");
        if let Some(ids) = &self.accounts {
            qb.push(" AND m.account_id = ANY(")
                .push_bind(ids.clone())
                .push(")");
        }
        if let Some(pattern) = &self.folder_pattern {
            qb.push(" AND m.folder LIKE ")
                .push_bind(like_from_glob(pattern));
        }
        if let Some(day) = self.from_day {
            qb.push(" AND m.sort_date >= ").push_bind(start_of(day));
        }
        if let Some(day) = self.to_day {
            qb.push(" AND m.sort_date < ")
                .push_bind(start_of(day.next_day().unwrap_or(day)));
        }
        if let Some(query) = &self.query {
            search::sql::push_conditions(qb, query, stemmers);
        }
        qb.push(") IS TRUE");
    }
}

/// Parses an optional search-language query, naming the field on error.
pub fn parse_query(field: &str, text: Option<&str>) -> Result<Option<Query>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => search::parse(t)
            .map(Some)
            .map_err(|e| Error::invalid(field, e.to_string())),
    }
}

/// `Inbox/*` → `Inbox/%`, with LIKE's own wildcards in folder names taken literally.
pub fn like_from_glob(pattern: &str) -> String {
    pattern
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
        .replace('*', "%")
}

pub fn start_of(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_globs_keep_like_wildcards_literal() {
        assert_eq!(like_from_glob("Archive/*"), "Archive/%");
        assert_eq!(like_from_glob("50%_off"), "50\\%\\_off");
    }

    #[test]
    fn user_text_reaches_sql_only_as_bind_parameters() {
        let scope = Scope {
            accounts: Some(vec![1, 2]),
            folder_pattern: Some("x'; DROP TABLE messages; --".into()),
            query: Some(search::parse("from:o'brien").unwrap()),
            from_day: None,
            to_day: None,
        };
        let mut qb = QueryBuilder::new("SELECT 1 FROM messages m WHERE ");
        scope.push(&mut qb, &Stemmers::new(&[search::Language::English]));
        let sql = qb.sql().to_string();
        assert!(!sql.contains("DROP") && !sql.contains("o'brien"), "{sql}");
        assert!(sql.ends_with(") IS TRUE"), "{sql}");
    }
}
