//! `/api/v1/accounts…`: the archive accounts this token may read, with their sync status, and
//! one account's completeness ledger (for holders of `manage_accounts`, as on the web).

use std::collections::HashMap;

use axum::extract::{MatchedPath, Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::messages::rfc3339;
use super::{audit_read, json};
use crate::archive::ledger::{self, FolderCoverage};
use crate::audit::Target;
use crate::auth::grants::visible_account;
use crate::auth::visible_accounts;
use crate::error::{Error, Result};
use crate::ingest::workers::{self, WorkerStatus};
use crate::web::http::extract::{Require, perm};
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of archive accounts in the API.
pub fn area() -> Area {
    Area::new()
        .get("/api/v1/accounts", list)
        .get("/api/v1/accounts/{id}/ledger", ledger)
}

/// The sync worker of an account, as the workers page shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    /// idle, running, backoff or disabled.
    pub state: String,
    pub activity: Option<String>,
    pub last_run_at: Option<String>,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
    pub messages_archived: i64,
    pub next_run_at: Option<String>,
}

impl From<WorkerStatus> for SyncStatus {
    fn from(w: WorkerStatus) -> Self {
        SyncStatus {
            state: w.state.as_str().into(),
            activity: w.activity,
            last_run_at: w.last_run_at.map(rfc3339),
            last_success_at: w.last_success_at.map(rfc3339),
            last_error: w.last_error,
            consecutive_failures: w.consecutive_failures,
            messages_archived: w.messages_archived,
            next_run_at: w.next_run_at.map(rfc3339),
        }
    }
}

/// One folder of an account's ledger.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FolderLedger {
    pub folder: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: i64,
    /// Messages the server reported at the last sync.
    pub server_messages: Option<i64>,
    pub archived: i64,
    pub skipped: i64,
    pub failed: i64,
    pub deleted_from_server: i64,
    /// Share of the server's messages archived or accounted for, in percent.
    pub coverage_percent: Option<f64>,
    pub last_synced_at: Option<String>,
}

impl From<FolderCoverage> for FolderLedger {
    fn from(f: FolderCoverage) -> Self {
        FolderLedger {
            coverage_percent: f.percent(),
            folder: f.folder,
            uidvalidity: f.uidvalidity,
            last_uid: f.last_uid,
            server_messages: f.server_messages,
            archived: f.archived,
            skipped: f.skipped,
            failed: f.failed,
            deleted_from_server: f.deleted_from_server,
            last_synced_at: f.last_synced_at.map(rfc3339),
        }
    }
}

/// An archive account with its sync status and per-folder coverage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountInfo {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub sync: Option<SyncStatus>,
    pub folders: Vec<FolderLedger>,
}

/// The archive accounts this token may read.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    security(("token" = ["mail:read"])),
    responses((status = 200, body = Vec<AccountInfo>)))]
pub async fn list(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    route: MatchedPath,
) -> Result<Response> {
    let mut coverage = ledger::coverage_by_account(&state.pool).await?;
    let mut sync: HashMap<String, WorkerStatus> = workers::list(&state.pool, &user.grants)
        .await?
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
    let accounts: Vec<AccountInfo> = visible_accounts(&state.pool, &user.grants)
        .await?
        .into_iter()
        .map(|a| AccountInfo {
            sync: sync
                .remove(&workers::sync_worker_name(a.id))
                .map(SyncStatus::from),
            folders: coverage
                .remove(&a.id)
                .unwrap_or_default()
                .into_iter()
                .map(FolderLedger::from)
                .collect(),
            id: a.id,
            name: a.name,
            kind: a.kind,
            enabled: a.enabled,
        })
        .collect();
    audit_read(
        &state,
        &user,
        &route,
        Target::None,
        serde_json::json!({ "accounts": accounts.len() }),
    )
    .await?;
    Ok(json(&accounts))
}

/// A message the ledger records as skipped or failed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub folder: String,
    pub uid: Option<i64>,
    /// skipped or failed.
    pub kind: String,
    pub reason: String,
    pub size: Option<i64>,
    pub attempts: i32,
}

/// One account's ledger: coverage per folder and every skipped or failed message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ledger {
    pub account_id: i64,
    pub folders: Vec<FolderLedger>,
    pub entries: Vec<LedgerEntry>,
}

/// An account's completeness ledger (`manage_accounts`, like the account page).
#[utoipa::path(get, path = "/api/v1/accounts/{id}/ledger", tag = "accounts",
    params(("id" = i64, Path, description = "Archive account id")),
    security(("token" = ["admin"])),
    responses((status = 200, body = Ledger), (status = 404, body = super::problem::Problem)))]
pub async fn ledger(
    State(state): State<AppState>,
    user: Require<perm::ManageAccounts>,
    route: MatchedPath,
    Path(id): Path<i64>,
) -> Result<Response> {
    let account = visible_account(&state.pool, &user.grants, id)
        .await?
        .ok_or(Error::NotFound)?;
    let folders = ledger::coverage(&state.pool, account.id)
        .await?
        .into_iter()
        .map(FolderLedger::from)
        .collect();
    let entries: Vec<LedgerEntry> = ledger::entries(&state.pool, account.id)
        .await?
        .into_iter()
        .map(|e| LedgerEntry {
            folder: e.folder,
            uid: e.uid,
            kind: e.kind,
            reason: e.reason,
            size: e.size,
            attempts: e.attempts,
        })
        .collect();
    audit_read(
        &state,
        &user,
        &route,
        Target::Account(account.id),
        serde_json::json!({ "entries": entries.len() }),
    )
    .await?;
    Ok(json(&Ledger {
        account_id: account.id,
        folders,
        entries,
    }))
}
