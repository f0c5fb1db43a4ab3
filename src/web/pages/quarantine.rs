//! `/quarantine`: review held messages, release (after a re-scan) or delete them, and — for
//! Administrators — download the sealed original. Every change and download is audited.
//! Bodies are never rendered: the detail page shows headers and the verdict only.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::ingest::release::ReleaseRequest;
use crate::scan::facts::header_section;
use crate::scan::quarantine::{self, Entry, Filter, IfStillInfected};
use crate::web::http::extract::{CsrfForm, CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// Header text shown on the detail page is capped; a hostile message can have megabytes.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The routes of the quarantine pages.
pub fn area() -> Area {
    Area::new()
        .get("/quarantine", list)
        .get("/quarantine/{id}", show)
        .post("/quarantine/{id}/release", release)
        .post("/quarantine/{id}/delete", delete)
        .get("/quarantine/{id}/download", download)
}

/// One row as the pages show it.
struct Row {
    entry: Entry,
    account: String,
    created: String,
    expires: String,
    sent: String,
    released: String,
}

impl Row {
    fn new(entry: Entry, accounts: &[VisibleAccount], user: &CurrentUser) -> Self {
        let account = entry
            .account_id
            .and_then(|id| accounts.iter().find(|a| a.id == id))
            .map(|a| a.name.clone())
            .unwrap_or_else(|| "—".into());
        let time =
            |t: Option<time::OffsetDateTime>| t.map(|t| user.format_time(t)).unwrap_or_default();
        Self {
            account,
            created: user.format_time(entry.created_at),
            expires: time(entry.expires_at),
            sent: time(entry.sent_at),
            released: time(entry.released_at),
            entry,
        }
    }
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    virus: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    released: String,
    #[serde(default)]
    done: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "quarantine/list.html")]
struct ListPage {
    page: PageContext,
    rows: Vec<Row>,
    accounts: Vec<VisibleAccount>,
    account: Option<i64>,
    virus: String,
    q: String,
    include_released: bool,
    notice: &'static str,
}

impl ListPage {
    fn is_selected(&self, id: &i64) -> bool {
        self.account == Some(*id)
    }
}

async fn list(
    State(state): State<AppState>,
    user: Require<perm::ViewQuarantine>,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let accounts = visible_accounts(&state.pool, &user.grants).await?;
    let account = query.account.trim().parse::<i64>().ok();
    let filter = Filter {
        account_id: account,
        virus: Some(query.virus.clone()),
        text: Some(query.q.clone()),
        include_released: query.released == "1",
        accounts: user.grants.as_bind(),
        limit: i64::from(user.page_size.max(10)),
        offset: 0,
    };
    let entries = quarantine::list(&state.pool, &filter).await?;
    Ok(ListPage {
        rows: entries
            .into_iter()
            .map(|e| Row::new(e, &accounts, &user))
            .collect(),
        page: PageContext::for_user("Quarantine", "/quarantine", &user),
        accounts,
        account,
        virus: query.virus,
        q: query.q,
        include_released: filter.include_released,
        notice: if query.done == "deleted" {
            "The message was deleted for good."
        } else {
            ""
        },
    })
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    #[serde(default)]
    done: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "quarantine/show.html")]
struct ShowPage {
    page: PageContext,
    row: Row,
    headers: String,
    can_manage: bool,
    can_download: bool,
    notice: String,
    /// Why the last release or delete did not happen, shown beside its form.
    problem: Problem,
    /// The release reason as typed, kept when the release is refused.
    reason: String,
}

/// A refused action on the detail page: which form it belongs to and why.
#[derive(Default)]
struct Problem {
    release: String,
    delete: String,
}

async fn show(
    State(state): State<AppState>,
    user: Require<perm::ViewQuarantine>,
    Path(id): Path<Uuid>,
    Query(query): Query<ShowQuery>,
) -> Result<ShowPage> {
    let notice = match query.done.as_str() {
        "released" => "Released after a fresh scan and archived.",
        _ => "",
    };
    show_page(&state, &user, id, notice, Problem::default(), String::new()).await
}

async fn show_page(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    notice: &str,
    problem: Problem,
    reason: String,
) -> Result<ShowPage> {
    // A foreign entry is "not found", exactly like a missing one.
    let (entry, raw) =
        crate::scan::manage::show(&state.pool, &state.keys.sealing, &user.grants, id).await?;
    let accounts = visible_accounts(&state.pool, &user.grants).await?;
    Ok(ShowPage {
        headers: header_section(&raw, MAX_HEADER_BYTES),
        can_manage: user.can(crate::auth::Permission::ManageQuarantine),
        can_download: crate::scan::manage::may_download(&state.pool, &user.actor).await?,
        notice: notice.into(),
        page: PageContext::for_user("Quarantined message", "/quarantine", user),
        row: Row::new(entry, &accounts, user),
        problem,
        reason,
    })
}

/// A refusal the person can act on is shown on the page, with what they typed; anything
/// else is an error page.
async fn refused(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    error: Error,
    problem: impl FnOnce(String) -> Problem,
    reason: String,
) -> Result<Response> {
    let status = match &error {
        Error::Conflict(_) | Error::ScannerUnavailable(_) => StatusCode::CONFLICT,
        Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => return Err(error),
    };
    let message = match error {
        Error::Invalid { reason, .. } => reason,
        Error::ScannerUnavailable(why) => format!(
            "The virus scanner did not answer ({why}), so the message was not released. Try again once it is back."
        ),
        other => other.to_string(),
    };
    let page = show_page(state, user, id, "", problem(sentence(&message)), reason).await?;
    Ok((status, page).into_response())
}

/// Messages from the domain start lower-case (they also go to logs); on a page they are a
/// sentence.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Deserialize)]
struct ReleaseForm {
    #[serde(default)]
    reason: String,
    /// Present when the administrator confirms a still-detected message is a false positive.
    #[serde(default)]
    anyway: Option<String>,
}

async fn release(
    State(state): State<AppState>,
    user: Require<perm::ManageQuarantine>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ReleaseForm>,
) -> Result<Response> {
    let if_infected = if form.anyway.is_some() {
        IfStillInfected::ReleaseAnyway
    } else {
        IfStillInfected::Refuse
    };
    let done = crate::ingest::release::release(
        &state.pool,
        &state.keys.sealing,
        state.scanner.as_ref(),
        state.settings.storage.zstd_level,
        &user.actor,
        &user.grants,
        ReleaseRequest {
            id,
            reason: &form.reason,
            if_infected,
        },
    )
    .await;
    match done {
        Ok(_) => Ok(Redirect::to(&format!("/quarantine/{id}?done=released")).into_response()),
        Err(e) => {
            let problem = |release| Problem {
                release,
                ..Problem::default()
            };
            refused(&state, &user, id, e, problem, form.reason).await
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    /// The "delete for good" box: deleting live malware cannot be undone.
    #[serde(default)]
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    user: Require<perm::ManageQuarantine>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response> {
    let problem = |delete| Problem {
        delete,
        ..Problem::default()
    };
    if form.confirm != "yes" {
        let e = Error::invalid(
            "confirm",
            "Tick the box to confirm: a deleted message cannot be brought back.",
        );
        return refused(&state, &user, id, e, problem, String::new()).await;
    }
    match crate::scan::manage::delete(&state.pool, &user.actor, &user.grants, id).await {
        Ok(_) => Ok(Redirect::to("/quarantine?done=deleted").into_response()),
        Err(e) => refused(&state, &user, id, e, problem, String::new()).await,
    }
}

/// The original, infected message as a download. Administrators only: it is live malware.
async fn download(
    State(state): State<AppState>,
    user: Require<perm::ManageQuarantine>,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let raw = crate::scan::manage::download(
        &state.pool,
        &state.keys.sealing,
        &state.audit,
        &user.actor,
        &user.grants,
        id,
    )
    .await?;
    // application/octet-stream, not message/rfc822: a browser must save it, never open it.
    Ok(crate::web::http::download::attachment(
        &format!("quarantine-{id}.eml"),
        "application/octet-stream",
        raw.to_vec(),
    ))
}
