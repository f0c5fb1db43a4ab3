//! While the database is down, every page answers 503 at once with what is going on, instead
//! of each request waiting out the pool's timeout and ending in a 500. The probes stay, so
//! `/readyz` can report the outage.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::error;
use super::guard::is_exempt;
use super::state::AppState;

/// Middleware: a 503 page with `Retry-After` while the supervisor sees the database down. The
/// page names no cause (paths, pids): anyone can see it; operators read `/readyz` and the log.
pub async fn unavailable(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let status = state.db_health.status();
    let Some(since) = status.down_since else {
        return next.run(req).await;
    };
    if is_exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let mut response = error::page(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "The database has been unavailable since {:02}:{:02}:{:02} UTC. Daygle is bringing it back and carries on by itself; no mail is lost. Try again in a moment.",
            since.hour(),
            since.minute(),
            since.second(),
        ),
    );
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("5"));
    response
}
