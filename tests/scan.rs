//! Virus scanning against a real clamd (EICAR-only database) and real PostgreSQL.

mod common;

mod scan {
    mod bench;
    mod import;
    mod ingest;
    mod quarantine;
    mod rescan;
    mod samples;
    mod scanner;
    mod stage;
    mod status;
    mod ui;
}
