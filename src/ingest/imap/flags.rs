//! Following flag changes made on the server after a message was archived (read, answered,
//! flagged, keywords), for accounts that ask for it. With CONDSTORE (RFC 7162) a pass asks only
//! for the messages changed since the folder's stored HIGHESTMODSEQ; without it every archived
//! message's flags are fetched and compared. A Gmail account (see [`super::gmail`]) follows its
//! messages' labels the same way (`X-GM-LABELS`). The flags, labels and the new mod-sequence
//! commit in one transaction, so a pass cut short asks again for the same changes.

use futures::StreamExt;
use sqlx::PgPool;

use super::{Session, Timeouts, timed};
use crate::archive::labels;
use crate::archive::messages::Place;
use crate::error::Result;

/// Rows updated per statement.
const CHUNK: usize = 5000;

/// Brings the archived copies of `place` (archive folder name) in line with the flags on the
/// server, and with `gmail_labels` their labels too; the folder must be selected or examined.
/// `highest_modseq` is what EXAMINE reported when CONDSTORE is enabled. Returns how many
/// archived copies changed.
pub async fn follow(
    pool: &PgPool,
    session: &mut Session,
    t: Timeouts,
    place: Place<'_>,
    highest_modseq: Option<u64>,
    gmail_labels: bool,
) -> Result<u64> {
    let Place {
        account_id,
        folder,
        uidvalidity,
    } = place;
    let state = sqlx::query!(
        "SELECT last_uid, flags_modseq FROM sync_state
         WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3",
        account_id,
        folder,
        uidvalidity
    )
    .fetch_optional(pool)
    .await?;
    let Some(state) = state else { return Ok(0) };
    if state.last_uid == 0 {
        return Ok(0);
    }
    let known = state.flags_modseq.and_then(|m| u64::try_from(m).ok());
    let items = if gmail_labels {
        "(UID FLAGS X-GM-LABELS)"
    } else {
        "(UID FLAGS)"
    };
    let query = match (highest_modseq, known) {
        (Some(now), Some(known)) if known >= now => return Ok(0),
        (Some(_), Some(known)) => format!("{items} (CHANGEDSINCE {known})"),
        _ => items.to_string(),
    };
    let set = format!("1:{}", state.last_uid);
    let changes = timed(t.command, "UID FETCH (flags)", async {
        let mut stream = session.uid_fetch(&set, &query).await?;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let f = item?;
            if let Some(uid) = f.uid.map(i64::from).filter(|u| *u <= state.last_uid) {
                let mut flags: Vec<String> = f
                    .flags()
                    .filter_map(|f| super::fetch::flag_text(&f))
                    .collect();
                flags.sort();
                let labels = super::gmail::labels_of(&f).filter(|_| gmail_labels);
                out.push(serde_json::json!({ "uid": uid, "flags": flags, "labels": labels }));
            }
        }
        Ok::<_, async_imap::error::Error>(out)
    })
    .await?;
    let seen: Vec<String> = changes
        .iter()
        .filter_map(|c| c["labels"].as_array())
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    let mut tx = pool.begin().await?;
    labels::add(&mut tx, account_id, &super::gmail::names(&seen)).await?;
    let mut changed = 0u64;
    for chunk in changes.chunks(CHUNK) {
        // Compared as sets: servers do not promise an order. Labels (sorted when fetched and
        // when stored) only when the server sent them.
        changed += sqlx::query!(
            "UPDATE messages m SET flags = u.flags, labels = coalesce(u.labels, m.labels)
             FROM jsonb_to_recordset($4::jsonb) AS u(uid bigint, flags text[], labels text[])
             WHERE m.account_id = $1 AND m.folder = $2 AND m.uidvalidity = $3 AND m.uid = u.uid
               AND (NOT (m.flags @> u.flags AND m.flags <@ u.flags)
                    OR (u.labels IS NOT NULL AND m.labels IS DISTINCT FROM u.labels))",
            account_id,
            folder,
            uidvalidity,
            serde_json::Value::Array(chunk.to_vec()),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    let modseq = highest_modseq.and_then(|m| i64::try_from(m).ok());
    sqlx::query!(
        "UPDATE sync_state SET flags_modseq = $4
         WHERE account_id = $1 AND folder = $2 AND uidvalidity = $3",
        account_id,
        folder,
        uidvalidity,
        modseq
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if changed > 0 {
        tracing::info!(
            account_id,
            folder,
            changed,
            "flag changes on the server followed"
        );
    }
    Ok(changed)
}
