//! The permission catalogue. Roles are sets of these; handlers ask for one with `Require<P>`.

use std::collections::BTreeSet;
use std::fmt;

/// A permission as a type (`perm::ManageUsers`), so a web handler can demand one in its
/// signature (`Require<perm::ManageUsers>`).
pub trait PermissionMarker: Send + Sync {
    const PERMISSION: Permission;
}

/// The one list of permissions: the enum, its stored names and labels, and the marker types
/// are all generated from it, so they cannot drift apart.
macro_rules! permissions {
    ($($name:ident => $stored:literal, $label:literal;)*) => {
        /// Everything a role can allow. Stored in `roles.permissions` by [`Permission::as_str`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Permission {
            $($name,)*
        }

        impl Permission {
            /// Every permission, in the order the roles page lists them.
            pub const ALL: [Permission; [$(Permission::$name),*].len()] =
                [$(Permission::$name),*];

            /// The name stored in `roles.permissions`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$name => $stored,)*
                }
            }

            /// What the roles page shows next to the checkbox.
            pub fn label(self) -> &'static str {
                match self {
                    $(Permission::$name => $label,)*
                }
            }
        }

        /// Marker types, one per [`Permission`]: `Require<perm::ManageUsers>`.
        pub mod perm {
            use super::{Permission, PermissionMarker};
            $(
                #[doc = $label]
                pub struct $name;
                impl PermissionMarker for $name {
                    const PERMISSION: Permission = Permission::$name;
                }
            )*
        }
    };
}

permissions! {
    ViewDashboard => "view_dashboard", "See the dashboard";
    ViewMail => "view_mail", "Read archived mail";
    ExportMail => "export_mail", "Export mail";
    DeleteMail => "delete_mail", "Delete mail";
    ImportMail => "import_mail", "Import mail";
    ViewQuarantine => "view_quarantine", "See the quarantine";
    ManageQuarantine => "manage_quarantine", "Release or delete quarantined mail";
    ManageAccounts => "manage_accounts", "Manage archive accounts";
    ManageUsers => "manage_users", "Manage users";
    ManageRoles => "manage_roles", "Manage roles";
    ManageRetention => "manage_retention", "Manage retention";
    ViewAudit => "view_audit", "Read the audit log";
    ManageSettings => "manage_settings", "Change settings";
    ViewWorkers => "view_workers", "See background workers";
    ViewReports => "view_reports", "Read reports";
}

impl Permission {
    /// The permission stored as `s`; `None` for a name this version does not know.
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

    /// True when the set holds `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    /// The permissions of this set that `keep` accepts (e.g. those an API token's scopes cover).
    pub fn only(&self, keep: impl Fn(Permission) -> bool) -> Self {
        Self(self.0.iter().copied().filter(|p| keep(*p)).collect())
    }

    /// The permissions in the set, in catalogue order.
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
