//! What every page's layout needs: title, navigation filtered by the user's permissions,
//! the user menu with its sign-out form (CSRF token), theme and version.

use super::extract::CurrentUser;
use crate::auth::Permission;

/// One entry of the top navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
    /// A count shown beside the label (open alerts); 0 shows nothing.
    pub badge: i64,
}

/// The navigation, each entry shown only with its permission.
const NAV: &[(&str, &str, Permission)] = &[
    ("/", "Dashboard", Permission::ViewDashboard),
    ("/messages", "Messages", Permission::ViewMail),
    ("/archives", "Archives", Permission::ViewMail),
    ("/quarantine", "Quarantine", Permission::ViewQuarantine),
    ("/users", "Users", Permission::ManageUsers),
    ("/roles", "Roles", Permission::ManageRoles),
    ("/accounts", "Accounts", Permission::ManageAccounts),
    ("/retention", "Retention", Permission::ManageRetention),
    ("/holds", "Holds", Permission::ManageRetention),
    ("/workers", "Workers", Permission::ViewWorkers),
    ("/alerts", "Alerts", Permission::ViewWorkers),
    ("/verify", "Verify", Permission::ViewWorkers),
    ("/audit", "Audit log", Permission::ViewAudit),
];

/// Embedded in every page template as `page`.
pub struct PageContext {
    pub title: String,
    pub nav: Vec<NavItem>,
    /// auto (follow the system), light or dark.
    pub theme: String,
    pub version: &'static str,
    /// Signed-in username; empty when anonymous.
    pub username: String,
    /// For every form on the page, including sign-out.
    pub csrf_token: String,
    pub profile_active: bool,
}

impl PageContext {
    /// A page without a session (health-style pages, errors before setup).
    pub fn new(title: impl Into<String>, _current: &str) -> Self {
        Self {
            title: title.into(),
            nav: Vec::new(),
            theme: "auto".into(),
            version: env!("CARGO_PKG_VERSION"),
            username: String::new(),
            csrf_token: String::new(),
            profile_active: false,
        }
    }

    /// Setup and sign-in pages: no navigation, but forms need the token.
    pub fn anonymous(title: impl Into<String>, current: &str, csrf_token: &str) -> Self {
        Self {
            csrf_token: csrf_token.to_owned(),
            ..Self::new(title, current)
        }
    }

    /// The layout of a page a signed-in user sees: title, current nav entry, their menu.
    pub fn for_user(title: impl Into<String>, current: &str, user: &CurrentUser) -> Self {
        let nav = NAV
            .iter()
            .filter(|(_, _, p)| user.can(*p))
            .map(|&(href, label, _)| NavItem {
                href,
                label,
                active: href == current || (href != "/" && current.starts_with(href)),
                badge: if href == "/alerts" {
                    user.open_alerts
                } else {
                    0
                },
            })
            .collect();
        Self {
            title: title.into(),
            nav,
            theme: user.theme.clone(),
            version: env!("CARGO_PKG_VERSION"),
            username: user.username.clone(),
            csrf_token: user.csrf.clone(),
            profile_active: current.starts_with("/profile"),
        }
    }
}
