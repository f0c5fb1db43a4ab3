//! The dashboard: what state the archiver is in, and the archive accounts this user can read.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use crate::auth::{Permission, VisibleAccount, visible_accounts};
use crate::db;
use crate::error::Result;
use crate::web::http::extract::{Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new().get("/", dashboard)
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
struct Dashboard {
    page: PageContext,
    database: &'static str,
    migrations: String,
    migrations_ok: bool,
    public_url: String,
    accounts: Vec<VisibleAccount>,
    can_read_mail: bool,
}

async fn dashboard(
    State(state): State<AppState>,
    user: Require<perm::ViewDashboard>,
) -> Result<Dashboard> {
    let status = db::migration_status(&state.pool).await?;
    let can_read_mail = user.can(Permission::ViewMail);
    let accounts = if can_read_mail {
        visible_accounts(&state.pool, &user.grants).await?
    } else {
        Vec::new()
    };
    Ok(Dashboard {
        page: PageContext::for_user("Dashboard", "/", &user),
        database: if state.settings.uses_embedded_database() {
            "private cluster under the data directory"
        } else {
            "external PostgreSQL server"
        },
        migrations: format!("{} of {} applied", status.applied, status.expected),
        migrations_ok: status.is_current(),
        public_url: state.settings.public_url(),
        accounts,
        can_read_mail,
    })
}
