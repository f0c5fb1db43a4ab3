//! Whether this process can reach its database right now, as the supervisor last saw it.
//! Shared (cheaply cloned) by the supervisor, `/readyz`, the pages and the background tasks, so
//! they answer "down" at once instead of each waiting out a pool timeout.

use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

/// An outage this process saw end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub started_at: OffsetDateTime,
    pub ended_at: OffsetDateTime,
    /// What was seen first, e.g. "the private PostgreSQL server (pid 4711) exited".
    pub detail: String,
}

impl Outage {
    pub fn seconds(&self) -> f64 {
        (self.ended_at - self.started_at).as_seconds_f64()
    }
}

/// The database as this process sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Set while the database is unreachable.
    pub down_since: Option<OffsetDateTime>,
    /// Why it is down, and what is being done about it.
    pub detail: String,
    /// Restart or reconnect attempts during the current outage.
    pub attempts: u32,
    pub last_outage: Option<Outage>,
}

/// Cheap to clone; every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct DbHealth {
    inner: Arc<Mutex<Status>>,
}

impl DbHealth {
    pub fn status(&self) -> Status {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn is_down(&self) -> bool {
        self.status().down_since.is_some()
    }

    /// Records that the database is unreachable; true when it was up until now.
    pub fn mark_down(&self, detail: impl Into<String>) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let first = s.down_since.is_none();
        if first {
            s.down_since = Some(OffsetDateTime::now_utc());
            s.attempts = 0;
            s.detail = detail.into();
        }
        first
    }

    /// Updates what is being done about the outage (keeps its start and first cause).
    pub fn attempt(&self, doing: impl Into<String>) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if s.down_since.is_some() {
            s.attempts += 1;
            let cause = s.detail.split(';').next().unwrap_or_default().to_string();
            s.detail = format!("{cause}; {}", doing.into());
        }
    }

    /// Records that the database answers again; the outage that ended, if there was one.
    pub fn mark_up(&self) -> Option<Outage> {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let started_at = s.down_since.take()?;
        let outage = Outage {
            started_at,
            ended_at: OffsetDateTime::now_utc(),
            detail: s.detail.split(';').next().unwrap_or_default().to_string(),
        };
        s.detail.clear();
        s.attempts = 0;
        s.last_outage = Some(outage.clone());
        Some(outage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_recorded_once_and_ends_with_its_first_cause() {
        let h = DbHealth::default();
        assert!(!h.is_down());
        assert!(h.mark_down("server exited"));
        assert!(!h.mark_down("connection refused"));
        h.attempt("restarting (attempt 1)");
        assert!(h.is_down());
        assert_eq!(h.status().detail, "server exited; restarting (attempt 1)");
        let outage = h.mark_up().expect("an outage ended");
        assert_eq!(outage.detail, "server exited");
        assert!(!h.is_down());
        assert!(h.mark_up().is_none());
        assert_eq!(h.status().last_outage, Some(outage));
    }
}
