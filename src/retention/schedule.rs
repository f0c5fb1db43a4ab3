//! The scheduled purge (`retention.schedule`): once a day at a time of day in the server's
//! time zone. Several `daygle serve` instances may share a database; the purge's own lock lets
//! only one of them run it.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{plan::Plan, purge};
use crate::audit::Actor;
use crate::error::{Error, Result};

/// A daily time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daily {
    pub hour: i8,
    pub minute: i8,
}

impl Daily {
    /// `""` or `off`: no scheduled purge. Otherwise `HH:MM` (24-hour clock).
    pub fn parse(text: &str) -> Result<Option<Self>> {
        crate::config::parse_daily_time(text)
            .map(|t| t.map(|(hour, minute)| Self { hour, minute }))
            .map_err(|e| Error::invalid("retention.schedule", e))
    }

    /// The next occurrence strictly after `now`, in `tz`.
    pub fn next_after(self, now: jiff::Zoned) -> Result<jiff::Zoned> {
        let bad = |e: jiff::Error| Error::context("compute the next purge time", e);
        let today = now
            .date()
            .at(self.hour, self.minute, 0, 0)
            .to_zoned(now.time_zone().clone())
            .map_err(bad)?;
        if today > now {
            return Ok(today);
        }
        let tomorrow = now.date().tomorrow().map_err(bad)?;
        tomorrow
            .at(self.hour, self.minute, 0, 0)
            .to_zoned(now.time_zone().clone())
            .map_err(bad)
    }
}

/// Runs the purge every day at `daily` until shutdown.
pub async fn run_until_stopped(
    pool: PgPool,
    daily: Daily,
    batch_size: i64,
    shutdown: CancellationToken,
) {
    let actor = Actor {
        username: "system:retention".into(),
        user_agent: "daygle scheduler".into(),
        ..Actor::default()
    };
    loop {
        let now = jiff::Zoned::now();
        let wait = match daily.next_after(now.clone()) {
            Ok(next) => {
                let secs = next.timestamp().as_second() - now.timestamp().as_second();
                Duration::from_secs(u64::try_from(secs).unwrap_or(60).max(1))
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "retention schedule");
                Duration::from_secs(3600)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
        let result = async {
            let plan = Plan::current(&pool, &crate::auth::Grants::All).await?;
            purge::purge(&pool, &actor, &plan, None, batch_size, &shutdown).await
        }
        .await;
        match result {
            Ok(report) => tracing::info!(
                messages = report.messages,
                bytes_freed = report.collected.bytes,
                "scheduled retention purge done"
            ),
            Err(Error::Conflict(reason)) => tracing::info!(%reason, "scheduled purge skipped"),
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "scheduled retention purge failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_bad_ones_are_refused() {
        assert_eq!(Daily::parse("").unwrap(), None);
        assert_eq!(Daily::parse("off").unwrap(), None);
        assert_eq!(
            Daily::parse("03:00").unwrap(),
            Some(Daily { hour: 3, minute: 0 })
        );
        for bad in ["3", "24:00", "12:60", "12:5", "noon"] {
            assert!(Daily::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_next_run_is_today_or_tomorrow() {
        let tz = jiff::tz::TimeZone::UTC;
        let d = Daily { hour: 3, minute: 0 };
        let at = |s: &str| {
            s.parse::<jiff::civil::DateTime>()
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
        };
        assert_eq!(
            d.next_after(at("2026-01-01T02:59")).unwrap(),
            at("2026-01-01T03:00")
        );
        assert_eq!(
            d.next_after(at("2026-01-01T03:00")).unwrap(),
            at("2026-01-02T03:00")
        );
    }
}
