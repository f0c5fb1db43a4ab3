//! Import from disk: mbox files, Maildir trees and directories of .eml files, streamed through
//! the same pipeline as IMAP mail. Imported copies are keyed by content within their account,
//! so an interrupted import simply runs again: what is stored already counts as a duplicate.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::ingest::pipeline::{self, Batch, Incoming};
use crate::scan::ScanStage;
use crate::secrets::SealingKeys;
use std::sync::Arc;

/// What an import did, for the final report.
#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    pub imported: u64,
    pub duplicates: u64,
    pub bytes: u64,
    /// (source, reason): files or messages that could not be read.
    pub failed: Vec<(String, String)>,
    /// (source, reason): messages deliberately left out (e.g. over the size limit).
    pub skipped: Vec<(String, String)>,
}

/// One thing found on disk.
#[derive(Debug, Clone)]
enum Source {
    Mbox {
        path: PathBuf,
        folder: String,
    },
    Eml {
        path: PathBuf,
        folder: String,
    },
    /// One Maildir folder's cur/ and new/ directories.
    Maildir {
        dir: PathBuf,
        folder: String,
    },
}

enum Item {
    Message { folder: String, raw: Vec<u8> },
    Failed { source: String, reason: String },
    Skipped { source: String, reason: String },
}

/// Total bytes of the files under `paths`, for a progress bar.
pub fn total_bytes(paths: &[PathBuf]) -> u64 {
    let mut sources = Vec::new();
    let mut failed = Vec::new();
    for p in paths {
        discover(p, p, &mut sources, &mut failed);
    }
    sources
        .iter()
        .map(|s| match s {
            Source::Mbox { path, .. } | Source::Eml { path, .. } => file_len(path),
            Source::Maildir { dir, .. } => ["cur", "new"]
                .iter()
                .filter_map(|d| std::fs::read_dir(dir.join(d)).ok())
                .flatten()
                .flatten()
                .map(|e| file_len(&e.path()))
                .sum(),
        })
        .sum()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Imports everything under `paths` into `account`; `progress` is told the bytes read so far.
/// With `clamav.enabled`, every message is scanned like synced mail (`keys` seal what is
/// quarantined); if clamd gives no verdict the import stops after storing the messages before
/// it, with an error, and a re-run continues (what is archived is recognised by content).
pub async fn import_paths(
    pool: &PgPool,
    settings: &Settings,
    keys: &SealingKeys,
    account: &Account,
    paths: &[PathBuf],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport> {
    let scan = ScanStage::from_settings(&settings.clamav)
        .map(|stage| (Arc::new(stage), Arc::new(keys.clone())));
    let (tx, mut rx) = mpsc::channel::<Item>(64);
    let paths = paths.to_vec();
    let max_size = settings.storage.max_message_bytes;
    let reader = tokio::task::spawn_blocking(move || read_all(&paths, max_size, &tx));
    let mut report = ImportReport::default();
    let mut pending: Vec<Incoming> = Vec::new();
    let mut pending_folder = String::new();
    let mut pending_bytes = 0u64;
    let limits = (settings.sync.batch_messages, settings.sync.batch_bytes);
    // One batch is stored while the next is read: at most two batches in memory.
    let mut in_flight: Option<InFlight> = None;
    while let Some(item) = rx.recv().await {
        match item {
            Item::Failed { source, reason } => report.failed.push((source, reason)),
            Item::Skipped { source, reason } => report.skipped.push((source, reason)),
            Item::Message { folder, raw } => {
                if folder != pending_folder
                    || pending.len() >= limits.0
                    || pending_bytes + raw.len() as u64 > limits.1
                {
                    let next = flush(
                        pool,
                        settings,
                        &scan,
                        account,
                        &pending_folder,
                        &mut pending,
                    );
                    if let Some(prev) = std::mem::replace(&mut in_flight, next) {
                        settle(prev, &mut report).await?;
                        progress(report.bytes);
                    }
                    pending_bytes = 0;
                    pending_folder = folder;
                }
                pending_bytes += raw.len() as u64;
                pending.push(Incoming {
                    uid: None,
                    raw,
                    internal_date: None,
                    flags: Vec::new(),
                });
            }
        }
    }
    let last = flush(
        pool,
        settings,
        &scan,
        account,
        &pending_folder,
        &mut pending,
    );
    for task in [in_flight, last].into_iter().flatten() {
        settle(task, &mut report).await?;
    }
    progress(report.bytes);
    reader
        .await
        .map_err(|e| Error::context("run the import reader", e))?;
    Ok(report)
}

type InFlight = tokio::task::JoinHandle<Result<pipeline::Stored>>;
/// The scan stage and sealing keys, shared with each batch's store task.
type ImportScan = Option<(Arc<ScanStage>, Arc<SealingKeys>)>;

/// Starts storing the pending messages as one batch (None when there are none).
fn flush(
    pool: &PgPool,
    settings: &Settings,
    scan: &ImportScan,
    account: &Account,
    folder: &str,
    pending: &mut Vec<Incoming>,
) -> Option<InFlight> {
    if pending.is_empty() {
        return None;
    }
    let batch = Batch {
        account_id: account.id,
        folder: folder.to_string(),
        uidvalidity: None,
        messages: std::mem::take(pending),
        ledger: Vec::new(),
        advance_to: None,
    };
    let pool = pool.clone();
    let level = settings.storage.zstd_level;
    let scan = scan.clone();
    Some(tokio::spawn(async move {
        let scan = scan
            .as_ref()
            .map(|(stage, keys)| (stage.as_ref(), keys.as_ref()));
        pipeline::store_scanned(&pool, level, batch, scan).await
    }))
}

async fn settle(task: InFlight, report: &mut ImportReport) -> Result<()> {
    let stored = task
        .await
        .map_err(|e| Error::context("run the import store task", e))??;
    report.imported += stored.inserted;
    report.duplicates += stored.received - stored.inserted;
    report.bytes += stored.raw_bytes;
    Ok(())
}

/// Runs on a blocking thread: walks the paths and sends one message at a time, so memory
/// holds at most the channel's worth of messages whatever the file sizes.
fn read_all(paths: &[PathBuf], max_size: u64, tx: &mpsc::Sender<Item>) {
    for root in paths {
        let mut sources = Vec::new();
        let mut failed = Vec::new();
        discover(root, root, &mut sources, &mut failed);
        for (source, reason) in failed {
            if tx.blocking_send(Item::Failed { source, reason }).is_err() {
                return;
            }
        }
        for s in sources {
            if !read_source(&s, max_size, tx) {
                return;
            }
        }
    }
}

fn discover(root: &Path, path: &Path, out: &mut Vec<Source>, failed: &mut Vec<(String, String)>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            failed.push((path.display().to_string(), format!("cannot read: {e}")));
            return;
        }
    };
    if meta.is_file() {
        let folder = folder_label(root, path);
        if looks_like_mbox(path) {
            out.push(Source::Mbox {
                path: path.to_path_buf(),
                folder: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or(folder),
            });
        } else if path == root || has_ext(path, &["eml", "msg"]) {
            out.push(Source::Eml {
                path: path.to_path_buf(),
                folder,
            });
        } else if has_ext(path, &["mbox", "mbx"]) {
            failed.push((
                path.display().to_string(),
                "not an mbox file: it does not start with a \"From \" line".into(),
            ));
        }
        return;
    }
    if path.join("cur").is_dir() || path.join("new").is_dir() {
        discover_maildir(path, out);
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) => {
            failed.push((path.display().to_string(), format!("cannot list: {e}")));
            return;
        }
    };
    entries.sort();
    for entry in entries {
        discover(root, &entry, out, failed);
    }
}

/// A Maildir root is INBOX; its `.Sub.Folder` directories are `Sub/Folder`.
fn discover_maildir(dir: &Path, out: &mut Vec<Source>) {
    out.push(Source::Maildir {
        dir: dir.to_path_buf(),
        folder: "INBOX".into(),
    });
    let mut subs: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let folder = name.strip_prefix('.')?.replace('.', "/");
            let p = e.path();
            (!folder.is_empty() && (p.join("cur").is_dir() || p.join("new").is_dir()))
                .then_some((p, folder))
        })
        .collect();
    subs.sort();
    for (dir, folder) in subs {
        out.push(Source::Maildir { dir, folder });
    }
}

fn folder_label(root: &Path, path: &Path) -> String {
    path.parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .map(|p| p.display().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Import".into())
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn looks_like_mbox(path: &Path) -> bool {
    let mut head = [0u8; 5];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"From "
}

/// Sends every message of one source; false when the receiver is gone.
fn read_source(source: &Source, max_size: u64, tx: &mpsc::Sender<Item>) -> bool {
    match source {
        Source::Eml { path, folder } => send_file(path, folder, max_size, tx),
        Source::Maildir { dir, folder } => {
            let mut files: Vec<PathBuf> = ["cur", "new"]
                .iter()
                .filter_map(|d| std::fs::read_dir(dir.join(d)).ok())
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files.iter().all(|p| send_file(p, folder, max_size, tx))
        }
        Source::Mbox { path, folder } => {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) => return fail(tx, path, format!("cannot open: {e}")),
            };
            let iter = mail_parser::mailbox::mbox::MessageIterator::new(BufReader::with_capacity(
                256 * 1024,
                file,
            ));
            for (i, msg) in iter.enumerate() {
                let source = format!("{} message {}", path.display(), i + 1);
                let item = match msg {
                    // The iterator un-escapes `>From ` lines; it keeps the blank line that
                    // separates one message from the next `From ` line, which mbox writers add.
                    Ok(m) => {
                        let raw = without_separator(m.unwrap_contents());
                        // A daygle export's closing manifest message is not mail.
                        if crate::archive::export_manifest::is_manifest_message(&raw) {
                            continue;
                        }
                        message_item(folder, raw, &source, max_size)
                    }
                    Err(e) => Item::Failed {
                        source,
                        reason: format!("read error: {e}"),
                    },
                };
                if tx.blocking_send(item).is_err() {
                    return false;
                }
            }
            true
        }
    }
}

/// Drops the line end an mbox writer adds after each message (RFC 4155: a message ends with
/// an empty line before the next `From `), so the bytes are the message as it was and match its
/// IMAP copy. A CRLF ending with nothing after it was not written by such a writer and is kept.
fn without_separator(mut contents: Vec<u8>) -> Vec<u8> {
    if contents.ends_with(b"\n") && !contents.ends_with(b"\r\n") {
        contents.pop();
    }
    contents
}

fn send_file(path: &Path, folder: &str, max_size: u64, tx: &mpsc::Sender<Item>) -> bool {
    let source = path.display().to_string();
    let len = file_len(path);
    let item = if len > max_size {
        Item::Skipped {
            source,
            reason: format!(
                "larger than storage.max_message_bytes ({len} bytes > {max_size} bytes)"
            ),
        }
    } else {
        match std::fs::read(path) {
            Ok(raw) => message_item(folder, raw, &source, max_size),
            Err(e) => Item::Failed {
                source,
                reason: format!("cannot read: {e}"),
            },
        }
    };
    tx.blocking_send(item).is_ok()
}

fn message_item(folder: &str, raw: Vec<u8>, source: &str, max_size: u64) -> Item {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        Item::Failed {
            source: source.into(),
            reason: "empty: no message in it".into(),
        }
    } else if raw.len() as u64 > max_size {
        Item::Skipped {
            source: source.into(),
            reason: format!(
                "larger than storage.max_message_bytes ({} bytes > {max_size} bytes)",
                raw.len()
            ),
        }
    } else {
        Item::Message {
            folder: folder.into(),
            raw,
        }
    }
}

fn fail(tx: &mpsc::Sender<Item>, path: &Path, reason: String) -> bool {
    tx.blocking_send(Item::Failed {
        source: path.display().to_string(),
        reason,
    })
    .is_ok()
}
