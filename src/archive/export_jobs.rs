//! Exports that run in the background and are downloaded when ready (the API's way to export
//! large sets): a row in `api_exports` and a file under `<data dir>/exports/`. The export
//! itself is [`super::export::export`], as everywhere else.

use std::path::{Path, PathBuf};

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::export::{self, ExportInfo, Format, HeldMail};
use crate::auth::Grants;
use crate::error::{Error, Result};

/// One background export as its owner sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub user_id: i64,
    /// running, ready or failed.
    pub status: String,
    pub format: String,
    pub messages: i64,
    pub bytes: i64,
    pub error: String,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

impl Job {
    /// The file name offered for download.
    pub fn filename(&self) -> String {
        format!("daygle-export-{}.{}", self.id, self.format)
    }
}

/// Where finished exports are kept.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exports")
}

/// The file of export `id`.
pub fn file(data_dir: &Path, id: Uuid, format: Format) -> PathBuf {
    dir(data_dir).join(format!("{id}.{}", format.extension()))
}

/// Records a new running export of `user_id` (made with `token_id`, if any), run by the
/// process `process_id`.
pub async fn start(
    pool: &PgPool,
    user_id: i64,
    token_id: Option<i64>,
    format: Format,
    audit_id: Option<i64>,
    process_id: Uuid,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO api_exports (id, user_id, token_id, format, audit_id, process_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        user_id,
        token_id,
        format.extension(),
        audit_id,
        process_id,
    )
    .execute(pool)
    .await?;
    Ok(id)
}

/// Writes the export to its file and marks the job ready (or failed, with the file removed).
/// Runs to the end; the caller spawns it.
#[allow(clippy::too_many_arguments)] // the export's own arguments plus where it goes
pub async fn run(
    pool: PgPool,
    data_dir: PathBuf,
    id: Uuid,
    grants: Grants,
    held: HeldMail,
    ids: Vec<i64>,
    format: Format,
    info: ExportInfo,
) {
    let path = file(&data_dir, id, format);
    let outcome = async {
        std::fs::create_dir_all(dir(&data_dir))
            .map_err(|e| Error::context("create the exports directory", e))?;
        let out = std::fs::File::create(&path)
            .map_err(|e| Error::context("create the export file", e))?;
        export::export(&pool, &grants, held, ids, format, info, out, |_| {}).await
    }
    .await;
    let done = match outcome {
        Ok(exported) => {
            sqlx::query!(
                "UPDATE api_exports SET status = 'ready', messages = $2, bytes = $3,
                 finished_at = now() WHERE id = $1",
                id,
                exported.messages as i64,
                std::fs::metadata(&path)
                    .map(|m| m.len() as i64)
                    .unwrap_or(0),
            )
            .execute(&pool)
            .await
        }
        Err(e) => {
            tracing::warn!(error = %crate::error::chain(&e), export = %id, "export failed");
            let _ = std::fs::remove_file(&path);
            sqlx::query!(
                "UPDATE api_exports SET status = 'failed', error = 'the export stopped; the server log has the cause',
                 finished_at = now() WHERE id = $1",
                id,
            )
            .execute(&pool)
            .await
        }
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, export = %id, "could not record the end of an export");
    }
}

/// Marks failed the exports still "running" in a process that is gone (stopped, or silent for
/// longer than `lease_secs`): a restart or crash cut them short, and nothing will finish them.
/// Their partial files are removed. Returns how many.
pub async fn fail_orphaned(pool: &PgPool, data_dir: &Path, lease_secs: u32) -> Result<u64> {
    let cut = sqlx::query!(
        "UPDATE api_exports SET status = 'failed', finished_at = now(),
             error = 'the server stopped during the export; start it again'
         WHERE status = 'running' AND NOT EXISTS (
             SELECT 1 FROM processes p WHERE p.id = api_exports.process_id
               AND p.stopped_at IS NULL
               AND p.heartbeat_at > now() - make_interval(secs => $1))
         RETURNING id, format",
        f64::from(lease_secs),
    )
    .fetch_all(pool)
    .await?;
    for row in &cut {
        if let Some(format) = Format::parse(&row.format) {
            let _ = std::fs::remove_file(file(data_dir, row.id, format));
        }
    }
    Ok(cut.len() as u64)
}

/// Export `id` if it belongs to `user_id`; anyone else's is `None`.
pub async fn get(pool: &PgPool, user_id: i64, id: Uuid) -> Result<Option<Job>> {
    Ok(sqlx::query_as!(
        Job,
        "SELECT id, user_id, status, format, messages, bytes, error, created_at, finished_at
         FROM api_exports WHERE id = $1 AND user_id = $2",
        id,
        user_id,
    )
    .fetch_optional(pool)
    .await?)
}

/// Removes finished exports older than `keep_hours`, rows and files. Returns how many.
pub async fn expire(pool: &PgPool, data_dir: &Path, keep_hours: u32) -> Result<u64> {
    let gone = sqlx::query!(
        "DELETE FROM api_exports WHERE status <> 'running'
           AND coalesce(finished_at, created_at) < now() - make_interval(hours => $1)
         RETURNING id, format",
        keep_hours as i32,
    )
    .fetch_all(pool)
    .await?;
    for row in &gone {
        if let Some(format) = Format::parse(&row.format) {
            let _ = std::fs::remove_file(file(data_dir, row.id, format));
        }
    }
    Ok(gone.len() as u64)
}
