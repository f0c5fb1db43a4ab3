//! `daygle rotate-key`: re-seal every stored secret under a new sealing key, in one
//! transaction, while the old key is still accepted for reading.
//!
//! Either run it before switching the config (`--new-key-file NEW`: the configured key is the
//! old one), then point security.sealing_key_file at NEW; or switch the config first and name
//! the previous key (`--old-key-file OLD`).
//!
//! It refuses while a server still seals new values under the key being retired (servers hold
//! a shared advisory lock named after their current key): those values would stay under the
//! old key. With the server configured as `sealing_key_file = NEW` and
//! `previous_sealing_key_file = OLD`, `--old-key-file OLD` runs while it serves.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use daygle::config::Settings;
use daygle::db;
use daygle::secrets::{Keys, SealingKeys, decode_key, key_id};

use super::context::{Schema, with_database};

/// `daygle rotate-key`: the key file to move to, or the one being retired.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// File holding the new key (base64, from `daygle keygen`); the configured key is the old.
    #[arg(long, value_name = "FILE", conflicts_with = "old_key_file")]
    pub new_key_file: Option<PathBuf>,
    /// File holding the previous key; the configured key is already the new one.
    #[arg(long, value_name = "FILE")]
    pub old_key_file: Option<PathBuf>,
}

fn read_key(path: &PathBuf) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read {}", path.display()))?,
    );
    decode_key(&text).with_context(|| format!("{} does not hold a valid key", path.display()))
}

/// Re-seals every stored secret under the new key, in one transaction.
pub async fn run(settings: Settings, args: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    let configured = Keys::load(&settings.security, &settings.data_dir())
        .context("Failed to load the configured sealing key")?;
    let (keys, new_file, retired) = match (&args.new_key_file, &args.old_key_file) {
        (Some(new), None) => {
            let new_key = read_key(new)?;
            let old = configured_key(&settings)?;
            (
                SealingKeys::new(&new_key).with_previous(&old),
                Some(new.clone()),
                key_id(&old),
            )
        }
        (None, Some(old)) => {
            let old_key = read_key(old)?;
            let current = configured_key(&settings)?;
            (
                SealingKeys::new(&current).with_previous(&old_key),
                None,
                key_id(&old_key),
            )
        }
        _ => bail!(
            "give --new-key-file NEW (before switching the config) or --old-key-file OLD (after)"
        ),
    };
    let changed = with_database(settings, Schema::Migrate, async |ctx| {
        let mut tx = ctx.pool().begin().await?;
        if !db::try_retire_sealing_key(&mut tx, &retired).await? {
            tx.rollback().await?;
            bail!(
                "a running daygle server still seals new secrets under the old key {retired}; stop it, \
                 or restart it with security.sealing_key_file = the new key and \
                 security.previous_sealing_key_file = the old key, then run `daygle rotate-key --old-key-file OLD`"
            );
        }
        let resealed = daygle::reseal::reseal_all(&mut tx, &keys).await?;
        let mut details = resealed.to_json();
        details["key_id"] = serde_json::json!(keys.current_id());
        details["retired_key_id"] = serde_json::json!(retired);
        let event =
            daygle::audit::AuditEvent::by(&daygle::audit::Actor::cli(), daygle::audit::Action::SecretsRotateKey)
                .details(details);
        daygle::audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        daygle::audit::seal::seal_head(ctx.pool(), &configured.audit).await?;
        Ok(resealed.total())
    })
    .await?;
    println!(
        "re-sealed {changed} stored secrets under key {}",
        keys.current_id()
    );
    if let Some(new) = new_file {
        println!(
            "now set security.sealing_key_file = {} (and remove security.sealing_key if set), then restart daygle; keep the old key until the restart is done, then destroy it",
            new.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The raw configured sealing key (from the config value, the key file, or the data dir).
fn configured_key(settings: &Settings) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let s = &settings.security;
    if !s.sealing_key.is_empty() {
        return Ok(decode_key(s.sealing_key.expose())?);
    }
    let path = if s.sealing_key_file.trim().is_empty() {
        settings.data_dir().join("secrets").join("sealing_key")
    } else {
        PathBuf::from(s.sealing_key_file.trim())
    };
    let key = read_key(&path)?;
    tracing::debug!(key = %key_id(&key), "configured sealing key");
    Ok(key)
}
