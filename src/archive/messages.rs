//! Archived copies of messages and their attachment rows. Inserts are idempotent: a copy that
//! is already archived (same account, folder, UIDVALIDITY and UID; or, for imports, the same
//! content in the same account) is left alone, so a replayed batch adds nothing.

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::archive::parse::ParsedMessage;
use crate::error::Result;
use crate::scan::ScanStatus;

/// One message copy to archive.
pub struct NewMessage {
    pub account_id: i64,
    pub folder: String,
    /// None for imported mail.
    pub uidvalidity: Option<i64>,
    pub uid: Option<i64>,
    pub sha256: [u8; 32],
    pub size: i64,
    pub internal_date: Option<OffsetDateTime>,
    pub flags: Vec<String>,
    pub parsed: ParsedMessage,
    /// The scan stage's verdict (`NotScanned` with scanning off).
    pub scan_status: ScanStatus,
    /// Set when the message is archived flagged as infected.
    pub virus_name: Option<String>,
    /// The search vector as `tsvector` text, from [`crate::archive::search::message_vector`].
    pub search: String,
    /// The vector still lacks attachment text: the background stage adds it.
    pub search_pending: bool,
}

/// Inserts the messages not archived yet, with their attachments and search vectors.
/// Returns how many rows were new.
pub async fn insert_many(tx: &mut PgConnection, batch: &[NewMessage]) -> Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let n = batch.len();
    let mut account = Vec::with_capacity(n);
    let mut folder = Vec::with_capacity(n);
    let mut uidvalidity = Vec::with_capacity(n);
    let mut uid = Vec::with_capacity(n);
    let mut sha = Vec::with_capacity(n);
    let mut size = Vec::with_capacity(n);
    let mut internal_date = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut message_id = Vec::with_capacity(n);
    let mut subject = Vec::with_capacity(n);
    let mut from = Vec::with_capacity(n);
    let mut to = Vec::with_capacity(n);
    let mut cc = Vec::with_capacity(n);
    let mut bcc = Vec::with_capacity(n);
    let mut reply_to = Vec::with_capacity(n);
    let mut in_reply_to = Vec::with_capacity(n);
    let mut refs = Vec::with_capacity(n);
    let mut date = Vec::with_capacity(n);
    let mut attachment_count = Vec::with_capacity(n);
    let mut snippet = Vec::with_capacity(n);
    let mut parse_error = Vec::with_capacity(n);
    let mut search = Vec::with_capacity(n);
    let mut search_pending = Vec::with_capacity(n);
    let mut scan_status = Vec::with_capacity(n);
    let mut virus_name = Vec::with_capacity(n);
    for m in batch {
        let p = &m.parsed;
        account.push(m.account_id);
        folder.push(m.folder.as_str());
        uidvalidity.push(m.uidvalidity);
        uid.push(m.uid);
        sha.push(m.sha256.to_vec());
        size.push(m.size);
        internal_date.push(m.internal_date);
        flags.push(m.flags.join(" "));
        message_id.push(p.message_id.as_deref());
        subject.push(p.subject.as_deref());
        from.push(p.from.as_deref());
        to.push(p.to.as_deref());
        cc.push(p.cc.as_deref());
        bcc.push(p.bcc.as_deref());
        reply_to.push(p.reply_to.as_deref());
        in_reply_to.push(p.in_reply_to.as_deref());
        refs.push(p.references.as_deref());
        date.push(p.date);
        attachment_count.push(p.attachments.len() as i32);
        snippet.push(p.snippet.as_deref());
        parse_error.push(p.parse_error.as_deref());
        search.push(m.search.as_str());
        search_pending.push(m.search_pending);
        scan_status.push(m.scan_status);
        virus_name.push(m.virus_name.as_deref());
    }
    // One statement per batch; the search vector was built by the application's tokenizer.
    let inserted: Vec<(i64, i32)> = sqlx::query!(
        "INSERT INTO messages (account_id, folder, uidvalidity, uid, blob_sha256, size,
             internal_date, flags, message_id, subject, from_addr, to_addrs, cc_addrs, bcc_addrs,
             reply_to, in_reply_to, refs, date, attachment_count, snippet, parse_error, search,
             scan_status, virus_name, search_pending)
         SELECT t.account_id, t.folder, t.uidvalidity, t.uid, t.sha, t.size, t.internal_date,
             string_to_array(t.flags, ' '), t.message_id, t.subject, t.from_addr, t.to_addrs,
             t.cc_addrs, t.bcc_addrs, t.reply_to, t.in_reply_to, t.refs, t.date,
             t.attachment_count, t.snippet, t.parse_error, t.search::tsvector,
             t.scan_status, t.virus_name, t.search_pending
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[],
             $6::bigint[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[],
             $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
             $18::timestamptz[], $19::int[], $20::text[], $21::text[], $22::text[], $23::text[],
             $24::text[], $25::boolean[])
             WITH ORDINALITY AS t(account_id, folder, uidvalidity, uid, sha, size, internal_date,
             flags, message_id, subject, from_addr, to_addrs, cc_addrs, bcc_addrs, reply_to,
             in_reply_to, refs, date, attachment_count, snippet, parse_error, search,
             scan_status, virus_name, search_pending, ord)
         ORDER BY t.ord
         ON CONFLICT DO NOTHING
         RETURNING id, attachment_count",
        &account,
        &folder as _,
        &uidvalidity as _,
        &uid as _,
        &sha,
        &size,
        &internal_date as _,
        &flags,
        &message_id as _,
        &subject as _,
        &from as _,
        &to as _,
        &cc as _,
        &bcc as _,
        &reply_to as _,
        &in_reply_to as _,
        &refs as _,
        &date as _,
        &attachment_count,
        &snippet as _,
        &parse_error as _,
        &search as _,
        &scan_status as _,
        &virus_name as _,
        &search_pending,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.attachment_count))
    .collect();
    if inserted.iter().any(|(_, count)| *count > 0) {
        insert_attachments(tx, batch, &inserted).await?;
    }
    Ok(inserted.len() as u64)
}

/// Attachment rows for the newly inserted messages. RETURNING gives no input position, so the
/// new rows are matched back by their natural key.
async fn insert_attachments(
    tx: &mut PgConnection,
    batch: &[NewMessage],
    inserted: &[(i64, i32)],
) -> Result<()> {
    let ids: Vec<i64> = inserted.iter().map(|(id, _)| *id).collect();
    let keys: Vec<(i64, Option<i64>, Vec<u8>)> = sqlx::query!(
        "SELECT id, uid, blob_sha256 FROM messages WHERE id = ANY($1::bigint[])",
        &ids
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.uid, r.blob_sha256))
    .collect();
    let mut message = Vec::new();
    let mut part = Vec::new();
    let mut name = Vec::new();
    let mut ctype = Vec::new();
    let mut size = Vec::new();
    for (id, uid, sha) in keys {
        let Some(m) = batch
            .iter()
            .find(|m| m.uid == uid && m.sha256.as_slice() == sha.as_slice())
        else {
            continue;
        };
        for a in &m.parsed.attachments {
            message.push(id);
            part.push(a.part_index);
            name.push(a.filename.as_deref());
            ctype.push(a.content_type.as_deref());
            size.push(a.size);
        }
    }
    sqlx::query!(
        "INSERT INTO attachments (message_id, part_index, filename, content_type, size)
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[])",
        &message,
        &part,
        &name as _,
        &ctype as _,
        &size,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How many copies an account has archived.
pub async fn count_for_account(db: impl PgExecutor<'_>, account_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages WHERE account_id = $1"#,
        account_id
    )
    .fetch_one(db)
    .await?)
}

/// How many copies each account has archived, by account id (accounts with none are absent).
pub async fn count_by_account(db: impl PgExecutor<'_>) -> Result<HashMap<i64, i64>> {
    Ok(
        sqlx::query!(r#"SELECT account_id, count(*) AS "n!" FROM messages GROUP BY account_id"#)
            .fetch_all(db)
            .await?
            .into_iter()
            .map(|r| (r.account_id, r.n))
            .collect(),
    )
}

/// After a folder's UIDVALIDITY changed, copies archived under the old one are moved to the
/// new UIDs when the same content turns up again, instead of being stored a second time.
/// Cheap when nothing changed (no old rows match).
pub async fn rebind_to_new_uidvalidity(
    tx: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    batch: &[NewMessage],
) -> Result<()> {
    let positions: Vec<(i64, [u8; 32])> = batch
        .iter()
        .filter_map(|m| m.uid.map(|uid| (uid, m.sha256)))
        .collect();
    rebind_positions(tx, account_id, folder, uidvalidity, &positions).await?;
    Ok(())
}

/// [`rebind_to_new_uidvalidity`] for server positions (UID, SHA-256 of the content): each old
/// copy moves to one new position, the n-th old copy of a content (in old UID order) to its
/// n-th new position, so a folder holding the same content twice keeps both. A moved row
/// keeps everything else (scan status, legal holds, id). Returns the UIDs that hold a copy at
/// the new place now (moved here, or there already).
pub async fn rebind_positions(
    tx: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    positions: &[(i64, [u8; 32])],
) -> Result<Vec<i64>> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let uids: Vec<i64> = positions.iter().map(|(uid, _)| *uid).collect();
    let shas: Vec<Vec<u8>> = positions.iter().map(|(_, sha)| sha.to_vec()).collect();
    let moved = sqlx::query_scalar!(
        r#"WITH t AS (
             SELECT uid, sha, row_number() OVER (PARTITION BY sha ORDER BY uid) AS n
             FROM unnest($4::bigint[], $5::bytea[]) AS t(uid, sha)
             WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = $1 AND m.folder = $2
                               AND m.uidvalidity = $3 AND m.uid = t.uid)),
         -- SKIP LOCKED: a concurrent batch already moving that row keeps it (at worst this
         -- copy is stored again); never a lock cycle between batches.
         locked AS (
             SELECT m.id, m.blob_sha256, m.uid FROM messages m
             WHERE m.account_id = $1 AND m.folder = $2 AND m.uidvalidity <> $3
               AND m.blob_sha256 IN (SELECT sha FROM t)
             FOR UPDATE OF m SKIP LOCKED),
         old AS (
             SELECT id, blob_sha256,
                    row_number() OVER (PARTITION BY blob_sha256 ORDER BY uid, id) AS n
             FROM locked),
         moved AS (
             UPDATE messages m SET uidvalidity = $3, uid = t.uid
             FROM old JOIN t ON t.sha = old.blob_sha256 AND t.n = old.n
             WHERE m.id = old.id
             RETURNING m.uid)
         SELECT uid AS "uid!" FROM moved
         UNION ALL
         SELECT uid AS "uid!" FROM messages
         WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3 AND uid = ANY($4)"#,
        account_id,
        folder,
        uidvalidity,
        &uids,
        &shas,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(moved)
}

/// Whether the folder holds a copy with this content under `uidvalidity`.
pub async fn folder_holds(
    conn: &mut PgConnection,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    sha256: &[u8],
) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM messages
             WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3 AND blob_sha256 = $4)
           AS "held!""#,
        account_id,
        folder,
        uidvalidity,
        sha256,
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Where a source's rows live: account, folder, UIDVALIDITY.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub account_id: i64,
    pub folder: &'a str,
    pub uidvalidity: i64,
}

/// Replaces the labels of the messages with these UIDs.
pub async fn set_labels(
    tx: &mut PgConnection,
    place: Place<'_>,
    labels: &[(i64, Vec<String>)],
) -> Result<()> {
    for (uid, set) in labels {
        sqlx::query!(
            "UPDATE messages SET labels = $5 WHERE account_id = $1 AND folder = $2
               AND uidvalidity = $3 AND uid = $4 AND labels IS DISTINCT FROM $5",
            place.account_id,
            place.folder,
            place.uidvalidity,
            uid,
            set,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Adds and removes labels of the messages with these UIDs (a label in both is removed).
pub async fn change_labels(
    tx: &mut PgConnection,
    place: Place<'_>,
    changes: &[(i64, Vec<String>, Vec<String>)],
) -> Result<()> {
    for (uid, added, removed) in changes {
        sqlx::query!(
            "UPDATE messages SET labels = (
                 SELECT coalesce(array_agg(DISTINCT l ORDER BY l), '{}')
                 FROM unnest(labels || $5::text[]) AS l WHERE l <> ALL($6::text[]))
             WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3 AND uid = $4",
            place.account_id,
            place.folder,
            place.uidvalidity,
            uid,
            added,
            removed,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Which of `uids` are archived in this place already.
pub async fn stored_uids(
    conn: &mut PgConnection,
    place: Place<'_>,
    uids: &[i64],
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT uid AS "uid!" FROM messages WHERE account_id = $1 AND folder = $2
           AND uidvalidity = $3 AND uid = ANY($4::bigint[])"#,
        place.account_id,
        place.folder,
        place.uidvalidity,
        uids,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// The archive accounts the messages `ids` belong to (for binding an audit row to them).
pub async fn accounts_of(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT DISTINCT account_id AS "account_id!" FROM messages WHERE id = ANY($1) ORDER BY 1"#,
        ids
    )
    .fetch_all(db)
    .await?)
}
