//! The web UI and HTTP endpoints. The only module that knows about axum (besides `lib.rs`).

pub mod assets;
pub mod error;
pub mod headers;
pub mod health;
pub mod home;
pub mod layout;
pub mod metrics;
pub mod state;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::csrf::CsrfLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: every area's routes plus the layers every request passes.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let request_id = req
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The path only: query strings can hold search terms, which are the user's business.
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
    });
    Router::new()
        .merge(home::router())
        .merge(health::router())
        .merge(assets::router())
        .fallback(error::not_found)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| {
                    error::page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong on our side. The details are in the server log.",
                    )
                }))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    headers::apply,
                ))
                .layer(middleware::from_fn(metrics::track))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(settings.server.request_timeout_secs),
                ))
                .layer(RequestBodyLimitLayer::new(
                    settings.server.max_request_bytes,
                ))
                .layer(CsrfLayer::new()),
        )
        .with_state(state)
}
