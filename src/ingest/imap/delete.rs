//! Delete-from-server, when an account asks for it. A message is flagged \Deleted only when
//! its archived copy is committed, its stored blob still decompresses and re-hashes to the
//! recorded SHA-256, and the server dates it older than the account's minimum age.

use futures::StreamExt;
use sqlx::{PgPool, QueryBuilder};
use time::OffsetDateTime;

use super::sync::FolderName;
use super::{Session, Timeouts, fetch::uid_set, timed};
use crate::archive::{blobs, ledger};
use crate::audit::{self, Action, Target};
use crate::error::Result;
use crate::ingest::accounts::Account;
use crate::retention::{self, HeldFilter};

const VERIFY_CHUNK: usize = 200;

#[allow(clippy::too_many_arguments)]
pub async fn delete_archived(
    pool: &PgPool,
    session: &mut Session,
    t: Timeouts,
    account: &Account,
    name: FolderName<'_>,
    uidvalidity: i64,
    min_age_days: i32,
    uidplus: bool,
) -> Result<u64> {
    let folder = name.archive;
    // SELECT (read-write) is needed for STORE; check UIDVALIDITY again under it.
    let mailbox = timed(t.command, "SELECT", session.select(name.wire)).await?;
    if mailbox.uid_validity.map(i64::from) != Some(uidvalidity) {
        tracing::warn!(account = %account.name, folder, "UIDVALIDITY changed since the sync; deleting nothing");
        return Ok(0);
    }
    let cutoff = OffsetDateTime::now_utc() - time::Duration::days(i64::from(min_age_days));
    let before = imap_date(cutoff);
    let old: Vec<u32> = timed(
        t.command,
        "UID SEARCH",
        session.uid_search(format!("UNDELETED BEFORE {before}")),
    )
    .await?
    .into_iter()
    .collect();
    if old.is_empty() {
        return Ok(0);
    }
    let mut candidates: Vec<i64> = old.into_iter().map(i64::from).collect();
    candidates.sort_unstable();
    let verified = verified_uids(pool, account.id, folder, uidvalidity, &candidates).await?;
    if verified.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0u64;
    for chunk in verified.chunks(500) {
        let set = uid_set(chunk);
        timed(t.command, "UID STORE", async {
            let s = session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
            let mut s = std::pin::pin!(s);
            while let Some(r) = s.next().await {
                r?;
            }
            Ok::<_, async_imap::error::Error>(())
        })
        .await?;
        if account.expunge {
            if uidplus {
                timed(t.command, "UID EXPUNGE", async {
                    let s = session.uid_expunge(&set).await?;
                    let mut s = std::pin::pin!(s);
                    while let Some(r) = s.next().await {
                        r?;
                    }
                    Ok::<_, async_imap::error::Error>(())
                })
                .await?;
            } else {
                // Without UIDPLUS, EXPUNGE also removes messages other clients flagged.
                timed(t.command, "EXPUNGE", async {
                    let s = session.expunge().await?;
                    let mut s = std::pin::pin!(s);
                    while let Some(r) = s.next().await {
                        r?;
                    }
                    Ok::<_, async_imap::error::Error>(())
                })
                .await?;
            }
        }
        deleted += chunk.len() as u64;
        // Counted in the ledger and audited together, after the server confirmed.
        let mut tx = pool.begin().await?;
        ledger::add_deleted(&mut tx, account.id, folder, chunk.len() as i64).await?;
        retention::remove::count_deleted_from_server(
            &mut tx,
            account.id,
            folder,
            uidvalidity,
            chunk,
        )
        .await?;
        let actor = audit::Actor {
            username: "system:sync".into(),
            user_agent: "daygle sync".into(),
            ..audit::Actor::default()
        };
        let event = audit::AuditEvent::by(&actor, Action::MailDeleteFromServer)
            .target(Target::Account(account.id))
            .details(serde_json::json!({
                "folder": folder,
                "uidvalidity": uidvalidity,
                "uids": set,
                "count": chunk.len(),
                "expunged": account.expunge,
            }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
    }
    tracing::info!(account = %account.name, folder, deleted, "deleted archived messages from the server");
    Ok(deleted)
}

/// The subset of `uids` whose archived copy is committed, is not under a legal hold (checked
/// in the query) and whose blob re-hashes correctly. A hold placed after this check and
/// before the server confirms the deletion applies from the next run.
async fn verified_uids(
    pool: &PgPool,
    account_id: i64,
    folder: &str,
    uidvalidity: i64,
    uids: &[i64],
) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut conn = pool.acquire().await?;
    let held = HeldFilter::load(&mut conn).await?;
    for chunk in uids.chunks(VERIFY_CHUNK) {
        let mut qb =
            QueryBuilder::new("SELECT m.uid, m.blob_sha256 FROM messages m WHERE m.account_id = ");
        qb.push_bind(account_id)
            .push(" AND m.folder = ")
            .push_bind(folder.to_string())
            .push(" AND m.uidvalidity = ")
            .push_bind(uidvalidity)
            .push(" AND m.uid = ANY(")
            .push_bind(chunk.to_vec())
            .push(") AND NOT ");
        held.push(&mut qb);
        let rows: Vec<(i64, Vec<u8>)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for (uid, sha) in rows {
            let Ok(sha) = <[u8; 32]>::try_from(sha.as_slice()) else {
                continue;
            };
            if blobs::read_verified(&mut conn, &sha).await?.is_some() {
                out.push(uid);
            } else {
                tracing::error!(
                    account_id,
                    folder,
                    uid,
                    "archived copy does not verify; not deleting it from the server"
                );
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// IMAP date (RFC 3501 `date`): 1-Jan-2024.
fn imap_date(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}-{}-{}",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year()
    )
}
