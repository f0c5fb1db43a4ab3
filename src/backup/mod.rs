//! Backup and restore of the whole archive.
//!
//! A backup is a tar file (optionally encrypted, see [`crypt`]) holding, in this order:
//! - `manifest.json`: daygle and schema version, row counts, and the size and SHA-256 of
//!   every other part;
//! - `database.dump`: `pg_dump --format=custom` of the archive's database — mail, metadata,
//!   users, audit log — taken from an exported snapshot, so the counts in the manifest are
//!   exactly what the dump holds, while `serve` keeps ingesting;
//! - `keys/…`: the sealing, session and audit keys, only with `--include-keys`.
//!
//! Restore reads the file twice: first it checks every part against the manifest (and, when
//! encrypted, every chunk's authentication), then it restores. A damaged or altered file is
//! refused before anything is written.

pub mod create;
pub mod crypt;
mod keys;
pub mod pg;
pub mod restore;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use create::{BackupOptions, create_backup};
pub use restore::{RestoreOptions, restore_backup};

/// The format this version writes and reads.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const DUMP: &str = "database.dump";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub daygle_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The highest migration applied, and all of them.
    pub schema_version: i64,
    pub migrations: Vec<i64>,
    pub postgres_version: String,
    pub counts: Counts,
    pub keys_included: bool,
    pub parts: Vec<Part>,
}

/// Rows in the snapshot the dump was taken from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub accounts: i64,
    pub messages: i64,
    pub blobs: i64,
    pub blob_bytes: i64,
    pub attachments: i64,
    pub quarantine: i64,
    pub users: i64,
    pub audit_log: i64,
}

/// One file in the backup besides the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Counts every table the manifest lists, in the caller's snapshot.
pub(crate) async fn count(conn: &mut sqlx::PgConnection) -> crate::error::Result<Counts> {
    Ok(sqlx::query_as!(
        Counts,
        r#"SELECT (SELECT count(*) FROM accounts) AS "accounts!",
                  (SELECT count(*) FROM messages) AS "messages!",
                  (SELECT count(*) FROM blobs) AS "blobs!",
                  (SELECT coalesce(sum(size), 0)::bigint FROM blobs) AS "blob_bytes!",
                  (SELECT count(*) FROM attachments) AS "attachments!",
                  (SELECT count(*) FROM quarantine) AS "quarantine!",
                  (SELECT count(*) FROM users) AS "users!",
                  (SELECT count(*) FROM audit_log) AS "audit_log!""#,
    )
    .fetch_one(&mut *conn)
    .await?)
}
