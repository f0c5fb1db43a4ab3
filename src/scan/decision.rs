//! What the ingest pipeline does with a message, given its verdict and the settings. Pure
//! logic, kept apart so the rules can be read (and tested) in one place.

use super::{Action, Verdict};

/// The `scan_status` stored with an archived message (a text column; a CHECK constraint
/// admits exactly these values, spelled as [`ScanStatus::as_str`] spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ScanStatus {
    /// Archived before scanning existed, or with scanning switched off.
    NotScanned,
    Clean,
    /// Archived with action = flag; attachments are for administrators only.
    Infected,
    TooLarge,
    /// Archived while clamd was unreachable (`clamav.archive_unscanned`); scanned later.
    Pending,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::NotScanned => "not_scanned",
            ScanStatus::Clean => "clean",
            ScanStatus::Infected => "infected",
            ScanStatus::TooLarge => "too_large",
            ScanStatus::Pending => "pending",
        }
    }

    /// For people: "not scanned", "too large".
    pub fn label(self) -> String {
        self.as_str().replace('_', " ")
    }

    /// The CSS class suffix: `verdict-not-scanned`.
    pub fn css_class(self) -> String {
        self.as_str().replace('_', "-")
    }

    pub fn is_infected(self) -> bool {
        self == ScanStatus::Infected
    }

    /// The status a final scan verdict is stored with; `None` for `Verdict::Error`, which
    /// never becomes a stored status.
    pub fn of_verdict(verdict: &Verdict) -> Option<(ScanStatus, Option<String>)> {
        match verdict {
            Verdict::Clean => Some((ScanStatus::Clean, None)),
            Verdict::TooLarge { .. } => Some((ScanStatus::TooLarge, None)),
            Verdict::Infected { signature } => {
                Some((ScanStatus::Infected, Some(signature.clone())))
            }
            Verdict::Error { .. } => None,
        }
    }
}

impl std::fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pipeline's next step for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Archive it with this status (and virus name when flagged).
    Store {
        status: ScanStatus,
        virus_name: Option<String>,
    },
    /// Put it in the quarantine instead of the archive.
    Quarantine { virus_name: String },
    /// Keep only a record of the refusal.
    Reject { virus_name: String },
    /// Stop the batch before this message: the folder position must not pass it.
    Hold { reason: String },
}

impl Disposition {
    /// True when the folder position may move past this message.
    pub fn passes(&self) -> bool {
        !matches!(self, Disposition::Hold { .. })
    }
}

/// The rules. Note what is absent: no path from `Verdict::Error` to `ScanStatus::Clean`.
pub fn decide(verdict: &Verdict, action: Action, archive_unscanned: bool) -> Disposition {
    match verdict {
        Verdict::Clean => Disposition::Store {
            status: ScanStatus::Clean,
            virus_name: None,
        },
        Verdict::TooLarge { .. } => Disposition::Store {
            status: ScanStatus::TooLarge,
            virus_name: None,
        },
        Verdict::Infected { signature } => match action {
            Action::Quarantine => Disposition::Quarantine {
                virus_name: signature.clone(),
            },
            Action::Flag => Disposition::Store {
                status: ScanStatus::Infected,
                virus_name: Some(signature.clone()),
            },
            Action::Reject => Disposition::Reject {
                virus_name: signature.clone(),
            },
        },
        Verdict::Error { .. } if archive_unscanned => Disposition::Store {
            status: ScanStatus::Pending,
            virus_name: None,
        },
        Verdict::Error { reason } => Disposition::Hold {
            reason: reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infected() -> Verdict {
        Verdict::Infected {
            signature: "Eicar".into(),
        }
    }

    #[test]
    fn a_scanner_error_holds_the_message_or_stores_it_pending_but_never_clean() {
        let error = Verdict::error("clamd unreachable");
        for action in [Action::Quarantine, Action::Flag, Action::Reject] {
            let held = decide(&error, action, false);
            assert!(!held.passes(), "{held:?}");
            assert_eq!(
                decide(&error, action, true),
                Disposition::Store {
                    status: ScanStatus::Pending,
                    virus_name: None
                }
            );
        }
    }

    #[test]
    fn infected_mail_follows_the_configured_action() {
        assert_eq!(
            decide(&infected(), Action::Quarantine, false),
            Disposition::Quarantine {
                virus_name: "Eicar".into()
            }
        );
        assert_eq!(
            decide(&infected(), Action::Flag, true),
            Disposition::Store {
                status: ScanStatus::Infected,
                virus_name: Some("Eicar".into())
            }
        );
        assert_eq!(
            decide(&infected(), Action::Reject, false),
            Disposition::Reject {
                virus_name: "Eicar".into()
            }
        );
    }

    #[test]
    fn clean_and_too_large_mail_is_stored_with_that_status() {
        let status = |v: &Verdict| match decide(v, Action::Quarantine, false) {
            Disposition::Store { status, .. } => status.as_str(),
            other => panic!("{other:?}"),
        };
        assert_eq!(status(&Verdict::Clean), "clean");
        assert_eq!(status(&Verdict::TooLarge { size: 1 }), "too_large");
    }
}
