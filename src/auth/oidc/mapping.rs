//! Group → role and group → archive mappings (`oidc.group_roles`, `oidc.group_archives`):
//! resolving them for a user's groups at sign-in, and the rule for changing them.
//!
//! Changing a mapping hands out access to whoever is in a group, so it is a user-and-role
//! administrator's act under the delegation ceiling: it needs `manage_users` and
//! `manage_roles`, every mapped role within the changer's own rights, and read access to every
//! mapped archive account.

use sqlx::PgConnection;

use crate::audit::Actor;
use crate::auth::Permission;
use crate::auth::delegation;
use crate::auth::roles;
use crate::config::{OidcSettings, parse_group_map};
use crate::error::{Error, Result};

/// What a user's groups give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    pub role_ids: Vec<i64>,
    pub account_ids: Vec<i64>,
    /// Mapping targets that name no role or account (reported in the audit row).
    pub unknown: Vec<String>,
}

impl Mapped {
    pub fn is_empty(&self) -> bool {
        self.role_ids.is_empty() && self.account_ids.is_empty()
    }
}

/// The roles and archive accounts `groups` map to under `o` (group names compare exactly).
pub async fn resolve(
    conn: &mut PgConnection,
    o: &OidcSettings,
    groups: &[String],
) -> Result<Mapped> {
    let mut out = Mapped::default();
    let member = |g: &str| groups.iter().any(|mine| mine == g);
    for m in parse_group_map(&o.group_roles).map_err(|e| Error::invalid("oidc.group_roles", e))? {
        if !member(&m.group) {
            continue;
        }
        match role_id(conn, &m.target).await? {
            Some(id) if !out.role_ids.contains(&id) => out.role_ids.push(id),
            Some(_) => {}
            None => out.unknown.push(format!("role {}", m.target)),
        }
    }
    for m in
        parse_group_map(&o.group_archives).map_err(|e| Error::invalid("oidc.group_archives", e))?
    {
        if !member(&m.group) {
            continue;
        }
        match account_id(conn, &m.target).await? {
            Some(id) if !out.account_ids.contains(&id) => out.account_ids.push(id),
            Some(_) => {}
            None => out.unknown.push(format!("archive {}", m.target)),
        }
    }
    out.role_ids.sort_unstable();
    out.account_ids.sort_unstable();
    Ok(out)
}

async fn role_id(conn: &mut PgConnection, name: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar!("SELECT id FROM roles WHERE name = $1", name)
            .fetch_optional(conn)
            .await?,
    )
}

async fn account_id(conn: &mut PgConnection, name: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar!("SELECT id FROM accounts WHERE name = $1", name)
            .fetch_optional(conn)
            .await?,
    )
}

/// May `actor` set the mappings of `o`? Every named role and account must exist and lie
/// within the actor's own rights. The command line (no user) is the operator: no ceiling.
pub async fn check_may_set(conn: &mut PgConnection, actor: &Actor, o: &OidcSettings) -> Result<()> {
    let me = delegation::actor_holdings(conn, actor).await?;
    if let Some(me) = &me
        && !(me.permissions.has(Permission::ManageUsers)
            && me.permissions.has(Permission::ManageRoles))
    {
        return Err(Error::Refused(
            "changing the single sign-on group mappings needs both the manage users and manage roles permissions".into(),
        ));
    }
    for m in parse_group_map(&o.group_roles).map_err(|e| Error::invalid("oidc.group_roles", e))? {
        let Some(id) = role_id(conn, &m.target).await? else {
            return Err(Error::invalid(
                "oidc.group_roles",
                format!("there is no role called {}", m.target),
            ));
        };
        if let Some(me) = &me {
            delegation::check_role_within(me, &roles::get(&mut *conn, id).await?)?;
        }
    }
    for m in
        parse_group_map(&o.group_archives).map_err(|e| Error::invalid("oidc.group_archives", e))?
    {
        let Some(id) = account_id(conn, &m.target).await? else {
            return Err(Error::invalid(
                "oidc.group_archives",
                format!("there is no archive account called {}", m.target),
            ));
        };
        if let Some(me) = &me {
            delegation::check_accounts_within(me, &[id])?;
        }
    }
    Ok(())
}
