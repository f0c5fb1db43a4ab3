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
    let body = response.bytes().await.map_err(failed)?;
    out.body(body.to_vec()).map_err(|e| HttpError {
        url: url.clone(),
        detail: e.to_string(),
    })
}
