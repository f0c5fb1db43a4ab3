//! The `users` table and its role and archive-account assignments.

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;

use super::permissions::PermissionSet;
use crate::error::{Error, Result, ResultExt};

/// A row of the `users` table.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub enabled: bool,
    pub session_epoch: i64,
    pub failed_logins: i32,
    pub locked_until: Option<OffsetDateTime>,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub timezone: String,
    pub date_format: String,
    pub page_size: i32,
    pub theme: String,
    pub last_login_at: Option<OffsetDateTime>,
    /// Someone else chose the password: it must be changed before anything else.
    pub must_change_password: bool,
}

impl User {
    /// True when the user signs in with a second factor.
    pub fn has_totp(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// A row of the users list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub enabled: bool,
    pub roles: Vec<String>,
    pub accounts: i64,
    /// A role of theirs reads every archive account.
    pub all_accounts: bool,
    pub has_totp: bool,
    pub locked: bool,
    pub last_login_at: Option<OffsetDateTime>,
}

/// True once the first administrator has been created.
pub async fn any_exist(db: impl PgExecutor<'_>) -> Result<bool> {
    Ok(
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users) AS "exists!""#)
            .fetch_one(db)
            .await?,
    )
}

/// The user called `username` (any case).
pub async fn find_by_username(db: impl PgExecutor<'_>, username: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as!(
        User,
        r#"SELECT id, username::text AS "username!", email, password_hash, enabled, session_epoch,
                  failed_logins, locked_until, totp_secret, totp_last_step, timezone, date_format,
                  page_size, theme, last_login_at, must_change_password
           FROM users WHERE username = $1"#,
        username.trim(),
    )
    .fetch_optional(db)
    .await?)
}

/// The user with this id, if any.
pub async fn find(db: impl PgExecutor<'_>, id: i64) -> Result<Option<User>> {
    Ok(sqlx::query_as!(
        User,
        r#"SELECT id, username::text AS "username!", email, password_hash, enabled, session_epoch,
                  failed_logins, locked_until, totp_secret, totp_last_step, timezone, date_format,
                  page_size, theme, last_login_at, must_change_password
           FROM users WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?)
}

/// The user with this id, or [`Error::NotFound`].
pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<User> {
    find(db, id).await?.ok_or(Error::NotFound)
}

/// Every user with their roles, for the users page.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<UserSummary>> {
    Ok(sqlx::query_as!(
        UserSummary,
        r#"SELECT u.id, u.username::text AS "username!", u.email, u.enabled,
                coalesce(array_agg(r.name::text ORDER BY r.name) FILTER (WHERE r.id IS NOT NULL), '{}') AS "roles!",
                (SELECT count(*) FROM user_accounts ua WHERE ua.user_id = u.id) AS "accounts!",
                coalesce(bool_or(r.all_accounts), false) AS "all_accounts!",
                u.totp_secret IS NOT NULL AS "has_totp!",
                coalesce(u.locked_until > now(), false) AS "locked!",
                u.last_login_at
         FROM users u
         LEFT JOIN user_roles ur ON ur.user_id = u.id
         LEFT JOIN roles r ON r.id = ur.role_id
         GROUP BY u.id ORDER BY u.username"#,
    )
    .fetch_all(db)
    .await?)
}

/// Validates a username: what people type to sign in.
pub fn check_username(username: &str) -> Result<String> {
    let u = username.trim();
    if u.is_empty() || u.chars().count() > 64 {
        return Err(Error::invalid("username", "must be 1 to 64 characters"));
    }
    if u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid("username", "must not contain spaces"));
    }
    Ok(u.to_string())
}

/// Validates an optional e-mail address (empty is allowed).
pub fn check_email(email: &str) -> Result<String> {
    let e = email.trim();
    if !e.is_empty() && (!e.contains('@') || e.len() > 254 || e.contains(char::is_whitespace)) {
        return Err(Error::invalid("email", "is not an e-mail address"));
    }
    Ok(e.to_string())
}

/// Inserts a user with the given roles; a taken username becomes a form error.
pub async fn insert(
    conn: &mut PgConnection,
    username: &str,
    email: &str,
    password_hash: &str,
    role_ids: &[i64],
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar!(
        "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) RETURNING id",
        username,
        email,
        password_hash,
    )
    .fetch_one(&mut *conn)
    .await
    .on_constraint("users_username_key", || {
        Error::invalid("username", "is already taken")
    })?;
    set_roles(conn, id, role_ids).await?;
    Ok(id)
}

/// Replaces the user's roles with `role_ids` (unknown ids are ignored).
pub async fn set_roles(conn: &mut PgConnection, user_id: i64, role_ids: &[i64]) -> Result<()> {
    sqlx::query!("DELETE FROM user_roles WHERE user_id = $1", user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO user_roles (user_id, role_id) SELECT $1, r.id FROM roles r WHERE r.id = ANY($2)",
        user_id,
        role_ids,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the archive accounts granted to the user (unknown ids are ignored).
pub async fn set_accounts(
    conn: &mut PgConnection,
    user_id: i64,
    account_ids: &[i64],
) -> Result<()> {
    sqlx::query!("DELETE FROM user_accounts WHERE user_id = $1", user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO user_accounts (user_id, account_id) SELECT $1, a.id FROM accounts a WHERE a.id = ANY($2)",
        user_id,
        account_ids,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The ids of the user's roles.
pub async fn role_ids(db: impl PgExecutor<'_>, user_id: i64) -> Result<Vec<i64>> {
    Ok(
        sqlx::query_scalar!("SELECT role_id FROM user_roles WHERE user_id = $1", user_id)
            .fetch_all(db)
            .await?,
    )
}

/// The ids of the archive accounts granted to the user.
pub async fn account_ids(db: impl PgExecutor<'_>, user_id: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        "SELECT account_id FROM user_accounts WHERE user_id = $1",
        user_id,
    )
    .fetch_all(db)
    .await?)
}

/// The union of the permissions of the user's roles.
pub async fn permissions(db: impl PgExecutor<'_>, user_id: i64) -> Result<PermissionSet> {
    let names: Vec<String> = sqlx::query_scalar!(
        r#"SELECT DISTINCT unnest(r.permissions) AS "name!"
           FROM user_roles ur JOIN roles r ON r.id = ur.role_id
           WHERE ur.user_id = $1"#,
        user_id,
    )
    .fetch_all(db)
    .await?;
    Ok(PermissionSet::from_names(names.iter().map(String::as_str)))
}

/// Sets a new password and bumps the session epoch, which ends every session of the user.
/// `chosen_by_someone_else` (an administrator set it) makes the user change it at the next
/// sign-in. Returns the new epoch.
pub async fn set_password(
    conn: &mut PgConnection,
    user_id: i64,
    hash: &str,
    chosen_by_someone_else: bool,
) -> Result<i64> {
    sqlx::query_scalar!(
        "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1,
             failed_logins = 0, locked_until = NULL, must_change_password = $3
         WHERE id = $1 RETURNING session_epoch",
        user_id,
        hash,
        chosen_by_someone_else,
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)
}

/// Marks the user's password as chosen by someone else (see [`User::must_change_password`]).
pub async fn require_password_change(conn: &mut PgConnection, user_id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE users SET must_change_password = true WHERE id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every session of the user.
pub async fn bump_epoch(conn: &mut PgConnection, user_id: i64) -> Result<i64> {
    sqlx::query_scalar!(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1 RETURNING session_epoch",
        user_id,
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)
}

/// Enables or disables; disabling also ends the user's sessions.
pub async fn set_enabled(conn: &mut PgConnection, user_id: i64, enabled: bool) -> Result<()> {
    let n = sqlx::query!(
        "UPDATE users SET enabled = $2,
             session_epoch = session_epoch + CASE WHEN $2 THEN 0 ELSE 1 END,
             failed_logins = CASE WHEN $2 THEN 0 ELSE failed_logins END,
             locked_until = CASE WHEN $2 THEN NULL ELSE locked_until END
         WHERE id = $1",
        user_id,
        enabled,
    )
    .execute(conn)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Changes the user's e-mail address.
pub async fn set_email(conn: &mut PgConnection, user_id: i64, email: &str) -> Result<()> {
    sqlx::query!("UPDATE users SET email = $2 WHERE id = $1", user_id, email)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the user, or [`Error::NotFound`].
pub async fn delete(conn: &mut PgConnection, user_id: i64) -> Result<()> {
    let n = sqlx::query!("DELETE FROM users WHERE id = $1", user_id)
        .execute(conn)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// How many enabled users hold a role with `manage_users`: the last one must not lock
/// everybody out by disabling or deleting themselves or losing the role.
pub async fn enabled_user_managers(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(DISTINCT u.id) AS "count!" FROM users u
         JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
         WHERE u.enabled AND 'manage_users' = ANY(r.permissions)"#,
    )
    .fetch_one(db)
    .await?)
}

/// Display preferences a user sets on their profile.
#[derive(Debug, Clone)]
pub struct Preferences {
    pub timezone: String,
    pub date_format: String,
    pub page_size: i32,
    pub theme: String,
}

impl Preferences {
    /// Checks every preference; the first problem is a form error.
    pub fn validate(&self) -> Result<()> {
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(Error::invalid(
                "timezone",
                "is not a known time zone, e.g. Europe/Berlin or UTC",
            ));
        }
        if self.date_format.trim().is_empty() || self.date_format.len() > 64 {
            return Err(Error::invalid("date_format", "must be 1 to 64 characters"));
        }
        let probe = jiff::Timestamp::UNIX_EPOCH.to_zoned(jiff::tz::TimeZone::UTC);
        if jiff::fmt::strtime::format(&self.date_format, &probe).is_err() {
            return Err(Error::invalid(
                "date_format",
                "is not a valid format, e.g. %Y-%m-%d %H:%M",
            ));
        }
        if !(10..=500).contains(&self.page_size) {
            return Err(Error::invalid("page_size", "must be between 10 and 500"));
        }
        if !matches!(self.theme.as_str(), "auto" | "light" | "dark") {
            return Err(Error::invalid("theme", "must be auto, light or dark"));
        }
        Ok(())
    }
}

/// Stores the user's display preferences after validating them.
pub async fn set_preferences(
    conn: &mut PgConnection,
    user_id: i64,
    prefs: &Preferences,
) -> Result<()> {
    prefs.validate()?;
    sqlx::query!(
        "UPDATE users SET timezone = $2, date_format = $3, page_size = $4, theme = $5 WHERE id = $1",
        user_id,
        prefs.timezone,
        prefs.date_format,
        prefs.page_size,
        prefs.theme,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether user `user_id` holds the role called `name`.
pub async fn has_role(db: impl PgExecutor<'_>, user_id: i64, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                          WHERE ur.user_id = $1 AND r.name = $2) AS "held!""#,
        user_id,
        name,
    )
    .fetch_one(db)
    .await?)
}

/// Shared by the web layer and the CLI: the pool handle is enough.
pub async fn role_id_by_name(pool: &PgPool, name: &str) -> Result<i64> {
    sqlx::query_scalar!("SELECT id FROM roles WHERE name = $1", name)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)
}
