//! The relying-party side of OpenID Connect: discovery, the authorization-code flow with PKCE,
//! `state` and `nonce`, and ID-token validation — all through the `openidconnect` crate, over
//! `http_client` (redirects never followed).
//!
//! A sign-in in flight is a row of `oidc_logins`, keyed by the SHA-256 of its `state` and bound
//! to the browser that started it (the SHA-256 of a random cookie). The row is deleted the
//! moment the provider comes back, so a `state` works once; one from another browser, an
//! unknown one or one older than ten minutes is refused.
//!
//! Keys: the JWKS is read with the discovery document and kept. When an ID token's signature
//! does not verify (typically a key the provider rotated in since), the JWKS is read again once
//! for that sign-in and the check repeated; sign-ins are rate-limited per address, which bounds
//! how often that can happen. The discovery document is read again after an hour.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, JwsSigningAlgorithm, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl, Scope,
    TokenResponse,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::http_client;

/// How long a sign-in may take between leaving for the provider and coming back.
pub const FLOW_MINUTES: i32 = 10;
/// How long a discovery document is used before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Who the provider says signed in, from a validated ID token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    /// The configured username claim, when present.
    pub username: Option<String>,
    pub email: Option<String>,
    /// The provider's `email_verified` (true or "true"); false when absent.
    pub email_verified: bool,
    /// The configured groups claim: a list of strings (a single string counts as one group).
    pub groups: Vec<String>,
    /// The ID token itself, kept in the session as `id_token_hint` for the provider's logout.
    pub id_token: String,
}

/// Why a sign-in through the provider was refused; the text goes to the audit log and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The refusal of an answer whose `state` no sign-in started here (or one already used).
const UNKNOWN_STATE: &str = "unknown or already used state (a replayed or forged answer)";

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// True when the answer finished no sign-in started here: such a callback counts against
    /// the sign-in rate limit, while one finishing a started sign-in does not count again.
    pub fn is_unknown_state(&self) -> bool {
        self.0 == UNKNOWN_STATE
    }
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    at: Instant,
}

/// The configured provider. Discovery happens at first use, so a provider that is down when
/// the server starts does not stop the archive from starting.
pub struct Provider {
    http: reqwest::Client,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    scopes: Vec<String>,
    skew: chrono::TimeDelta,
    claims: ClaimNames,
    /// Where the provider sends people after signing them out.
    after_logout: String,
    discovered: Mutex<Option<Arc<Discovered>>>,
}

/// The callback path the provider sends people back to (register `public_url` + this).
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Provider {
    /// The provider of `[oidc]`, or None when OIDC is off. `public_url` is where people reach
    /// us (the callback and the after-logout page live under it).
    pub fn from_settings(settings: &Settings, public_url: &str) -> Result<Option<Self>> {
        let o = &settings.oidc;
        if !o.enabled {
            return Ok(None);
        }
        let issuer = IssuerUrl::new(o.issuer_url.trim().to_string())
            .map_err(|e| Error::invalid("oidc.issuer_url", e.to_string()))?;
        let redirect = RedirectUrl::new(format!("{public_url}{CALLBACK_PATH}"))
            .map_err(|e| Error::invalid("server.public_url", e.to_string()))?;
        let http = http_client::client(Duration::from_secs(15))?;
        Ok(Some(Self {
            http,
            issuer,
            client_id: ClientId::new(o.client_id.trim().to_string()),
            client_secret: ClientSecret::new(o.client_secret.expose().to_string()),
            redirect,
            scopes: o.scope_list(),
            skew: chrono::TimeDelta::seconds(o.clock_skew_secs.into()),
            after_logout: format!("{public_url}/login"),
            claims: ClaimNames {
                username: o.username_claim.trim().to_string(),
                email: o.email_claim.trim().to_string(),
                groups: o.groups_claim.trim().to_string(),
            },
            discovered: Mutex::new(None),
        }))
    }

    /// The HTTP client as `oauth2`/`openidconnect` take it.
    fn send(
        &self,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<oauth2::HttpResponse, http_client::HttpError>,
                > + Send,
        >,
    > + '_ {
        |request| Box::pin(http_client::send(self.http.clone(), request))
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// The discovery document (with its JWKS), read when missing or older than an hour.
    async fn discovered(&self) -> std::result::Result<Arc<Discovered>, Refusal> {
        let mut cached = self.discovered.lock().await;
        if let Some(d) = cached.as_ref()
            && d.at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let metadata =
            ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.send())
                .await
                .map_err(|e| {
                    Refusal::new(format!(
                        "could not read the provider's discovery document: {}",
                        crate::error::chain(&e)
                    ))
                })?;
        let d = Arc::new(Discovered {
            metadata,
            at: Instant::now(),
        });
        *cached = Some(d.clone());
        Ok(d)
    }

    /// Reads the JWKS again (a key rotated in since the last read) and keeps it.
    async fn refresh_keys(&self) -> std::result::Result<Arc<Discovered>, Refusal> {
        let current = self.discovered().await?;
        let keys = CoreJsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.send())
            .await
            .map_err(|e| {
                Refusal::new(format!(
                    "could not read the provider's signing keys: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let d = Arc::new(Discovered {
            metadata: current.metadata.clone().set_jwks(keys),
            at: current.at,
        });
        *self.discovered.lock().await = Some(d.clone());
        Ok(d)
    }

    fn client(
        &self,
        d: &Discovered,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            d.metadata.clone(),
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Starts a sign-in for the browser holding `browser_secret` (a random cookie value):
    /// records the flow and returns the provider's authorization URL.
    pub async fn begin(
        &self,
        pool: &PgPool,
        browser_secret: &str,
    ) -> Result<std::result::Result<url::Url, Refusal>> {
        let d = match self.discovered().await {
            Ok(d) => d,
            Err(r) => return Ok(Err(r)),
        };
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client(&d);
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.scopes {
            if s != "openid" {
                request = request.add_scope(Scope::new(s.clone()));
            }
        }
        let (url, state, nonce) = request.url();
        let mut tx = pool.begin().await?;
        sqlx::query!(
            "DELETE FROM oidc_logins WHERE created_at < now() - make_interval(mins => $1)",
            FLOW_MINUTES,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO oidc_logins (state_hash, browser_hash, nonce, pkce_verifier)
             VALUES ($1, $2, $3, $4)",
            sha256_hex(state.secret()),
            sha256_hex(browser_secret),
            nonce.secret(),
            verifier.secret(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(url))
    }

    /// Finishes a sign-in: the provider came back with `state` and `code` to the browser
    /// holding `browser_secret`. Refusals carry the reason; database trouble is an error.
    pub async fn finish(
        &self,
        pool: &PgPool,
        browser_secret: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<std::result::Result<Identity, Refusal>> {
        // Used once, whatever happens next: the row goes before anything is checked.
        let flow = sqlx::query!(
            r#"DELETE FROM oidc_logins WHERE state_hash = $1
               RETURNING browser_hash, nonce, pkce_verifier,
                         created_at > now() - make_interval(mins => $2) AS "fresh!""#,
            sha256_hex(state),
            FLOW_MINUTES,
        )
        .fetch_optional(pool)
        .await?;
        let Some(flow) = flow else {
            return Ok(Err(Refusal::new(UNKNOWN_STATE)));
        };
        let same_browser = browser_secret.is_some_and(|b| {
            subtle::ConstantTimeEq::ct_eq(sha256_hex(b).as_bytes(), flow.browser_hash.as_bytes())
                .into()
        });
        if !same_browser {
            return Ok(Err(Refusal::new(
                "the state belongs to a sign-in started in another browser",
            )));
        }
        if !flow.fresh {
            return Ok(Err(Refusal::new(format!(
                "the sign-in took longer than {FLOW_MINUTES} minutes"
            ))));
        }
        Ok(self
            .exchange(code, PkceCodeVerifier::new(flow.pkce_verifier), flow.nonce)
            .await)
    }

    async fn exchange(
        &self,
        code: &str,
        verifier: PkceCodeVerifier,
        nonce: String,
    ) -> std::result::Result<Identity, Refusal> {
        let d = self.discovered().await?;
        let response = self
            .client(&d)
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Refusal::new(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(verifier)
            .request_async(&self.send())
            .await
            .map_err(|e| {
                Refusal::new(format!(
                    "the token endpoint refused the code: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| Refusal::new("the token response holds no ID token"))?;
        let nonce = Nonce::new(nonce);
        match self.verify(&d, id_token, &nonce) {
            Ok(identity) => Ok(identity),
            Err(Verify::Signature(_)) => {
                // Perhaps a key rotated in since the JWKS was read: read it again, once.
                let fresh = self.refresh_keys().await?;
                self.verify(&fresh, id_token, &nonce)
                    .map_err(Verify::into_refusal)
            }
            Err(other) => Err(other.into_refusal()),
        }
    }

    fn verifier<'a>(&'a self, d: &'a Discovered) -> CoreIdTokenVerifier<'a> {
        let skew = self.skew;
        // Asymmetric algorithms only: never `none`, never HMAC with the client secret.
        let algs: Vec<CoreJwsSigningAlgorithm> = d
            .metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| !a.uses_shared_secret() && **a != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        let algs = if algs.is_empty() {
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
        } else {
            algs
        };
        CoreIdTokenVerifier::new_public_client(
            self.client_id.clone(),
            self.issuer.clone(),
            d.metadata.jwks().clone(),
        )
        .set_allowed_algs(algs)
        // exp with leeway: "now" is taken `skew` earlier.
        .set_time_fn(move || chrono::Utc::now() - skew)
        // iat must not lie in the future (beyond the leeway).
        .set_issue_time_verifier_fn(move |iat| {
            if iat > chrono::Utc::now() + skew {
                Err(format!("ID token issued in the future ({iat})"))
            } else {
                Ok(())
            }
        })
    }

    fn verify(
        &self,
        d: &Discovered,
        id_token: &CoreIdToken,
        nonce: &Nonce,
    ) -> std::result::Result<Identity, Verify> {
        let claims = id_token
            .claims(&self.verifier(d), nonce)
            .map_err(|e| match e {
                openidconnect::ClaimsVerificationError::SignatureVerification(s) => {
                    Verify::Signature(format!("the ID token's signature does not verify: {s}"))
                }
                other => Verify::Claims(format!("the ID token was refused: {other}")),
            })?;
        // `azp` (which the crate leaves to us): when present it must be us, and a token for
        // several audiences must name us in it.
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.client_id.as_str() => {
                return Err(Verify::Claims(format!(
                    "the ID token was issued to another client (azp {})",
                    azp.as_str()
                )));
            }
            None if claims.audiences().len() > 1 => {
                return Err(Verify::Claims(
                    "the ID token names several audiences but no authorized party (azp)".into(),
                ));
            }
            _ => {}
        }
        // The claims the operator named (any claim, not only the standard ones) come from the
        // token's payload, whose signature was verified just now.
        let payload = id_token
            .to_string()
            .split('.')
            .nth(1)
            .and_then(|p| BASE64_URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .ok_or_else(|| Verify::Claims("the ID token's payload is not JSON".into()))?;
        Ok(self.claims.read(
            &payload,
            claims.issuer().as_str().to_string(),
            claims.subject().as_str().to_string(),
            id_token.to_string(),
        ))
    }

    /// Where to send the browser to sign out at the provider too, when it advertises an
    /// `end_session_endpoint` (RP-initiated logout); None otherwise.
    pub async fn logout_url(&self, id_token_hint: Option<&str>) -> Option<url::Url> {
        let d = self.discovered().await.ok()?;
        let end = d
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut url = end.url().clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", self.client_id.as_str());
            q.append_pair("post_logout_redirect_uri", &self.after_logout);
        }
        Some(url)
    }
}

/// Which check an ID token failed: a signature failure earns one JWKS refresh.
enum Verify {
    Signature(String),
    Claims(String),
}

impl Verify {
    fn into_refusal(self) -> Refusal {
        match self {
            Verify::Signature(r) | Verify::Claims(r) => Refusal(r),
        }
    }
}

/// The names of the claims to read, from `[oidc]`.
#[derive(Debug, Clone)]
struct ClaimNames {
    username: String,
    email: String,
    groups: String,
}

impl ClaimNames {
    /// Reads the configured claims from a verified token's payload.
    fn read(
        &self,
        payload: &serde_json::Value,
        issuer: String,
        subject: String,
        id_token: String,
    ) -> Identity {
        let text = |name: &str| {
            payload
                .get(name)
                .and_then(|v| v.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let groups = match payload.get(&self.groups) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        let email_verified = matches!(
            payload.get("email_verified"),
            Some(serde_json::Value::Bool(true))
        ) || matches!(payload.get("email_verified"), Some(serde_json::Value::String(s)) if s == "true");
        Identity {
            issuer,
            subject,
            username: text(&self.username),
            email: text(&self.email),
            email_verified,
            groups,
            id_token,
        }
    }
}
