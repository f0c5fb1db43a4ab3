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
