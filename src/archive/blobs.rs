//! Single-instance raw messages: the exact bytes received, zstd-compressed, keyed by SHA-256.

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::error::{Error, Result};

/// SHA-256 of raw message bytes.
pub fn sha256(raw: &[u8]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

pub fn compress(raw: &[u8], level: i32) -> Result<Vec<u8>> {
    zstd::bulk::compress(raw, level).map_err(|e| Error::context("compress a message", e))
}

/// A blob ready to store.
pub struct NewBlob {
    pub sha256: [u8; 32],
    pub size: i64,
    pub zstd: Vec<u8>,
}

/// Which of `hashes` are already stored (so their bytes need not be compressed again).
pub async fn existing(pool: &PgPool, hashes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>> {
    let list: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    let rows: Vec<Vec<u8>> = sqlx::query_scalar!(
        "SELECT sha256 FROM blobs WHERE sha256 = ANY($1::bytea[])",
        &list
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| <[u8; 32]>::try_from(r.as_slice()).ok())
        .collect())
}

/// Stores blobs that are not there yet; an existing blob with the same hash is kept as is.
pub async fn put_many(tx: &mut PgConnection, blobs: &[NewBlob]) -> Result<u64> {
    if blobs.is_empty() {
        return Ok(0);
    }
    let hashes: Vec<Vec<u8>> = blobs.iter().map(|b| b.sha256.to_vec()).collect();
    let sizes: Vec<i64> = blobs.iter().map(|b| b.size).collect();
    let data: Vec<&[u8]> = blobs.iter().map(|b| b.zstd.as_slice()).collect();
    let done = sqlx::query!(
        "INSERT INTO blobs (sha256, size, zstd)
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[])
         ON CONFLICT (sha256) DO NOTHING",
        &hashes,
        &sizes,
        &data as _
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// A blob's recorded size and compressed bytes.
async fn fetch(conn: &mut PgConnection, sha256: &[u8]) -> Result<Option<(i64, Vec<u8>)>> {
    Ok(
        sqlx::query!("SELECT size, zstd FROM blobs WHERE sha256 = $1", sha256)
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| (row.size, row.zstd)),
    )
}

/// The raw bytes of a blob, decompressed off the async threads; `None` when it is not stored.
pub async fn read(conn: &mut PgConnection, sha256: &[u8]) -> Result<Option<Vec<u8>>> {
    let Some((size, zstd)) = fetch(conn, sha256).await? else {
        return Ok(None);
    };
    let size = usize::try_from(size).unwrap_or(0).max(1);
    crate::telemetry::spawn_blocking_in_span(move || zstd::bulk::decompress(&zstd, size))
        .await
        .map_err(|e| Error::context("run the decompression task", e))?
        .map(Some)
        .map_err(|e| Error::context("decompress an archived message", e))
}

/// The raw bytes of a blob, decompressed, and whether they still hash to `sha256`.
pub async fn read_verified(conn: &mut PgConnection, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    let Some((size, zstd)) = fetch(conn, sha256).await? else {
        return Ok(None);
    };
    let expected = *sha256;
    let raw = crate::telemetry::spawn_blocking_in_span(move || {
        zstd::bulk::decompress(&zstd, usize::try_from(size).unwrap_or(0).max(1))
            .ok()
            .filter(|raw| self::sha256(raw) == expected)
    })
    .await
    .map_err(|e| Error::context("run the blob check task", e))?;
    Ok(raw)
}

/// Locks the stored blobs among `hashes` `FOR KEY SHARE` until the caller's transaction ends
/// (so blob collection cannot delete them under a message being inserted) and returns the
/// hashes that are not stored — e.g. collected a moment ago, after `existing` saw them.
pub async fn pin(tx: &mut PgConnection, hashes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>> {
    let list: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    let present: std::collections::HashSet<Vec<u8>> = sqlx::query_scalar!(
        "SELECT sha256 FROM blobs WHERE sha256 = ANY($1::bytea[]) ORDER BY sha256 FOR KEY SHARE",
        &list
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut missing: Vec<[u8; 32]> = hashes
        .iter()
        .filter(|h| !present.contains(h.as_slice()))
        .copied()
        .collect();
    missing.sort_unstable();
    missing.dedup();
    Ok(missing)
}
