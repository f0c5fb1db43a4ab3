//! Text from attachments — PDF, Word/Excel/PowerPoint (OOXML), OpenDocument, RTF, HTML, CSV,
//! plain text, and those inside a zip one level deep — extracted in-process, for the search
//! vector's D weight (`attachment:WORD`).
//!
//! Attachments come from strangers, so every file gets [`Limits`]: its size, the text kept,
//! the pages read, the bytes unpacked from a zip, and wall time. Extraction runs on a thread
//! of its own and a file that overruns its time is abandoned and skipped; a parser panic is
//! caught. A skipped file gets a reason a person can read; the message is never refused.

mod office;
mod pdf;
mod rtf;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Per-file limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger attachments are not read at all.
    pub max_input_bytes: usize,
    /// Text kept per attachment; the rest is cut.
    pub max_text_bytes: usize,
    pub max_pdf_pages: usize,
    /// Bytes unpacked from one zip member (an XML part of a document, a file in a zip).
    pub max_unpacked_bytes: u64,
    /// Members of a zip attachment looked at.
    pub max_zip_members: usize,
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 25 * 1024 * 1024,
            max_text_bytes: 512 * 1024,
            max_pdf_pages: 300,
            max_unpacked_bytes: 50 * 1024 * 1024,
            max_zip_members: 200,
            max_time: Duration::from_secs(10),
        }
    }
}

/// What became of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Text(String),
    /// Not read, and why (too large, malformed, took too long, …).
    Skipped(String),
    /// Not a kind of file text is taken from (images, …).
    Unsupported,
}

impl Outcome {
    /// The note kept on the attachment row.
    pub fn note(&self) -> String {
        match self {
            Outcome::Text(t) => format!("text extracted ({} characters)", t.chars().count()),
            Outcome::Skipped(reason) => format!("skipped: {reason}"),
            Outcome::Unsupported => "no text in this kind of file".into(),
        }
    }
}

/// The outcome for one attachment part of a message.
#[derive(Debug, Clone)]
pub struct PartText {
    /// The part's index, as in `attachments.part_index`.
    pub part_index: i32,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pdf,
    Word,
    Excel,
    PowerPoint,
    OpenDocument,
    Rtf,
    Html,
    Text,
    Zip,
}

fn kind(name: Option<&str>, content_type: Option<&str>) -> Option<Kind> {
    let ext = name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    let by_ext = match ext.as_deref() {
        Some("pdf") => Some(Kind::Pdf),
        Some("docx" | "docm" | "dotx") => Some(Kind::Word),
        Some("xlsx" | "xlsm" | "xltx") => Some(Kind::Excel),
        Some("pptx" | "pptm" | "ppsx") => Some(Kind::PowerPoint),
        Some("odt" | "ods" | "odp" | "odg" | "ott") => Some(Kind::OpenDocument),
        Some("rtf") => Some(Kind::Rtf),
        Some("htm" | "html" | "xhtml") => Some(Kind::Html),
        Some("txt" | "csv" | "tsv" | "md" | "log" | "ics" | "vcf" | "json" | "xml" | "eml") => {
            Some(Kind::Text)
        }
        Some("zip") => Some(Kind::Zip),
        _ => None,
    };
    if by_ext.is_some() {
        return by_ext;
    }
    let ct = content_type?.to_ascii_lowercase();
    Some(match ct.as_str() {
        "application/pdf" => Kind::Pdf,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Kind::Word,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Kind::Excel,
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            Kind::PowerPoint
        }
        "application/rtf" | "text/rtf" => Kind::Rtf,
        "text/html" => Kind::Html,
        "application/zip" | "application/x-zip-compressed" => Kind::Zip,
        t if t.starts_with("application/vnd.oasis.opendocument.") => Kind::OpenDocument,
        t if t.starts_with("text/") => Kind::Text,
        _ => return None,
    })
}

/// Whether an attachment may hold text worth extracting (decides if a new message waits for
/// the background stage).
pub fn may_have_text(name: Option<&str>, content_type: Option<&str>) -> bool {
    kind(name, content_type).is_some()
}

/// Text of every attachment of the message in `raw`, in part order. Never panics.
pub fn from_message(raw: &[u8], limits: &Limits) -> Vec<PartText> {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, part) in msg.parts.iter().enumerate() {
        if !msg.attachments.contains(&(i as u32)) || matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let name = part.attachment_name();
        let ctype = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        });
        let outcome = match kind(name, ctype.as_deref()) {
            None => Outcome::Unsupported,
            Some(k) => extract(k, part.contents().to_vec(), limits),
        };
        out.push(PartText {
            part_index: i as i32,
            outcome,
        });
    }
    out
}

/// The extractor for a file named `name`, run on the calling thread without the panic guard
/// and thread of [`from_message`]; `None` for a kind no text is taken from. For the fuzz
/// targets (`fuzz/`), which must see a panic or a hang rather than have it caught.
#[doc(hidden)]
pub fn extract_unguarded(
    name: &str,
    bytes: &[u8],
    limits: &Limits,
) -> Option<Result<String, String>> {
    let kind = kind(Some(name), None)?;
    Some(run(
        kind,
        bytes,
        limits,
        Instant::now() + limits.max_time,
        0,
    ))
}

/// Runs one extraction on its own thread under `limits.max_time`.
fn extract(kind: Kind, bytes: Vec<u8>, limits: &Limits) -> Outcome {
    if bytes.len() > limits.max_input_bytes {
        return Outcome::Skipped(format!(
            "larger than {} MB",
            limits.max_input_bytes / (1024 * 1024)
        ));
    }
    let limits = *limits;
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("attachment-text".into())
        .spawn(move || {
            let deadline = Instant::now() + limits.max_time;
            let result = std::panic::catch_unwind(|| run(kind, &bytes, &limits, deadline, 0));
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        return Outcome::Skipped("no thread could be started to read it".into());
    }
    match rx.recv_timeout(limits.max_time + Duration::from_millis(500)) {
        Ok(Ok(Ok(text))) if text.trim().is_empty() => Outcome::Skipped("no text found".into()),
        Ok(Ok(Ok(text))) => Outcome::Text(text),
        Ok(Ok(Err(reason))) => Outcome::Skipped(reason),
        Ok(Err(_)) => Outcome::Skipped("the file is malformed (its reader gave up)".into()),
        // The thread is left to finish on its own; its result is dropped.
        Err(_) => Outcome::Skipped(format!(
            "reading it took longer than {} s",
            limits.max_time.as_secs()
        )),
    }
}

/// Text of one file of `kind`; `depth` counts zips entered.
fn run(
    kind: Kind,
    bytes: &[u8],
    limits: &Limits,
    deadline: Instant,
    depth: u8,
) -> Result<String, String> {
    let mut sink = Sink::new(limits.max_text_bytes, deadline);
    match kind {
        Kind::Pdf => pdf::text(bytes, limits, &mut sink)?,
        Kind::Word => office::ooxml(bytes, limits, &mut sink, &["word/document.xml"])?,
        Kind::Excel => office::ooxml(
            bytes,
            limits,
            &mut sink,
            &["xl/sharedStrings.xml", "xl/worksheets/"],
        )?,
        Kind::PowerPoint => office::ooxml(bytes, limits, &mut sink, &["ppt/slides/slide"])?,
        Kind::OpenDocument => office::ooxml(bytes, limits, &mut sink, &["content.xml"])?,
        Kind::Rtf => rtf::text(bytes, &mut sink),
        Kind::Html => sink.push(&mail_parser::decoders::html::html_to_text(
            &String::from_utf8_lossy(bytes),
        )),
        Kind::Text => sink.push(&String::from_utf8_lossy(bytes)),
        Kind::Zip if depth > 0 => return Err("a zip inside a zip is not opened".into()),
        Kind::Zip => {
            office::zip_members(
                bytes,
                limits,
                &mut sink,
                |name, data, sink| match kind_of_member(name) {
                    Some(k) => {
                        let text = run(k, data, limits, deadline, depth + 1)?;
                        sink.push(&text);
                        sink.push("\n");
                        Ok(())
                    }
                    None => Ok(()),
                },
            )?
        }
    }
    sink.check_time()?;
    Ok(sink.text)
}

fn kind_of_member(name: &str) -> Option<Kind> {
    kind(Some(name), None)
}

/// Collects text up to a size, and knows the deadline.
pub(crate) struct Sink {
    text: String,
    max: usize,
    deadline: Instant,
}

impl Sink {
    fn new(max: usize, deadline: Instant) -> Self {
        Sink {
            text: String::new(),
            max,
            deadline,
        }
    }

    /// Appends what fits; the rest is dropped.
    pub(crate) fn push(&mut self, text: &str) {
        let room = self.max.saturating_sub(self.text.len());
        if text.len() <= room {
            self.text.push_str(text);
        } else {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&text[..end]);
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.text.len() >= self.max
    }

    pub(crate) fn check_time(&self) -> Result<(), String> {
        if Instant::now() > self.deadline {
            return Err("reading it took too long".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
