//! What people do with a held message besides releasing it (that is `ingest::release`, as it
//! archives): delete it, or download it. Each use case checks visibility through the actor's
//! grants and writes its audit row; web handlers and commands only parse and render.

use sqlx::PgPool;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::quarantine;
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::auth::{Grants, roles, users};
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// The audit row of a use case on entry `entry`.
fn event(actor: &Actor, action: Action, entry: &quarantine::Entry) -> AuditEvent {
    // The entry may be gone by the time the row is written (deleted): bind it to its archive
    // from what was read.
    AuditEvent::by(actor, action)
        .target(Target::Quarantine(entry.id))
        .accounts(entry.account_id.into_iter().collect::<Vec<_>>())
        .details(serde_json::json!({ "virus": entry.virus_name, "sha256": entry.sha256 }))
}

/// Deletes held message `id` (visible through `grants`, else `NotFound`) and its sealed bytes
/// for good.
pub async fn delete(pool: &PgPool, actor: &Actor, grants: &Grants, id: Uuid) -> Result<()> {
    let mut tx = pool.begin().await?;
    let entry = quarantine::get_visible(&mut *tx, grants, id).await?;
    quarantine::delete(&mut tx, id).await?;
    audit::record(&mut tx, &event(actor, Action::QuarantineDelete, &entry)).await?;
    tx.commit().await?;
    Ok(())
}

/// The original bytes of held message `id` (visible through `grants`), for a download; the
/// download is audited (a stand-alone row, through the group-commit `writer`) before the
/// bytes are handed out.
pub async fn download(
    pool: &PgPool,
    keys: &SealingKeys,
    writer: &audit::Writer,
    actor: &Actor,
    grants: &Grants,
    id: Uuid,
) -> Result<Zeroizing<Vec<u8>>> {
    if !may_download(pool, actor).await? {
        return Err(Error::Forbidden);
    }
    let (entry, raw) = show(pool, keys, grants, id).await?;
    writer
        .record(event(actor, Action::QuarantineDownload, &entry))
        .await?;
    Ok(raw)
}

/// Held message `id` (visible through `grants`, else `NotFound`) with its original bytes, for
/// its page (headers only are shown).
pub async fn show(
    pool: &PgPool,
    keys: &SealingKeys,
    grants: &Grants,
    id: Uuid,
) -> Result<(quarantine::Entry, Zeroizing<Vec<u8>>)> {
    let entry = quarantine::get_visible(pool, grants, id).await?;
    let raw = quarantine::open_raw(pool, keys, id).await?;
    Ok((entry, raw))
}

/// Whether `actor` may download held messages: they are live malware, so only
/// Administrators may, whatever else their roles allow.
pub async fn may_download(pool: &PgPool, actor: &Actor) -> Result<bool> {
    match actor.user_id {
        Some(user_id) => users::has_role(pool, user_id, roles::ADMINISTRATOR).await,
        None => Ok(false),
    }
}
