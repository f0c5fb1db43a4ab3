//! The JSON API under `/api/v1`. Bearer tokens only: no session cookie is read and no CSRF
//! token is asked for, so a browser session cannot call it. The token's rights become an
//! ordinary [`CurrentUser`] (the user's current permissions and grants, cut down to the
//! token), so every handler goes through the same extractors (`Require<P>`), the same domain
//! functions and the same audit rows as the web pages. Errors are `application/problem+json`.

pub mod accounts;
pub mod admin;
pub mod exports;
pub mod messages;
pub mod openapi;
pub mod problem;
pub mod reference;

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::http::extract::CurrentUser;
use super::http::guard::request_actor;
use super::http::routes::Area;
use super::http::state::AppState;
use crate::audit::{Action, AuditEvent, Target};
use crate::auth::{Grants, token_limits, tokens, users};
use crate::error::Result;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1/";

/// The areas of the API (listed in `routes::ALL` like every page).
pub fn areas() -> Vec<Area> {
    vec![
        openapi::area(),
        messages::area(),
        accounts::area(),
        exports::area(),
        admin::area(),
    ]
}

/// The API's router with its own layers: token authentication, per-token rate limit, CORS,
/// problem+json errors.
pub fn router(state: &AppState) -> Router<AppState> {
    let per_minute =
        NonZeroU32::new(state.settings.api.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
    let limiter: Arc<DefaultKeyedRateLimiter<i64>> =
        Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)));
    let mut api = Router::new();
    for area in areas() {
        api = api.merge(area.into_router());
    }
    let api = api
        .layer(middleware::from_fn_with_state(
            (state.clone(), limiter),
            authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::web::http::outage::unavailable,
        ))
        .layer(middleware::from_fn(problem::errors_as_problems));
    match cors(state) {
        Some(layer) => api.layer(layer),
        None => api,
    }
}

/// CORS for the configured origins only, never with credentials; `None` when none are set.
fn cors(state: &AppState) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = state
        .settings
        .api
        .origins()
        .unwrap_or_default()
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER, header::CONTENT_DISPOSITION])
            .allow_credentials(false),
    )
}

/// Routes anyone may read without a token.
fn is_public(path: &str) -> bool {
    path == "/api/v1/openapi.json"
}

/// The `Authorization: Bearer …` value, if any.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

type Limiter = Arc<DefaultKeyedRateLimiter<i64>>;

/// Middleware: the token becomes the request's [`CurrentUser`]; no token, a bad one or one
/// over its rate is refused here.
async fn authenticate(
    State((state, limiter)): State<(AppState, Limiter)>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.uri().path()) || req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let Some(secret) = bearer(&req).map(str::to_owned) else {
        return problem::unauthorized("This API takes a bearer token: Authorization: Bearer dga_…");
    };
    let actor = request_actor(&req, &state);
    let user = match token_user(&state, &secret, actor).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return problem::unauthorized("The token is unknown, expired or revoked.");
        }
        Err(e) => return e.into_response(),
    };
    let token_id = user.actor.api_token.unwrap_or_default();
    if let Err(not_until) = limiter.check_key(&token_id) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        // Counted for the alert; a failure to count must not turn the 429 into a 500.
        if let Err(e) = token_limits::record_refusal(&state.pool, token_id).await {
            tracing::warn!(error = %e, token = token_id, "rate-limit refusal not counted");
        }
        return problem::too_many_requests(wait.as_secs().max(1));
    }
    req.extensions_mut().insert(Arc::new(user));
    next.run(req).await
}

/// The rights of a request made with `secret`: the token's user as they are right now, cut
/// down to the token's scopes and archive restriction.
async fn token_user(
    state: &AppState,
    secret: &str,
    actor: crate::audit::Actor,
) -> Result<Option<CurrentUser>> {
    let Some(token) = tokens::authenticate(&state.pool, secret, &actor.ip).await? else {
        return Ok(None);
    };
    let Some(user) = users::find(&state.pool, token.user_id)
        .await?
        .filter(|u| u.enabled)
    else {
        return Ok(None);
    };
    let held = users::permissions(&state.pool, user.id).await?;
    let grants = Grants::load(&state.pool, user.id).await?;
    let (permissions, grants) = token.rights(&held, &grants);
    Ok(Some(CurrentUser {
        actor: crate::audit::Actor {
            user_id: Some(user.id),
            username: user.username.clone(),
            api_token: Some(token.id),
            ..actor
        },
        id: user.id,
        username: user.username,
        email: user.email,
        has_totp: user.totp_secret.is_some(),
        timezone: user.timezone,
        date_format: user.date_format,
        page_size: user.page_size,
        theme: user.theme,
        permissions,
        grants,
        csrf: String::new(),
        open_alerts: 0,
    }))
}

/// Records a read that has no audit action of its own on the web side (lists, status,
/// the audit log itself): every API read leaves a row.
pub async fn audit_read(
    state: &AppState,
    user: &CurrentUser,
    route: &MatchedPath,
    target: Target,
    details: serde_json::Value,
) -> Result<()> {
    let mut details = details;
    details["route"] = route.as_str().into();
    state
        .audit
        .record(
            // A list read (no single target) is about what the reader may reach.
            match target {
                Target::None => AuditEvent::by(&user.actor, Action::ApiRead).reach(&user.grants),
                t => AuditEvent::by(&user.actor, Action::ApiRead).target(t),
            }
            .details(details),
        )
        .await
        .map(|_| ())
}

/// 200 with a JSON body.
pub fn json<T: serde::Serialize>(value: &T) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}
