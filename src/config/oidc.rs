//! `[oidc]`: sign-in through an OpenID Connect identity provider (Entra ID, Google, Keycloak…).

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// Offer "Sign in with …" on the login page.
    pub enabled: bool,
    /// The provider's issuer URL; `/.well-known/openid-configuration` below it is read.
    pub issuer_url: String,
    pub client_id: String,
    /// From the config file or `DAYGLE__OIDC__CLIENT_SECRET`; never a command-line flag.
    pub client_secret: Secret,
    /// File holding the client secret instead (Docker secrets).
    pub client_secret_file: String,
    /// The provider's name on the login button.
    pub display_name: String,
    /// Scopes asked for, comma- or space-separated; `openid` is always added.
    pub scopes: String,
    /// Claim naming the user (a new user's username).
    pub username_claim: String,
    pub email_claim: String,
    /// Claim holding the list of groups the mappings read.
    pub groups_claim: String,
    /// Keep the username/password form. When off, only `break_glass_users` may use it, at
    /// `/login/local`.
    pub local_login: bool,
    /// Local users (comma-separated usernames) who may sign in with their password even when
    /// `local_login` is off: the way back in when the provider is down or misconfigured.
    pub break_glass_users: String,
    /// Create a user on their first OIDC sign-in.
    pub jit_provisioning: bool,
    /// Link a first OIDC sign-in to the existing local user with the same e-mail address, only
    /// when the provider says the address is verified (`email_verified`).
    pub link_by_email: bool,
    /// `group=Role name` pairs, comma-separated: each group gives its members the role.
    pub group_roles: String,
    /// `group=archive account name` pairs, comma-separated: each group gives its members read
    /// access to the archive account.
    pub group_archives: String,
    /// Seconds of clock difference tolerated on the ID token's `exp`/`iat`.
    pub clock_skew_secs: u32,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            issuer_url: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            client_secret_file: String::new(),
            display_name: "single sign-on".into(),
            scopes: "openid, email, profile".into(),
            username_claim: "preferred_username".into(),
            email_claim: "email".into(),
            groups_claim: "groups".into(),
            local_login: true,
            break_glass_users: String::new(),
            jit_provisioning: true,
            link_by_email: false,
            group_roles: String::new(),
            group_archives: String::new(),
            clock_skew_secs: 60,
        }
    }
}

/// One `group=name` pair of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMap {
    pub group: String,
    pub target: String,
}

/// Parses `group=target, group2=target2`; the error names the first malformed pair.
pub fn parse_group_map(text: &str) -> Result<Vec<GroupMap>, String> {
    super::split_list(text)
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((g, t)) if !g.trim().is_empty() && !t.trim().is_empty() => Ok(GroupMap {
                group: g.trim().to_string(),
                target: t.trim().to_string(),
            }),
            _ => Err(format!(
                "`{pair}` is not group=name (e.g. archive-admins=Administrator)"
            )),
        })
        .collect()
}

impl OidcSettings {
    /// The scopes to ask for, `openid` first and once.
    pub fn scope_list(&self) -> Vec<String> {
        let mut out = vec!["openid".to_string()];
        for s in self.scopes.split([',', ' ']).map(str::trim) {
            if !s.is_empty() && !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
        out
    }

    /// True when `username` may use the password form although `local_login` is off.
    pub fn is_break_glass(&self, username: &str) -> bool {
        super::split_list(&self.break_glass_users)
            .iter()
            .any(|u| u.eq_ignore_ascii_case(username.trim()))
    }

    /// True when any group mapping is configured: the mappings then own OIDC users' access.
    pub fn maps_groups(&self) -> bool {
        !self.group_roles.trim().is_empty() || !self.group_archives.trim().is_empty()
    }

    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        for (key, text) in [
            ("oidc.group_roles", &self.group_roles),
            ("oidc.group_archives", &self.group_archives),
        ] {
            if let Err(e) = parse_group_map(text) {
                p.push((key, e));
            }
        }
        if !self.enabled {
            return p;
        }
        match url::Url::parse(self.issuer_url.trim()) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
            _ => p.push((
                "oidc.issuer_url",
                "must be the provider's issuer URL, e.g. https://login.example.com/realms/staff"
                    .into(),
            )),
        }
        if self.client_id.trim().is_empty() {
            p.push((
                "oidc.client_id",
                "must be set when oidc.enabled is on".into(),
            ));
        }
        if self.client_secret.is_empty() {
            p.push((
                "oidc.client_secret",
                "must be set (in the config file, DAYGLE__OIDC__CLIENT_SECRET or oidc.client_secret_file) when oidc.enabled is on".into(),
            ));
        }
        for (key, v) in [
            ("oidc.username_claim", &self.username_claim),
            ("oidc.email_claim", &self.email_claim),
            ("oidc.groups_claim", &self.groups_claim),
            ("oidc.display_name", &self.display_name),
        ] {
            if v.trim().is_empty() {
                p.push((key, "must not be empty".into()));
            }
        }
        if self.clock_skew_secs > 600 {
            p.push(("oidc.clock_skew_secs", "must be at most 600".into()));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_maps_read_as_written_and_refuse_half_pairs() {
        let m = parse_group_map("archive-admins = Administrator, /staff/legal=Read Only").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].group, "/staff/legal");
        assert_eq!(m[1].target, "Read Only");
        assert!(parse_group_map("admins").is_err());
        assert!(parse_group_map("=Administrator").is_err());
        assert_eq!(parse_group_map("").unwrap(), vec![]);
    }

    #[test]
    fn openid_is_always_asked_for_once() {
        let s = OidcSettings {
            scopes: "email profile, openid,groups".into(),
            ..Default::default()
        };
        assert_eq!(s.scope_list(), ["openid", "email", "profile", "groups"]);
    }
}
