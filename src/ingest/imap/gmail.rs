//! Gmail over IMAP (`X-GM-EXT-1`): every message of a Gmail mailbox is in "All Mail" (the
//! RFC 6154 `\All` folder) once, whatever labels it carries, and the other folders are views of
//! its labels. An account in this mode syncs "All Mail" only and stores each message's
//! `X-GM-LABELS` as its labels, so a message with three labels is archived once with three tags
//! (the same identity the Gmail API source gives).
//!
//! Existing accounts are not switched: the mode applies only to an account that has archived
//! no folder other than "All Mail" (a new account before its first sync), so an account that
//! already holds per-folder copies keeps syncing per folder and nothing is lost or stored twice.

use async_imap::types::Fetch;
use sqlx::PgPool;

use super::FolderInfo;
use super::folders::FolderFilter;
use crate::archive::labels::{self, LabelName};
use crate::error::Result;

/// The capability Gmail's IMAP server announces its extensions with.
pub const CAPABILITY: &str = "X-GM-EXT-1";

/// The folder a pass syncs alone when the account archives Gmail by labels: the server speaks
/// `X-GM-EXT-1`, lists a `\All` folder the account's patterns take, and the account has no
/// per-folder history. None: sync folder by folder as for any IMAP server.
pub async fn all_mail<'a>(
    pool: &PgPool,
    account_id: i64,
    gmail_server: bool,
    folders: &'a [FolderInfo],
    filter: &FolderFilter,
) -> Result<Option<&'a FolderInfo>> {
    if !gmail_server {
        return Ok(None);
    }
    let Some(all) = folders.iter().find(|f| f.all && f.wanted(filter)) else {
        return Ok(None);
    };
    let per_folder = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sync_state WHERE account_id = $1 AND folder <> $2)
           AS "exists!""#,
        account_id,
        all.display,
    )
    .fetch_one(pool)
    .await?;
    if per_folder {
        tracing::debug!(
            account_id,
            "Gmail server, but the account already archives folder by folder: kept so"
        );
        return Ok(None);
    }
    Ok(Some(all))
}

/// The `X-GM-LABELS` of a FETCH item, sorted, each once; None when the server sent none.
pub fn labels_of(f: &Fetch) -> Option<Vec<String>> {
    let mut out: Vec<String> = f.gmail_labels()?.iter().map(|l| l.to_string()).collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// Names for the account's labels from labels as Gmail IMAP spells them: system labels
/// (`\Inbox`, `\Sent`, ...) already have their friendly names; every other label is named by
/// itself, decoded from modified UTF-7 (`Projekt &AOQ-` → `Projekt ä`).
pub fn names<'a>(labels: impl IntoIterator<Item = &'a String>) -> Vec<LabelName> {
    let mut out: Vec<LabelName> = labels
        .into_iter()
        .filter(|id| !labels::is_system(id))
        .map(|id| LabelName {
            id: id.clone(),
            name: super::utf7::display(id),
            kind: "user".into(),
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_labels_need_no_name_and_others_are_decoded() {
        let labels: Vec<String> = ["\\Inbox", "\\Important", "Projekt &AOQ-", "Work", "Work"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let named: Vec<(String, String)> =
            names(&labels).into_iter().map(|l| (l.id, l.name)).collect();
        assert_eq!(
            named,
            [
                ("Projekt &AOQ-".to_string(), "Projekt ä".to_string()),
                ("Work".to_string(), "Work".to_string())
            ]
        );
    }
}
