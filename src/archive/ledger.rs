//! The completeness ledger: per account folder, the sync position and how complete the archive
//! is; plus one entry per message that was skipped or failed, with the reason.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::error::Result;

/// Where a folder's sync stands.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct FolderState {
    pub folder: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: i64,
    pub server_messages: Option<i64>,
    pub deleted_from_server: i64,
    pub last_synced_at: Option<OffsetDateTime>,
}

pub async fn folder_state(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
) -> Result<Option<FolderState>> {
    Ok(sqlx::query_as!(
        FolderState,
        "SELECT folder, uidvalidity, last_uid, server_messages, deleted_from_server, last_synced_at
         FROM sync_state WHERE account_id = $1 AND folder = $2",
        account_id,
        folder,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Starts a folder over under a new UIDVALIDITY: UIDs of the old one mean nothing any more.
/// Its pending 'failed' entries go too (the re-scan fetches everything again).
pub async fn reset_folder(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO sync_state (account_id, folder, uidvalidity, last_uid)
         VALUES ($1, $2, $3, 0)
         ON CONFLICT (account_id, folder) DO UPDATE
         SET uidvalidity = $3, last_uid = 0, flags_modseq = NULL",
        account_id,
        folder,
        uidvalidity
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM ledger_entries WHERE account_id = $1 AND folder = $2 AND kind = 'failed'
           AND uidvalidity IS DISTINCT FROM $3",
        account_id,
        folder,
        uidvalidity
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves the folder's position to `last_uid`. Call it in the transaction that stores the
/// messages up to that UID, so the position never passes uncommitted mail.
pub async fn advance(
    tx: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    last_uid: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO sync_state (account_id, folder, uidvalidity, last_uid, last_synced_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (account_id, folder) DO UPDATE
           SET last_uid = greatest(sync_state.last_uid, $4), last_synced_at = now()
         WHERE sync_state.uidvalidity = $3",
        account_id,
        folder,
        uidvalidity,
        last_uid
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a delta source's position (Gmail historyId, Graph deltaLink). Call it in the
/// transaction that stores what the position covers. A listing in progress is finished by it.
pub async fn set_delta(
    tx: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    delta: &str,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO sync_state (account_id, folder, uidvalidity, delta, last_synced_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (account_id, folder) DO UPDATE
           SET delta = $4, delta_pending = NULL, last_synced_at = now()",
        account_id,
        folder,
        uidvalidity,
        delta
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The delta positions of a folder: (position, where a full listing in progress started).
pub async fn delta(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
) -> Result<(Option<String>, Option<String>)> {
    let row = sqlx::query!(
        "SELECT delta, delta_pending FROM sync_state WHERE account_id = $1 AND folder = $2",
        account_id,
        folder
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map_or((None, None), |r| (r.delta, r.delta_pending)))
}

/// One folder's delta position (Gmail historyId, Graph deltaLink), for the account page.
#[derive(Debug, Clone)]
pub struct DeltaPosition {
    pub folder: String,
    pub delta: Option<String>,
    pub delta_pending: Option<String>,
}

/// The delta positions of every folder of `account_id`, by folder.
pub async fn delta_positions(pool: &PgPool, account_id: i64) -> Result<Vec<DeltaPosition>> {
    Ok(sqlx::query_as!(
        DeltaPosition,
        "SELECT folder, delta, delta_pending FROM sync_state WHERE account_id = $1 ORDER BY folder",
        account_id
    )
    .fetch_all(pool)
    .await?)
}

/// Starts a full listing from `pending` (the position before listing), dropping the old
/// position: it expired, or there never was one.
pub async fn begin_listing(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    pending: &str,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO sync_state (account_id, folder, uidvalidity, delta_pending)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (account_id, folder) DO UPDATE SET delta = NULL, delta_pending = $4",
        account_id,
        folder,
        uidvalidity,
        pending
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records what the server reported for the folder at the start of this pass.
pub async fn note_server_count(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    messages: i64,
) -> Result<()> {
    sqlx::query!("INSERT INTO sync_state (account_id, folder, uidvalidity, server_messages, last_synced_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (account_id, folder) DO UPDATE SET server_messages = $4, last_synced_at = now()", account_id, folder, uidvalidity, messages)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn add_deleted(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    count: i64,
) -> Result<()> {
    sqlx::query!(
        "UPDATE sync_state SET deleted_from_server = deleted_from_server + $3
         WHERE account_id = $1 AND folder = $2",
        account_id,
        folder,
        count
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Skipped,
    Failed,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Skipped => "skipped",
            EntryKind::Failed => "failed",
        }
    }
}

/// A message that was not archived in this pass.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uid: i64,
    pub kind: EntryKind,
    pub reason: String,
    pub size: Option<i64>,
}

/// Records skipped/failed messages; a repeat failure counts another attempt.
pub async fn record(
    tx: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    entries: &[Entry],
) -> Result<()> {
    for e in entries {
        sqlx::query!(
            "INSERT INTO ledger_entries (account_id, folder, uidvalidity, uid, kind, reason, size)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (account_id, folder, uidvalidity, uid) DO UPDATE
               SET kind = $5, reason = $6, size = $7, attempts = ledger_entries.attempts + 1,
                   recorded_at = now()",
            account_id,
            folder,
            uidvalidity,
            e.uid,
            e.kind.as_str(),
            crate::archive::strip_nul(&e.reason),
            e.size
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Removes 'failed' entries for UIDs that are now archived.
pub async fn resolve(
    tx: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    uids: &[i64],
) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "DELETE FROM ledger_entries WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3
           AND kind = 'failed' AND uid = ANY($4::bigint[])",
        account_id,
        folder,
        uidvalidity,
        uids
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// UIDs that failed before and should be tried again.
pub async fn failed_uids(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT uid AS "uid!" FROM ledger_entries WHERE account_id = $1 AND folder = $2
           AND uidvalidity = $3 AND kind = 'failed' ORDER BY uid"#,
        account_id,
        folder,
        uidvalidity
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Which of `uids` were skipped for good (too large, gone): not fetched again.
pub async fn skipped_uids(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    uids: &[i64],
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT uid AS "uid!" FROM ledger_entries WHERE account_id = $1 AND folder = $2
           AND uidvalidity = $3 AND kind = 'skipped' AND uid = ANY($4::bigint[])"#,
        account_id,
        folder,
        uidvalidity,
        uids
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// One folder's line in the coverage report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FolderCoverage {
    pub account_id: i64,
    pub folder: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: i64,
    pub server_messages: Option<i64>,
    pub archived: i64,
    pub skipped: i64,
    pub failed: i64,
    /// Held in the quarantine (infected): safely kept, so accounted for.
    pub quarantined: i64,
    pub deleted_from_server: i64,
    pub last_synced_at: Option<OffsetDateTime>,
}

impl FolderCoverage {
    /// Share of the server's messages that are archived or accounted for (skipped), in percent.
    /// Messages accounted for: archived, deliberately skipped, or held in the quarantine.
    pub fn kept(&self) -> i64 {
        self.archived + self.skipped + self.quarantined
    }

    pub fn percent(&self) -> Option<f64> {
        let server = self.server_messages?;
        if server == 0 {
            return Some(100.0);
        }
        Some(((self.kept() as f64 / server as f64) * 100.0).min(100.0))
    }
}

/// An account's coverage over its folders: kept messages (archived, skipped, quarantined) per
/// message on the server, in percent; `None` before the first sync counted the server.
pub fn account_percent(folders: &[FolderCoverage]) -> Option<f64> {
    if folders.is_empty() {
        return None;
    }
    let server: i64 = folders
        .iter()
        .map(|f| f.server_messages)
        .sum::<Option<i64>>()?;
    let kept: i64 = folders.iter().map(FolderCoverage::kept).sum();
    Some(if server == 0 {
        100.0
    } else {
        ((kept as f64 / server as f64) * 100.0).min(100.0)
    })
}

/// The ledger of one account, folder by folder.
pub async fn coverage(pool: &PgPool, account_id: i64) -> Result<Vec<FolderCoverage>> {
    coverage_of(pool, Some(account_id)).await
}

/// The ledgers of every account in one query, by account id (for the accounts list).
pub async fn coverage_by_account(pool: &PgPool) -> Result<HashMap<i64, Vec<FolderCoverage>>> {
    let mut by_account: HashMap<i64, Vec<FolderCoverage>> = HashMap::new();
    for folder in coverage_of(pool, None).await? {
        by_account
            .entry(folder.account_id)
            .or_default()
            .push(folder);
    }
    Ok(by_account)
}

/// Folder lines of `account_id`, or of every account when `None`.
async fn coverage_of(pool: &PgPool, account_id: Option<i64>) -> Result<Vec<FolderCoverage>> {
    Ok(sqlx::query_as!(
        FolderCoverage,
        r#"SELECT s.account_id, s.folder, s.uidvalidity, s.last_uid, s.server_messages,
                s.deleted_from_server, s.last_synced_at,
                (SELECT count(*) FROM messages m WHERE m.account_id = s.account_id
                   AND m.folder = s.folder AND m.uidvalidity = s.uidvalidity) AS "archived!",
                (SELECT count(*) FROM ledger_entries l WHERE l.account_id = s.account_id
                   AND l.folder = s.folder AND l.uidvalidity = s.uidvalidity
                   AND l.kind = 'skipped') AS "skipped!",
                (SELECT count(*) FROM ledger_entries l WHERE l.account_id = s.account_id
                   AND l.folder = s.folder AND l.uidvalidity = s.uidvalidity
                   AND l.kind = 'failed') AS "failed!",
                (SELECT count(*) FROM quarantine q WHERE q.account_id = s.account_id
                   AND q.folder = s.folder AND q.uidvalidity = s.uidvalidity
                   AND q.released_at IS NULL) AS "quarantined!"
         FROM sync_state s WHERE ($1::bigint IS NULL OR s.account_id = $1)
         ORDER BY s.account_id, s.folder"#,
        account_id,
    )
    .fetch_all(pool)
    .await?)
}

/// The skipped and failed entries of an account, newest first.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub folder: String,
    pub uid: Option<i64>,
    pub kind: String,
    pub reason: String,
    pub size: Option<i64>,
    pub attempts: i32,
}

pub async fn entries(pool: &PgPool, account_id: i64) -> Result<Vec<LedgerRow>> {
    Ok(sqlx::query_as!(
        LedgerRow,
        "SELECT folder, uid, kind, reason, size, attempts FROM ledger_entries
         WHERE account_id = $1 ORDER BY recorded_at DESC, id DESC",
        account_id,
    )
    .fetch_all(pool)
    .await?)
}
