//! The dashboard: what state the archiver is in.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::layout::PageContext;
use super::state::AppState;
use crate::db;
use crate::error::Result;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
struct Dashboard {
    page: PageContext,
    database: &'static str,
    migrations: String,
    migrations_ok: bool,
    public_url: String,
}

async fn dashboard(State(state): State<AppState>) -> Result<Dashboard> {
    let status = db::migration_status(&state.pool).await?;
    Ok(Dashboard {
        page: PageContext::new("Dashboard", "/"),
        database: if state.settings.uses_embedded_database() {
            "private cluster under the data directory"
        } else {
            "external PostgreSQL server"
        },
        migrations: format!("{} of {} applied", status.applied, status.expected),
        migrations_ok: status.is_current(),
        public_url: state.settings.public_url(),
    })
}
