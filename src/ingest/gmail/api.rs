//! The Gmail API calls the source makes (users.getProfile, users.labels.list,
//! users.messages.list, users.messages.get?format=raw, users.history.list), with Google's
//! retry rules: 429 and 403 `rateLimitExceeded` / `userRateLimitExceeded` (and 5xx) wait as
//! `Retry-After` says or back off exponentially with jitter; a 401 gets a fresh token once.

use std::time::Duration;

use base64::prelude::*;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::http_client::HttpError;
use crate::ingest::oauth::AccessTokens;

/// API calls give up after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts per call before a pass gives up (it is retried at the next poll).
const ATTEMPTS: u32 = 7;
/// First back-off step and its ceiling (Google: "exponential backoff ... up to 32 or 64 s").
const BACKOFF_BASE_MS: u64 = 1000;
const BACKOFF_MAX_MS: u64 = 32_000;

/// Why a Gmail call failed.
#[derive(Debug, thiserror::Error)]
pub enum GmailError {
    #[error("Gmail answered HTTP {status} to {what}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "Gmail kept refusing {what} for its rate limits ({attempts} attempts); trying again at the next poll"
    )]
    Throttled { what: String, attempts: u32 },
    #[error("Gmail's answer to {what} was not understood: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{0}")]
    Http(#[from] HttpError),
}

impl From<GmailError> for Error {
    fn from(e: GmailError) -> Self {
        Error::part(e)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub email_address: String,
    #[serde(default)]
    pub messages_total: Option<i64>,
    pub history_id: String,
}

#[derive(Debug, Deserialize)]
pub struct Label {
    pub id: String,
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Labels {
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
pub struct MessageRef {
    pub id: String,
    #[serde(default, rename = "labelIds")]
    pub label_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    pub next_page_token: Option<String>,
}

/// A message as `format=raw` returns it, the raw bytes decoded.
#[derive(Debug)]
pub struct RawMessage {
    pub id: String,
    pub raw: Vec<u8>,
    pub label_ids: Vec<String>,
    /// Milliseconds since the epoch, when Gmail received it.
    pub internal_date_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBody {
    id: String,
    raw: String,
    #[serde(default)]
    label_ids: Vec<String>,
    internal_date: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MessageAdded {
    pub message: MessageRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelChange {
    pub message: MessageRef,
    #[serde(default)]
    pub label_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    #[serde(default)]
    pub messages_added: Vec<MessageAdded>,
    #[serde(default)]
    pub labels_added: Vec<LabelChange>,
    #[serde(default)]
    pub labels_removed: Vec<LabelChange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    #[serde(default)]
    pub history: Vec<HistoryRecord>,
    pub next_page_token: Option<String>,
    /// The mailbox's current history id.
    pub history_id: String,
}

/// What a history request found.
pub enum History {
    Page(HistoryPage),
    /// 404: the start id is older than Google keeps history (about a week): list everything.
    Expired,
}

/// One mailbox's Gmail API: `{api_url}/gmail/v1/users/{user}`.
pub struct GmailApi {
    http: reqwest::Client,
    base: String,
    tokens: Mutex<AccessTokens>,
}

impl GmailApi {
    /// `user` is the mailbox address, or `me` for the connected user.
    pub fn new(api_url: &str, user: &str, tokens: AccessTokens) -> Result<Self> {
        let user: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
        Ok(Self {
            http: crate::http_client::client(CALL_TIMEOUT)?,
            base: format!("{}/gmail/v1/users/{user}", api_url.trim_end_matches('/')),
            tokens: Mutex::new(tokens),
        })
    }

    pub async fn profile(&self) -> Result<Profile> {
        self.get_json("users.getProfile", "/profile", Vec::new())
            .await?
            .ok_or_else(|| not_found("users.getProfile"))
    }

    pub async fn labels(&self) -> Result<Vec<Label>> {
        let l: Labels = self
            .get_json("users.labels.list", "/labels", Vec::new())
            .await?
            .ok_or_else(|| not_found("users.labels.list"))?;
        Ok(l.labels)
    }

    /// One page of message ids, newest first (spam and trash left out, like Gmail's own view).
    pub async fn list_page(&self, page_token: Option<&str>) -> Result<ListPage> {
        let mut query = vec![("maxResults", "500".to_string())];
        if let Some(t) = page_token {
            query.push(("pageToken", t.to_string()));
        }
        self.get_json("users.messages.list", "/messages", query)
            .await?
            .ok_or_else(|| not_found("users.messages.list"))
    }

    /// The message's exact RFC 822 bytes; None when it is gone from the mailbox (404).
    pub async fn get_raw(&self, id: &str) -> Result<Option<RawMessage>> {
        let path = format!("/messages/{}", encode_segment(id));
        let Some(body) = self
            .get_json::<RawBody>(
                "users.messages.get",
                &path,
                vec![("format", "raw".to_string())],
            )
            .await?
        else {
            return Ok(None);
        };
        let raw = decode_raw(&body.raw).ok_or_else(|| GmailError::Malformed {
            what: format!("users.messages.get {id}"),
            detail: "`raw` is not base64url".into(),
        })?;
        Ok(Some(RawMessage {
            id: body.id,
            raw,
            label_ids: body.label_ids,
            internal_date_ms: body.internal_date.and_then(|d| d.parse().ok()),
        }))
    }

    /// One page of history after `start`.
    pub async fn history_page(&self, start: &str, page_token: Option<&str>) -> Result<History> {
        let mut query = vec![
            ("startHistoryId", start.to_string()),
            ("maxResults", "500".to_string()),
        ];
        for t in ["messageAdded", "labelAdded", "labelRemoved"] {
            query.push(("historyTypes", t.to_string()));
        }
        if let Some(t) = page_token {
            query.push(("pageToken", t.to_string()));
        }
        Ok(
            match self
                .get_json("users.history.list", "/history", query)
                .await?
            {
                Some(page) => History::Page(page),
                None => History::Expired,
            },
        )
    }

    /// GETs `path` under the mailbox and reads JSON; None on 404. Rate limits and server
    /// errors are retried; a 401 once with a fresh token.
    async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Option<T>> {
        let url = format!("{}{path}", self.base);
        let mut renewed = false;
        for attempt in 0..ATTEMPTS {
            let bearer = self.tokens.lock().await.bearer().await?;
            let response = self
                .http
                .get(&url)
                .query(&query)
                .bearer_auth(bearer.as_str())
                .send()
                .await
                .map_err(|e| HttpError {
                    url: url.clone(),
                    detail: e.to_string(),
                })?;
            let status = response.status();
            if status.is_success() {
                let body = response.bytes().await.map_err(|e| HttpError {
                    url: url.clone(),
                    detail: e.to_string(),
                })?;
                return serde_json::from_slice(&body).map(Some).map_err(|e| {
                    GmailError::Malformed {
                        what: what.into(),
                        detail: e.to_string(),
                    }
                    .into()
                });
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = response.text().await.unwrap_or_default();
            let (message, reason) = error_of(&body);
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                self.tokens.lock().await.invalidate();
                continue;
            }
            let throttled = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::FORBIDDEN
                    && matches!(
                        reason.as_deref(),
                        Some("rateLimitExceeded" | "userRateLimitExceeded")
                    ))
                || status.is_server_error();
            if !throttled {
                return Err(GmailError::Status {
                    what: what.into(),
                    status: status.as_u16(),
                    message,
                }
                .into());
            }
            let wait = retry_after
                .map(|s| Duration::from_secs(s.min(BACKOFF_MAX_MS / 1000)))
                .unwrap_or_else(|| jittered(attempt));
            tracing::info!(
                what,
                status = status.as_u16(),
                wait_ms = wait.as_millis() as u64,
                "Gmail asked to slow down; waiting"
            );
            tokio::time::sleep(wait).await;
        }
        Err(GmailError::Throttled {
            what: what.into(),
            attempts: ATTEMPTS,
        }
        .into())
    }
}

fn not_found(what: &str) -> Error {
    GmailError::Status {
        what: what.into(),
        status: 404,
        message: "not found (is the mailbox address right?)".into(),
    }
    .into()
}

/// Full jitter: a random wait up to min(max, base · 2^attempt).
fn jittered(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_MAX_MS);
    let r = getrandom::u64().unwrap_or(ceiling / 2);
    Duration::from_millis(ceiling / 2 + r % (ceiling / 2 + 1))
}

/// Google's error body: `{"error": {"message": ..., "errors": [{"reason": ...}]}}`.
fn error_of(body: &str) -> (String, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let e = &v["error"];
    let message = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let reason = e["errors"][0]["reason"].as_str().map(str::to_string);
    (message, reason)
}

fn encode_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// `raw` is base64url; accept padding and the standard alphabet too.
fn decode_raw(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    BASE64_URL_SAFE_NO_PAD.decode(cleaned).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_decodes_with_or_without_padding() {
        let bytes = b"Subject: hi\r\n\r\n\xff\xfe body?>";
        let padded = BASE64_URL_SAFE.encode(bytes);
        let bare = BASE64_URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode_raw(&padded).as_deref(), Some(&bytes[..]));
        assert_eq!(decode_raw(&bare).as_deref(), Some(&bytes[..]));
        assert_eq!(decode_raw("!!"), None);
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 0..12 {
            let w = jittered(attempt).as_millis() as u64;
            assert!(w <= BACKOFF_MAX_MS, "{w}");
        }
    }
}
