//! "Connect Google account" / "Connect Microsoft 365 account": the button starts the
//! authorization-code flow (`ingest::oauth::connect::start`) and keeps the pending connection in
//! this session; the provider sends the browser back to `/accounts/oauth/callback`, which takes
//! the pending connection out of the session (so a `state` works once, only here) and finishes
//! it. Refusals are shown in plain words on the account page; the domain audits them.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::accounts::{Admin, list_page, show_page};
use crate::error::{Error, Result};
use crate::ingest::accounts::{self, Account};
use crate::ingest::oauth::connect::{self, Callback, Pending, SESSION_KEY};
use crate::ingest::oauth::view::{self, TokenState};
use crate::ingest::oauth::{OAuthClient, Provider};
use crate::web::http::extract::{CsrfForm, NoFields};
use crate::web::http::headers::PAGE_CSP;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn routes(area: Area) -> Area {
    area.post("/accounts/{id}/connect", connect)
        .get("/accounts/oauth/callback", callback)
}

fn session_error(e: tower_sessions::session::Error) -> Error {
    Error::context("use the session store", e)
}

/// What the account page shows about a Gmail or Microsoft 365 account.
pub struct OAuthPanel {
    pub provider: &'static str,
    pub source: &'static str,
    pub access: &'static str,
    pub identity: String,
    pub token: &'static str,
    pub token_text: &'static str,
    pub expiry: String,
    pub error: String,
    /// (folder, position in words)
    pub positions: Vec<(String, String)>,
    /// A person can connect it in the browser (not app-only).
    pub connectable: bool,
    /// Why the connect button cannot work yet (client id not configured), or empty.
    pub unconfigured: String,
}

impl OAuthPanel {
    pub async fn of(state: &AppState, a: &Account) -> Result<Option<Self>> {
        let Some(provider) = Provider::of_kind(&a.kind) else {
            return Ok(None);
        };
        let rows = crate::archive::ledger::delta_positions(&state.pool, a.id).await?;
        let token = TokenState::of(a);
        let unconfigured = match OAuthClient::from_settings(&state.settings, provider) {
            Ok(c) if c.has_client_id() => String::new(),
            Ok(_) => format!(
                "{} is not set: register the app (README) before connecting.",
                client_id_key(provider)
            ),
            Err(e) => e.to_string(),
        };
        Ok(Some(Self {
            provider: provider.label(),
            source: view::source_label(a),
            access: view::access_label(a),
            identity: a
                .oauth_identity
                .clone()
                .or_else(|| a.mailbox.clone())
                .unwrap_or_default(),
            token: token.as_str(),
            token_text: token.text(),
            expiry: view::expiry_text(a.oauth_expires_at, time::OffsetDateTime::now_utc()),
            error: a.oauth_error.clone().unwrap_or_default(),
            positions: view::positions(a, &rows),
            connectable: a.oauth_mode.as_deref() != Some("app"),
            unconfigured,
        }))
    }
}

fn client_id_key(provider: Provider) -> &'static str {
    match provider {
        Provider::Google => "google.client_id",
        Provider::Microsoft => "microsoft.client_id",
    }
}

/// The page's content security policy when it holds a connect button: the button's form is
/// answered with a redirect to the provider's consent page, which `form-action 'self'` alone
/// would stop in the browser.
pub fn page_csp(state: &AppState, a: &Account) -> Option<HeaderValue> {
    let provider = Provider::of_kind(&a.kind)?;
    let auth = match provider {
        Provider::Google => state.settings.google.auth_url.clone(),
        Provider::Microsoft => state.settings.microsoft.auth_endpoint(),
    };
    let origin = url::Url::parse(auth.trim()).ok()?.origin();
    if !origin.is_tuple() {
        return None;
    }
    let policy = PAGE_CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origin.ascii_serialization()),
    );
    HeaderValue::from_str(&policy).ok()
}

/// `POST /accounts/{id}/connect`: off to the provider's consent page.
async fn connect(
    State(state): State<AppState>,
    user: Admin,
    session: Session,
    Path(id): Path<i64>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response> {
    let redirect = connect::redirect_url(&state.url);
    match connect::start(&state.pool, &state.settings, &user.actor, id, &redirect).await {
        Ok((url, pending)) => {
            session
                .insert(SESSION_KEY, &pending)
                .await
                .map_err(session_error)?;
            Ok(Redirect::to(&url).into_response())
        }
        Err(e @ Error::Invalid { .. }) => {
            let page = show_page(
                &state,
                &user,
                id,
                String::new(),
                format!("Connecting did not start: {e}"),
                Vec::new(),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// What the provider sends back: our state and a code, or an error.
#[derive(Deserialize)]
struct Answer {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// `GET /accounts/oauth/callback`: the provider's answer, checked against the connection this
/// session started (taken out of the session first, so it cannot be used again).
async fn callback(
    State(state): State<AppState>,
    user: Admin,
    session: Session,
    Query(answer): Query<Answer>,
) -> Result<Response> {
    let pending: Option<Pending> = session.remove(SESSION_KEY).await.map_err(session_error)?;
    let account_id = pending.as_ref().map(|p| p.account_id);
    let back = Callback {
        state: answer.state.as_deref(),
        code: answer.code.as_deref(),
        error: answer.error.as_deref(),
    };
    let redirect = connect::redirect_url(&state.url);
    let done = connect::finish(
        &state.pool,
        &state.settings,
        &state.keys.sealing,
        &user.actor,
        pending,
        &back,
        &redirect,
    )
    .await;
    let reason = match done {
        Ok((id, _identity)) => {
            return Ok(Redirect::to(&format!("/accounts/{id}?done=connected")).into_response());
        }
        Err(Error::Invalid { reason, .. }) => reason,
        Err(e) => crate::error::chain(&e),
    };
    let error = format!("The account was not connected: {reason}.");
    let known = match account_id {
        Some(id) => accounts::get(&state.pool, id).await.ok(),
        None => None,
    };
    Ok(match known {
        Some(a) => (
            StatusCode::BAD_REQUEST,
            show_page(&state, &user, a.id, String::new(), error, Vec::new()).await?,
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            list_page(&state, &user, error).await?,
        )
            .into_response(),
    })
}
