//! Virus scanning against a real clamd (EICAR-only database) and real PostgreSQL.

mod common;
/// The ingest suite's environment (database, keys, private Dovecot): shared, not copied.
#[allow(dead_code)]
#[path = "ingest/support.rs"]
mod ingest_support;

mod scan {
    mod bench;
    mod import;
    mod ingest;
    mod quarantine;
    mod release;
    mod rescan;
    mod samples;
    mod scanner;
    mod stage;
    mod status;
    mod ui;
}
