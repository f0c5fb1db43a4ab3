//! Daygle Mail Archiver as a library: `App` builds everything `daygle serve` runs, and the
//! integration tests start the very same `App`.

pub mod archive;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod config;
pub mod db;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_client;
pub mod ingest;
pub mod logbook;
pub mod notify;
pub mod render;
pub mod reports;
pub mod reseal;
pub mod retention;
pub mod scan;
pub mod secrets;
pub mod settings;
pub mod telemetry;
pub mod verify;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::db::{Database, Tenure};
use crate::error::{Error, Result};
use crate::secrets::{KeySource, Keys};
use crate::web::AppState;
use crate::web::http::metrics::Metrics;

/// A built, bound, migrated application, ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
    database: Database,
    tasks: TaskTracker,
    /// Holds the "seals under this key" lock that `rotate-key` checks; closed at shutdown.
    sealing_lock: sqlx::PgConnection,
}

impl App {
    /// Loads keys, opens (or starts) the database, applies migrations and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self> {
        let problems = settings.validate();
        if !problems.is_empty() {
            return Err(config::ConfigErrors(problems).into());
        }
        let data_dir = settings.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            Error::context(format!("create data directory {}", data_dir.display()), e)
        })?;
        let security = settings.security.clone();
        let keys = tokio::task::spawn_blocking(move || Keys::load(&security, &data_dir))
            .await
            .map_err(|e| Error::context("run the key loading task", e))??;
        for (name, source) in [
            ("session key", &keys.session_source),
            ("sealing key", &keys.sealing_source),
            ("audit key", &keys.audit_source),
        ] {
            if let KeySource::Generated(path) = source {
                tracing::warn!(key = name, path = %path.display(), "generated a new secret key on first run; back this file up with the database");
            }
        }
        let role = ingest::processes::Role::parse(&settings.server.role)?;
        let database = Database::open(&settings, Tenure::Server).await?;
        db::migrate(&database.pool).await?;
        let me = ingest::processes::Me::new(role);
        me.register(&database.pool).await?;
        tracing::info!(process = %me.label(), id = %me.id, role = %role, "registered this process");
        // API exports a stopped or crashed process left "running" will never finish (#18).
        let cut = archive::export_jobs::fail_orphaned(
            &database.pool,
            &settings.data_dir(),
            settings.workers.lease_secs,
        )
        .await?;
        if cut > 0 {
            tracing::warn!(
                exports = cut,
                "marked exports cut short by a stop or crash as failed"
            );
        }
        let sealing_lock = db::hold_sealing_key(&database.pool, keys.sealing.current_id()).await?;
        reseal::upgrade_stored(&database.pool, &keys.sealing).await?;
        let listener = TcpListener::bind(&settings.server.bind)
            .await
            .map_err(|e| {
                Error::context(
                    format!("listen on {} (server.bind)", settings.server.bind),
                    e,
                )
            })?;
        // The recorder must exist before the scanner registers its counters.
        let metrics = Metrics::install();
        let scanner = scan::Scanner::from_settings(&settings.clamav);
        if let Some(scanner) = &scanner {
            scan::announce(scanner).await;
        }
        tower_sessions_sqlx_store::PostgresStore::new(database.pool.clone())
            .migrate()
            .await
            .map_err(|e| Error::context("create the session table", e))?;
        let per_minute = std::num::NonZeroU32::new(settings.security.login_rate_per_minute)
            .unwrap_or(std::num::NonZeroU32::MIN);
        let live = Arc::new(settings::Live::new(settings.clone()));
        settings::store::reload(&database.pool, &keys.sealing, &live).await?;
        let state = AppState {
            live,
            login_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
            password_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
            link_base: reachable_url(&settings, &listener).into(),
            reset_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_hour(
                std::num::NonZeroU32::new(settings.security.password_reset_per_hour)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            ))),
            refusals: Arc::new(auth::refusals::Refusals::default()),
            trusted_proxies: Arc::new(
                config::parse_networks(&settings.server.trusted_proxies)
                    .map_err(|e| Error::invalid("server.trusted_proxies", e))?,
            ),
            audit: audit::Writer::start(database.pool.clone()),
            inline_images: Arc::new(archive::reading::InlineCache::default()),
            setup_done: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            db_health: db::DbHealth::default(),
            me: Arc::new(me),
            oidc: auth::oidc::Provider::from_settings(
                &settings,
                &reachable_url(&settings, &listener),
            )?
            .map(Arc::new),
            url: reachable_url(&settings, &listener).into(),
            pool: database.pool.clone(),
            settings: Arc::new(settings),
            keys: Arc::new(keys),
            metrics,
            scanner,
            shutdown: CancellationToken::new(),
        };
        Ok(Self {
            listener,
            state,
            database,
            tasks: TaskTracker::new(),
            sealing_lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The URL printed at startup: the public URL when set, else the bound address.
    pub fn url(&self) -> String {
        reachable_url(&self.state.settings, &self.listener)
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token fires: in-flight requests finish, background tasks stop,
    /// then the database closes (and a private cluster this process owns stops).
    pub async fn run_until_stopped(self) -> Result<()> {
        let App {
            listener,
            state,
            database,
            tasks,
            sealing_lock,
        } = self;
        let shutdown = state.shutdown.clone();
        let lease_secs = state.settings.workers.lease_secs;
        tasks.spawn(metrics_upkeep(state.metrics.clone(), shutdown.clone()));
        tasks.spawn(
            db::Supervisor {
                pool: state.pool.clone(),
                watch: database.watch(),
                health: state.db_health.clone(),
                process: state.me.label(),
            }
            .run_until_stopped(shutdown.clone()),
        );
        tasks.spawn(ingest::leader::beat_until_stopped(
            state.pool.clone(),
            (*state.me).clone(),
            lease_secs,
            state.db_health.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(audit::seal::run_until_stopped(
            state.pool.clone(),
            state.keys.audit.clone(),
            AUDIT_SEAL_EVERY,
            shutdown.clone(),
        ));
        tasks.spawn(session_upkeep(state.clone()));
        tasks.spawn(settings_upkeep(state.clone()));
        tasks.spawn(db::keep_sealing_key(
            state.pool.clone(),
            state.keys.sealing.current_id().to_string(),
            sealing_lock,
            shutdown.clone(),
        ));
        if state.me.role.works() {
            let leader_state = state.clone();
            let leader_tasks = tasks.clone();
            tasks.spawn(ingest::leader::lead_until_stopped(
                state.pool.clone(),
                (*state.me).clone(),
                lease_secs,
                state.db_health.clone(),
                shutdown.clone(),
                move |token| spawn_leader_jobs(&leader_state, &leader_tasks, token),
            ));
            if state.settings.sync.enabled {
                tasks.spawn(ingest::scheduler::run_until_stopped(
                    state.pool.clone(),
                    state.live.clone(),
                    state.keys.clone(),
                    ingest::scheduler::Assignment::Leased {
                        me: state.me.id,
                        lease_secs,
                        health: state.db_health.clone(),
                    },
                    shutdown.clone(),
                ));
            }
        }
        let (state_me, pool) = (state.me.clone(), state.pool.clone());
        let router = web::router(state);
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(|e| Error::context("serve HTTP", e));
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        if let Err(e) = state_me.stopped(&pool).await {
            tracing::warn!(error = %e, "could not give back this process's leases; they expire on their own");
        }
        database.close().await?;
        tracing::info!("stopped");
        served
    }
}

/// The public URL when set, else the bound address (with the port a `:0` bind got).
fn reachable_url(settings: &Settings, listener: &TcpListener) -> String {
    match listener.local_addr() {
        Ok(addr) if settings.server.public_url.trim().is_empty() => format!("http://{addr}"),
        _ => settings.public_url(),
    }
}

/// Starts the jobs that run once per installation, in the process holding the leader lease,
/// until `token` is cancelled (shutdown, or the lease was lost).
fn spawn_leader_jobs(state: &AppState, tasks: &TaskTracker, token: CancellationToken) {
    tasks.spawn(scan::tasks::expire_quarantine(
        state.pool.clone(),
        token.clone(),
    ));
    if let Some(scanner) = &state.scanner
        && state.settings.clamav.archive_unscanned
    {
        tasks.spawn(scan::tasks::scan_pending(
            state.pool.clone(),
            scan::ScanStage::new(scanner.clone(), &state.settings.clamav),
            state.keys.clone(),
            token.clone(),
        ));
    }
    tasks.spawn(
        notify::evaluator::Evaluator {
            pool: state.pool.clone(),
            scanner: state.scanner.clone(),
            data_dir: state.settings.data_dir(),
            smtp: notify::evaluator::Smtp::Live(state.live.clone()),
            public_url: state.settings.public_url(),
        }
        .run_until_stopped(token.clone()),
    );
    tasks.spawn(retention_schedule(state.clone(), token.clone()));
    tasks.spawn(archive::search::reindex::background(
        state.pool.clone(),
        token.clone(),
    ));
    if let Ok(Some(every)) = state.settings.verify.interval() {
        tasks.spawn(verify::schedule::run_until_stopped(
            state.pool.clone(),
            state.keys.clone(),
            every,
            token.clone(),
        ));
    }
    tasks.spawn(forget_old_processes(state.pool.clone(), token));
}

/// Deletes the records of processes gone for a week, hourly.
async fn forget_old_processes(pool: sqlx::PgPool, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = token.cancelled() => break,
        }
        if let Err(e) = ingest::processes::forget_old(&pool).await {
            tracing::warn!(error = %e, "could not forget old processes");
        }
    }
}

/// How often the server seals the audit log's head (see `audit::seal`).
const AUDIT_SEAL_EVERY: Duration = Duration::from_secs(2);

async fn metrics_upkeep(metrics: Metrics, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.upkeep(),
            _ = shutdown.cancelled() => break,
        }
    }
}

/// Re-reads the settings stored from the settings page every half minute, so several
/// processes on one database agree within that time (the process that saved applies at once).
async fn settings_upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = settings::store::reload(&state.pool, &state.keys.sealing, &state.live).await {
                    tracing::warn!(error = %error::chain(&e), "could not re-read the stored settings");
                }
            }
            _ = state.shutdown.cancelled() => break,
        }
    }
}

/// Runs the daily retention purge at `retention.schedule`, restarting it whenever the
/// schedule changes on the settings page (checked every minute); none while it is off, and
/// none after `token` (shutdown, or this process stopped leading).
async fn retention_schedule(state: AppState, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut running: Option<(String, CancellationToken)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = token.cancelled() => break,
        }
        let now = state.live.get();
        let schedule = now.retention.schedule.trim().to_string();
        if running.as_ref().is_some_and(|(s, _)| *s == schedule) {
            continue;
        }
        if let Some((_, stop)) = running.take() {
            stop.cancel();
        }
        if let Ok(Some(daily)) = retention::schedule::Daily::parse(&schedule) {
            let stop = token.child_token();
            tokio::spawn(retention::schedule::run_until_stopped(
                state.pool.clone(),
                daily,
                now.retention.batch_size,
                stop.clone(),
            ));
            running = Some((schedule, stop));
        } else {
            running = Some((schedule, token.child_token()));
        }
    }
}

/// Deletes expired sessions, forgets idle rate-limit keys and writes the minute's refused
/// sign-in attempts to the audit log, until shutdown (and the last minute's at shutdown).
async fn session_upkeep(state: AppState) {
    let store = tower_sessions_sqlx_store::PostgresStore::new(state.pool.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                use tower_sessions::ExpiredDeletion;
                if let Err(e) = store.delete_expired().await {
                    tracing::warn!(error = %e, "could not delete expired sessions");
                }
                state.login_limiter.retain_recent();
                state.password_limiter.retain_recent();
                state.reset_limiter.retain_recent();
                flush_refusals(&state).await;
            }
            _ = state.shutdown.cancelled() => break,
        }
    }
    flush_refusals(&state).await;
}

async fn flush_refusals(state: &AppState) {
    if let Err(e) = state.refusals.flush(&state.pool).await {
        tracing::warn!(error = %crate::error::chain(&e), "could not record refused sign-in attempts");
    }
}
