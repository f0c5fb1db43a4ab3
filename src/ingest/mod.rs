//! Getting mail into the archive: sources (IMAP, files on disk), the pipeline every message
//! goes through, the scheduler, and worker status.

pub mod accounts;
pub mod files;
pub mod imap;
pub mod leader;
pub mod leases;
pub mod manage;
pub mod pipeline;
pub mod processes;
pub mod release;
pub mod scheduler;
pub mod workers;
