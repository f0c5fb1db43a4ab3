//! The archive itself: blobs, messages, attachments, the completeness ledger, and search. Each
//! file owns the SQL of its tables; functions take the caller's transaction, and the caller
//! commits.

pub mod attachment_text;
pub mod blobs;
pub mod export;
pub mod export_jobs;
pub mod export_manifest;
pub mod folders;
pub mod labels;
pub mod ledger;
pub mod listing;
pub mod messages;
pub mod parse;
pub mod reading;
pub mod search;
pub mod threads;

/// PostgreSQL text columns reject NUL bytes; hostile mail carries them.
pub fn strip_nul(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text.to_string()
    }
}
