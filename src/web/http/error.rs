//! How errors look to a person: a page in the layout, and never internals for a 5xx.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::layout::PageContext;
use crate::error::Error;

/// The error page: a heading and a message inside the normal layout.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub page: PageContext,
    pub status: u16,
    pub heading: String,
    pub message: String,
}

/// Attached to error responses so the guard middleware can re-render them with the
/// signed-in user's navigation (this module has no request context).
#[derive(Debug, Clone)]
pub struct ErrorPageInfo {
    pub status: StatusCode,
    pub heading: String,
    pub message: String,
}

/// Renders an error page with `status`.
pub fn page(status: StatusCode, message: impl Into<String>) -> Response {
    let heading = status.canonical_reason().unwrap_or("Error").to_string();
    let message = message.into();
    let mut response = render(
        PageContext::new(heading.clone(), ""),
        status,
        heading.clone(),
        message.clone(),
    );
    response.extensions_mut().insert(ErrorPageInfo {
        status,
        heading,
        message,
    });
    response
}

/// Renders the error page with `status`.
pub fn render(page: PageContext, status: StatusCode, heading: String, message: String) -> Response {
    let body = ErrorPage {
        page,
        status: status.as_u16(),
        heading,
        message,
    };
    (status, body).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::NotFound => page(StatusCode::NOT_FOUND, "There is nothing at this address."),
            Error::Forbidden => page(
                StatusCode::FORBIDDEN,
                "You do not have permission to do that. Ask an administrator if you need it.",
            ),
            Error::Refused(msg) => page(StatusCode::FORBIDDEN, msg.clone()),
            Error::Invalid { .. } => page(StatusCode::UNPROCESSABLE_ENTITY, self.to_string()),
            Error::Conflict(msg) => page(StatusCode::CONFLICT, msg.clone()),
            Error::Busy => {
                let mut r = page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy. Wait a moment and try again.",
                );
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("5"));
                r
            }
            _ if self.is_database_unavailable() => {
                tracing::warn!(error = %crate::error::chain(&self), "request failed: database unavailable");
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable right now. Daygle is bringing it back; try again in a moment.",
                )
            }
            _ => {
                tracing::error!(error = %crate::error::chain(&self), "request failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. The details are in the server log.",
                )
            }
        }
    }
}

/// Fallback for unknown routes (a problem document under the API's prefix).
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with(crate::web::api::PREFIX) {
        return crate::web::api::problem::response(
            StatusCode::NOT_FOUND,
            "There is no such API route; see /api/v1/openapi.json.",
        );
    }
    Error::NotFound.into_response()
}
