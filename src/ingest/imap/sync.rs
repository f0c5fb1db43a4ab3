//! One account's sync pass: per folder, EXAMINE (read-only, so \Seen never changes), learn
//! the sizes of the new messages, then fetch and store them in batches bounded by count and
//! bytes. The folder position moves only in the transaction that stores the batch.

use std::collections::HashSet;

use async_imap::types::{Fetch, Flag};
use futures::StreamExt;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{Endpoint, ImapError, Session, Timeouts, folders::FolderFilter, timed};
use crate::archive::ledger::{self, Entry, EntryKind};
use crate::config::Settings;
use crate::error::Result;
use crate::ingest::accounts::Account;
use crate::ingest::pipeline::{self, Batch, Incoming};
use crate::ingest::workers::Heartbeat;
use crate::secrets::SealingKeys;

/// What one pass over an account did.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncOutcome {
    pub folders: u64,
    pub fetched: u64,
    pub archived: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub failed: u64,
    pub deleted: u64,
    /// Infected messages quarantined or refused instead of archived (`clamav.action`).
    pub quarantined: u64,
    pub rejected: u64,
}

impl SyncOutcome {
    fn add(&mut self, o: SyncOutcome) {
        self.folders += o.folders;
        self.fetched += o.fetched;
        self.archived += o.archived;
        self.bytes += o.bytes;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.deleted += o.deleted;
        self.quarantined += o.quarantined;
        self.rejected += o.rejected;
    }
}

/// Everything a pass needs besides the account itself.
pub struct SyncDeps<'a> {
    pub pool: &'a PgPool,
    pub settings: &'a Settings,
    pub keys: &'a SealingKeys,
    pub heartbeat: Option<&'a Heartbeat>,
}

/// Syncs every included folder of `account` once.
pub async fn sync_account(deps: &SyncDeps<'_>, account: &Account) -> Result<SyncOutcome> {
    let t = Timeouts::from_settings(&deps.settings.sync);
    let password = account.password(deps.keys)?;
    let ep = Endpoint::of(account)?;
    beat(deps, "connecting").await;
    let mut session = super::connect(&ep, &password, t).await?;
    drop(password);
    let caps = timed(t.command, "CAPABILITY", session.capabilities()).await?;
    let uidplus = caps.has_str("UIDPLUS");
    let filter = FolderFilter::new(&account.folders_include, &account.folders_exclude);
    let mut total = SyncOutcome::default();
    for folder in super::list_folders(&mut session, t).await? {
        if !folder.selectable || !filter.includes(&folder.name) {
            continue;
        }
        let (outcome, uidvalidity) =
            sync_folder(deps, &mut session, t, account, &folder.name).await?;
        total.add(outcome);
        if let Some(days) = account.delete_after_days {
            beat(
                deps,
                &format!(
                    "{}: deleting archived mail older than {days} days",
                    folder.name
                ),
            )
            .await;
            let deleted = super::delete::delete_archived(
                deps.pool,
                &mut session,
                t,
                account,
                &folder.name,
                uidvalidity,
                days,
                uidplus,
            )
            .await?;
            total.deleted += deleted;
        }
    }
    let _ = timed(t.command, "LOGOUT", session.logout()).await;
    Ok(total)
}

async fn beat(deps: &SyncDeps<'_>, text: &str) {
    if let Some(h) = deps.heartbeat {
        h.activity(text).await;
    }
}

async fn sync_folder(
    deps: &SyncDeps<'_>,
    session: &mut Session,
    t: Timeouts,
    account: &Account,
    folder: &str,
) -> Result<(SyncOutcome, i64)> {
    let mailbox = timed(t.command, "EXAMINE", session.examine(folder)).await?;
    let uidvalidity = i64::from(mailbox.uid_validity.ok_or_else(|| ImapError::Protocol {
        what: format!("EXAMINE {folder}"),
        detail: "the server sent no UIDVALIDITY".into(),
    })?);
    let mut conn = deps.pool.acquire().await?;
    let last_uid = match ledger::folder_state(&mut conn, account.id, folder).await? {
        Some(s) if s.uidvalidity == Some(uidvalidity) => s.last_uid,
        previous => {
            if previous.is_some() {
                tracing::warn!(account = %account.name, folder, uidvalidity, "UIDVALIDITY changed: re-scanning the folder (content already archived is not stored twice)");
            }
            ledger::reset_folder(&mut conn, account.id, folder, uidvalidity).await?;
            0
        }
    };
    ledger::note_server_count(
        &mut conn,
        account.id,
        folder,
        uidvalidity,
        i64::from(mailbox.exists),
    )
    .await?;
    let retry = ledger::failed_uids(&mut conn, account.id, folder, uidvalidity).await?;
    drop(conn);

    let mut outcome = SyncOutcome {
        folders: 1,
        ..SyncOutcome::default()
    };
    let key = FolderKey {
        account_id: account.id,
        folder,
        uidvalidity,
    };
    if !retry.is_empty() {
        let set = uid_set(&retry);
        let sizes = fetch_sizes(session, t, &set, 0).await?;
        let present: HashSet<i64> = sizes.iter().map(|(u, _)| *u).collect();
        let gone: Vec<Entry> = retry
            .iter()
            .filter(|u| !present.contains(u))
            .map(|&uid| Entry {
                uid,
                kind: EntryKind::Skipped,
                reason: "no longer on the server when it was retried".into(),
                size: None,
            })
            .collect();
        outcome.skipped += gone.len() as u64;
        run_batches(deps, session, t, &key, &sizes, gone, false, &mut outcome).await?;
    }
    let has_new = mailbox.exists > 0
        && mailbox
            .uid_next
            .is_none_or(|next| i64::from(next) > last_uid + 1);
    if has_new {
        beat(deps, &format!("{folder}: listing new messages")).await;
        let sizes = fetch_sizes(session, t, &format!("{}:*", last_uid + 1), last_uid).await?;
        run_batches(
            deps,
            session,
            t,
            &key,
            &sizes,
            Vec::new(),
            true,
            &mut outcome,
        )
        .await?;
    }
    Ok((outcome, uidvalidity))
}

struct FolderKey<'a> {
    account_id: i64,
    folder: &'a str,
    uidvalidity: i64,
}

/// `UID FETCH set (UID RFC822.SIZE)`: which messages exist and how big they are, so batches
/// can be planned by bytes. `n:*` also returns the last message when it is below n, hence
/// the `above` filter.
async fn fetch_sizes(
    session: &mut Session,
    t: Timeouts,
    set: &str,
    above: i64,
) -> Result<Vec<(i64, u64)>, ImapError> {
    let mut sizes: Vec<(i64, u64)> = timed(t.command, "UID FETCH (sizes)", async {
        let mut stream = session.uid_fetch(set, "(UID RFC822.SIZE)").await?;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let f = item?;
            if let (Some(uid), Some(size)) = (f.uid, f.size) {
                out.push((i64::from(uid), u64::from(size)));
            }
        }
        Ok::<_, async_imap::error::Error>(out)
    })
    .await?;
    sizes.retain(|(uid, _)| *uid > above);
    sizes.sort_unstable();
    sizes.dedup_by_key(|(uid, _)| *uid);
    Ok(sizes)
}

#[allow(clippy::too_many_arguments)]
async fn run_batches(
    deps: &SyncDeps<'_>,
    session: &mut Session,
    t: Timeouts,
    key: &FolderKey<'_>,
    sizes: &[(i64, u64)],
    mut carry: Vec<Entry>,
    advance: bool,
    outcome: &mut SyncOutcome,
) -> Result<()> {
    let s = &deps.settings;
    // Built per folder pass: its concurrency limit and outage report are per pass (a held
    // batch ends the pass, so an outage is reported once per retry, not once per message).
    let stage = crate::scan::ScanStage::from_settings(&s.clamav);
    let scan = stage.as_ref().map(|stage| (stage, deps.keys));
    let max_size = s.storage.max_message_bytes;
    let total = sizes.len();
    let mut done = 0usize;
    for plan in plan_batches(sizes, s.sync.batch_messages, s.sync.batch_bytes, max_size) {
        let mut entries = std::mem::take(&mut carry);
        let wanted: Vec<i64> = plan
            .iter()
            .filter(|(_, size)| *size <= max_size)
            .map(|(uid, _)| *uid)
            .collect();
        for (uid, size) in plan.iter().filter(|(_, size)| *size > max_size) {
            entries.push(Entry {
                uid: *uid,
                kind: EntryKind::Skipped,
                reason: format!(
                    "larger than storage.max_message_bytes ({size} bytes > {max_size} bytes)"
                ),
                size: Some(*size as i64),
            });
        }
        let messages = if wanted.is_empty() {
            Vec::new()
        } else {
            fetch_bodies(session, t, &uid_set(&wanted)).await?
        };
        let got: HashSet<i64> = messages.iter().filter_map(|m| m.uid).collect();
        for uid in wanted.iter().filter(|u| !got.contains(u)) {
            entries.push(Entry {
                uid: *uid,
                kind: EntryKind::Failed,
                reason: "the server returned no content for this message; retried next run".into(),
                size: None,
            });
        }
        outcome.skipped += entries
            .iter()
            .filter(|e| e.kind == EntryKind::Skipped)
            .count() as u64;
        outcome.failed += entries
            .iter()
            .filter(|e| e.kind == EntryKind::Failed)
            .count() as u64;
        outcome.fetched += messages.len() as u64;
        let stored = pipeline::store_scanned(
            deps.pool,
            s.storage.zstd_level,
            Batch {
                account_id: key.account_id,
                folder: key.folder.to_string(),
                uidvalidity: Some(key.uidvalidity),
                messages,
                ledger: entries,
                advance_to: if advance {
                    plan.last().map(|(uid, _)| *uid)
                } else {
                    None
                },
            },
            scan,
        )
        .await?;
        outcome.archived += stored.inserted;
        outcome.bytes += stored.raw_bytes;
        outcome.quarantined += stored.quarantined;
        outcome.rejected += stored.rejected;
        done += plan.len();
        if let Some(h) = deps.heartbeat {
            h.progress(key.folder, done, total, stored.inserted).await;
        }
    }
    if !carry.is_empty() {
        // Only ledger entries, no messages: commit them on their own.
        pipeline::store(
            deps.pool,
            s.storage.zstd_level,
            Batch {
                account_id: key.account_id,
                folder: key.folder.to_string(),
                uidvalidity: Some(key.uidvalidity),
                messages: Vec::new(),
                ledger: carry,
                advance_to: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// Consecutive runs of messages, each at most `max_count` long and `max_bytes` big (a single
/// bigger message goes alone). Messages over `max_size` are never fetched and weigh nothing.
pub fn plan_batches(
    sizes: &[(i64, u64)],
    max_count: usize,
    max_bytes: u64,
    max_size: u64,
) -> Vec<Vec<(i64, u64)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(i64, u64)> = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in sizes {
        let weight = if size > max_size { 0 } else { size };
        if !cur.is_empty() && (cur.len() >= max_count || bytes + weight > max_bytes) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push((uid, size));
        bytes += weight;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The full messages of `set`, read one FETCH item at a time so only the batch is held.
async fn fetch_bodies(
    session: &mut Session,
    t: Timeouts,
    set: &str,
) -> Result<Vec<Incoming>, ImapError> {
    timed(t.command, "UID FETCH (messages)", async {
        let mut stream = session
            .uid_fetch(set, "(UID RFC822.SIZE INTERNALDATE FLAGS BODY.PEEK[])")
            .await?;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            if let Some(m) = incoming(&item?) {
                out.push(m);
            }
        }
        Ok::<_, async_imap::error::Error>(out)
    })
    .await
}

fn incoming(f: &Fetch) -> Option<Incoming> {
    let uid = f.uid?;
    let raw = f.body()?.to_vec();
    Some(Incoming {
        uid: Some(i64::from(uid)),
        raw,
        internal_date: f
            .internal_date()
            .and_then(|d| OffsetDateTime::from_unix_timestamp(d.timestamp()).ok()),
        flags: f.flags().filter_map(|fl| flag_text(&fl)).collect(),
    })
}

fn flag_text(flag: &Flag<'_>) -> Option<String> {
    Some(match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        // \Recent describes this session, not the message.
        Flag::Recent | Flag::MayCreate => return None,
        Flag::Custom(c) => c.replace([' ', '\0'], ""),
    })
}

/// `1,3,5:9` from a sorted list of UIDs.
pub fn uid_set(uids: &[i64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_collapse_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
    }

    #[test]
    fn batches_respect_count_bytes_and_let_oversize_weigh_nothing() {
        let sizes = [(1, 10), (2, 10), (3, 1000), (4, 10), (5, 10)];
        let plan = plan_batches(&sizes, 2, 25, 100);
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[1], vec![(3, 1000), (4, 10)]);
        let plan = plan_batches(&[(1, 60), (2, 60)], 10, 50, 100);
        assert_eq!(plan.len(), 2, "a message bigger than a batch goes alone");
    }
}
