//! Errors as `application/problem+json` (RFC 9457). The handlers return the crate's ordinary
//! `Error`, which renders as an error page; [`errors_as_problems`] turns every error response
//! of the API into a problem document, so there is one mapping from errors to statuses.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::http::error::ErrorPageInfo;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error, as RFC 9457 describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// A problem response with `status` and `detail`.
pub fn response(status: StatusCode, detail: impl Into<String>) -> Response {
    let problem = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

/// 401 with the challenge a bearer-token client expects.
pub fn unauthorized(detail: &str) -> Response {
    let mut r = response(StatusCode::UNAUTHORIZED, detail);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"daygle\""),
    );
    r
}

/// 429 with `Retry-After` in seconds.
pub fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut r = response(
        StatusCode::TOO_MANY_REQUESTS,
        format!("This token has made too many requests; try again in {retry_after_secs} s."),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Middleware: every error response of the API becomes a problem document. Error pages carry
/// their message in [`ErrorPageInfo`]; axum's own rejections (a malformed id or body) carry
/// it as plain text.
pub async fn errors_as_problems(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == CONTENT_TYPE.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let kept: Vec<_> = [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW]
        .into_iter()
        .filter_map(|h| response.headers().get(&h).map(|v| (h, v.clone())))
        .collect();
    let detail = if let Some(info) = response.extensions().get::<ErrorPageInfo>() {
        info.message.clone()
    } else if status.is_client_error() {
        let body = to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&body).trim().to_string()
    } else {
        drop(response);
        "Something went wrong on our side. The details are in the server log.".into()
    };
    let mut fresh = self::response(status, detail);
    for (name, value) in kept {
        fresh.headers_mut().insert(name, value);
    }
    fresh
}
