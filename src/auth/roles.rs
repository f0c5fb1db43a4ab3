//! Roles: system roles (fixed) and custom ones built from the permission catalogue.

use sqlx::{PgConnection, PgExecutor};

use super::permissions::Permission;
use crate::error::{Error, Result, ResultExt};

/// The system role that may do everything.
pub const ADMINISTRATOR: &str = "Administrator";
/// The system role that reads every archive and the audit log, and changes nothing.
pub const AUDITOR: &str = "Auditor";
/// The system role that reads the archives granted to the user.
pub const READ_ONLY: &str = "Read Only";

/// A role with its permissions and how many users hold it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub all_accounts: bool,
    pub system: bool,
    pub users: i64,
}

impl Role {
    /// True when the role allows `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.iter().any(|n| n == p.as_str())
    }
}

/// Every role, system roles first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Role>> {
    Ok(roles_where(db, None).await?)
}

/// One role, or [`Error::NotFound`].
pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Role> {
    roles_where(db, Some(id))
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

/// The role `id`, or every role when `None`.
async fn roles_where(db: impl PgExecutor<'_>, id: Option<i64>) -> sqlx::Result<Vec<Role>> {
    sqlx::query_as!(
        Role,
        r#"SELECT r.id, r.name::text AS "name!", r.description, r.permissions, r.all_accounts,
                  r.system,
                  (SELECT count(*) FROM user_roles ur WHERE ur.role_id = r.id) AS "users!"
           FROM roles r WHERE ($1::bigint IS NULL OR r.id = $1)
           ORDER BY r.system DESC, r.id"#,
        id,
    )
    .fetch_all(db)
    .await
}

/// What a role form submits.
#[derive(Debug, Clone)]
pub struct RoleInput {
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub all_accounts: bool,
}

impl RoleInput {
    fn check(&self) -> Result<()> {
        let n = self.name.trim();
        if n.is_empty() || n.chars().count() > 64 {
            return Err(Error::invalid("name", "must be 1 to 64 characters"));
        }
        Ok(())
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .permissions
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn taken() -> Error {
    Error::invalid("name", "is already used by another role")
}

/// Creates a custom role; a taken name is a form error.
pub async fn create(conn: &mut PgConnection, input: &RoleInput) -> Result<i64> {
    input.check()?;
    sqlx::query_scalar!(
        "INSERT INTO roles (name, description, permissions, all_accounts) VALUES ($1, $2, $3, $4) RETURNING id",
        input.name.trim(),
        input.description.trim(),
        &input.names(),
        input.all_accounts,
    )
    .fetch_one(conn)
    .await
    .on_constraint("roles_name_key", taken)
}

/// System roles are fixed: editing one is refused.
pub async fn update(conn: &mut PgConnection, id: i64, input: &RoleInput) -> Result<()> {
    input.check()?;
    let role = get(&mut *conn, id).await?;
    if role.system {
        return Err(Error::Conflict(
            "System roles cannot be changed; create a custom role instead.".into(),
        ));
    }
    sqlx::query!(
        "UPDATE roles SET name = $2, description = $3, permissions = $4, all_accounts = $5 WHERE id = $1",
        id,
        input.name.trim(),
        input.description.trim(),
        &input.names(),
        input.all_accounts,
    )
    .execute(conn)
    .await
    .on_constraint("roles_name_key", taken)?;
    Ok(())
}

/// Deletes a custom role no user holds any more, and returns it.
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<Role> {
    let role = get(&mut *conn, id).await?;
    if role.system {
        return Err(Error::Conflict("System roles cannot be deleted.".into()));
    }
    if role.users > 0 {
        return Err(Error::Conflict(format!(
            "The role {} is still assigned to {} user(s); remove it from them first.",
            role.name, role.users
        )));
    }
    sqlx::query!("DELETE FROM roles WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(role)
}
