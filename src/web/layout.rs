//! What every page's layout needs: title, navigation, theme, version.

/// One entry of the top navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

/// Embedded in every page template as `page`.
pub struct PageContext {
    pub title: String,
    pub nav: Vec<NavItem>,
    /// auto (follow the system), light or dark.
    pub theme: &'static str,
    pub version: &'static str,
}

impl PageContext {
    pub fn new(title: impl Into<String>, current: &str) -> Self {
        let nav = [("/", "Dashboard")]
            .into_iter()
            .map(|(href, label)| NavItem {
                href,
                label,
                active: href == current,
            })
            .collect();
        Self {
            title: title.into(),
            nav,
            theme: "auto",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
