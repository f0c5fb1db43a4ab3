//! Security headers on every response. A handler that needs a different policy (e.g. the
//! sandboxed message body) sets its own header first; these fill in only what is missing.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::state::AppState;

/// No inline script or style anywhere: every asset comes from /static.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; \
base-uri 'none'; object-src 'none'";

const PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()";
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Middleware: adds the security headers to every response.
pub async fn apply(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Pages show mail and people's details: never kept in a browser or proxy cache. Assets
    // and downloads set their own policy first.
    set(header::CACHE_CONTROL, "no-store");
    set(header::X_FRAME_OPTIONS, "DENY");
    // same-origin keeps the Origin header on our own form posts (CSRF checks need it).
    set(header::REFERRER_POLICY, "same-origin");
    set(
        HeaderName::from_static("permissions-policy"),
        PERMISSIONS_POLICY,
    );
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if state.settings.served_over_https() {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}
