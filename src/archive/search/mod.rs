//! Search: the query language and the SQL it becomes.

pub mod query;
pub mod sql;

pub use query::{ParseError, Query, Term, TermKind, TextField, parse};
