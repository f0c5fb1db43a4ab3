//! The heartbeat of a `serve` process and, for workers, the leader lease: the jobs that must
//! run once per installation start in the process that takes the lease and stop when it loses
//! it (it could not renew within the lease time, e.g. its database connection was cut).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::leases;
use super::processes::Me;
use crate::db::DbHealth;

/// How often leases and the heartbeat are renewed: a third of the lease time, so two renewals
/// may fail before a lease expires.
pub fn renew_every(lease_secs: u32) -> Duration {
    Duration::from_millis(u64::from(lease_secs.max(3)) * 1000 / 3)
}

/// Beats for this process (every role) until shutdown.
pub async fn beat_until_stopped(
    pool: PgPool,
    me: Me,
    lease_secs: u32,
    health: DbHealth,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(renew_every(lease_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        if health.is_down() {
            continue;
        }
        if let Err(e) = me.beat(&pool).await {
            tracing::warn!(error = %crate::error::chain(&e), "could not renew this process's heartbeat");
        }
    }
}

/// Competes for the leader lease until shutdown; `start_jobs` is called with a token each time
/// this process becomes the leader, and that token is cancelled when it stops being it.
pub async fn lead_until_stopped(
    pool: PgPool,
    me: Me,
    lease_secs: u32,
    health: DbHealth,
    shutdown: CancellationToken,
    mut start_jobs: impl FnMut(CancellationToken),
) {
    let lease = Duration::from_secs(u64::from(lease_secs));
    let mut tick = tokio::time::interval(renew_every(lease_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut leading: Option<(CancellationToken, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let claimed = if health.is_down() {
            Err("the database is unreachable".to_string())
        } else {
            leases::claim_leader(&pool, me.id, lease_secs)
                .await
                .map_err(|e| crate::error::chain(&e))
        };
        match (claimed, &mut leading) {
            (Ok(true), Some((_, renewed))) => *renewed = Instant::now(),
            (Ok(true), None) => {
                tracing::info!(
                    process = %me.label(),
                    "this process is now the leader: it runs retention, quarantine expiry, scheduled verification, alert evaluation, the pending-scan backlog and clean-ups"
                );
                let token = shutdown.child_token();
                start_jobs(token.clone());
                leading = Some((token, Instant::now()));
            }
            (Ok(false), Some((token, _))) => {
                tracing::warn!(
                    "another process took the leader lease; stopping the leader jobs here"
                );
                token.cancel();
                leading = None;
            }
            (Ok(false), None) => {}
            (Err(e), current) => {
                tracing::warn!(error = %e, "could not renew the leader lease");
                if let Some((token, renewed)) = current
                    && renewed.elapsed() >= lease
                {
                    tracing::warn!("the leader lease expired; stopping the leader jobs here");
                    token.cancel();
                    leading = None;
                }
            }
        }
    }
    if let Some((token, _)) = leading {
        token.cancel();
    }
}
