//! Getting mail into the archive: sources (IMAP, files on disk), the pipeline every message
//! goes through, the scheduler, and worker status.

pub mod accounts;
pub mod files;
pub mod imap;
pub mod manage;
pub mod pipeline;
pub mod release;
pub mod scheduler;
pub mod workers;
