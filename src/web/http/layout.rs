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

/// A menu of the top navigation (a `<details>` that opens without script), or a single link
/// when `label` is empty or only one of its entries is visible to the user.
pub struct NavGroup {
    pub label: &'static str,
    pub items: Vec<NavItem>,
}

impl NavGroup {
    /// True when the current page is one of the group's entries.
    pub fn active(&self) -> bool {
        self.items.iter().any(|i| i.active)
    }

    /// The sum of the entries' badges, shown on the closed menu.
    pub fn badge(&self) -> i64 {
        self.items.iter().map(|i| i.badge).sum()
    }

    /// Rendered as a plain link rather than a menu.
    pub fn is_link(&self) -> bool {
        self.label.is_empty() || self.items.len() == 1
    }
}

/// Menus of the top navigation; an entry names its menu by one of these ("" = top level).
pub mod menu {
    pub const TOP: &str = "";
    pub const MAIL: &str = "Mail";
    pub const ARCHIVING: &str = "Archiving";
    pub const ADMIN: &str = "Admin";
}

/// The navigation, in order: (menu, href, label, permission). Each entry is shown only with its
/// permission; a menu sits where its first entry is. To add a page, add one line here (and the
/// route to `routes::ALL`).
const NAV: &[(&str, &str, &str, Permission)] = &[
    (menu::TOP, "/", "Dashboard", Permission::ViewDashboard),
    (menu::MAIL, "/messages", "Messages", Permission::ViewMail),
    (menu::MAIL, "/archives", "Archives", Permission::ViewMail),
    (
        menu::MAIL,
        "/quarantine",
        "Quarantine",
        Permission::ViewQuarantine,
    ),
    (
        menu::ARCHIVING,
        "/accounts",
        "Accounts",
        Permission::ManageAccounts,
    ),
    (
        menu::ARCHIVING,
        "/workers",
        "Workers",
        Permission::ViewWorkers,
    ),
    (
        menu::ARCHIVING,
        "/retention",
        "Retention",
        Permission::ManageRetention,
    ),
    (
        menu::ARCHIVING,
        "/holds",
        "Holds",
        Permission::ManageRetention,
    ),
    (
        menu::ARCHIVING,
        "/deletions",
        "Deletions",
        Permission::DeleteMail,
    ),
    (
        menu::ARCHIVING,
        "/verify",
        "Verify",
        Permission::ViewWorkers,
    ),
    (menu::ADMIN, "/users", "Users", Permission::ManageUsers),
    (menu::ADMIN, "/roles", "Roles", Permission::ManageRoles),
    (
        menu::ADMIN,
        "/settings",
        "Settings",
        Permission::ManageSettings,
    ),
    (menu::ADMIN, "/audit", "Audit log", Permission::ViewAudit),
    (menu::ADMIN, "/logs", "Logs", Permission::ManageSettings),
    (menu::TOP, "/reports", "Reports", Permission::ViewReports),
    (menu::TOP, "/alerts", "Alerts", Permission::ViewWorkers),
];

/// At most this many visible entries are shown side by side without menus (a reader's few
/// links stay one click away); more are grouped.
const FLAT_UP_TO: usize = 6;

/// The user's navigation: entries they may use, grouped into menus when there are many.
fn navigation(current: &str, user: &CurrentUser) -> Vec<NavGroup> {
    let visible: Vec<(&'static str, NavItem)> = NAV
        .iter()
        .filter(|(_, _, _, p)| user.can(*p))
        .map(|&(group, href, label, _)| {
            let item = NavItem {
                href,
                label,
                active: href == current || (href != "/" && current.starts_with(href)),
                badge: if href == "/alerts" {
                    user.open_alerts
                } else {
                    0
                },
            };
            (group, item)
        })
        .collect();
    let flat = visible.len() <= FLAT_UP_TO;
    let mut groups: Vec<NavGroup> = Vec::new();
    for (group, item) in visible {
        let label = if flat { menu::TOP } else { group };
        match groups
            .iter_mut()
            .find(|g| !label.is_empty() && g.label == label)
        {
            Some(g) => g.items.push(item),
            None => groups.push(NavGroup {
                label,
                items: vec![item],
            }),
        }
    }
    groups
}

/// Embedded in every page template as `page`.
pub struct PageContext {
    pub title: String,
    pub nav: Vec<NavGroup>,
    /// auto (follow the system), light or dark.
    pub theme: String,
    pub version: &'static str,
    /// Signed-in username; empty when anonymous.
    pub username: String,
    /// For every form on the page, including sign-out.
    pub csrf_token: String,
    pub profile_active: bool,
    /// The zone every time on the page is shown in (the footer names it); empty when anonymous.
    pub timezone: String,
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
            timezone: String::new(),
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
        let nav = navigation(current, user);
        Self {
            title: title.into(),
            nav,
            theme: user.theme.clone(),
            version: env!("CARGO_PKG_VERSION"),
            username: user.username.clone(),
            csrf_token: user.csrf.clone(),
            profile_active: current.starts_with("/profile"),
            timezone: crate::render::format::zone_name(&user.timezone),
        }
    }
}
