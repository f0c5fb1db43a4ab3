//! Outgoing HTTPS: one reqwest 0.13 stack (rustls with ring) for the Gmail and Microsoft Graph
//! APIs and for token endpoints, and the adapter that lets `oauth2` / `openidconnect` (built
//! without their own reqwest 0.12) send through it.
//!
//! Redirects are never followed: a token request carries the client secret and an API call a
//! bearer token, and neither may follow a changed endpoint to another host.

use std::time::Duration;

/// Why an HTTP exchange failed (connection, TLS, timeout, or a body that could not be read).
#[derive(Debug, thiserror::Error)]
#[error("HTTP request to {url} failed: {detail}")]
pub struct HttpError {
    pub url: String,
    pub detail: String,
}

impl From<HttpError> for crate::error::Error {
    fn from(e: HttpError) -> Self {
        crate::error::Error::part(e)
    }
}

/// The most an OAuth / OpenID endpoint (discovery, JWKS, token) may answer with. Real ones
/// answer with a few kilobytes; a provider that sends more is refused rather than read into
/// memory without end.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A client that follows no redirects and gives up after `timeout`.
pub fn client(timeout: Duration) -> crate::error::Result<reqwest::Client> {
    // reqwest is built without a crypto provider; `main` installs ring, and so does this for
    // library users (tests). A second install is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(30)))
        .user_agent(concat!("daygle/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| crate::error::Error::context("build the HTTP client", e))
}

/// Sends an `oauth2` request through `client`:
/// `.request_async(&|req| http_client::send(client.clone(), req))`. The client is taken by
/// value (a cheap handle): a future borrowing it would not be `Send` for every lifetime a
/// spawned task asks for.
pub async fn send(
    client: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let url = request.uri().to_string();
    let failed = |e: reqwest::Error| HttpError {
        url: url.clone(),
        detail: e.to_string(),
    };
    let request = reqwest::Request::try_from(request).map_err(failed)?;
    let response = client.execute(request).await.map_err(failed)?;
    let mut out = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        out = out.header(name, value);
    }
    let body = read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|detail| HttpError {
            url: url.clone(),
            detail,
        })?;
    out.body(body).map_err(|e| HttpError {
        url: url.clone(),
        detail: e.to_string(),
    })
}

/// The body of `response`, refused as soon as it is longer than `cap` bytes (by its
/// `Content-Length` or while it streams in).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let too_large = || {
        format!(
            "the response is larger than {} KiB, more than any OAuth or OpenID endpoint sends; \
             it was not read",
            cap / 1024
        )
    };
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
