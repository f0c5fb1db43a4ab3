//! The one way daygle deletes archived messages: a bounded batch in the caller's transaction
//! that skips held mail in its SQL, counts what left in the deletion statistics and collects
//! the blobs no message uses any more.

use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};

use super::holds::HeldFilter;
use crate::error::Result;

/// Why mail left the archive (or a mail server), as counted in `deletion_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Retention,
    Manual,
    Erasure,
    /// Deleted from the mail server after archiving; the archived copy stays.
    Server,
    QuarantineExpiry,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Retention => "retention",
            Cause::Manual => "manual",
            Cause::Erasure => "erasure",
            Cause::Server => "server",
            Cause::QuarantineExpiry => "quarantine_expiry",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Cause::Retention => "Retention",
            Cause::Manual => "Manual deletion",
            Cause::Erasure => "Erasure",
            Cause::Server => "Deleted from mail server",
            Cause::QuarantineExpiry => "Quarantine expiry",
        }
    }

    pub const ALL: [Cause; 5] = [
        Cause::Retention,
        Cause::Manual,
        Cause::Erasure,
        Cause::Server,
        Cause::QuarantineExpiry,
    ];
}

/// A deleted message, as the delete returned it.
#[derive(Debug, Clone, FromRow)]
pub struct Gone {
    pub id: i64,
    pub account_id: i64,
    pub blob_sha256: Vec<u8>,
    pub size: i64,
    /// What the caller tagged the row with (the purging policy's id).
    pub tag: Option<i64>,
}

/// Blobs deleted because no message referenced them any more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    pub blobs: u64,
    pub bytes: i64,
}

impl Collected {
    pub fn plus(self, o: Collected) -> Collected {
        Collected {
            blobs: self.blobs + o.blobs,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Deletes up to `limit` messages, lowest id first, that satisfy the conditions `select`
/// appends to `WHERE` (on `messages m`) and are not held. `tag` appends a bigint expression
/// (or NULL) returned with each row. Stats and blob collection happen in the same transaction.
pub async fn delete_batch(
    tx: &mut PgConnection,
    held: &HeldFilter,
    cause: Cause,
    limit: i64,
    tag: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
    select: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
) -> Result<(Vec<Gone>, Collected)> {
    let mut qb = QueryBuilder::new("WITH picked AS (SELECT m.id, ");
    tag(&mut qb);
    qb.push("::bigint AS tag FROM messages m WHERE ");
    select(&mut qb);
    qb.push(" AND NOT ");
    held.push(&mut qb);
    qb.push(" ORDER BY m.id LIMIT ").push_bind(limit);
    qb.push(
        ") DELETE FROM messages d USING picked WHERE d.id = picked.id
         RETURNING d.id, d.account_id, d.blob_sha256, d.size, picked.tag",
    );
    let gone: Vec<Gone> = qb.build_query_as().fetch_all(&mut *tx).await?;
    if gone.is_empty() {
        return Ok((gone, Collected::default()));
    }
    count(tx, cause, gone.iter().map(|g| (g.account_id, g.size))).await?;
    let mut hashes: Vec<Vec<u8>> = gone.iter().map(|g| g.blob_sha256.clone()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let collected = collect_blobs(tx, &hashes).await?;
    Ok((gone, collected))
}

/// Adds (account, bytes) pairs to this quarter hour's deletion statistics for `cause` (read
/// back as months in the reader's time zone, see `stats`).
pub async fn count(
    conn: &mut PgConnection,
    cause: Cause,
    rows: impl Iterator<Item = (i64, i64)>,
) -> Result<()> {
    let (accounts, sizes): (Vec<i64>, Vec<i64>) = rows.unzip();
    if accounts.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO deletion_stats (account_id, bucket, cause, messages, bytes)
         SELECT t.account_id, date_bin('15 minutes', now(), timestamptz '2000-01-01 00:00Z'), $3,
                count(*), coalesce(sum(t.size), 0)
         FROM unnest($1::bigint[], $2::bigint[]) AS t(account_id, size)
         WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.account_id)
         GROUP BY t.account_id
         ON CONFLICT (account_id, bucket, cause) DO UPDATE
             SET messages = deletion_stats.messages + excluded.messages,
                 bytes = deletion_stats.bytes + excluded.bytes",
        &accounts,
        &sizes,
        cause.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes those of `hashes` that no message references, in the caller's transaction.
///
/// Locking: a blob is first locked `FOR UPDATE SKIP LOCKED`. An ingest that is inserting a
/// message for the same content holds the blob `FOR KEY SHARE` (taken explicitly before its
/// insert, see `archive::blobs::pin`), so such a blob is skipped here; an ingest that starts
/// after our lock waits for our commit, sees the blob gone and stores it again. The
/// "unreferenced" check is a separate statement, so its snapshot is taken after the locks and
/// sees every message committed before them. The foreign key from messages to blobs remains
/// the last line: a blob with a committed message can never be deleted.
pub async fn collect_blobs(tx: &mut PgConnection, hashes: &[Vec<u8>]) -> Result<Collected> {
    if hashes.is_empty() {
        return Ok(Collected::default());
    }
    let locked = sqlx::query_scalar!(
        "SELECT sha256 FROM blobs WHERE sha256 = ANY($1::bytea[]) ORDER BY sha256
         FOR UPDATE SKIP LOCKED",
        hashes,
    )
    .fetch_all(&mut *tx)
    .await?;
    if locked.is_empty() {
        return Ok(Collected::default());
    }
    // Their attachments, read before the links cascade away with the blobs.
    let parts = crate::archive::blobs::parts_of(&mut *tx, &locked).await?;
    let gone = sqlx::query!(
        r#"WITH gone AS (
               DELETE FROM blobs b WHERE b.sha256 = ANY($1::bytea[])
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_sha256 = b.sha256)
               RETURNING b.size)
           SELECT count(*) AS "blobs!", coalesce(sum(size), 0)::bigint AS "bytes!" FROM gone"#,
        &locked,
    )
    .fetch_one(&mut *tx)
    .await?;
    // An attachment another message still shares stays (its link keeps it).
    crate::archive::blobs::collect_parts(&mut *tx, &parts).await?;
    Ok(Collected {
        blobs: gone.blobs as u64,
        bytes: gone.bytes,
    })
}

/// Blobs with no message, older than `grace` (a batch may have committed its new blobs and not
/// yet its messages), up to `limit`: leftovers of interrupted runs. Returns their hashes.
pub async fn orphan_blobs(
    conn: &mut PgConnection,
    grace: time::Duration,
    limit: i64,
) -> Result<Vec<Vec<u8>>> {
    Ok(sqlx::query_scalar!(
        "SELECT b.sha256 FROM blobs b
         WHERE b.created_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_sha256 = b.sha256)
         LIMIT $2",
        grace.as_seconds_f64(),
        limit,
    )
    .fetch_all(conn)
    .await?)
}

/// Counts messages deleted from their mail server (their archived copies stay).
pub async fn count_deleted_from_server(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    uids: &[i64],
) -> Result<()> {
    let rows = sqlx::query!(
        "SELECT account_id, size FROM messages
         WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3 AND uid = ANY($4)",
        account_id,
        folder,
        uidvalidity,
        uids,
    )
    .fetch_all(&mut *conn)
    .await?;
    count(
        conn,
        Cause::Server,
        rows.into_iter().map(|r| (r.account_id, r.size)),
    )
    .await
}
