//! The scan stage of the ingest pipeline: scans a batch (overlapping scans, bounded by the
//! scanner's concurrency) and says what to do with each message, stopping at the first one
//! that could not be scanned. The scanner itself tracks (and reports once) a clamd outage.

use futures::future::join_all;

use super::decision::{Disposition, ScanStatus, decide};
use super::{Action, Scanner};
use crate::config::ClamavSettings;

/// Everything the pipeline needs to scan: the client and the configured rules.
#[derive(Debug, Clone)]
pub struct ScanStage {
    pub scanner: Scanner,
    pub action: Action,
    pub archive_unscanned: bool,
    pub quarantine_expiry_days: u32,
}

/// The stage's answer for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    /// One disposition per message, in batch order, up to (not including) the held message.
    pub dispositions: Vec<Disposition>,
    /// Index of the first message that could not be scanned, and why. Neither it nor any
    /// message after it may be stored, and the folder position must stay before it.
    pub held: Option<(usize, String)>,
}

impl Screened {
    /// What to do when scanning is switched off: store everything as `not_scanned`.
    pub fn unscanned(count: usize) -> Self {
        Self {
            dispositions: vec![
                Disposition::Store {
                    status: ScanStatus::NotScanned,
                    virus_name: None,
                };
                count
            ],
            held: None,
        }
    }
}

impl ScanStage {
    pub fn new(scanner: Scanner, settings: &ClamavSettings) -> Self {
        Self {
            scanner,
            action: Action::from_setting(&settings.action),
            archive_unscanned: settings.archive_unscanned,
            quarantine_expiry_days: settings.quarantine_expiry_days,
        }
    }

    /// The stage for these settings, or `None` when scanning is off.
    pub fn from_settings(settings: &ClamavSettings) -> Option<Self> {
        Scanner::from_settings(settings).map(|scanner| Self::new(scanner, settings))
    }

    /// Scans every message of a batch and decides its fate.
    pub async fn screen(&self, messages: &[&[u8]]) -> Screened {
        let verdicts = join_all(messages.iter().map(|m| self.scanner.scan(m))).await;
        let mut dispositions = Vec::with_capacity(verdicts.len());
        for (index, verdict) in verdicts.iter().enumerate() {
            match decide(verdict, self.action, self.archive_unscanned) {
                Disposition::Hold { reason } => {
                    return Screened {
                        dispositions,
                        held: Some((index, reason)),
                    };
                }
                d => dispositions.push(d),
            }
        }
        Screened {
            dispositions,
            held: None,
        }
    }
}
