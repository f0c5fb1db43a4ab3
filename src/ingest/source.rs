//! The one place a sync pass starts: by `accounts.kind`, the IMAP, Gmail API or Microsoft
//! Graph source. The scheduler, the workers and `daygle sync --once` all come through here.
//!
//! A source whose token grant the provider refused (`invalid_grant`) leaves the account waiting
//! to be connected again ("reconnect this account", an alert) instead of failing on every poll.

use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::ingest::oauth::{TokenError, store};
use crate::ingest::{gmail, graph, imap};

pub use crate::ingest::imap::sync::{SyncDeps, SyncOutcome};

/// The UIDVALIDITY the API sources (Gmail, Graph) file their folders under: their ids never
/// change meaning, so one constant stands where IMAP has the server's value.
pub const API_UIDVALIDITY: i64 = 1;

/// Stores one batch fetched by an API source (Gmail, Graph) with the source's own writes
/// (labels, delta position) in one transaction, and tallies it into `outcome`.
pub async fn store_api_batch(
    deps: &SyncDeps<'_>,
    scan: Option<&crate::scan::ScanStage>,
    account_id: i64,
    folder: &str,
    (incoming, entries): (
        Vec<crate::ingest::pipeline::Incoming>,
        Vec<crate::archive::ledger::Entry>,
    ),
    writes: crate::ingest::pipeline::SourceWrites,
    outcome: &mut SyncOutcome,
) -> Result<()> {
    outcome.fetched += incoming.len() as u64;
    outcome.skipped += entries.len() as u64;
    let batch = crate::ingest::pipeline::Batch {
        account_id,
        folder: folder.to_string(),
        uidvalidity: Some(API_UIDVALIDITY),
        messages: incoming,
        ledger: entries,
        advance_to: None,
    };
    let stored = crate::ingest::pipeline::store_source(
        deps.pool,
        deps.settings.storage.zstd_level,
        batch,
        scan.map(|s| (s, deps.keys)),
        writes,
    )
    .await?;
    outcome.add_stored(&stored);
    Ok(())
}

/// Account kinds synced from a server (the rest, `import`, are filled from files).
pub const SYNCED_KINDS: [&str; 3] = ["imap", "gmail", "graph"];

/// One pass over `account` with the source its kind names.
pub async fn sync_account(deps: &SyncDeps<'_>, account: &Account) -> Result<SyncOutcome> {
    if account.oauth_state == "reconnect" {
        // The provider refused this grant before; asking again changes nothing.
        return Err(Error::invalid(
            "account",
            format!(
                "account {} must be connected again before it syncs ({})",
                account.name,
                account
                    .oauth_error
                    .as_deref()
                    .unwrap_or("authorisation refused")
            ),
        ));
    }
    let result = match account.kind.as_str() {
        "imap" => imap::sync::sync_account(deps, account).await,
        "gmail" => gmail::sync_account(deps, account).await,
        "graph" => graph::sync_account(deps, account).await,
        other => Err(Error::invalid(
            "kind",
            format!("accounts of kind {other} are not synced from a server"),
        )),
    };
    if let Err(e) = &result
        && TokenError::is_revoked(e)
    {
        let reason = crate::error::chain(e);
        tracing::warn!(account = %account.name, error = %reason, "authorisation refused: the account waits to be connected again");
        store::mark_reconnect(deps.pool, account.id, &reason).await?;
    }
    result
}
