//! The web UI and HTTP endpoints. The only module that knows about axum (besides `lib.rs`).
//! `http/` is the plumbing (state, routing, guard, sessions, extractors, errors, layout,
//! headers, assets, metrics, health); `pages/` holds one module per area of the UI.

pub mod api;
pub mod http;
pub mod pages;

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
use tower_sessions_sqlx_store::PostgresStore;

pub use http::state::AppState;

use http::{error, guard, headers, metrics, routes, session};

/// Every area of the UI. Add new areas here, built with [`routes::Area`], and list their
/// routes in [`routes::ALL`] (a test checks the two agree).
pub fn areas() -> Vec<routes::Area> {
    vec![
        http::health::area(),
        http::assets::area(),
        pages::auth::area(),
        pages::home::area(),
        pages::archives::area(),
        pages::logs::area(),
        pages::message_list::area(),
        pages::message_view::area(),
        pages::profile::area(),
        pages::tokens::area(),
        pages::users::area(),
        pages::invitations::area(),
        pages::password::area(),
        pages::roles::area(),
        pages::audit::area(),
        pages::accounts::area(),
        pages::workers::area(),
        pages::alerts::area(),
        pages::settings::area(),
        pages::reports::area(),
        pages::quarantine::area(),
        pages::retention::area(),
        pages::verify::area(),
        pages::deletion::area(),
    ]
}

/// (method, path) of every route the areas register, for the route-table test.
pub fn registered_routes() -> Vec<(axum::http::Method, &'static str)> {
    areas()
        .iter()
        .chain(api::areas().iter())
        .flat_map(|a| a.registered().to_vec())
        .collect()
}

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
    let store = PostgresStore::new(state.pool.clone());
    let serves_web = state.me.role.serves_web();
    let mut pages = Router::new();
    if serves_web {
        for area in areas() {
            pages = pages.merge(area.into_router());
        }
    } else {
        // A worker answers the probes and metrics only; people use a web process.
        pages = pages.merge(http::health::area().into_router());
    }
    // Pages pass the session, guard and CSRF layers; the API (bearer tokens only) does not.
    let pages = pages
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(session::layer(store, &settings))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::outage::unavailable,
        ))
        .layer(CsrfLayer::new());
    let app = if serves_web {
        api::router(&state).merge(pages)
    } else {
        pages
    };
    app.layer(
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
            )),
    )
    .with_state(state)
}
