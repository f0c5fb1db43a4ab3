//! Virus scanning with clamd: verdicts, the quarantine, and the rejection record.
//!
//! The promise this module keeps: **never a false clean**. A message is `Clean` only when
//! clamd answered `stream: OK` for its bytes; an unreachable, slow or confused clamd gives
//! `Verdict::Error`, which the ingest pipeline treats as "not scanned yet" (it holds the
//! folder position, or stores the message as `pending` when `clamav.archive_unscanned` is on).

pub mod decision;
pub mod facts;
pub mod manage;
pub mod outage;
pub mod quarantine;
pub mod rejections;
pub mod rescan;
pub mod scanner;
pub mod seal;
pub mod stage;
pub mod tasks;
pub mod verdict;

pub use decision::{Disposition, ScanStatus, decide};
pub use facts::{MessageFacts, Source};
pub use outage::Outage;
pub use scanner::{Scanner, ScannerUnavailable, Transport};
pub use stage::{ScanStage, Screened};
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

/// Logs whether clamd answers at startup and makes the verdict counter visible at zero.
/// An unreachable clamd is a warning, not a failure: the web UI works without it, and
/// ingest holds mail until it is back.
pub async fn announce(scanner: &Scanner) {
    for verdict in ["clean", "infected", "too_large", "error"] {
        metrics::counter!("scan_verdicts_total", "verdict" => verdict).increment(0);
    }
    match scanner.version().await {
        Ok(version) => {
            tracing::info!(address = %scanner.transport(), %version, "virus scanner reachable")
        }
        Err(e) => tracing::warn!(error = %e, "virus scanner unreachable; mail will wait for it"),
    }
}
