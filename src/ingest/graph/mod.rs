//! The Microsoft Graph source (#12). The folder tree comes from `/mailFolders` and their
//! `childFolders`; each included folder (by its path, `Inbox/Projects`, through the account's
//! folder patterns; Deleted Items and Junk Email, found by their well-known names, only when a
//! pattern names them) is followed with `messages/delta`: a round pages through
//! `@odata.nextLink` and ends with an `@odata.deltaLink`, where the next round starts. Every
//! new message is fetched with `/messages/{id}/$value` (MIME, byte for byte) and stored by the
//! common pipeline with its `receivedDateTime` as the arrival time (IMAP's INTERNALDATE); the
//! deltaLink is stored in the same transaction as the last page's messages, so a pass cut
//! short starts its round again from the previous deltaLink and finds what it stored already (ids map to UIDs once, see migration 0752): nothing is
//! fetched or stored twice, nothing is skipped. An expired delta token (410 Gone,
//! `syncStateNotFound`) starts the folder's listing over, which likewise adds only what is
//! missing. Throttling is honoured by [`api`].

pub mod api;

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use crate::archive::ledger::{self, Entry, EntryKind};
use crate::archive::messages;
use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::ingest::imap::folders::FolderFilter;
use crate::ingest::oauth::AccessTokens;
use crate::ingest::pipeline::{Incoming, SourceWrites};
use crate::ingest::source::{self, SyncDeps, SyncOutcome};
use api::{Bearer, FolderPath, GraphApi, GraphError, Listed};

/// Graph ids never change meaning: every folder has one fixed UIDVALIDITY.
pub const UIDVALIDITY: i64 = source::API_UIDVALIDITY;
/// Well-known folders left out unless an include pattern names them (by their folder name or
/// by these names), like the IMAP default excluding Trash and Junk. Found by id, not by display
/// name, which follows the mailbox's language ("Gelöschte Elemente").
const LEFT_OUT: [&str; 2] = ["deleteditems", "junkemail"];
/// `$value` downloads in flight at once (Graph allows 4 concurrent requests per mailbox
/// per application before throttling).
const FETCHES_IN_FLIGHT: usize = 4;

impl Bearer for AccessTokens {
    async fn bearer(&mut self) -> Result<zeroize::Zeroizing<String>> {
        AccessTokens::bearer(self).await
    }

    fn invalidate(&mut self) {
        AccessTokens::invalidate(self)
    }
}

/// One pass over a Microsoft 365 mailbox.
pub async fn sync_account(deps: &SyncDeps<'_>, account: &Account) -> Result<SyncOutcome> {
    let tokens = AccessTokens::for_account(deps.pool, deps.settings, deps.keys, account)?;
    let user = match account.oauth_mode.as_deref() {
        Some("app") => account
            .mailbox
            .clone()
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    "mailbox",
                    format!("account {} names no mailbox to archive", account.name),
                )
            })?,
        _ => "me".to_string(),
    };
    let api = GraphApi::new(&deps.settings.microsoft.api_url, &user, tokens)?;
    let pass = Pass {
        deps,
        account,
        api,
        scan: crate::scan::ScanStage::from_settings(&deps.settings.clamav),
    };
    pass.run(&user).await
}

struct Pass<'a> {
    deps: &'a SyncDeps<'a>,
    account: &'a Account,
    api: GraphApi<AccessTokens>,
    scan: Option<crate::scan::ScanStage>,
}

impl Pass<'_> {
    async fn run(&self, user: &str) -> Result<SyncOutcome> {
        self.beat("listing mail folders").await;
        let tree = self.api.folder_tree().await.map_err(|e| refused(e, user))?;
        let mut well_known: HashMap<String, &str> = HashMap::new();
        for name in LEFT_OUT {
            if let Some(id) = self
                .api
                .well_known_folder(name)
                .await
                .map_err(|e| refused(e, user))?
            {
                well_known.insert(id, name);
            }
        }
        let filter =
            FolderFilter::new(&self.account.folders_include, &self.account.folders_exclude);
        let mut outcome = SyncOutcome::default();
        // Folders inside a left-out folder (a deleted folder lands in Deleted Items) are left
        // out with it; parents come before their children.
        let mut inside_left_out: HashSet<String> = HashSet::new();
        for f in tree {
            let wk = well_known.get(&f.folder.id).copied();
            let mut names = vec![f.path.as_str()];
            names.extend(wk);
            let left_out = wk.is_some()
                || f.folder
                    .parent_folder_id
                    .as_ref()
                    .is_some_and(|p| inside_left_out.contains(p));
            if left_out {
                inside_left_out.insert(f.folder.id.clone());
            }
            let wanted = if left_out {
                filter.names_explicitly(&names)
            } else {
                filter.includes_any(&names)
            };
            if !wanted {
                continue;
            }
            outcome.folders += 1;
            self.sync_folder(&f, &mut outcome).await?;
        }
        Ok(outcome)
    }

    async fn sync_folder(&self, f: &FolderPath, outcome: &mut SyncOutcome) -> Result<()> {
        let folder = f.path.as_str();
        let mut conn = self.deps.pool.acquire().await?;
        if let Some(total) = f.folder.total_item_count {
            ledger::note_server_count(&mut conn, self.account.id, folder, UIDVALIDITY, total)
                .await?;
        }
        let (delta, _) = ledger::delta(&mut conn, self.account.id, folder).await?;
        drop(conn);
        let initial = self.api.initial_delta(&f.folder.id);
        let mut url = delta.unwrap_or_else(|| initial.clone());
        let mut relisted = false;
        let mut pages = 0usize;
        loop {
            self.beat(&format!("{folder}: reading changes (page {})", pages + 1))
                .await;
            let page = match self.api.delta_page(&url).await {
                Ok(p) => p,
                Err(e) if e.is_expired_delta() && !relisted => {
                    tracing::warn!(account = %self.account.name, folder, "Microsoft Graph expired the folder's delta token: listing the folder again (mail already archived is not fetched twice)");
                    relisted = true;
                    url = initial.clone();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            pages += 1;
            match (page.next_link, page.delta_link) {
                (Some(next), _) => {
                    self.archive(folder, page.messages, SourceWrites::default(), outcome)
                        .await?;
                    url = next;
                }
                (None, Some(delta)) => {
                    let last = SourceWrites {
                        delta: Some(delta),
                        ..SourceWrites::default()
                    };
                    return self.archive(folder, page.messages, last, outcome).await;
                }
                (None, None) => {
                    return Err(GraphError::Malformed {
                        what: format!("the changes of {folder}"),
                        detail: "a page with neither @odata.nextLink nor @odata.deltaLink".into(),
                    }
                    .into());
                }
            }
        }
    }

    /// Fetches and stores the `listed` messages not archived yet, in batches; `last` commits
    /// with the final batch (or on its own when nothing is new).
    async fn archive(
        &self,
        folder: &str,
        listed: Vec<Listed>,
        last: SourceWrites,
        outcome: &mut SyncOutcome,
    ) -> Result<()> {
        let ids: Vec<String> = listed.iter().map(|m| m.id.clone()).collect();
        let uids = uids_for(self.deps.pool, self.account.id, folder, &ids).await?;
        let all: Vec<i64> = uids.values().copied().collect();
        let mut conn = self.deps.pool.acquire().await?;
        let place = messages::Place {
            account_id: self.account.id,
            folder,
            uidvalidity: UIDVALIDITY,
        };
        let mut done: Vec<i64> = messages::stored_uids(&mut conn, place, &all).await?;
        done.extend(
            ledger::skipped_uids(&mut conn, self.account.id, folder, UIDVALIDITY, &all).await?,
        );
        drop(conn);
        let mut seen: HashSet<i64> = done.into_iter().collect();
        let wanted: Vec<(i64, Listed)> = listed
            .into_iter()
            .filter_map(|m| uids.get(&m.id).map(|u| (*u, m)))
            .filter(|(u, _)| seen.insert(*u))
            .collect();
        let per_batch = self.deps.settings.sync.batch_messages.max(1);
        let chunks: Vec<&[(i64, Listed)]> = wanted.chunks(per_batch).collect();
        if chunks.is_empty() {
            return self
                .store(folder, Vec::new(), Vec::new(), last, outcome)
                .await;
        }
        let mut last = Some(last);
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (incoming, entries) = self.fetch(chunk).await?;
            let writes = if i + 1 == count {
                last.take().unwrap_or_default()
            } else {
                SourceWrites::default()
            };
            self.store(folder, incoming, entries, writes, outcome)
                .await?;
        }
        Ok(())
    }

    /// `$value` of each message, a few at a time; arrival time from the listing.
    async fn fetch(&self, wanted: &[(i64, Listed)]) -> Result<(Vec<Incoming>, Vec<Entry>)> {
        let max = self.deps.settings.storage.max_message_bytes;
        let mut queue = wanted.iter();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut results = Vec::with_capacity(wanted.len());
        loop {
            while running.len() < FETCHES_IN_FLIGHT {
                match queue.next() {
                    Some((uid, m)) => running.push(self.fetch_one(*uid, &m.id)),
                    None => break,
                }
            }
            match running.next().await {
                Some(done) => results.push(done),
                None => break,
            }
        }
        let received: HashMap<i64, time::OffsetDateTime> = wanted
            .iter()
            .filter_map(|(uid, m)| m.received.map(|r| (*uid, r)))
            .collect();
        let mut incoming = Vec::new();
        let mut entries = Vec::new();
        for (uid, result) in results {
            match result {
                Err(e) if e.is_not_found() => entries.push(Entry {
                    uid,
                    kind: EntryKind::Skipped,
                    reason: "deleted from the mailbox before it could be fetched".into(),
                    size: None,
                }),
                Err(e) => return Err(e.into()),
                Ok(raw) if raw.len() as u64 > max => entries.push(Entry {
                    uid,
                    kind: EntryKind::Skipped,
                    reason: format!(
                        "larger than storage.max_message_bytes ({} bytes > {max} bytes)",
                        raw.len()
                    ),
                    size: Some(raw.len() as i64),
                }),
                Ok(raw) => incoming.push(Incoming {
                    uid: Some(uid),
                    raw,
                    internal_date: received.get(&uid).copied(),
                    flags: Vec::new(),
                }),
            }
        }
        Ok((incoming, entries))
    }

    async fn fetch_one(&self, uid: i64, id: &str) -> (i64, Result<Vec<u8>, GraphError>) {
        (uid, self.api.mime(id).await)
    }

    async fn store(
        &self,
        folder: &str,
        incoming: Vec<Incoming>,
        entries: Vec<Entry>,
        writes: SourceWrites,
        outcome: &mut SyncOutcome,
    ) -> Result<()> {
        source::store_api_batch(
            self.deps,
            self.scan.as_ref(),
            self.account.id,
            folder,
            (incoming, entries),
            writes,
            outcome,
        )
        .await
    }

    async fn beat(&self, text: &str) {
        if let Some(h) = self.deps.heartbeat {
            h.activity(text).await;
        }
    }
}

/// A 403 on the folder list in words an operator can act on.
fn refused(e: Error, user: &str) -> Error {
    match e.part_ref::<GraphError>() {
        Some(g) if g.is_access_denied() => Error::invalid(
            "consent",
            format!(
                "Microsoft 365 refused access to the mailbox {user}: the application's Mail.Read permission (admin consent) was revoked, or an application access policy leaves this mailbox out; grant it again in Microsoft Entra"
            ),
        ),
        _ => e,
    }
}

/// The UID of each Graph id of `folder`, numbering ids seen for the first time. Committed on
/// its own: a number whose message never gets stored is harmless (the replay uses it).
async fn uids_for(
    pool: &sqlx::PgPool,
    account_id: i64,
    folder: &str,
    ids: &[String],
) -> Result<HashMap<String, i64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    sqlx::query!(
        "INSERT INTO graph_ids (account_id, folder, graph_id)
         SELECT $1, $2, id FROM unnest($3::text[]) AS id
         ON CONFLICT DO NOTHING",
        account_id,
        folder,
        ids
    )
    .execute(pool)
    .await?;
    let rows = sqlx::query!(
        "SELECT graph_id, uid FROM graph_ids
         WHERE account_id = $1 AND folder = $2 AND graph_id = ANY($3::text[])",
        account_id,
        folder,
        ids
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.graph_id, r.uid)).collect())
}
