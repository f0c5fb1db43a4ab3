//! The delegation ceiling: a permission is a ceiling, so nobody grants, creates or assigns
//! what they do not hold, nobody edits a role they hold, and acting on a user who holds more
//! than you needs at least their rights. The last user able to manage users (or roles) can
//! never be removed or demoted. Every user and role use case in `auth::manage` and
//! `auth::manage_roles` applies these rules, so the web UI, the CLI and an API share them.
//!
//! The command line (an actor without a user id) is the operator, who owns the database
//! anyway: no ceiling applies to it.

use sqlx::PgConnection;

use super::grants::Grants;
use super::permissions::{Permission, PermissionSet};
use super::roles::{Role, RoleInput};
use crate::audit::Actor;
use crate::error::{Error, Result};

/// What someone holds: their permissions and which archives they read.
#[derive(Debug, Clone)]
pub struct Holdings {
    pub permissions: PermissionSet,
    pub grants: Grants,
}

impl Holdings {
    /// Loaded inside the caller's transaction, so the check and the change see the same rows.
    pub async fn load(conn: &mut PgConnection, user_id: i64) -> Result<Self> {
        let held = sqlx::query!(
            r#"SELECT coalesce(array_agg(DISTINCT p) FILTER (WHERE p IS NOT NULL), '{}')
                        AS "names!: Vec<String>",
                      coalesce(bool_or(r.all_accounts), false) AS "all!"
               FROM user_roles ur JOIN roles r ON r.id = ur.role_id
               LEFT JOIN LATERAL unnest(r.permissions) AS p ON true
               WHERE ur.user_id = $1"#,
            user_id,
        )
        .fetch_one(&mut *conn)
        .await?;
        let (names, all) = (held.names, held.all);
        let grants = if all {
            Grants::All
        } else {
            Grants::Accounts(
                sqlx::query_scalar!(
                    "SELECT account_id FROM user_accounts WHERE user_id = $1 ORDER BY account_id",
                    user_id,
                )
                .fetch_all(&mut *conn)
                .await?,
            )
        };
        Ok(Self {
            permissions: PermissionSet::from_names(names.iter().map(String::as_str)),
            grants,
        })
    }

    fn holds_all(&self, permissions: impl IntoIterator<Item = Permission>) -> bool {
        permissions.into_iter().all(|p| self.permissions.has(p))
    }

    fn reads_all(&self) -> bool {
        self.grants == Grants::All
    }

    /// True when `self` holds at least everything `other` holds.
    pub fn covers(&self, other: &Holdings) -> bool {
        self.holds_all(other.permissions.iter())
            && match (&self.grants, &other.grants) {
                (Grants::All, _) => true,
                (Grants::Accounts(_), Grants::All) => false,
                (Grants::Accounts(mine), Grants::Accounts(theirs)) => {
                    theirs.iter().all(|id| mine.contains(id))
                }
            }
    }
}

fn over_ceiling(what: impl std::fmt::Display) -> Error {
    Error::Refused(format!(
        "you cannot {what}: nobody can grant more than they hold themselves"
    ))
}

/// The acting user's holdings, or None for the command line (no ceiling).
pub async fn actor_holdings(conn: &mut PgConnection, actor: &Actor) -> Result<Option<Holdings>> {
    match actor.user_id {
        Some(id) => Ok(Some(Holdings::load(conn, id).await?)),
        None => Ok(None),
    }
}

/// Defining or assigning `role` needs every permission in it, and `all_accounts` needs it too.
pub fn check_role_within(me: &Holdings, role: &Role) -> Result<()> {
    let perms = role.permissions.iter().filter_map(|p| Permission::parse(p));
    if !me.holds_all(perms) || (role.all_accounts && !me.reads_all()) {
        return Err(over_ceiling(format_args!("assign the role {}", role.name)));
    }
    Ok(())
}

pub fn check_role_input_within(me: &Holdings, input: &RoleInput) -> Result<()> {
    if !me.holds_all(input.permissions.iter().copied()) || (input.all_accounts && !me.reads_all()) {
        return Err(over_ceiling(
            "give a role permissions or archive access you do not have",
        ));
    }
    Ok(())
}

/// Granting archive accounts needs read access to each of them.
pub fn check_accounts_within(me: &Holdings, account_ids: &[i64]) -> Result<()> {
    if account_ids.iter().all(|id| me.grants.allows(*id)) {
        Ok(())
    } else {
        Err(over_ceiling("grant archive accounts you cannot read"))
    }
}

/// Acting on another user (password, second factor, sessions, enable, delete, roles) needs at
/// least their rights, so nobody can take over a more powerful account.
pub async fn check_may_act_on(conn: &mut PgConnection, me: &Holdings, user_id: i64) -> Result<()> {
    let them = Holdings::load(conn, user_id).await?;
    if me.covers(&them) {
        Ok(())
    } else {
        Err(Error::Refused(
            "this user holds permissions or archives you do not; ask someone who holds at least as much".into(),
        ))
    }
}

/// Editing or deleting a role you hold yourself is refused (it would raise your own ceiling).
pub async fn check_not_own_role(
    conn: &mut PgConnection,
    actor: &Actor,
    role_id: i64,
) -> Result<()> {
    let Some(user_id) = actor.user_id else {
        return Ok(());
    };
    let holds = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM user_roles WHERE user_id = $1 AND role_id = $2)
           AS "holds!""#,
        user_id,
        role_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    if holds {
        return Err(Error::Refused(
            "you cannot change a role you hold yourself; ask someone else who manages roles".into(),
        ));
    }
    Ok(())
}

/// Run after a change, before commit: at least one enabled user must still be able to manage
/// users, and one to manage roles.
pub async fn check_managers_remain(conn: &mut PgConnection) -> Result<()> {
    for p in [Permission::ManageUsers, Permission::ManageRoles] {
        let left = sqlx::query_scalar!(
            r#"SELECT count(DISTINCT u.id) AS "left!" FROM users u
               JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
               WHERE u.enabled AND $1 = ANY(r.permissions)"#,
            p.as_str(),
        )
        .fetch_one(&mut *conn)
        .await?;
        if left == 0 {
            return Err(Error::Conflict(format!(
                "This would leave nobody who can {}; give that right to someone else first.",
                p.label().to_lowercase()
            )));
        }
    }
    Ok(())
}
