//! Proving and recovering the archive: `verify archive`, backup and restore, and exports a
//! third party can check — run as an operator runs them, against real PostgreSQL.

mod common;
#[allow(dead_code)]
#[path = "ingest/support.rs"]
mod ingest_support;

mod trust {
    mod backup;
    mod export;
    mod pitr;
    mod reindex;
    mod support;
    mod verify;
}
