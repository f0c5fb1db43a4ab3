//! The one list of every route and who may use it. Area routers register through [`Area`],
//! which records what they register; a test compares that record with [`ALL`] and then walks
//! [`ALL`] for every role (the authorisation matrix), so a route cannot be added silently.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{get, post};

use super::state::AppState;
use crate::auth::Permission;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not, also before setup (probes, assets).
    Public,
    /// Only while no user exists: afterwards 404 for everyone.
    SetupOnly,
    /// The sign-in pages: usable without a session.
    Anonymous,
    /// Any signed-in user.
    SignedIn,
    /// Signed-in users whose roles include the permission.
    Permission(Permission),
    /// Like `Permission`, and the `{id}` is an archive account the user must be granted.
    Archive(Permission),
    /// The JSON API: a bearer token (never a session) whose scopes cover the permission, of a
    /// user who holds it at the moment of the request.
    Token(Permission),
}

/// One route and who may use it.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

const fn r(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

use Access::*;
use Permission as P;

/// Every route of the app with its access rule; a test checks it against the router.
pub const ALL: &[Route] = &[
    r(Method::GET, "/healthz", Public),
    r(Method::GET, "/readyz", Public),
    r(Method::GET, "/metrics", Public),
    r(Method::GET, "/static/{*path}", Public),
    r(Method::GET, "/favicon.ico", Public),
    r(Method::GET, "/setup", SetupOnly),
    r(Method::POST, "/setup", SetupOnly),
    r(Method::GET, "/login", Anonymous),
    r(Method::POST, "/login", Anonymous),
    r(Method::GET, "/login/local", Anonymous),
    r(Method::GET, "/login/oidc", Anonymous),
    r(Method::GET, "/login/oidc/callback", Anonymous),
    r(Method::GET, "/login/totp", Anonymous),
    r(Method::POST, "/login/totp", Anonymous),
    r(Method::GET, "/password/forgot", Anonymous),
    r(Method::POST, "/password/forgot", Anonymous),
    r(Method::GET, "/password/reset", Anonymous),
    r(Method::POST, "/password/reset", Anonymous),
    r(Method::GET, "/invitation", Anonymous),
    r(Method::POST, "/invitation", Anonymous),
    r(Method::GET, "/password/change", SignedIn),
    r(Method::POST, "/password/change", SignedIn),
    r(Method::POST, "/logout", SignedIn),
    r(Method::GET, "/", Permission(P::ViewDashboard)),
    r(Method::GET, "/archives", Permission(P::ViewMail)),
    r(Method::GET, "/archives/{id}", Archive(P::ViewMail)),
    r(Method::GET, "/messages", Permission(P::ViewMail)),
    r(
        Method::GET,
        "/messages/search-help",
        Permission(P::ViewMail),
    ),
    r(Method::GET, "/messages/export", Permission(P::ExportMail)),
    r(Method::POST, "/messages/export", Permission(P::ExportMail)),
    r(Method::GET, "/messages/{id}", Permission(P::ViewMail)),
    r(Method::GET, "/messages/{id}/body", Permission(P::ViewMail)),
    r(Method::GET, "/messages/{id}/raw", Permission(P::ViewMail)),
    r(
        Method::GET,
        "/messages/{id}/attachments/{n}",
        Permission(P::ViewMail),
    ),
    r(
        Method::GET,
        "/messages/{id}/cid/{cid}",
        Permission(P::ViewMail),
    ),
    r(Method::GET, "/profile", SignedIn),
    r(Method::POST, "/profile/password", SignedIn),
    r(Method::POST, "/profile/email", SignedIn),
    r(Method::POST, "/profile/preferences", SignedIn),
    r(Method::POST, "/profile/sessions/end", SignedIn),
    r(Method::GET, "/profile/totp", SignedIn),
    r(Method::POST, "/profile/totp", SignedIn),
    r(Method::POST, "/profile/totp/remove", SignedIn),
    r(Method::POST, "/profile/totp/recovery", SignedIn),
    r(Method::GET, "/profile/tokens", SignedIn),
    r(Method::POST, "/profile/tokens", SignedIn),
    r(Method::POST, "/profile/tokens/{id}/revoke", SignedIn),
    r(Method::GET, "/tokens", Permission(P::ManageUsers)),
    r(
        Method::POST,
        "/tokens/{id}/revoke",
        Permission(P::ManageUsers),
    ),
    r(Method::GET, "/users", Permission(P::ManageUsers)),
    r(Method::GET, "/users/new", Permission(P::ManageUsers)),
    r(Method::GET, "/users/invite", Permission(P::ManageUsers)),
    r(
        Method::POST,
        "/users/invitations",
        Permission(P::ManageUsers),
    ),
    r(
        Method::POST,
        "/users/invitations/{id}/resend",
        Permission(P::ManageUsers),
    ),
    r(
        Method::POST,
        "/users/invitations/{id}/revoke",
        Permission(P::ManageUsers),
    ),
    r(Method::POST, "/users", Permission(P::ManageUsers)),
    r(Method::GET, "/users/{id}", Permission(P::ManageUsers)),
    r(Method::POST, "/users/{id}", Permission(P::ManageUsers)),
    r(
        Method::POST,
        "/users/{id}/enabled",
        Permission(P::ManageUsers),
    ),
    r(
        Method::POST,
        "/users/{id}/password",
        Permission(P::ManageUsers),
    ),
    r(
        Method::POST,
        "/users/{id}/sessions/end",
        Permission(P::ManageUsers),
    ),
    r(
        Method::POST,
        "/users/{id}/totp/remove",
        Permission(P::ManageUsers),
    ),
    r(
        Method::POST,
        "/users/{id}/delete",
        Permission(P::ManageUsers),
    ),
    r(Method::GET, "/roles", Permission(P::ManageRoles)),
    r(Method::GET, "/roles/new", Permission(P::ManageRoles)),
    r(Method::POST, "/roles", Permission(P::ManageRoles)),
    r(Method::GET, "/roles/{id}", Permission(P::ManageRoles)),
    r(Method::POST, "/roles/{id}", Permission(P::ManageRoles)),
    r(
        Method::POST,
        "/roles/{id}/delete",
        Permission(P::ManageRoles),
    ),
    r(Method::GET, "/retention", Permission(P::ManageRetention)),
    r(
        Method::POST,
        "/retention/policies",
        Permission(P::ManageRetention),
    ),
    r(
        Method::GET,
        "/retention/policies/{id}",
        Permission(P::ManageRetention),
    ),
    r(
        Method::POST,
        "/retention/policies/{id}",
        Permission(P::ManageRetention),
    ),
    r(
        Method::POST,
        "/retention/policies/{id}/delete",
        Permission(P::ManageRetention),
    ),
    r(
        Method::POST,
        "/retention/purge",
        Permission(P::ManageRetention),
    ),
    r(
        Method::GET,
        "/retention/stats.csv",
        Permission(P::ManageRetention),
    ),
    r(Method::GET, "/holds", Permission(P::ManageRetention)),
    r(
        Method::POST,
        "/messages/hold",
        Permission(P::ManageRetention),
    ),
    r(Method::POST, "/messages/delete", Permission(P::DeleteMail)),
    r(
        Method::GET,
        "/messages/delete-results",
        Permission(P::DeleteMail),
    ),
    r(
        Method::POST,
        "/messages/delete-results",
        Permission(P::DeleteMail),
    ),
    r(Method::GET, "/deletions", Permission(P::DeleteMail)),
    r(
        Method::POST,
        "/deletions/{id}/approve",
        Permission(P::DeleteMail),
    ),
    r(
        Method::POST,
        "/deletions/{id}/reject",
        Permission(P::DeleteMail),
    ),
    r(Method::POST, "/holds", Permission(P::ManageRetention)),
    r(
        Method::POST,
        "/holds/{id}/release",
        Permission(P::ManageRetention),
    ),
    r(Method::GET, "/audit", Permission(P::ViewAudit)),
    r(Method::GET, "/audit.csv", Permission(P::ViewAudit)),
    r(Method::GET, "/accounts", Permission(P::ManageAccounts)),
    r(Method::POST, "/accounts", Permission(P::ManageAccounts)),
    r(Method::GET, "/accounts/{id}", Permission(P::ManageAccounts)),
    r(
        Method::POST,
        "/accounts/{id}",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::POST,
        "/accounts/{id}/enabled",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::POST,
        "/accounts/{id}/test",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::POST,
        "/accounts/{id}/delete",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::POST,
        "/accounts/{id}/sync",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::GET,
        "/accounts/{id}/status",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::POST,
        "/accounts/{id}/connect",
        Permission(P::ManageAccounts),
    ),
    r(
        Method::GET,
        "/accounts/oauth/callback",
        Permission(P::ManageAccounts),
    ),
    r(Method::GET, "/workers", Permission(P::ViewWorkers)),
    r(Method::GET, "/workers/status", Permission(P::ViewWorkers)),
    r(Method::GET, "/alerts", Permission(P::ViewWorkers)),
    r(Method::GET, "/verify", Permission(P::ViewWorkers)),
    r(
        Method::POST,
        "/alerts/{id}/acknowledge",
        Permission(P::ManageSettings),
    ),
    r(Method::GET, "/reports", Permission(P::ViewReports)),
    r(Method::GET, "/reports/{name}", Permission(P::ViewReports)),
    r(Method::GET, "/settings", Permission(P::ManageSettings)),
    r(Method::GET, "/logs", Permission(P::ManageSettings)),
    r(Method::POST, "/settings", Permission(P::ManageSettings)),
    r(
        Method::POST,
        "/settings/alerts",
        Permission(P::ManageSettings),
    ),
    r(
        Method::POST,
        "/settings/test-email",
        Permission(P::ManageSettings),
    ),
    r(Method::GET, "/quarantine", Permission(P::ViewQuarantine)),
    r(
        Method::GET,
        "/quarantine/{id}",
        Permission(P::ViewQuarantine),
    ),
    r(
        Method::POST,
        "/quarantine/{id}/release",
        Permission(P::ManageQuarantine),
    ),
    r(
        Method::POST,
        "/quarantine/{id}/delete",
        Permission(P::ManageQuarantine),
    ),
    r(
        Method::GET,
        "/quarantine/{id}/download",
        Permission(P::ManageQuarantine),
    ),
    // The JSON API (web::api): bearer tokens only.
    r(Method::GET, "/api/v1/openapi.json", Public),
    r(Method::GET, "/api/v1/messages", Token(P::ViewMail)),
    r(Method::GET, "/api/v1/messages/{id}", Token(P::ViewMail)),
    r(Method::GET, "/api/v1/messages/{id}/raw", Token(P::ViewMail)),
    r(
        Method::GET,
        "/api/v1/messages/{id}/attachments/{n}",
        Token(P::ViewMail),
    ),
    r(
        Method::GET,
        "/api/v1/messages/{id}/thread",
        Token(P::ViewMail),
    ),
    r(Method::GET, "/api/v1/accounts", Token(P::ViewMail)),
    r(
        Method::GET,
        "/api/v1/accounts/{id}/ledger",
        Token(P::ManageAccounts),
    ),
    r(Method::POST, "/api/v1/exports", Token(P::ExportMail)),
    r(Method::GET, "/api/v1/exports/{id}", Token(P::ExportMail)),
    r(
        Method::GET,
        "/api/v1/exports/{id}/download",
        Token(P::ExportMail),
    ),
    r(Method::GET, "/api/v1/quarantine", Token(P::ViewQuarantine)),
    r(
        Method::POST,
        "/api/v1/quarantine/{id}/release",
        Token(P::ManageQuarantine),
    ),
    r(
        Method::POST,
        "/api/v1/quarantine/{id}/delete",
        Token(P::ManageQuarantine),
    ),
    r(Method::GET, "/api/v1/audit", Token(P::ViewAudit)),
];

/// Looks up the access rule of a registered route.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    ALL.iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.access)
}

/// A router that remembers which (method, path) pairs it registered.
pub struct Area {
    router: Router<AppState>,
    registered: Vec<(Method, &'static str)>,
}

impl Default for Area {
    fn default() -> Self {
        Self::new()
    }
}

impl Area {
    /// An area with no routes yet.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            registered: Vec::new(),
        }
    }

    /// Adds a GET route.
    pub fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self.registered.push((Method::GET, path));
        self
    }

    /// Adds a POST route.
    pub fn post<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, post(handler));
        self.registered.push((Method::POST, path));
        self
    }

    /// The routes added so far (for the route table test).
    pub fn registered(&self) -> &[(Method, &'static str)] {
        &self.registered
    }

    /// The axum router of this area.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
