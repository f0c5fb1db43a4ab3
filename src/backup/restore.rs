//! `daygle restore`: into an empty database (the private cluster of an empty data directory,
//! or an empty `database.url`) only. Every part is checked against the manifest before
//! anything is restored; then pg_restore, the migrations this version adds, the keys, and a
//! count of every table against the manifest.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use zeroize::Zeroizing;

use super::create::HashWriter;
use super::crypt::{self, BackupKey, DecryptReader};
use super::pg::Target;
use super::{Counts, DUMP, FORMAT, MANIFEST, Manifest, count, keys};
use crate::audit::{Action, Actor, AuditEvent, record_now};
use crate::config::Settings;
use crate::db::{self, Database, Tenure};
use crate::error::{Error, Result};

pub struct RestoreOptions {
    pub input: PathBuf,
    pub decrypt: Option<BackupKey>,
}

#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub counts: Counts,
    /// Migrations applied on top of the backup's schema.
    pub migrated: usize,
    /// Key files written from the backup.
    pub keys_written: Vec<String>,
}

/// A backup read and checked, its dump spooled to a temporary file.
struct Checked {
    manifest: Manifest,
    dump: tempfile::NamedTempFile,
    keys: Vec<(String, Zeroizing<String>)>,
}

pub async fn restore_backup(
    settings: &Settings,
    actor: &Actor,
    options: RestoreOptions,
) -> Result<Restored> {
    let database = Database::open(settings, Tenure::Command).await?;
    let result = restore_into(settings, &database.pool, actor, options).await;
    database.close().await?;
    result
}

async fn restore_into(
    settings: &Settings,
    pool: &PgPool,
    actor: &Actor,
    options: RestoreOptions,
) -> Result<Restored> {
    refuse_unless_empty(pool).await?;
    let spool_dir = settings.data_dir();
    std::fs::create_dir_all(&spool_dir)
        .map_err(|e| Error::context(format!("create {}", spool_dir.display()), e))?;
    let input = options.input.clone();
    let checked = crate::telemetry::spawn_blocking_in_span(move || {
        read_and_check(&input, options.decrypt.as_ref(), &spool_dir)
    })
    .await
    .map_err(|e| Error::context("run the backup reader", e))??;
    keys::install(
        &checked.keys,
        &settings.security,
        &settings.data_dir(),
        true,
    )?;
    let target = Target::for_settings(settings)?;
    let dump_path = checked.dump.path().to_path_buf();
    crate::telemetry::spawn_blocking_in_span(move || pg_restore(&target, &dump_path))
        .await
        .map_err(|e| Error::context("run the pg_restore task", e))??;
    let before = db::migration_status(pool).await?;
    db::migrate(pool).await?;
    let mut conn = pool.acquire().await?;
    let counts = count(&mut conn).await?;
    drop(conn);
    if counts != checked.manifest.counts {
        return Err(Error::Internal(format!(
            "the restored database does not hold what the manifest lists (restored {counts:?}, \
             manifest {:?}); do not use it",
            checked.manifest.counts
        )));
    }
    let keys_written = keys::install(
        &checked.keys,
        &settings.security,
        &settings.data_dir(),
        false,
    )?;
    record_now(
        pool,
        &AuditEvent::by(actor, Action::BackupRestore).details(serde_json::json!({
            "input": options.input.display().to_string(),
            "backup_created_at": checked.manifest.created_at.to_string(),
            "messages": counts.messages,
            "migrated": before.pending.len(),
        })),
    )
    .await?;
    Ok(Restored {
        manifest: checked.manifest,
        counts,
        migrated: before.pending.len(),
        keys_written,
    })
}

/// Restoring over an archive would mix two histories: only an empty database is accepted.
async fn refuse_unless_empty(pool: &PgPool) -> Result<()> {
    let tables = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%'"#,
    )
    .fetch_one(pool)
    .await?;
    if tables > 0 {
        return Err(Error::Conflict(format!(
            "the target database is not empty ({tables} tables): restore into an empty data \
             directory (--data-dir) or an empty database (database.url); nothing was changed"
        )));
    }
    Ok(())
}

fn read_and_check(input: &Path, key: Option<&BackupKey>, spool_dir: &Path) -> Result<Checked> {
    let open =
        || File::open(input).map_err(|e| Error::context(format!("open {}", input.display()), e));
    let mut start = [0u8; 64];
    let n = read_up_to(&mut open()?, &mut start)
        .map_err(|e| Error::context(format!("read {}", input.display()), e))?;
    let encrypted = crypt::is_encrypted(&start[..n]);
    let reader: Box<dyn Read> = match (encrypted, key) {
        (true, None) => {
            return Err(Error::invalid(
                "backup",
                "this backup is encrypted: give the key it was made with (--decrypt-key-file)",
            ));
        }
        (true, Some(key)) => Box::new(
            DecryptReader::new(BufReader::with_capacity(1 << 20, open()?), key)
                .map_err(|e| Error::invalid("backup", e.to_string()))?,
        ),
        (false, _) => Box::new(BufReader::with_capacity(1 << 20, open()?)),
    };
    read_parts(reader, spool_dir)
}

/// Decryption failures surface as `InvalidData` while the tar is read.
fn read_err(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        Error::invalid(
            "backup",
            format!("the backup is damaged or was altered: {e}; nothing was restored"),
        )
    } else {
        Error::context("read the backup", e)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn read_parts(reader: Box<dyn Read>, spool_dir: &Path) -> Result<Checked> {
    let bad = |why: String| Error::invalid("backup", why);
    let mut archive = tar::Archive::new(reader);
    let not_backup = |e: io::Error| match e.kind() {
        io::ErrorKind::InvalidData => read_err(e),
        _ => bad(format!("not a daygle backup: {e}")),
    };
    let mut entries = archive.entries().map_err(not_backup)?;
    let mut first = entries
        .next()
        .ok_or_else(|| bad("empty file: not a daygle backup".into()))?
        .map_err(not_backup)?;
    if first.path().ok().as_deref() != Some(Path::new(MANIFEST)) {
        return Err(bad(format!(
            "not a daygle backup: {MANIFEST} is not its first part"
        )));
    }
    let mut json = Vec::new();
    first.read_to_end(&mut json).map_err(read_err)?;
    drop(first);
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| bad(format!("unreadable manifest: {e}")))?;
    check_compatible(&manifest)?;
    let mut dump = None;
    let mut keys = Vec::new();
    let mut seen = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(read_err)?;
        let name = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        let part = manifest
            .parts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| bad(format!("{name} is not listed in the manifest")))?;
        let mut hasher = Sha256::new();
        let size = if name == DUMP {
            let mut file = tempfile::Builder::new()
                .prefix(".daygle-restore-")
                .tempfile_in(spool_dir)
                .map_err(|e| Error::context("create a temporary file for the dump", e))?;
            let size = io::copy(&mut entry, &mut Tee(&mut file, HashWriter(&mut hasher)))
                .map_err(read_err)?;
            dump = Some(file);
            size
        } else if let Some(key) = name.strip_prefix("keys/") {
            let mut text = Zeroizing::new(String::new());
            entry.read_to_string(&mut text).map_err(read_err)?;
            hasher.update(text.as_bytes());
            keys.push((key.to_string(), text.clone()));
            text.len() as u64
        } else {
            return Err(bad(format!("unexpected part {name}")));
        };
        if size != part.size || hex::encode(hasher.finalize()) != part.sha256 {
            return Err(bad(format!(
                "{name} does not match its SHA-256 in the manifest: the backup is damaged or \
                 was altered; nothing was restored"
            )));
        }
        seen.push(name);
    }
    if let Some(missing) = manifest.parts.iter().find(|p| !seen.contains(&p.name)) {
        return Err(bad(format!(
            "{} is listed in the manifest but missing: the backup is incomplete",
            missing.name
        )));
    }
    let dump = dump.ok_or_else(|| bad(format!("{DUMP} is missing")))?;
    Ok(Checked {
        manifest,
        dump,
        keys,
    })
}

/// A backup from a newer daygle has migrations this binary does not know: refuse it.
fn check_compatible(manifest: &Manifest) -> Result<()> {
    if manifest.format != FORMAT {
        return Err(Error::invalid(
            "backup",
            format!(
                "backup format {} is not known to this daygle (it reads format {FORMAT})",
                manifest.format
            ),
        ));
    }
    let known: Vec<i64> = db::MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(v) = manifest.migrations.iter().find(|v| !known.contains(v)) {
        return Err(Error::invalid(
            "backup",
            format!(
                "the backup was made by a newer daygle ({}, schema migration {v}); upgrade \
                 daygle before restoring it",
                manifest.daygle_version
            ),
        ));
    }
    Ok(())
}

fn pg_restore(target: &Target, dump: &Path) -> Result<()> {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let out = target
        .command("pg_restore")
        .args(["--exit-on-error", "--no-owner", "--no-privileges"])
        .arg(format!("--jobs={jobs}"))
        .arg(dump)
        .output()
        .map_err(|e| {
            Error::context(
                format!("run {}", target.tool_path("pg_restore").display()),
                e,
            )
        })?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "pg_restore into {} failed: {}",
            target.label,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Writes to a file and a hasher at once.
struct Tee<'a, 'h>(&'a mut tempfile::NamedTempFile, HashWriter<'h>);

impl io::Write for Tee<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.write_all(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
