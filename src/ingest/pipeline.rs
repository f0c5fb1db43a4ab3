//! The path every message takes into the archive, whatever its source:
//! raw bytes → SHA-256 → parse → (scan) → one transaction per batch holding the blobs, the
//! message rows with their search vectors, the attachment rows, the ledger entries and the
//! source's new position. A crash anywhere replays the batch; the unique keys make the replay
//! add nothing.

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::archive::attachment_text;
use crate::archive::blobs::{self, NewBlob};
use crate::archive::labels::{self, LabelName};
use crate::archive::ledger::{self, Entry};
use crate::archive::messages::{self, NewMessage};
use crate::archive::parse;
use crate::archive::search::{self, Language};
use crate::error::{Error, Result};
use crate::scan::{
    Disposition, MessageFacts, ScanStage, ScanStatus, Screened, Source, quarantine, rejections,
};
use crate::secrets::SealingKeys;

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
    /// Infected messages put in the quarantine / refused (`clamav.action`) instead of stored.
    pub quarantined: u64,
    pub rejected: u64,
}

impl Stored {
    pub fn plus(self, o: Stored) -> Stored {
        Stored {
            inserted: self.inserted + o.inserted,
            received: self.received + o.received,
            raw_bytes: self.raw_bytes + o.raw_bytes,
            new_blobs: self.new_blobs + o.new_blobs,
            quarantined: self.quarantined + o.quarantined,
            rejected: self.rejected + o.rejected,
        }
    }
}

/// Stores a batch: the message rows, ledger entries and position in one transaction. Hashing,
/// parsing and compression run off the async threads; memory stays within the batch's size.
///
/// Without `scan` every row is `not_scanned` (scanning off).
pub async fn store(pool: &PgPool, zstd_level: i32, batch: Batch) -> Result<Stored> {
    store_scanned(pool, zstd_level, batch, None).await
}

/// Scanning for [`store_ordered`]: the stage and the key that seals quarantined mail.
pub type Scan<'a> = Option<(&'a ScanStage, &'a SealingKeys)>;

/// [`store`], scanning the batch first when `scan` is given.
pub async fn store_scanned(
    pool: &PgPool,
    zstd_level: i32,
    batch: Batch,
    scan: Scan<'_>,
) -> Result<Stored> {
    store_ordered(
        pool,
        zstd_level,
        batch,
        scan,
        async { Ok(()) },
        SourceWrites::default(),
    )
    .await
    .map(|(stored, ())| stored)
}

/// Like [`store`] with the source's `writes`, but waits for `before_commit` (e.g. the previous
/// batch of the same folder) after the rows are written and before the position moves and the
/// transaction commits, so batches can be written concurrently yet commit in order. An error
/// from `before_commit` rolls this batch back.
///
/// New blobs commit first, in their own short transaction: they are content-addressed, so a
/// blob whose message row never commits is harmless (the replay references it), and two
/// concurrent batches holding the same new content never wait on each other's row locks.
///
/// Scanning (when `scan` is given): infected mail follows `clamav.action` (quarantine and
/// rejection rows commit in the same transaction as the position). When clamd gives no
/// verdict for a message, the messages before it are stored, the position stops just before
/// it, and the call returns `Error::ScannerUnavailable` after committing them — nothing is
/// ever stored as clean unscanned, and a later batch waiting on this one rolls back.
pub async fn store_ordered<T>(
    pool: &PgPool,
    zstd_level: i32,
    batch: Batch,
    scan: Scan<'_>,
    before_commit: impl Future<Output = Result<T>>,
    writes: SourceWrites,
) -> Result<(Stored, T)> {
    store_with(pool, zstd_level, batch, scan, before_commit, writes).await
}

/// What a source commits with a batch besides the messages: the labels of the messages it
/// carries and of ones stored before (Gmail API; Gmail IMAP), and its new delta position.
#[derive(Debug, Default)]
pub struct SourceWrites {
    /// Every label of these messages (by UID), replacing what was stored.
    pub labels: Vec<(i64, Vec<String>)>,
    /// Names of labels seen on these messages, added to the account's (none removed).
    pub label_names: Vec<LabelName>,
    /// Label changes of messages stored before: (UID, added, removed).
    pub label_changes: Vec<(i64, Vec<String>, Vec<String>)>,
    /// The folder's delta position (Gmail historyId) after this batch.
    pub delta: Option<String>,
}

/// [`store_scanned`] for a delta source: `writes` commit in the same transaction as the rows,
/// and the delta position does not move when the batch stops before unscanned mail.
pub async fn store_source(
    pool: &PgPool,
    zstd_level: i32,
    batch: Batch,
    scan: Scan<'_>,
    writes: SourceWrites,
) -> Result<Stored> {
    store_with(pool, zstd_level, batch, scan, async { Ok(()) }, writes)
        .await
        .map(|(stored, ())| stored)
}

async fn store_with<T>(
    pool: &PgPool,
    zstd_level: i32,
    batch: Batch,
    scan: Scan<'_>,
    before_commit: impl Future<Output = Result<T>>,
    writes: SourceWrites,
) -> Result<(Stored, T)> {
    let Batch {
        account_id,
        folder,
        uidvalidity,
        messages: mut incoming,
        ledger: mut entries,
        mut advance_to,
    } = batch;
    // UID order, so "stop before the first unscanned message" is a position.
    incoming.sort_by_key(|m| m.uid);
    let mut screened = match scan {
        Some((stage, _)) => {
            let raws: Vec<&[u8]> = incoming.iter().map(|m| m.raw.as_slice()).collect();
            stage.screen(&raws).await
        }
        None => Screened::unscanned(incoming.len()),
    };
    let mut held = None;
    if let Some((index, reason)) = screened.held.take() {
        let held_uid = incoming[index].uid;
        let held_count = (incoming.len() - index) as u64;
        incoming.truncate(index);
        if let Some(h) = held_uid {
            entries.retain(|e| e.uid < h);
            advance_to = advance_to.map(|a| a.min(h - 1));
        }
        held = Some((reason, held_count));
    }
    let mut statuses = Vec::with_capacity(incoming.len());
    let mut kept = Vec::with_capacity(incoming.len());
    let mut diverted = Vec::new();
    for (m, d) in incoming.into_iter().zip(screened.dispositions) {
        match d {
            Disposition::Store { status, virus_name } => {
                statuses.push((status, virus_name));
                kept.push(m);
            }
            other => diverted.push((m, other)),
        }
    }
    let incoming = kept;
    let raw_bytes: u64 = incoming.iter().map(|m| m.raw.len() as u64).sum();
    let received = (incoming.len() + diverted.len()) as u64;
    let (incoming, hashes) = blocking(move || {
        let hashes: Vec<[u8; 32]> = incoming.iter().map(|m| blobs::sha256(&m.raw)).collect();
        (incoming, hashes)
    })
    .await?;
    let known: HashSet<[u8; 32]> = blobs::existing(pool, &hashes).await?.into_iter().collect();
    let place = Place {
        account_id,
        folder: folder.clone(),
        uidvalidity,
        language: search::account_language(pool, account_id).await?,
    };
    let (mut rows, new_blobs, known_raw) =
        blocking(move || prepare(&place, incoming, hashes, &known, zstd_level)).await??;
    for (row, (status, virus)) in rows.iter_mut().zip(statuses) {
        row.scan_status = status;
        row.virus_name = virus;
    }
    let blobs_added = if new_blobs.is_empty() {
        0
    } else {
        let mut tx = pool.begin().await?;
        let added = blobs::put_many(&mut tx, &new_blobs).await?;
        tx.commit().await?;
        added
    };
    let mut tx = pool.begin().await?;
    let hashes: Vec<[u8; 32]> = rows.iter().map(|r| r.sha256).collect();
    restore_collected(&mut tx, &hashes, &new_blobs, known_raw, zstd_level).await?;
    drop(new_blobs);
    if let Some(uidvalidity) = uidvalidity {
        let place = (account_id, folder.as_str(), uidvalidity);
        rebind(&mut tx, place, &rows, &mut diverted).await?;
    }
    let (quarantined, rejected) =
        divert(&mut tx, scan, account_id, &folder, uidvalidity, &diverted).await?;
    let inserted = messages::insert_many(&mut tx, &rows).await?;
    if let Some(uidvalidity) = uidvalidity {
        ledger::record(&mut tx, account_id, &folder, uidvalidity, &entries).await?;
        // Quarantined and refused messages are dealt with too: their failures are resolved.
        let archived: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.uid)
            .chain(diverted.iter().filter_map(|(m, _)| m.uid))
            .collect();
        ledger::resolve(&mut tx, account_id, &folder, uidvalidity, &archived).await?;
    }
    let earlier = before_commit.await?;
    if let (Some(uidvalidity), Some(last_uid)) = (uidvalidity, advance_to) {
        ledger::advance(&mut tx, account_id, &folder, uidvalidity, last_uid).await?;
    }
    if let Some(uidvalidity) = uidvalidity {
        let place = messages::Place {
            account_id,
            folder: &folder,
            uidvalidity,
        };
        labels::add(&mut tx, account_id, &writes.label_names).await?;
        messages::set_labels(&mut tx, place, &writes.labels).await?;
        messages::change_labels(&mut tx, place, &writes.label_changes).await?;
        // Mail held for a rescan is not stored yet: the delta must not pass it.
        if let (Some(delta), None) = (&writes.delta, &held) {
            ledger::set_delta(&mut tx, account_id, &folder, uidvalidity, delta).await?;
        }
    }
    tx.commit().await?;
    if let Some((reason, count)) = held {
        tracing::warn!(account_id, folder = %folder, held = count, %reason,
            "batch stopped before mail that could not be scanned");
        return Err(Error::ScannerUnavailable(reason));
    }
    let stored = Stored {
        inserted,
        received,
        raw_bytes,
        new_blobs: blobs_added,
        quarantined,
        rejected,
    };
    Ok((stored, earlier))
}

/// After a UIDVALIDITY change, copies stored under the folder's earlier one move to the new
/// positions of their content. Infected mail whose copy is archived (released, flagged, under
/// a legal hold) or still held in the quarantine keeps that state at its new position: it is
/// taken out of `diverted` instead of being quarantined (or refused) a second time.
async fn rebind(
    tx: &mut PgConnection,
    (account_id, folder, uidvalidity): (i64, &str, i64),
    rows: &[NewMessage],
    diverted: &mut Vec<(Incoming, Disposition)>,
) -> Result<()> {
    let infected: Vec<(i64, [u8; 32])> = diverted
        .iter()
        .filter_map(|(m, _)| m.uid.map(|uid| (uid, blobs::sha256(&m.raw))))
        .collect();
    let positions: Vec<(i64, [u8; 32])> = rows
        .iter()
        .filter_map(|r| r.uid.map(|uid| (uid, r.sha256)))
        .chain(infected.iter().copied())
        .collect();
    let archived =
        messages::rebind_positions(tx, account_id, folder, uidvalidity, &positions).await?;
    let still: Vec<(i64, String)> = infected
        .into_iter()
        .filter(|(uid, _)| !archived.contains(uid))
        .map(|(uid, sha)| (uid, hex::encode(sha)))
        .collect();
    let held = quarantine::rebind_positions(tx, account_id, folder, uidvalidity, &still).await?;
    diverted.retain(|(m, _)| {
        m.uid
            .is_none_or(|uid| !archived.contains(&uid) && !held.contains(&uid))
    });
    Ok(())
}

/// Writes the quarantine and rejection rows for infected mail that is not archived.
async fn divert(
    tx: &mut sqlx::PgConnection,
    scan: Scan<'_>,
    account_id: i64,
    folder: &str,
    uidvalidity: Option<i64>,
    diverted: &[(Incoming, Disposition)],
) -> Result<(u64, u64)> {
    let (Some((stage, keys)), false) = (scan, diverted.is_empty()) else {
        return Ok((0, 0));
    };
    let (mut quarantined, mut rejected) = (0, 0);
    for (m, d) in diverted {
        let mut facts = MessageFacts::from_raw(&m.raw);
        facts.account_id = Some(account_id);
        facts.folder = folder.to_string();
        facts.uidvalidity = uidvalidity;
        facts.uid = m.uid;
        match d {
            Disposition::Quarantine { virus_name } => {
                quarantine::put(
                    tx,
                    keys,
                    &facts,
                    &m.raw,
                    virus_name,
                    Source::Ingest,
                    stage.quarantine_expiry_days,
                )
                .await?;
                quarantined += 1;
            }
            Disposition::Reject { virus_name } => {
                rejections::record(tx, &facts, virus_name, Source::Ingest).await?;
                rejected += 1;
            }
            Disposition::Store { .. } | Disposition::Hold { .. } => {}
        }
    }
    Ok((quarantined, rejected))
}

/// Pins every blob the batch's rows reference for the rest of `tx`, storing again any that
/// blob collection removed since `blobs::existing` looked (a retention purge of the same
/// content running right now). Without this, the insert would fail on the foreign key.
async fn restore_collected(
    tx: &mut sqlx::PgConnection,
    hashes: &[[u8; 32]],
    new_blobs: &[NewBlob],
    known_raw: RawByHash,
    zstd_level: i32,
) -> Result<()> {
    let mut known_raw = Some(known_raw);
    for _ in 0..3 {
        let missing = blobs::pin(tx, hashes).await?;
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(
            blobs = missing.len(),
            "storing again blobs collected during this batch"
        );
        let mut again = Vec::with_capacity(missing.len());
        let mut from_raw = Vec::new();
        for h in missing {
            match new_blobs.iter().find(|b| b.sha256 == h) {
                Some(b) => again.push(b.clone()),
                None => from_raw.push(h),
            }
        }
        let raws = known_raw.take().unwrap_or_default();
        let (compressed, raws) = blocking(move || {
            let out: Result<Vec<NewBlob>> = from_raw
                .iter()
                .filter_map(|h| raws.get(h).map(|raw| (h, raw)))
                .map(|(h, raw)| {
                    blobs::encode(raw, *h, &parse::parse(raw).binary_bodies, zstd_level)
                })
                .collect();
            (out, raws)
        })
        .await?;
        known_raw = Some(raws);
        again.extend(compressed?);
        blobs::put_many(tx, &again).await?;
    }
    Err(Error::Internal(
        "a blob of this batch kept disappearing while it was being stored".into(),
    ))
}

/// Raw bytes of content that was already stored, by SHA-256.
type RawByHash = HashMap<[u8; 32], Vec<u8>>;

/// A row to insert and, for content not stored yet, its compressed blob.
type Prepared = (NewMessage, Option<NewBlob>);

/// Where a batch's rows go, and the stemming language of their search vectors.
struct Place {
    account_id: i64,
    folder: String,
    uidvalidity: Option<i64>,
    language: Language,
}

/// Parses every message, builds its search vector and compresses the contents not stored
/// yet, using every core. Also returns the raw bytes of content that was already stored, in
/// case blob collection removes it before the batch commits.
fn prepare(
    place: &Place,
    incoming: Vec<Incoming>,
    hashes: Vec<[u8; 32]>,
    known: &HashSet<[u8; 32]>,
    zstd_level: i32,
) -> Result<(Vec<NewMessage>, Vec<NewBlob>, RawByHash)> {
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
                            let parsed = parse::parse(&m.raw);
                            let blob = if *compress {
                                Some(blobs::encode(
                                    &m.raw,
                                    *sha,
                                    &parsed.binary_bodies,
                                    zstd_level,
                                )?)
                            } else {
                                None
                            };
                            let row = NewMessage {
                                account_id: place.account_id,
                                folder: place.folder.clone(),
                                uidvalidity: place.uidvalidity,
                                uid: m.uid,
                                sha256: *sha,
                                size: m.raw.len() as i64,
                                internal_date: m.internal_date,
                                flags: m.flags.clone(),
                                search: search::message_vector(&parsed, &[], place.language),
                                search_pending: parsed.attachments.iter().any(|a| {
                                    attachment_text::may_have_text(
                                        a.filename.as_deref(),
                                        a.content_type.as_deref(),
                                    )
                                }),
                                parsed,
                                scan_status: ScanStatus::NotScanned,
                                virus_name: None,
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
    let known_raw = items
        .into_iter()
        .filter(|(_, h, _)| known.contains(h))
        .map(|(m, h, _)| (h, m.raw))
        .collect();
    Ok((rows, new_blobs, known_raw))
}

async fn blocking<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    crate::telemetry::spawn_blocking_in_span(f)
        .await
        .map_err(|e| Error::context("run a background task", e))
}

/// Stores messages whose verdict was decided before they came here (a quarantine release
/// re-scanned its message), inside the caller's transaction: the blobs, rows and search
/// vectors commit with whatever else the caller writes, or not at all. Returns how many rows
/// were new (a retried release stores nothing twice).
pub async fn store_decided(
    tx: &mut PgConnection,
    zstd_level: i32,
    to: Destination,
    incoming: Vec<Incoming>,
    status: ScanStatus,
    virus_name: Option<String>,
) -> Result<u64> {
    let place = Place {
        language: search::account_language(&mut *tx, to.account_id).await?,
        account_id: to.account_id,
        folder: to.folder.clone(),
        uidvalidity: to.uidvalidity,
    };
    let (rows, new_blobs, known_raw) = blocking(move || {
        let hashes: Vec<[u8; 32]> = incoming.iter().map(|m| blobs::sha256(&m.raw)).collect();
        // Every content counts as new: `put_many` skips what is stored already.
        prepare(&place, incoming, hashes, &HashSet::new(), zstd_level)
    })
    .await??;
    let rows: Vec<NewMessage> = rows
        .into_iter()
        .map(|row| NewMessage {
            scan_status: status,
            virus_name: virus_name.clone(),
            ..row
        })
        .collect();
    blobs::put_many(&mut *tx, &new_blobs).await?;
    let hashes: Vec<[u8; 32]> = rows.iter().map(|r| r.sha256).collect();
    restore_collected(&mut *tx, &hashes, &new_blobs, known_raw, zstd_level).await?;
    // As for every store: a copy of the same content archived under the folder's earlier
    // UIDVALIDITY moves to this place instead of being stored a second time.
    if let Some(uidvalidity) = to.uidvalidity {
        messages::rebind_to_new_uidvalidity(tx, to.account_id, &to.folder, uidvalidity, &rows)
            .await?;
    }
    messages::insert_many(tx, &rows).await
}

/// Where messages go: an account's folder, at a UIDVALIDITY (None for imported mail).
pub struct Destination {
    pub account_id: i64,
    pub folder: String,
    pub uidvalidity: Option<i64>,
}
