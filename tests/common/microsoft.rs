//! A fake Microsoft identity platform and Microsoft Graph on loopback, written to the published
//! references: the v2.0 token endpoint (client credentials, refresh tokens, `invalid_client` /
//! `invalid_grant`), `GET /v1.0/users/{id}/mailFolders` and `/childFolders` (with
//! `@odata.nextLink` paging), `/mailFolders/{id}` (also by well-known name, `deleteditems`),
//! `/mailFolders/{id}/messages/delta` (`id` and `receivedDateTime` of each message, pages of
//! at most `Prefer: odata.maxpagesize` entries linked by `@odata.nextLink`, the last one carrying
//! `@odata.deltaLink`; an expired delta token answers 410 Gone `SyncStateNotFound`), and
//! `/messages/{id}/$value` (the MIME bytes). Throttling answers 429 with `Retry-After`.
//! Tokens are checked on every Graph call. For "Connect Microsoft 365 account": the v2.0
//! authorize endpoint (PKCE S256 required; it signs in `signed_in` and consents at once, or
//! answers `error=access_denied` when the person declines), the `authorization_code` grant
//! (code bound to its challenge and redirect URI, single use, client secret checked) and the
//! `refresh_token` grant (rotating the refresh token), and `GET /v1.0/me`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const CLIENT_SECRET: &str = "fake~client~secret";

#[derive(Default)]
pub struct Folder {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    /// (message id, MIME) in arrival order; deltas are positions in this list.
    pub messages: Vec<(String, Vec<u8>)>,
    /// message id → `receivedDateTime` (ISO 8601 UTC, as Graph writes it).
    pub received: BTreeMap<String, String>,
    /// Its well-known name (`deleteditems`, `junkemail`, …), by which Graph also finds it.
    pub well_known: Option<String>,
    /// Delta tokens issued before this epoch are expired.
    pub epoch: u32,
}

#[derive(Default)]
pub struct Mailbox {
    pub folders: Vec<Folder>,
}

#[derive(Default)]
pub struct World {
    pub mailboxes: BTreeMap<String, Mailbox>,
    pub tokens: HashSet<String>,
    pub issued: u32,
    /// The next this many Graph calls answer 429 Retry-After: 1.
    pub throttle_next: u32,
    pub throttled: u32,
    /// Admin consent revoked: Graph answers 403 ErrorAccessDenied.
    pub consent_revoked: bool,
    /// Client secret removed from the app registration: the token endpoint answers 401.
    pub secret_revoked: bool,
    /// Calls served, by kind ("delta", "value", "folders", "token").
    pub calls: BTreeMap<&'static str, u32>,
    pub page_size_default: usize,
    /// Each `$value` waits this long (a crash test kills the sync meanwhile).
    pub value_delay_ms: u64,
    /// Access tokens the introspection endpoint vouches for, with their user.
    pub imap_tokens: BTreeMap<String, String>,
    /// Messages delivered so far (each arrives a minute after the one before).
    pub delivered: i64,
    /// Who signs in on the authorize page (delegated connections).
    pub signed_in: String,
    /// The person declines on the consent page.
    pub decline: bool,
    /// Authorization code → (PKCE challenge, redirect URI, user).
    pub codes: BTreeMap<String, (String, String, String)>,
    /// Refresh token → user.
    pub refresh: BTreeMap<String, String>,
    /// Delegated access token → user (for `/me`).
    pub token_users: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct FakeMicrosoft {
    pub world: Arc<Mutex<World>>,
    pub url: String,
    task: Arc<JoinHandle<()>>,
}

impl FakeMicrosoft {
    pub async fn start() -> Self {
        let world = Arc::new(Mutex::new(World {
            page_size_default: 10,
            ..World::default()
        }));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/v1.0/me", get(me))
            .route("/v1.0/users/{user}/mailFolders", get(folders))
            .route("/v1.0/users/{user}/mailFolders/{folder}", get(one_folder))
            .route(
                "/v1.0/users/{user}/mailFolders/{folder}/childFolders",
                get(child_folders),
            )
            .route(
                "/v1.0/users/{user}/mailFolders/{folder}/messages/delta",
                get(delta),
            )
            .route("/v1.0/users/{user}/messages/{id}/{value}", get(value))
            .route("/introspect", post(introspect))
            .with_state(world.clone());
        let app =
            Router::new()
                .fallback_service(app)
                .layer(axum::middleware::map_request_with_state(
                    world.clone(),
                    me_alias,
                ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMicrosoft {
            world,
            url: format!("http://{addr}"),
            task: Arc::new(task),
        }
    }

    /// The `token_url` setting for this fake (`{tenant}` filled in by the app).
    pub fn token_url(&self) -> String {
        format!("{}/{{tenant}}/oauth2/v2.0/token", self.url)
    }

    /// The `auth_url` setting for this fake (`{tenant}` filled in by the app).
    pub fn auth_url(&self) -> String {
        format!("{}/{{tenant}}/oauth2/v2.0/authorize", self.url)
    }

    /// Points `[microsoft]` at this fake; `secret_file` holds [`CLIENT_SECRET`].
    pub fn configure(&self, settings: &mut daygle::config::Settings, secret_file: &str) {
        settings.microsoft.tenant_id = TENANT.into();
        settings.microsoft.client_id = CLIENT_ID.into();
        settings.microsoft.client_secret_file = secret_file.into();
        settings.microsoft.auth_url = self.auth_url();
        settings.microsoft.token_url = self.token_url();
        settings.microsoft.api_url = self.url.clone();
    }

    /// The person revoked the app's consent: refresh tokens stop working.
    pub fn revoke_refresh(&self) {
        self.world.lock().unwrap().refresh.clear();
    }

    /// Adds a folder (under `parent`'s id when given); returns its id.
    pub fn add_folder(&self, user: &str, name: &str, parent: Option<&str>) -> String {
        let mut w = self.world.lock().unwrap();
        let mb = w.mailboxes.entry(user.to_lowercase()).or_default();
        let id = format!("AAMk{}-{}=", mb.folders.len(), name.replace(' ', "_"));
        mb.folders.push(Folder {
            id: id.clone(),
            name: name.into(),
            parent: parent.map(String::from),
            ..Folder::default()
        });
        id
    }

    /// Adds a top-level folder that Graph also knows by a well-known name (`deleteditems`,
    /// `junkemail`); `name` is what the mailbox's language calls it. Returns its id.
    pub fn add_well_known_folder(&self, user: &str, name: &str, well_known: &str) -> String {
        let id = self.add_folder(user, name, None);
        let mut w = self.world.lock().unwrap();
        let mb = w.mailboxes.get_mut(&user.to_lowercase()).expect("mailbox");
        if let Some(f) = mb.folders.iter_mut().find(|f| f.id == id) {
            f.well_known = Some(well_known.into());
        }
        id
    }

    /// Delivers messages into a folder; returns their ids.
    pub fn deliver(&self, user: &str, folder_id: &str, raws: &[Vec<u8>]) -> Vec<String> {
        let mut w = self.world.lock().unwrap();
        let first = w.delivered;
        w.delivered += raws.len() as i64;
        let mb = w.mailboxes.get_mut(&user.to_lowercase()).expect("mailbox");
        let f = mb
            .folders
            .iter_mut()
            .find(|f| f.id == folder_id)
            .expect("folder");
        raws.iter()
            .enumerate()
            .map(|(i, raw)| {
                let id = format!("AAMkAGI2{}/{}+x=", f.id.len(), f.messages.len());
                f.messages.push((id.clone(), raw.clone()));
                f.received.insert(id.clone(), received_at(first + i as i64));
                id
            })
            .collect()
    }

    /// The `receivedDateTime` Graph reports for a message.
    pub fn received(&self, user: &str, id: &str) -> String {
        let w = self.world.lock().unwrap();
        w.mailboxes[&user.to_lowercase()]
            .folders
            .iter()
            .find_map(|f| f.received.get(id).cloned())
            .expect("message")
    }

    /// Expires every delta token issued so far for the folder.
    pub fn expire_deltas(&self, user: &str, folder_id: &str) {
        let mut w = self.world.lock().unwrap();
        let mb = w.mailboxes.get_mut(&user.to_lowercase()).expect("mailbox");
        if let Some(f) = mb.folders.iter_mut().find(|f| f.id == folder_id) {
            f.epoch += 1;
        }
    }

    /// (message id, MIME) of a folder.
    pub fn messages(&self, user: &str, folder_id: &str) -> Vec<(String, Vec<u8>)> {
        let w = self.world.lock().unwrap();
        w.mailboxes[&user.to_lowercase()]
            .folders
            .iter()
            .find(|f| f.id == folder_id)
            .map(|f| f.messages.clone())
            .unwrap_or_default()
    }

    /// The introspection endpoint for Dovecot's `oauth2` passdb.
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.url)
    }

    pub fn calls(&self, kind: &str) -> u32 {
        self.world
            .lock()
            .unwrap()
            .calls
            .get(kind)
            .copied()
            .unwrap_or(0)
    }
}

type Shared = State<Arc<Mutex<World>>>;

/// The arrival time of the `n`th message delivered: 2024-02-01 09:00 UTC, a minute apart.
fn received_at(n: i64) -> String {
    let t = time::macros::datetime!(2024-02-01 09:00 UTC) + time::Duration::minutes(n);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// RFC 7662 token introspection, as Dovecot's `oauth2` passdb asks it (form POST `token=`).
async fn introspect(State(world): Shared, body: Bytes) -> Response {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut w = world.lock().unwrap();
    count(&mut w, "introspect");
    let answer = match w.imap_tokens.get(&token) {
        Some(user) => {
            json!({ "active": true, "username": user, "scope": "https://outlook.office.com/IMAP.AccessAsUser.All" })
        }
        None => json!({ "active": false }),
    };
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": { "code": code, "message": message } }).to_string(),
    )
        .into_response()
}

fn count(w: &mut World, kind: &'static str) {
    *w.calls.entry(kind).or_default() += 1;
}

async fn token(State(world): Shared, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut w = world.lock().unwrap();
    count(&mut w, "token");
    let bad = |code: &str, desc: &str| {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({ "error": code, "error_description": desc, "error_codes": [7000215] })
                .to_string(),
        )
            .into_response()
    };
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return bad(
            "unauthorized_client",
            "AADSTS700016: Application not found.",
        );
    }
    let secret_ok = form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let mut user = None;
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            if !secret_ok {
                return bad(
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided.",
                );
            }
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect, who)) = w.codes.remove(&code) else {
                return bad(
                    "invalid_grant",
                    "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                );
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if pkce_s256(&verifier) != challenge {
                return bad(
                    "invalid_grant",
                    "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                );
            }
            if form.get("redirect_uri") != Some(&redirect) {
                return bad(
                    "invalid_grant",
                    "AADSTS50148: The redirect_uri specified in the token request does not match the redirect_uri used when acquiring the authorization code.",
                );
            }
            user = Some(who);
        }
        Some("refresh_token") => {
            if !secret_ok {
                return bad(
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided.",
                );
            }
            let old = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(who) = w.refresh.remove(&old) else {
                return bad(
                    "invalid_grant",
                    "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                );
            };
            user = Some(who);
        }
        Some("client_credentials") => {
            if w.secret_revoked
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("content-type", "application/json")],
                    json!({ "error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided." }).to_string(),
                )
                    .into_response();
            }
            if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default")
            {
                return bad(
                    "invalid_scope",
                    "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default.",
                );
            }
        }
        _ => {
            return bad(
                "unsupported_grant_type",
                "AADSTS70003: unsupported grant type",
            );
        }
    }
    w.issued += 1;
    let access = format!("eyJ0eXAi.fake.{}", w.issued);
    w.tokens.insert(access.clone());
    let mut body = json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access });
    if let Some(user) = user {
        // Delegated: a new refresh token every time (Microsoft rotates them).
        let refresh = format!("0.AAAA-refresh.{}", w.issued);
        w.refresh.insert(refresh.clone(), user.clone());
        w.token_users.insert(access, user);
        body["refresh_token"] = json!(refresh);
        body["scope"] =
            json!("https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read");
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn pkce_s256(verifier: &str) -> String {
    use base64::prelude::*;
    use sha2::Digest;
    BASE64_URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The sign-in and consent page, answered at once: back to the redirect URI with a code (or
/// `error=access_denied` when the person declines), the state passed through.
async fn authorize(
    State(world): Shared,
    Path(_tenant): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut w = world.lock().unwrap();
    count(&mut w, "authorize");
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
    {
        return (
            StatusCode::BAD_REQUEST,
            "AADSTS900144: client_id, response_type=code and a PKCE S256 challenge are required",
        )
            .into_response();
    }
    let redirect = get("redirect_uri");
    let state = encode(&get("state"));
    if w.decline {
        let to = format!(
            "{redirect}?error=access_denied&error_description={}&state={state}",
            encode("AADSTS65004: User declined to consent to access the app.")
        );
        return axum::response::Redirect::to(&to).into_response();
    }
    w.issued += 1;
    let code = format!("0.AXcode{}", w.issued);
    let user = w.signed_in.clone();
    w.codes.insert(
        code.clone(),
        (get("code_challenge"), redirect.clone(), user),
    );
    axum::response::Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

/// `/v1.0/me/...` is `/v1.0/users/{signed-in user}/...` for a delegated token.
async fn me_alias(State(world): Shared, mut req: axum::extract::Request) -> axum::extract::Request {
    let Some(rest) = req.uri().path().strip_prefix("/v1.0/me/").map(String::from) else {
        return req;
    };
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let Some(user) = world.lock().unwrap().token_users.get(&token).cloned() else {
        return req;
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("/v1.0/users/{}/{rest}{query}", encode(&user)).parse() {
        *req.uri_mut() = uri;
    }
    req
}

/// `GET /v1.0/me?$select=mail,userPrincipalName`: the signed-in user of a delegated token.
async fn me(State(world): Shared, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    if let Some(r) = refusal(&mut w, &headers) {
        return r;
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match w.token_users.get(token) {
        Some(user) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            json!({ "mail": user, "userPrincipalName": user, "displayName": user }).to_string(),
        )
            .into_response(),
        None => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        ),
    }
}

/// Checks the bearer token, consent and throttling; `Some` is the refusal to answer with.
fn refusal(w: &mut World, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !w.tokens.contains(token) {
        return Some(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty or invalid.",
        ));
    }
    if w.consent_revoked {
        return Some(graph_error(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    if w.throttle_next > 0 {
        w.throttle_next -= 1;
        w.throttled += 1;
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        );
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return Some(r);
    }
    None
}

fn folder_json(f: &Folder, all: &[Folder]) -> Value {
    json!({
        "id": f.id,
        "displayName": f.name,
        "parentFolderId": f.parent.clone().unwrap_or_else(|| "AAMkRoot=".into()),
        "childFolderCount": all.iter().filter(|c| c.parent.as_deref() == Some(&f.id)).count(),
        "unreadItemCount": 0,
        "totalItemCount": f.messages.len(),
        "isHidden": false,
    })
}

/// One page of a folder listing, `$top` long, `$skip` into the list.
fn folder_page(base: &str, list: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let top: usize = q
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(10)
        .min(2);
    let skip: usize = q.get("$skip").and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = list.iter().skip(skip).take(top).cloned().collect();
    let mut body = json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/mailFolders", "value": page });
    if skip + top < list.len() {
        body["@odata.nextLink"] = json!(format!("{base}?$top={top}&$skip={}", skip + top));
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn folders(
    State(world): Shared,
    Path(user): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    count(&mut w, "folders");
    if let Some(r) = refusal(&mut w, &headers) {
        return r;
    }
    let Some(mb) = w.mailboxes.get(&user.to_lowercase()) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            "The requested user is invalid.",
        );
    };
    let list = mb
        .folders
        .iter()
        .filter(|f| f.parent.is_none())
        .map(|f| folder_json(f, &mb.folders))
        .collect();
    let base = format!("{}/v1.0/users/{user}/mailFolders", base_url(&headers));
    folder_page(&base, list, &q)
}

/// `GET /mailFolders/{id}`: one folder by id, or by its well-known name (any case).
async fn one_folder(
    State(world): Shared,
    Path((user, folder)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    count(&mut w, "folders");
    if let Some(r) = refusal(&mut w, &headers) {
        return r;
    }
    let Some(mb) = w.mailboxes.get(&user.to_lowercase()) else {
        return graph_error(StatusCode::NOT_FOUND, "ErrorInvalidUser", "invalid user");
    };
    match mb.folders.iter().find(|f| {
        f.id == folder
            || f.well_known
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&folder))
    }) {
        Some(f) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            folder_json(f, &mb.folders).to_string(),
        )
            .into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
    }
}

async fn child_folders(
    State(world): Shared,
    Path((user, folder)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    count(&mut w, "folders");
    if let Some(r) = refusal(&mut w, &headers) {
        return r;
    }
    let Some(mb) = w.mailboxes.get(&user.to_lowercase()) else {
        return graph_error(StatusCode::NOT_FOUND, "ErrorInvalidUser", "invalid user");
    };
    let list = mb
        .folders
        .iter()
        .filter(|f| f.parent.as_deref() == Some(folder.as_str()))
        .map(|f| folder_json(f, &mb.folders))
        .collect();
    let base = format!(
        "{}/v1.0/users/{user}/mailFolders/{}/childFolders",
        base_url(&headers),
        encode(&folder)
    );
    folder_page(&base, list, &q)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `$skiptoken` = `{epoch}.{from}.{end}` (a round in progress), `$deltatoken` = `{epoch}.{end}`.
async fn delta(
    State(world): Shared,
    Path((user, folder)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    count(&mut w, "delta");
    if let Some(r) = refusal(&mut w, &headers) {
        return r;
    }
    let page_size = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(w.page_size_default)
        .min(w.page_size_default);
    let Some(f) = w
        .mailboxes
        .get(&user.to_lowercase())
        .and_then(|mb| mb.folders.iter().find(|f| f.id == folder))
    else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let parse = |t: &str| -> Vec<usize> { t.split('.').filter_map(|p| p.parse().ok()).collect() };
    let (epoch, from, end) = if let Some(t) = q.get("$skiptoken") {
        match parse(t)[..] {
            [e, from, end] => (e as u32, from, end),
            _ => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "bad skiptoken"),
        }
    } else if let Some(t) = q.get("$deltatoken") {
        match parse(t)[..] {
            [e, start] => (e as u32, start, f.messages.len()),
            _ => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "bad deltatoken"),
        }
    } else {
        (f.epoch, 0, f.messages.len())
    };
    if epoch < f.epoch {
        return graph_error(
            StatusCode::GONE,
            "SyncStateNotFound",
            "The sync state generation is not found. Please do a full sync.",
        );
    }
    let until = (from + page_size).min(end);
    let value: Vec<Value> = f.messages[from..until]
        .iter()
        .map(|(id, _)| json!({ "@odata.type": "#microsoft.graph.message", "@odata.etag": "W/\"CQAAABYAAAA\"", "id": id, "receivedDateTime": f.received.get(id) }))
        .collect();
    let base = format!(
        "{}/v1.0/users/{user}/mailFolders/{}/messages/delta",
        base_url(&headers),
        encode(&folder)
    );
    let mut body = json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)", "value": value });
    if until < end {
        body["@odata.nextLink"] = json!(format!("{base}?$skiptoken={}.{until}.{end}", f.epoch));
    } else {
        body["@odata.deltaLink"] = json!(format!("{base}?$deltatoken={}.{end}", f.epoch));
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn value(
    State(world): Shared,
    Path((user, id, value)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let delay = {
        let mut w = world.lock().unwrap();
        count(&mut w, "value");
        if let Some(r) = refusal(&mut w, &headers) {
            return r;
        }
        w.value_delay_ms
    };
    if value != "$value" {
        return graph_error(StatusCode::NOT_FOUND, "ResourceNotFound", "no such segment");
    }
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let w = world.lock().unwrap();
    let found = w
        .mailboxes
        .get(&user.to_lowercase())
        .and_then(|mb| {
            mb.folders
                .iter()
                .flat_map(|f| f.messages.iter())
                .find(|(m, _)| *m == id)
        })
        .map(|(_, raw)| raw.clone());
    match found {
        Some(raw) => (StatusCode::OK, [("content-type", "text/plain")], raw).into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
    }
}
