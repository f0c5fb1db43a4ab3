//! Releasing a message from the quarantine into the archive: one use case, one transaction.
//! The entry is marked released, the message is stored at its original place with the
//! verdict of the re-scan done just before, and the audit row is written — all commit
//! together, or nothing changes and the message stays held.

use sqlx::PgPool;
use uuid::Uuid;

use super::pipeline::{self, Destination, Incoming};
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
    let entry = quarantine::get_visible(&mut tx, grants, id).await?;
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
    pipeline::store_decided(
        &mut tx,
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
    .await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::QuarantineRelease)
            .target(Target::Quarantine(id))
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
