//! Proving the archive: `verify archive` re-reads every stored message and checks it against
//! what was recorded when it arrived.
//!
//! - every blob decompresses and hashes to its SHA-256 key, at its recorded size;
//! - every message row points at a stored blob of its size, and its attachment rows agree with
//!   what the stored bytes contain;
//! - every quarantined message still opens with the current sealing key and hashes right;
//! - the completeness ledger adds up (no archived copy beyond a folder's position, no copy
//!   both archived and listed as failed, no IMAP copy outside the ledger).
//!
//! The walk streams blobs in key order in batches bounded by size, decompresses and hashes on
//! every core while the next batch is read, and reports each problem as it is found, so memory
//! stays flat whatever the archive's size.

pub mod archive;
mod checks;
pub mod export;
mod ledger;
mod quarantine;
pub mod runs;
pub mod schedule;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use archive::{Scope, verify_archive};

/// What is wrong, in words an operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The blob's bytes no longer decompress or no longer hash to their key.
    CorruptBlob,
    /// A message row names a blob that is not stored.
    MissingBlob,
    /// A message's recorded size differs from its stored bytes.
    SizeMismatch,
    /// Attachment rows disagree with the attachments in the stored message.
    Attachments,
    /// A row refers to something that does not exist.
    Dangling,
    /// A quarantined message cannot be opened or no longer matches its hash.
    Quarantine,
    /// The completeness ledger does not add up.
    Ledger,
}

impl ProblemKind {
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::CorruptBlob => "corrupt blob",
            ProblemKind::MissingBlob => "missing blob",
            ProblemKind::SizeMismatch => "size mismatch",
            ProblemKind::Attachments => "attachments differ",
            ProblemKind::Dangling => "dangling row",
            ProblemKind::Quarantine => "quarantine",
            ProblemKind::Ledger => "ledger",
        }
    }
}

/// One problem, with where it is: the message (when there is one), its account and folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message_id: Option<i64>,
    pub account: Option<String>,
    pub folder: Option<String>,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message_id {
            Some(id) => write!(f, "message {id}")?,
            None => f.write_str("-")?,
        }
        if let Some(account) = &self.account {
            write!(f, " account {account:?}")?;
        }
        if let Some(folder) = &self.folder {
            write!(f, " folder {folder:?}")?;
        }
        write!(f, ": {}: {}", self.kind.label(), self.detail)
    }
}

/// Totals of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub blobs_checked: u64,
    pub messages_checked: u64,
    /// Raw (decompressed) bytes hashed.
    pub bytes_checked: u64,
    pub quarantine_checked: u64,
    pub problem_count: u64,
}

impl Summary {
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }
}

/// Watches a run: told the size of the work, each chunk done, and each problem as it is found.
pub trait Observer: Send + Sync {
    fn planned(&self, _blobs: u64, _bytes: u64) {}
    fn advanced(&self, _bytes: u64) {}
    fn problem(&self, _problem: &Problem) {}
}

/// An observer that wants nothing.
pub struct Quiet;
impl Observer for Quiet {}
