//! What every handler and background task shares. Cheap to clone.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::scan::Scanner;
use crate::secrets::Keys;
use crate::web::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub keys: Arc<Keys>,
    pub metrics: Metrics,
    /// clamd, when `clamav.enabled`; shares one concurrency limit across all its users.
    pub scanner: Option<Scanner>,
    pub shutdown: CancellationToken,
}
