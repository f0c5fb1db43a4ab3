//! The Microsoft Graph source (#12, engineer h12-graph): per folder, messages/delta with
//! nextLink/deltaLink, each message's MIME from `$value`.

use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::ingest::source::{SyncDeps, SyncOutcome};

/// One pass over a Microsoft 365 mailbox.
pub async fn sync_account(_deps: &SyncDeps<'_>, account: &Account) -> Result<SyncOutcome> {
    Err(Error::invalid(
        "kind",
        format!(
            "account {}: the Microsoft Graph source is not built yet",
            account.name
        ),
    ))
}
