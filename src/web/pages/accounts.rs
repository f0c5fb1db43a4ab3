//! `/accounts`: administrators add IMAP, Google (Gmail API) and Microsoft 365 (Graph) accounts,
//! see each account's completeness ledger, test the connection, pause/resume syncing and delete
//! accounts. Passwords are write-only; connecting Google and Microsoft accounts is in
//! `account_connect`.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::account_connect::{self, OAuthPanel};
use crate::archive::ledger::{self, FolderCoverage, LedgerRow};
use crate::config::split_list;
use crate::error::{Error, Result};
use crate::ingest::accounts::{self, Account, ImapOptions, ImapSettings, OAuthSettings, TlsMode};
use crate::ingest::imap::{self, Timeouts};
use crate::ingest::manage::{self, AccountDraft, PasswordOutcome};
use crate::ingest::workers::{self, WorkerState, WorkerStatus};
use crate::web::http::extract::{CsrfForm, CurrentUser, EnabledForm, NoFields, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of the archive accounts pages.
pub fn area() -> Area {
    let area = Area::new()
        .get("/accounts", list)
        .post("/accounts", create)
        .get("/accounts/{id}", show)
        .post("/accounts/{id}", edit)
        .post("/accounts/{id}/enabled", set_enabled)
        .post("/accounts/{id}/test", test)
        .post("/accounts/{id}/delete", delete)
        .post("/accounts/{id}/sync", sync_now)
        .get("/accounts/{id}/status", status);
    account_connect::routes(area)
}

pub(super) type Admin = Require<perm::ManageAccounts>;

struct AccountRow {
    a: Account,
    coverage: String,
    status: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/list.html")]
pub(super) struct ListPage {
    page: PageContext,
    accounts: Vec<AccountRow>,
    error: String,
    form: CreateForm,
    default_exclude: String,
    /// Why Google / Microsoft 365 accounts cannot be connected yet (client id not set), or empty.
    google_missing: String,
    microsoft_missing: String,
}

fn coverage_text(folders: &[FolderCoverage]) -> String {
    match ledger::account_percent(folders) {
        Some(p) => format!("{p:.1}%"),
        None => "—".into(),
    }
}

async fn rows(state: &AppState, user: &CurrentUser) -> Result<Vec<AccountRow>> {
    // Three queries for the whole page, however many accounts there are.
    let mut coverage = ledger::coverage_by_account(&state.pool).await?;
    let mut sync_workers: HashMap<String, WorkerStatus> = workers::list(&state.pool, &user.grants)
        .await?
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
    let mut out = Vec::new();
    for a in accounts::list(&state.pool).await? {
        let folders = coverage.remove(&a.id).unwrap_or_default();
        let status = match sync_workers.remove(&workers::sync_worker_name(a.id)) {
            Some(w) if w.last_error.is_some() => "failing".to_string(),
            Some(w) if w.state == WorkerState::Running => "running".to_string(),
            Some(w) if w.last_success_at.is_some() => {
                format!("ok {}", user.format_when(w.last_success_at))
            }
            _ if !a.enabled => "paused".to_string(),
            _ if a.kind == "imap" => "never synced".to_string(),
            _ => "—".to_string(),
        };
        out.push(AccountRow {
            coverage: coverage_text(&folders),
            status,
            a,
        });
    }
    Ok(out)
}

/// Which kind of account the add form is for (`?add=imap|google|microsoft`).
#[derive(Deserialize, Default)]
struct AddChoice {
    #[serde(default)]
    add: String,
}

/// The accounts page with the add form as given (or empty, for `source`).
async fn list_with(
    state: &AppState,
    user: &Admin,
    error: String,
    form: CreateForm,
) -> Result<ListPage> {
    let missing = |key: &str, id: &str| {
        if id.trim().is_empty() {
            format!("{key} is not set yet: register the app (README) before connecting accounts.")
        } else {
            String::new()
        }
    };
    Ok(ListPage {
        page: PageContext::for_user("Accounts", "/accounts", user),
        accounts: rows(state, user).await?,
        error,
        form,
        default_exclude: state.settings.sync.exclude_folders.clone(),
        google_missing: missing("google.client_id", &state.settings.google.client_id),
        microsoft_missing: missing("microsoft.client_id", &state.settings.microsoft.client_id),
    })
}

/// The accounts page with `error` above an empty add form (a refused connection).
pub(super) async fn list_page(state: &AppState, user: &Admin, error: String) -> Result<ListPage> {
    list_with(state, user, error, CreateForm::empty("imap")).await
}

async fn list(
    State(state): State<AppState>,
    user: Admin,
    Query(choice): Query<AddChoice>,
) -> Result<ListPage> {
    let form = CreateForm::empty(Source::parse(&choice.add).as_str());
    list_with(&state, &user, String::new(), form).await
}

/// The three kinds of account the add form offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Imap,
    Google,
    Microsoft,
}

impl Source {
    /// Anything unknown is IMAP, the form's first choice.
    fn parse(text: &str) -> Self {
        match text {
            "google" => Self::Google,
            "microsoft" => Self::Microsoft,
            _ => Self::Imap,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Imap => "imap",
            Self::Google => "google",
            Self::Microsoft => "microsoft",
        }
    }

    /// The account kind it creates.
    fn kind(self) -> &'static str {
        match self {
            Self::Imap => "imap",
            Self::Google => "gmail",
            Self::Microsoft => "graph",
        }
    }
}

/// Everything arrives as text so a bad number is a form error, not a bare 422.
#[derive(Deserialize, Default, Clone)]
pub(super) struct CreateForm {
    /// imap, google or microsoft (the add form's choice).
    #[serde(default)]
    source: String,
    /// Google / Microsoft 365: the mailbox to archive; blank means whoever connects it.
    #[serde(default)]
    mailbox: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    username: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default)]
    folders: String,
    #[serde(default)]
    exclude_folders: String,
    #[serde(default)]
    delete_after_days: String,
    #[serde(default)]
    pin_cert: String,
    /// Empty: the configured default.
    #[serde(default)]
    poll_secs: String,
    /// "false" keeps deleted-flagged mail until the server expunges it; anything else expunges.
    #[serde(default)]
    expunge: String,
    /// IDLE on INBOX: "default" (sync.idle), "on" or "off".
    #[serde(default)]
    idle: String,
    /// "on" when the box is ticked.
    #[serde(default)]
    follow_flags: String,
}

impl CreateForm {
    /// An empty add form for `source`.
    fn empty(source: &str) -> Self {
        Self {
            source: source.into(),
            tls: "implicit".into(),
            idle: "default".into(),
            ..Self::default()
        }
    }

    /// The edit form, filled in from the stored account (the password stays write-only).
    fn from_account(a: &Account) -> Self {
        Self {
            source: a.kind.clone(),
            mailbox: a.mailbox.clone().unwrap_or_default(),
            name: a.name.clone(),
            host: a.host.clone().unwrap_or_default(),
            port: a.port.map(|p| p.to_string()).unwrap_or_default(),
            tls: a.tls_mode.clone().unwrap_or_default(),
            username: a.username.clone().unwrap_or_default(),
            password: String::new(),
            folders: a.folders_include.join(", "),
            exclude_folders: a.folders_exclude.join(", "),
            delete_after_days: a
                .delete_after_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            pin_cert: a.pinned_cert_sha256.clone().unwrap_or_default(),
            poll_secs: a.poll_interval_secs.to_string(),
            expunge: a.expunge.to_string(),
            idle: match a.idle {
                None => "default",
                Some(true) => "on",
                Some(false) => "off",
            }
            .into(),
            follow_flags: if a.follow_flags { "on" } else { "" }.into(),
        }
    }

    /// IDLE and flag following as the domain reads them.
    fn options(&self) -> Result<ImapOptions> {
        let idle = match self.idle.as_str() {
            "" | "default" => None,
            "on" => Some(true),
            "off" => Some(false),
            other => {
                return Err(Error::invalid(
                    "IDLE",
                    format!("`{other}` is not known; use default, on or off"),
                ));
            }
        };
        Ok(ImapOptions {
            idle,
            follow_flags: self.follow_flags == "on",
        })
    }

    /// A Google or Microsoft 365 account as the domain reads it.
    fn oauth_settings(&self, source: Source, state: &AppState) -> Result<OAuthSettings> {
        let default_poll = i32::try_from(state.live.get().sync.default_poll_secs).unwrap_or(300);
        Ok(OAuthSettings {
            name: self.name.clone(),
            kind: source.kind().into(),
            mailbox: Some(self.mailbox.trim().to_string()).filter(|m| !m.is_empty()),
            app_only: false,
            poll_interval_secs: number::<i32>("poll interval", &self.poll_secs)?
                .unwrap_or(default_poll),
        })
    }
}

fn number<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, "must be a whole number"))
}

/// The form as the domain reads it; blank fields take the shared defaults.
fn settings_from(form: &CreateForm, state: &AppState) -> Result<ImapSettings> {
    let draft = AccountDraft {
        name: form.name.clone(),
        host: form.host.clone(),
        port: number::<u16>("port", &form.port)?,
        tls: TlsMode::parse(&form.tls)?,
        username: form.username.clone(),
        folders_include: split_list(&form.folders),
        folders_exclude: Some(split_list(&form.exclude_folders)).filter(|f| !f.is_empty()),
        poll_interval_secs: number::<i32>("poll interval", &form.poll_secs)?,
        delete_after_days: number("delete after days", &form.delete_after_days)?,
        expunge: form.expunge != "false",
        pinned_cert_sha256: Some(form.pin_cert.clone()),
    };
    Ok(draft.settings(&state.live.get().sync))
}

async fn create(
    State(state): State<AppState>,
    user: Admin,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Response> {
    let source = Source::parse(&form.source);
    let attempt = async {
        if source != Source::Imap {
            let settings = form.oauth_settings(source, &state)?;
            let id = manage::create_oauth_account(&state.pool, &user.actor, &settings).await?;
            return Ok((id, "created-oauth"));
        }
        let imap = settings_from(&form, &state)?;
        let options = form.options()?;
        let id = manage::create_account(
            &state.pool,
            &state.keys.sealing,
            &user.actor,
            &imap,
            &form.password,
            Some(options),
        )
        .await?;
        Ok((id, "created"))
    };
    match attempt.await {
        Ok((id, done)) => Ok(Redirect::to(&format!("/accounts/{id}?done={done}")).into_response()),
        Err(e @ (Error::Invalid { .. } | Error::Conflict(_))) => {
            let mut form = form.clone();
            form.password.clear();
            form.source = source.as_str().into();
            let page = list_with(&state, &user, e.to_string(), form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "accounts/show.html")]
pub(super) struct ShowPage {
    page: PageContext,
    a: Account,
    folders: Vec<(FolderCoverage, String, String)>,
    entries: Vec<LedgerRow>,
    coverage: String,
    archived: i64,
    notice: String,
    error: String,
    test_folders: Vec<(String, u32, bool)>,
    last_error: String,
    edit: CreateForm,
    sync: workers::SyncView,
    /// The delete form's name as typed when it did not match (shown again with the reason).
    delete_typed: Option<String>,
    /// Gmail / Microsoft 365: source, identity, token state, delta positions.
    oauth: Option<OAuthPanel>,
    /// The page's own policy when its connect button leaves for the provider.
    csp: Option<HeaderValue>,
}

impl IntoResponse for ShowPage {
    fn into_response(self) -> Response {
        let csp = self.csp.clone();
        let mut response = match self.render() {
            Ok(html) => axum::response::Html(html).into_response(),
            Err(e) => Error::context("render the account page", e).into_response(),
        };
        if let Some(policy) = csp {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_SECURITY_POLICY, policy);
        }
        response
    }
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    done: String,
}

pub(super) async fn show_page(
    state: &AppState,
    user: &Admin,
    id: i64,
    notice: String,
    error: String,
    test_folders: Vec<(String, u32, bool)>,
) -> Result<ShowPage> {
    let a = accounts::get(&state.pool, id).await?;
    let archived = crate::archive::messages::count_for_account(&state.pool, id).await?;
    let folders = ledger::coverage(&state.pool, id).await?;
    let worker = workers::get(&state.pool, &workers::sync_worker_name(id)).await?;
    let a_enabled = a.enabled;
    let oauth = OAuthPanel::of(state, &a).await?;
    let csp = account_connect::page_csp(state, &a);
    Ok(ShowPage {
        page: PageContext::for_user(format!("Account {}", a.name), "/accounts", user),
        coverage: coverage_text(&folders),
        folders: folders
            .into_iter()
            .map(|f| {
                let pct = f
                    .percent()
                    .map(|p| format!("{p:.1}%"))
                    .unwrap_or_else(|| "—".into());
                let synced = user.format_when(f.last_synced_at);
                (f, pct, synced)
            })
            .collect(),
        entries: ledger::entries(&state.pool, id).await?,
        archived,
        edit: CreateForm::from_account(&a),
        a,
        notice,
        error,
        test_folders,
        sync: workers::SyncView::describe(
            worker.as_ref(),
            a_enabled,
            time::OffsetDateTime::now_utc(),
        ),
        last_error: worker.and_then(|w| w.last_error).unwrap_or_default(),
        delete_typed: None,
        oauth,
        csp,
    })
}

async fn show(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    Query(n): Query<Notice>,
) -> Result<ShowPage> {
    let notice = match n.done.as_str() {
        "created" => "Account added. It is synced on the next scheduler pass.",
        "created-oauth" => {
            "Account added. Connect it now: the button below opens the provider's consent page."
        }
        "connected" => "Connected. The mailbox is synced on the next scheduler pass.",
        "enabled" => "Syncing resumed.",
        "disabled" => "Syncing paused; the archive stays.",
        "updated" => "Settings saved. They apply from the next sync.",
        "sync-now" => "Sync requested: it starts within seconds. Progress shows below.",
        "reenter" => {
            "Settings saved. The server, port, TLS mode, user name or pinned certificate changed, \
             so the stored password was removed: enter the password again before the next sync."
        }
        _ => "",
    };
    show_page(&state, &user, id, notice.into(), String::new(), Vec::new()).await
}

/// `POST /accounts/{id}`: new settings; a blank password keeps the stored one unless the
/// endpoint changed (then the stored password is dropped, never sent to the new endpoint).
async fn edit(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Response> {
    let attempt = async {
        let imap = settings_from(&form, &state)?;
        let options = form.options()?;
        let password = Some(form.password.as_str()).filter(|p| !p.is_empty());
        manage::update_account(
            &state.pool,
            &state.keys.sealing,
            &user.actor,
            id,
            &imap,
            password,
            Some(options),
        )
        .await
    };
    match attempt.await {
        Ok(outcome) => {
            let done = if outcome == PasswordOutcome::Dropped {
                "reenter"
            } else {
                "updated"
            };
            Ok(Redirect::to(&format!("/accounts/{id}?done={done}")).into_response())
        }
        Err(e @ (Error::Invalid { .. } | Error::Conflict(_))) => {
            let mut page =
                show_page(&state, &user, id, String::new(), e.to_string(), Vec::new()).await?;
            page.edit = CreateForm {
                password: String::new(),
                ..form
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}

async fn set_enabled(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<EnabledForm>,
) -> Result<Response> {
    manage::set_enabled(&state.pool, &user.actor, id, form.enabled).await?;
    Ok(form.done(&format!("/accounts/{id}")))
}

async fn test(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<ShowPage> {
    let timeouts = Timeouts::from_settings(&state.settings.sync);
    match manage::test_account(&state.pool, &state.keys.sealing, id, timeouts).await {
        Ok(report) => {
            show_page(
                &state,
                &user,
                id,
                "Connected and logged in.".into(),
                String::new(),
                report.folders,
            )
            .await
        }
        Err(e) => {
            show_page(
                &state,
                &user,
                id,
                String::new(),
                format!("Connection test failed: {}", imap::plain_failure(&e)),
                Vec::new(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response> {
    let account = accounts::get(&state.pool, id).await?;
    if form.confirm.trim() != account.name {
        let mut page =
            show_page(&state, &user, id, String::new(), String::new(), Vec::new()).await?;
        page.delete_typed = Some(form.confirm);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    manage::remove_account(&state.pool, &user.actor, id).await?;
    Ok(Redirect::to("/accounts").into_response())
}

/// `POST /accounts/{id}/sync`: the next sync is due now and the backoff is forgotten.
async fn sync_now(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response> {
    match workers::sync_now(&state.pool, &user.actor, id).await {
        Ok(()) => Ok(Redirect::to(&format!("/accounts/{id}?done=sync-now")).into_response()),
        Err(Error::Conflict(reason)) => {
            let page = show_page(&state, &user, id, String::new(), reason, Vec::new()).await?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// `GET /accounts/{id}/status`: the sync state as JSON, polled by the account page's script.
async fn status(
    State(state): State<AppState>,
    _user: Admin,
    Path(id): Path<i64>,
) -> Result<Response> {
    let a = accounts::get(&state.pool, id).await?;
    let archived = crate::archive::messages::count_for_account(&state.pool, id).await?;
    let worker = workers::get(&state.pool, &workers::sync_worker_name(id)).await?;
    let view =
        workers::SyncView::describe(worker.as_ref(), a.enabled, time::OffsetDateTime::now_utc());
    Ok(axum::Json(serde_json::json!({
        "state": view.state,
        "text": view.text,
        "next": view.next,
        "archived": crate::render::format::count(archived),
        "last_error": worker.and_then(|w| w.last_error).unwrap_or_default(),
    }))
    .into_response())
}
