//! Exports: the original messages, byte for byte, as an mbox file or a zip of .eml files, each
//! with a manifest a third party can check (see `export_manifest`).
//!
//! Rows and blobs are read from PostgreSQL in chunks by an async producer and written by a
//! blocking writer thread, with a small bounded channel between them, so memory stays flat
//! whatever the export's size. Each message is re-hashed before it is written: an export never
//! contains bytes that differ from what was archived.

use std::io::Write;
use std::sync::Arc;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;

use super::blobs::{self, PartMap, sha256};
pub use super::export_manifest::ExportInfo;
use super::export_manifest::{Line, ManifestWriter, write_mbox_manifest};
use super::reading::safe_filename;
use crate::auth::Grants;
use crate::error::{Error, Result};
use crate::scan::ScanStatus;

const CHUNK: usize = 200;
/// Messages in flight between the database reader and the writer thread.
const IN_FLIGHT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mbox,
    Zip,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mbox" => Some(Format::Mbox),
            "zip" => Some(Format::Zip),
            _ => None,
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mbox => "mbox",
            Format::Zip => "zip",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Mbox => "application/mbox",
            Format::Zip => "application/zip",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub messages: u64,
    pub bytes: u64,
    /// Infected or not-yet-scanned messages left out (see `reading::HELD_BACK`).
    pub withheld: u64,
}

/// Whether held-back mail (infected, not yet scanned) goes into the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldMail {
    /// For holders of `manage_quarantine` (and `daygle export --include-infected`).
    Include,
    /// Everyone else: such messages are skipped, and a zip's manifest lists them as withheld.
    Withhold,
}

struct Item {
    id: i64,
    blob_sha256: Vec<u8>,
    size: i64,
    layout: i16,
    /// None when the message is withheld: its bytes are never read.
    zstd: Option<Vec<u8>>,
    scan_status: String,
    virus_name: Option<String>,
    subject: Option<String>,
    from_addr: Option<String>,
    sort_date: OffsetDateTime,
    account: String,
    folder: String,
    uid: Option<i64>,
    message_id: Option<String>,
    date: Option<OffsetDateTime>,
    archived_at: OffsetDateTime,
}

impl Item {
    fn verdict(&self) -> String {
        match &self.virus_name {
            Some(virus) => format!("{}: {virus}", self.scan_status),
            None => self.scan_status.clone(),
        }
    }

    fn line<'a>(&'a self, file: &'a str, verdict: &'a str) -> Line<'a> {
        Line {
            file,
            sha256: &self.blob_sha256,
            size: self.size,
            account: &self.account,
            folder: &self.folder,
            uid: self.uid,
            date: self.date,
            archived_at: self.archived_at,
            message_id: self.message_id.as_deref(),
            verdict,
            from: self.from_addr.as_deref(),
            subject: self.subject.as_deref(),
        }
    }
}

/// The ids among `ids` that `grants` allow and that exist, in the given order without repeats:
/// exactly what an export of `ids` contains, checked in the query. Audit this list, not what
/// the browser sent.
pub async fn readable_ids(pool: &PgPool, grants: &Grants, ids: &[i64]) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT m.id AS "id!"
         FROM (SELECT id, min(ord) AS ord FROM unnest($1::bigint[]) WITH ORDINALITY AS w(id, ord)
               GROUP BY id) wanted
         JOIN messages m ON m.id = wanted.id
         WHERE ($2::bigint[] IS NULL OR m.account_id = ANY($2))
         ORDER BY wanted.ord"#,
        ids,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}

/// Most ids an audit row lists one by one; a longer export records the count and the hash only.
pub const AUDITED_IDS_MAX: usize = 1000;

/// How an export's audit row names its messages: the count, the SHA-256 of the ids (decimal,
/// comma-separated, in export order) — which anyone holding the list can re-derive — and the
/// ids themselves up to [`AUDITED_IDS_MAX`].
pub fn id_list_details(ids: &[i64]) -> serde_json::Value {
    let joined = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let mut details = serde_json::json!({
        "messages": ids.len(),
        "ids_sha256": hex::encode(sha256(joined.as_bytes())),
    });
    if ids.len() <= AUDITED_IDS_MAX {
        details["ids"] = ids.into();
    }
    details
}

/// Writes the messages `ids` (those `grants` allow; others are skipped) to `out` in `format`.
/// `progress` is called with the number of messages written so far. `info` goes into the
/// manifest.
#[allow(clippy::too_many_arguments)] // each is a separate decision of the caller
pub async fn export<W>(
    pool: &PgPool,
    grants: &Grants,
    held: HeldMail,
    ids: Vec<i64>,
    format: Format,
    info: ExportInfo,
    out: W,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Exported>
where
    W: Write + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<(Item, Arc<PartMap>)>(IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || write_all(rx, format, info, out, progress));
    let produced = produce(pool, grants, held, &ids, &tx).await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::context("run the export writer", e))?;
    produced?;
    written
}

async fn produce(
    pool: &PgPool,
    grants: &Grants,
    held: HeldMail,
    ids: &[i64],
    tx: &mpsc::Sender<(Item, Arc<PartMap>)>,
) -> Result<()> {
    let held_back: Vec<ScanStatus> = super::reading::HELD_BACK.to_vec();
    for chunk in ids.chunks(CHUNK) {
        let items = sqlx::query_as!(
            Item,
            r#"SELECT m.id, m.blob_sha256, b.size, b.layout,
                      CASE WHEN $3 OR m.scan_status <> ALL($4::text[]) THEN b.zstd END AS zstd,
                      m.scan_status, m.virus_name, m.subject, m.from_addr, m.sort_date AS "sort_date!",
                      a.name AS account, m.folder, m.uid, m.message_id, m.date, m.archived_at
               FROM unnest($1::bigint[]) WITH ORDINALITY AS wanted(id, ord)
               JOIN messages m ON m.id = wanted.id JOIN blobs b ON b.sha256 = m.blob_sha256
               JOIN accounts a ON a.id = m.account_id
               WHERE ($2::bigint[] IS NULL OR m.account_id = ANY($2)) ORDER BY wanted.ord"#,
            chunk,
            grants.as_ids(),
            held == HeldMail::Include,
            &held_back as _,
        )
        .fetch_all(pool)
        .await?;
        // The attachments of the chunk's skeletons, in one query.
        let skeletons: Vec<Vec<u8>> = items
            .iter()
            .filter(|i| i.layout == blobs::LAYOUT_SKELETON && i.zstd.is_some())
            .map(|i| i.blob_sha256.clone())
            .collect();
        let parts = Arc::new(if skeletons.is_empty() {
            PartMap::default()
        } else {
            blobs::parts_for(&mut *pool.acquire().await?, &skeletons).await?
        });
        for item in items {
            if tx.send((item, parts.clone())).await.is_err() {
                // The writer stopped (e.g. the client went away); its error is reported.
                return Ok(());
            }
        }
    }
    Ok(())
}

fn write_all<W: Write>(
    mut rx: mpsc::Receiver<(Item, Arc<PartMap>)>,
    format: Format,
    mut info: ExportInfo,
    out: W,
    progress: impl Fn(u64),
) -> Result<Exported> {
    let io = |e: std::io::Error| Error::context("write the export", e);
    let zip_err = |e: zip::result::ZipError| Error::context("write the export", e);
    let mut stats = Exported::default();
    let mut manifest = ManifestWriter::new().map_err(io)?;
    match format {
        Format::Mbox => {
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
            while let Some((item, parts)) = rx.blocking_recv() {
                let verdict = item.verdict();
                let Some(raw) = original(&item, &parts)? else {
                    stats.withheld += 1;
                    manifest
                        .add(&item.line("", &withheld(&verdict)))
                        .map_err(io)?;
                    continue;
                };
                write_mbox_entry(&mut out, &item, &raw).map_err(io)?;
                stats.messages += 1;
                stats.bytes += raw.len() as u64;
                let position = stats.messages.to_string();
                manifest.add(&item.line(&position, &verdict)).map_err(io)?;
                progress(stats.messages);
            }
            (info.count, info.withheld) = (stats.messages, stats.withheld);
            let (csv, _) = manifest.finish(&mut info).map_err(io)?;
            write_mbox_manifest(&mut out, &info, csv).map_err(io)?;
            out.flush().map_err(io)?;
        }
        Format::Zip => {
            let mut zip =
                zip::ZipWriter::new_stream(std::io::BufWriter::with_capacity(256 * 1024, out));
            let options = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(false);
            while let Some((item, parts)) = rx.blocking_recv() {
                let verdict = item.verdict();
                let Some(raw) = original(&item, &parts)? else {
                    stats.withheld += 1;
                    manifest
                        .add(&item.line("", &withheld(&verdict)))
                        .map_err(io)?;
                    continue;
                };
                let name = eml_name(&item);
                zip.start_file(name.as_str(), options).map_err(zip_err)?;
                zip.write_all(&raw).map_err(io)?;
                manifest.add(&item.line(&name, &verdict)).map_err(io)?;
                stats.messages += 1;
                stats.bytes += raw.len() as u64;
                progress(stats.messages);
            }
            (info.count, info.withheld) = (stats.messages, stats.withheld);
            let (mut csv, mut sums) = manifest.finish(&mut info).map_err(io)?;
            zip.start_file("manifest.csv", options).map_err(zip_err)?;
            std::io::copy(&mut csv, &mut zip).map_err(io)?;
            zip.start_file("SHA256SUMS", options).map_err(zip_err)?;
            std::io::copy(&mut sums, &mut zip).map_err(io)?;
            zip.start_file("export.json", options).map_err(zip_err)?;
            serde_json::to_writer_pretty(&mut zip, &info)
                .map_err(|e| Error::context("write the export", e))?;
            zip.finish().map_err(zip_err)?.flush().map_err(io)?;
        }
    }
    Ok(stats)
}

fn withheld(verdict: &str) -> String {
    format!("{verdict}: withheld, needs the manage_quarantine permission")
}

/// Reassembles and re-verifies one stored original; None when it is withheld.
fn original(item: &Item, parts: &PartMap) -> Result<Option<Vec<u8>>> {
    let Some(zstd) = &item.zstd else {
        return Ok(None);
    };
    blobs::decode(&item.blob_sha256, item.size, item.layout, zstd, parts)
        .map(Some)
        .map_err(|e| {
            Error::Internal(format!(
                "message {} does not read back as archived ({e}); export stopped",
                item.id
            ))
        })
}

/// mboxrd: a `From ` separator line, then the message with every `>*From ` line given one more
/// `>`, then one line end (after a message that ends in a newline this is the blank separator
/// line). The importer removes that one line end, so the original bytes come back exactly —
/// also for a message whose last line has no newline.
fn write_mbox_entry<W: Write>(out: &mut W, item: &Item, raw: &[u8]) -> std::io::Result<()> {
    let sender = item
        .from_addr
        .as_deref()
        .and_then(|f| f.rsplit('<').next())
        .map(|f| f.trim_end_matches('>').trim())
        .filter(|f| !f.is_empty() && !f.contains(char::is_whitespace))
        .unwrap_or("MAILER-DAEMON");
    let date = item
        .sort_date
        .format(time::macros::format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        ))
        .unwrap_or_else(|_| "Thu Jan  1 00:00:00 1970".into());
    writeln!(out, "From {sender} {date}")?;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let quoted = line.iter().take_while(|&&b| b == b'>').count();
        if line[quoted..].starts_with(b"From ") {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    out.write_all(b"\n")
}

fn eml_name(item: &Item) -> String {
    let subject: String = item
        .subject
        .as_deref()
        .unwrap_or("no subject")
        .chars()
        .take(60)
        .collect();
    let subject = safe_filename(Some(&subject), "no subject");
    format!("{}_{}_{}.eml", item.sort_date.date(), item.id, subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(raw: &[u8]) -> Item {
        Item {
            id: 1,
            blob_sha256: sha256(raw).to_vec(),
            size: raw.len() as i64,
            layout: blobs::LAYOUT_WHOLE,
            zstd: Some(zstd::bulk::compress(raw, 1).unwrap()),
            scan_status: "clean".into(),
            subject: Some("=cmd|' /C calc'!A0".into()),
            from_addr: Some("Alice <alice@example.org>".into()),
            sort_date: OffsetDateTime::UNIX_EPOCH,
            virus_name: None,
            account: "sales".into(),
            folder: "INBOX".into(),
            uid: Some(1),
            message_id: None,
            date: None,
            archived_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn mbox_round_trips_through_an_mboxrd_reader() {
        let messages: [&[u8]; 3] = [
            b"Subject: a\r\n\r\nFrom here\r\n>From there\r\n",
            b"Subject: b\n\nno newline at end",
            b"Subject: c\n\n>>From deep\nend\n",
        ];
        let mut out = Vec::new();
        for m in messages {
            write_mbox_entry(&mut out, &item(m), m).unwrap();
        }
        let read: Vec<Vec<u8>> =
            mail_parser::mailbox::mbox::MessageIterator::new(std::io::Cursor::new(out))
                .map(|m| m.unwrap().unwrap_contents())
                .collect();
        assert_eq!(read.len(), 3);
        // The reader keeps the line end written after each message; import strips exactly it.
        for (got, original) in read.iter().zip(messages) {
            assert_eq!(got, &[original, b"\n"].concat());
        }
    }

    #[test]
    fn a_corrupted_blob_is_refused() {
        let mut it = item(b"Subject: x\n\nbody\n");
        it.blob_sha256[0] ^= 1;
        assert!(original(&it, &PartMap::default()).is_err());
    }
}
