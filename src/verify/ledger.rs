//! The checks done in SQL alone: rows that point nowhere, and the completeness ledger.
//! Each query streams its findings, so a badly broken archive does not fill memory.

use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::PgPool;

use super::archive::Scope;
use super::{Observer, Problem, ProblemKind};
use crate::error::Result;

struct Finding {
    message_id: Option<i64>,
    account: Option<String>,
    folder: Option<String>,
    detail: String,
}

/// Runs the row and ledger checks. Returns (message rows found without a blob, problems).
pub(super) async fn check_rows(
    pool: &PgPool,
    scope: &Scope,
    observer: &dyn Observer,
) -> Result<(u64, u64)> {
    // Message rows whose blob is not stored (every such row is a message checked and failed).
    let missing_blobs = sqlx::query_as!(
        Finding,
        r#"SELECT m.id AS "message_id?", a.name AS "account?", m.folder AS "folder?",
                  'points at blob ' || left(encode(m.blob_sha256, 'hex'), 12)
                    || ', which is not stored' AS "detail!"
           FROM messages m LEFT JOIN accounts a ON a.id = m.account_id
           WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = m.blob_sha256)
             AND ($1::bigint IS NULL OR m.account_id = $1)
           ORDER BY m.id"#,
        scope.account_id,
    )
    .fetch(pool);
    let missing = report(missing_blobs, ProblemKind::MissingBlob, observer).await?;

    // Rows whose parent is gone. The foreign keys prevent this in a healthy database; a
    // restore with triggers disabled or a damaged catalogue does not.
    let dangling = sqlx::query_as!(
        Finding,
        r#"SELECT m.id AS "message_id?", NULL::text AS "account?", m.folder AS "folder?",
                  'belongs to account ' || m.account_id || ', which does not exist' AS "detail!"
           FROM messages m
           WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = m.account_id)
             AND ($1::bigint IS NULL OR m.account_id = $1)
           UNION ALL
           SELECT t.message_id, NULL, NULL,
                  'attachment row ' || t.id || ' belongs to this message, which does not exist'
           FROM attachments t
           WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = t.message_id)
             AND $1::bigint IS NULL
           UNION ALL
           SELECT NULL, NULL, q.folder,
                  'quarantine entry ' || q.id || ' belongs to account ' || q.account_id
                    || ', which does not exist'
           FROM quarantine q
           WHERE q.account_id IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = q.account_id)
             AND ($1::bigint IS NULL OR q.account_id = $1)"#,
        scope.account_id,
    )
    .fetch(pool);
    let dangling = report(dangling, ProblemKind::Dangling, observer).await?;

    // The ledger of IMAP accounts: a folder's position moves in the transaction that stores
    // the mail up to it, and a 'failed' entry is removed in the transaction that archives it.
    // So no copy lies beyond its folder's position, none is both archived and in the ledger,
    // and every IMAP copy's folder has a position.
    let ledger = sqlx::query_as!(
        Finding,
        r#"SELECT m.id AS "message_id?", a.name AS "account?", m.folder AS "folder?",
                  'UID ' || m.uid || ' is archived beyond the folder''s sync position (last UID '
                    || s.last_uid || ')' AS "detail!"
           FROM messages m
           JOIN accounts a ON a.id = m.account_id AND a.kind = 'imap'
           JOIN sync_state s ON s.account_id = m.account_id AND s.folder = m.folder
             AND s.uidvalidity = m.uidvalidity
           WHERE m.uid > s.last_uid AND ($1::bigint IS NULL OR m.account_id = $1)
           UNION ALL
           SELECT m.id, a.name, m.folder,
                  'UID ' || m.uid || ' is archived, yet the ledger lists it as ' || l.kind || ': '
                    || l.reason
           FROM messages m
           JOIN accounts a ON a.id = m.account_id AND a.kind = 'imap'
           JOIN ledger_entries l ON l.account_id = m.account_id AND l.folder = m.folder
             AND l.uidvalidity = m.uidvalidity AND l.uid = m.uid
           WHERE ($1::bigint IS NULL OR m.account_id = $1)
           UNION ALL
           SELECT NULL, a.name, m.folder,
                  count(*) || ' archived copies, but the folder has no sync position'
           FROM messages m
           JOIN accounts a ON a.id = m.account_id AND a.kind = 'imap'
           WHERE m.uid IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM sync_state s
                             WHERE s.account_id = m.account_id AND s.folder = m.folder)
             AND ($1::bigint IS NULL OR m.account_id = $1)
           GROUP BY a.name, m.folder"#,
        scope.account_id,
    )
    .fetch(pool);
    let ledger = report(ledger, ProblemKind::Ledger, observer).await?;
    Ok((missing, missing + dangling + ledger))
}

/// Reports each finding of a check's query to `observer`; returns how many there were.
async fn report(
    mut rows: BoxStream<'_, sqlx::Result<Finding>>,
    kind: ProblemKind,
    observer: &dyn Observer,
) -> Result<u64> {
    let mut found = 0u64;
    while let Some(f) = rows.try_next().await? {
        found += 1;
        observer.problem(&Problem {
            kind,
            message_id: f.message_id,
            account: f.account,
            folder: f.folder,
            detail: f.detail,
        });
    }
    Ok(found)
}
