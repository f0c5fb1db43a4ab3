//! The walk of `verify archive`: blobs in key order, read in batches bounded by size while the
//! previous batch is checked on every core; then the row and ledger checks, then the
//! quarantine.

use sqlx::PgPool;
use tokio::sync::mpsc;

use super::checks::{self, Item, MessageRow, Outcome, StoredBlob, StoredPart};
use super::{Observer, Summary};
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// Keys listed per query; each list is then read in size-bounded batches.
const KEYS_PER_PAGE: i64 = 4000;
/// Raw bytes per batch: enough to keep every core busy, small enough to keep memory flat.
const BATCH_RAW_BYTES: i64 = 16 << 20;
/// Batches read ahead of the one being checked.
const BATCHES_AHEAD: usize = 2;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only blobs and rows of this account.
    pub account_id: Option<i64>,
    /// Check this share (0 < p ≤ 100) of the blobs, chosen afresh on each run. The row,
    /// ledger and quarantine checks always cover the whole scope: they are cheap.
    pub sample_percent: Option<f64>,
}

impl Scope {
    /// The sample as a threshold on the first two bytes of the SHA-256 (uniform), plus a random
    /// offset so each run looks at different blobs. None: everything.
    fn sample(&self) -> (Option<i32>, i32) {
        let Some(p) = self.sample_percent.filter(|p| *p < 100.0) else {
            return (None, 0);
        };
        let threshold = ((p / 100.0) * 65536.0).ceil().clamp(1.0, 65536.0) as i32;
        let mut offset = [0u8; 2];
        getrandom::fill(&mut offset).expect("the operating system's random source failed");
        (Some(threshold), i32::from(u16::from_le_bytes(offset)))
    }
}

/// Walks the archive in `scope` and reports each problem to `observer` as it is found.
/// `keys` opens the quarantine; without them its entries are not checked.
pub async fn verify_archive(
    pool: &PgPool,
    keys: Option<&SealingKeys>,
    scope: &Scope,
    observer: &dyn Observer,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let counted = |summary: &mut Summary, problems: u64| summary.problem_count += problems;
    let (blobs, found) = walk_blobs(pool, scope, observer).await?;
    summary.blobs_checked = blobs.blobs;
    summary.messages_checked = blobs.messages;
    summary.bytes_checked = blobs.bytes;
    counted(&mut summary, found);
    let (missing_messages, found) = super::ledger::check_rows(pool, scope, observer).await?;
    summary.messages_checked += missing_messages;
    counted(&mut summary, found);
    if let Some(keys) = keys {
        let (checked, found) = super::quarantine::check(pool, keys, scope, observer).await?;
        summary.quarantine_checked = checked;
        counted(&mut summary, found);
    }
    Ok(summary)
}

/// The blob walk. Returns the totals and how many problems it reported.
async fn walk_blobs(
    pool: &PgPool,
    scope: &Scope,
    observer: &dyn Observer,
) -> Result<(Outcome, u64)> {
    let (threshold, offset) = scope.sample();
    let planned = sqlx::query!(
        r#"SELECT count(*) AS "count!", coalesce(sum(size), 0)::bigint AS "bytes!"
           FROM blobs b
           WHERE ($1::bigint IS NULL OR EXISTS (SELECT 1 FROM messages m
                    WHERE m.blob_sha256 = b.sha256 AND m.account_id = $1))
             AND ($2::int IS NULL
                  OR ((get_byte(b.sha256, 0) * 256 + get_byte(b.sha256, 1) + $3) % 65536) < $2)"#,
        scope.account_id,
        threshold,
        offset,
    )
    .fetch_one(pool)
    .await?;
    let (count, bytes) = (planned.count, planned.bytes);
    observer.planned(count.max(0) as u64, bytes.max(0) as u64);
    let (tx, mut rx) = mpsc::channel::<Vec<Item>>(BATCHES_AHEAD);
    let read = read_batches(pool, scope.account_id, threshold, offset, tx);
    let check = async {
        let mut total = Outcome::default();
        let mut problems = 0u64;
        while let Some(items) = rx.recv().await {
            let done = check_in_parallel(items).await?;
            for p in &done.problems {
                observer.problem(p);
            }
            problems += done.problems.len() as u64;
            total.blobs += done.blobs;
            total.messages += done.messages;
            total.bytes += done.bytes;
            observer.advanced(done.bytes);
        }
        Ok::<_, Error>((total, problems))
    };
    let ((), checked) = tokio::try_join!(read, check)?;
    Ok(checked)
}

/// Blobs in scope: the account's (when set), sampled by hash prefix (when set).
async fn read_batches(
    pool: &PgPool,
    account_id: Option<i64>,
    threshold: Option<i32>,
    offset: i32,
    tx: mpsc::Sender<Vec<Item>>,
) -> Result<()> {
    let mut after: Vec<u8> = Vec::new();
    loop {
        // The same scope as the count in `walk_blobs`.
        let keys: Vec<(Vec<u8>, i64)> = sqlx::query!(
            "SELECT sha256, size FROM blobs b
             WHERE ($1::bigint IS NULL OR EXISTS (SELECT 1 FROM messages m
                      WHERE m.blob_sha256 = b.sha256 AND m.account_id = $1))
               AND ($2::int IS NULL
                    OR ((get_byte(b.sha256, 0) * 256 + get_byte(b.sha256, 1) + $3) % 65536) < $2)
               AND b.sha256 > $4
             ORDER BY b.sha256 LIMIT $5",
            account_id,
            threshold,
            offset,
            after,
            KEYS_PER_PAGE,
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.sha256, r.size))
        .collect();
        let Some((last, _)) = keys.last() else {
            return Ok(());
        };
        after = last.clone();
        for group in size_bounded(&keys, BATCH_RAW_BYTES) {
            let items = read_items(pool, account_id, group).await?;
            if tx.send(items).await.is_err() {
                // The checker stopped; its error is the one reported.
                return Ok(());
            }
        }
    }
}

/// Splits `keys` into runs whose sizes add up to at most `budget` (at least one key each).
fn size_bounded(keys: &[(Vec<u8>, i64)], budget: i64) -> Vec<Vec<Vec<u8>>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut used = 0i64;
    for (key, size) in keys {
        if !current.is_empty() && used.saturating_add(*size) > budget {
            groups.push(std::mem::take(&mut current));
            used = 0;
        }
        used = used.saturating_add((*size).max(0));
        current.push(key.clone());
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Reads a batch of blobs and the in-scope messages that point at them.
async fn read_items(
    pool: &PgPool,
    account_id: Option<i64>,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Item>> {
    let blobs = sqlx::query_as!(
        StoredBlob,
        "SELECT sha256, size, layout, zstd FROM blobs WHERE sha256 = ANY($1::bytea[])",
        &keys,
    )
    .fetch_all(pool)
    .await?;
    let mut messages = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.blob_sha256, m.size, a.name AS "account?", m.folder, m.attachment_count,
                  coalesce((SELECT json_agg(json_build_object('part_index', t.part_index,
                      'size', t.size, 'filename', t.filename, 'content_type', t.content_type))
                    FROM attachments t WHERE t.message_id = m.id), '[]'::json)
                    AS "parts!: sqlx::types::Json<Vec<StoredPart>>"
           FROM messages m LEFT JOIN accounts a ON a.id = m.account_id
           WHERE m.blob_sha256 = ANY($1::bytea[]) AND ($2::bigint IS NULL OR m.account_id = $2)"#,
        &keys,
        account_id,
    )
    .fetch_all(pool)
    .await?;
    messages.sort_by(|a, b| a.blob_sha256.cmp(&b.blob_sha256).then(a.id.cmp(&b.id)));
    let skeletons: Vec<Vec<u8>> = blobs
        .iter()
        .filter(|b| b.layout == crate::archive::blobs::LAYOUT_SKELETON)
        .map(|b| b.sha256.clone())
        .collect();
    let parts = std::sync::Arc::new(if skeletons.is_empty() {
        crate::archive::blobs::PartMap::default()
    } else {
        crate::archive::blobs::parts_for(&mut *pool.acquire().await?, &skeletons).await?
    });
    let mut items: Vec<Item> = blobs
        .into_iter()
        .map(|blob| Item {
            blob,
            messages: Vec::new(),
            parts: parts.clone(),
        })
        .collect();
    items.sort_by(|a, b| a.blob.sha256.cmp(&b.blob.sha256));
    for m in messages {
        if let Ok(i) = items.binary_search_by(|it| it.blob.sha256.cmp(&m.blob_sha256)) {
            items[i].messages.push(m);
        }
    }
    Ok(items)
}

/// Checks a batch on every core and merges the results in blob order.
async fn check_in_parallel(items: Vec<Item>) -> Result<Outcome> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let handles: Vec<_> = split_by_size(items, workers)
        .into_iter()
        .map(|chunk| crate::telemetry::spawn_blocking_in_span(move || checks::check_items(&chunk)))
        .collect();
    let mut total = Outcome::default();
    for handle in handles {
        let done = handle
            .await
            .map_err(|e| Error::context("run a verify worker", e))?;
        total.blobs += done.blobs;
        total.messages += done.messages;
        total.bytes += done.bytes;
        total.problems.extend(done.problems);
    }
    Ok(total)
}

/// Splits a batch into `workers` runs of about the same number of bytes, so that no core
/// waits for another at the end of the batch: message sizes vary a hundredfold.
fn split_by_size(items: Vec<Item>, workers: usize) -> Vec<Vec<Item>> {
    let weight = |item: &Item| item.blob.size.max(1);
    let total: i64 = items.iter().map(weight).sum();
    let share = total / workers.max(1) as i64 + 1;
    let mut chunks = Vec::with_capacity(workers);
    let mut current = Vec::new();
    let mut used = 0i64;
    for item in items {
        used += weight(&item);
        current.push(item);
        if used >= share && chunks.len() + 1 < workers {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_within_their_budget_but_never_drop_a_big_blob() {
        let keys: Vec<(Vec<u8>, i64)> = [5, 5, 20, 1, 1]
            .iter()
            .enumerate()
            .map(|(i, s)| (vec![i as u8], *s))
            .collect();
        let groups = size_bounded(&keys, 10);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 2]);
    }

    #[test]
    fn a_batch_is_split_between_the_cores_by_bytes_not_by_count() {
        let items: Vec<Item> = [90, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
            .iter()
            .map(|&size| Item {
                blob: checks::StoredBlob {
                    sha256: Vec::new(),
                    size,
                    layout: 0,
                    zstd: Vec::new(),
                },
                messages: Vec::new(),
                parts: std::sync::Arc::default(),
            })
            .collect();
        let sizes = |chunks: &[Vec<Item>]| -> Vec<i64> {
            chunks
                .iter()
                .map(|c| c.iter().map(|i| i.blob.size).sum())
                .collect()
        };
        assert_eq!(sizes(&split_by_size(items, 2)), [90, 50]);
        assert!(split_by_size(Vec::new(), 2).is_empty());
    }

    #[test]
    fn a_sample_becomes_a_threshold_on_the_hash_prefix() {
        let scope = |p| Scope {
            account_id: None,
            sample_percent: Some(p),
        };
        assert_eq!(scope(50.0).sample().0, Some(32768));
        assert_eq!(scope(100.0).sample().0, None);
        assert_eq!(scope(0.0001).sample().0, Some(1));
        assert_eq!(Scope::default().sample().0, None);
    }
}
