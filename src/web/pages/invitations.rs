//! Invitations: administrators invite people by e-mail from the users page (or copy the link
//! when e-mail is off), resend or revoke them; the invitee sets a password through the link.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::password::{LinkQuery, SetPasswordForm, SetPasswordPage, dead_link, form_message};
use super::users::{Choice, account_choices, role_choices};
use crate::audit::Actor;
use crate::auth::invitations::{self, Issued, NewInvitation};
use crate::auth::{Grants, roles, users, visible_accounts};
use crate::error::{Error, Result};
use crate::notify::{mailer::Mailer, people};
use crate::web::http::extract::{Confirmed, CsrfForm, CsrfToken, NoFields, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::session;
use crate::web::http::state::AppState;

/// The routes of invitations: the administrator's and the invitee's.
pub fn area() -> Area {
    Area::new()
        .get("/users/invite", invite_page)
        .post("/users/invitations", create)
        .post("/users/invitations/{id}/resend", resend)
        .post("/users/invitations/{id}/revoke", revoke)
        .get("/invitation", accept_page)
        .post("/invitation", accept_submit)
}

type Admin = Require<perm::ManageUsers>;

#[derive(Template, WebTemplate)]
#[template(path = "users/invite.html")]
struct InvitePage {
    page: PageContext,
    username: String,
    email: String,
    roles: Vec<Choice>,
    accounts: Vec<Choice>,
    error: String,
    /// `[smtp]` is on: the invitation goes out by e-mail; otherwise the link is shown.
    can_send: bool,
    expiry_hours: u32,
}

#[derive(Deserialize, Default)]
struct InviteForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: Vec<i64>,
    #[serde(default)]
    account: Vec<i64>,
}

async fn form_page(
    state: &AppState,
    user: &Admin,
    form: &InviteForm,
    error: String,
) -> Result<InvitePage> {
    let all_roles = roles::list(&state.pool).await?;
    let chosen_roles = if form.role.is_empty() && error.is_empty() {
        all_roles
            .iter()
            .filter(|r| r.name == roles::READ_ONLY)
            .map(|r| r.id)
            .collect()
    } else {
        form.role.clone()
    };
    let accounts = visible_accounts(&state.pool, &Grants::All).await?;
    Ok(InvitePage {
        page: PageContext::for_user("Invite a user", "/users", user),
        username: form.username.clone(),
        email: form.email.clone(),
        roles: role_choices(&all_roles, &chosen_roles),
        accounts: account_choices(&accounts, &form.account),
        error,
        can_send: state.live.get().smtp.enabled,
        expiry_hours: state.settings.security.invitation_expiry_hours,
    })
}

async fn invite_page(State(state): State<AppState>, user: Admin) -> Result<InvitePage> {
    form_page(&state, &user, &InviteForm::default(), String::new()).await
}

/// What became of an invitation just made or resent: sent, or the link to pass on.
#[derive(Template, WebTemplate)]
#[template(path = "users/invited.html")]
struct InvitedPage {
    page: PageContext,
    username: String,
    email: String,
    expires: String,
    /// Empty when the e-mail went out; otherwise the link, shown this once.
    link: String,
    /// Why the link is shown instead of sent: e-mail off, or the SMTP error.
    why_link: String,
}

/// Mails the invitation, or explains why not and shows the link once instead.
async fn deliver(state: &AppState, user: &Admin, issued: Issued) -> InvitedPage {
    let link = format!("{}/invitation?token={}", state.link_base, issued.token);
    let expires = user.format_time(issued.expires_at);
    let inviter = if user.email.is_empty() {
        user.username.clone()
    } else {
        format!("{} ({})", user.username, user.email)
    };
    let why_link = match Mailer::from_settings(&state.live.get().smtp) {
        None => {
            "E-mail is not set up on this server (Settings → E-mail (SMTP)), so no invitation was sent."
                .to_string()
        }
        Some(mailer) => {
            let mail = people::invitation(&issued.username, &inviter, &link, &expires);
            match people::send(&mailer, &issued.email, &mail).await {
                Ok(()) => String::new(),
                Err(e) => format!("The invitation e-mail could not be sent: {e}."),
            }
        }
    };
    InvitedPage {
        page: PageContext::for_user("Invitation", "/users", user),
        username: issued.username,
        email: issued.email,
        expires,
        link: if why_link.is_empty() {
            String::new()
        } else {
            link
        },
        why_link,
    }
}

async fn create(
    State(state): State<AppState>,
    user: Admin,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response> {
    let new = NewInvitation {
        username: &form.username,
        email: &form.email,
        role_ids: &form.role,
        account_ids: &form.account,
    };
    let hours = state.settings.security.invitation_expiry_hours;
    match invitations::create(&state.pool, &user.actor, &new, hours).await {
        Ok(issued) => Ok(deliver(&state, &user, issued).await.into_response()),
        Err(e @ (Error::Invalid { .. } | Error::Refused(_))) => {
            let message = match &e {
                Error::Invalid { field, reason } => format!("{}: {reason}", label(field)),
                other => other.to_string(),
            };
            let page = form_page(&state, &user, &form, message).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}

fn label(field: &str) -> &str {
    match field {
        "username" => "Username",
        "email" => "E-mail",
        other => other,
    }
}

async fn resend(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response> {
    let hours = state.settings.security.invitation_expiry_hours;
    let issued = invitations::resend(&state.pool, &user.actor, id, hours).await?;
    Ok(deliver(&state, &user, issued).await.into_response())
}

async fn revoke(
    State(state): State<AppState>,
    user: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Response> {
    form.check()?;
    invitations::revoke(&state.pool, &user.actor, id).await?;
    Ok(Redirect::to("/users?done=revoked").into_response())
}

const INVITE_GONE: &str =
    "This invitation link has already been used, was withdrawn, has expired or was never valid.";
const INVITE_AGAIN: &str = "Ask the person who invited you to send a new invitation.";

fn accept_form(
    state: &AppState,
    csrf: &str,
    token: String,
    inv: &invitations::Open,
) -> SetPasswordPage {
    SetPasswordPage {
        page: PageContext::anonymous("Welcome", "/login", csrf),
        heading: "Welcome to Daygle",
        intro: format!(
            "{} invited you. Choose a password to finish setting up your account.",
            if inv.invited_by_name.is_empty() {
                "An administrator"
            } else {
                &inv.invited_by_name
            }
        ),
        action: "/invitation",
        token,
        username: inv.username.clone(),
        button: "Set password and sign in",
        error: String::new(),
        min_length: state.settings.security.min_password_length,
    }
}

async fn accept_page(
    State(state): State<AppState>,
    CsrfToken(csrf): CsrfToken,
    Query(q): Query<LinkQuery>,
) -> Result<Response> {
    match invitations::find_by_token(&state.pool, &q.token).await? {
        Some(inv) => Ok(accept_form(&state, &csrf, q.token, &inv).into_response()),
        None => Ok(dead_link(&csrf, INVITE_GONE, INVITE_AGAIN)),
    }
}

async fn accept_submit(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    actor: Actor,
    CsrfForm(form): CsrfForm<SetPasswordForm>,
) -> Result<Response> {
    let min = state.settings.security.min_password_length;
    let accepted = match form.confirmed() {
        Ok(()) => invitations::accept(&state.pool, &actor, &form.token, &form.password, min).await,
        Err(e) => Err(e),
    };
    match accepted {
        Ok(user_id) => {
            let user = users::get(&state.pool, user_id).await?;
            session::sign_in(&session, user.id, user.session_epoch).await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(Error::NotFound) => Ok(dead_link(&csrf, INVITE_GONE, INVITE_AGAIN)),
        Err(Error::Refused(reason)) => Ok(dead_link(&csrf, &reason, INVITE_AGAIN)),
        Err(e @ Error::Invalid { .. }) => {
            let Some(inv) = invitations::find_by_token(&state.pool, &form.token).await? else {
                return Ok(dead_link(&csrf, INVITE_GONE, INVITE_AGAIN));
            };
            let mut page = accept_form(&state, &csrf, form.token.clone(), &inv);
            page.error = form_message(&e);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}
