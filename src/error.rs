//! The crate's error type. Web rendering of it lives in `web::http::error`, so this file has no axum.
//! It depends on nothing of the crate: a module with an error type of its own (IMAP, sealed
//! secrets, the embedded cluster) converts it into [`Error::Part`] itself. Settings problems
//! are defined here, as they are what a form shows.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// Forbidden, with a reason the person can act on (e.g. the delegation ceiling).
    #[error("{0}")]
    Refused(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    /// Too much work is queued (e.g. password checks during a sign-in flood); try again later.
    #[error("the server is busy")]
    Busy,
    /// clamd gave no verdict: mail is held (never stored as clean) until it answers again.
    #[error("waiting for virus scanner: {0}")]
    ScannerUnavailable(String),
    /// Settings that do not validate (the configuration file, or a settings form): every
    /// problem at once.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The error of one of the crate's parts, kept whole (`Error::part_ref` finds it again).
    #[error(transparent)]
    Part(Box<dyn std::error::Error + Send + Sync>),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Wraps `source` with what was being attempted, e.g. "connect to PostgreSQL".
    pub fn context(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Context {
            context: format!("could not {context}"),
            source: Box::new(source),
        }
    }

    /// Keeps a part's own error (IMAP, secrets, cluster, configuration) as it is.
    pub fn part(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Part(Box::new(e))
    }

    /// The part's error of type `E` this error holds, if it is one.
    pub fn part_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Part(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The database could not be reached (down, restarting, connection cut), as opposed to a
    /// query it refused: worth retrying soon, and no fault of the account being synced.
    pub fn is_database_unavailable(&self) -> bool {
        match self {
            Error::Database(e) => sqlx_unavailable(e),
            Error::Context { source, .. } => source
                .downcast_ref::<sqlx::Error>()
                .is_some_and(sqlx_unavailable),
            _ => false,
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// One thing wrong with the configuration: which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// All problems found while loading or validating, printed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // Class 08 (connection exception) and 57P01..57P03 (shutdown, crash, not yet accepting).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Turns the violation of a named constraint into the error a user should see.
pub trait ResultExt<T> {
    /// `Err(make())` when the query broke `constraint` (e.g. `users_username_key`); any other
    /// database error passes through unchanged.
    fn on_constraint(self, constraint: &str, make: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn on_constraint(self, constraint: &str, make: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.constraint() == Some(constraint) => make(),
            _ => Error::Database(e),
        })
    }
}

/// The error and its causes, one per line: for logs.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}
