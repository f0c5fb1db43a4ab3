//! One archived message as a reader sees it: its row, its raw bytes, and the parts a page needs
//! (bodies, attachments, inline images, all headers), parsed from the stored original.
//!
//! Every lookup takes the reader's [`Grants`] and answers `None` both for a message that does
//! not exist and for one the reader may not see, so ids cannot be probed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

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

/// Part `index` of `raw` (an attachment, as numbered by [`render_parts`]), decoded; only that
/// part's bytes are copied.
pub async fn one_part(raw: Vec<u8>, index: usize) -> Result<Option<Part>> {
    spawn_blocking_in_span(move || {
        let msg = MessageParser::default().parse(&raw)?;
        if !msg.attachments.contains(&(index as u32)) {
            return None;
        }
        let part = msg.parts.get(index)?;
        if matches!(part.body, PartType::Multipart(_)) {
            return None;
        }
        Some(describe(index, part, true))
    })
    .await
    .map_err(|e| Error::context("run the message parsing task", e))
}

/// The only types served as inline images: plain raster formats browsers never run.
pub const INLINE_IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// What the body frame and its inline images need of a message, from one parse: the bodies
/// and the inline images by Content-ID (only [`INLINE_IMAGE_TYPES`]).
#[derive(Debug, Default)]
pub struct InlineImages {
    by_cid: HashMap<String, (&'static str, bytes::Bytes)>,
    /// The HTML body, when the message has a real HTML part.
    pub html_body: Option<String>,
    /// The plain body (or, when nothing parses as a body, the text after the header).
    pub text_body: Option<String>,
    bytes: usize,
}

impl InlineImages {
    /// Parses `raw` once and keeps its bodies and inline images.
    pub fn parse(raw: &[u8]) -> Self {
        let mut images = Self::default();
        let Some(msg) = MessageParser::default().parse(raw) else {
            images.text_body = Some(String::from_utf8_lossy(raw).into_owned());
            images.bytes = raw.len();
            return images;
        };
        (images.html_body, images.text_body) = bodies(&msg, raw);
        images.bytes = images.html_body.as_ref().map_or(0, String::len)
            + images.text_body.as_ref().map_or(0, String::len);
        for part in &msg.parts {
            let Some(cid) = part.content_id() else {
                continue;
            };
            let cid = cid.trim_start_matches('<').trim_end_matches('>');
            let Some(ct) = part.content_type() else {
                continue;
            };
            let ct = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase();
            let Some(kind) = INLINE_IMAGE_TYPES.iter().find(|t| **t == ct) else {
                continue;
            };
            if matches!(part.body, PartType::Multipart(_)) || images.by_cid.contains_key(cid) {
                continue;
            }
            let bytes = bytes::Bytes::copy_from_slice(part.contents());
            images.bytes += bytes.len();
            images.by_cid.insert(cid.to_string(), (kind, bytes));
        }
        images
    }

    /// The image with Content-ID `cid`: its type and bytes (a cheap clone).
    pub fn get(&self, cid: &str) -> Option<(&'static str, bytes::Bytes)> {
        self.by_cid.get(cid).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_cid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cid.is_empty()
    }
}

/// Recently opened messages' bodies and inline images, so a body with many `cid:` images is
/// read, decompressed and parsed once — not once per image, nor once per reader of its body
/// frame — however many readers ask at the same time (they wait for the one parse). Bounded by entries and bytes; the oldest go first.
/// Whoever asks must have passed the access checks for the message first: the cache is keyed by
/// message id only.
pub struct InlineCache {
    entries: Mutex<VecDeque<(i64, Slot)>>,
    max_entries: usize,
    max_bytes: usize,
}

/// One message's images, filled by the first reader; the others wait on it.
type Slot = Arc<OnceCell<Arc<InlineImages>>>;

impl Default for InlineCache {
    fn default() -> Self {
        Self::new(32, 128 * 1024 * 1024)
    }
}

impl InlineCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The inline images of message `id`, parsed from what `load` returns on first use.
    pub async fn get_or_load<F>(&self, id: i64, load: F) -> Result<Arc<InlineImages>>
    where
        F: Future<Output = Result<Vec<u8>>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.iter().find(|(k, _)| *k == id) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    entries.push_back((id, cell.clone()));
                    cell
                }
            }
        };
        let images = cell
            .get_or_try_init(|| async {
                let raw = load.await?;
                spawn_blocking_in_span(move || Arc::new(InlineImages::parse(&raw)))
                    .await
                    .map_err(|e| Error::context("run the message parsing task", e))
            })
            .await?
            .clone();
        self.evict(id);
        Ok(images)
    }

    /// Drops the oldest entries (never `keep`) while over either bound.
    fn evict(&self, keep: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let size = |e: &VecDeque<(i64, Slot)>| -> usize {
            e.iter().filter_map(|(_, c)| c.get()).map(|i| i.bytes).sum()
        };
        while entries.len() > 1
            && (entries.len() > self.max_entries || size(&entries) > self.max_bytes)
        {
            let Some(pos) = entries.iter().position(|(k, _)| *k != keep) else {
                break;
            };
            entries.remove(pos);
        }
    }
}

fn describe(index: usize, part: &mail_parser::MessagePart<'_>, keep_bytes: bool) -> Part {
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
        .map(|(index, part)| describe(index, part, keep_bytes))
        .collect();
    let (html_body, text_body) = bodies(&msg, raw);
    Rendered {
        html_body,
        text_body,
        headers,
        attachments,
    }
}

/// The HTML body (only a real HTML part) and the text body of `msg`, parsed from `raw`.
fn bodies(msg: &mail_parser::Message<'_>, raw: &[u8]) -> (Option<String>, Option<String>) {
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
    (html_body, text_body)
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

#[cfg(test)]
mod inline_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn message_with_images(n: usize) -> Vec<u8> {
        let mut b = mail_builder::MessageBuilder::new()
            .from(("Alice", "alice@example.org"))
            .to("team@example.org")
            .subject("Many images")
            .html_body("<p>hi</p>");
        for i in 0..n {
            b = b.inline("image/png", format!("img{i}@x"), vec![i as u8; 64]);
        }
        b.inline(
            "text/html",
            "page@x",
            "<script>alert(1)</script>".as_bytes(),
        )
        .write_to_vec()
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_readers_of_many_images_parse_the_message_once() {
        let raw = message_with_images(50);
        let cache = Arc::new(InlineCache::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (cache, loads, raw) = (cache.clone(), loads.clone(), raw.clone());
                tokio::spawn(async move {
                    let images = cache
                        .get_or_load(7, async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            Ok(raw)
                        })
                        .await
                        .unwrap();
                    images.get(&format!("img{}@x", i % 50))
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let (kind, bytes) = t.await.unwrap().expect("image found");
            assert_eq!(kind, "image/png");
            assert_eq!(bytes.as_ref(), &[(i % 50) as u8; 64][..]);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one read and parse for all"
        );
        let images = cache
            .get_or_load(7, async { unreachable!() })
            .await
            .unwrap();
        assert_eq!(images.len(), 50, "the HTML part is not an image");
        assert_eq!(
            images.html_body.as_deref(),
            Some("<p>hi</p>"),
            "the body frame reads its body from the same parse"
        );
        assert!(images.get("page@x").is_none());
    }

    #[tokio::test]
    async fn the_cache_keeps_to_its_bounds() {
        let cache = InlineCache::new(2, usize::MAX);
        let loads = Arc::new(AtomicUsize::new(0));
        for id in [1, 2, 3, 1] {
            let loads = loads.clone();
            cache
                .get_or_load(id, async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(message_with_images(1))
                })
                .await
                .unwrap();
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            4,
            "1 was evicted by 3 and loaded again"
        );
        let small = InlineCache::new(10, 100);
        for id in [1, 2] {
            small
                .get_or_load(id, async { Ok(message_with_images(2)) })
                .await
                .unwrap();
        }
        assert_eq!(
            small.entries.lock().unwrap().len(),
            1,
            "over the byte budget"
        );
    }
}
