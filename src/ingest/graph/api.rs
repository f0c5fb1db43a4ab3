//! The Microsoft Graph calls the source makes, as the v1.0 reference describes them:
//! `GET /users/{id}/mailFolders` and `/mailFolders/{id}/childFolders` (the folder tree),
//! `GET /users/{id}/mailFolders/{id}/messages/delta` (ids and `receivedDateTime`, paged by
//! `@odata.nextLink`, ending with `@odata.deltaLink`), `GET /users/{id}/mailFolders/{name}`
//! (the id of a well-known folder such as `deleteditems`), and `GET /users/{id}/messages/{id}/$value` (the MIME message, byte for
//! byte). Every call asks for immutable ids (`Prefer: IdType="ImmutableId"`), so a message
//! keeps its id when it moves.
//!
//! Throttling: 429 and 503/504 wait as `Retry-After` says (or back off exponentially with
//! jitter) and try again; a 401 gets a fresh token once. Links the service returns (next and
//! delta links) are followed only under the configured API base: a bearer token never goes to
//! another host.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// API calls give up after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts per call before a pass gives up (it is retried at the next poll).
const ATTEMPTS: u32 = 7;
const BACKOFF_BASE_MS: u64 = 1000;
const BACKOFF_MAX_MS: u64 = 32_000;
/// The longest `Retry-After` honoured as given; longer ones end the pass (next poll).
const RETRY_AFTER_MAX_SECS: u64 = 300;
/// Delta pages: ids and arrival times only, this many per page.
const PAGE_SIZE: u32 = 100;

/// Where bearer tokens come from (the OAuth2 token module).
pub trait Bearer: Send {
    /// A token valid for a while.
    fn bearer(&mut self) -> impl Future<Output = Result<Zeroizing<String>>> + Send;
    /// Forget the current token: the API answered 401.
    fn invalidate(&mut self);
}

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Microsoft Graph answered HTTP {status} to {what}: {code}: {message}")]
    Status {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "Microsoft Graph kept refusing {what} for its rate limits ({attempts} attempts); trying again at the next poll"
    )]
    Throttled { what: String, attempts: u32 },
    #[error("Microsoft Graph's answer to {what} was not understood: {detail}")]
    Malformed { what: String, detail: String },
    #[error("Microsoft Graph sent a link outside {base}; not following it")]
    ForeignLink { base: String },
    #[error("HTTP request for {what} failed: {detail}")]
    Http { what: String, detail: String },
    /// No bearer token: the token module's error, kept whole so a refused grant is still
    /// recognised (the account then waits to be connected again).
    #[error("{0}")]
    Token(Box<Error>),
}

impl From<GraphError> for Error {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::Token(inner) => *inner,
            other => Error::part(other),
        }
    }
}

impl GraphError {
    /// The delta token expired (410 Gone, `syncStateNotFound`, `resyncRequired`,
    /// `syncStateInvalid`): the folder must be listed again from the start.
    pub fn is_expired_delta(&self) -> bool {
        match self {
            GraphError::Status { status, code, .. } => {
                *status == 410
                    || ["syncstatenotfound", "resyncrequired", "syncstateinvalid"]
                        .contains(&code.to_ascii_lowercase().as_str())
            }
            _ => false,
        }
    }

    /// The message is gone (404 `ErrorItemNotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, GraphError::Status { status: 404, .. })
    }

    /// The mailbox refused the application (403: admin consent revoked, or an application
    /// access policy leaves this mailbox out).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, GraphError::Status { status: 403, .. })
    }
}

/// A mail folder as `/mailFolders` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: i64,
    #[serde(default)]
    pub total_item_count: Option<i64>,
}

/// A folder with its path from the mailbox root (`Inbox/Projects/2024`).
#[derive(Debug, Clone)]
pub struct FolderPath {
    pub folder: MailFolder,
    pub path: String,
}

#[derive(Debug, Deserialize)]
struct Collection<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// One entry of a delta page: a message that is new or changed, or one that was removed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaItem {
    pub id: String,
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
    /// When the mailbox received it (ISO 8601, UTC): the analogue of IMAP's INTERNALDATE.
    #[serde(default)]
    pub received_date_time: Option<String>,
}

/// A message a delta page lists as present in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// `receivedDateTime`; None when the service left it out or it was unreadable.
    pub received: Option<OffsetDateTime>,
}

/// One page of a delta round.
#[derive(Debug)]
pub struct DeltaPage {
    /// Messages present in the folder (new or changed since the round's start).
    pub messages: Vec<Listed>,
    /// Where the round continues; None on the last page.
    pub next_link: Option<String>,
    /// On the last page: where the next round starts.
    pub delta_link: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Graph for one mailbox.
pub struct GraphApi<T: Bearer> {
    http: reqwest::Client,
    /// `https://graph.microsoft.com` (or a national cloud's, or a test's): every URL starts
    /// with it.
    base: String,
    /// `{base}/v1.0/users/{user}`
    user_url: String,
    /// Shared by the calls in flight; a 401 renews it for all of them.
    tokens: tokio::sync::Mutex<T>,
}

impl<T: Bearer> GraphApi<T> {
    /// `api_url` is the base before `/v1.0` (`[microsoft] api_url`); `user` the mailbox's user
    /// principal name or id.
    pub fn new(api_url: &str, user: &str, tokens: T) -> Result<Self> {
        let base = api_url.trim_end_matches('/').to_string();
        // A delegated account reads the signed-in user's own mailbox.
        let user_url = if user == "me" {
            format!("{base}/v1.0/me")
        } else {
            format!("{base}/v1.0/users/{}", segment(user))
        };
        let http = crate::http_client::client(CALL_TIMEOUT)?;
        Ok(Self {
            http,
            base,
            user_url,
            tokens: tokio::sync::Mutex::new(tokens),
        })
    }

    /// Every mail folder of the mailbox with its path, parents before children.
    pub async fn folder_tree(&self) -> Result<Vec<FolderPath>> {
        let top = format!("{}/mailFolders?$top=100", self.user_url);
        let mut out = Vec::new();
        let mut queue: Vec<FolderPath> = self
            .all_pages::<MailFolder>(&top, "listing mail folders")
            .await?
            .into_iter()
            .map(|f| FolderPath {
                path: f.display_name.clone(),
                folder: f,
            })
            .collect();
        queue.reverse();
        while let Some(f) = queue.pop() {
            if f.folder.child_folder_count > 0 {
                let url = format!(
                    "{}/mailFolders/{}/childFolders?$top=100",
                    self.user_url,
                    segment(&f.folder.id)
                );
                let mut children: Vec<FolderPath> = self
                    .all_pages::<MailFolder>(&url, "listing child folders")
                    .await?
                    .into_iter()
                    .map(|c| FolderPath {
                        path: format!("{}/{}", f.path, c.display_name),
                        folder: c,
                    })
                    .collect();
                children.reverse();
                queue.extend(children);
            }
            out.push(f);
        }
        Ok(out)
    }

    /// Where a full delta round of a folder starts (the selection carries on in its links).
    pub fn initial_delta(&self, folder_id: &str) -> String {
        format!(
            "{}/mailFolders/{}/messages/delta?$select=id,receivedDateTime",
            self.user_url,
            segment(folder_id)
        )
    }

    /// The id of a well-known folder (`deleteditems`, `junkemail`, …: Graph accepts these
    /// names in place of an id, whatever the folder is called in the mailbox's language); None
    /// when the mailbox has no such folder.
    pub async fn well_known_folder(&self, name: &str) -> Result<Option<String>> {
        let url = format!("{}/mailFolders/{}?$select=id", self.user_url, segment(name));
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        match self
            .get_json::<Id>(&url, "finding a well-known folder")
            .await
        {
            Ok(f) => Ok(Some(f.id)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One page of a delta round (`url` is the start, a nextLink or a deltaLink).
    pub async fn delta_page(&self, url: &str) -> Result<DeltaPage, GraphError> {
        let page: Collection<DeltaItem> = self.get_json(url, "reading changes of a folder").await?;
        Ok(DeltaPage {
            messages: present(page.value),
            next_link: page.next_link,
            delta_link: page.delta_link,
        })
    }

    /// A message's MIME content, exactly as the service serves it.
    pub async fn mime(&self, id: &str) -> Result<Vec<u8>, GraphError> {
        let url = format!("{}/messages/{}/$value", self.user_url, segment(id));
        let response = self.send(&url, "fetching a message").await?;
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| GraphError::Http {
                what: "fetching a message".into(),
                detail: e.to_string(),
            })
    }

    async fn all_pages<I: DeserializeOwned>(&self, first: &str, what: &str) -> Result<Vec<I>> {
        let mut out = Vec::new();
        let mut url = first.to_string();
        loop {
            let page: Collection<I> = self.get_json(&url, what).await?;
            out.extend(page.value);
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
    }

    async fn get_json<R: DeserializeOwned>(&self, url: &str, what: &str) -> Result<R, GraphError> {
        let response = self.send(url, what).await?;
        let body = response.bytes().await.map_err(|e| GraphError::Http {
            what: what.into(),
            detail: e.to_string(),
        })?;
        serde_json::from_slice(&body).map_err(|e| GraphError::Malformed {
            what: what.into(),
            detail: e.to_string(),
        })
    }

    /// GET with the bearer token, retrying throttled and failed-over calls.
    async fn send(&self, url: &str, what: &str) -> Result<reqwest::Response, GraphError> {
        if !under_base(url, &self.base) {
            return Err(GraphError::ForeignLink {
                base: self.base.clone(),
            });
        }
        let mut renewed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self
                .tokens
                .lock()
                .await
                .bearer()
                .await
                .map_err(|e| GraphError::Token(Box::new(e)))?;
            let sent = self
                .http
                .get(url)
                .bearer_auth(token.as_str())
                .header("Prefer", "IdType=\"ImmutableId\"")
                .header("Prefer", format!("odata.maxpagesize={PAGE_SIZE}"))
                .send()
                .await;
            drop(token);
            let response = match sent {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && (e.is_timeout() || e.is_connect()) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(GraphError::Http {
                        what: what.into(),
                        detail: e.to_string(),
                    });
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                self.tokens.lock().await.invalidate();
                continue;
            }
            let throttled = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::GATEWAY_TIMEOUT;
            if throttled {
                let wait = retry_after(&response).unwrap_or_else(|| backoff(attempt));
                if attempt >= ATTEMPTS || wait.as_secs() > RETRY_AFTER_MAX_SECS {
                    return Err(GraphError::Throttled {
                        what: what.into(),
                        attempts: attempt,
                    });
                }
                tracing::info!(
                    what,
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "Microsoft Graph throttled a call; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let body = response.bytes().await.unwrap_or_default();
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(b) => (b.error.code, b.error.message),
                Err(_) => (String::new(), String::new()),
            };
            return Err(GraphError::Status {
                what: what.into(),
                status: status.as_u16(),
                code,
                message,
            });
        }
    }
}

/// The messages of a delta page that are in the folder (not `@removed`).
fn present(items: Vec<DeltaItem>) -> Vec<Listed> {
    items
        .into_iter()
        .filter(|i| i.removed.is_none())
        .map(|i| Listed {
            received: i.received_date_time.as_deref().and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            }),
            id: i.id,
        })
        .collect()
}

/// A path segment with everything but RFC 3986 unreserved characters percent-encoded (Graph ids
/// hold `=`, `+`, `/`).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// True when `url` is `base` itself or below it (same scheme, host and port, path under it).
fn under_base(url: &str, base: &str) -> bool {
    url.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// `Retry-After` in seconds (Graph sends seconds).
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Exponential back-off with jitter: 1, 2, 4 … s up to 32 s, each plus up to half again.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE_MS
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(BACKOFF_MAX_MS);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    let jitter = noise % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_only_under_the_configured_base() {
        let base = "https://graph.microsoft.com";
        assert!(under_base(
            "https://graph.microsoft.com/v1.0/users/a/mailFolders/b/messages/delta?$deltatoken=x",
            base
        ));
        assert!(!under_base(
            "https://graph.microsoft.com.evil.example/v1.0/x",
            base
        ));
        assert!(!under_base("https://evil.example/v1.0/x", base));
        assert!(!under_base("http://graph.microsoft.com/v1.0/x", base));
    }

    #[test]
    fn delta_pages_keep_present_messages_and_drop_removed_ones() {
        let page: Collection<DeltaItem> = serde_json::from_str(
            r##"{"@odata.context":"x","value":[
                {"@odata.type":"#microsoft.graph.message","@odata.etag":"W/\"1\"","id":"AAA=","receivedDateTime":"2024-03-05T07:08:09Z"},
                {"@odata.type":"#microsoft.graph.message","id":"BBB=","@removed":{"reason":"deleted"}},
                {"@odata.type":"#microsoft.graph.message","id":"CCC="}
            ],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/d?$deltatoken=1"}"##,
        )
        .expect("page");
        assert!(page.next_link.is_none());
        assert!(page.delta_link.is_some());
        assert_eq!(
            present(page.value),
            vec![
                Listed {
                    id: "AAA=".into(),
                    received: Some(time::macros::datetime!(2024-03-05 07:08:09 UTC)),
                },
                Listed {
                    id: "CCC=".into(),
                    received: None,
                },
            ]
        );
    }

    #[test]
    fn expired_delta_tokens_are_recognised() {
        let e = |status, code: &str| GraphError::Status {
            what: "x".into(),
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(e(410, "").is_expired_delta());
        assert!(e(400, "SyncStateNotFound").is_expired_delta());
        assert!(e(400, "resyncRequired").is_expired_delta());
        assert!(!e(404, "ErrorItemNotFound").is_expired_delta());
    }
}
