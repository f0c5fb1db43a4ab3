//! `/api/v1/exports…`: an export of a search (or of chosen messages) runs in the background;
//! the client polls its status and downloads the file when it is ready. The export, its audit
//! row and its rules (grants, held-back mail) are the web export's.

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::messages::rfc3339;
use super::{audit_read, json};
use crate::archive::export::Format;
use crate::archive::export_jobs::{self, Job};
use crate::archive::listing::{Listing, Sort};
use crate::audit::Target;
use crate::error::{Error, Result};
use crate::web::http::download;
use crate::web::http::extract::{Require, perm};
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;
use crate::web::pages::message_list::{EXPORT_MAX, ListParams, begin_export};

/// The routes of exports in the API.
pub fn area() -> Area {
    Area::new()
        .post("/api/v1/exports", create)
        .get("/api/v1/exports/{id}", status)
        .get("/api/v1/exports/{id}/download", download_file)
}

/// What to export: a search (the list's parameters) or the messages `ids`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ExportRequest {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub folder: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub attachments: String,
    #[serde(default)]
    pub verdict: String,
    /// Export these messages instead of a search.
    pub ids: Option<Vec<i64>>,
    /// zip (default) or mbox.
    #[serde(default)]
    pub format: String,
}

/// A background export.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportStatus {
    pub id: Uuid,
    /// running, ready or failed.
    pub status: String,
    pub format: String,
    pub messages: i64,
    pub bytes: i64,
    pub error: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// Where to download the file once `status` is ready.
    pub download: String,
}

impl From<Job> for ExportStatus {
    fn from(j: Job) -> Self {
        ExportStatus {
            download: format!("/api/v1/exports/{}/download", j.id),
            id: j.id,
            status: j.status,
            format: j.format,
            messages: j.messages,
            bytes: j.bytes,
            error: j.error,
            created_at: rfc3339(j.created_at),
            finished_at: j.finished_at.map(rfc3339),
        }
    }
}

/// Start an export; poll `/api/v1/exports/{id}` until it is ready.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports", request_body = ExportRequest,
    security(("token" = ["mail:export"])),
    responses((status = 202, body = ExportStatus), (status = 422, body = super::problem::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: Require<perm::ExportMail>,
    Json(request): Json<ExportRequest>,
) -> Result<Response> {
    let data_dir = state.settings.data_dir();
    export_jobs::expire(&state.pool, &data_dir, state.settings.api.export_keep_hours).await?;
    let format = match request.format.trim() {
        "" => "zip",
        f if Format::parse(f).is_some() => f,
        _ => return Err(Error::invalid("format", "zip or mbox")),
    };
    let (ids, details) = match &request.ids {
        Some(ids) if ids.is_empty() => {
            return Err(Error::invalid("ids", "name at least one message"));
        }
        Some(ids) => (ids.clone(), serde_json::json!({ "selected": ids.len() })),
        None => {
            let params = ListParams {
                q: request.q.clone(),
                account: request.account.clone(),
                folder: request.folder.clone(),
                from: request.from.clone(),
                to: request.to.clone(),
                attachments: request.attachments.clone(),
                verdict: request.verdict.clone(),
                ..ListParams::default()
            };
            let parsed = params.parse();
            if let Some(problem) = parsed.problem {
                return Err(Error::invalid("q", problem));
            }
            let listing = Listing {
                grants: &user.grants,
                query: &parsed.query,
                filters: &parsed.filters,
                sort: Sort::Newest,
            };
            let ids = listing.all_ids(&state.pool, EXPORT_MAX).await?;
            let details =
                serde_json::json!({ "query": params.q, "filters": params.to_query_string() });
            (ids, details)
        }
    };
    let (ids, format, info, held) = begin_export(&state, &user, ids, format, details).await?;
    let id = export_jobs::start(
        &state.pool,
        user.id,
        user.actor.api_token,
        format,
        info.audit_seq,
        state.me.id,
    )
    .await?;
    tokio::spawn(export_jobs::run(
        state.pool.clone(),
        data_dir,
        id,
        user.grants.clone(),
        held,
        ids,
        format,
        info,
    ));
    let job = export_jobs::get(&state.pool, user.id, id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(ExportStatus::from(job))).into_response())
}

/// An export's progress (only the user's own exports).
#[utoipa::path(get, path = "/api/v1/exports/{id}", tag = "exports",
    params(("id" = Uuid, Path, description = "Export id")),
    security(("token" = ["mail:export"])),
    responses((status = 200, body = ExportStatus), (status = 404, body = super::problem::Problem)))]
pub async fn status(
    State(state): State<AppState>,
    user: Require<perm::ExportMail>,
    route: MatchedPath,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let job = export_jobs::get(&state.pool, user.id, id)
        .await?
        .ok_or(Error::NotFound)?;
    audit_read(
        &state,
        &user,
        &route,
        Target::None,
        serde_json::json!({ "export": id, "status": job.status }),
    )
    .await?;
    Ok(json(&ExportStatus::from(job)))
}

/// The finished export's file.
#[utoipa::path(get, path = "/api/v1/exports/{id}/download", tag = "exports",
    params(("id" = Uuid, Path, description = "Export id")),
    security(("token" = ["mail:export"])),
    responses((status = 200, content_type = "application/zip", body = Vec<u8>),
        (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem)))]
pub async fn download_file(
    State(state): State<AppState>,
    user: Require<perm::ExportMail>,
    route: MatchedPath,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let job = export_jobs::get(&state.pool, user.id, id)
        .await?
        .ok_or(Error::NotFound)?;
    if job.status != "ready" {
        return Err(Error::Conflict(format!(
            "The export is {}; download it once it is ready.",
            job.status
        )));
    }
    let format = Format::parse(&job.format).ok_or(Error::NotFound)?;
    let path = export_jobs::file(&state.settings.data_dir(), id, format);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::NotFound)?;
    audit_read(
        &state,
        &user,
        &route,
        Target::None,
        serde_json::json!({ "export": id, "bytes": job.bytes }),
    )
    .await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(download::attachment(
        &job.filename(),
        format.content_type(),
        body,
    ))
}
