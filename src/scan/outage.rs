//! Living with an unreachable clamd: how long to wait before retrying, and raising one alert
//! per outage rather than one per held message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait after a failed scan; doubles on each failure up to the configured maximum.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Exponential backoff between retries of a held batch.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max_secs: u64) -> Self {
        let max = Duration::from_secs(max_secs.max(1));
        Self {
            next: FIRST_RETRY.min(max),
            max,
        }
    }

    /// The wait before the next retry; each call doubles the one after, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A scan succeeded: start again from the short wait.
    pub fn reset(&mut self) {
        self.next = FIRST_RETRY.min(self.max);
    }
}

/// Whether clamd is known to be down, shared by every task that scans. Only the transitions
/// are reported, so the log (and any alert built on it) says "down" once and "back" once.
#[derive(Debug, Clone, Default)]
pub struct Outage {
    down_since: Arc<Mutex<Option<time::OffsetDateTime>>>,
}

impl Outage {
    /// Records a failed scan. Returns true for the first failure of an outage, when the
    /// caller should raise the alert.
    pub fn scan_failed(&self, reason: &str) -> bool {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_some() {
            return false;
        }
        *down = Some(time::OffsetDateTime::now_utc());
        metrics::gauge!("scanner_unavailable").set(1.0);
        tracing::error!(%reason, "virus scanner unavailable: mail is held until it is back");
        true
    }

    /// Records a successful scan. Returns true when this ends an outage.
    pub fn scan_succeeded(&self) -> bool {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match down.take() {
            Some(since) => {
                metrics::gauge!("scanner_unavailable").set(0.0);
                let secs = (time::OffsetDateTime::now_utc() - since).whole_seconds();
                tracing::info!(down_for_secs = secs, "virus scanner is back");
                true
            }
            None => false,
        }
    }

    pub fn is_down(&self) -> bool {
        self.down_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_maximum_and_starts_over_after_a_success() {
        let mut b = Backoff::new(30);
        let waits: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay().as_secs(), 5);
        assert_eq!(Backoff::new(2).next_delay().as_secs(), 2);
    }

    #[test]
    fn an_outage_is_reported_once_when_it_starts_and_once_when_it_ends() {
        let outage = Outage::default();
        assert!(!outage.scan_succeeded());
        assert!(outage.scan_failed("refused"));
        assert!(!outage.clone().scan_failed("refused again"));
        assert!(outage.is_down());
        assert!(outage.scan_succeeded());
        assert!(!outage.scan_succeeded());
        assert!(!outage.is_down());
    }
}
