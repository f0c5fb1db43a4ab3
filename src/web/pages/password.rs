//! Passwords outside the profile: "forgot password" (request a link, then set a new password
//! through it) and the change a user must make when an administrator chose their password.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::rate_limited;
use crate::audit::Actor;
use crate::auth::{manage, resets, users};
use crate::error::{Error, Result};
use crate::notify::{mailer::Mailer, people};
use crate::web::http::extract::{CsrfForm, CsrfToken, CurrentUser};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::session;
use crate::web::http::state::AppState;

/// The routes of the password pages.
pub fn area() -> Area {
    Area::new()
        .get("/password/forgot", forgot_page)
        .post("/password/forgot", forgot_submit)
        .get("/password/reset", reset_page)
        .post("/password/reset", reset_submit)
        .get(CHANGE_PATH, change_page)
        .post(CHANGE_PATH, change_submit)
}

/// Where a user whose password an administrator chose is sent until they change it.
pub const CHANGE_PATH: &str = "/password/change";

/// The answer to every "forgot password" request, whether or not a link went out.
const FORGOT_ANSWER: &str = "If that username or e-mail address belongs to an account here, a link to reset its password is on its way. It works for 30 minutes. Nothing arrived? Check the spelling and your spam folder, or ask an administrator.";

/// Every answer to the form takes at least this long, so its timing does not tell known from
/// unknown addresses either (the mail itself goes out in the background).
const FORGOT_MIN_TIME: Duration = Duration::from_millis(300);

#[derive(Template, WebTemplate)]
#[template(path = "auth/forgot.html")]
struct ForgotPage {
    page: PageContext,
    who: String,
    /// The answer after a request; empty on the blank form.
    answer: String,
    /// E-mail is off: no link can be sent, the page says so.
    can_send: bool,
}

fn forgot(state: &AppState, token: &str, who: String, answer: &str) -> ForgotPage {
    ForgotPage {
        page: PageContext::anonymous("Forgot password", "/login", token),
        who,
        answer: answer.to_string(),
        can_send: state.live.get().smtp.enabled,
    }
}

async fn forgot_page(State(state): State<AppState>, CsrfToken(token): CsrfToken) -> ForgotPage {
    forgot(&state, &token, String::new(), "")
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    who: String,
}

async fn forgot_submit(
    State(state): State<AppState>,
    CsrfToken(token): CsrfToken,
    actor: Actor,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Result<Response> {
    if let Some(r) = rate_limited(&state, &actor).await? {
        return Ok(r);
    }
    let started = tokio::time::Instant::now();
    let who = form.who.trim().to_string();
    if !who.is_empty() {
        request_links(&state, &actor, &who).await?;
    }
    tokio::time::sleep_until(started + FORGOT_MIN_TIME).await;
    Ok(forgot(&state, &token, String::new(), FORGOT_ANSWER).into_response())
}

/// Makes and mails the links for `who` unless this address has asked too often this hour.
async fn request_links(state: &AppState, actor: &Actor, who: &str) -> Result<()> {
    if state.reset_limiter.check_key(&who.to_lowercase()).is_err() {
        return resets::note_limited(&state.pool, actor, who).await;
    }
    let Some(mailer) = Mailer::from_settings(&state.live.get().smtp) else {
        return Ok(());
    };
    let links = resets::request(&state.pool, actor, &state.settings.oidc, who).await?;
    let base = &state.link_base;
    for link in links {
        let url = format!("{base}/password/reset?token={}", link.token);
        let mail = people::password_reset(&link.username, &url, resets::LINK_MINUTES);
        let mailer = mailer.clone();
        // In the background: waiting for the SMTP server would tell known addresses apart.
        tokio::spawn(async move {
            if let Err(e) = people::send(&mailer, &link.email, &mail).await {
                tracing::warn!(user_id = link.user_id, error = %e, "password reset mail not sent");
            }
        });
    }
    Ok(())
}

/// Setting a password through a link: the invitation's and the reset's page.
#[derive(Template, WebTemplate)]
#[template(path = "auth/set_password.html")]
pub(super) struct SetPasswordPage {
    pub(super) page: PageContext,
    pub(super) heading: &'static str,
    pub(super) intro: String,
    pub(super) action: &'static str,
    pub(super) token: String,
    pub(super) username: String,
    pub(super) button: &'static str,
    pub(super) error: String,
    pub(super) min_length: usize,
}

/// The page for a link that does not work (any more).
pub(super) fn dead_link(token: &str, what: &str, again: &str) -> Response {
    (
        StatusCode::GONE,
        LinkGone {
            page: PageContext::anonymous("Link no longer valid", "/login", token),
            what: what.to_string(),
            again: again.to_string(),
        },
    )
        .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/link_gone.html")]
struct LinkGone {
    page: PageContext,
    what: String,
    again: String,
}

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    #[serde(default)]
    pub(super) token: String,
}

const RESET_GONE: &str = "This password reset link has already been used, has expired (links work for 30 minutes) or was never valid.";
const RESET_AGAIN: &str = "Ask for a new link on the sign-in page under \"Forgot password?\".";

fn reset_form(state: &AppState, csrf: &str, token: String, user: &users::User) -> SetPasswordPage {
    SetPasswordPage {
        page: PageContext::anonymous("Choose a new password", "/login", csrf),
        heading: "Choose a new password",
        intro: "Setting a new password signs you out everywhere else. If you use two-factor sign-in, you will still be asked for your code.".into(),
        action: "/password/reset",
        token,
        username: user.username.clone(),
        button: "Set new password",
        error: String::new(),
        min_length: state.settings.security.min_password_length,
    }
}

async fn reset_page(
    State(state): State<AppState>,
    CsrfToken(csrf): CsrfToken,
    Query(q): Query<LinkQuery>,
) -> Result<Response> {
    match resets::find_by_token(&state.pool, &q.token).await? {
        Some(user) => Ok(reset_form(&state, &csrf, q.token, &user).into_response()),
        None => Ok(dead_link(&csrf, RESET_GONE, RESET_AGAIN)),
    }
}

#[derive(Deserialize)]
pub(super) struct SetPasswordForm {
    #[serde(default)]
    pub(super) token: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) password_confirm: String,
}

impl SetPasswordForm {
    /// The two fields must agree before anything else is checked.
    pub(super) fn confirmed(&self) -> Result<()> {
        if self.password == self.password_confirm {
            Ok(())
        } else {
            Err(Error::invalid(
                "password_confirm",
                "The two passwords do not match.",
            ))
        }
    }
}

async fn reset_submit(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    actor: Actor,
    CsrfForm(form): CsrfForm<SetPasswordForm>,
) -> Result<Response> {
    let min = state.settings.security.min_password_length;
    let done = match form.confirmed() {
        Ok(()) => resets::complete(&state.pool, &actor, &form.token, &form.password, min).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(user) if user.has_totp() => {
            // The link proves the mailbox, not the second factor: that is still asked for.
            session::set_pending_second_factor(&session, user.id).await?;
            Ok(Redirect::to("/login/totp").into_response())
        }
        Ok(user) => {
            session::sign_in(&session, user.id, user.session_epoch).await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(Error::NotFound) => Ok(dead_link(&csrf, RESET_GONE, RESET_AGAIN)),
        Err(e @ Error::Invalid { .. }) => {
            let Some(user) = resets::find_by_token(&state.pool, &form.token).await? else {
                return Ok(dead_link(&csrf, RESET_GONE, RESET_AGAIN));
            };
            let mut page = reset_form(&state, &csrf, form.token.clone(), &user);
            page.error = form_message(&e);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// A form error in words for the person (without the field's internal name).
pub(super) fn form_message(e: &Error) -> String {
    match e {
        Error::Invalid { field, reason } if field.starts_with("password") => {
            if reason.chars().next().is_some_and(char::is_uppercase) {
                reason.clone()
            } else {
                format!("The password {reason}.")
            }
        }
        other => other.to_string(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/change_password.html")]
struct ChangePage {
    page: PageContext,
    /// An administrator chose the current password: the user cannot go on until they change it.
    required: bool,
    error: String,
    min_length: usize,
}

async fn change_page(State(state): State<AppState>, user: CurrentUser) -> Result<ChangePage> {
    let required = users::get(&state.pool, user.id).await?.must_change_password;
    Ok(ChangePage {
        page: PageContext::for_user("Change your password", "/profile", &user),
        required,
        error: String::new(),
        min_length: state.settings.security.min_password_length,
    })
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

async fn change_submit(
    State(state): State<AppState>,
    session: Session,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> Result<Response> {
    if state.password_limiter.check_key(&user.id).is_err() {
        return Ok(crate::web::http::error::page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many password checks. Wait a minute and try again.",
        ));
    }
    let min = state.settings.security.min_password_length;
    let changed = if form.password != form.password_confirm {
        Err(Error::invalid(
            "password_confirm",
            "The two new passwords do not match.",
        ))
    } else {
        manage::change_own_password(
            &state.pool,
            &user.actor,
            user.id,
            &form.current_password,
            &form.password,
            min,
        )
        .await
    };
    match changed {
        Ok(epoch) => {
            // The epoch moved, which ends every other session; this one carries on.
            session::set_epoch(&session, epoch).await?;
            Ok(Redirect::to("/profile?done=password").into_response())
        }
        Err(e @ Error::Invalid { .. }) => {
            let required = users::get(&state.pool, user.id).await?.must_change_password;
            let error = match &e {
                Error::Invalid { field, reason } if field == "current_password" => {
                    format!("The current password {reason}.")
                }
                other => form_message(other),
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                ChangePage {
                    page: PageContext::for_user("Change your password", "/profile", &user),
                    required,
                    error,
                    min_length: min,
                },
            )
                .into_response())
        }
        Err(e) => Err(e),
    }
}
