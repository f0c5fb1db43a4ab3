//! The CPU side of `verify archive`: decompress, hash, and compare one batch of blobs with the
//! rows that point at them. Pure functions, run on blocking threads.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::{Problem, ProblemKind};
use crate::archive::blobs::{self, PartMap};
use crate::archive::parse::{self, AttachmentInfo};

/// Refuse to allocate for a recorded size beyond this: such a size is itself corruption.
const MAX_PLAUSIBLE_SIZE: i64 = 4 << 30;

/// A stored blob as read from the database.
pub(super) struct StoredBlob {
    pub sha256: Vec<u8>,
    pub size: i64,
    pub layout: i16,
    pub zstd: Vec<u8>,
}

/// A message row that points at a blob of the batch, with its attachment rows.
#[derive(Debug)]
pub(super) struct MessageRow {
    pub id: i64,
    pub blob_sha256: Vec<u8>,
    pub size: i64,
    pub account: Option<String>,
    pub folder: String,
    pub attachment_count: i32,
    pub parts: sqlx::types::Json<Vec<StoredPart>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(super) struct StoredPart {
    pub part_index: i32,
    pub size: i64,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// A blob and the in-scope messages that use it.
pub(super) struct Item {
    pub blob: StoredBlob,
    pub messages: Vec<MessageRow>,
    /// The attachments of the batch's skeletons (shared by the batch).
    pub parts: Arc<PartMap>,
}

#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub blobs: u64,
    pub messages: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

/// Checks every item; one decompression context and buffer serve the whole slice.
pub(super) fn check_items(items: &[Item]) -> Outcome {
    let mut out = Outcome::default();
    let mut decompressor = match zstd::bulk::Decompressor::new() {
        Ok(d) => d,
        Err(e) => {
            out.problems.push(Problem {
                kind: ProblemKind::CorruptBlob,
                message_id: None,
                account: None,
                folder: None,
                detail: format!("could not start a zstd decompressor: {e}"),
            });
            return out;
        }
    };
    let mut buf = Vec::new();
    for item in items {
        out.blobs += 1;
        out.messages += item.messages.len() as u64;
        match read_blob(&mut decompressor, item, &mut buf) {
            Err(detail) => {
                let detail = format!("blob {}: {detail}", short_hex(&item.blob.sha256));
                if item.messages.is_empty() {
                    out.problems
                        .push(problem(ProblemKind::CorruptBlob, None, detail.clone()));
                }
                for m in &item.messages {
                    out.problems
                        .push(problem(ProblemKind::CorruptBlob, Some(m), detail.clone()));
                }
            }
            Ok(()) => {
                out.bytes += buf.len() as u64;
                check_messages(&buf, item, &mut out.problems);
            }
        }
    }
    out
}

/// Decompresses `blob` into `buf` and checks its size and SHA-256.
fn read_blob(
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    item: &Item,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let blob = &item.blob;
    if !(0..=MAX_PLAUSIBLE_SIZE).contains(&blob.size) {
        return Err(format!("recorded size {} is implausible", blob.size));
    }
    if blob.layout == blobs::LAYOUT_SKELETON {
        // Reassembly checks each attachment's hash and the whole message's.
        *buf = blobs::decode(
            &blob.sha256,
            blob.size,
            blob.layout,
            &blob.zstd,
            &item.parts,
        )
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    buf.clear();
    buf.reserve(blob.size as usize);
    decompressor
        .decompress_to_buffer(blob.zstd.as_slice(), buf)
        .map_err(|e| format!("stored bytes do not decompress ({e})"))?;
    if buf.len() as i64 != blob.size {
        return Err(format!(
            "decompresses to {} bytes, {} recorded",
            buf.len(),
            blob.size
        ));
    }
    if Sha256::digest(buf.as_slice()).as_slice() != blob.sha256.as_slice() {
        return Err("content no longer matches its SHA-256 (the stored bytes changed)".into());
    }
    Ok(())
}

fn check_messages(raw: &[u8], item: &Item, problems: &mut Vec<Problem>) {
    let mut found: Option<Vec<AttachmentInfo>> = None;
    for m in &item.messages {
        if m.size != item.blob.size {
            problems.push(problem(
                ProblemKind::SizeMismatch,
                Some(m),
                format!(
                    "recorded size {} but the stored message has {} bytes",
                    m.size, item.blob.size
                ),
            ));
        }
        let found = found.get_or_insert_with(|| parse::attachments(raw));
        if let Some(detail) = compare_attachments(found, &m.parts, m.attachment_count) {
            problems.push(problem(ProblemKind::Attachments, Some(m), detail));
        }
    }
}

/// How the attachment rows differ from the attachments in the message, if they do.
pub(super) fn compare_attachments(
    found: &[AttachmentInfo],
    stored: &[StoredPart],
    attachment_count: i32,
) -> Option<String> {
    if usize::try_from(attachment_count).ok() != Some(stored.len()) {
        return Some(format!(
            "attachment_count is {attachment_count} but {} attachment rows exist",
            stored.len()
        ));
    }
    let mut stored: Vec<&StoredPart> = stored.iter().collect();
    stored.sort_by_key(|p| p.part_index);
    let same = found.len() == stored.len()
        && found.iter().zip(&stored).all(|(f, s)| {
            f.part_index == s.part_index
                && f.size == s.size
                && f.filename == s.filename
                && f.content_type == s.content_type
        });
    if same {
        return None;
    }
    let names = |it: &mut dyn Iterator<Item = (Option<&str>, i64)>| {
        it.map(|(n, size)| format!("{} ({size} bytes)", n.unwrap_or("unnamed")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "the message holds {} attachment(s) [{}] but the archive lists {} [{}]; `daygle reindex` re-derives them",
        found.len(),
        names(&mut found.iter().map(|f| (f.filename.as_deref(), f.size))),
        stored.len(),
        names(&mut stored.iter().map(|s| (s.filename.as_deref(), s.size))),
    ))
}

fn problem(kind: ProblemKind, m: Option<&MessageRow>, detail: String) -> Problem {
    Problem {
        kind,
        message_id: m.map(|m| m.id),
        account: m.and_then(|m| m.account.clone()),
        folder: m.map(|m| m.folder.clone()),
        detail,
    }
}

/// The first 12 hex digits name a blob well enough in a report.
pub(super) fn short_hex(sha256: &[u8]) -> String {
    let hex = hex::encode(sha256);
    hex[..hex.len().min(12)].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(raw: &[u8]) -> StoredBlob {
        StoredBlob {
            layout: blobs::LAYOUT_WHOLE,
            sha256: Sha256::digest(raw).to_vec(),
            size: raw.len() as i64,
            zstd: zstd::bulk::compress(raw, 3).unwrap(),
        }
    }

    fn row(id: i64, raw: &[u8], parts: Vec<StoredPart>) -> MessageRow {
        MessageRow {
            id,
            blob_sha256: Sha256::digest(raw).to_vec(),
            size: raw.len() as i64,
            account: Some("sales".into()),
            folder: "INBOX".into(),
            attachment_count: parts.len() as i32,
            parts: sqlx::types::Json(parts),
        }
    }

    const PLAIN: &[u8] = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n";

    #[test]
    fn an_intact_blob_passes_and_counts_its_bytes() {
        let out = check_items(&[Item {
            parts: Arc::default(),
            blob: blob(PLAIN),
            messages: vec![row(1, PLAIN, vec![])],
        }]);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(
            (out.blobs, out.messages, out.bytes),
            (1, 1, PLAIN.len() as u64)
        );
    }

    #[test]
    fn a_changed_byte_is_named_with_its_message() {
        let mut b = blob(PLAIN);
        b.sha256[5] ^= 1;
        let out = check_items(&[Item {
            parts: Arc::default(),
            blob: b,
            messages: vec![row(7, PLAIN, vec![]), row(8, PLAIN, vec![])],
        }]);
        let ids: Vec<_> = out.problems.iter().map(|p| p.message_id).collect();
        assert_eq!(ids, [Some(7), Some(8)]);
        assert!(
            out.problems[0]
                .detail
                .contains("no longer matches its SHA-256")
        );
        assert_eq!(out.problems[0].kind, ProblemKind::CorruptBlob);
    }

    #[test]
    fn garbage_in_place_of_zstd_and_a_wrong_size_are_corruption() {
        let mut b = blob(PLAIN);
        b.zstd = b"not zstd at all".to_vec();
        let mut sized = blob(PLAIN);
        sized.size += 1;
        let out = check_items(&[
            Item {
                parts: Arc::default(),
                blob: b,
                messages: vec![],
            },
            Item {
                parts: Arc::default(),
                blob: sized,
                messages: vec![],
            },
        ]);
        assert_eq!(out.problems.len(), 2);
        assert!(out.problems[0].detail.contains("do not decompress"));
        assert!(
            out.problems[1].detail.contains("bytes,"),
            "{}",
            out.problems[1]
        );
    }

    #[test]
    fn attachment_rows_that_disagree_with_the_message_are_reported() {
        let mut m = row(3, PLAIN, vec![]);
        m.attachment_count = 1;
        let out = check_items(&[Item {
            parts: Arc::default(),
            blob: blob(PLAIN),
            messages: vec![m],
        }]);
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].kind, ProblemKind::Attachments);
        let phantom = StoredPart {
            part_index: 1,
            size: 10,
            filename: Some("ghost.pdf".into()),
            content_type: Some("application/pdf".into()),
        };
        let detail = compare_attachments(&[], &[phantom], 1).unwrap();
        assert!(detail.contains("ghost.pdf"), "{detail}");
    }
}
