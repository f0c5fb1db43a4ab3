//! The one outbound HTTP client for identity and mail providers (OIDC sign-in, Gmail and
//! Microsoft Graph OAuth2): reqwest 0.13 over rustls with the ring provider, and the adapter
//! that makes it the `AsyncHttpClient` the `oauth2` and `openidconnect` crates call.
//!
//! Redirects are never followed: a token or discovery endpoint answering with a redirect must
//! not carry a client secret, an authorization code or a refresh token to another host (the
//! crates' own advice, and an SSRF guard). Responses are capped, so a hostile or broken
//! provider cannot make us buffer gigabytes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;

/// Largest response body accepted from a provider (discovery documents and JWKS are a few KB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// What can go wrong talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP request to the provider failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("the provider's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("could not build the provider's answer: {0}")]
    Response(#[from] oauth2::http::Error),
}

/// A reqwest client that never follows redirects; cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient(reqwest::Client);

impl HttpClient {
    /// Connect and whole-request timeouts as given; redirects off.
    pub fn new(timeout: Duration) -> Result<Self, HttpError> {
        // reqwest is built without a TLS provider; `main` installs ring first thing. A library
        // user (the tests) may not have: install it here too (a no-op when already there).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("daygle/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self(client))
    }

    /// The underlying client, for plain API calls (Gmail, Graph).
    pub fn inner(&self) -> &reqwest::Client {
        &self.0
    }

    /// Sends an `oauth2`/`openidconnect` request and reads the answer (at most
    /// [`MAX_RESPONSE_BYTES`]).
    pub async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let response = self.0.execute(request).await?;
        let mut answer = oauth2::http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            headers.extend(response.headers().clone());
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(answer.body(body)?)
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
