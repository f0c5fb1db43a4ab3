//! What every handler and background task shares. Cheap to clone.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use governor::DefaultKeyedRateLimiter;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::audit;
use crate::auth::refusals::Refusals;
use crate::config::Settings;
use crate::db::DbHealth;
use crate::ingest::processes::Me;
use crate::scan::Scanner;
use crate::secrets::Keys;

/// What every handler can reach: pool, settings, keys, scanner, shutdown token.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// As loaded at start (defaults, file, environment, flags).
    pub settings: Arc<Settings>,
    /// The settings in force now, with the values changed on the settings page; read these
    /// for the keys `settings::FIELDS` lists.
    pub live: Arc<crate::settings::Live>,
    pub keys: Arc<Keys>,
    pub metrics: Metrics,
    /// clamd, when `clamav.enabled`; shares one concurrency limit across all its users.
    pub scanner: Option<Scanner>,
    pub shutdown: CancellationToken,
    /// Sign-in attempts per client address, keyed by `client::limit_key` (IPv4 address or
    /// IPv6 /64; security.login_rate_per_minute).
    pub login_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Current-password checks on the profile (password change, second-factor removal) per
    /// user, at the sign-in rate: a stolen session cannot guess the password quickly.
    pub password_limiter: Arc<DefaultKeyedRateLimiter<i64>>,
    /// "Forgot password" requests per typed username or e-mail address (lower case), at
    /// security.password_reset_per_hour: nobody can flood someone's mailbox with links.
    pub reset_limiter: Arc<DefaultKeyedRateLimiter<String>>,
    /// Sign-in attempts the limiter refused, written to the audit log once a minute.
    pub refusals: Arc<Refusals>,
    /// `server.trusted_proxies`, parsed.
    pub trusted_proxies: Arc<Vec<crate::config::IpNet>>,
    /// Inline images of recently opened messages (one parse per message).
    pub inline_images: Arc<crate::archive::reading::InlineCache>,
    /// Group commit for audit rows of reads and other stand-alone events.
    pub audit: audit::Writer,
    /// Set once a user exists; from then on `/setup` is gone for good (checked in SQL too).
    pub setup_done: Arc<AtomicBool>,
    /// Whether the database answers, as the supervisor last saw it.
    pub db_health: DbHealth,
    /// This process: its id in `processes` and its role.
    pub me: Arc<Me>,
    /// Where links in e-mail (invitations, password resets) point: `server.public_url`, or
    /// without it the address this process listens on. Never the request's Host header,
    /// which whoever asks for a reset link could choose.
    pub link_base: Arc<str>,
    /// The OIDC identity provider, when `oidc.enabled`.
    pub oidc: Option<Arc<crate::auth::oidc::Provider>>,
    /// Where people reach this instance: `server.public_url`, or the bound address when it is
    /// not set (provider redirect URLs start with it).
    pub url: Arc<str>,
}
