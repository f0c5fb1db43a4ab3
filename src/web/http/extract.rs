//! Axum glue for `auth`: who is asking ([`CurrentUser`]), may they ([`Require`]), and is this
//! form really from our page ([`CsrfForm`]). The checks themselves live in `auth`.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use super::{cookies, error};
use crate::audit::Actor;
use crate::auth::{Grants, Permission, PermissionSet, csrf};
use crate::error::Error;
use crate::render::format;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

/// The signed-in user of this request, with their permissions and archive grants.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub permissions: PermissionSet,
    /// Pass this to every query that reads archived mail (see `auth::grants`).
    pub grants: Grants,
    pub has_totp: bool,
    pub timezone: String,
    pub date_format: String,
    pub page_size: i32,
    pub theme: String,
    pub csrf: String,
    /// Open alerts, for the navigation badge (0 for users who cannot see alerts).
    pub open_alerts: i64,
    /// For audit rows: user, IP address, user agent.
    pub actor: Actor,
}

impl CurrentUser {
    /// True when the user holds `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.has(p)
    }

    /// `t` in this reader's time zone and date format.
    pub fn format_time(&self, t: time::OffsetDateTime) -> String {
        format::time_in_zone(t, &self.timezone, &self.date_format)
    }

    /// Like [`Self::format_time`], with a dash for a time that never happened.
    pub fn format_when(&self, t: Option<time::OffsetDateTime>) -> String {
        t.map(|t| self.format_time(t))
            .unwrap_or_else(|| format::NO_TIME.to_string())
    }
}

/// The session's CSRF token (for forms on anonymous pages too).
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// Refusal for a request without a (valid) session: the sign-in page for a browser GET (which
/// remembers the page asked for in a cookie), 401 otherwise.
pub struct SignInRequired {
    redirect: Option<HeaderValue>,
}

impl IntoResponse for SignInRequired {
    fn into_response(self) -> Response {
        if let Some(next) = self.redirect {
            let mut r = Redirect::to("/login").into_response();
            r.headers_mut().append(header::SET_COOKIE, next);
            r
        } else {
            error::page(StatusCode::UNAUTHORIZED, "Please sign in first.")
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = SignInRequired;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<Arc<CurrentUser>>() {
            return Ok(CurrentUser::clone(user));
        }
        let redirect = matches!(parts.method, Method::GET | Method::HEAD).then(|| {
            let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let secure = parts
                .extensions
                .get::<cookies::Secure>()
                .copied()
                .unwrap_or(cookies::Secure(true));
            cookies::remember_next(next, secure)
        });
        Err(SignInRequired { redirect })
    }
}

/// `Some` when signed in, for pages that work both ways.
pub struct MaybeUser(pub Option<CurrentUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(
            parts
                .extensions
                .get::<Arc<CurrentUser>>()
                .map(|u| CurrentUser::clone(u)),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<CsrfToken>().cloned().ok_or_else(|| {
            Error::Internal("CSRF token missing: guard middleware not installed".into())
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Arc<CurrentUser>>()
            .map(|u| u.actor.clone())
            .or_else(|| parts.extensions.get::<Actor>().cloned())
            .unwrap_or_default())
    }
}

pub use crate::auth::permissions::{PermissionMarker, perm};

/// A signed-in user holding permission `P`; anyone else gets sign-in or 403.
pub struct Require<P: PermissionMarker>(pub CurrentUser, PhantomData<P>);

impl<P: PermissionMarker> Deref for Require<P> {
    type Target = CurrentUser;
    fn deref(&self) -> &CurrentUser {
        &self.0
    }
}

impl<S: Send + Sync, P: PermissionMarker> FromRequestParts<S> for Require<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !user.can(P::PERMISSION) {
            return Err(Error::Forbidden.into_response());
        }
        Ok(Require(user, PhantomData))
    }
}

/// The fields of a form that carries nothing but its CSRF token: a button that confirms an
/// action (`CsrfForm<NoFields>`).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// The fields of a button whose action cannot be undone (delete, revoke, remove): its form
/// carries a box the person ticks (`confirm=yes`). The browser requires the box; [`check`]
/// is the server's own guard, so one stray click never deletes anything.
///
/// [`check`]: Confirmed::check
#[derive(Debug, serde::Deserialize)]
pub struct Confirmed {
    #[serde(default)]
    confirm: String,
}

impl Confirmed {
    /// Ok when the box was ticked.
    pub fn check(&self) -> crate::error::Result<()> {
        if self.confirm == "yes" {
            Ok(())
        } else {
            Err(crate::error::Error::invalid(
                "confirm",
                "Nothing was changed: tick the box beside the button to confirm.",
            ))
        }
    }
}

/// The fields of an enable/disable (pause/resume) button: `enabled=true|false`.
#[derive(Debug, serde::Deserialize)]
pub struct EnabledForm {
    pub enabled: bool,
}

impl EnabledForm {
    /// Back to the item's `page`, saying what was done (`?done=enabled|disabled`).
    pub fn done(&self, page: &str) -> Response {
        let done = if self.enabled { "enabled" } else { "disabled" };
        Redirect::to(&format!("{page}?done={done}")).into_response()
    }
}

/// An urlencoded form whose `csrf_token` field matched the session's token. The guard
/// middleware already refuses unsafe requests without it; checking again here keeps a
/// handler safe even if it is ever mounted outside that middleware.
pub struct CsrfForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let expected = req.extensions().get::<CsrfToken>().cloned();
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let refused = || {
            error::page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            )
        };
        // serde_html_form reads repeated keys into Vecs, which checkbox lists need.
        let fields: Vec<(String, String)> =
            serde_html_form::from_bytes(&body).map_err(|_| refused())?;
        let given = fields
            .iter()
            .find(|(k, _)| k == csrf::FIELD)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !expected.is_some_and(|e| csrf::matches(&e.0, given)) {
            return Err(refused());
        }
        let value: T = serde_html_form::from_bytes(&body).map_err(|e| {
            error::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The form was incomplete or malformed: {e}"),
            )
        })?;
        Ok(CsrfForm(value))
    }
}
