//! Background work of the scan module, run by `App` under its shutdown token.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::quarantine;

/// How often expired quarantine entries are looked for. Expiry is counted in days, so an
/// hour late is fine, and the query uses an index.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes quarantine entries past their `expires_at`, now and then every hour, until shutdown.
pub async fn expire_quarantine(pool: PgPool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let result = async {
            let mut conn = pool.acquire().await?;
            quarantine::expire(&mut conn, OffsetDateTime::now_utc()).await
        }
        .await;
        if let Err(e) = result {
            // The next tick tries again; nothing is lost by waiting.
            tracing::warn!(error = %crate::error::chain(&e), "quarantine expiry failed");
        }
    }
}

/// How often the backlog of mail archived unscanned is looked at.
const PENDING_INTERVAL: Duration = Duration::from_secs(30);

/// Scans mail archived as `pending` (clamd was down, `clamav.archive_unscanned` on) once clamd
/// answers again, applying the configured action to anything infected.
pub async fn scan_pending(
    pool: PgPool,
    stage: super::ScanStage,
    keys: std::sync::Arc<crate::secrets::Keys>,
    shutdown: CancellationToken,
) {
    let filter = super::rescan::RescanFilter {
        only_pending: true,
        ..Default::default()
    };
    let mut tick = tokio::time::interval(PENDING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        // While clamd is known to be down, a cheap PING decides whether to try at all.
        if stage.scanner.outage().is_down() && stage.scanner.ping().await.is_err() {
            continue;
        }
        match super::rescan::run(&pool, &stage, &keys.sealing, &filter, |_| {}).await {
            Ok(report) if report.scanned > 0 => {
                tracing::info!(
                    scanned = report.scanned,
                    newly_infected = report.newly_infected,
                    stopped = report.stopped.is_some(),
                    "scanned mail archived while clamd was down"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "scanning the pending backlog failed");
            }
        }
    }
}
