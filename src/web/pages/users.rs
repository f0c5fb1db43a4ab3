//! `/users`: administrators create, edit, disable, delete users, reset passwords, assign roles
//! and archive accounts, and end a user's sessions.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::invitations;
use crate::auth::manage::{self, NewUser};
use crate::auth::roles::{self, Role};
use crate::auth::users::{self, UserSummary};
use crate::auth::{Grants, VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::web::http::extract::{Confirmed, CsrfForm, EnabledForm, NoFields, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of the users pages.
pub fn area() -> Area {
    Area::new()
        .get("/users", list)
        .get("/users/new", new_page)
        .post("/users", create)
        .get("/users/{id}", edit_page)
        .post("/users/{id}", update)
        .post("/users/{id}/enabled", set_enabled)
        .post("/users/{id}/password", reset_password)
        .post("/users/{id}/sessions/end", end_sessions)
        .post("/users/{id}/totp/remove", remove_totp)
        .post("/users/{id}/delete", delete)
}

type Admin = Require<perm::ManageUsers>;

#[derive(Template, WebTemplate)]
#[template(path = "users/list.html")]
struct ListPage {
    page: PageContext,
    users: Vec<UserSummary>,
    invitations: Vec<InvitationRow>,
    notice: String,
}

/// An open invitation as the users page lists it.
struct InvitationRow {
    id: i64,
    username: String,
    email: String,
    invited_by: String,
    sent: String,
    expires: String,
    expired: bool,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    done: String,
}

fn notice_text(key: &str) -> String {
    match key {
        "created" => "User created. They choose their own password when they first sign in.",
        "saved" => "Changes saved.",
        "enabled" => "User enabled.",
        "disabled" => "User disabled; their sessions have ended.",
        "password" => "Password reset; their sessions have ended. They must choose a new one when they next sign in.",
        "revoked" => "Invitation withdrawn; its link no longer works.",
        "sessions" => "All of their sessions have ended.",
        "totp" => "Two-factor sign-in removed.",
        "deleted" => "User deleted.",
        _ => "",
    }
    .to_string()
}

async fn list(
    State(state): State<AppState>,
    user: Admin,
    Query(n): Query<Notice>,
) -> Result<ListPage> {
    let invitations = invitations::list_open(&state.pool)
        .await?
        .into_iter()
        .map(|i| InvitationRow {
            id: i.id,
            username: i.username,
            email: i.email,
            invited_by: i.invited_by_name,
            sent: user.format_time(i.sent_at),
            expires: user.format_time(i.expires_at),
            expired: i.expired,
        })
        .collect();
    Ok(ListPage {
        page: PageContext::for_user("Users", "/users", &user),
        users: users::list(&state.pool).await?,
        invitations,
        notice: notice_text(&n.done),
    })
}

/// A checkbox in the role or account list.
pub(super) struct Choice {
    pub(super) id: i64,
    pub(super) label: String,
    pub(super) hint: String,
    pub(super) checked: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "users/form.html")]
struct FormPage {
    page: PageContext,
    /// None for a new user.
    id: Option<i64>,
    username: String,
    email: String,
    enabled: bool,
    has_totp: bool,
    roles: Vec<Choice>,
    accounts: Vec<Choice>,
    error: String,
    notice: String,
    min_length: usize,
    is_self: bool,
}

pub(super) fn role_choices(all: &[Role], chosen: &[i64]) -> Vec<Choice> {
    all.iter()
        .map(|r| Choice {
            id: r.id,
            label: r.name.clone(),
            hint: r.description.clone(),
            checked: chosen.contains(&r.id),
        })
        .collect()
}

pub(super) fn account_choices(all: &[VisibleAccount], chosen: &[i64]) -> Vec<Choice> {
    all.iter()
        .map(|a| Choice {
            id: a.id,
            label: a.name.clone(),
            hint: a.kind.clone(),
            checked: chosen.contains(&a.id),
        })
        .collect()
}

async fn new_page(State(state): State<AppState>, user: Admin) -> Result<FormPage> {
    let all_roles = roles::list(&state.pool).await?;
    let read_only: Vec<i64> = all_roles
        .iter()
        .filter(|r| r.name == roles::READ_ONLY)
        .map(|r| r.id)
        .collect();
    Ok(FormPage {
        page: PageContext::for_user("New user", "/users", &user),
        id: None,
        username: String::new(),
        email: String::new(),
        enabled: true,
        has_totp: false,
        roles: role_choices(&all_roles, &read_only),
        accounts: account_choices(&visible_accounts(&state.pool, &Grants::All).await?, &[]),
        error: String::new(),
        notice: String::new(),
        min_length: state.settings.security.min_password_length,
        is_self: false,
    })
}

#[derive(Deserialize)]
struct CreateForm {
    username: String,
    #[serde(default)]
    email: String,
    password: String,
    #[serde(default)]
    role: Vec<i64>,
    #[serde(default)]
    account: Vec<i64>,
}

async fn create(
    State(state): State<AppState>,
    user: Admin,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Response> {
    let new = NewUser {
        username: &form.username,
        email: &form.email,
        password: &form.password,
        role_ids: &form.role,
        account_ids: &form.account,
    };
    let min = state.settings.security.min_password_length;
    match manage::create_user(&state.pool, &user.actor, &new, min).await {
        Ok(id) => Ok(Redirect::to(&format!("/users/{id}?done=created")).into_response()),
        Err(e @ Error::Invalid { .. }) => {
            let all_roles = roles::list(&state.pool).await?;
            let accounts = visible_accounts(&state.pool, &Grants::All).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                FormPage {
                    page: PageContext::for_user("New user", "/users", &user),
                    id: None,
                    username: form.username.clone(),
                    email: form.email.clone(),
                    enabled: true,
                    has_totp: false,
                    roles: role_choices(&all_roles, &form.role),
                    accounts: account_choices(&accounts, &form.account),
                    error: e.to_string(),
                    notice: String::new(),
                    min_length: min,
                    is_self: false,
                },
            )
                .into_response())
        }
        Err(e) => Err(e),
    }
}

async fn edit_page(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    Query(n): Query<Notice>,
) -> Result<FormPage> {
    let target = users::get(&state.pool, id).await?;
    let all_roles = roles::list(&state.pool).await?;
    let accounts = visible_accounts(&state.pool, &Grants::All).await?;
    Ok(FormPage {
        page: PageContext::for_user(format!("User {}", target.username), "/users", &user),
        id: Some(id),
        roles: role_choices(&all_roles, &users::role_ids(&state.pool, id).await?),
        accounts: account_choices(&accounts, &users::account_ids(&state.pool, id).await?),
        username: target.username,
        email: target.email,
        enabled: target.enabled,
        has_totp: target.totp_secret.is_some(),
        error: String::new(),
        notice: notice_text(&n.done),
        min_length: state.settings.security.min_password_length,
        is_self: id == user.id,
    })
}

#[derive(Deserialize)]
struct UpdateForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: Vec<i64>,
    #[serde(default)]
    account: Vec<i64>,
}

async fn update(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<UpdateForm>,
) -> Result<Response> {
    let change = manage::UserUpdate {
        email: &form.email,
        role_ids: &form.role,
        account_ids: &form.account,
    };
    manage::update_user(&state.pool, &user.actor, id, &change).await?;
    Ok(Redirect::to(&format!("/users/{id}?done=saved")).into_response())
}

async fn set_enabled(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<EnabledForm>,
) -> Result<Response> {
    manage::set_enabled(&state.pool, &user.actor, id, form.enabled).await?;
    Ok(form.done(&format!("/users/{id}")))
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response> {
    let min = state.settings.security.min_password_length;
    manage::reset_password(&state.pool, &user.actor, id, &form.password, min).await?;
    Ok(Redirect::to(&format!("/users/{id}?done=password")).into_response())
}

async fn end_sessions(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response> {
    manage::end_sessions(&state.pool, &user.actor, id).await?;
    Ok(Redirect::to(&format!("/users/{id}?done=sessions")).into_response())
}

async fn remove_totp(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Response> {
    form.check()?;
    manage::remove_totp(&state.pool, &user.actor, id).await?;
    Ok(Redirect::to(&format!("/users/{id}?done=totp")).into_response())
}

async fn delete(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Response> {
    form.check()?;
    manage::delete_user(&state.pool, &user.actor, id).await?;
    Ok(Redirect::to("/users?done=deleted").into_response())
}
