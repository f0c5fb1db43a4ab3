//! "Sign in with …": the two legs of an OIDC sign-in. `start` sends the browser to the
//! provider (with a fresh cookie binding the flow to this browser), `callback` takes the
//! provider's answer. Parse → `auth::oidc` → session; every refusal is audited by the domain.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::{LoginPage, back_to_next, rate_limited};
use crate::audit::Actor;
use crate::auth::csrf;
use crate::auth::oidc::signin::{self, Outcome};
use crate::error::{Error, Result};
use crate::web::http::cookies::{self, Secure};
use crate::web::http::extract::CsrfToken;
use crate::web::http::session;
use crate::web::http::state::AppState;

/// The cookie binding a sign-in in flight to the browser that started it.
const FLOW_COOKIE: &str = "daygle_oidc";

fn secure(state: &AppState) -> Secure {
    Secure(state.settings.served_over_https())
}

/// The login page again, with why the provider's sign-in did not work.
fn refused(state: &AppState, token: &str, reason: &str) -> Response {
    let name = &state.settings.oidc.display_name;
    (
        StatusCode::UNAUTHORIZED,
        LoginPage::new(state, token, false).with_error(
            String::new(),
            format!("Sign-in with {name} did not work: {reason}."),
        ),
    )
        .into_response()
}

/// GET /login/oidc: off to the provider. A link, not a form: the CSP's form-action 'self'
/// forbids a form's redirect to another origin. Starting a sign-in changes nothing here but a
/// row bound to this browser, so it needs no CSRF token.
pub async fn start(
    State(state): State<AppState>,
    CsrfToken(token): CsrfToken,
    actor: Actor,
) -> Result<Response> {
    let Some(provider) = state.oidc.clone() else {
        return Err(Error::NotFound);
    };
    if let Some(r) = rate_limited(&state, &actor).await? {
        return Ok(r);
    }
    let browser = csrf::new_token();
    match provider.begin(&state.pool, &browser).await? {
        Ok(url) => {
            let minutes = i64::from(crate::auth::oidc::provider::FLOW_MINUTES);
            let mut r = Redirect::to(url.as_str()).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(FLOW_COOKIE, &browser, Some(minutes * 60), secure(&state)),
            );
            Ok(r)
        }
        Err(refusal) => {
            signin::refuse(&state.pool, &actor, &refusal.0).await?;
            Ok(refused(&state, &token, &refusal.0))
        }
    }
}

/// What the provider sends back: a code and our state, or an error.
#[derive(Deserialize)]
pub struct Answer {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// GET /login/oidc/callback: validate, sign in, back to the page asked for. Not counted
/// against the sign-in rate limit when it finishes a sign-in that `start` counted.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    CsrfToken(token): CsrfToken,
    actor: Actor,
    Query(answer): Query<Answer>,
) -> Result<Response> {
    let Some(provider) = state.oidc.clone() else {
        return Err(Error::NotFound);
    };
    let browser = cookies::read(&headers, FLOW_COOKIE);
    let clear = cookies::set(FLOW_COOKIE, "", Some(0), secure(&state));
    let with_clear = |mut r: Response| {
        r.headers_mut().append(header::SET_COOKIE, clear.clone());
        r
    };
    let finished = if answer.error.is_empty() {
        provider
            .finish(&state.pool, browser.as_deref(), &answer.state, &answer.code)
            .await?
    } else {
        // The provider said no (the person cancelled, or is not allowed): our state is spent
        // all the same. An error answer for a state we never issued is a forged one.
        match provider
            .finish(&state.pool, None, &answer.state, "")
            .await?
        {
            Err(refusal) if refusal.is_unknown_state() => Err(refusal),
            _ => {
                let text: String = format!("{} {}", answer.error, answer.error_description)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                Err(crate::auth::oidc::Refusal(format!(
                    "the provider answered with an error: {}",
                    text.trim()
                )))
            }
        }
    };
    let identity = match finished {
        Ok(identity) => identity,
        Err(refusal) => {
            // A sign-in counts once against the per-address limit, at its start; an answer
            // that finishes none started here (forged or replayed) counts on its own.
            if refusal.is_unknown_state()
                && let Some(r) = rate_limited(&state, &actor).await?
            {
                return Ok(with_clear(r));
            }
            signin::refuse(&state.pool, &actor, &refusal.0).await?;
            return Ok(with_clear(refused(&state, &token, &refusal.0)));
        }
    };
    let live = state.live.get();
    match signin::sign_in(&state.pool, &live.oidc, &actor, &identity).await? {
        Outcome::SignedIn(user) => {
            session::sign_in(&session, user.id, user.session_epoch).await?;
            session::set_oidc_id_token(&session, &identity.id_token).await?;
            Ok(with_clear(back_to_next(&state, &headers)))
        }
        Outcome::Refused(reason) => Ok(with_clear(refused(&state, &token, &reason))),
    }
}
