//! Raw message bytes → the metadata the archive stores and searches. Never panics and never
//! refuses a message: whatever could be read is kept, and problems are listed in `parse_error`.

use mail_parser::{Address, MessageParser, MimeHeaders, PartType};
use time::OffsetDateTime;

/// The search text kept per message is capped; the blob always holds the whole message.
const MAX_BODY_TEXT: usize = 256 * 1024;
const SNIPPET_CHARS: usize = 200;
/// RFC 5322 section 2.1.1: a line must not exceed 998 characters.
const MAX_HEADER_LINE: usize = 998;
/// Words longer than this are noise (base64 runs, hostile headers) and PostgreSQL refuses to
/// index words over 2047 bytes anyway.
const MAX_WORD_BYTES: usize = 100;

#[derive(Debug, Default, Clone)]
pub struct ParsedMessage {
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub bcc: Option<String>,
    pub reply_to: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub date: Option<OffsetDateTime>,
    pub attachments: Vec<AttachmentInfo>,
    pub snippet: Option<String>,
    /// Body text for the search vector (capped, long words dropped).
    pub body_text: String,
    /// Every problem found, joined with "; ". None when the message is well-formed.
    pub parse_error: Option<String>,
    /// Byte ranges of the encoded bodies of binary parts, where storage may cut attachments
    /// out to store them once (see `archive::blobs::encode`).
    pub binary_bodies: Vec<std::ops::Range<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub part_index: i32,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub size: i64,
}

impl ParsedMessage {
    /// Addresses and attachment names: the B-weighted part of the search vector.
    pub fn address_text(&self) -> String {
        let mut out = String::new();
        for part in [&self.from, &self.to, &self.cc, &self.bcc, &self.reply_to]
            .into_iter()
            .flatten()
        {
            out.push_str(part);
            out.push(' ');
        }
        for a in &self.attachments {
            if let Some(name) = &a.filename {
                out.push_str(name);
                out.push(' ');
            }
        }
        search_words(&out)
    }
}

/// Parses `raw`. A panic inside the parser (none is known) is caught and recorded.
pub fn parse(raw: &[u8]) -> ParsedMessage {
    match std::panic::catch_unwind(|| parse_inner(raw)) {
        Ok(parsed) => parsed,
        Err(_) => ParsedMessage {
            parse_error: Some("the MIME parser failed on this message".into()),
            ..ParsedMessage::default()
        },
    }
}

fn parse_inner(raw: &[u8]) -> ParsedMessage {
    let mut problems = structural_problems(raw);
    let Some(msg) = MessageParser::default().parse(raw) else {
        problems.push("no RFC 822 message could be read from these bytes".into());
        return ParsedMessage {
            parse_error: Some(problems.join("; ")),
            ..ParsedMessage::default()
        };
    };
    if msg.headers().is_empty() {
        problems.push("no header block found".into());
    }
    for part in &msg.parts {
        if let Some(ct) = part.content_type() {
            if ct.ctype().eq_ignore_ascii_case("multipart") {
                check_boundary(raw, ct.attribute("boundary"), &mut problems);
            }
            if let Some(charset) = ct.attribute("charset")
                && !charset_known(charset)
            {
                problems.push(format!("unknown charset {}", clip(charset, 40)));
            }
        }
    }
    let attachments = attachment_infos(&msg);
    let binary_bodies = binary_bodies(&msg, raw.len());
    let body = msg
        .body_text(0)
        .or_else(|| msg.body_html(0))
        .map(|b| b.into_owned())
        .unwrap_or_default();
    let body = clean(truncate(&body, MAX_BODY_TEXT));
    let snippet = snippet(&body);
    problems.dedup();
    ParsedMessage {
        message_id: msg.message_id().map(clean),
        subject: msg.subject().map(clean),
        from: msg.from().map(addresses),
        to: msg.to().map(addresses),
        cc: msg.cc().map(addresses),
        bcc: msg.bcc().map(addresses),
        reply_to: msg.reply_to().map(addresses),
        in_reply_to: msg
            .in_reply_to()
            .as_text_list()
            .map(|l| clean(&l.join(" "))),
        references: msg.references().as_text_list().map(|l| clean(&l.join(" "))),
        date: msg
            .date()
            .and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok()),
        attachments,
        snippet,
        body_text: search_words(&body),
        parse_error: (!problems.is_empty()).then(|| clean(&problems.join("; "))),
        binary_bodies,
    }
}

/// The attachments of `raw` exactly as [`parse`] records them, without the rest of the work
/// (`verify archive` compares them with the stored rows).
pub fn attachments(raw: &[u8]) -> Vec<AttachmentInfo> {
    std::panic::catch_unwind(|| {
        MessageParser::default()
            .parse(raw)
            .map(|msg| attachment_infos(&msg))
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

/// The encoded bodies of this message's own binary parts (a forwarded message/rfc822 part
/// stays whole: its inner offsets are its own).
fn binary_bodies(msg: &mail_parser::Message<'_>, len: usize) -> Vec<std::ops::Range<usize>> {
    msg.parts
        .iter()
        .filter(|p| matches!(p.body, PartType::Binary(_) | PartType::InlineBinary(_)))
        .map(|p| p.offset_body as usize..p.offset_end as usize)
        .filter(|r| r.start <= r.end && r.end <= len)
        .collect()
}

fn attachment_infos(msg: &mail_parser::Message<'_>) -> Vec<AttachmentInfo> {
    msg.parts
        .iter()
        .enumerate()
        .filter(|(i, part)| {
            msg.attachments.contains(&(*i as u32)) && !matches!(part.body, PartType::Multipart(_))
        })
        .map(|(i, part)| AttachmentInfo {
            part_index: i as i32,
            filename: part.attachment_name().map(clean),
            content_type: part.content_type().map(|ct| {
                clean(&match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
            }),
            size: part.contents().len() as i64,
        })
        .collect()
}

/// Problems visible in the raw bytes that the tolerant parser silently works around.
fn structural_problems(raw: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    if raw.contains(&0) {
        problems.push("contains NUL bytes".into());
    }
    let header_end = find(raw, b"\r\n\r\n")
        .or_else(|| find(raw, b"\n\n"))
        .unwrap_or(raw.len());
    if raw[..header_end]
        .split(|&b| b == b'\n')
        .any(|line| line.len() > MAX_HEADER_LINE + 1)
    {
        problems.push(format!(
            "header line longer than {MAX_HEADER_LINE} characters"
        ));
    }
    if std::str::from_utf8(&raw[..header_end]).is_err() {
        problems.push("header holds raw 8-bit bytes that are not UTF-8".into());
    }
    if header_end == raw.len() && !raw.is_empty() {
        problems.push("no blank line between header and body".into());
    }
    problems
}

fn check_boundary(raw: &[u8], boundary: Option<&str>, problems: &mut Vec<String>) {
    let Some(boundary) = boundary.filter(|b| !b.is_empty()) else {
        problems.push("multipart part without a boundary".into());
        return;
    };
    let open = format!("--{boundary}");
    if find(raw, open.as_bytes()).is_none() {
        problems.push(format!(
            "multipart boundary {} never appears",
            clip(boundary, 70)
        ));
    } else if find(raw, format!("{open}--").as_bytes()).is_none() {
        problems.push(format!(
            "multipart boundary {} is never closed",
            clip(boundary, 70)
        ));
    }
}

fn charset_known(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    matches!(lower.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii")
        || mail_parser::decoders::charsets::map::charset_decoder(lower.as_bytes()).is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn addresses(a: &Address<'_>) -> String {
    let list: Vec<String> = a
        .iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    clean(&list.join(", "))
}

/// Text safe for PostgreSQL: no NUL bytes.
fn clean(text: &str) -> String {
    crate::archive::strip_nul(text)
}

fn clip(text: &str, max: usize) -> String {
    truncate(text, max).to_string()
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn snippet(body: &str) -> Option<String> {
    let flat: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(SNIPPET_CHARS)
        .collect();
    (!flat.is_empty()).then_some(flat)
}

/// Whitespace-separated words, dropping ones too long to be useful search terms.
fn search_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_BODY_TEXT));
    for word in text
        .split_whitespace()
        .filter(|w| w.len() <= MAX_WORD_BYTES)
    {
        out.push_str(word);
        out.push(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_message_has_its_fields_and_no_parse_error() {
        let raw = b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Hi\r\nMessage-ID: <1@x>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nHello there\r\n";
        let p = parse(raw);
        assert_eq!(p.subject.as_deref(), Some("Hi"));
        assert_eq!(p.from.as_deref(), Some("Ann <ann@example.org>"));
        assert_eq!(p.message_id.as_deref(), Some("1@x"));
        assert_eq!(p.snippet.as_deref(), Some("Hello there"));
        assert!(p.date.is_some());
        assert_eq!(p.parse_error, None);
    }

    #[test]
    fn garbage_is_kept_with_its_problems_listed() {
        let p = parse(b"\0\0\xff\xfe garbage without headers");
        assert!(p.parse_error.is_some());
        let p =
            parse(b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno parts\r\n");
        assert!(p.parse_error.expect("a problem").contains("boundary"));
    }
}
