//! Ingest against real PostgreSQL and a real Dovecot: IMAP sync, crash safety, delete from
//! server, import from disk, sealed credentials.

mod common;

mod ingest {
    mod cli;
    mod crash;
    mod delete;
    mod fleet;
    mod follow;
    mod gmail;
    mod gmail_imap;
    mod graph;
    mod import;
    mod malformed;
    mod secrets;
    mod serve;
    mod shared;
    mod supervise;
    mod support;
    mod sync;
    mod web;
    mod xoauth2;
}
