//! Virus scanning with clamd: verdicts, the quarantine, and the rejection record.
//!
//! The promise this module keeps: **never a false clean**. A message is `Clean` only when
//! clamd answered `stream: OK` for its bytes; an unreachable, slow or confused clamd gives
//! `Verdict::Error`, which the ingest pipeline treats as "not scanned yet" (it holds the
//! folder position, or stores the message as `pending` when `clamav.archive_unscanned` is on).

pub mod facts;
pub mod quarantine;
pub mod rejections;
pub mod scanner;
pub mod seal;
pub mod verdict;

pub use facts::{MessageFacts, Source};
pub use scanner::{Scanner, ScannerUnavailable, Transport};
pub use verdict::{Verdict, parse_reply};

/// What happens to infected mail (`clamav.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Held sealed in the quarantine instead of the archive.
    Quarantine,
    /// Archived, marked infected; attachments only for administrators.
    Flag,
    /// Not archived; only a record of the refusal is kept.
    Reject,
}

impl Action {
    /// Parses the configured action; config validation has already refused anything else,
    /// so an unknown value falls back to the safest choice.
    pub fn from_setting(value: &str) -> Self {
        match value {
            "flag" => Action::Flag,
            "reject" => Action::Reject,
            _ => Action::Quarantine,
        }
    }
}
