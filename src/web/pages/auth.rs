//! First-run setup, sign-in (password, then TOTP when enrolled) and sign-out.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::audit::{Action, Actor, AuditEvent, Target};
use crate::auth::login::{self, LockoutPolicy, LoginOutcome};
use crate::auth::{manage, users};
use crate::error::{Error, Result};
use crate::web::http::extract::{CsrfForm, CsrfToken, CurrentUser, MaybeUser, NoFields};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::session;
use crate::web::http::state::AppState;
use crate::web::http::{client, cookies, error};

/// The routes of setup, sign-in, two-factor and sign-out.
pub fn area() -> Area {
    Area::new()
        .get("/setup", setup_page)
        .post("/setup", setup_submit)
        .get("/login", login_page)
        .post("/login", login_submit)
        .get("/login/local", local_login_page)
        .post("/login/oidc", super::sso::start)
        .get(crate::auth::oidc::CALLBACK_PATH, super::sso::callback)
        .get("/login/totp", totp_page)
        .post("/login/totp", totp_submit)
        .post("/logout", logout)
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/setup.html")]
struct SetupPage {
    page: PageContext,
    username: String,
    email: String,
    error: String,
    min_length: usize,
}

/// Every field defaults, so once set up the handler answers 404 before judging the form.
#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

async fn setup_page(
    State(state): State<AppState>,
    CsrfToken(token): CsrfToken,
) -> Result<Response> {
    if users::any_exist(&state.pool).await? {
        return Err(Error::NotFound);
    }
    Ok(SetupPage {
        page: PageContext::anonymous("Set up", "/setup", &token),
        username: String::new(),
        email: String::new(),
        error: String::new(),
        min_length: state.settings.security.min_password_length,
    }
    .into_response())
}

async fn setup_submit(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(token): CsrfToken,
    actor: Actor,
    CsrfForm(form): CsrfForm<SetupForm>,
) -> Result<Response> {
    if users::any_exist(&state.pool).await? {
        return Err(Error::NotFound);
    }
    let min_length = state.settings.security.min_password_length;
    let again = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            SetupPage {
                page: PageContext::anonymous("Set up", "/setup", &token),
                username: form.username.clone(),
                email: form.email.clone(),
                error,
                min_length,
            },
        )
            .into_response()
    };
    if form.password != form.password_confirm {
        return Ok(again("The two passwords do not match.".into()));
    }
    let created = manage::create_first_admin(
        &state.pool,
        &actor,
        &form.username,
        &form.email,
        &form.password,
        min_length,
    )
    .await;
    let id = match created {
        Ok(id) => id,
        Err(e @ Error::Invalid { .. }) => return Ok(again(e.to_string())),
        Err(e) => return Err(e),
    };
    state.setup_done.store(true, Ordering::Relaxed);
    let user = users::get(&state.pool, id).await?;
    session::sign_in(&session, user.id, user.session_epoch).await?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/login.html")]
pub(super) struct LoginPage {
    page: PageContext,
    username: String,
    error: String,
    /// The identity provider's name for the "Sign in with …" button, when OIDC is on.
    sso: Option<String>,
    /// Show the username/password form.
    local_form: bool,
}

impl LoginPage {
    /// The sign-in page as `[oidc]` wants it: the provider's button, the password form unless
    /// `local_login` is off (then only at `/login/local`, for the break-glass users).
    pub(super) fn new(state: &AppState, token: &str, break_glass: bool) -> Self {
        let o = &state.settings.oidc;
        Self {
            page: PageContext::anonymous("Sign in", "/login", token),
            username: String::new(),
            error: String::new(),
            sso: o.enabled.then(|| o.display_name.clone()),
            local_form: !o.enabled || o.local_login || break_glass,
        }
    }

    pub(super) fn with_error(mut self, username: String, error: impl Into<String>) -> Self {
        self.username = username;
        self.error = error.into();
        self
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login_page(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    CsrfToken(token): CsrfToken,
) -> Response {
    if user.is_some() {
        return Redirect::to("/").into_response();
    }
    LoginPage::new(&state, &token, false).into_response()
}

/// The password form even when `oidc.local_login` is off: the break-glass way in (only the
/// users in `oidc.break_glass_users` get past it).
async fn local_login_page(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    CsrfToken(token): CsrfToken,
) -> Response {
    if user.is_some() {
        return Redirect::to("/").into_response();
    }
    LoginPage::new(&state, &token, true).into_response()
}

/// One message for every failure, so the page does not reveal which usernames exist.
const SIGN_IN_FAILED: &str = "Sign-in failed: the username or password is wrong, or the account is disabled or temporarily locked after too many failed attempts.";

fn policy(state: &AppState) -> LockoutPolicy {
    LockoutPolicy {
        threshold: state.settings.security.lockout_threshold,
        minutes: state.settings.security.lockout_minutes,
    }
}

/// Per-address limit on sign-in attempts (password and TOTP steps share it), counted per IPv4
/// address or IPv6 /64. Refusals are tallied and audited once a minute per address.
pub(super) async fn rate_limited(state: &AppState, actor: &Actor) -> Result<Option<Response>> {
    let ip: IpAddr = actor
        .ip
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let key = client::limit_key(ip);
    if state.login_limiter.check_key(&key).is_ok() {
        return Ok(None);
    }
    state.refusals.note(&key.to_string(), actor);
    let mut r = error::page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts from your address. Wait a minute and try again.",
    );
    r.headers_mut()
        .insert("retry-after", axum::http::HeaderValue::from_static("60"));
    Ok(Some(r))
}

async fn login_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    CsrfToken(token): CsrfToken,
    actor: Actor,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response> {
    if let Some(r) = rate_limited(&state, &actor).await? {
        return Ok(r);
    }
    let failed = |username: String| {
        (
            StatusCode::UNAUTHORIZED,
            LoginPage::new(&state, &token, true).with_error(username, SIGN_IN_FAILED),
        )
            .into_response()
    };
    let oidc = &state.settings.oidc;
    if oidc.enabled && !oidc.local_login && !oidc.is_break_glass(&form.username) {
        login::refuse_local(&state.pool, &actor, &form.username).await?;
        return Ok(failed(form.username));
    }
    let outcome = login::check_password(
        &state.pool,
        policy(&state),
        &actor,
        &form.username,
        &form.password,
    )
    .await?;
    match outcome {
        LoginOutcome::Success(user) => {
            session::sign_in(&session, user.id, user.session_epoch).await?;
            Ok(back_to_next(&state, &headers))
        }
        LoginOutcome::NeedsSecondFactor(user) => {
            session::set_pending_second_factor(&session, user.id).await?;
            Ok(Redirect::to("/login/totp").into_response())
        }
        LoginOutcome::Failed => Ok(failed(form.username)),
    }
}

/// After sign-in: to the page asked for before the sign-in redirect, forgetting it.
pub(super) fn back_to_next(state: &AppState, headers: &HeaderMap) -> Response {
    let secure = cookies::Secure(state.settings.served_over_https());
    let (next, clear) = cookies::take_next(headers, secure);
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().append(header::SET_COOKIE, clear);
    r
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/login_totp.html")]
struct TotpPage {
    page: PageContext,
    error: String,
}

async fn totp_page(session: Session, CsrfToken(token): CsrfToken) -> Result<Response> {
    if session::pending_second_factor(&session).await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    Ok(TotpPage {
        page: PageContext::anonymous("Second step", "/login", &token),
        error: String::new(),
    }
    .into_response())
}

#[derive(Deserialize)]
struct TotpForm {
    code: String,
}

async fn totp_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    CsrfToken(token): CsrfToken,
    actor: Actor,
    CsrfForm(form): CsrfForm<TotpForm>,
) -> Result<Response> {
    let Some(user_id) = session::pending_second_factor(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    if let Some(r) = rate_limited(&state, &actor).await? {
        return Ok(r);
    }
    let outcome = login::check_second_factor(
        &state.pool,
        &state.keys.sealing,
        policy(&state),
        &actor,
        user_id,
        &form.code,
    )
    .await?;
    match outcome {
        LoginOutcome::Success(user) => {
            session::sign_in(&session, user.id, user.session_epoch).await?;
            Ok(back_to_next(&state, &headers))
        }
        _ => Ok((
            StatusCode::UNAUTHORIZED,
            TotpPage {
                page: PageContext::anonymous("Second step", "/login", &token),
                error: "That code is not valid (each code works once). Try the next code, or a recovery code.".into(),
            },
        )
            .into_response()),
    }
}

async fn logout(
    State(state): State<AppState>,
    session: Session,
    user: CurrentUser,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response> {
    state
        .audit
        .record(AuditEvent::by(&user.actor, Action::Logout).target(Target::User(user.id)))
        .await?;
    let id_token = session::oidc_id_token(&session).await?;
    session::end(&session).await?;
    // Signed in through the provider: sign out there too when it offers that.
    if let (Some(hint), Some(provider)) = (id_token, state.oidc.as_ref())
        && let Some(url) = provider.logout_url(Some(&hint)).await
    {
        return Ok(Redirect::to(url.as_str()).into_response());
    }
    Ok(Redirect::to("/login").into_response())
}
