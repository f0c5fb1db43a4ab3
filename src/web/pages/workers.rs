//! `/workers`: what the background sync workers are doing.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use crate::error::Result;
use crate::ingest::leases;
use crate::ingest::processes::{self, ProcessRow};
use crate::ingest::workers::{self, WorkerState, WorkerStatus};
use crate::web::http::extract::{Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The route of the background workers page.
pub fn area() -> Area {
    Area::new()
        .get("/workers", list)
        .get("/workers/status", status)
}

#[derive(Template, WebTemplate)]
#[template(path = "workers.html")]
struct WorkersPage {
    page: PageContext,
    workers: Vec<WorkerRow>,
    /// Messages whose search vector waits for the background stage.
    search_backlog: i64,
    processes: Vec<ProcessLine>,
    lease_secs: u32,
}

struct ProcessLine {
    p: ProcessRow,
    short_id: String,
    started: String,
    heartbeat: String,
}

struct WorkerRow {
    w: WorkerStatus,
    last_run: String,
    last_success: String,
    next_run: String,
    heartbeat: String,
    /// The process holding this account's lease (`host:pid`), when one does.
    held_by: String,
}

async fn list(
    State(state): State<AppState>,
    user: Require<perm::ViewWorkers>,
) -> Result<WorkersPage> {
    let lease_secs = state.settings.workers.lease_secs;
    let procs = processes::list(
        &state.pool,
        i32::try_from(lease_secs).unwrap_or(30),
        &user.grants,
    )
    .await?;
    let holders = leases::account_holders(&state.pool).await?;
    let held_by = |account: Option<i64>| -> String {
        let holder = holders
            .iter()
            .find(|(id, _)| Some(*id) == account)
            .and_then(|(_, h)| *h);
        procs
            .iter()
            .find(|p| Some(p.id) == holder)
            .map(ProcessRow::label)
            .unwrap_or_default()
    };
    let workers = workers::list(&state.pool, &user.grants)
        .await?
        .into_iter()
        .map(|w| WorkerRow {
            held_by: held_by(w.account_id),
            last_run: user.format_when(w.last_run_at),
            last_success: user.format_when(w.last_success_at),
            next_run: user.format_when(w.next_run_at),
            heartbeat: user.format_when(w.heartbeat_at),
            w,
        })
        .collect();
    let search_backlog =
        crate::archive::search::reindex::pending_within(&state.pool, &user.grants).await?;
    let processes = procs
        .into_iter()
        .map(|p| ProcessLine {
            short_id: p.id.simple().to_string().split_off(24),
            started: user.format_when(Some(p.started_at)),
            heartbeat: user.format_when(Some(p.heartbeat_at)),
            p,
        })
        .collect();
    Ok(WorkersPage {
        page: PageContext::for_user("Workers", "/workers", &user),
        workers,
        search_backlog,
        processes,
        lease_secs,
    })
}

/// `GET /workers/status`: every account's sync state as JSON, polled by the dashboard.
async fn status(
    State(state): State<AppState>,
    user: Require<perm::ViewWorkers>,
) -> Result<axum::Json<serde_json::Value>> {
    let rows: Vec<serde_json::Value> = workers::sync_views(&state.pool, &user.grants)
        .await?
        .into_iter()
        .map(|(id, v)| serde_json::json!({ "id": id, "state": v.state, "text": v.text, "next": v.next }))
        .collect();
    Ok(axum::Json(serde_json::json!({ "rows": rows })))
}
