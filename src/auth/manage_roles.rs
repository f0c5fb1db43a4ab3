//! Role management use cases shared by the web UI, the CLI and an API: each checks the
//! delegation ceiling (`auth::delegation`), changes the role and writes its audit row in one
//! transaction.

use serde_json::json;
use sqlx::PgPool;

use super::delegation::{self, actor_holdings};
use super::roles::{self, Role, RoleInput};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::Result;

fn details(input: &RoleInput) -> serde_json::Value {
    let permissions: Vec<&str> = input.permissions.iter().map(|p| p.as_str()).collect();
    json!({ "name": input.name.trim(), "permissions": permissions, "all_accounts": input.all_accounts })
}

/// Creates a custom role holding nothing the actor does not hold.
pub async fn create_role(pool: &PgPool, actor: &Actor, input: &RoleInput) -> Result<i64> {
    let mut tx = pool.begin().await?;
    if let Some(me) = actor_holdings(&mut tx, actor).await? {
        delegation::check_role_input_within(&me, input)?;
    }
    let id = roles::create(&mut tx, input).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::RoleCreate)
            .target(Target::Role(id))
            .details(details(input)),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Changes a custom role: not one the actor holds, and neither before nor after holding more
/// than the actor does.
pub async fn update_role(pool: &PgPool, actor: &Actor, id: i64, input: &RoleInput) -> Result<()> {
    let mut tx = pool.begin().await?;
    let existing = roles::get(&mut *tx, id).await?;
    // System roles are refused below whoever asks, with their own reason.
    if !existing.system
        && let Some(me) = actor_holdings(&mut tx, actor).await?
    {
        delegation::check_not_own_role(&mut tx, actor, id).await?;
        delegation::check_role_within(&me, &existing)?;
        delegation::check_role_input_within(&me, input)?;
    }
    roles::update(&mut tx, id, input).await?;
    delegation::check_managers_remain(&mut tx).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::RoleUpdate)
            .target(Target::Role(id))
            .details(details(input)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes an unassigned custom role within the actor's ceiling.
pub async fn delete_role(pool: &PgPool, actor: &Actor, id: i64) -> Result<Role> {
    let mut tx = pool.begin().await?;
    let existing = roles::get(&mut *tx, id).await?;
    // System roles are refused below whoever asks, with their own reason.
    if !existing.system
        && let Some(me) = actor_holdings(&mut tx, actor).await?
    {
        delegation::check_not_own_role(&mut tx, actor, id).await?;
        delegation::check_role_within(&me, &existing)?;
    }
    let role = roles::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::RoleDelete)
            .target(Target::Role(id))
            .details(json!({ "name": role.name })),
    )
    .await?;
    tx.commit().await?;
    Ok(role)
}
