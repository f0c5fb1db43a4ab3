//! The archive's lifetime against real PostgreSQL: retention preview and purge, legal holds,
//! manual deletion with four-eyes, erasure, blob collection racing ingest, crash safety.

mod common;

mod retention {
    mod blobs;
    mod cli;
    mod crash;
    mod deletion;
    mod purge;
    mod reach;
    mod stats;
    mod support;
}
