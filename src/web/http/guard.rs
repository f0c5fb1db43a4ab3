//! The middleware every page passes: first-run redirect, session validation (epoch, idle and
//! absolute expiry), CSRF token and Origin check on unsafe methods, and error pages rendered
//! with the signed-in user's layout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use tower_sessions::Session;

use super::cookies;
use super::error::{self, ErrorPageInfo};
use super::extract::{CsrfToken, CurrentUser};
use super::layout::PageContext;
use super::session;
use super::state::AppState;
use crate::audit::Actor;
use crate::auth::{Grants, Permission, csrf, users};
use crate::config;
use crate::error::{Error, Result};

/// Paths that need neither a session nor a user: probes and assets.
pub(crate) fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/favicon.ico")
        || path.starts_with("/static/")
}

/// Middleware: loads the session's user, checks CSRF and Origin on unsafe methods.
pub async fn guard(
    State(state): State<AppState>,
    session: Session,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    // The JSON API authenticates bearer tokens only (`web::api`) and never reads a session.
    if is_exempt(&path) || path.starts_with(crate::web::api::PREFIX) {
        return next.run(req).await;
    }
    match run(state, session, req, next, &path).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: AppState,
    session: Session,
    mut req: Request,
    next: Next,
    path: &str,
) -> Result<Response> {
    if !state.setup_done.load(Ordering::Relaxed) {
        if users::any_exist(&state.pool).await? {
            state.setup_done.store(true, Ordering::Relaxed);
        } else if path != "/setup" && req.extensions().get::<MatchedPath>().is_some() {
            // Unknown addresses keep their 404; every real page leads to the wizard.
            return Ok(Redirect::to("/setup").into_response());
        } else if path == "/setup" && !setup_host_ok(&req, &state) {
            return Ok(error::page(
                StatusCode::MISDIRECTED_REQUEST,
                "Open the setup page at the server's IP address, localhost, or the host name set in server.public_url.",
            ));
        }
    }
    let actor = request_actor(&req, &state);
    let (user, must_change) = match load_user(&state, &session, &actor).await? {
        Some((user, must_change)) => (Some(user), must_change),
        None => (None, false),
    };
    if must_change && !may_wait_for_password_change(path) {
        // An administrator chose this password: nothing else until its owner changes it.
        return Ok(Redirect::to(crate::web::pages::password::CHANGE_PATH).into_response());
    }
    let secure = cookies::Secure(state.settings.served_over_https());
    let nonce = cookies::read(req.headers(), cookies::CSRF);
    let (token, new_nonce) = csrf_token(&state, &session, nonce).await?;

    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if !origin_ok(&req, &state) {
            return Ok(csrf_refused());
        }
        // Without a session token or a nonce cookie no token can match: refuse before reading
        // (up to server.max_request_bytes of) the body.
        if new_nonce.is_some() {
            return Ok(csrf_refused());
        }
        // The token is compared before the body is read: from the `x-csrf-token` header, or
        // from the form's first bytes (our forms carry it as their first field). A POST
        // without it is refused having read at most those bytes, never the whole body.
        let (parts, body) = req.into_parts();
        let header = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (given, body) = match header {
            Some(h) => (Some(h), body),
            None => form_token_first(body).await?,
        };
        if !given.is_some_and(|g| csrf::matches(&token, &g)) {
            return Ok(csrf_refused());
        }
        req = Request::from_parts(parts, body);
    }

    req.extensions_mut().insert(CsrfToken(token.clone()));
    req.extensions_mut().insert(actor.clone());
    req.extensions_mut().insert(secure);
    if let Some(u) = &user {
        req.extensions_mut().insert(u.clone());
    }
    let response = next.run(req).await;
    let mut response = with_user_layout(response, user.as_deref(), &token);
    if let Some(nonce) = new_nonce {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(cookies::CSRF, &nonce, None, secure),
        );
    }
    Ok(response)
}

/// The CSRF token of this request: the session's own when there is a session with one (signed
/// in), else the HMAC of the visitor's nonce cookie under the session key — with a new nonce
/// to set when the visitor has none. No session row is created for anonymous visitors.
async fn csrf_token(
    state: &AppState,
    session: &Session,
    nonce: Option<String>,
) -> Result<(String, Option<String>)> {
    if let Some(token) = session::stored_csrf(session).await? {
        return Ok((token, None));
    }
    let key: &[u8; 32] = &state.keys.session;
    Ok(match nonce.filter(|n| csrf::is_nonce(n)) {
        Some(nonce) => (csrf::anonymous_token(key, &nonce), None),
        None => {
            let nonce = csrf::new_token();
            (csrf::anonymous_token(key, &nonce), Some(nonce))
        }
    })
}

/// What a user who must change their password can still reach: that page, signing out, and
/// the sign-in pages themselves.
fn may_wait_for_password_change(path: &str) -> bool {
    matches!(path, crate::web::pages::password::CHANGE_PATH | "/logout")
}

/// The signed-in user, if the session is still valid (an invalid one is ended here), and
/// whether they must change their password before anything else.
async fn load_user(
    state: &AppState,
    session: &Session,
    actor: &Actor,
) -> Result<Option<(Arc<CurrentUser>, bool)>> {
    let Some(s) = session::signed_in(session).await? else {
        return Ok(None);
    };
    let live = state.live.get();
    let sec = &live.security;
    let fresh = s.is_fresh(
        session::now(),
        sec.session_idle_minutes,
        sec.session_absolute_hours,
    );
    let user = users::find(&state.pool, s.user_id).await?;
    let valid = match &user {
        Some(u) => u.enabled && u.session_epoch == s.epoch && fresh,
        None => false,
    };
    let Some(user) = user.filter(|_| valid) else {
        session::end(session).await?;
        return Ok(None);
    };
    session::touch(session, &s).await?;
    session::keep_idle_limit(session, sec.session_idle_minutes);
    let permissions = users::permissions(&state.pool, user.id).await?;
    let grants = Grants::load(&state.pool, user.id).await?;
    let csrf = session::csrf_token(session).await?;
    let open_alerts = if permissions.has(Permission::ViewWorkers) {
        crate::notify::alerts::open_count(&state.pool).await?
    } else {
        0
    };
    let must_change = user.must_change_password;
    Ok(Some((
        Arc::new(CurrentUser {
            actor: Actor {
                user_id: Some(user.id),
                username: user.username.clone(),
                ..actor.clone()
            },
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            has_totp: user.has_totp(),
            timezone: user.timezone.clone(),
            date_format: user.date_format.clone(),
            page_size: user.page_size,
            theme: user.theme.clone(),
            permissions,
            grants,
            csrf,
            open_alerts,
        }),
        must_change,
    )))
}

/// Who is asking: the client's address (behind a `server.trusted_proxies` proxy, the one its
/// X-Forwarded-For names) and user agent.
pub fn request_actor(req: &Request, state: &AppState) -> Actor {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| {
            let forwarded = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            config::client_ip(c.0.ip(), forwarded, &state.trusted_proxies).to_string()
        })
        .unwrap_or_default();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    Actor {
        user_id: None,
        username: String::new(),
        ip,
        user_agent,
        api_token: None,
    }
}

/// An Origin header, when sent, must be this site: the configured public URL or the Host the
/// request came to. (tower-http's CsrfLayer already refuses cross-site Sec-Fetch-Site.)
fn origin_ok(req: &Request, state: &AppState) -> bool {
    // Without Origin, a Referer (when sent) names the page the form came from.
    let origin = match (
        req.headers().get(header::ORIGIN),
        req.headers().get(header::REFERER),
    ) {
        (Some(o), _) => o.to_str().ok().map(str::to_owned),
        (None, Some(r)) => r.to_str().ok().map(origin_of),
        (None, None) => return true,
    };
    let Some(origin) = origin else {
        return false;
    };
    let origin = origin.as_str();
    if origin == state.settings.public_url() {
        return true;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// Before the first user exists, `/setup` answers only to a Host that a DNS-rebinding page
/// cannot use: an IP address, `localhost`, or the host of `server.public_url`. (A rebinding
/// attack reaches the server under the attacker's own host name.)
fn setup_host_ok(req: &Request, state: &AppState) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return true; // HTTP/1.0 without Host: not a browser on a rebinding page
    };
    let name = host_name(host);
    if name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let public = state.settings.public_url();
    let public_host = public.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    !public_host.is_empty() && name.eq_ignore_ascii_case(host_name(public_host))
}

/// The host of a `Host` header value: without the port, IPv6 without brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => String::new(),
    }
}

/// The CSRF token must start within this many bytes of an urlencoded body.
pub(crate) const TOKEN_WITHIN_BYTES: usize = 8 * 1024;

/// Reads only as much of `body` as it takes to find the `csrf_token` field among its first
/// [`TOKEN_WITHIN_BYTES`] bytes; returns the token (if found) and a body that replays what
/// was read followed by the unread rest, so the handler still sees all of it.
async fn form_token_first(body: Body) -> Result<(Option<String>, Body)> {
    let mut stream = body.into_data_stream();
    let mut head = Vec::new();
    let mut ended = false;
    let token = loop {
        if let Some(t) = token_in(&head, ended) {
            break Some(t);
        }
        if ended || head.len() >= TOKEN_WITHIN_BYTES {
            break None;
        }
        match stream.next().await {
            Some(chunk) => head
                .extend_from_slice(&chunk.map_err(|e| Error::context("read the request body", e))?),
            None => ended = true,
        }
    };
    let replay = futures::stream::once(async move { Ok::<_, axum::Error>(Bytes::from(head)) });
    Ok((token, Body::from_stream(replay.chain(stream))))
}

/// The raw `csrf_token` value among the complete fields that start within the first
/// [`TOKEN_WITHIN_BYTES`] of `head` (the last field is complete only when the body `ended`).
/// Tokens are URL-safe, so no decoding is needed.
fn token_in(head: &[u8], ended: bool) -> Option<String> {
    let mut start = 0;
    while start < head.len().min(TOKEN_WITHIN_BYTES) {
        let end = match head[start..].iter().position(|&b| b == b'&') {
            Some(n) => start + n,
            None if ended => head.len(),
            None => return None,
        };
        let field = &head[start..end];
        if let Some(value) = field.strip_prefix(format!("{}=", csrf::FIELD).as_bytes()) {
            return std::str::from_utf8(value).ok().map(str::to_owned);
        }
        start = end + 1;
    }
    None
}

fn csrf_refused() -> Response {
    error::page(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this site. Go back, reload the page and try again.",
    )
}

/// Error pages are rendered without request context; re-render them with the user's menu.
fn with_user_layout(response: Response, user: Option<&CurrentUser>, token: &str) -> Response {
    let Some(info) = response.extensions().get::<ErrorPageInfo>().cloned() else {
        return response;
    };
    let page = match user {
        Some(u) => PageContext::for_user(info.heading.clone(), "", u),
        None => PageContext::anonymous(info.heading.clone(), "", token),
    };
    let mut fresh = error::render(page, info.status, info.heading, info.message);
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_only_as_a_complete_field_near_the_start() {
        assert_eq!(
            token_in(b"csrf_token=abc&x=1", false).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_in(b"x=1&csrf_token=abc", true).as_deref(),
            Some("abc")
        );
        // Not yet known whether more of the value follows.
        assert_eq!(token_in(b"x=1&csrf_token=ab", false), None);
        assert_eq!(token_in(b"xcsrf_token=abc&y", false), None);
        let mut late = vec![b'a'; TOKEN_WITHIN_BYTES];
        late.extend_from_slice(b"&csrf_token=abc");
        assert_eq!(token_in(&late, true), None, "too far into the body");
    }

    #[tokio::test]
    async fn the_body_after_the_check_is_the_whole_body() {
        let text = format!("csrf_token=abc&big={}", "b".repeat(100_000));
        let (token, body) = form_token_first(Body::from(text.clone())).await.unwrap();
        assert_eq!(token.as_deref(), Some("abc"));
        let replayed = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(replayed, text.as_bytes());
    }
}
