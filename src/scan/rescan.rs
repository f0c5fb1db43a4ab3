//! Re-scanning archived mail: after a signature update (`daygle rescan`), and for mail that
//! was archived as `pending` while clamd was unreachable (the background backlog task).
//!
//! Newly detected mail gets the configured action, as if it had just arrived: quarantine
//! (moved out of the archive, sealed), flag (marked infected) or reject (removed, recorded).

use futures::future::join_all;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::facts::{MessageFacts, Source};
use super::stage::ScanStage;
use super::{Action, ScanStatus, Verdict, quarantine, rejections};
use crate::archive::blobs;
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// Messages scanned per round trip: big enough to keep clamd busy with overlapping scans,
/// small enough to bound memory (each is held decompressed while it is scanned).
const PAGE: i64 = 64;

/// Which archived messages to re-scan.
#[derive(Debug, Clone, Default)]
pub struct RescanFilter {
    /// Only mail archived at or after this instant.
    pub since: Option<OffsetDateTime>,
    pub account_id: Option<i64>,
    /// Only messages archived unscanned (`scan_status = 'pending'`).
    pub only_pending: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescanReport {
    pub scanned: u64,
    pub clean: u64,
    pub too_large: u64,
    /// Already known as infected and still detected.
    pub still_infected: u64,
    pub newly_infected: u64,
    pub quarantined: u64,
    pub flagged: u64,
    pub rejected: u64,
    /// Set when the run stopped because clamd gave no verdict; nothing after that point was
    /// changed, and no message was marked clean without a scan.
    pub stopped: Option<String>,
}

struct Row {
    id: i64,
    account_id: i64,
    folder: String,
    uidvalidity: Option<i64>,
    uid: Option<i64>,
    blob_sha256: Vec<u8>,
    scan_status: ScanStatus,
    virus_name: Option<String>,
}

/// How many messages the filter selects (for progress bars).
pub async fn count(pool: &PgPool, filter: &RescanFilter) -> Result<u64> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages
           WHERE ($1::timestamptz IS NULL OR archived_at >= $1)
             AND ($2::bigint IS NULL OR account_id = $2)
             AND (NOT $3 OR scan_status = 'pending')"#,
        filter.since,
        filter.account_id,
        filter.only_pending,
    )
    .fetch_one(pool)
    .await
    .map_err(|e| Error::context("count messages to re-scan", e))?;
    Ok(n.max(0) as u64)
}

/// Re-scans every selected message, oldest first; `progress` is called with the number
/// scanned so far after each page.
pub async fn run(
    pool: &PgPool,
    stage: &ScanStage,
    keys: &SealingKeys,
    filter: &RescanFilter,
    progress: impl Fn(u64),
) -> Result<RescanReport> {
    let mut report = RescanReport::default();
    let mut after = 0i64;
    loop {
        let rows = sqlx::query_as!(
            Row,
            r#"SELECT id, account_id, folder, uidvalidity, uid, blob_sha256,
                      scan_status AS "scan_status: ScanStatus", virus_name
               FROM messages
               WHERE ($1::timestamptz IS NULL OR archived_at >= $1)
                 AND ($2::bigint IS NULL OR account_id = $2)
                 AND (NOT $3 OR scan_status = 'pending')
                 AND id > $4
               ORDER BY id LIMIT $5"#,
            filter.since,
            filter.account_id,
            filter.only_pending,
            after,
            PAGE,
        )
        .fetch_all(pool)
        .await
        .map_err(|e| Error::context("list messages to re-scan", e))?;
        let Some(last) = rows.last() else {
            return Ok(report);
        };
        after = last.id;
        let raws = read_blobs(pool, &rows).await?;
        let verdicts = join_all(raws.iter().map(|raw| stage.scanner.scan(raw))).await;
        for ((row, raw), verdict) in rows.iter().zip(&raws).zip(verdicts) {
            if let Verdict::Error { reason } = &verdict {
                report.stopped = Some(reason.clone());
                return Ok(report);
            }
            report.scanned += 1;
            apply(pool, stage, keys, row, raw, &verdict, &mut report).await?;
        }
        progress(report.scanned);
    }
}

/// Records one message's new verdict, in its own transaction.
async fn apply(
    pool: &PgPool,
    stage: &ScanStage,
    keys: &SealingKeys,
    row: &Row,
    raw: &[u8],
    verdict: &Verdict,
    report: &mut RescanReport,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    match verdict {
        Verdict::Clean => {
            report.clean += 1;
            set_status(&mut tx, row.id, ScanStatus::Clean, None).await?;
        }
        Verdict::TooLarge { .. } => {
            report.too_large += 1;
            set_status(&mut tx, row.id, ScanStatus::TooLarge, None).await?;
        }
        Verdict::Infected { signature }
            if row.scan_status.is_infected() && row.virus_name.as_deref() == Some(signature) =>
        {
            report.still_infected += 1;
        }
        Verdict::Infected { signature } => {
            report.newly_infected += 1;
            let mut facts = MessageFacts::from_raw(raw);
            facts.account_id = Some(row.account_id);
            facts.folder = row.folder.clone();
            facts.uidvalidity = row.uidvalidity;
            facts.uid = row.uid;
            match stage.action {
                Action::Flag => {
                    report.flagged += 1;
                    set_status(&mut tx, row.id, ScanStatus::Infected, Some(signature)).await?;
                }
                Action::Quarantine => {
                    report.quarantined += 1;
                    quarantine::put(
                        &mut tx,
                        keys,
                        &facts,
                        raw,
                        signature,
                        Source::Rescan,
                        stage.quarantine_expiry_days,
                    )
                    .await?;
                    remove_from_archive(&mut tx, row).await?;
                }
                Action::Reject => {
                    report.rejected += 1;
                    rejections::record(&mut tx, &facts, signature, Source::Rescan).await?;
                    remove_from_archive(&mut tx, row).await?;
                }
            }
            tracing::warn!(message_id = row.id, account_id = row.account_id, virus = %signature,
                action = ?stage.action, "re-scan found a virus in archived mail");
        }
        Verdict::Error { .. } => {}
    }
    tx.commit().await?;
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    id: i64,
    status: ScanStatus,
    virus: Option<&str>,
) -> Result<()> {
    sqlx::query!(
        "UPDATE messages SET scan_status = $2, virus_name = $3 WHERE id = $1",
        id,
        status as ScanStatus,
        virus,
    )
    .execute(conn)
    .await
    .map_err(|e| Error::context("record a re-scan verdict", e))?;
    Ok(())
}

/// Deletes the archived copy, and its content when no other copy uses it, so the infected
/// bytes do not stay readable outside the quarantine.
async fn remove_from_archive(conn: &mut PgConnection, row: &Row) -> Result<()> {
    sqlx::query!("DELETE FROM messages WHERE id = $1", row.id)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::context("remove an infected message from the archive", e))?;
    // Its attachments too (when no other message has them): the infected bytes are likely there.
    let parts = blobs::parts_of(conn, std::slice::from_ref(&row.blob_sha256)).await?;
    sqlx::query!(
        "DELETE FROM blobs WHERE sha256 = $1 \
         AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_sha256 = $1)",
        row.blob_sha256,
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| Error::context("remove an infected message's content", e))?;
    blobs::collect_parts(conn, &parts).await?;
    Ok(())
}

/// The raw messages of `rows`, in order.
async fn read_blobs(pool: &PgPool, rows: &[Row]) -> Result<Vec<Vec<u8>>> {
    let mut conn = pool.acquire().await?;
    let mut raws = Vec::with_capacity(rows.len());
    for row in rows {
        let sha: [u8; 32] = row
            .blob_sha256
            .as_slice()
            .try_into()
            .map_err(|_| Error::Internal(format!("message {} has a malformed hash", row.id)))?;
        let raw = blobs::read_verified(&mut conn, &sha)
            .await
            .map_err(|e| Error::context("read an archived message", e))?
            .ok_or_else(|| {
                Error::Internal(format!(
                    "blob {} is missing or does not match its SHA-256",
                    hex::encode(&row.blob_sha256)
                ))
            })?;
        raws.push(raw);
    }
    Ok(raws)
}
