//! Search: the query language and the SQL it becomes.

pub mod query;

pub use query::{ParseError, Query, Term, TermKind, TextField, parse};
