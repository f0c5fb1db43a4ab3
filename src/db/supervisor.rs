//! Surviving the database's death. `serve` runs [`Supervisor`]: it notices within a second that
//! the private cluster's postmaster is gone (or that an external server stopped answering),
//! says so in [`DbHealth`] and the log, restarts the private cluster with backoff (PostgreSQL
//! recovers from its write-ahead log on start), and records the outage once the database
//! answers again. The pool needs no help: it drops broken connections and opens new ones.
//! Commands use [`Watch::lost`] to stop within seconds with one sentence instead.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::health::{DbHealth, Outage};

/// How often a healthy database is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one probe (connect or `SELECT 1`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait between attempts to restart the private cluster.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait between reconnect probes of a server elsewhere (one connection attempt each):
/// short, because pages answer 503 until a probe succeeds.
const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(5);

/// Looks at the database from outside the pool: the private cluster's postmaster, then one
/// connection of its own, so a busy pool never reads as an outage.
pub struct Watch {
    options: PgConnectOptions,
    cluster: Option<Cluster>,
    conn: Option<PgConnection>,
}

impl Watch {
    pub fn new(options: PgConnectOptions, cluster: Option<Cluster>) -> Self {
        Self {
            options,
            cluster,
            conn: None,
        }
    }

    /// True when the private cluster's server process is gone (always false with a URL).
    pub fn cluster_died(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| !c.is_running())
    }

    /// `None` when the database answers; otherwise what is wrong, in words.
    pub async fn check(&mut self) -> Option<String> {
        if let Some(cluster) = &self.cluster
            && !cluster.is_running()
        {
            self.conn = None;
            let pid = cluster
                .postmaster_pid()
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            return Some(format!("the private PostgreSQL server{pid} exited"));
        }
        let result = tokio::time::timeout(PROBE_TIMEOUT, self.probe()).await;
        let problem = match result {
            Ok(Ok(())) => return None,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "PostgreSQL did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            ),
        };
        self.conn = None;
        Some(format!("PostgreSQL is unreachable: {problem}"))
    }

    async fn probe(&mut self) -> Result<(), sqlx::Error> {
        if self.conn.is_none() {
            self.conn = Some(self.options.connect().await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.ping().await
    }

    /// Resolves when the database is gone for good as far as a command is concerned: at once
    /// when the private server exited, after three failed probes half a second apart when it
    /// is a server elsewhere. Returns the sentence to show.
    pub async fn lost(mut self) -> String {
        let mut misses = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match self.check().await {
                None => misses = 0,
                Some(problem) => {
                    misses += 1;
                    if self.cluster_died() || misses >= 3 {
                        return problem;
                    }
                }
            }
        }
    }
}

/// Keeps the database of a `serve` process alive (the private cluster) or watched (a URL).
pub struct Supervisor {
    pub pool: PgPool,
    pub watch: Watch,
    pub health: DbHealth,
    /// Names this process in the outage records, e.g. `host:4711`.
    pub process: String,
}

impl Supervisor {
    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) {
        let mut wait = CHECK_EVERY;
        let mut backoff = CHECK_EVERY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
            wait = CHECK_EVERY;
            let Some(problem) = self.watch.check().await else {
                backoff = CHECK_EVERY;
                if let Some(outage) = self.health.mark_up() {
                    tracing::warn!(
                        seconds = format!("{:.1}", outage.seconds()),
                        cause = %outage.detail,
                        "database reachable again; carrying on"
                    );
                    self.record(&outage).await;
                }
                continue;
            };
            if self.health.mark_down(problem.clone()) {
                tracing::error!(problem = %problem, "database unreachable");
            }
            let attempt = self.health.status().attempts + 1;
            match &self.watch.cluster {
                Some(cluster) if !cluster.is_running() => {
                    self.health
                        .attempt(format!("restarting it (attempt {attempt})"));
                    tracing::warn!(
                        attempt,
                        "restarting the private PostgreSQL cluster; it recovers from its write-ahead log"
                    );
                    let cluster = cluster.clone();
                    match tokio::task::spawn_blocking(move || cluster.restart_if_down()).await {
                        Ok(Ok(_)) => {
                            tracing::info!("private PostgreSQL cluster started again");
                            // Look again at once rather than after the usual pause.
                            wait = Duration::from_millis(50);
                            continue;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "could not restart the private PostgreSQL cluster")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the cluster restart task failed")
                        }
                    }
                }
                _ => {
                    self.health
                        .attempt(format!("reconnecting (attempt {attempt})"));
                    if attempt.is_power_of_two() {
                        tracing::warn!(attempt, problem = %problem, "database still unreachable; reconnecting");
                    }
                    wait = backoff.min(MAX_PROBE_BACKOFF);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            wait = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn record(&self, outage: &Outage) {
        let r = sqlx::query!(
            "INSERT INTO database_outages (process, started_at, ended_at, detail)
             VALUES ($1, $2, $3, $4)",
            self.process,
            outage.started_at,
            outage.ended_at,
            outage.detail
        )
        .execute(&self.pool)
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not record the database outage");
        }
    }
}

/// A recorded outage, for the dashboard.
#[derive(Debug, Clone)]
pub struct OutageRecord {
    pub process: String,
    pub started_at: time::OffsetDateTime,
    pub ended_at: time::OffsetDateTime,
    pub detail: String,
}

/// Outages that ended within the last `days` days, newest first (at most 10).
pub async fn recent_outages(pool: &PgPool, days: i32) -> crate::error::Result<Vec<OutageRecord>> {
    Ok(sqlx::query_as!(
        OutageRecord,
        "SELECT process, started_at, ended_at, detail FROM database_outages
         WHERE ended_at > now() - make_interval(days => $1)
         ORDER BY ended_at DESC LIMIT 10",
        days
    )
    .fetch_all(pool)
    .await?)
}
