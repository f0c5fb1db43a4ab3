//! `/workers`: what the background sync workers are doing.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::extract::{Require, perm};
use super::layout::PageContext;
use super::routes::Area;
use super::state::AppState;
use crate::error::Result;
use crate::ingest::workers::{self, WorkerStatus};

pub fn area() -> Area {
    Area::new().get("/workers", list)
}

#[derive(Template, WebTemplate)]
#[template(path = "workers.html")]
struct WorkersPage {
    page: PageContext,
    workers: Vec<WorkerRow>,
}

struct WorkerRow {
    w: WorkerStatus,
    last_run: String,
    last_success: String,
    next_run: String,
    heartbeat: String,
}

pub fn when(t: Option<time::OffsetDateTime>) -> String {
    t.map(|t| {
        format!(
            "{} {:02}:{:02}:{:02} UTC",
            t.date(),
            t.hour(),
            t.minute(),
            t.second()
        )
    })
    .unwrap_or_else(|| "—".into())
}

async fn list(
    State(state): State<AppState>,
    user: Require<perm::ViewWorkers>,
) -> Result<WorkersPage> {
    let workers = workers::list(&state.pool)
        .await?
        .into_iter()
        .map(|w| WorkerRow {
            last_run: when(w.last_run_at),
            last_success: when(w.last_success_at),
            next_run: when(w.next_run_at),
            heartbeat: when(w.heartbeat_at),
            w,
        })
        .collect();
    Ok(WorkersPage {
        page: PageContext::for_user("Workers", "/workers", &user),
        workers,
    })
}
