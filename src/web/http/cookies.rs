//! The two small cookies an anonymous visitor gets instead of a server-side session: the nonce
//! behind the sign-in form's CSRF token, and the page to return to after signing in. Neither
//! needs a database row, so a flood of anonymous requests creates none.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use tower_sessions::cookie::{Cookie, SameSite};

/// Random nonce; the form token is its HMAC under the session key (`auth::csrf`).
pub const CSRF: &str = "daygle_csrf";
/// The local path asked for before the sign-in redirect, base64url-encoded.
pub const NEXT: &str = "daygle_next";

/// Whether cookies get the `Secure` flag (the public URL is https); put in the request's
/// extensions by the guard.
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// The value of cookie `name` in the request, if sent.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(|c| c.ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path /, `Secure` over https. `max_age` in
/// seconds; 0 deletes the cookie; `None` lasts for the browser session.
pub fn set(name: &str, value: &str, max_age: Option<i64>, secure: Secure) -> HeaderValue {
    let mut c = Cookie::build((name.to_owned(), value.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure.0);
    if let Some(secs) = max_age {
        c = c.max_age(tower_sessions::cookie::time::Duration::seconds(secs));
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The `daygle_next` cookie remembering `path` for ten minutes.
pub fn remember_next(path: &str, secure: Secure) -> HeaderValue {
    set(
        NEXT,
        &BASE64_URL_SAFE_NO_PAD.encode(path),
        Some(600),
        secure,
    )
}

/// Where to go after sign-in: the remembered local path, or `/`; plus the header that clears
/// the cookie.
pub fn take_next(headers: &HeaderMap, secure: Secure) -> (String, HeaderValue) {
    let next = read(headers, NEXT)
        .and_then(|v| BASE64_URL_SAFE_NO_PAD.decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\"))
        .unwrap_or_else(|| "/".into());
    (next, set(NEXT, "", Some(0), secure))
}
