//! The path every message takes into the archive, whatever its source:
//! raw bytes → SHA-256 → parse → (scan) → one transaction per batch holding the blobs, the
//! message rows with their search vectors, the attachment rows, the ledger entries and the
//! source's new position. A crash anywhere replays the batch; the unique keys make the replay
//! add nothing.

use std::collections::HashSet;

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::archive::blobs::{self, NewBlob};
use crate::archive::ledger::{self, Entry};
use crate::archive::messages::{self, NewMessage};
use crate::error::{Error, Result};
use crate::ingest::parse;

/// One message as a source delivered it.
pub struct Incoming {
    /// The IMAP UID; None for imported mail.
    pub uid: Option<i64>,
    pub raw: Vec<u8>,
    pub internal_date: Option<OffsetDateTime>,
    pub flags: Vec<String>,
}

/// Where a batch goes and what else commits with it.
pub struct Batch {
    pub account_id: i64,
    pub folder: String,
    /// None for imported mail.
    pub uidvalidity: Option<i64>,
    pub messages: Vec<Incoming>,
    /// Messages of this batch's range that were skipped or failed.
    pub ledger: Vec<Entry>,
    /// The folder position after this batch (IMAP: highest UID covered).
    pub advance_to: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stored {
    /// Rows that were new (a replayed or duplicate message is not counted).
    pub inserted: u64,
    pub received: u64,
    pub raw_bytes: u64,
    pub new_blobs: u64,
}

/// Stores a batch in one transaction. Hashing, parsing and compression run off the async
/// threads; memory stays within the batch's own size.
pub async fn store(pool: &PgPool, zstd_level: i32, batch: Batch) -> Result<Stored> {
    let Batch {
        account_id,
        folder,
        uidvalidity,
        messages: incoming,
        ledger: entries,
        advance_to,
    } = batch;
    let raw_bytes: u64 = incoming.iter().map(|m| m.raw.len() as u64).sum();
    let received = incoming.len() as u64;
    let (incoming, hashes) = blocking(move || {
        let hashes: Vec<[u8; 32]> = incoming.iter().map(|m| blobs::sha256(&m.raw)).collect();
        (incoming, hashes)
    })
    .await?;
    let known: HashSet<[u8; 32]> = blobs::existing(pool, &hashes).await?.into_iter().collect();
    let folder_for_rows = folder.clone();
    let (rows, new_blobs) = blocking(move || {
        prepare(
            account_id,
            &folder_for_rows,
            uidvalidity,
            incoming,
            hashes,
            &known,
            zstd_level,
        )
    })
    .await??;
    // Scan seam: the ClamAV stage sets scan_status (and diverts infected mail) here, before
    // anything commits. Until then every row keeps the column default 'not_scanned'.
    let mut tx = pool.begin().await?;
    let blobs_added = blobs::put_many(&mut tx, &new_blobs).await?;
    drop(new_blobs);
    if let Some(uidvalidity) = uidvalidity {
        messages::rebind_to_new_uidvalidity(&mut tx, account_id, &folder, uidvalidity, &rows)
            .await?;
    }
    let inserted = messages::insert_many(&mut tx, &rows).await?;
    if let Some(uidvalidity) = uidvalidity {
        ledger::record(&mut tx, account_id, &folder, uidvalidity, &entries).await?;
        let archived: Vec<i64> = rows.iter().filter_map(|r| r.uid).collect();
        ledger::resolve(&mut tx, account_id, &folder, uidvalidity, &archived).await?;
        if let Some(last_uid) = advance_to {
            ledger::advance(&mut tx, account_id, &folder, uidvalidity, last_uid).await?;
        }
    }
    tx.commit().await?;
    Ok(Stored {
        inserted,
        received,
        raw_bytes,
        new_blobs: blobs_added,
    })
}

/// A row to insert and, for content not stored yet, its compressed blob.
type Prepared = (NewMessage, Option<NewBlob>);

/// Parses every message and compresses the contents not stored yet, using every core.
fn prepare(
    account_id: i64,
    folder: &str,
    uidvalidity: Option<i64>,
    incoming: Vec<Incoming>,
    hashes: Vec<[u8; 32]>,
    known: &HashSet<[u8; 32]>,
    zstd_level: i32,
) -> Result<(Vec<NewMessage>, Vec<NewBlob>)> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut seen = HashSet::new();
    // The first copy of each new content in the batch gets compressed; later copies reuse it.
    let compress_flags: Vec<bool> = hashes
        .iter()
        .map(|h| !known.contains(h) && seen.insert(*h))
        .collect();
    let items: Vec<(Incoming, [u8; 32], bool)> = incoming
        .into_iter()
        .zip(hashes)
        .zip(compress_flags)
        .map(|((m, h), c)| (m, h, c))
        .collect();
    let chunk = items.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Prepared>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(m, sha, compress)| {
                            let blob = if *compress {
                                Some(NewBlob {
                                    sha256: *sha,
                                    size: m.raw.len() as i64,
                                    zstd: blobs::compress(&m.raw, zstd_level)?,
                                })
                            } else {
                                None
                            };
                            let row = NewMessage {
                                account_id,
                                folder: folder.to_string(),
                                uidvalidity,
                                uid: m.uid,
                                sha256: *sha,
                                size: m.raw.len() as i64,
                                internal_date: m.internal_date,
                                flags: m.flags.clone(),
                                parsed: parse::parse(&m.raw),
                            };
                            Ok((row, blob))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("message preparation panicked".into())))
            })
            .collect()
    });
    let mut rows = Vec::with_capacity(items.len());
    let mut new_blobs = Vec::new();
    for part in results {
        for (row, blob) in part? {
            rows.push(row);
            new_blobs.extend(blob);
        }
    }
    Ok((rows, new_blobs))
}

async fn blocking<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    crate::telemetry::spawn_blocking_in_span(f)
        .await
        .map_err(|e| Error::Internal(format!("background task failed: {e}")))
}
