//! OAuth2 for mailbox sources (Gmail API, Microsoft Graph, IMAP XOAUTH2): the provider's
//! client from `[google]` / `[microsoft]`, the grants (authorization code with PKCE, refresh,
//! client credentials, JWT bearer for Google service accounts), and [`AccessTokens`], which
//! hands a sync pass a bearer token that is renewed before it expires.
//!
//! A refused grant (`invalid_grant`: consent revoked, password changed) is [`TokenError::Revoked`];
//! the source dispatch turns it into "reconnect this account" and stops syncing it, so a dead
//! token is never retried in a loop.

pub mod connect;
pub mod jwt;
pub mod store;
pub mod view;

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::config::{Settings, read_secret_file};
use crate::error::{Error, Result};
use crate::http_client::{self, HttpError};
use crate::ingest::accounts::Account;
use crate::secrets::SealingKeys;

/// Renew an access token this long before it expires, so no API call carries one that lapses
/// on the way.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Token endpoint calls give up after this.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Whose OAuth2 service an account uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Google,
    Microsoft,
}

impl Provider {
    /// The provider of an account kind (`gmail`, `graph`); None for IMAP and imports.
    pub fn of_kind(kind: &str) -> Option<Self> {
        match kind {
            "gmail" => Some(Self::Google),
            "graph" => Some(Self::Microsoft),
            _ => None,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Self::Google => "gmail",
            Self::Microsoft => "graph",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Microsoft => "Microsoft 365",
        }
    }

    /// Scopes a person grants in the browser: read-only mail access and a refresh token.
    pub fn delegated_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Google => &[GMAIL_READONLY],
            // User.Read: who connected (the mailbox address), nothing else.
            Self::Microsoft => &[
                "offline_access",
                "https://graph.microsoft.com/Mail.Read",
                "https://graph.microsoft.com/User.Read",
            ],
        }
    }

    /// The scope of the instance's own (app-only) tokens.
    pub fn app_scope(self) -> &'static str {
        match self {
            Self::Google => GMAIL_READONLY,
            Self::Microsoft => "https://graph.microsoft.com/.default",
        }
    }
}

pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";

/// Why a token could not be had, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the grant: consent revoked, password changed, token expired.
    #[error("{provider} refused the stored authorisation ({detail}): reconnect this account")]
    Revoked {
        provider: &'static str,
        detail: String,
    },
    /// Any other OAuth error answer (wrong client id or secret, app not allowed, ...).
    #[error("{provider}'s token endpoint refused the request: {code}{detail}")]
    Refused {
        provider: &'static str,
        code: String,
        detail: String,
    },
    #[error("{provider}'s token endpoint answered something that is not a token: {detail}")]
    Malformed {
        provider: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Http(#[from] HttpError),
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Error::part(e)
    }
}

impl TokenError {
    pub fn is_revoked(e: &Error) -> bool {
        matches!(e.part_ref::<TokenError>(), Some(TokenError::Revoked { .. }))
    }
}

/// An access token and when it stops working; a refresh token when the grant issued one.
pub struct Grant {
    pub access: Zeroizing<String>,
    pub expires_at: OffsetDateTime,
    pub refresh: Option<Zeroizing<String>>,
}

impl Grant {
    fn fresh(&self) -> bool {
        OffsetDateTime::now_utc() + REFRESH_MARGIN < self.expires_at
    }
}

fn expiry(expires_in: Option<Duration>) -> OffsetDateTime {
    // Without expires_in, assume the common hour and renew early like any other.
    let secs = expires_in.map_or(3600, |d| d.as_secs());
    OffsetDateTime::now_utc() + time::Duration::seconds(i64::try_from(secs).unwrap_or(3600))
}

/// A provider's OAuth2 client, from the settings.
pub struct OAuthClient {
    pub provider: Provider,
    client_id: String,
    secret: Option<Zeroizing<String>>,
    pub auth_url: String,
    pub token_url: String,
    http: reqwest::Client,
}

type Configured = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

impl OAuthClient {
    /// The client for browser connections and refreshes: needs `client_id`; the secret is read
    /// from `client_secret_file` when set.
    pub fn from_settings(settings: &Settings, provider: Provider) -> Result<Self> {
        let (id, secret_file, secret_key, auth, token) = match provider {
            Provider::Google => (
                &settings.google.client_id,
                &settings.google.client_secret_file,
                "google.client_secret_file",
                settings.google.auth_url.clone(),
                settings.google.token_url.clone(),
            ),
            Provider::Microsoft => (
                &settings.microsoft.client_id,
                &settings.microsoft.client_secret_file,
                "microsoft.client_secret_file",
                settings.microsoft.auth_endpoint(),
                settings.microsoft.token_endpoint(),
            ),
        };
        let secret = if secret_file.trim().is_empty() {
            None
        } else {
            Some(read_secret_file(secret_key, secret_file)?)
        };
        Ok(Self {
            provider,
            client_id: id.trim().to_string(),
            secret,
            auth_url: auth.trim().to_string(),
            token_url: token.trim().to_string(),
            http: http_client::client(TOKEN_TIMEOUT)?,
        })
    }

    /// Whether `client_id` is set (connecting in the browser needs it).
    pub fn has_client_id(&self) -> bool {
        !self.client_id.is_empty()
    }

    fn require_client_id(&self) -> Result<()> {
        if self.client_id.is_empty() {
            let key = match self.provider {
                Provider::Google => "google.client_id",
                Provider::Microsoft => "microsoft.client_id",
            };
            return Err(Error::invalid(
                key,
                "is not set: register the app (README) and set its client id",
            ));
        }
        Ok(())
    }

    fn basic(&self) -> Result<Configured> {
        self.require_client_id()?;
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(
                AuthUrl::new(self.auth_url.clone())
                    .map_err(|e| Error::invalid("auth_url", e.to_string()))?,
            )
            .set_token_uri(
                TokenUrl::new(self.token_url.clone())
                    .map_err(|e| Error::invalid("token_url", e.to_string()))?,
            );
        if let Some(secret) = &self.secret {
            client = client.set_client_secret(ClientSecret::new(secret.to_string()));
        }
        Ok(client)
    }

    /// Where to send the browser: the provider's consent page with a fresh `state` and a PKCE
    /// (S256) challenge. Returns the URL, the state and the verifier to keep for the callback.
    pub fn authorize_url(&self, redirect: &str) -> Result<(String, String, Zeroizing<String>)> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.basic()?.set_redirect_uri(
            RedirectUrl::new(redirect.to_string())
                .map_err(|e| Error::invalid("redirect", e.to_string()))?,
        );
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        for scope in self.provider.delegated_scopes() {
            request = request.add_scope(Scope::new((*scope).to_string()));
        }
        if self.provider == Provider::Google {
            // A refresh token is only issued with offline access, and again only on consent.
            request = request
                .add_extra_param("access_type", "offline")
                .add_extra_param("prompt", "consent");
        }
        let (url, state) = request.url();
        Ok((
            url.to_string(),
            state.secret().clone(),
            Zeroizing::new(verifier.secret().clone()),
        ))
    }

    /// Redeems the authorization code the provider sent back, proving the PKCE verifier.
    pub async fn exchange_code(&self, redirect: &str, code: &str, verifier: &str) -> Result<Grant> {
        let client = self.basic()?.set_redirect_uri(
            RedirectUrl::new(redirect.to_string())
                .map_err(|e| Error::invalid("redirect", e.to_string()))?,
        );
        let http = |req| http_client::send(self.http.clone(), req);
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&http)
            .await;
        self.grant(answer)
    }

    /// A new access token for a stored refresh token.
    pub async fn refresh(&self, refresh: &str) -> Result<Grant> {
        let client = self.basic()?;
        let http = |req| http_client::send(self.http.clone(), req);
        let token = RefreshToken::new(refresh.to_string());
        let answer = client
            .exchange_refresh_token(&token)
            .request_async(&http)
            .await;
        self.grant(answer)
    }

    /// An app-only token (Microsoft client credentials).
    pub async fn client_credentials(&self) -> Result<Grant> {
        let client = self.basic()?;
        let http = |req| http_client::send(self.http.clone(), req);
        let answer = client
            .exchange_client_credentials()
            .add_scope(Scope::new(self.provider.app_scope().to_string()))
            .request_async(&http)
            .await;
        self.grant(answer)
    }

    fn grant<RE: std::error::Error + 'static>(
        &self,
        answer: std::result::Result<
            oauth2::basic::BasicTokenResponse,
            RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
        >,
    ) -> Result<Grant> {
        let provider = self.provider.label();
        match answer {
            Ok(t) => Ok(Grant {
                access: Zeroizing::new(t.access_token().secret().clone()),
                expires_at: expiry(t.expires_in()),
                refresh: t
                    .refresh_token()
                    .map(|r| Zeroizing::new(r.secret().clone())),
            }),
            Err(RequestTokenError::ServerResponse(e)) => {
                let detail = e
                    .error_description()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                Err(match e.error() {
                    BasicErrorResponseType::InvalidGrant => TokenError::Revoked {
                        provider,
                        detail: format!("invalid_grant{detail}"),
                    },
                    other => TokenError::Refused {
                        provider,
                        code: other.as_ref().to_string(),
                        detail,
                    },
                }
                .into())
            }
            Err(RequestTokenError::Request(e)) => Err(TokenError::Http(HttpError {
                url: self.token_url.clone(),
                detail: e.to_string(),
            })
            .into()),
            Err(RequestTokenError::Parse(e, _)) => Err(TokenError::Malformed {
                provider,
                detail: e.to_string(),
            }
            .into()),
            Err(RequestTokenError::Other(e)) => Err(TokenError::Malformed {
                provider,
                detail: e,
            }
            .into()),
        }
    }

    /// A token for a service account's signed assertion (JWT bearer grant, RFC 7523).
    pub async fn jwt_bearer(&self, assertion: String) -> Result<Grant> {
        self.post_form(vec![
            ("grant_type", jwt::JWT_BEARER.to_string()),
            ("assertion", assertion),
        ])
        .await
    }

    /// Sends a form to the token endpoint outside the `oauth2` crate's grants (the JWT bearer
    /// grant) and reads the answer the same way.
    async fn post_form(&self, form: Vec<(&'static str, String)>) -> Result<Grant> {
        let provider = self.provider.label();
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                TokenError::Http(HttpError {
                    url: self.token_url.clone(),
                    detail: e.to_string(),
                })
            })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| TokenError::Malformed {
            provider,
            detail: format!("HTTP {status}: {e}"),
        })?;
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if let Some(access) = text("access_token").filter(|_| status.is_success()) {
            return Ok(Grant {
                access: Zeroizing::new(access),
                expires_at: expiry(
                    body.get("expires_in")
                        .and_then(serde_json::Value::as_u64)
                        .map(Duration::from_secs),
                ),
                refresh: None,
            });
        }
        let code = text("error").unwrap_or_else(|| format!("HTTP {status}"));
        let detail = text("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        Err(TokenError::Refused {
            provider,
            code,
            detail,
        }
        .into())
    }
}

/// How an account gets its tokens.
enum How {
    /// A person connected it: the stored refresh token.
    Refresh(Zeroizing<String>),
    /// Google service account impersonating the mailbox (domain-wide delegation).
    ServiceAccount {
        key: Box<jwt::ServiceAccountKey>,
        subject: String,
    },
    /// Microsoft client credentials (application permission).
    ClientCredentials,
}

/// Bearer tokens for one account during a sync pass, renewed [`REFRESH_MARGIN`] before they
/// expire. A rotated refresh token is stored (sealed) as soon as it arrives.
pub struct AccessTokens {
    client: OAuthClient,
    how: How,
    account_id: i64,
    pool: sqlx::PgPool,
    keys: SealingKeys,
    current: Option<Grant>,
}

impl AccessTokens {
    /// The token source of a `gmail` or `graph` account.
    pub fn for_account(
        pool: &sqlx::PgPool,
        settings: &Settings,
        keys: &SealingKeys,
        account: &Account,
    ) -> Result<Self> {
        let provider = Provider::of_kind(&account.kind).ok_or_else(|| {
            Error::invalid(
                "kind",
                format!("account {} does not use OAuth2", account.name),
            )
        })?;
        let client = OAuthClient::from_settings(settings, provider)?;
        let how = match account.oauth_mode.as_deref() {
            Some("delegated") => How::Refresh(store::refresh_token(keys, account, &client)?),
            Some("app") => match provider {
                Provider::Google => How::ServiceAccount {
                    key: Box::new(jwt::ServiceAccountKey::from_settings(settings)?),
                    subject: account.mailbox.clone().unwrap_or_default(),
                },
                Provider::Microsoft => How::ClientCredentials,
            },
            _ => {
                return Err(Error::invalid(
                    "account",
                    format!(
                        "account {} is not connected yet: connect it on its page",
                        account.name
                    ),
                ));
            }
        };
        Ok(Self {
            client,
            how,
            account_id: account.id,
            pool: pool.clone(),
            keys: keys.clone(),
            current: None,
        })
    }

    pub fn provider(&self) -> Provider {
        self.client.provider
    }

    /// A bearer token valid for at least [`REFRESH_MARGIN`].
    pub async fn bearer(&mut self) -> Result<Zeroizing<String>> {
        if let Some(g) = &self.current
            && g.fresh()
        {
            return Ok(g.access.clone());
        }
        let grant = self.new_grant().await?;
        let rotated = match (&self.how, &grant.refresh) {
            (How::Refresh(old), Some(new)) if old.as_str() != new.as_str() => Some(new.clone()),
            _ => None,
        };
        if let Some(new) = rotated {
            // Microsoft rotates refresh tokens: the new one replaces the stored one now, so a
            // crash later in the pass does not leave only a spent token behind.
            store::save_rotated(
                &self.pool,
                &self.keys,
                self.account_id,
                &self.client,
                new.as_str(),
            )
            .await?;
            self.how = How::Refresh(new);
        }
        store::note_expiry(&self.pool, self.account_id, grant.expires_at).await?;
        let access = grant.access.clone();
        self.current = Some(grant);
        Ok(access)
    }

    async fn new_grant(&self) -> Result<Grant> {
        match &self.how {
            How::Refresh(token) => self.client.refresh(token).await,
            How::ServiceAccount { key, subject } => {
                let assertion = key.assertion(
                    self.client.provider.app_scope(),
                    &self.client.token_url,
                    subject,
                )?;
                self.client.jwt_bearer(assertion).await
            }
            How::ClientCredentials => self.client.client_credentials().await,
        }
    }

    /// Forgets the current token (the API answered 401): the next [`Self::bearer`] gets a new one.
    pub fn invalidate(&mut self) {
        self.current = None;
    }
}

/// Gets one app-only token for `mailbox` with the instance's credentials, so an operator adding
/// mailboxes learns at once when the key, secret, tenant or delegation is wrong.
pub async fn check_app_credentials(
    settings: &Settings,
    kind: &str,
    mailbox: Option<&str>,
) -> Result<()> {
    let provider =
        Provider::of_kind(kind).ok_or_else(|| Error::invalid("kind", "must be gmail or graph"))?;
    let client = OAuthClient::from_settings(settings, provider)?;
    match provider {
        Provider::Google => {
            let key = jwt::ServiceAccountKey::from_settings(settings)?;
            let assertion = key.assertion(
                provider.app_scope(),
                &client.token_url,
                mailbox.unwrap_or_default(),
            )?;
            client.jwt_bearer(assertion).await?;
        }
        Provider::Microsoft => {
            client.client_credentials().await?;
        }
    }
    Ok(())
}
