//! Living with an unreachable clamd: one alert per outage rather than one per held message.
//! (How long a held account waits before retrying is the sync scheduler's backoff, capped by
//! `clamav.retry_max_secs`.)

use std::sync::{Arc, Mutex};

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
        tracing::error!(%reason, "virus scanner unavailable: no mail is marked clean until it is back");
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
