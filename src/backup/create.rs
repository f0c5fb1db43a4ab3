//! `daygle backup`: a consistent online snapshot of the database plus a manifest, written as
//! one tar file (optionally encrypted), while `serve` keeps running.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::crypt::{BackupKey, EncryptWriter};
use super::pg::Target;
use super::{DUMP, FORMAT, MANIFEST, Manifest, Part, count, keys};
use crate::audit::{Action, Actor, AuditEvent, record_now};
use crate::config::Settings;
use crate::error::{Error, Result};

pub struct BackupOptions {
    /// The file to write; it must not exist yet.
    pub output: PathBuf,
    pub include_keys: bool,
    pub encrypt: Option<BackupKey>,
}

/// What was written.
#[derive(Debug)]
pub struct Created {
    pub manifest: Manifest,
    pub bytes: u64,
}

pub async fn create_backup(
    settings: &Settings,
    pool: &PgPool,
    actor: &Actor,
    options: BackupOptions,
) -> Result<Created> {
    let target = Target::for_settings(settings)?;
    let dir = options
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(&options.output)
        .map_err(|e| {
            Error::context(
                format!(
                    "create {} (it must not exist yet)",
                    options.output.display()
                ),
                e,
            )
        })?;
    let result = create_into(settings, pool, actor, &options, target, &dir, out).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&options.output);
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn create_into(
    settings: &Settings,
    pool: &PgPool,
    actor: &Actor,
    options: &BackupOptions,
    target: Target,
    dir: &Path,
    out: File,
) -> Result<Created> {
    // Recorded first, so the backup holds the record of its own making.
    record_now(
        pool,
        &AuditEvent::by(actor, Action::BackupCreate).details(serde_json::json!({
            "output": options.output.display().to_string(),
            "include_keys": options.include_keys,
            "encrypted": options.encrypt.is_some(),
        })),
    )
    .await?;
    // One snapshot for the counts and the dump: pg_dump joins it with --snapshot, and the
    // exporting transaction stays open until the dump is done.
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let snapshot = sqlx::query_scalar!(r#"SELECT pg_export_snapshot() AS "snapshot!""#)
        .fetch_one(&mut *tx)
        .await?;
    let counts = count(&mut tx).await?;
    let migrations =
        sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    let postgres_version =
        sqlx::query_scalar!(r#"SELECT current_setting('server_version') AS "version!""#)
            .fetch_one(&mut *tx)
            .await?;
    let spool = tempfile::Builder::new()
        .prefix(".daygle-backup-")
        .tempfile_in(dir)
        .map_err(|e| Error::context(format!("create a temporary file in {}", dir.display()), e))?;
    let spool_path = spool.path().to_path_buf();
    let dumped =
        crate::telemetry::spawn_blocking_in_span(move || dump(&target, &snapshot, &spool_path))
            .await
            .map_err(|e| Error::context("run the pg_dump task", e))?;
    tx.rollback().await?;
    dumped?;
    let keys = if options.include_keys {
        keys::gather(&settings.security, &settings.data_dir())?
    } else {
        Vec::new()
    };
    let mut dump_file = spool
        .reopen()
        .map_err(|e| Error::context("reopen the dump", e))?;
    let mut parts = vec![hash_part(DUMP, &mut dump_file)?];
    for (name, text) in &keys {
        parts.push(Part {
            name: format!("keys/{name}"),
            size: text.len() as u64,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        daygle_version: env!("CARGO_PKG_VERSION").into(),
        created_at: OffsetDateTime::now_utc(),
        schema_version: migrations.last().copied().unwrap_or(0),
        migrations,
        postgres_version,
        counts,
        keys_included: options.include_keys,
        parts,
    };
    let encrypt = options.encrypt.clone();
    let written = {
        let manifest = manifest.clone();
        crate::telemetry::spawn_blocking_in_span(move || {
            write_tar(out, encrypt, &manifest, dump_file, &keys)
        })
        .await
        .map_err(|e| Error::context("run the backup writer", e))?
        .map_err(|e| Error::context("write the backup", e))?
    };
    drop(spool);
    Ok(Created {
        manifest,
        bytes: written,
    })
}

/// Runs pg_dump in the exported snapshot into `path`.
fn dump(target: &Target, snapshot: &str, path: &Path) -> Result<()> {
    let out = target
        .command("pg_dump")
        .arg("--format=custom")
        // Blobs are zstd already; light compression still shrinks the metadata and indexes'
        // source columns without making the dump CPU-bound.
        .arg("--compress=1")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(path)
        .output()
        .map_err(|e| Error::context(format!("run {}", target.tool_path("pg_dump").display()), e))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "pg_dump of {} failed: {}",
            target.label,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn hash_part(name: &str, file: &mut File) -> Result<Part> {
    let io = |e| Error::context(format!("read {name}"), e);
    file.rewind().map_err(io)?;
    let mut hasher = Sha256::new();
    let size = io::copy(
        &mut BufReader::with_capacity(1 << 20, &mut *file),
        &mut HashWriter(&mut hasher),
    )
    .map_err(io)?;
    file.rewind().map_err(io)?;
    Ok(Part {
        name: name.into(),
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// A writer that only hashes.
pub(super) struct HashWriter<'a>(pub &'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts what passes through to the file.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_tar(
    out: File,
    encrypt: Option<BackupKey>,
    manifest: &Manifest,
    mut dump: File,
    keys: &[(&'static str, Zeroizing<String>)],
) -> io::Result<u64> {
    let file = Counting {
        inner: BufWriter::with_capacity(1 << 20, out),
        written: 0,
    };
    let sink = match &encrypt {
        Some(key) => Sink::Sealed(EncryptWriter::new(file, key)?),
        None => Sink::Plain(file),
    };
    let mut tar = tar::Builder::new(sink);
    let json = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    append(&mut tar, MANIFEST, json.len() as u64, json.as_slice())?;
    let size = dump.metadata()?.len();
    append(
        &mut tar,
        DUMP,
        size,
        BufReader::with_capacity(1 << 20, &mut dump).take(size),
    )?;
    for (name, text) in keys {
        append(
            &mut tar,
            &format!("keys/{name}"),
            text.len() as u64,
            text.as_bytes(),
        )?;
    }
    tar.into_inner()?.finish()
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}

/// The file under the tar stream, encrypted or not.
enum Sink {
    Plain(Counting<BufWriter<File>>),
    Sealed(EncryptWriter<Counting<BufWriter<File>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Sealed(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Sealed(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Seals the last chunk (when encrypted), flushes to disk, returns the file's size.
    fn finish(self) -> io::Result<u64> {
        let mut file = match self {
            Sink::Plain(w) => w,
            Sink::Sealed(w) => w.finish()?,
        };
        file.flush()?;
        file.inner.get_ref().sync_all()?;
        Ok(file.written)
    }
}
