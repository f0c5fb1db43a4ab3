//! `/profile`: the signed-in user's own password, e-mail, display preferences, sessions and
//! TOTP second factor.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::auth::users::Preferences;
use crate::auth::{manage, profile, totp};
use crate::error::{Error, Result};
use crate::web::http::error;
use crate::web::http::extract::{CsrfForm, CurrentUser, NoFields};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::session;
use crate::web::http::state::AppState;

/// The routes of the user's own profile: password, e-mail, preferences, two-factor.
pub fn area() -> Area {
    Area::new()
        .get("/profile", show)
        .post("/profile/password", change_password)
        .post("/profile/email", change_email)
        .post("/profile/preferences", change_preferences)
        .post("/profile/sessions/end", end_other_sessions)
        .get("/profile/totp", totp_enrol_page)
        .post("/profile/totp", totp_confirm)
        .post("/profile/totp/remove", totp_remove)
        .post("/profile/totp/recovery", recovery_regenerate)
}

#[derive(Template, WebTemplate)]
#[template(path = "profile/show.html")]
struct ProfilePage {
    page: PageContext,
    user: CurrentUser,
    notice: String,
    error: String,
    min_length: usize,
    recovery_left: i64,
    /// The user's old-style recovery codes were retired on upgrade: ask for new ones.
    recovery_retired: bool,
    now_example: String,
    themes: [&'static str; 3],
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    done: String,
}

fn notice_text(key: &str) -> &'static str {
    match key {
        "password" => "Password changed. Your other sessions have ended.",
        "email" => "E-mail address saved.",
        "preferences" => "Preferences saved.",
        "sessions" => "Your other sessions have ended.",
        "totp_removed" => "Two-factor sign-in removed.",
        _ => "",
    }
}

async fn render(
    state: &AppState,
    user: CurrentUser,
    notice: &str,
    error: String,
) -> Result<Response> {
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ProfilePage {
        page: PageContext::for_user("Your profile", "/profile", &user),
        recovery_left: totp::unused_recovery_codes(&state.pool, user.id).await?,
        recovery_retired: totp::recovery_codes_retired(&state.pool, user.id).await?,
        now_example: user.format_time(time::OffsetDateTime::now_utc()),
        user,
        notice: notice.to_string(),
        error,
        min_length: state.settings.security.min_password_length,
        themes: ["auto", "light", "dark"],
    };
    Ok((status, page).into_response())
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(n): Query<Notice>,
) -> Result<Response> {
    render(&state, user, notice_text(&n.done), String::new()).await
}

/// Form errors are shown on the profile page itself, everything else as an error page.
async fn or_form_error(
    state: &AppState,
    user: CurrentUser,
    result: Result<Response>,
) -> Result<Response> {
    match result {
        Err(e @ Error::Invalid { .. }) => render(state, user, "", e.to_string()).await,
        other => other,
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// 429 when this user has used up this minute's current-password checks.
fn password_check_limited(state: &AppState, user: &CurrentUser) -> Option<Response> {
    if state.password_limiter.check_key(&user.id).is_ok() {
        return None;
    }
    let mut r = error::page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many password checks. Wait a minute and try again.",
    );
    r.headers_mut()
        .insert("retry-after", axum::http::HeaderValue::from_static("60"));
    Some(r)
}

async fn change_password(
    State(state): State<AppState>,
    session: Session,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response> {
    if let Some(r) = password_check_limited(&state, &user) {
        return Ok(r);
    }
    let result = async {
        if form.new_password != form.new_password_confirm {
            return Err(Error::invalid(
                "new_password_confirm",
                "does not match the new password",
            ));
        }
        let min = state.settings.security.min_password_length;
        let epoch = manage::change_own_password(
            &state.pool,
            &user.actor,
            user.id,
            &form.current_password,
            &form.new_password,
            min,
        )
        .await?;
        // The epoch moved, which ends every session; this one carries on with the new value.
        session::set_epoch(&session, epoch).await?;
        Ok(Redirect::to("/profile?done=password").into_response())
    }
    .await;
    or_form_error(&state, user, result).await
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    email: String,
}

async fn change_email(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> Result<Response> {
    let result = profile::change_email(&state.pool, &user.actor, user.id, &form.email)
        .await
        .map(|()| Redirect::to("/profile?done=email").into_response());
    or_form_error(&state, user, result).await
}

#[derive(Deserialize)]
struct PreferencesForm {
    timezone: String,
    date_format: String,
    page_size: i32,
    theme: String,
}

async fn change_preferences(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<PreferencesForm>,
) -> Result<Response> {
    let result = async {
        let prefs = Preferences {
            timezone: form.timezone.trim().to_string(),
            date_format: form.date_format.clone(),
            page_size: form.page_size,
            theme: form.theme.clone(),
        };
        profile::change_preferences(&state.pool, &user.actor, user.id, &prefs).await?;
        Ok(Redirect::to("/profile?done=preferences").into_response())
    }
    .await;
    or_form_error(&state, user, result).await
}

async fn end_other_sessions(
    State(state): State<AppState>,
    session: Session,
    user: CurrentUser,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response> {
    let epoch = profile::end_sessions(&state.pool, &user.actor, user.id).await?;
    session::set_epoch(&session, epoch).await?;
    Ok(Redirect::to("/profile?done=sessions").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "profile/totp.html")]
struct TotpPage {
    page: PageContext,
    secret: String,
    otpauth: String,
    qr_svg: String,
    error: String,
    recovery_codes: Vec<String>,
}

async fn totp_enrol_page(
    State(_state): State<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<Response> {
    if user.has_totp {
        return Ok(Redirect::to("/profile").into_response());
    }
    let secret = match session::enrolment_secret(&session).await? {
        Some(s) => s,
        None => {
            let s = totp::new_secret();
            session::set_enrolment_secret(&session, &s).await?;
            s
        }
    };
    enrol_page(&user, secret, String::new(), StatusCode::OK)
}

fn enrol_page(
    user: &CurrentUser,
    secret: String,
    error: String,
    status: StatusCode,
) -> Result<Response> {
    let otpauth = totp::otpauth_url(&totp::build(&secret, &user.username)?)?;
    let qr_svg = totp::qr_svg(&otpauth)?;
    Ok((
        status,
        TotpPage {
            page: PageContext::for_user("Two-factor sign-in", "/profile", user),
            secret,
            otpauth,
            qr_svg,
            error,
            recovery_codes: Vec::new(),
        },
    )
        .into_response())
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    password: String,
}

async fn totp_confirm(
    State(state): State<AppState>,
    session: Session,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response> {
    let Some(secret) = session::enrolment_secret(&session).await? else {
        return Ok(Redirect::to("/profile/totp").into_response());
    };
    if let Some(r) = password_check_limited(&state, &user) {
        return Ok(r);
    }
    let Some(step) = totp::matching_step(&secret, &user.username, &form.code)? else {
        return enrol_page(
            &user,
            secret,
            "That code does not match. Check the time on your phone and try the next code.".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let codes = match profile::enable_totp(
        &state.pool,
        &state.keys.sealing,
        &user.actor,
        user.id,
        &form.password,
        &secret,
        step,
    )
    .await
    {
        Err(Error::Invalid { reason, .. }) => {
            return enrol_page(
                &user,
                secret,
                format!("The password {reason}."),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        other => other?,
    };
    session::clear_enrolment_secret(&session).await?;
    Ok(codes_page(&user, codes))
}

/// The page that shows fresh recovery codes, once.
fn codes_page(user: &CurrentUser, codes: Vec<String>) -> Response {
    TotpPage {
        page: PageContext::for_user("Two-factor sign-in", "/profile", user),
        secret: String::new(),
        otpauth: String::new(),
        qr_svg: String::new(),
        error: String::new(),
        recovery_codes: codes,
    }
    .into_response()
}

#[derive(Deserialize)]
struct RemoveForm {
    password: String,
}

async fn totp_remove(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Result<Response> {
    if let Some(r) = password_check_limited(&state, &user) {
        return Ok(r);
    }
    let result = profile::remove_totp(&state.pool, &user.actor, user.id, &form.password)
        .await
        .map(|()| Redirect::to("/profile?done=totp_removed").into_response());
    or_form_error(&state, user, result).await
}

async fn recovery_regenerate(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Result<Response> {
    if let Some(r) = password_check_limited(&state, &user) {
        return Ok(r);
    }
    let result =
        profile::regenerate_recovery_codes(&state.pool, &user.actor, user.id, &form.password)
            .await
            .map(|codes| codes_page(&user, codes));
    or_form_error(&state, user, result).await
}
