//! Releasing a message from the quarantine into the archive: one use case, one transaction.
//! The entry is marked released, the message is stored at its original place with the
//! verdict of the re-scan done just before, and the audit row is written — all commit
//! together, or nothing changes and the message stays held.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::pipeline::{self, Destination, Incoming};
use crate::archive::{ledger, messages};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::auth::Grants;
use crate::error::{Error, Result};
use crate::scan::quarantine::{self, IfStillInfected};
use crate::scan::{ScanStatus, Scanner, Verdict};
use crate::secrets::SealingKeys;

/// What the caller needs besides the acting person.
pub struct ReleaseRequest<'a> {
    pub id: Uuid,
    /// Why the message is safe; required.
    pub reason: &'a str,
    pub if_infected: IfStillInfected,
}

/// Re-scans quarantined message `request.id` (visible through `grants`) and, unless the
/// rules refuse, archives it with that verdict. The scanner must be on: releasing unscanned
/// mail is never allowed.
pub async fn release(
    pool: &PgPool,
    keys: &SealingKeys,
    scanner: Option<&Scanner>,
    zstd_level: i32,
    actor: &Actor,
    grants: &Grants,
    request: ReleaseRequest<'_>,
) -> Result<Verdict> {
    let id = request.id;
    let mut tx = pool.begin().await?;
    // Visibility first: a foreign entry is "not found", whatever else is wrong.
    let entry = quarantine::get_visible(&mut *tx, grants, id).await?;
    let scanner = scanner.ok_or_else(|| {
        Error::Conflict(
            "Virus scanning is switched off (clamav.enabled), so the message cannot be re-scanned before release.".into(),
        )
    })?;
    let released = quarantine::release(
        &mut tx,
        keys,
        scanner,
        id,
        &actor.username,
        request.reason,
        request.if_infected,
    )
    .await?;
    let account_id = entry
        .account_id
        .ok_or_else(|| Error::Conflict("the message's archive account no longer exists".into()))?;
    let Some((status, virus_name)) = ScanStatus::of_verdict(&released.verdict) else {
        // `quarantine::release` refuses an unscanned message; this is the second lock.
        return Err(Error::ScannerUnavailable(released.verdict.to_string()));
    };
    if already_archived_after_reset(&mut tx, account_id, &entry).await? {
        tracing::info!(quarantine_id = %id, "released message is archived already at the folder's new UIDVALIDITY");
    } else {
        store(
            &mut tx, zstd_level, account_id, &entry, &released, status, virus_name,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::QuarantineRelease)
            .target(Target::Quarantine(id))
            .accounts([account_id])
            .details(serde_json::json!({
                "virus": entry.virus_name,
                "rescan": released.verdict.to_string(),
                "reason": request.reason.trim(),
                "released_anyway": request.if_infected == IfStillInfected::ReleaseAnyway,
                "sha256": entry.sha256,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(released.verdict)
}

/// Stores the released message at the place it was held, with the re-scan's verdict.
async fn store(
    tx: &mut PgConnection,
    zstd_level: i32,
    account_id: i64,
    entry: &quarantine::Entry,
    released: &quarantine::Released,
    status: ScanStatus,
    virus_name: Option<String>,
) -> Result<u64> {
    pipeline::store_decided(
        tx,
        zstd_level,
        Destination {
            account_id,
            folder: entry.folder.clone(),
            uidvalidity: entry.uidvalidity,
        },
        vec![Incoming {
            uid: entry.uid,
            raw: released.raw.to_vec(),
            internal_date: None,
            flags: Vec::new(),
        }],
        status,
        virus_name,
    )
    .await
}

/// True when the folder was started over under a new UIDVALIDITY after the message was held
/// and the resync archived the same content there already: the held UID means nothing any
/// more, and storing the message at its old place would keep a second copy. (Released before
/// the resync reaches it, it is stored at its old place and the resync moves it, as it moves
/// every copy of that folder.)
async fn already_archived_after_reset(
    tx: &mut PgConnection,
    account_id: i64,
    entry: &quarantine::Entry,
) -> Result<bool> {
    let Some(held_under) = entry.uidvalidity else {
        return Ok(false);
    };
    let current = ledger::folder_state(tx, account_id, &entry.folder)
        .await?
        .and_then(|state| state.uidvalidity);
    let Some(current) = current.filter(|c| *c != held_under) else {
        return Ok(false);
    };
    let sha256 = hex::decode(&entry.sha256)
        .map_err(|e| Error::context("read a quarantined message's SHA-256", e))?;
    messages::folder_holds(tx, account_id, &entry.folder, current, &sha256).await
}
