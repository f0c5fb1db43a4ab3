//! Single-instance raw messages: the exact bytes received, keyed by SHA-256.
//!
//! A blob is stored in one of two layouts (`blobs.layout`):
//! - 0, whole: the message, zstd-compressed;
//! - 1, skeleton: the message with the encoded bytes of its larger attachments cut out and
//!   replaced by references to `parts` (keyed by the SHA-256 of those encoded bytes), so an
//!   attachment that arrives in 40 mailboxes, forwards and replies is stored once.
//!
//! Reassembly is byte for byte, and every read path checks the reassembled bytes against the
//! blob's SHA-256 ([`read_verified`], [`decode`]).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::prelude::*;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::error::{Error, Result};

/// Attachments whose encoded bytes are shorter than this stay inside the skeleton: a part row,
/// its key and its link cost about 150 bytes and a lookup, which small parts do not repay.
/// (`storage.attachment_min_bytes`; measured with `cargo bench --bench ingest`.)
pub const DEFAULT_MIN_PART_BYTES: usize = 4096;

/// The threshold in force. Process-wide (set once from the configuration at start) so that
/// every ingest path — IMAP, import, Gmail/Graph, quarantine release — applies the same one
/// without each carrying it.
static MIN_PART_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MIN_PART_BYTES);

/// Sets `storage.attachment_min_bytes` for this process (0: store every message whole).
pub fn set_min_part_bytes(bytes: usize) {
    MIN_PART_BYTES.store(
        if bytes == 0 { usize::MAX } else { bytes },
        Ordering::Relaxed,
    );
}
/// Parts are mostly compressed formats already (PDF, Office, images); a low level is as good
/// as a high one on them and much cheaper.
const PART_ZSTD_LEVEL: i32 = 1;

/// Whole, stored before attachments were stored once (or with `attachment_min_bytes = 0`):
/// reindexing examines it and converts it.
pub const LAYOUT_WHOLE: i16 = 0;
pub const LAYOUT_SKELETON: i16 = 1;
/// Whole, examined: no attachment large enough to store apart.
pub const LAYOUT_WHOLE_EXAMINED: i16 = 2;
/// The zstd level of skeletons written by conversion (the default `storage.zstd_level`).
pub const CONVERT_ZSTD_LEVEL: i32 = 3;
const FORM_VERBATIM: i16 = 0;
const FORM_BASE64: i16 = 1;
/// Skeleton records: literal bytes (tag, u32 length, bytes) or a part reference (tag, hash).
const TAG_LITERAL: u8 = 0;
const TAG_PART: u8 = 1;

/// SHA-256 of raw message bytes.
pub fn sha256(raw: &[u8]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

pub fn compress(raw: &[u8], level: i32) -> Result<Vec<u8>> {
    zstd::bulk::compress(raw, level).map_err(|e| Error::context("compress a message", e))
}

/// A blob ready to store, with the parts its skeleton references.
pub struct NewBlob {
    pub sha256: [u8; 32],
    pub size: i64,
    pub layout: i16,
    pub zstd: Vec<u8>,
    pub parts: Vec<NewPart>,
}

/// An attachment's encoded bytes, ready to store.
#[derive(Clone)]
pub struct NewPart {
    pub sha256: [u8; 32],
    pub size: i64,
    pub form: i16,
    pub zstd: Vec<u8>,
}

impl Clone for NewBlob {
    fn clone(&self) -> Self {
        NewBlob {
            sha256: self.sha256,
            size: self.size,
            layout: self.layout,
            zstd: self.zstd.clone(),
            parts: self.parts.clone(),
        }
    }
}

/// Encodes `raw` for storage. `attachments` are the byte ranges of attachment bodies (from the
/// parser); those at least `storage.attachment_min_bytes` long go to parts, and a message with none is
/// stored whole. Ranges that overlap, run backwards or past the end are ignored.
pub fn encode(
    raw: &[u8],
    sha256: [u8; 32],
    attachments: &[Range<usize>],
    level: i32,
) -> Result<NewBlob> {
    let min = MIN_PART_BYTES.load(Ordering::Relaxed);
    let mut cuts: Vec<Range<usize>> = attachments
        .iter()
        .filter(|r| r.start <= r.end && r.end <= raw.len() && r.len() >= min)
        .cloned()
        .collect();
    cuts.sort_by_key(|r| r.start);
    let mut end = 0;
    cuts.retain(|r| {
        let keep = r.start >= end;
        if keep {
            end = r.end;
        }
        keep
    });
    if cuts.is_empty() {
        return Ok(NewBlob {
            sha256,
            size: raw.len() as i64,
            layout: if min == usize::MAX {
                LAYOUT_WHOLE
            } else {
                LAYOUT_WHOLE_EXAMINED
            },
            zstd: compress(raw, level)?,
            parts: Vec::new(),
        });
    }
    let mut skeleton = Vec::with_capacity(raw.len() - cuts.iter().map(|r| r.len()).sum::<usize>());
    let mut parts: Vec<NewPart> = Vec::with_capacity(cuts.len());
    let mut at = 0;
    for cut in cuts {
        literal(&mut skeleton, &raw[at..cut.start]);
        let bytes = &raw[cut.clone()];
        let hash = self::sha256(bytes);
        skeleton.push(TAG_PART);
        skeleton.extend_from_slice(&hash);
        if !parts.iter().any(|p| p.sha256 == hash) {
            parts.push(encode_part(bytes, hash)?);
        }
        at = cut.end;
    }
    literal(&mut skeleton, &raw[at..]);
    Ok(NewBlob {
        sha256,
        size: raw.len() as i64,
        layout: LAYOUT_SKELETON,
        zstd: compress(&skeleton, level)?,
        parts,
    })
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    // A literal longer than 4 GiB is split; messages are far smaller, but never truncate.
    for chunk in bytes.chunks(u32::MAX as usize) {
        out.push(TAG_LITERAL);
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Base64 bodies are stored decoded (a quarter smaller; the decoded bytes of a PDF or an image
/// barely compress, their base64 text only to ~75%) when re-encoding them with the same line
/// length and line ending gives back exactly the same bytes; anything else is kept verbatim.
fn encode_part(bytes: &[u8], sha256: [u8; 32]) -> Result<NewPart> {
    let (form, zstd) = match base64_payload(bytes) {
        Some(payload) => (FORM_BASE64, zstd::bulk::compress(&payload, PART_ZSTD_LEVEL)),
        None => (FORM_VERBATIM, zstd::bulk::compress(bytes, PART_ZSTD_LEVEL)),
    };
    Ok(NewPart {
        sha256,
        size: bytes.len() as i64,
        form,
        zstd: zstd.map_err(|e| Error::context("compress an attachment", e))?,
    })
}

/// For a regular base64 body: its line layout (line length, CRLF or LF, whether the last line
/// ends with a line break) as a 4-byte header, then its decoded bytes — when re-encoding gives
/// back exactly `bytes`. Decoded and checked a line at a time, so a 50 MB attachment costs
/// its decoded size once and no more (memory stays flat for large messages).
fn base64_payload(bytes: &[u8]) -> Option<Vec<u8>> {
    let first_end = bytes.iter().position(|&b| b == b'\n')?;
    let crlf = first_end > 0 && bytes[first_end - 1] == b'\r';
    let line_len = if crlf { first_end - 1 } else { first_end };
    if line_len == 0 || line_len % 4 != 0 || line_len > u16::MAX as usize {
        return None;
    }
    let ending: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let final_break = bytes.ends_with(ending);
    let mut payload = Vec::with_capacity(4 + bytes.len() / 4 * 3);
    payload.extend_from_slice(&[
        (line_len & 0xff) as u8,
        (line_len >> 8) as u8,
        u8::from(crlf) | (u8::from(final_break) << 1),
        0,
    ]);
    let mut again = String::with_capacity(line_len);
    let mut rest = bytes;
    while !rest.is_empty() {
        let line = &rest[..line_len.min(rest.len())];
        let line = match line.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(i) => &line[..i],
            None => line,
        };
        let start = payload.len();
        BASE64_STANDARD.decode_vec(line, &mut payload).ok()?;
        again.clear();
        BASE64_STANDARD.encode_string(&payload[start..], &mut again);
        if again.as_bytes() != line {
            return None;
        }
        rest = &rest[line.len()..];
        match rest.strip_prefix(ending) {
            Some(after) => rest = after,
            None if rest.is_empty() => {}
            None => return None,
        }
        // Only the last line may be short or padded.
        if (line.len() < line_len || line.ends_with(b"=")) && !rest.is_empty() {
            return None;
        }
    }
    Some(payload)
}

fn reencode(layout: &[u8; 4], decoded: &[u8]) -> Vec<u8> {
    let line_len = (usize::from(layout[0]) | usize::from(layout[1]) << 8).max(4);
    let crlf = layout[2] & 1 != 0;
    let final_break = layout[2] & 2 != 0;
    let text = BASE64_STANDARD.encode(decoded);
    let ending: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(text.len() + text.len() / line_len * 2 + 2);
    let mut lines = text.as_bytes().chunks(line_len).peekable();
    while let Some(line) = lines.next() {
        out.extend_from_slice(line);
        if lines.peek().is_some() || final_break {
            out.extend_from_slice(ending);
        }
    }
    out
}

/// A stored part, as reassembly needs it.
pub struct StoredPart {
    size: i64,
    form: i16,
    zstd: Vec<u8>,
}

/// The parts that a set of skeletons reference, by hash.
#[derive(Default)]
pub struct PartMap(HashMap<Vec<u8>, StoredPart>);

/// The parts referenced by those of `blob_hashes` that are skeletons (one query; none when no
/// skeleton is among them).
pub async fn parts_for(conn: &mut PgConnection, blob_hashes: &[Vec<u8>]) -> Result<PartMap> {
    let rows = sqlx::query!(
        "SELECT p.sha256, p.size, p.form, p.zstd FROM parts p
         WHERE p.sha256 IN (SELECT part_sha256 FROM blob_parts WHERE blob_sha256 = ANY($1::bytea[]))",
        blob_hashes
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(PartMap(
        rows.into_iter()
            .map(|r| {
                (
                    r.sha256,
                    StoredPart {
                        size: r.size,
                        form: r.form,
                        zstd: r.zstd,
                    },
                )
            })
            .collect(),
    ))
}

/// Why stored bytes could not be turned back into the message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("stored bytes do not decompress ({0})")]
    Decompress(String),
    #[error("the skeleton is damaged ({0})")]
    Skeleton(&'static str),
    #[error("attachment {0} that the skeleton references is missing")]
    MissingPart(String),
    #[error("attachment {0} does not decode to its recorded bytes")]
    BadPart(String),
    #[error("reassembles to {got} bytes, {expected} recorded")]
    Size { got: usize, expected: i64 },
    #[error("reassembled bytes do not match the SHA-256")]
    Hash,
}

/// The message stored as (`size`, `layout`, `zstd`), reassembled with `parts` and checked
/// against `sha256`. CPU-bound: call it off the async threads.
pub fn decode(
    sha256: &[u8],
    size: i64,
    layout: i16,
    zstd: &[u8],
    parts: &PartMap,
) -> std::result::Result<Vec<u8>, DecodeError> {
    let expected = usize::try_from(size).unwrap_or(0);
    let raw = match layout {
        LAYOUT_SKELETON => reassemble(zstd, expected, parts)?,
        _ => zstd::bulk::decompress(zstd, expected.max(1))
            .map_err(|e| DecodeError::Decompress(e.to_string()))?,
    };
    if raw.len() != expected {
        return Err(DecodeError::Size {
            got: raw.len(),
            expected: size,
        });
    }
    if self::sha256(&raw).as_slice() != sha256 {
        return Err(DecodeError::Hash);
    }
    Ok(raw)
}

fn reassemble(
    zstd: &[u8],
    size: usize,
    parts: &PartMap,
) -> std::result::Result<Vec<u8>, DecodeError> {
    // The skeleton is at most the message's size plus 5 bytes per record.
    let skeleton =
        zstd::stream::decode_all(zstd).map_err(|e| DecodeError::Decompress(e.to_string()))?;
    let mut out = Vec::with_capacity(size);
    let mut rest = skeleton.as_slice();
    while let Some((&tag, tail)) = rest.split_first() {
        match tag {
            TAG_LITERAL => {
                let (len, tail) = tail
                    .split_first_chunk::<4>()
                    .ok_or(DecodeError::Skeleton("literal length cut short"))?;
                let len = u32::from_le_bytes(*len) as usize;
                let bytes = tail
                    .get(..len)
                    .ok_or(DecodeError::Skeleton("literal cut short"))?;
                out.extend_from_slice(bytes);
                rest = &tail[len..];
            }
            TAG_PART => {
                let (hash, tail) = tail
                    .split_first_chunk::<32>()
                    .ok_or(DecodeError::Skeleton("part reference cut short"))?;
                let part = parts
                    .0
                    .get(hash.as_slice())
                    .ok_or_else(|| DecodeError::MissingPart(hex::encode(hash)))?;
                let start = out.len();
                decode_part(part, &mut out)
                    .map_err(|()| DecodeError::BadPart(hex::encode(hash)))?;
                if (out.len() - start) as i64 != part.size
                    || self::sha256(&out[start..]).as_slice() != hash.as_slice()
                {
                    return Err(DecodeError::BadPart(hex::encode(hash)));
                }
                rest = tail;
            }
            _ => return Err(DecodeError::Skeleton("unknown record")),
        }
    }
    Ok(out)
}

fn decode_part(part: &StoredPart, out: &mut Vec<u8>) -> std::result::Result<(), ()> {
    let payload = zstd::stream::decode_all(part.zstd.as_slice()).map_err(|_| ())?;
    match part.form {
        FORM_VERBATIM => out.extend_from_slice(&payload),
        FORM_BASE64 => {
            let (layout, decoded) = payload.split_first_chunk::<4>().ok_or(())?;
            out.extend_from_slice(&reencode(layout, decoded));
        }
        _ => return Err(()),
    }
    Ok(())
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

/// Stores blobs that are not there yet, with the parts their skeletons reference; an existing
/// blob or part with the same hash is kept as is.
///
/// Parts already stored are locked `FOR KEY SHARE` first, so blob collection (which takes
/// them `FOR UPDATE SKIP LOCKED`) cannot remove one under this transaction; one it removed a
/// moment ago is simply inserted again.
pub async fn put_many(tx: &mut PgConnection, blobs: &[NewBlob]) -> Result<u64> {
    if blobs.is_empty() {
        return Ok(0);
    }
    put_parts(tx, blobs).await?;
    let hashes: Vec<Vec<u8>> = blobs.iter().map(|b| b.sha256.to_vec()).collect();
    let sizes: Vec<i64> = blobs.iter().map(|b| b.size).collect();
    let layouts: Vec<i16> = blobs.iter().map(|b| b.layout).collect();
    let data: Vec<&[u8]> = blobs.iter().map(|b| b.zstd.as_slice()).collect();
    let done = sqlx::query!(
        "INSERT INTO blobs (sha256, size, layout, zstd)
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[])
         ON CONFLICT (sha256) DO NOTHING",
        &hashes,
        &sizes,
        &layouts,
        &data as _
    )
    .execute(&mut *tx)
    .await?;
    put_links(tx, blobs).await?;
    Ok(done.rows_affected())
}

/// Converts blobs stored whole (layout 0) to their examined form, in the caller's
/// transaction: a skeleton replaces the whole message (its parts stored first), or the blob is
/// marked examined, its bytes untouched. A blob converted meanwhile by someone else is left.
pub async fn convert(tx: &mut PgConnection, blobs: &[NewBlob]) -> Result<()> {
    let (skeletons, whole): (Vec<&NewBlob>, Vec<&NewBlob>) =
        blobs.iter().partition(|b| b.layout == LAYOUT_SKELETON);
    let examined: Vec<Vec<u8>> = whole.iter().map(|b| b.sha256.to_vec()).collect();
    if !examined.is_empty() {
        sqlx::query!(
            "UPDATE blobs SET layout = 2 WHERE sha256 = ANY($1::bytea[]) AND layout = 0",
            &examined
        )
        .execute(&mut *tx)
        .await?;
    }
    if skeletons.is_empty() {
        return Ok(());
    }
    let owned: Vec<NewBlob> = skeletons.into_iter().cloned().collect();
    put_parts(tx, &owned).await?;
    let hashes: Vec<Vec<u8>> = owned.iter().map(|b| b.sha256.to_vec()).collect();
    let data: Vec<&[u8]> = owned.iter().map(|b| b.zstd.as_slice()).collect();
    let done: Vec<Vec<u8>> = sqlx::query_scalar!(
        "UPDATE blobs b SET layout = 1, zstd = t.zstd
         FROM unnest($1::bytea[], $2::bytea[]) AS t(sha256, zstd)
         WHERE b.sha256 = t.sha256 AND b.layout = 0
         RETURNING b.sha256",
        &hashes,
        &data as _
    )
    .fetch_all(&mut *tx)
    .await?;
    let converted: Vec<NewBlob> = owned
        .into_iter()
        .filter(|b| done.iter().any(|d| d.as_slice() == b.sha256.as_slice()))
        .collect();
    put_links(tx, &converted).await
}

async fn put_links(tx: &mut PgConnection, blobs: &[NewBlob]) -> Result<()> {
    let (links_blob, links_part): (Vec<Vec<u8>>, Vec<Vec<u8>>) = blobs
        .iter()
        .flat_map(|b| {
            b.parts
                .iter()
                .map(|p| (b.sha256.to_vec(), p.sha256.to_vec()))
        })
        .unzip();
    if !links_blob.is_empty() {
        sqlx::query!(
            "INSERT INTO blob_parts (blob_sha256, part_sha256)
             SELECT * FROM unnest($1::bytea[], $2::bytea[])
             ON CONFLICT DO NOTHING",
            &links_blob,
            &links_part
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn put_parts(tx: &mut PgConnection, blobs: &[NewBlob]) -> Result<()> {
    let mut wanted: HashMap<[u8; 32], &NewPart> = HashMap::new();
    for p in blobs.iter().flat_map(|b| &b.parts) {
        wanted.entry(p.sha256).or_insert(p);
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut list: Vec<Vec<u8>> = wanted.keys().map(|h| h.to_vec()).collect();
    list.sort_unstable();
    let present: Vec<Vec<u8>> = sqlx::query_scalar!(
        "SELECT sha256 FROM parts WHERE sha256 = ANY($1::bytea[]) ORDER BY sha256 FOR KEY SHARE",
        &list
    )
    .fetch_all(&mut *tx)
    .await?;
    for h in &present {
        if let Ok(h) = <[u8; 32]>::try_from(h.as_slice()) {
            wanted.remove(&h);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut new: Vec<&NewPart> = wanted.into_values().collect();
    new.sort_unstable_by_key(|p| p.sha256);
    let hashes: Vec<Vec<u8>> = new.iter().map(|p| p.sha256.to_vec()).collect();
    let sizes: Vec<i64> = new.iter().map(|p| p.size).collect();
    let forms: Vec<i16> = new.iter().map(|p| p.form).collect();
    let data: Vec<&[u8]> = new.iter().map(|p| p.zstd.as_slice()).collect();
    sqlx::query!(
        "INSERT INTO parts (sha256, size, form, zstd)
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[])
         ON CONFLICT (sha256) DO NOTHING",
        &hashes,
        &sizes,
        &forms,
        &data as _
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The raw bytes of a blob, reassembled and checked against its SHA-256 off the async threads;
/// `None` when it is not stored or no longer matches.
pub async fn read_verified(conn: &mut PgConnection, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    let Some(row) = sqlx::query!(
        "SELECT size, layout, zstd FROM blobs WHERE sha256 = $1",
        sha256.as_slice()
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let parts = if row.layout == LAYOUT_SKELETON {
        parts_for(conn, &[sha256.to_vec()]).await?
    } else {
        PartMap::default()
    };
    let expected = *sha256;
    let raw = crate::telemetry::spawn_blocking_in_span(move || {
        match decode(&expected, row.size, row.layout, &row.zstd, &parts) {
            Ok(raw) => Some(raw),
            Err(e) => {
                tracing::error!(sha256 = %hex::encode(expected), error = %e, "stored message does not verify");
                None
            }
        }
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

/// The parts referenced by `blob_hashes` (before they are deleted: their links cascade).
pub async fn parts_of(tx: &mut PgConnection, blob_hashes: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    Ok(sqlx::query_scalar!(
        "SELECT DISTINCT part_sha256 FROM blob_parts WHERE blob_sha256 = ANY($1::bytea[])",
        blob_hashes
    )
    .fetch_all(&mut *tx)
    .await?)
}

/// Deletes those of `hashes` that no blob references any more, in the caller's transaction;
/// returns how many and their encoded bytes. Locking mirrors blob collection: a part that an
/// ingest holds `FOR KEY SHARE` (see [`put_many`]) is skipped, and the foreign key from
/// `blob_parts` is the last line — a referenced part can never be deleted.
pub async fn collect_parts(tx: &mut PgConnection, hashes: &[Vec<u8>]) -> Result<(u64, i64)> {
    if hashes.is_empty() {
        return Ok((0, 0));
    }
    let locked = sqlx::query_scalar!(
        "SELECT sha256 FROM parts WHERE sha256 = ANY($1::bytea[]) ORDER BY sha256
         FOR UPDATE SKIP LOCKED",
        hashes,
    )
    .fetch_all(&mut *tx)
    .await?;
    if locked.is_empty() {
        return Ok((0, 0));
    }
    let gone = sqlx::query!(
        r#"WITH gone AS (
               DELETE FROM parts p WHERE p.sha256 = ANY($1::bytea[])
                 AND NOT EXISTS (SELECT 1 FROM blob_parts u WHERE u.part_sha256 = p.sha256)
               RETURNING p.size)
           SELECT count(*) AS "parts!", coalesce(sum(size), 0)::bigint AS "bytes!" FROM gone"#,
        &locked,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((gone.parts as u64, gone.bytes))
}

/// Parts no blob references, older than `grace`, up to `limit`: left by blobs deleted outside
/// blob collection (a rescan replacing a message) or by interrupted runs.
pub async fn orphan_parts(
    conn: &mut PgConnection,
    grace_secs: f64,
    limit: i64,
) -> Result<Vec<Vec<u8>>> {
    Ok(sqlx::query_scalar!(
        "SELECT p.sha256 FROM parts p
         WHERE p.created_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM blob_parts u WHERE u.part_sha256 = p.sha256)
         LIMIT $2",
        grace_secs,
        limit,
    )
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn round_trip(raw: &[u8], cuts: &[Range<usize>]) -> NewBlob {
        let sha = sha256(raw);
        let blob = encode(raw, sha, cuts, 3).unwrap();
        let parts = PartMap(
            blob.parts
                .iter()
                .map(|p| {
                    (
                        p.sha256.to_vec(),
                        StoredPart {
                            size: p.size,
                            form: p.form,
                            zstd: p.zstd.clone(),
                        },
                    )
                })
                .collect(),
        );
        let back = decode(&sha, blob.size, blob.layout, &blob.zstd, &parts).unwrap();
        assert_eq!(back, raw);
        blob
    }

    fn wrapped(data: &[u8], width: usize, ending: &str, final_break: bool) -> Vec<u8> {
        let text = BASE64_STANDARD.encode(data);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(width)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let mut out = lines.join(ending);
        if final_break {
            out.push_str(ending);
        }
        out.into_bytes()
    }

    #[test]
    fn regular_base64_is_stored_decoded_and_comes_back_byte_for_byte() {
        let data: Vec<u8> = (0..9000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for (width, ending, fb) in [
            (76, "\r\n", true),
            (76, "\n", false),
            (64, "\r\n", false),
            (72, "\n", true),
        ] {
            let body = wrapped(&data, width, ending, fb);
            let mut raw = b"Subject: x\r\n\r\n--b\r\n\r\n".to_vec();
            let start = raw.len();
            raw.extend_from_slice(&body);
            let end = raw.len();
            raw.extend_from_slice(b"\r\n--b--\r\n");
            let blob = round_trip(&raw, &[start..end]);
            assert_eq!(blob.layout, LAYOUT_SKELETON);
            assert_eq!(blob.parts[0].form, FORM_BASE64, "{width} {ending:?} {fb}");
        }
    }

    #[test]
    fn irregular_or_broken_base64_is_kept_verbatim() {
        let data = vec![7u8; 6000];
        let mut body = wrapped(&data, 76, "\r\n", true);
        body.insert(100, b' ');
        let truncated = &wrapped(&data, 76, "\r\n", false)[..5001];
        for b in [body.as_slice(), truncated, &[0xffu8; 5000][..]] {
            let blob = round_trip(b, &[0..b.len()]);
            assert_eq!(blob.parts[0].form, FORM_VERBATIM);
        }
    }

    #[test]
    fn small_overlapping_or_out_of_range_cuts_keep_the_message_whole() {
        let raw = vec![b'a'; 10_000];
        assert_eq!(round_trip(&raw, &[0..100]).layout, LAYOUT_WHOLE_EXAMINED);
        assert_eq!(
            round_trip(&raw, &[5000..20_000]).layout,
            LAYOUT_WHOLE_EXAMINED
        );
        let blob = round_trip(&raw, &[0..5000, 4000..9000, 5000..10_000]);
        assert_eq!(blob.parts.len(), 1, "identical bytes are one part");
    }

    #[test]
    fn a_missing_or_damaged_part_is_an_error_not_wrong_bytes() {
        let raw = vec![b'z'; 9000];
        let sha = sha256(&raw);
        let blob = encode(&raw, sha, &[100..8000], 3).unwrap();
        let err = decode(
            &sha,
            blob.size,
            blob.layout,
            &blob.zstd,
            &PartMap::default(),
        );
        assert!(matches!(err, Err(DecodeError::MissingPart(_))));
        let p = &blob.parts[0];
        let wrong = PartMap(HashMap::from([(
            p.sha256.to_vec(),
            StoredPart {
                size: p.size,
                form: FORM_VERBATIM,
                zstd: zstd::bulk::compress(&vec![b'y'; p.size as usize], 1).unwrap(),
            },
        )]));
        let err = decode(&sha, blob.size, blob.layout, &blob.zstd, &wrong);
        assert!(matches!(err, Err(DecodeError::BadPart(_))));
    }
}
