//! `/api/v1/quarantine…` and `/api/v1/audit`: the quarantine list and its actions, and the
//! audit log — the same domain calls, permissions and audit rows as the web pages.

use axum::Json;
use axum::extract::{MatchedPath, Path, State};
use axum::response::Response;
use axum_extra::extract::Query;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::messages::rfc3339;
use super::{audit_read, json};
use crate::audit::Target;
use crate::audit::query;
use crate::error::Result;
use crate::ingest::release::ReleaseRequest;
use crate::scan::quarantine::{self, Entry, Filter, IfStillInfected};
use crate::web::http::extract::{Require, perm};
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of the quarantine and the audit log in the API.
pub fn area() -> Area {
    Area::new()
        .get("/api/v1/quarantine", quarantine_list)
        .post("/api/v1/quarantine/{id}/release", quarantine_release)
        .post("/api/v1/quarantine/{id}/delete", quarantine_delete)
        .get("/api/v1/audit", audit_log)
}

/// Quarantine filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineParams {
    pub account: Option<i64>,
    /// Part of the virus name.
    #[serde(default)]
    pub virus: String,
    /// Part of the subject or sender.
    #[serde(default)]
    pub q: String,
    /// Include released entries.
    #[serde(default)]
    pub released: bool,
    /// 1–500, default 100.
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: i64,
}

/// A quarantined message (never its bytes).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuarantineItem {
    pub id: Uuid,
    pub account_id: Option<i64>,
    pub folder: String,
    pub uid: Option<i64>,
    pub sha256: String,
    pub size: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub virus: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub released_at: Option<String>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

impl From<Entry> for QuarantineItem {
    fn from(e: Entry) -> Self {
        QuarantineItem {
            id: e.id,
            account_id: e.account_id,
            folder: e.folder,
            uid: e.uid,
            sha256: e.sha256,
            size: e.size,
            message_id: e.message_id,
            subject: e.subject,
            from: e.from_addr,
            virus: e.virus_name,
            created_at: rfc3339(e.created_at),
            expires_at: e.expires_at.map(rfc3339),
            released_at: e.released_at.map(rfc3339),
            released_by: e.released_by,
            release_reason: e.release_reason,
        }
    }
}

/// Quarantined messages of the archives this token may read.
#[utoipa::path(get, path = "/api/v1/quarantine", tag = "quarantine", params(QuarantineParams),
    security(("token" = ["admin"])),
    responses((status = 200, body = Vec<QuarantineItem>)))]
pub async fn quarantine_list(
    State(state): State<AppState>,
    user: Require<perm::ViewQuarantine>,
    route: MatchedPath,
    Query(params): Query<QuarantineParams>,
) -> Result<Response> {
    let filter = Filter {
        account_id: params.account,
        virus: Some(params.virus.clone()),
        text: Some(params.q.clone()),
        include_released: params.released,
        accounts: user.grants.as_bind(),
        limit: params.limit.unwrap_or(100).clamp(1, 500),
        offset: params.offset.max(0),
    };
    let items: Vec<QuarantineItem> = quarantine::list(&state.pool, &filter)
        .await?
        .into_iter()
        .map(QuarantineItem::from)
        .collect();
    audit_read(
        &state,
        &user,
        &route,
        Target::None,
        serde_json::json!({ "entries": items.len() }),
    )
    .await?;
    Ok(json(&items))
}

/// Why a quarantined message may be released.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReleaseBody {
    /// Required: why the message is safe.
    #[serde(default)]
    pub reason: String,
    /// Release even if the fresh scan still finds malware (a confirmed false positive).
    #[serde(default)]
    pub anyway: bool,
}

/// The outcome of a release.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Released {
    pub id: Uuid,
    /// The fresh scan's verdict.
    pub verdict: String,
}

/// Re-scan a quarantined message and archive it (as on the quarantine page).
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/release", tag = "quarantine",
    params(("id" = Uuid, Path, description = "Quarantine entry id")),
    request_body = ReleaseBody, security(("token" = ["admin"])),
    responses((status = 200, body = Released), (status = 404, body = super::problem::Problem),
        (status = 422, body = super::problem::Problem)))]
pub async fn quarantine_release(
    State(state): State<AppState>,
    user: Require<perm::ManageQuarantine>,
    Path(id): Path<Uuid>,
    body: Option<Json<ReleaseBody>>,
) -> Result<Response> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let verdict = crate::ingest::release::release(
        &state.pool,
        &state.keys.sealing,
        state.scanner.as_ref(),
        state.settings.storage.zstd_level,
        &user.actor,
        &user.grants,
        ReleaseRequest {
            id,
            reason: &body.reason,
            if_infected: if body.anyway {
                IfStillInfected::ReleaseAnyway
            } else {
                IfStillInfected::Refuse
            },
        },
    )
    .await?;
    Ok(json(&Released {
        id,
        verdict: verdict.label().to_string(),
    }))
}

/// Delete a quarantined message for good.
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/delete", tag = "quarantine",
    params(("id" = Uuid, Path, description = "Quarantine entry id")),
    security(("token" = ["admin"])),
    responses((status = 200, body = Released), (status = 404, body = super::problem::Problem)))]
pub async fn quarantine_delete(
    State(state): State<AppState>,
    user: Require<perm::ManageQuarantine>,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    crate::scan::manage::delete(&state.pool, &user.actor, &user.grants, id).await?;
    Ok(json(&Released {
        id,
        verdict: "deleted".into(),
    }))
}

/// Audit log filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Exact username.
    #[serde(default)]
    pub user: String,
    /// Action prefix: `login` finds every `login.*`.
    #[serde(default)]
    pub action: String,
    /// First day, YYYY-MM-DD.
    #[serde(default)]
    pub from: String,
    /// Last day, YYYY-MM-DD, inclusive.
    #[serde(default)]
    pub to: String,
    /// Only rows older than this id (the `id` of the last row of the previous page).
    pub before: Option<i64>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
}

/// One audit row.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub user_id: Option<i64>,
    pub username: String,
    pub ip: String,
    pub user_agent: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub hash: String,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    security(("token" = ["admin"])),
    responses((status = 200, body = Vec<AuditRow>), (status = 422, body = super::problem::Problem)))]
pub async fn audit_log(
    State(state): State<AppState>,
    user: Require<perm::ViewAudit>,
    route: MatchedPath,
    Query(params): Query<AuditParams>,
) -> Result<Response> {
    let web = crate::web::pages::audit::Params {
        user: params.user.clone(),
        action: params.action.clone(),
        from: params.from.clone(),
        to: params.to.clone(),
        before: params.before,
    };
    let filter = web.filter()?;
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<AuditRow> = query::list(
        &state.pool,
        &query::Scope::of(&user.grants, user.id),
        &filter,
        limit,
    )
    .await?
    .into_iter()
    .map(|r| AuditRow {
        id: r.id,
        at: rfc3339(r.at),
        user_id: r.user_id,
        username: r.username,
        ip: r.ip,
        user_agent: r.user_agent,
        action: r.action,
        target: r.target,
        details: r.details,
        hash: r.hash,
    })
    .collect();
    audit_read(
        &state,
        &user,
        &route,
        Target::None,
        serde_json::json!({ "rows": rows.len(), "action": params.action, "user": params.user }),
    )
    .await?;
    Ok(json(&rows))
}
