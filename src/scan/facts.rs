//! The facts about a message that the quarantine and the rejection record keep in clear:
//! where it came from, its hash and size, and a few headers to recognise it by.

use mail_parser::MessageParser;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Header values longer than this are cut (RFC 5322's line limit); they are for display only.
const MAX_HEADER_CHARS: usize = 998;

/// Where a detection happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// While fetching new mail.
    Ingest,
    /// While re-scanning mail already archived (`daygle rescan`).
    Rescan,
    /// While importing files (mbox, Maildir, .eml).
    Import,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ingest => "ingest",
            Source::Rescan => "rescan",
            Source::Import => "import",
        }
    }
}

/// Identity and headers of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFacts {
    pub account_id: Option<i64>,
    pub folder: String,
    pub uidvalidity: Option<i64>,
    pub uid: Option<i64>,
    /// Lower-case hex SHA-256 of the raw bytes.
    pub sha256: String,
    pub size: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub date: Option<OffsetDateTime>,
}

impl MessageFacts {
    /// Hashes `raw` and reads its headers (never the body). Unparseable headers give `None`s.
    pub fn from_raw(raw: &[u8]) -> Self {
        let headers = MessageParser::default().parse_headers(raw);
        let header = |f: &dyn Fn(&mail_parser::Message<'_>) -> Option<String>| {
            headers
                .as_ref()
                .and_then(f)
                .map(|v| clean(&v))
                .filter(|v| !v.is_empty())
        };
        Self {
            sha256: hex::encode(Sha256::digest(raw)),
            size: raw.len() as i64,
            message_id: header(&|m| m.message_id().map(str::to_string)),
            subject: header(&|m| m.subject().map(str::to_string)),
            from: header(&|m| {
                m.from()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address().map(str::to_string))
            }),
            date: headers
                .as_ref()
                .and_then(|m| m.date())
                .and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok()),
            ..Self::default()
        }
    }

    /// The same facts, located at a position on a mail server.
    pub fn at(mut self, account_id: i64, folder: &str, uidvalidity: i64, uid: i64) -> Self {
        self.account_id = Some(account_id);
        self.folder = folder.to_string();
        self.uidvalidity = Some(uidvalidity);
        self.uid = Some(uid);
        self
    }
}

/// The header section of a raw message (up to the first empty line, at most `max` bytes), as
/// text for display. Never the body: quarantined bodies are not shown to anyone.
pub fn header_section(raw: &[u8], max: usize) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len())
        .min(max);
    String::from_utf8_lossy(&raw[..end])
        .chars()
        .filter(|c| *c != '\r')
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Headers are attacker-controlled: drop control characters (PostgreSQL refuses NUL in text,
/// and terminals and logs should not see escapes) and cap the length.
fn clean(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_HEADER_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_the_headers_and_the_hash_of_the_whole_message() {
        let raw = b"From: Alice <alice@example.org>\r\nSubject: Invoice\x00 \x1b[31m\r\n\
Message-ID: <m1@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n";
        let f = MessageFacts::from_raw(raw).at(3, "INBOX", 7, 42);
        assert_eq!(f.from.as_deref(), Some("alice@example.org"));
        assert_eq!(f.subject.as_deref(), Some("Invoice [31m"));
        assert_eq!(f.message_id.as_deref(), Some("m1@example.org"));
        assert_eq!(f.date.unwrap().unix_timestamp(), 1_704_103_200);
        assert_eq!(f.size, raw.len() as i64);
        assert_eq!(f.sha256, hex::encode(Sha256::digest(raw)));
        assert_eq!((f.account_id, f.uid), (Some(3), Some(42)));
    }

    #[test]
    fn the_header_section_stops_before_the_body() {
        let raw = b"Subject: a\r\nX-Y: b\r\n\r\nsecret body\r\n";
        let h = header_section(raw, 1000);
        assert!(h.contains("X-Y: b") && !h.contains("secret"), "{h:?}");
        assert_eq!(header_section(b"Subject: a\n\nbody", 1000), "Subject: a");
        assert_eq!(header_section(b"Subject: abcdef", 4), "Subj");
    }

    #[test]
    fn a_message_without_headers_still_has_a_hash_and_size() {
        let f = MessageFacts::from_raw(b"\xff\xfe not mail");
        assert_eq!(f.sha256.len(), 64);
        assert_eq!(f.subject, None);
    }
}
