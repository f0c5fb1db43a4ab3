//! One account's sync pass: per folder, EXAMINE (read-only, so \Seen never changes), learn
//! the sizes of the new messages, then fetch and store them in batches bounded by count and
//! bytes. The folder position moves only in the transaction that stores the batch.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Semaphore;

use super::fetch::{Bodies, fetch_bodies, fetch_sizes, plan_batches, uid_set};
use super::{Endpoint, ImapError, Session, Timeouts, folders::FolderFilter, timed};
use crate::archive::ledger::{self, Entry, EntryKind};
use crate::archive::messages::Place;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::ingest::pipeline::{self, Batch, SourceWrites, Stored};

use crate::ingest::workers::Heartbeat;
use crate::secrets::SealingKeys;

/// The messages of `wanted`. A FETCH cut off by a dropped connection can end without an error,
/// so when messages are missing a NOOP proves the session is still alive before they are
/// recorded as failed; otherwise the batch is an error and is not stored at all.
async fn fetch_checked(
    session: &mut Session,
    t: Timeouts,
    wanted: &[i64],
    gmail_labels: bool,
) -> Result<Bodies, ImapError> {
    let bodies = fetch_bodies(session, t, &uid_set(wanted), gmail_labels).await?;
    if bodies.messages.len() < wanted.len() {
        timed(t.command, "NOOP after an incomplete FETCH", session.noop()).await?;
    }
    Ok(bodies)
}

/// Batches being written at once per folder (each holds its messages in memory).
const STORES_IN_FLIGHT: usize = 2;

/// The store task of the latest batch; it resolves to the totals of every batch before it.
type Chain = tokio::task::JoinHandle<Result<Stored>>;

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
    /// Archived copies whose flags were brought in line with the server.
    pub flags_changed: u64,
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
        self.flags_changed += o.flags_changed;
    }

    /// Counts what one committed batch archived, whichever source fetched it.
    pub fn add_stored(&mut self, stored: &Stored) {
        self.archived += stored.inserted;
        self.bytes += stored.raw_bytes;
        self.quarantined += stored.quarantined;
        self.rejected += stored.rejected;
    }
}

/// Everything a pass needs besides the account itself.
pub struct SyncDeps<'a> {
    pub pool: &'a PgPool,
    pub settings: &'a Settings,
    pub keys: &'a SealingKeys,
    pub heartbeat: Option<&'a Heartbeat>,
}

/// Syncs every included folder of `account` once; a Gmail account (see [`super::gmail`]) syncs
/// its "All Mail" folder only, with each message's labels.
pub async fn sync_account(deps: &SyncDeps<'_>, account: &Account) -> Result<SyncOutcome> {
    let t = Timeouts::from_settings(&deps.settings.sync);
    let password = account.password(deps.keys)?;
    let ep = Endpoint::of(account)?;
    beat(deps, "connecting").await;
    let mut session = super::connect(&ep, &password, t).await?;
    drop(password);
    let caps = timed(t.command, "CAPABILITY", session.capabilities()).await?;
    let uidplus = caps.has_str("UIDPLUS");
    let gmail_server = caps.has_str(super::gmail::CAPABILITY);
    // With CONDSTORE enabled, EXAMINE reports HIGHESTMODSEQ and flag changes can be asked
    // for since the last pass (RFC 7162); without it flags are compared in full.
    let condstore = account.follow_flags && caps.has_str("CONDSTORE") && caps.has_str("ENABLE");
    if condstore {
        timed(
            t.command,
            "ENABLE CONDSTORE",
            session.run_command_and_check_ok("ENABLE CONDSTORE"),
        )
        .await?;
    }
    let filter = FolderFilter::new(&account.folders_include, &account.folders_exclude);
    let mut total = SyncOutcome::default();
    let listed = super::list_folders(&mut session, t).await?;
    let all_mail =
        super::gmail::all_mail(deps.pool, account.id, gmail_server, &listed, &filter).await?;
    let gmail_labels = all_mail.is_some();
    let chosen: Vec<&super::FolderInfo> = match all_mail {
        Some(all) => vec![all],
        None => listed.iter().filter(|f| f.wanted(&filter)).collect(),
    };
    for folder in chosen {
        let name = FolderName {
            wire: &folder.name,
            archive: &folder.display,
        };
        let pass = sync_folder(deps, &mut session, t, account, name, gmail_labels).await?;
        total.add(pass.outcome);
        if account.follow_flags {
            beat(deps, &format!("{}: following flag changes", name.archive)).await;
            let place = Place {
                account_id: account.id,
                folder: name.archive,
                uidvalidity: pass.uidvalidity,
            };
            total.flags_changed += super::flags::follow(
                deps.pool,
                &mut session,
                t,
                place,
                pass.highest_modseq.filter(|_| condstore),
                gmail_labels,
            )
            .await?;
        }
        if let Some(days) = account.delete_after_days {
            beat(
                deps,
                &format!(
                    "{}: deleting archived mail older than {days} days",
                    name.archive
                ),
            )
            .await;
            let deleted = super::delete::delete_archived(
                deps.pool,
                &mut session,
                t,
                account,
                name,
                pass.uidvalidity,
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

/// A folder's two names: as the server spells it (every command) and as the archive stores it
/// (decoded modified UTF-7, see [`super::utf7`]).
#[derive(Debug, Clone, Copy)]
pub struct FolderName<'a> {
    pub wire: &'a str,
    pub archive: &'a str,
}

/// What one folder's pass found.
struct FolderPass {
    outcome: SyncOutcome,
    uidvalidity: i64,
    highest_modseq: Option<u64>,
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
    name: FolderName<'_>,
    gmail_labels: bool,
) -> Result<FolderPass> {
    let folder = name.archive;
    let mailbox = timed(t.command, "EXAMINE", session.examine(name.wire)).await?;
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
        gmail_labels,
    };
    if !retry.is_empty() {
        let set = uid_set(&retry);
        let sizes = fetch_sizes(session, t, &set, 0).await?;
        if sizes.len() < retry.len() {
            // Make sure the listing was not cut short by a dropped connection.
            timed(t.command, "NOOP after an incomplete FETCH", session.noop()).await?;
        }
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
    Ok(FolderPass {
        outcome,
        uidvalidity,
        highest_modseq: mailbox.highest_modseq,
    })
}

struct FolderKey<'a> {
    account_id: i64,
    folder: &'a str,
    uidvalidity: i64,
    /// Fetch and store each message's Gmail labels.
    gmail_labels: bool,
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
    // Owned, because each batch is stored by its own task.
    let scan = stage.map(|stage| (stage, std::sync::Arc::new(deps.keys.clone())));
    let max_size = s.storage.max_message_bytes;
    let total = sizes.len();
    let mut done = 0usize;
    // Batches are written concurrently (up to STORES_IN_FLIGHT, plus the one being fetched)
    // but commit strictly in order: each waits for its predecessor before moving the position.
    let permits = Arc::new(Semaphore::new(STORES_IN_FLIGHT + 1));
    let mut last: Option<Chain> = None;
    for plan in plan_batches(sizes, s.sync.batch_messages, s.sync.batch_bytes, max_size) {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::context("wait for the batch limiter", e))?;
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
        let Bodies { messages, labels } = if wanted.is_empty() {
            Bodies::default()
        } else {
            match fetch_checked(session, t, &wanted, key.gmail_labels).await {
                Ok(m) => m,
                Err(e) => {
                    // Let the batches already fetched finish committing before reporting.
                    if let Some(chain) = last.take()
                        && let Ok(Ok(stored)) = chain.await
                    {
                        outcome.add_stored(&stored);
                    }
                    return Err(e.into());
                }
            }
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
        let batch = Batch {
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
        };
        let previous = last.take();
        let scan = scan.clone();
        let pool = deps.pool.clone();
        let level = s.storage.zstd_level;
        let writes = SourceWrites {
            label_names: super::gmail::names(labels.iter().flat_map(|(_, l)| l)),
            labels,
            ..SourceWrites::default()
        };
        last = Some(tokio::spawn(async move {
            let _permit = permit;
            let wait_for_previous = async move {
                match previous {
                    Some(chain) => chain
                        .await
                        .map_err(|e| Error::context("run the batch store task", e))?,
                    None => Ok(Stored::default()),
                }
            };
            let scan = scan.as_ref().map(|(stage, keys)| (stage, keys.as_ref()));
            let (own, before) =
                pipeline::store_ordered(&pool, level, batch, scan, wait_for_previous, writes)
                    .await?;
            Ok(before.plus(own))
        }));
        done += plan.len();
        if let Some(h) = deps.heartbeat {
            h.progress(key.folder, done, total, 0).await;
        }
    }
    if let Some(chain) = last.take() {
        let stored = chain
            .await
            .map_err(|e| Error::context("run the batch store task", e))??;
        outcome.add_stored(&stored);
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
