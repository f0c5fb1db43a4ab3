//! The Gmail API source. A mailbox is one archive folder (`All Mail`) whose rows are keyed by
//! the Gmail message id (as a 64-bit number, the same as IMAP's `X-GM-MSGID`): a message with
//! several labels is one message carrying all of them.
//!
//! First a full listing (users.messages.list, each message fetched with
//! messages.get?format=raw, byte-exact), starting from the mailbox's historyId read before
//! listing; then users.history.list from the saved historyId. The historyId moves only in the
//! transaction that stores the messages and label changes it covers, so a crash replays the
//! history, and every fetch skips ids already archived, so a replay (or the full re-listing
//! after Google expired the history) adds nothing twice.

pub mod api;

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use time::OffsetDateTime;

use crate::archive::ledger::{self, Entry, EntryKind};
use crate::archive::messages;
use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::ingest::oauth::AccessTokens;
use crate::ingest::pipeline::{Incoming, SourceWrites};
use crate::ingest::source::{self, SyncDeps, SyncOutcome};
use api::{GmailApi, History, RawMessage};

/// The archive folder of a Gmail mailbox.
pub const FOLDER: &str = "All Mail";
/// Gmail ids never change meaning, so the folder has one fixed UIDVALIDITY.
pub const UIDVALIDITY: i64 = source::API_UIDVALIDITY;
/// messages.get calls in flight at once: 5 quota units each stays well inside Google's
/// per-user 250 units per second.
const FETCHES_IN_FLIGHT: usize = 8;
/// Labels whose mail is not archived (like the IMAP default excluding Trash and Spam).
const LEFT_OUT: [&str; 2] = ["SPAM", "TRASH"];

/// A Gmail message id (hex) as the row's UID: the same 64 bits as IMAP's X-GM-MSGID.
pub fn uid_of(id: &str) -> Option<i64> {
    if id.is_empty() || id.starts_with('0') {
        return None;
    }
    u64::from_str_radix(id, 16).ok().map(|v| v as i64)
}

/// The Gmail message id of a row's UID.
pub fn id_of(uid: i64) -> String {
    format!("{:x}", uid as u64)
}

/// One pass over a Gmail mailbox.
pub async fn sync_account(deps: &SyncDeps<'_>, account: &Account) -> Result<SyncOutcome> {
    let tokens = AccessTokens::for_account(deps.pool, deps.settings, deps.keys, account)?;
    let user = match account.oauth_mode.as_deref() {
        Some("app") => account.mailbox.clone().unwrap_or_default(),
        _ => "me".to_string(),
    };
    let api = GmailApi::new(&deps.settings.google.api_url, &user, tokens)?;
    let pass = Pass {
        deps,
        account,
        api,
        scan: crate::scan::ScanStage::from_settings(&deps.settings.clamav),
    };
    pass.run().await
}

struct Pass<'a> {
    deps: &'a SyncDeps<'a>,
    account: &'a Account,
    api: GmailApi,
    scan: Option<crate::scan::ScanStage>,
}

/// What a batch of ids turned into.
#[derive(Default)]
struct Fetched {
    incoming: Vec<Incoming>,
    labels: Vec<(i64, Vec<String>)>,
    entries: Vec<Entry>,
}

impl Pass<'_> {
    async fn run(&self) -> Result<SyncOutcome> {
        self.beat("reading the mailbox profile and labels").await;
        let profile = self.api.profile().await?;
        self.save_labels().await?;
        let mut conn = self.deps.pool.acquire().await?;
        if let Some(total) = profile.messages_total {
            ledger::note_server_count(&mut conn, self.account.id, FOLDER, UIDVALIDITY, total)
                .await?;
        }
        let retry = ledger::failed_uids(&mut conn, self.account.id, FOLDER, UIDVALIDITY).await?;
        let (delta, pending) = ledger::delta(&mut conn, self.account.id, FOLDER).await?;
        drop(conn);
        let mut outcome = SyncOutcome {
            folders: 1,
            ..SyncOutcome::default()
        };
        if let Some(start) = delta {
            match self.incremental(&start, &retry, &mut outcome).await? {
                Some(()) => return Ok(outcome),
                None => {
                    tracing::warn!(account = %self.account.name, start, "Gmail no longer has history this old: listing the whole mailbox again (mail already archived is not fetched twice)");
                }
            }
            self.full(None, &profile.history_id, &retry, &mut outcome)
                .await?;
        } else {
            self.full(pending, &profile.history_id, &retry, &mut outcome)
                .await?;
        }
        Ok(outcome)
    }

    /// Lists every message and archives the ones not archived yet; the position becomes the
    /// historyId read before the listing began (kept as pending across an interrupted run).
    async fn full(
        &self,
        pending: Option<String>,
        current: &str,
        retry: &[i64],
        outcome: &mut SyncOutcome,
    ) -> Result<()> {
        let start = match pending {
            Some(p) => p,
            None => {
                let mut conn = self.deps.pool.acquire().await?;
                ledger::begin_listing(&mut conn, self.account.id, FOLDER, UIDVALIDITY, current)
                    .await?;
                current.to_string()
            }
        };
        let mut retried: Vec<i64> = retry.to_vec();
        let mut page_token: Option<String> = None;
        let mut listed = 0usize;
        loop {
            self.beat(&format!("listing messages ({listed} so far)"))
                .await;
            let page = self.api.list_page(page_token.as_deref()).await?;
            listed += page.messages.len();
            let mut uids: Vec<i64> = std::mem::take(&mut retried);
            let mut unusable = Vec::new();
            for m in &page.messages {
                match uid_of(&m.id) {
                    Some(uid) => uids.push(uid),
                    None => unusable.push(m.id.clone()),
                }
            }
            if !unusable.is_empty() {
                return Err(Error::Internal(format!(
                    "Gmail listed message ids that are not Gmail ids: {}",
                    unusable.join(", ")
                )));
            }
            self.archive(uids, SourceWrites::default(), outcome).await?;
            match page.next_page_token {
                Some(t) if !t.is_empty() => page_token = Some(t),
                _ => break,
            }
        }
        // Every listed message is archived or in the ledger: the history from `start` on
        // covers whatever changed while listing.
        self.commit_position(&start).await
    }

    /// Follows the history from `start`. None when Google expired it.
    async fn incremental(
        &self,
        start: &str,
        retry: &[i64],
        outcome: &mut SyncOutcome,
    ) -> Result<Option<()>> {
        self.beat("reading the mailbox history").await;
        let mut page_token: Option<String> = None;
        let mut added: Vec<i64> = retry.to_vec();
        // Per message, per label: the last change wins.
        let mut changes: BTreeMap<i64, HashMap<String, bool>> = BTreeMap::new();
        let mut latest;
        loop {
            let page = match self.api.history_page(start, page_token.as_deref()).await? {
                History::Page(p) => p,
                History::Expired => return Ok(None),
            };
            for record in page.history {
                for m in record.messages_added {
                    added.extend(uid_of(&m.message.id));
                }
                for (change, add) in record
                    .labels_added
                    .into_iter()
                    .map(|c| (c, true))
                    .chain(record.labels_removed.into_iter().map(|c| (c, false)))
                {
                    let Some(uid) = uid_of(&change.message.id) else {
                        continue;
                    };
                    let entry = changes.entry(uid).or_default();
                    for label in change.label_ids {
                        entry.insert(label, add);
                    }
                    // A message coming out of spam or trash is archived now.
                    added.push(uid);
                }
            }
            latest = page.history_id;
            match page.next_page_token {
                Some(t) if !t.is_empty() => page_token = Some(t),
                _ => break,
            }
        }
        let label_changes = changes
            .into_iter()
            .map(|(uid, labels)| {
                let (add, remove): (Vec<_>, Vec<_>) = labels.into_iter().partition(|(_, a)| *a);
                (
                    uid,
                    add.into_iter().map(|(l, _)| l).collect(),
                    remove.into_iter().map(|(l, _)| l).collect(),
                )
            })
            .collect();
        let writes = SourceWrites {
            label_changes,
            delta: Some(latest),
            ..SourceWrites::default()
        };
        self.archive(added, writes, outcome).await?;
        Ok(Some(()))
    }

    /// Fetches and stores the messages of `uids` not archived yet, in batches; `last` commits
    /// with the final batch (or on its own when nothing is new).
    async fn archive(
        &self,
        uids: Vec<i64>,
        last: SourceWrites,
        outcome: &mut SyncOutcome,
    ) -> Result<()> {
        let mut seen = HashSet::new();
        let uids: Vec<i64> = uids.into_iter().filter(|u| seen.insert(*u)).collect();
        let mut conn = self.deps.pool.acquire().await?;
        let place = messages::Place {
            account_id: self.account.id,
            folder: FOLDER,
            uidvalidity: UIDVALIDITY,
        };
        let stored: HashSet<i64> = messages::stored_uids(&mut conn, place, &uids)
            .await?
            .into_iter()
            .collect();
        let skipped: HashSet<i64> =
            ledger::skipped_uids(&mut conn, self.account.id, FOLDER, UIDVALIDITY, &uids)
                .await?
                .into_iter()
                .collect();
        drop(conn);
        let wanted: Vec<i64> = uids
            .into_iter()
            .filter(|u| !stored.contains(u) && !skipped.contains(u))
            .collect();
        let per_batch = self.deps.settings.sync.batch_messages.max(1);
        let chunks: Vec<&[i64]> = wanted.chunks(per_batch).collect();
        if chunks.is_empty() {
            return self.store(Fetched::default(), last, outcome).await;
        }
        let mut last = Some(last);
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let fetched = self.fetch(chunk).await?;
            let writes = if i + 1 == count {
                last.take().unwrap_or_default()
            } else {
                SourceWrites::default()
            };
            self.store(fetched, writes, outcome).await?;
            if let Some(h) = self.deps.heartbeat {
                h.progress(
                    FOLDER,
                    (i + 1) * per_batch,
                    count * per_batch,
                    outcome.archived,
                )
                .await;
            }
        }
        Ok(())
    }

    /// messages.get?format=raw for each id, a few at a time.
    async fn fetch(&self, uids: &[i64]) -> Result<Fetched> {
        let max = self.deps.settings.storage.max_message_bytes;
        // A few in flight at once (built in a loop: a closure making the futures would not
        // be Send for every lifetime the scheduler's spawn asks for).
        let mut queue = uids.iter().copied();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut results: Vec<(i64, Result<Option<RawMessage>>)> = Vec::with_capacity(uids.len());
        loop {
            while running.len() < FETCHES_IN_FLIGHT {
                match queue.next() {
                    Some(uid) => running.push(self.fetch_one(uid)),
                    None => break,
                }
            }
            match running.next().await {
                Some(done) => results.push(done),
                None => break,
            }
        }
        let mut out = Fetched::default();
        for (uid, result) in results {
            match result? {
                None => out.entries.push(Entry {
                    uid,
                    kind: EntryKind::Skipped,
                    reason: "deleted from the mailbox before it could be fetched".into(),
                    size: None,
                }),
                Some(m) if m.label_ids.iter().any(|l| LEFT_OUT.contains(&l.as_str())) => {}
                Some(m) if m.raw.len() as u64 > max => out.entries.push(Entry {
                    uid,
                    kind: EntryKind::Skipped,
                    reason: format!(
                        "larger than storage.max_message_bytes ({} bytes > {max} bytes)",
                        m.raw.len()
                    ),
                    size: Some(m.raw.len() as i64),
                }),
                Some(m) => {
                    out.labels.push((uid, m.label_ids.clone()));
                    out.incoming.push(Incoming {
                        uid: Some(uid),
                        flags: flags_of(&m.label_ids),
                        internal_date: m.internal_date_ms.and_then(|ms| {
                            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                                .ok()
                        }),
                        raw: m.raw,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn fetch_one(&self, uid: i64) -> (i64, Result<Option<RawMessage>>) {
        (uid, self.api.get_raw(&id_of(uid)).await)
    }

    async fn store(
        &self,
        fetched: Fetched,
        mut writes: SourceWrites,
        outcome: &mut SyncOutcome,
    ) -> Result<()> {
        writes.labels.extend(fetched.labels);
        source::store_api_batch(
            self.deps,
            self.scan.as_ref(),
            self.account.id,
            FOLDER,
            (fetched.incoming, fetched.entries),
            writes,
            outcome,
        )
        .await
    }

    /// The end of a full listing: its starting historyId becomes the position.
    async fn commit_position(&self, start: &str) -> Result<()> {
        let mut tx = self.deps.pool.begin().await?;
        ledger::set_delta(&mut tx, self.account.id, FOLDER, UIDVALIDITY, start).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's label names, for display and `label:` search.
    async fn save_labels(&self) -> Result<()> {
        let labels: Vec<crate::archive::labels::LabelName> = self
            .api
            .labels()
            .await?
            .into_iter()
            .map(|l| crate::archive::labels::LabelName {
                id: l.id,
                name: l.name,
                kind: l.kind.unwrap_or_else(|| "user".into()).to_lowercase(),
            })
            .collect();
        let mut tx = self.deps.pool.begin().await?;
        crate::archive::labels::replace(&mut tx, self.account.id, &labels).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn beat(&self, text: &str) {
        if let Some(h) = self.deps.heartbeat {
            h.activity(text).await;
        }
    }
}

/// IMAP-style flags from Gmail's system labels.
fn flags_of(labels: &[String]) -> Vec<String> {
    let has = |l: &str| labels.iter().any(|x| x == l);
    let mut flags = Vec::new();
    if !has("UNREAD") {
        flags.push("\\Seen".to_string());
    }
    if has("STARRED") {
        flags.push("\\Flagged".to_string());
    }
    if has("DRAFT") {
        flags.push("\\Draft".to_string());
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_ids_round_trip_through_uids() {
        for id in ["18c2f0d3a1b2c3d4", "fffffffffffffff0", "1"] {
            assert_eq!(id_of(uid_of(id).expect("hex id")), id);
        }
        assert_eq!(uid_of("0abc"), None, "not canonical: would not round-trip");
        assert_eq!(uid_of("xyz"), None);
        assert_eq!(uid_of(""), None);
    }

    #[test]
    fn flags_follow_system_labels() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(flags_of(&l(&["INBOX"])), l(&["\\Seen"]));
        assert_eq!(
            flags_of(&l(&["INBOX", "UNREAD", "STARRED"])),
            l(&["\\Flagged"])
        );
    }
}
