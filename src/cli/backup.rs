//! `daygle backup` and `daygle restore`: parse, call `daygle::backup`, report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use zeroize::Zeroizing;

use daygle::audit::Actor;
use daygle::backup::crypt::BackupKey;
use daygle::backup::{self, BackupOptions, RestoreOptions};
use daygle::config::Settings;

use super::context::{Schema, with_database};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write; it must not exist yet.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Put the sealing, session and audit keys in the backup too (then guard it like the keys).
    #[arg(long)]
    pub include_keys: bool,
    /// Encrypt the backup with the key in this file (make one with `daygle keygen`).
    #[arg(long, value_name = "FILE")]
    pub encrypt_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file to restore.
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
    /// The key file the backup was encrypted with.
    #[arg(long, value_name = "FILE")]
    pub decrypt_key_file: Option<PathBuf>,
}

fn read_key(path: &Path) -> anyhow::Result<BackupKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read the key file {}", path.display()))?,
    );
    let key = daygle::secrets::decode_key(&text).with_context(|| {
        format!(
            "{} does not hold a key made by `daygle keygen`",
            path.display()
        )
    })?;
    Ok(BackupKey::new(key))
}

pub async fn backup(settings: Settings, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let encrypt = args.encrypt_key_file.as_deref().map(read_key).transpose()?;
    let started = Instant::now();
    let data_dir = settings.data_dir();
    let done = with_database(settings, Schema::AsIs, async |ctx| {
        backup::create_backup(
            &ctx.settings,
            ctx.pool(),
            &Actor::cli(),
            BackupOptions {
                output: args.output.clone(),
                include_keys: args.include_keys,
                encrypt,
            },
        )
        .await
        .context("Backup failed; the partial file was removed")
    })
    .await?;
    let c = &done.manifest.counts;
    println!(
        "backup written to {} ({:.1} MB{}) in {:.1} s: {} messages, {} blobs ({:.1} MB raw), {} users, {} audit entries; schema {}",
        args.output.display(),
        done.bytes as f64 / 1e6,
        if args.encrypt_key_file.is_some() {
            ", encrypted"
        } else {
            ""
        },
        started.elapsed().as_secs_f64(),
        c.messages,
        c.blobs,
        c.blob_bytes as f64 / 1e6,
        c.users,
        c.audit_log,
        done.manifest.schema_version,
    );
    if !args.include_keys {
        println!(
            "keys not included: keep {}/secrets (or your configured key files) safe separately; without them the restored IMAP passwords, quarantine and audit seals cannot be opened",
            data_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(settings: Settings, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let decrypt = args.decrypt_key_file.as_deref().map(read_key).transpose()?;
    let started = Instant::now();
    let done = backup::restore_backup(
        &settings,
        &Actor::cli(),
        RestoreOptions {
            input: args.input.clone(),
            decrypt,
        },
    )
    .await
    .context("Restore failed")?;
    let c = &done.counts;
    println!(
        "restored {} (made {} by daygle {}) in {:.1} s: {} messages, {} blobs, {} users, {} audit entries — every count matches the manifest",
        args.input.display(),
        done.manifest.created_at,
        done.manifest.daygle_version,
        started.elapsed().as_secs_f64(),
        c.messages,
        c.blobs,
        c.users,
        c.audit_log,
    );
    if done.migrated > 0 {
        println!("applied {} newer schema migrations", done.migrated);
    }
    for path in &done.keys_written {
        println!("key restored to {path}");
    }
    if !done.manifest.keys_included {
        println!(
            "the backup holds no keys: put the original keys in {}/secrets (or configure them) before `daygle serve`",
            settings.data_dir().display()
        );
    }
    println!("next: `daygle verify archive` and `daygle verify audit`, then `daygle serve`");
    Ok(ExitCode::SUCCESS)
}
