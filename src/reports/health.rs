//! Is archiving working? Failing accounts, the virus scanner, the quarantine and the ledger,
//! in the order an administrator should look at them.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::error::Result;
use crate::scan::Scanner;

/// An enabled archive account whose last sync attempts failed.
#[derive(Debug, Clone)]
pub struct FailingAccount {
    pub id: i64,
    pub name: String,
    pub consecutive_failures: i32,
    pub last_error: Option<String>,
    pub failing_since: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
}

/// Whether clamd answered when asked just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerState {
    /// Scanning is switched off in the configuration.
    Off,
    Reachable {
        version: String,
    },
    Unreachable {
        address: String,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Health {
    pub failing: Vec<FailingAccount>,
    pub scanner: ScannerState,
    /// Quarantined messages nobody has released or deleted yet.
    pub quarantine_waiting: i64,
    /// Messages the ledger records as failed (not archived) or skipped on purpose.
    pub ledger_failed: i64,
    pub ledger_skipped: i64,
}

impl Health {
    pub fn all_good(&self) -> bool {
        self.failing.is_empty()
            && !matches!(self.scanner, ScannerState::Unreachable { .. })
            && self.ledger_failed == 0
    }
}

pub async fn failing_accounts(pool: &PgPool) -> Result<Vec<FailingAccount>> {
    Ok(sqlx::query_as!(
        FailingAccount,
        "SELECT a.id, a.name, w.consecutive_failures, w.last_error,
                w.last_error_at AS failing_since, w.last_success_at
         FROM accounts a JOIN workers w ON w.account_id = a.id
         WHERE a.enabled AND w.consecutive_failures > 0
         ORDER BY w.consecutive_failures DESC, a.name",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn scanner_state(scanner: Option<&Scanner>) -> ScannerState {
    match scanner {
        None => ScannerState::Off,
        Some(s) => match s.version().await {
            Ok(version) => ScannerState::Reachable { version },
            Err(e) => ScannerState::Unreachable {
                address: e.address,
                reason: e.reason,
            },
        },
    }
}

pub async fn load(pool: &PgPool, scanner: Option<&Scanner>) -> Result<Health> {
    let failing = failing_accounts(pool).await?;
    let counts = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM quarantine WHERE released_at IS NULL) AS "quarantine!",
                  (SELECT count(*) FROM ledger_entries WHERE kind = 'failed') AS "failed!",
                  (SELECT count(*) FROM ledger_entries WHERE kind = 'skipped') AS "skipped!""#,
    )
    .fetch_one(pool)
    .await?;
    let (quarantine_waiting, ledger_failed, ledger_skipped) =
        (counts.quarantine, counts.failed, counts.skipped);
    Ok(Health {
        failing,
        scanner: scanner_state(scanner).await,
        quarantine_waiting,
        ledger_failed,
        ledger_skipped,
    })
}
