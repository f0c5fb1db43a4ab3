//! The permission catalogue. Roles are sets of these; handlers ask for one with `Require<P>`.

use std::collections::BTreeSet;
use std::fmt;

/// Everything a role can allow. Stored in `roles.permissions` by [`Permission::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    ViewDashboard,
    ViewMail,
    ExportMail,
    DeleteMail,
    ImportMail,
    ViewQuarantine,
    ManageQuarantine,
    ManageAccounts,
    ManageUsers,
    ManageRoles,
    ManageRetention,
    ViewAudit,
    ManageSettings,
    ViewWorkers,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::ViewDashboard,
        Permission::ViewMail,
        Permission::ExportMail,
        Permission::DeleteMail,
        Permission::ImportMail,
        Permission::ViewQuarantine,
        Permission::ManageQuarantine,
        Permission::ManageAccounts,
        Permission::ManageUsers,
        Permission::ManageRoles,
        Permission::ManageRetention,
        Permission::ViewAudit,
        Permission::ManageSettings,
        Permission::ViewWorkers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewDashboard => "view_dashboard",
            Permission::ViewMail => "view_mail",
            Permission::ExportMail => "export_mail",
            Permission::DeleteMail => "delete_mail",
            Permission::ImportMail => "import_mail",
            Permission::ViewQuarantine => "view_quarantine",
            Permission::ManageQuarantine => "manage_quarantine",
            Permission::ManageAccounts => "manage_accounts",
            Permission::ManageUsers => "manage_users",
            Permission::ManageRoles => "manage_roles",
            Permission::ManageRetention => "manage_retention",
            Permission::ViewAudit => "view_audit",
            Permission::ManageSettings => "manage_settings",
            Permission::ViewWorkers => "view_workers",
        }
    }

    /// What the roles page shows next to the checkbox.
    pub fn label(self) -> &'static str {
        match self {
            Permission::ViewDashboard => "See the dashboard",
            Permission::ViewMail => "Read archived mail",
            Permission::ExportMail => "Export mail",
            Permission::DeleteMail => "Delete mail",
            Permission::ImportMail => "Import mail",
            Permission::ViewQuarantine => "See the quarantine",
            Permission::ManageQuarantine => "Release or delete quarantined mail",
            Permission::ManageAccounts => "Manage archive accounts",
            Permission::ManageUsers => "Manage users",
            Permission::ManageRoles => "Manage roles",
            Permission::ManageRetention => "Manage retention",
            Permission::ViewAudit => "Read the audit log",
            Permission::ManageSettings => "Change settings",
            Permission::ViewWorkers => "See background workers",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The union of a user's roles' permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// Unknown names (e.g. from a newer version's rows) are ignored rather than failing sign-in.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self(names.into_iter().filter_map(Permission::parse).collect())
    }

    pub fn has(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_round_trips_through_its_name() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("root"), None);
    }
}
