//! The purge: deletes what a [`Plan`] covers, in bounded batches of one transaction each
//! (rows, statistics, blobs and the audit row commit together). A crash loses at most the
//! batch in flight, which rolls back; running again continues, because every batch asks the
//! database afresh what is still purgeable. One purge runs at a time.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::holds::HeldFilter;
use super::plan::Plan;
use super::remove::{self, Cause, Collected};
use crate::audit::{self, Action, Actor, AuditEvent};
use crate::error::{Error, Result};

/// Held for a whole run (session-level), so two purges never interleave.
const PURGE_LOCK: i64 = 0x6461_7967_6c65_5250; // "daygleRP"

/// Blobs left by interrupted runs are collected once they are this old.
const ORPHAN_GRACE: time::Duration = time::Duration::hours(1);

#[derive(Debug, Clone, Default)]
pub struct PurgeReport {
    /// (policy id, account id) → (messages, bytes).
    pub per_policy_account: BTreeMap<(i64, i64), (u64, i64)>,
    pub messages: u64,
    pub bytes: i64,
    pub collected: Collected,
    pub batches: u64,
    /// Stopped by shutdown before the end; the next run continues.
    pub interrupted: bool,
}

/// Purges with `plan`. `expected_fingerprint`, when given, must match the plan's (the preview
/// the user confirmed was made with the same policies).
pub async fn purge(
    pool: &PgPool,
    actor: &Actor,
    plan: &Plan,
    expected_fingerprint: Option<&str>,
    batch_size: i64,
    stop: &CancellationToken,
) -> Result<PurgeReport> {
    if let Some(f) = expected_fingerprint
        && f != plan.fingerprint()
    {
        return Err(Error::Conflict(
            "the retention policies changed since this preview; preview again".into(),
        ));
    }
    let mut lock = pool.acquire().await?;
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1) AS "locked!""#,
        PURGE_LOCK
    )
    .fetch_one(&mut *lock)
    .await?;
    if !locked {
        return Err(Error::Conflict("a purge is already running".into()));
    }
    let result = run_batches(pool, actor, plan, batch_size.max(1), stop).await;
    let _ = sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", PURGE_LOCK)
        .fetch_one(&mut *lock)
        .await;
    let report = result?;
    audit::record_now(
        pool,
        &AuditEvent::by(actor, Action::RetentionPurge)
            .every_archive()
            .details(json!({
                "as_of": plan.as_of.to_string(), "max_id": plan.max_id,
                "messages": report.messages, "bytes": report.bytes,
                "blobs_freed": report.collected.blobs, "bytes_freed": report.collected.bytes,
                "batches": report.batches, "interrupted": report.interrupted,
            })),
    )
    .await?;
    tracing::info!(
        messages = report.messages,
        bytes_freed = report.collected.bytes,
        batches = report.batches,
        "retention purge finished"
    );
    Ok(report)
}

async fn run_batches(
    pool: &PgPool,
    actor: &Actor,
    plan: &Plan,
    batch_size: i64,
    stop: &CancellationToken,
) -> Result<PurgeReport> {
    let mut report = PurgeReport::default();
    // Batches walk the id range in windows, so each statement examines a bounded slice of the
    // archive (an ORDER BY id LIMIT over the whole archive would re-test every remaining
    // candidate in every batch).
    let window = (batch_size * 25).max(10_000);
    let mut after_id: i64 =
        sqlx::query_scalar!(r#"SELECT coalesce(min(id) - 1, 0) AS "start!" FROM messages"#)
            .fetch_one(pool)
            .await?;
    let mut window_end = after_id + window;
    loop {
        if stop.is_cancelled() {
            report.interrupted = true;
            return Ok(report);
        }
        if after_id >= plan.max_id {
            break;
        }
        let mut tx = pool.begin().await?;
        let held = HeldFilter::lock(&mut tx).await?;
        let (gone, collected) = remove::delete_batch(
            &mut tx,
            &held,
            Cause::Retention,
            batch_size,
            |qb| plan.push_policy_tag(qb),
            |qb| {
                plan.push_purgeable(qb);
                qb.push(" AND m.id > ")
                    .push_bind(after_id)
                    .push(" AND m.id <= ")
                    .push_bind(window_end);
            },
        )
        .await?;
        if (gone.len() as i64) < batch_size {
            // This window is done (whatever the batch held); the next starts after it.
            after_id = window_end;
            window_end = after_id + window;
        }
        if gone.is_empty() {
            tx.commit().await?;
            continue;
        }
        let mut batch: BTreeMap<(i64, i64), (u64, i64)> = BTreeMap::new();
        for g in &gone {
            let e = batch.entry((g.tag.unwrap_or(0), g.account_id)).or_default();
            e.0 += 1;
            e.1 += g.size;
        }
        let counts: Vec<_> = batch
            .iter()
            .map(|((p, a), (n, b))| json!({ "policy": plan.policy_name(*p), "account_id": a, "messages": n, "bytes": b }))
            .collect();
        let bytes: i64 = gone.iter().map(|g| g.size).sum();
        audit::record(
            &mut tx,
            &AuditEvent::by(actor, Action::RetentionPurgeBatch)
                .accounts(gone.iter().map(|g| g.account_id).collect::<Vec<_>>())
                .details(json!({
                    "messages": gone.len(), "bytes": bytes, "by_policy_account": counts,
                    "blobs_freed": collected.blobs, "bytes_freed": collected.bytes,
                    "first_id": gone.first().map(|g| g.id), "last_id": gone.last().map(|g| g.id),
                })),
        )
        .await?;
        tx.commit().await?;
        if gone.len() as i64 >= batch_size {
            after_id = gone.iter().map(|g| g.id).max().unwrap_or(after_id);
        }
        report.batches += 1;
        report.messages += gone.len() as u64;
        report.bytes += bytes;
        report.collected = report.collected.plus(collected);
        for (k, (n, b)) in batch {
            let e = report.per_policy_account.entry(k).or_default();
            e.0 += n;
            e.1 += b;
        }
        // Readers first: let queued interactive queries run between batches.
        tokio::task::yield_now().await;
    }
    report.collected = report
        .collected
        .plus(collect_orphans(pool, actor, stop).await?);
    Ok(report)
}

/// Collects blobs no message references (left by interrupted runs or failed ingests).
pub async fn collect_orphans(
    pool: &PgPool,
    actor: &Actor,
    stop: &CancellationToken,
) -> Result<Collected> {
    let mut total = Collected::default();
    while !stop.is_cancelled() {
        let mut tx = pool.begin().await?;
        let orphans = remove::orphan_blobs(&mut tx, ORPHAN_GRACE, 1000).await?;
        if orphans.is_empty() {
            break;
        }
        let collected = remove::collect_blobs(&mut tx, &orphans).await?;
        if collected.blobs > 0 {
            audit::record(
                &mut tx,
                &AuditEvent::by(actor, Action::RetentionCollectBlobs).details(json!({
                    "blobs_freed": collected.blobs, "bytes_freed": collected.bytes,
                })),
            )
            .await?;
        }
        tx.commit().await?;
        total = total.plus(collected);
        if collected.blobs == 0 {
            break;
        }
    }
    // Attachments whose last message went without blob collection (a rescan removing an
    // infected copy does its own; this catches interrupted runs).
    if !stop.is_cancelled() {
        let mut tx = pool.begin().await?;
        let orphans =
            crate::archive::blobs::orphan_parts(&mut tx, ORPHAN_GRACE.as_seconds_f64(), 10_000)
                .await?;
        crate::archive::blobs::collect_parts(&mut tx, &orphans).await?;
        tx.commit().await?;
    }
    Ok(total)
}
