//! What every handler and background task shares. Cheap to clone.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::secrets::Keys;
use crate::web::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub keys: Arc<Keys>,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
}
