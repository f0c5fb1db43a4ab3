//! Getting mail into the archive: sources (IMAP, Gmail API, Microsoft Graph, files on disk), the pipeline every message
//! goes through, the scheduler, and worker status.

pub mod accounts;
pub mod files;
pub mod gmail;
pub mod graph;
pub mod imap;
pub mod leader;
pub mod leases;
pub mod manage;
pub mod oauth;
pub mod pipeline;
pub mod processes;
pub mod release;
pub mod scheduler;
pub mod source;
pub mod workers;
