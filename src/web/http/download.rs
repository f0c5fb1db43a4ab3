//! Responses that hand a file to the browser: always a download, never active content.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::render::html::percent_encode;

/// `Content-Disposition: attachment` with an ASCII fallback name and the full name in
/// `filename*` (RFC 6266 / RFC 5987), so any name is safe to send and keeps its characters.
pub fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        percent_encode(filename)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A download with a neutral content type: browsers save it, they do not render or run it.
pub fn attachment(filename: &str, content_type: &'static str, body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, content_disposition(filename)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
        ],
        body.into(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_and_quote_names_are_safe() {
        let v = content_disposition("Résumé \"final\".pdf");
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with("attachment; filename=\"R_sum_ _final_.pdf\""),
            "{v}"
        );
        assert!(
            v.contains("filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"),
            "{v}"
        );
    }
}
