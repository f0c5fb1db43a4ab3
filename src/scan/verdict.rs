//! What a scan concluded, and how clamd's reply text becomes one.
//!
//! The one rule here: a message is `Clean` only when clamd said, in so many words,
//! `stream: OK`. Anything else we do not understand — an empty reply, an error line, a
//! truncated answer — is an `Error`, which callers must treat as "not scanned".

use std::fmt;

/// The outcome of scanning one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// clamd answered `stream: OK`.
    Clean,
    /// clamd answered `stream: <signature> FOUND`.
    Infected { signature: String },
    /// Larger than `clamav.max_scan_bytes`: never sent to clamd.
    TooLarge { size: u64 },
    /// No verdict: clamd unreachable, timed out, or answered something else.
    Error { reason: String },
}

impl Verdict {
    /// The short name used in the database (`scan_status`), metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Infected { .. } => "infected",
            Verdict::TooLarge { .. } => "too_large",
            Verdict::Error { .. } => "error",
        }
    }

    /// True when the message got an answer (any answer) from the scanner or the size check,
    /// i.e. it may be stored with this verdict. `Error` must be retried.
    pub fn is_final(&self) -> bool {
        !matches!(self, Verdict::Error { .. })
    }

    pub fn signature(&self) -> Option<&str> {
        match self {
            Verdict::Infected { signature } => Some(signature),
            _ => None,
        }
    }

    pub(crate) fn error(reason: impl Into<String>) -> Self {
        Verdict::Error {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Clean => f.write_str("clean"),
            Verdict::Infected { signature } => write!(f, "infected ({signature})"),
            Verdict::TooLarge { size } => write!(f, "too large to scan ({size} bytes)"),
            Verdict::Error { reason } => write!(f, "not scanned: {reason}"),
        }
    }
}

/// Longest piece of an unexpected reply kept in an error reason (replies are not trusted input
/// and end up in logs and the UI).
const MAX_QUOTED_REPLY: usize = 120;

/// Turns clamd's reply to one INSTREAM into a verdict.
///
/// Replies look like `stream: OK\0`, `stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0` or
/// `INSTREAM size limit exceeded. ERROR\0`. With `IDSESSION` they carry an `N: ` prefix,
/// which we accept too.
pub fn parse_reply(reply: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_end_matches(['\0', '\n', '\r', ' ']).trim_start();
    if text.is_empty() {
        return Verdict::error("clamd closed the connection without a verdict");
    }
    // A reply must be one line; several lines means we are out of step with the protocol.
    if text.contains(['\0', '\n']) {
        return Verdict::error(format!("unexpected reply from clamd: {}", quote(text)));
    }
    let body = strip_session_id(text);
    if let Some(reason) = body.strip_suffix(" ERROR") {
        return Verdict::error(format!("clamd reported an error: {}", quote(reason)));
    }
    let Some(result) = body.strip_prefix("stream: ") else {
        return Verdict::error(format!("unexpected reply from clamd: {}", quote(text)));
    };
    if result == "OK" {
        return Verdict::Clean;
    }
    if let Some(signature) = result.strip_suffix(" FOUND") {
        let signature = signature.trim();
        if !signature.is_empty() && !signature.chars().any(char::is_control) {
            return Verdict::Infected {
                signature: signature.to_string(),
            };
        }
    }
    Verdict::error(format!("unexpected reply from clamd: {}", quote(text)))
}

/// `12: stream: OK` → `stream: OK` (IDSESSION replies); anything else unchanged.
fn strip_session_id(text: &str) -> &str {
    match text.split_once(": ") {
        Some((id, rest)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => text,
    }
}

fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_QUOTED_REPLY)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_QUOTED_REPLY {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ok_is_the_only_clean_reply() {
        assert_eq!(parse_reply(b"stream: OK\0"), Verdict::Clean);
        assert_eq!(parse_reply(b"stream: OK\n"), Verdict::Clean);
        assert_eq!(parse_reply(b"12: stream: OK\0"), Verdict::Clean);
        for not_clean in [
            &b"stream: ok\0"[..],
            b"OK\0",
            b"stream:OK\0",
            b"stream: OKAY\0",
            b"PONG\0",
        ] {
            assert!(
                !parse_reply(not_clean).is_final(),
                "{:?} must not count as a verdict",
                String::from_utf8_lossy(not_clean)
            );
        }
    }

    #[test]
    fn found_reply_gives_the_signature_with_its_unofficial_suffix() {
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0"),
            Verdict::Infected {
                signature: "Eicar-Test-Signature.UNOFFICIAL".into()
            }
        );
        assert_eq!(
            parse_reply(b"3: stream: Win.Test.EICAR_HDB-1 FOUND\0")
                .signature()
                .unwrap(),
            "Win.Test.EICAR_HDB-1"
        );
    }

    #[test]
    fn error_lines_are_errors_with_the_reason() {
        let v = parse_reply(b"INSTREAM size limit exceeded. ERROR\0");
        assert_eq!(v.label(), "error");
        assert!(v.to_string().contains("size limit exceeded"), "{v}");
        assert_eq!(
            parse_reply(b"stream: Can't allocate memory ERROR\0").label(),
            "error"
        );
    }

    #[test]
    fn empty_and_garbage_replies_are_never_clean() {
        for reply in [
            &b""[..],
            b"\0",
            b"   \0",
            b"stream: \0",
            b"stream:  FOUND\0",
            b"stream: OK\0stream: OK\0",
            b"stream: OK\nstream: X FOUND\0",
            b"\xff\xfe garbage",
            b"UNKNOWN COMMAND\0",
        ] {
            let v = parse_reply(reply);
            assert_eq!(v.label(), "error", "{reply:?} gave {v:?}");
        }
    }

    #[test]
    fn long_garbage_is_cut_short_in_the_reason() {
        let reply = vec![b'x'; 10_000];
        let v = parse_reply(&reply);
        assert!(v.to_string().len() < 300, "{}", v.to_string().len());
    }
}
