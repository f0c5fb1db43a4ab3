//! A fake Google on loopback, written to Google's published references: the OAuth 2.0 token
//! endpoint (authorization code with PKCE S256, refresh, `invalid_grant`, the JWT bearer grant
//! for service accounts with an RS256 signature check) and the Gmail API v1 calls the source
//! makes (users.getProfile, users.labels.list, users.messages.list with paging,
//! users.messages.get?format=raw, users.history.list with paging and 404 for expired history),
//! with 429 / 403 rate-limit answers on demand.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::prelude::*;
use serde_json::{Value, json};
use sha2::Digest;

pub const CLIENT_ID: &str = "fake-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const SA_EMAIL: &str = "archiver@fake-project.iam.gserviceaccount.com";

#[derive(Clone)]
pub struct Msg {
    pub raw: Vec<u8>,
    pub labels: Vec<String>,
    pub internal_ms: i64,
}

#[derive(Default)]
pub struct Inner {
    pub email: String,
    /// id → message; ids are hex like Gmail's.
    pub messages: BTreeMap<String, Msg>,
    /// (history id, record JSON)
    pub history: Vec<(u64, Value)>,
    pub history_id: u64,
    /// History before this id is gone (404).
    pub history_floor: u64,
    pub page_size: usize,
    pub valid_access: HashSet<String>,
    pub valid_refresh: HashSet<String>,
    /// code → (PKCE challenge, redirect_uri)
    pub codes: HashMap<String, (String, String)>,
    /// The next N API calls answer 429 (Retry-After: 1).
    pub throttle_429: usize,
    /// The next N API calls answer 403 userRateLimitExceeded (no Retry-After).
    pub throttle_403: usize,
    pub token_calls: usize,
    pub get_calls: usize,
    pub throttled: usize,
    /// Subjects the JWT bearer grant was used for.
    pub jwt_subjects: Vec<String>,
    /// Each messages.get waits this long (a crash test kills the sync meanwhile).
    pub get_delay_ms: u64,
    /// The person declines on the consent page (`error=access_denied`).
    pub decline: bool,
    next: u64,
}

#[derive(Clone)]
pub struct FakeGoogle {
    pub addr: SocketAddr,
    pub url: String,
    pub state: Arc<Mutex<Inner>>,
}

impl FakeGoogle {
    pub async fn start(email: &str) -> Self {
        let state = Arc::new(Mutex::new(Inner {
            email: email.into(),
            history_id: 1000,
            page_size: 3,
            next: 0x18c0_0000_0000_0000,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .route("/gmail/v1/users/{user}/profile", get(profile))
            .route("/gmail/v1/users/{user}/labels", get(labels))
            .route("/gmail/v1/users/{user}/messages", get(list))
            .route("/gmail/v1/users/{user}/messages/{id}", get(message))
            .route("/gmail/v1/users/{user}/history", get(history))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            url: format!("http://{addr}"),
            state,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().expect("fake google state")
    }

    /// Points `[google]` at this fake.
    pub fn configure(&self, settings: &mut daygle::config::Settings, secret_file: &str) {
        settings.google.client_id = CLIENT_ID.into();
        settings.google.client_secret_file = secret_file.into();
        settings.google.auth_url = format!("{}/o/oauth2/v2/auth", self.url);
        settings.google.token_url = format!("{}/token", self.url);
        settings.google.api_url = self.url.clone();
    }

    /// Delivers a message (a `messageAdded` history record); returns its id.
    pub fn deliver(&self, raw: &[u8], labels: &[&str]) -> String {
        let mut s = self.lock();
        s.next += 0x1_0000;
        let id = format!("{:x}", s.next);
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let internal_ms = 1_700_000_000_000 + (s.next & 0xffff_ffff) as i64;
        s.messages.insert(
            id.clone(),
            Msg {
                raw: raw.to_vec(),
                labels: labels.clone(),
                internal_ms,
            },
        );
        s.history_id += 1;
        let hid = s.history_id;
        s.history.push((
            hid,
            json!({"id": hid.to_string(), "messagesAdded": [{"message": {"id": id, "threadId": id, "labelIds": labels}}]}),
        ));
        id
    }

    /// Adds or removes a label (a `labelsAdded` / `labelsRemoved` history record).
    pub fn relabel(&self, id: &str, label: &str, add: bool) {
        let mut s = self.lock();
        let msg = s.messages.get_mut(id).expect("message");
        if add {
            msg.labels.push(label.into());
        } else {
            msg.labels.retain(|l| l != label);
        }
        let labels = msg.labels.clone();
        s.history_id += 1;
        let hid = s.history_id;
        let key = if add { "labelsAdded" } else { "labelsRemoved" };
        s.history.push((
            hid,
            json!({"id": hid.to_string(), key: [{"message": {"id": id, "threadId": id, "labelIds": labels}, "labelIds": [label]}]}),
        ));
    }

    /// Forgets all history so far: a start id before now answers 404.
    pub fn expire_history(&self) {
        let mut s = self.lock();
        s.history_floor = s.history_id + 1;
        s.history.clear();
    }

    /// A refresh token the fake accepts (as if a person had connected).
    pub fn grant_refresh(&self, token: &str) {
        self.lock().valid_refresh.insert(token.into());
    }

    /// The person revoked the app's access: refresh tokens and access tokens stop working.
    pub fn revoke_all(&self) {
        let mut s = self.lock();
        s.valid_refresh.clear();
        s.valid_access.clear();
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        Json(
            json!({"error": {"code": status.as_u16(), "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}}),
        ),
    )
        .into_response()
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

/// Checks the bearer token and the rate-limit switches; Some(response) refuses the call.
fn gate(s: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !s.valid_access.contains(bearer) {
        return Some(google_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Invalid Credentials",
        ));
    }
    if s.throttle_429 > 0 {
        s.throttle_429 -= 1;
        s.throttled += 1;
        let mut r = google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        );
        r.headers_mut()
            .insert("retry-after", "1".parse().expect("header"));
        return Some(r);
    }
    if s.throttle_403 > 0 {
        s.throttle_403 -= 1;
        s.throttled += 1;
        return Some(google_error(
            StatusCode::FORBIDDEN,
            "userRateLimitExceeded",
            "User Rate Limit Exceeded",
        ));
    }
    None
}

/// The consent page, answered at once as if the person agreed: redirects back with a code
/// bound to the PKCE challenge and the redirect URI.
async fn authorize(State(st): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = st.lock().expect("state");
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return (
            StatusCode::BAD_REQUEST,
            "PKCE S256 and the client id are required",
        )
            .into_response();
    }
    s.next += 1;
    let code = format!("code-{}", s.next);
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    s.codes.insert(
        code.clone(),
        (
            q.get("code_challenge").cloned().unwrap_or_default(),
            redirect.clone(),
        ),
    );
    let state = q.get("state").cloned().unwrap_or_default();
    if s.decline {
        s.codes.remove(&code);
        return Redirect::to(&format!("{redirect}?error=access_denied&state={state}"))
            .into_response();
    }
    Redirect::to(&format!("{redirect}?state={state}&code={code}")).into_response()
}

async fn token(State(st): Shared, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut s = st.lock().expect("state");
    s.token_calls += 1;
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let issue = |s: &mut Inner, refresh: Option<String>| {
        s.next += 1;
        let access = format!("ya29.access-{}", s.next);
        s.valid_access.insert(access.clone());
        let mut body = json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer",
            "scope": daygle::ingest::oauth::GMAIL_READONLY});
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
        Json(body).into_response()
    };
    match field("grant_type").as_str() {
        "authorization_code" => {
            if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
                return oauth_error("invalid_client", "Unauthorized");
            }
            let Some((challenge, redirect)) = s.codes.remove(&field("code")) else {
                return oauth_error("invalid_grant", "Malformed auth code.");
            };
            let verifier = field("code_verifier");
            let computed = BASE64_URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            if computed != challenge {
                return oauth_error("invalid_grant", "Invalid code verifier.");
            }
            if redirect != field("redirect_uri") {
                return oauth_error("redirect_uri_mismatch", "Bad Request");
            }
            s.next += 1;
            let refresh = format!("1//refresh-{}", s.next);
            s.valid_refresh.insert(refresh.clone());
            issue(&mut s, Some(refresh))
        }
        "refresh_token" => {
            if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
                return oauth_error("invalid_client", "Unauthorized");
            }
            if !s.valid_refresh.contains(&field("refresh_token")) {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            }
            issue(&mut s, None)
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => match check_jwt(&field("assertion")) {
            Ok(sub) => {
                s.jwt_subjects.push(sub);
                issue(&mut s, None)
            }
            Err(e) => oauth_error("invalid_grant", e),
        },
        _ => oauth_error("unsupported_grant_type", "Invalid grant_type"),
    }
}

/// Verifies an RS256 assertion against the test key; returns its subject.
fn check_jwt(jwt: &str) -> Result<String, &'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("Invalid JWT");
    }
    let public = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/google/service_account_test_key.pub.der"),
    )
    .map_err(|_| "no key")?;
    let signature = BASE64_URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| "Invalid JWT Signature.")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.")?;
    let header: Value = serde_json::from_slice(
        &BASE64_URL_SAFE_NO_PAD
            .decode(parts[0])
            .map_err(|_| "Invalid JWT")?,
    )
    .map_err(|_| "Invalid JWT")?;
    let claims: Value = serde_json::from_slice(
        &BASE64_URL_SAFE_NO_PAD
            .decode(parts[1])
            .map_err(|_| "Invalid JWT")?,
    )
    .map_err(|_| "Invalid JWT")?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if header["alg"] != "RS256"
        || claims["iss"] != SA_EMAIL
        || claims["scope"] != daygle::ingest::oauth::GMAIL_READONLY
        || !claims["aud"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/token")
        || claims["exp"].as_i64().unwrap_or(0) <= now
        || claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0) > 3600
    {
        return Err("Invalid JWT: claims");
    }
    claims["sub"]
        .as_str()
        .map(str::to_string)
        .ok_or("Invalid JWT: no subject")
}

async fn profile(State(st): Shared, headers: HeaderMap, Path(_user): Path<String>) -> Response {
    let mut s = st.lock().expect("state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let total = s.messages.len();
    Json(
        json!({"emailAddress": s.email, "messagesTotal": total, "threadsTotal": total,
        "historyId": s.history_id.to_string()}),
    )
    .into_response()
}

async fn labels(State(st): Shared, headers: HeaderMap, Path(_user): Path<String>) -> Response {
    let mut s = st.lock().expect("state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let mut out = vec![];
    for id in [
        "INBOX",
        "SENT",
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "SPAM",
        "TRASH",
        "CATEGORY_PROMOTIONS",
    ] {
        out.push(json!({"id": id, "name": id, "type": "system"}));
    }
    out.push(json!({"id": "Label_1", "name": "Projects/Apollo", "type": "user"}));
    out.push(json!({"id": "Label_2", "name": "Invoices", "type": "user"}));
    // A name with a space and markup: shown escaped, searched in quotes.
    out.push(json!({"id": "Label_3", "name": "Client A <b>", "type": "user"}));
    Json(json!({"labels": out})).into_response()
}

async fn list(
    State(st): Shared,
    headers: HeaderMap,
    Path(_user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().expect("state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    // Newest first, spam and trash left out (includeSpamTrash defaults to false).
    let ids: Vec<String> = s
        .messages
        .iter()
        .rev()
        .filter(|(_, m)| !m.labels.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .map(|(id, _)| id.clone())
        .collect();
    let start: usize = q
        .get("pageToken")
        .and_then(|t| t.strip_prefix("p"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = s.page_size;
    let page: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(size)
        .map(|id| json!({"id": id, "threadId": id}))
        .collect();
    let mut body = json!({"messages": page, "resultSizeEstimate": ids.len()});
    if start + size < ids.len() {
        body["nextPageToken"] = json!(format!("p{}", start + size));
    }
    Json(body).into_response()
}

async fn message(
    State(st): Shared,
    headers: HeaderMap,
    Path((_user, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let delay = {
        let mut s = st.lock().expect("state");
        if let Some(r) = gate(&mut s, &headers) {
            return r;
        }
        s.get_calls += 1;
        s.get_delay_ms
    };
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let s = st.lock().expect("state");
    if q.get("format").map(String::as_str) != Some("raw") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "format=raw expected",
        );
    }
    let Some(m) = s.messages.get(&id) else {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    };
    Json(
        json!({"id": id, "threadId": id, "labelIds": m.labels, "sizeEstimate": m.raw.len(),
        "internalDate": m.internal_ms.to_string(), "historyId": s.history_id.to_string(),
        "raw": BASE64_URL_SAFE.encode(&m.raw)}),
    )
    .into_response()
}

async fn history(
    State(st): Shared,
    headers: HeaderMap,
    Path(_user): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(start) = get("startHistoryId").and_then(|v| v.parse::<u64>().ok()) else {
        return google_error(StatusCode::BAD_REQUEST, "invalidArgument", "startHistoryId");
    };
    if start < s.history_floor {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    }
    let records: Vec<Value> = s
        .history
        .iter()
        .filter(|(id, _)| *id > start)
        .map(|(_, r)| r.clone())
        .collect();
    let from: usize = get("pageToken")
        .and_then(|t| t.strip_prefix("h").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let size = s.page_size;
    let page: Vec<Value> = records.iter().skip(from).take(size).cloned().collect();
    let mut body = json!({"history": page, "historyId": s.history_id.to_string()});
    if from + size < records.len() {
        body["nextPageToken"] = json!(format!("h{}", from + size));
    }
    Json(body).into_response()
}
