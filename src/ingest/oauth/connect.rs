//! "Connect Google account" / "Connect Microsoft 365 account": the authorization-code flow with
//! PKCE. [`begin`] makes the provider URL and a [`Pending`] connection that the web layer keeps
//! in the signed-in user's server-side session; [`finish`] takes it back (so a `state` works
//! once, only in the session that started it, and only for a few minutes), redeems the code with
//! the PKCE verifier, learns who connected, and stores the sealed refresh token with an audit
//! row. Any misuse is refused and audited.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{OAuthClient, Provider, store};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::ingest::accounts;
use crate::secrets::SealingKeys;

/// How long the provider's consent page may take before the `state` lapses.
pub const PENDING_SECS: i64 = 600;
/// The session key the web layer keeps the pending connection under.
pub const SESSION_KEY: &str = "oauth_connect";

/// A connection started in this session and not finished yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub verifier: String,
    pub account_id: i64,
    pub started_unix: i64,
}

/// The path the provider sends the browser back to (register it with the app).
pub const CALLBACK_PATH: &str = "/accounts/oauth/callback";

/// The full redirect URL registered with the provider.
pub fn redirect_url(public_url: &str) -> String {
    format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

/// Starts connecting `account_id` (a `gmail` or `graph` account): the URL to send the browser
/// to and what to keep in the session.
pub async fn begin(
    pool: &PgPool,
    settings: &Settings,
    account_id: i64,
    redirect: &str,
) -> Result<(String, Pending)> {
    let account = accounts::get(pool, account_id).await?;
    let provider = Provider::of_kind(&account.kind).ok_or_else(|| {
        Error::invalid(
            "account",
            format!(
                "account {} is not a Google or Microsoft 365 account",
                account.name
            ),
        )
    })?;
    let client = OAuthClient::from_settings(settings, provider)?;
    let (url, state, verifier) = client.authorize_url(redirect)?;
    Ok((
        url,
        Pending {
            state,
            verifier: verifier.to_string(),
            account_id,
            started_unix: OffsetDateTime::now_utc().unix_timestamp(),
        },
    ))
}

/// [`begin`] for a person in the UI, with an audit row naming the account and provider (the
/// outcome is audited by [`finish`]).
pub async fn start(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    account_id: i64,
    redirect: &str,
) -> Result<(String, Pending)> {
    let started = begin(pool, settings, account_id, redirect).await?;
    let account = accounts::get(pool, account_id).await?;
    let event = AuditEvent::by(actor, Action::AccountConnectStart)
        .target(Target::Account(account_id))
        .details(serde_json::json!({ "name": account.name, "kind": account.kind }));
    audit::record_now(pool, &event).await?;
    Ok(started)
}

/// What the provider sent back to the callback.
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    /// `error` when the person declined or the provider refused.
    pub error: Option<&'a str>,
}

/// Why a callback was refused, in words for the page (the audit row has the same).
fn refuse(reason: &str) -> Error {
    Error::invalid("connection", reason.to_string())
}

/// Finishes a connection: `pending` is what this session held (already removed from it by the
/// caller, so it cannot be used twice). Returns the account id and the connected identity.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    pool: &PgPool,
    settings: &Settings,
    keys: &SealingKeys,
    actor: &Actor,
    pending: Option<Pending>,
    back: &Callback<'_>,
    redirect: &str,
) -> Result<(i64, String)> {
    let code = match check(pending.as_ref(), back) {
        Ok(code) => code,
        Err(reason) => {
            let mut event = AuditEvent::by(actor, Action::AccountConnectRefused)
                .details(serde_json::json!({ "reason": reason }));
            if let Some(p) = &pending {
                event = event.target(Target::Account(p.account_id));
            }
            audit::record_now(pool, &event).await?;
            return Err(refuse(reason));
        }
    };
    let pending = pending.ok_or_else(|| refuse("no connection was started in this session"))?;
    let done = complete(pool, settings, keys, actor, &pending, code, redirect).await;
    if let Err(e) = &done {
        // A code the provider would not redeem (spent, wrong verifier) is refused too.
        let event = AuditEvent::by(actor, Action::AccountConnectRefused)
            .target(Target::Account(pending.account_id))
            .details(serde_json::json!({ "reason": crate::error::chain(e) }));
        audit::record_now(pool, &event).await?;
    }
    done
}

async fn complete(
    pool: &PgPool,
    settings: &Settings,
    keys: &SealingKeys,
    actor: &Actor,
    pending: &Pending,
    code: &str,
    redirect: &str,
) -> Result<(i64, String)> {
    let account = accounts::get(pool, pending.account_id).await?;
    let provider = Provider::of_kind(&account.kind)
        .ok_or_else(|| refuse("the account is not a Google or Microsoft 365 account"))?;
    let client = OAuthClient::from_settings(settings, provider)?;
    let grant = client
        .exchange_code(redirect, code, &pending.verifier)
        .await?;
    let refresh = grant.refresh.as_ref().ok_or_else(|| {
        refuse("the provider issued no refresh token (offline access was not granted)")
    })?;
    let identity = identity(settings, provider, &grant.access).await?;
    if let Some(mailbox) = account.mailbox.as_deref()
        && !mailbox.eq_ignore_ascii_case(&identity)
    {
        // The token reads only the mailbox of whoever signed in: stored for another mailbox it
        // would fail at every sync (or, with delegated access, archive the wrong mailbox).
        return Err(Error::invalid(
            "connection",
            format!(
                "the provider signed in {identity}, but this account archives {mailbox}: sign in as {mailbox}"
            ),
        ));
    }
    let mut tx = pool.begin().await?;
    store::save_connection(
        &mut tx,
        keys,
        &account,
        &client.token_url,
        &store::Connection {
            refresh,
            identity: &identity,
            expires_at: grant.expires_at,
        },
    )
    .await?;
    let event = AuditEvent::by(actor, Action::AccountConnect)
        .target(Target::Account(account.id))
        .details(serde_json::json!({ "provider": provider.label(), "identity": identity }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok((account.id, identity))
}

/// The code, when the callback belongs to the connection this session started and is still
/// fresh; otherwise the reason it is refused.
fn check<'a>(pending: Option<&Pending>, back: &Callback<'a>) -> Result<&'a str, &'static str> {
    if let Some(e) = back.error {
        return Err(if e == "access_denied" {
            "the connection was declined on the provider's page"
        } else {
            "the provider refused the connection"
        });
    }
    let Some(pending) = pending else {
        return Err("no connection was started in this session (or it was already used)");
    };
    let Some(state) = back.state.filter(|s| !s.is_empty()) else {
        return Err("the provider's answer carried no state");
    };
    if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
        return Err("the state does not match the connection started in this session");
    }
    if OffsetDateTime::now_utc().unix_timestamp() - pending.started_unix > PENDING_SECS {
        return Err("the connection took too long; start it again");
    }
    back.code
        .filter(|c| !c.is_empty())
        .ok_or("the provider's answer carried no code")
}

/// Who connected: the mailbox address the provider reports for the new token.
async fn identity(
    settings: &Settings,
    provider: Provider,
    access: &Zeroizing<String>,
) -> Result<String> {
    let http = crate::http_client::client(std::time::Duration::from_secs(30))?;
    let (url, fields): (String, &[&str]) = match provider {
        Provider::Google => (
            format!(
                "{}/gmail/v1/users/me/profile",
                settings.google.api_url.trim_end_matches('/')
            ),
            &["emailAddress"],
        ),
        Provider::Microsoft => (
            format!(
                "{}/v1.0/me?$select=mail,userPrincipalName",
                settings.microsoft.api_url.trim_end_matches('/')
            ),
            &["mail", "userPrincipalName"],
        ),
    };
    let response = http
        .get(&url)
        .bearer_auth(access.as_str())
        .send()
        .await
        .map_err(|e| Error::context(format!("ask {} who connected", provider.label()), e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::Internal(format!(
            "{} answered HTTP {status} when asked who connected",
            provider.label()
        )));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| Error::context(format!("read {}'s answer", provider.label()), e))?;
    fields
        .iter()
        .find_map(|f| {
            body.get(*f)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string)
        .ok_or_else(|| Error::Internal(format!("{} did not say who connected", provider.label())))
}
