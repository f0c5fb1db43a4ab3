//! Leases in PostgreSQL, so several worker processes share the accounts and one of them runs
//! the once-per-installation jobs. A lease has a holder (a `processes` row) and an expiry; the
//! holder renews it every third of the lease time. An expired lease is free: free account
//! leases are claimed with `FOR UPDATE SKIP LOCKED`, so two workers never take the same one,
//! and a killed worker's accounts move to another within the lease time.
//!
//! Leases decide who *should* sync an account; the per-account advisory lock of the scheduler
//! still guarantees that two passes never overlap (a paused process that lost its lease and
//! wakes up mid-pass is turned away by it), and the archive's unique keys make a replay add
//! nothing twice.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

/// The accounts this worker holds after renewing its leases and claiming its share of the free
/// ones. Its share is the enabled IMAP accounts divided by the live workers (rounded up); a
/// worker holding more than its share (another worker just started) gives back the surplus it
/// is not syncing right now, so the newcomer finds them free.
pub async fn renew_and_claim(
    pool: &PgPool,
    me: Uuid,
    lease_secs: u32,
    busy: &[i64],
) -> Result<Vec<i64>> {
    let secs = f64::from(lease_secs);
    let mut tx = pool.begin().await?;
    // Accounts added since the last look get their (free) lease row.
    sqlx::query!(
        "INSERT INTO account_leases (account_id)
         SELECT id FROM accounts WHERE kind IN ('imap', 'gmail', 'graph') AND enabled
         ON CONFLICT (account_id) DO NOTHING"
    )
    .execute(&mut *tx)
    .await?;
    let mut held: Vec<i64> = sqlx::query_scalar!(
        "UPDATE account_leases l SET expires_at = now() + make_interval(secs => $2)
         FROM accounts a
         WHERE a.id = l.account_id AND l.holder = $1 AND a.kind IN ('imap', 'gmail', 'graph') AND a.enabled
         RETURNING l.account_id",
        me,
        secs
    )
    .fetch_all(&mut *tx)
    .await?;
    // Leases of accounts since disabled (or no longer IMAP) are given back.
    sqlx::query!(
        "UPDATE account_leases SET holder = NULL, acquired_at = NULL, expires_at = NULL
         WHERE holder = $1 AND NOT (account_id = ANY($2))",
        me,
        &held
    )
    .execute(&mut *tx)
    .await?;
    let (accounts, workers) = share_basis(&mut tx, secs).await?;
    let workers = workers.max(1);
    let share = usize::try_from((accounts + workers - 1) / workers).unwrap_or(usize::MAX);
    if held.len() > share {
        let surplus: Vec<i64> = held
            .iter()
            .copied()
            .filter(|id| !busy.contains(id))
            .take(held.len() - share)
            .collect();
        if !surplus.is_empty() {
            sqlx::query!(
                "UPDATE account_leases SET holder = NULL, acquired_at = NULL, expires_at = NULL
                 WHERE holder = $1 AND account_id = ANY($2)",
                me,
                &surplus
            )
            .execute(&mut *tx)
            .await?;
            held.retain(|id| !surplus.contains(id));
        }
    } else if held.len() < share {
        let want = i64::try_from(share - held.len()).unwrap_or(i64::MAX);
        let claimed: Vec<i64> = sqlx::query_scalar!(
            "UPDATE account_leases SET holder = $1, acquired_at = now(),
                    expires_at = now() + make_interval(secs => $2)
             WHERE account_id IN (
                 SELECT l.account_id FROM account_leases l
                 JOIN accounts a ON a.id = l.account_id
                 WHERE a.kind IN ('imap', 'gmail', 'graph') AND a.enabled
                   AND (l.holder IS NULL OR l.expires_at IS NULL OR l.expires_at < now())
                 ORDER BY l.account_id
                 LIMIT $3
                 FOR UPDATE OF l SKIP LOCKED)
             RETURNING account_id",
            me,
            secs,
            want
        )
        .fetch_all(&mut *tx)
        .await?;
        held.extend(claimed);
    }
    tx.commit().await?;
    held.sort_unstable();
    Ok(held)
}

/// (enabled IMAP accounts, live workers): what a fair share is computed from.
async fn share_basis(conn: &mut PgConnection, lease_secs: f64) -> Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM accounts WHERE kind IN ('imap', 'gmail', 'graph') AND enabled) AS "accounts!",
             (SELECT count(*) FROM processes
              WHERE role IN ('worker', 'all') AND stopped_at IS NULL
                AND heartbeat_at > now() - make_interval(secs => $1)) AS "workers!""#,
        lease_secs
    )
    .fetch_one(conn)
    .await?;
    Ok((row.accounts, row.workers))
}

/// Takes or renews the leader lease; true while this process is the leader.
pub async fn claim_leader(pool: &PgPool, me: Uuid, lease_secs: u32) -> Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE leader_lease
         SET acquired_at = CASE WHEN holder = $1 THEN acquired_at ELSE now() END,
             holder = $1,
             expires_at = now() + make_interval(secs => $2)
         WHERE name = 'leader'
           AND (holder IS NULL OR holder = $1 OR expires_at IS NULL OR expires_at < now())
         RETURNING name",
        me,
        f64::from(lease_secs)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Gives back every lease `me` holds (a graceful stop).
pub async fn release_all(conn: &mut PgConnection, me: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE account_leases SET holder = NULL, acquired_at = NULL, expires_at = NULL
         WHERE holder = $1",
        me
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE leader_lease SET holder = NULL, acquired_at = NULL, expires_at = NULL
         WHERE holder = $1",
        me
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The account leases as they stand, for `/workers` and the tests: (account id, holder).
pub async fn account_holders(pool: &PgPool) -> Result<Vec<(i64, Option<Uuid>)>> {
    Ok(sqlx::query!(
        "SELECT account_id, CASE WHEN expires_at > now() THEN holder END AS holder
         FROM account_leases ORDER BY account_id"
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.account_id, r.holder))
    .collect())
}

/// The live leader, if any.
pub async fn leader(pool: &PgPool) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar!(
        "SELECT holder FROM leader_lease WHERE name = 'leader' AND expires_at > now()"
    )
    .fetch_optional(pool)
    .await?
    .flatten())
}
