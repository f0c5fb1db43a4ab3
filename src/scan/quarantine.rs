//! The quarantine: infected messages kept sealed, out of the archive, until an administrator
//! releases or deletes them or they expire.
//!
//! Functions take a `&mut PgConnection` so callers can pass a transaction: the ingest
//! pipeline quarantines a message in the same transaction that moves the folder position.

use sha2::{Digest, Sha256};
use sqlx::{Acquire, PgConnection, PgExecutor};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::facts::{MessageFacts, Source};
use super::seal::{SealedMessage, open_message, seal_message};
use super::{Scanner, Verdict};
use crate::auth::Grants;
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// A quarantined message's metadata (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Uuid,
    pub account_id: Option<i64>,
    pub folder: String,
    pub uidvalidity: Option<i64>,
    pub uid: Option<i64>,
    pub sha256: String,
    pub size: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub sent_at: Option<OffsetDateTime>,
    pub virus_name: String,
    pub source: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub released_at: Option<OffsetDateTime>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

/// Which entries [`list`] returns; the default is "everything still held, newest first".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub account_id: Option<i64>,
    /// Part of the virus name, case-insensitive.
    pub virus: Option<String>,
    /// Part of the subject or sender, case-insensitive.
    pub text: Option<String>,
    pub include_released: bool,
    /// The reader's archive grants (`Grants::as_bind`): `None` is every account. Entries
    /// without an account are shown only to readers of every account.
    pub accounts: Option<Vec<i64>>,
    /// 0 means the default page size.
    pub limit: i64,
    pub offset: i64,
}

const DEFAULT_PAGE: i64 = 100;

/// The associated data binding sealed bytes to their row.
fn row_context(id: Uuid, sha256: &str) -> String {
    format!("quarantine:{id}:{sha256}")
}

/// Quarantines `raw`. `expiry_days` = 0 keeps it until someone acts. Returns the new id, or
/// `None` when this server message (account, folder, uidvalidity, uid) is already held, so a
/// replayed batch adds nothing twice.
pub async fn put(
    conn: &mut PgConnection,
    keys: &SealingKeys,
    facts: &MessageFacts,
    raw: &[u8],
    virus_name: &str,
    source: Source,
    expiry_days: u32,
) -> Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    let sealed = seal_message(keys, raw, &row_context(id, &facts.sha256));
    let expires_at = (expiry_days > 0)
        .then(|| OffsetDateTime::now_utc() + Duration::days(i64::from(expiry_days)));
    let inserted = sqlx::query_scalar!(
        "INSERT INTO quarantine (id, account_id, folder, uidvalidity, uid, sha256, size, \
             message_id, subject, from_addr, sent_at, virus_name, source, wrapped_key, \
             sealed_raw, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (account_id, folder, uidvalidity, uid) WHERE uid IS NOT NULL DO NOTHING \
         RETURNING id",
        id,
        facts.account_id,
        facts.folder,
        facts.uidvalidity,
        facts.uid,
        facts.sha256,
        facts.size,
        facts.message_id,
        facts.subject,
        facts.from,
        facts.date,
        virus_name,
        source.as_str(),
        sealed.wrapped_key,
        sealed.ciphertext,
        expires_at,
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| Error::context("store a quarantined message", e))?;
    if let Some(id) = inserted {
        tracing::warn!(quarantine_id = %id, account_id = ?facts.account_id, virus = virus_name,
            sha256 = %facts.sha256, source = source.as_str(), "message quarantined");
    }
    Ok(inserted)
}

/// After a folder's UIDVALIDITY changed, entries still held for this folder under an earlier
/// one follow their content to its new positions (UID, SHA-256 hex), the n-th held copy of a
/// content to its n-th position, instead of the message being quarantined a second time. An
/// entry keeps its id, seal, expiry and history. Returns the UIDs now held.
pub async fn rebind_positions(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    positions: &[(i64, String)],
) -> Result<Vec<i64>> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let uids: Vec<i64> = positions.iter().map(|(uid, _)| *uid).collect();
    let shas: Vec<String> = positions.iter().map(|(_, sha)| sha.clone()).collect();
    Ok(sqlx::query_scalar!(
        r#"WITH t AS (
             SELECT uid, sha, row_number() OVER (PARTITION BY sha ORDER BY uid) AS n
             FROM unnest($4::bigint[], $5::text[]) AS t(uid, sha)
             WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.account_id = $1
                               AND q.folder = $2 AND q.uidvalidity = $3 AND q.uid = t.uid)),
         locked AS (
             SELECT id, sha256, uid FROM quarantine
             WHERE account_id = $1 AND folder = $2 AND uidvalidity <> $3 AND uid IS NOT NULL
               AND released_at IS NULL AND sha256 IN (SELECT sha FROM t)
             FOR UPDATE SKIP LOCKED),
         old AS (
             SELECT id, sha256, row_number() OVER (PARTITION BY sha256 ORDER BY uid, id) AS n
             FROM locked)
         UPDATE quarantine q SET uidvalidity = $3, uid = t.uid
         FROM old JOIN t ON t.sha = old.sha256 AND t.n = old.n
         WHERE q.id = old.id
         RETURNING q.uid AS "uid!""#,
        account_id,
        folder,
        uidvalidity,
        &uids,
        &shas,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Entries matching `filter`, newest first.
pub async fn list(db: impl PgExecutor<'_>, filter: &Filter) -> Result<Vec<Entry>> {
    let limit = if filter.limit > 0 {
        filter.limit
    } else {
        DEFAULT_PAGE
    };
    let like = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("%{}%", escape_like(s)))
    };
    sqlx::query_as!(
        Entry,
        "SELECT id, account_id, folder, uidvalidity, uid, sha256, size, message_id, subject, \
             from_addr, sent_at, virus_name, source, created_at, expires_at, released_at, \
             released_by, release_reason \
         FROM quarantine \
         WHERE ($1::bigint IS NULL OR account_id = $1) \
           AND ($2::text IS NULL OR virus_name ILIKE $2) \
           AND ($3::text IS NULL OR subject ILIKE $3 OR from_addr ILIKE $3) \
           AND ($4 OR released_at IS NULL) \
           AND ($7::bigint[] IS NULL OR account_id = ANY($7)) \
         ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6",
        filter.account_id,
        like(&filter.virus),
        like(&filter.text),
        filter.include_released,
        limit,
        filter.offset.max(0),
        filter.accounts.as_deref(),
    )
    .fetch_all(db)
    .await
    .map_err(|e| Error::context("list the quarantine", e))
}

/// One entry, or `NotFound`.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Entry> {
    get_visible(db, &Grants::All, id).await
}

/// One entry if `grants` cover its account, else `NotFound` (exactly as for a missing one, so
/// entries of other accounts cannot be probed).
pub async fn get_visible(db: impl PgExecutor<'_>, grants: &Grants, id: Uuid) -> Result<Entry> {
    sqlx::query_as!(
        Entry,
        "SELECT id, account_id, folder, uidvalidity, uid, sha256, size, message_id, subject, \
             from_addr, sent_at, virus_name, source, created_at, expires_at, released_at, \
             released_by, release_reason \
         FROM quarantine WHERE id = $1 AND ($2::bigint[] IS NULL OR account_id = ANY($2))",
        id,
        grants.as_ids(),
    )
    .fetch_optional(db)
    .await
    .map_err(|e| Error::context("read a quarantine entry", e))?
    .ok_or(Error::NotFound)
}

/// The original message bytes, unsealed and checked against the stored SHA-256.
pub async fn open_raw(
    db: impl PgExecutor<'_>,
    keys: &SealingKeys,
    id: Uuid,
) -> Result<Zeroizing<Vec<u8>>> {
    let row = sqlx::query!(
        "SELECT sha256, wrapped_key, sealed_raw FROM quarantine WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await
    .map_err(|e| Error::context("read a quarantined message", e))?
    .ok_or(Error::NotFound)?;
    let sha256 = row.sha256;
    let sealed = SealedMessage {
        wrapped_key: row.wrapped_key,
        ciphertext: row.sealed_raw,
    };
    let raw = open_message(keys, &sealed, &row_context(id, &sha256))?;
    if hex::encode(Sha256::digest(raw.as_slice())) != sha256 {
        return Err(Error::Internal(format!(
            "quarantined message {id} does not match its recorded SHA-256"
        )));
    }
    Ok(raw)
}

/// Deletes an entry and its sealed bytes for good.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let done = sqlx::query!("DELETE FROM quarantine WHERE id = $1", id)
        .execute(conn)
        .await
        .map_err(|e| Error::context("delete a quarantine entry", e))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    tracing::info!(quarantine_id = %id, "quarantine entry deleted");
    Ok(())
}

/// A message let out of the quarantine: its bytes go to the archive pipeline with `verdict`.
#[derive(Debug)]
pub struct Released {
    pub entry: Entry,
    pub raw: Zeroizing<Vec<u8>>,
    /// The verdict of the re-scan done before release.
    pub verdict: Verdict,
}

/// What to do when the re-scan before a release still finds a virus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfStillInfected {
    Refuse,
    /// The administrator has judged it a false positive; the message is archived flagged.
    ReleaseAnyway,
}

/// Re-scans a held message and, unless that fails or (by default) still finds a virus, marks
/// it released by `by` for `reason` and hands back its bytes.
pub async fn release(
    conn: &mut PgConnection,
    keys: &SealingKeys,
    scanner: &Scanner,
    id: Uuid,
    by: &str,
    reason: &str,
    if_infected: IfStillInfected,
) -> Result<Released> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid(
            "reason",
            "say why this message is safe to release",
        ));
    }
    let entry = get(&mut *conn, id).await?;
    if entry.released_at.is_some() {
        return Err(Error::Conflict("this message was already released".into()));
    }
    let raw = open_raw(&mut *conn, keys, id).await?;
    let verdict = scanner.scan(&raw).await;
    match (&verdict, if_infected) {
        (Verdict::Error { reason }, _) => {
            return Err(Error::Conflict(format!(
                "the message could not be re-scanned ({reason}); try again when the virus scanner is back"
            )));
        }
        (Verdict::Infected { signature }, IfStillInfected::Refuse) => {
            return Err(Error::Conflict(format!(
                "the re-scan still finds {signature}; release it anyway only if you are sure it is a false positive"
            )));
        }
        _ => {}
    }
    let done = sqlx::query!(
        "UPDATE quarantine SET released_at = now(), released_by = $2, release_reason = $3 \
         WHERE id = $1 AND released_at IS NULL",
        id,
        by,
        reason,
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| Error::context("mark a quarantine entry released", e))?;
    if done.rows_affected() == 0 {
        return Err(Error::Conflict("this message was already released".into()));
    }
    tracing::warn!(quarantine_id = %id, released_by = by, rescan = verdict.label(),
        "quarantined message released");
    let entry = get(&mut *conn, id).await?;
    Ok(Released {
        entry,
        raw,
        verdict,
    })
}

/// Deletes every entry whose expiry is at or before `now`; returns how many went.
pub async fn expire(conn: &mut PgConnection, now: OffsetDateTime) -> Result<u64> {
    let mut tx = conn.begin().await?;
    let gone = sqlx::query!(
        "DELETE FROM quarantine WHERE expires_at <= $1 RETURNING account_id, size",
        now
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Error::context("expire quarantine entries", e))?;
    let deleted = gone.len() as u64;
    if deleted > 0 {
        let bytes: i64 = gone.iter().map(|r| r.size).sum();
        crate::retention::remove::count(
            &mut tx,
            crate::retention::Cause::QuarantineExpiry,
            gone.into_iter()
                .filter_map(|r| r.account_id.map(|a| (a, r.size))),
        )
        .await?;
        let actor = crate::audit::Actor {
            username: "system:quarantine".into(),
            ..crate::audit::Actor::default()
        };
        crate::audit::record(
            &mut tx,
            &crate::audit::AuditEvent::by(&actor, crate::audit::Action::QuarantineExpire)
                .every_archive()
                .details(serde_json::json!({ "deleted": deleted, "bytes": bytes })),
        )
        .await?;
        tracing::info!(deleted, "expired quarantine entries deleted");
    }
    tx.commit().await?;
    Ok(deleted)
}

/// `%`, `_` and `\` match literally in a user's filter text.
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Re-wraps every quarantined message's data key still under an older sealing key (key
/// rotation); the messages themselves are not re-encrypted. The caller commits.
pub async fn reseal_all(tx: &mut PgConnection, keys: &SealingKeys) -> Result<u64> {
    let rows =
        sqlx::query!("SELECT id, sha256, wrapped_key FROM quarantine ORDER BY id FOR UPDATE")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| Error::context("read the quarantine's data keys", e))?;
    let mut changed = 0;
    for row in rows {
        let (id, sha256, wrapped) = (row.id, row.sha256, row.wrapped_key);
        if !keys.needs_reseal(&wrapped) {
            continue;
        }
        let rewrapped = crate::scan::seal::rewrap_key(keys, &wrapped, &row_context(id, &sha256))
            .map_err(|e| {
                Error::context(format!("open the data key of quarantine entry {id}"), e)
            })?;
        sqlx::query!(
            "UPDATE quarantine SET wrapped_key = $2 WHERE id = $1",
            id,
            rewrapped
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::context("store a re-wrapped data key", e))?;
        changed += 1;
    }
    Ok(changed)
}
