//! One archived message as a reader sees it: its row, its raw bytes, and the parts a page needs
//! (bodies, attachments, inline images, all headers), parsed from the stored original.
//!
//! Every lookup takes the reader's [`Grants`] and answers `None` both for a message that does
//! not exist and for one the reader may not see, so ids cannot be probed.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::blobs;
use crate::auth::Grants;
use crate::error::{Error, Result};
use crate::scan::ScanStatus;
use crate::telemetry::spawn_blocking_in_span;

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub account_id: i64,
    pub account_name: String,
    pub folder: String,
    pub uid: Option<i64>,
    pub blob_sha256: Vec<u8>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub to_addrs: Option<String>,
    pub cc_addrs: Option<String>,
    pub date: Option<OffsetDateTime>,
    pub sort_date: OffsetDateTime,
    pub size: i64,
    pub attachment_count: i32,
    pub scan_status: ScanStatus,
    pub virus_name: Option<String>,
    pub parse_error: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    /// The search vector still waits for the background stage (attachment text, reindex).
    pub search_pending: bool,
}

impl MessageRow {
    pub fn sha256_hex(&self) -> String {
        hex::encode(&self.blob_sha256)
    }
}

/// Scan states whose bytes leave the server only for holders of `manage_quarantine` (raw,
/// attachments, inline images, exports): detected malware, and mail not scanned yet because the
/// scanner was down (it may be malware; it is scanned later). Mail too large to scan is
/// marked in the UI and export manifests but not held back: it will never be scanned, and
/// holding it would take whole archives of large attachments from their readers.
pub const HELD_BACK: [ScanStatus; 2] = [ScanStatus::Infected, ScanStatus::Pending];

/// Whether the bytes of a message in `scan_status` may leave for this reader.
pub fn bytes_may_leave(scan_status: ScanStatus, can_manage_quarantine: bool) -> bool {
    can_manage_quarantine || !HELD_BACK.contains(&scan_status)
}

/// The message `id` if `grants` allow it.
pub async fn find(pool: &PgPool, grants: &Grants, id: i64) -> Result<Option<MessageRow>> {
    Ok(sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.account_id, a.name AS account_name, m.folder, m.uid, m.blob_sha256,
                  m.message_id, m.subject, m.from_addr, m.to_addrs, m.cc_addrs, m.date,
                  m.sort_date AS "sort_date!", m.size, m.attachment_count,
                  m.scan_status AS "scan_status: ScanStatus", m.virus_name, m.parse_error,
                  m.in_reply_to, m.refs, m.search_pending
           FROM messages m JOIN accounts a ON a.id = m.account_id
           WHERE m.id = $1 AND ($2::bigint[] IS NULL OR m.account_id = ANY($2))"#,
        id,
        grants.as_ids(),
    )
    .fetch_optional(pool)
    .await?)
}

/// How reading each attachment's text went, by part index (`attachments.text_note`).
pub async fn attachment_notes(pool: &PgPool, message_id: i64) -> Result<Vec<(i32, String)>> {
    Ok(sqlx::query!(
        r#"SELECT part_index, text_note AS "text_note!" FROM attachments
           WHERE message_id = $1 AND text_note IS NOT NULL ORDER BY part_index"#,
        message_id,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.part_index, r.text_note))
    .collect())
}

/// The exact bytes that were archived. A blob that no longer matches its hash is an error, not
/// silently served.
pub async fn raw(pool: &PgPool, row: &MessageRow) -> Result<Vec<u8>> {
    let sha: [u8; 32] = row
        .blob_sha256
        .as_slice()
        .try_into()
        .map_err(|_| Error::Internal(format!("message {} has a malformed hash", row.id)))?;
    let mut conn = pool.acquire().await?;
    blobs::read_verified(&mut conn, &sha).await?.ok_or_else(|| {
        Error::Internal(format!(
            "stored original of message {} is missing or does not match its SHA-256",
            row.id
        ))
    })
}

/// An attachment or inline part, decoded.
#[derive(Debug, Clone)]
pub struct Part {
    pub index: usize,
    pub filename: Option<String>,
    pub content_type: String,
    pub content_id: Option<String>,
    pub size: usize,
    pub bytes: Vec<u8>,
}

/// What the message page shows, parsed from the original.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub html_body: Option<String>,
    pub text_body: Option<String>,
    /// Header name/value pairs in order, values as received (decoded where possible).
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Part>,
}

/// Parses `raw` off the async threads. A message mail-parser cannot read at all still yields
/// its raw text as the plain body, so nothing archived is unreadable.
pub async fn render_parts(raw: Vec<u8>, keep_bytes: bool) -> Result<Rendered> {
    spawn_blocking_in_span(move || parse_parts(&raw, keep_bytes))
        .await
        .map_err(|e| Error::context("run the message parsing task", e))
}

fn parse_parts(raw: &[u8], keep_bytes: bool) -> Rendered {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Rendered {
            text_body: Some(String::from_utf8_lossy(raw).into_owned()),
            ..Rendered::default()
        };
    };
    let headers = msg
        .root_part()
        .headers()
        .iter()
        .map(|h| {
            let name = h.name().to_string();
            let value = raw
                .get(h.offset_start() as usize..h.offset_end() as usize)
                .map(|v| String::from_utf8_lossy(v).trim().replace("\r\n", "\n"))
                .unwrap_or_default();
            (name, value)
        })
        .collect();
    let attachments = msg
        .parts
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            msg.attachments.contains(&(*i as u32)) && !matches!(p.body, PartType::Multipart(_))
        })
        .map(|(index, part)| {
            let bytes = part.contents();
            Part {
                index,
                filename: part.attachment_name().map(str::to_string),
                content_type: part
                    .content_type()
                    .map(|ct| match ct.subtype() {
                        Some(sub) => format!("{}/{}", ct.ctype(), sub),
                        None => ct.ctype().to_string(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into())
                    .to_ascii_lowercase(),
                content_id: part
                    .content_id()
                    .map(|c| c.trim_start_matches('<').trim_end_matches('>').to_string()),
                size: bytes.len(),
                bytes: if keep_bytes {
                    bytes.to_vec()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    // mail-parser lists text parts among the HTML bodies too (converted); only a real HTML
    // part goes to the sanitiser and the frame.
    let has_html = msg.html_body.iter().any(|&i| {
        matches!(
            msg.parts.get(i as usize).map(|p| &p.body),
            Some(PartType::Html(_))
        )
    });
    let html_body = has_html
        .then(|| msg.body_html(0).map(|b| b.into_owned()))
        .flatten();
    let mut text_body = msg.body_text(0).map(|b| b.into_owned());
    if html_body.is_none() && text_body.is_none() {
        // Nothing the parser recognised as a body: show what follows the header, as text.
        let start = msg.root_part().raw_body_offset() as usize;
        text_body = Some(String::from_utf8_lossy(raw.get(start..).unwrap_or(raw)).into_owned());
    }
    Rendered {
        html_body,
        text_body,
        headers,
        attachments,
    }
}

/// A safe download name: no path separators or control characters, never empty.
pub fn safe_filename(name: Option<&str>, fallback: &str) -> String {
    let cleaned: String = name
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_control()
                || is_bidi_control(c)
                || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        fallback.to_string()
    } else {
        cleaned.chars().take(150).collect()
    }
}

/// Characters that reorder text (e.g. U+202E RIGHT-TO-LEFT OVERRIDE): in a file name they
/// make `invoice_fdp.exe` display as `invoice_exe.pdf`, so every shown or downloaded name
/// loses them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_cannot_spoof_an_extension() {
        assert_eq!(
            safe_filename(Some("invoice\u{202E}fdp.exe"), "x"),
            "invoice_fdp.exe"
        );
        assert_eq!(
            safe_filename(Some("a\u{2066}b\u{2069}.pdf"), "x"),
            "a_b_.pdf"
        );
    }

    #[test]
    fn download_names_cannot_escape_or_be_empty() {
        assert_eq!(
            safe_filename(Some("../../etc/passwd"), "x"),
            "_.._etc_passwd"
        );
        assert_eq!(safe_filename(Some("a\r\nb.pdf"), "x"), "a__b.pdf");
        assert_eq!(safe_filename(Some("   "), "attachment"), "attachment");
        assert_eq!(safe_filename(None, "message.eml"), "message.eml");
        assert_eq!(
            safe_filename(Some("Résumé 2024.pdf"), "x"),
            "Résumé 2024.pdf"
        );
    }

    #[test]
    fn garbage_still_renders_as_text() {
        let r = parse_parts(b"\xff\xfe not mail at all", false);
        assert!(r.text_body.is_some() || r.html_body.is_some());
    }
}
