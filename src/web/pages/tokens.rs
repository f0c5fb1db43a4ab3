//! API tokens on the web: `/profile/tokens` (a user's own: create, shown once; list; revoke)
//! and `/tokens` (every token, for holders of `manage_users`). The rules live in
//! `auth::tokens`; this is parse → call → render.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::tokens::{self, NewToken, Scope, Token};
use crate::auth::{VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::web::http::extract::{Confirmed, CsrfForm, CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of token management.
pub fn area() -> Area {
    Area::new()
        .get("/profile/tokens", mine)
        .post("/profile/tokens", create)
        .post("/profile/tokens/{id}/revoke", revoke_mine)
        .get("/tokens", all)
        .post("/tokens/{id}/revoke", revoke_any)
}

/// One token as the lists show it.
struct Row {
    id: i64,
    username: String,
    name: String,
    prefix: String,
    scopes: String,
    archives: String,
    created: String,
    expires: String,
    last_used: String,
    status: &'static str,
    active: bool,
}

fn row(t: Token, user: &CurrentUser, accounts: &[VisibleAccount]) -> Row {
    let now = time::OffsetDateTime::now_utc();
    let status = if t.revoked_at.is_some() {
        "revoked"
    } else if !t.is_active(now) {
        "expired"
    } else {
        "active"
    };
    let archives = match &t.account_ids {
        None => "all the user may read".to_string(),
        Some(ids) => ids
            .iter()
            .map(|id| {
                accounts
                    .iter()
                    .find(|a| a.id == *id)
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| format!("#{id}"))
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    Row {
        id: t.id,
        scopes: t.scope_names(),
        created: user.format_time(t.created_at),
        expires: t
            .expires_at
            .map(|e| user.format_time(e))
            .unwrap_or_else(|| "never".into()),
        last_used: match t.last_used_at {
            Some(at) => format!("{} from {}", user.format_time(at), t.last_used_ip),
            None => "never".into(),
        },
        active: status == "active",
        status,
        username: t.username,
        name: t.name,
        prefix: t.prefix,
        archives,
    }
}

struct ScopeChoice {
    value: &'static str,
    label: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "tokens/mine.html")]
struct MinePage {
    page: PageContext,
    rows: Vec<Row>,
    scopes: Vec<ScopeChoice>,
    accounts: Vec<VisibleAccount>,
    /// The token just created: shown this once.
    created: String,
    error: String,
}

async fn render_mine(
    state: &AppState,
    user: &CurrentUser,
    created: String,
    error: String,
) -> Result<Response> {
    let accounts = visible_accounts(&state.pool, &user.grants).await?;
    let rows = tokens::list(&state.pool, Some(user.id))
        .await?
        .into_iter()
        .map(|t| row(t, user, &accounts))
        .collect();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = MinePage {
        page: PageContext::for_user("API tokens", "/profile", user),
        rows,
        scopes: Scope::ALL
            .into_iter()
            .map(|s| ScopeChoice {
                value: s.as_str(),
                label: s.label(),
            })
            .collect(),
        accounts,
        created,
        error,
    };
    Ok((status, page).into_response())
}

async fn mine(State(state): State<AppState>, user: CurrentUser) -> Result<Response> {
    render_mine(&state, &user, String::new(), String::new()).await
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    account: Vec<i64>,
    /// Days until it expires; empty: never.
    #[serde(default)]
    expires_days: String,
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Response> {
    let parsed = parse_create(&form);
    let outcome = match parsed {
        Ok(new) => tokens::create(&state.pool, &user.actor, user.id, new).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok((_, secret)) => render_mine(&state, &user, secret, String::new()).await,
        Err(e @ Error::Invalid { .. }) => {
            render_mine(&state, &user, String::new(), e.to_string()).await
        }
        Err(e) => Err(e),
    }
}

fn parse_create(form: &CreateForm) -> Result<NewToken> {
    let scopes = Scope::parse_list(&form.scope.join(","))?;
    let expires_in_days = match form.expires_days.trim() {
        "" => None,
        d => Some(
            d.parse::<i64>()
                .map_err(|_| Error::invalid("expires", "a number of days, or empty for never"))?,
        ),
    };
    Ok(NewToken {
        name: form.name.clone(),
        scopes,
        account_ids: (!form.account.is_empty()).then(|| form.account.clone()),
        expires_in_days,
    })
}

async fn revoke_mine(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Response> {
    form.check()?;
    tokens::revoke(&state.pool, &user.actor, id, Some(user.id)).await?;
    Ok(Redirect::to("/profile/tokens").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "tokens/all.html")]
struct AllPage {
    page: PageContext,
    rows: Vec<Row>,
}

async fn all(State(state): State<AppState>, user: Require<perm::ManageUsers>) -> Result<AllPage> {
    let accounts = visible_accounts(&state.pool, &crate::auth::Grants::All).await?;
    let rows = tokens::list(&state.pool, None)
        .await?
        .into_iter()
        .map(|t| row(t, &user, &accounts))
        .collect();
    Ok(AllPage {
        page: PageContext::for_user("API tokens", "/users", &user),
        rows,
    })
}

async fn revoke_any(
    State(state): State<AppState>,
    user: Require<perm::ManageUsers>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Response> {
    form.check()?;
    tokens::revoke(&state.pool, &user.actor, id, None).await?;
    Ok(Redirect::to("/tokens").into_response())
}
