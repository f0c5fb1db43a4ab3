//! `daygle verify export FILE`: re-hashes every message of a zip or mbox export against the
//! manifest it carries, without the database — what a third party receiving it would run.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use crate::archive::export_manifest::{CSV_HEADER, ExportInfo, is_manifest_message, parse_record};
use crate::error::{Error, Result};

/// What the check found.
#[derive(Debug, Default)]
pub struct ExportReport {
    pub info: Option<ExportInfo>,
    pub checked: u64,
    /// "altered: …", "missing: …", "added: …" and manifest problems, one line each.
    pub problems: Vec<String>,
}

/// One manifest row that names a message in the export.
struct Row {
    file: String,
    sha256: String,
    message_id: String,
    subject: String,
}

/// One message found in the export.
struct Found {
    file: String,
    sha256: String,
    message_id: String,
}

pub fn verify_export(path: &Path) -> Result<ExportReport> {
    let open =
        || File::open(path).map_err(|e| Error::context(format!("open {}", path.display()), e));
    let mut magic = [0u8; 4];
    let n = open()?.read(&mut magic).unwrap_or(0);
    if n == 4 && &magic == b"PK\x03\x04" {
        verify_zip(open()?)
    } else {
        verify_mbox(open()?)
    }
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::invalid("export", what.to_string())
}

fn verify_zip(file: File) -> Result<ExportReport> {
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(format!("not a readable zip: {e}")))?;
    let mut read = |name: &str| -> Result<Option<Vec<u8>>> {
        match zip.by_name(name) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)
                    .map_err(|e| bad(format!("{name}: {e}")))?;
                Ok(Some(buf))
            }
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(bad(format!("{name}: {e}"))),
        }
    };
    let csv = read("manifest.csv")?.ok_or_else(|| bad("the zip has no manifest.csv"))?;
    let json = read("export.json")?;
    let mut report = ExportReport::default();
    let rows = manifest_rows(&csv, json.as_deref(), &mut report)?;
    let mut found = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(format!("entry {i}: {e}")))?
            .to_string();
        if entry.is_dir() || ["manifest.csv", "export.json", "SHA256SUMS"].contains(&name.as_str())
        {
            continue;
        }
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            if n == 0 {
                break;
            }
            if head.len() < 64 * 1024 {
                head.extend_from_slice(&buf[..n]);
            }
            hasher.update(&buf[..n]);
        }
        found.push(Found {
            file: name,
            sha256: hex::encode(hasher.finalize()),
            message_id: message_id(&head),
        });
    }
    compare(rows, found, true, &mut report);
    Ok(report)
}

fn verify_mbox(file: File) -> Result<ExportReport> {
    let mut report = ExportReport::default();
    let mut found = Vec::new();
    let mut manifest: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    let messages = mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(file));
    for (i, message) in messages.enumerate() {
        let message =
            message.map_err(|_| bad(format!("message {} of the mbox cannot be read", i + 1)))?;
        let mut raw = message.unwrap_contents();
        // The exporter ends every message with one line end the original did not have.
        if raw.last() == Some(&b'\n') {
            raw.pop();
        }
        if let Some(parts) = manifest_parts(&raw) {
            if manifest.is_some() {
                report
                    .problems
                    .push("the mbox holds more than one manifest".into());
            }
            manifest = Some(parts);
            continue;
        }
        if manifest.is_some() {
            report
                .problems
                .push(format!("added: message {} comes after the manifest", i + 1));
        }
        found.push(Found {
            file: (found.len() + 1).to_string(),
            sha256: hex::encode(Sha256::digest(&raw)),
            message_id: message_id(&raw),
        });
    }
    let (csv, json) = manifest.ok_or_else(|| {
        bad("the mbox carries no manifest message (was it made by daygle export?)")
    })?;
    let rows = manifest_rows(&csv, json.as_deref(), &mut report)?;
    compare(rows, found, false, &mut report);
    Ok(report)
}

/// manifest.csv and export.json from the manifest message, if `raw` is one.
fn manifest_parts(raw: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if !is_manifest_message(raw) {
        return None;
    }
    let msg = MessageParser::default().parse(raw)?;
    let mut csv = None;
    let mut json = None;
    for part in msg.attachments() {
        match part.attachment_name() {
            Some("manifest.csv") => csv = Some(part.contents().to_vec()),
            Some("export.json") => json = Some(part.contents().to_vec()),
            _ => {}
        }
    }
    Some((csv.unwrap_or_default(), json))
}

fn message_id(raw: &[u8]) -> String {
    MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.message_id().map(str::to_string))
        .unwrap_or_default()
}

/// Reads manifest.csv (and checks it against export.json's hash and count).
fn manifest_rows(csv: &[u8], json: Option<&[u8]>, report: &mut ExportReport) -> Result<Vec<Row>> {
    let text = std::str::from_utf8(csv).map_err(|_| bad("manifest.csv is not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(bad(
            "manifest.csv does not start with the daygle manifest header",
        ));
    }
    let rows: Vec<Row> = lines
        .filter(|l| !l.is_empty())
        .map(parse_record)
        .filter(|cells| cells.len() >= 12 && !cells[0].is_empty())
        .map(|c| Row {
            file: c[0].clone(),
            sha256: c[1].clone(),
            message_id: c[8].clone(),
            subject: c[11].clone(),
        })
        .collect();
    match json.map(serde_json::from_slice::<ExportInfo>) {
        None => report.problems.push("export.json is missing".into()),
        Some(Err(e)) => report
            .problems
            .push(format!("export.json cannot be read: {e}")),
        Some(Ok(info)) => {
            if info.manifest_sha256 != hex::encode(Sha256::digest(csv)) {
                report.problems.push(
                    "manifest.csv was changed: its SHA-256 differs from the one in export.json"
                        .into(),
                );
            }
            if info.count != rows.len() as u64 {
                report.problems.push(format!(
                    "export.json counts {} messages but manifest.csv lists {}",
                    info.count,
                    rows.len()
                ));
            }
            report.info = Some(info);
        }
    }
    Ok(rows)
}

/// Matches messages to manifest rows: by name (zip) or content, then pairs leftovers by
/// Message-ID as altered; the rest are missing or added.
fn compare(rows: Vec<Row>, found: Vec<Found>, by_name: bool, report: &mut ExportReport) {
    report.checked = found.len() as u64;
    let mut open: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let key = if by_name {
            r.file.clone()
        } else {
            r.sha256.clone()
        };
        open.entry(key).or_default().push(i);
    }
    let mut unmatched_rows: Vec<bool> = vec![true; rows.len()];
    let mut extra = Vec::new();
    for f in &found {
        let key = if by_name { &f.file } else { &f.sha256 };
        match open.get_mut(key).and_then(|v| v.pop()) {
            Some(i) => {
                unmatched_rows[i] = false;
                if rows[i].sha256 != f.sha256 {
                    report.problems.push(format!(
                        "altered: {} no longer matches its SHA-256 in the manifest",
                        f.file
                    ));
                }
            }
            None => extra.push(f),
        }
    }
    for f in extra {
        let paired = rows.iter().enumerate().position(|(i, r)| {
            unmatched_rows[i] && !f.message_id.is_empty() && r.message_id == f.message_id
        });
        match paired {
            Some(i) => {
                unmatched_rows[i] = false;
                report.problems.push(format!(
                    "altered: message {} (Message-ID {}) no longer matches its SHA-256 in the manifest",
                    f.file, f.message_id
                ));
            }
            None => report.problems.push(format!(
                "added: {} (Message-ID {}) is not in the manifest",
                f.file,
                if f.message_id.is_empty() {
                    "none"
                } else {
                    &f.message_id
                }
            )),
        }
    }
    for (i, r) in rows.iter().enumerate().filter(|(i, _)| unmatched_rows[*i]) {
        let _ = i;
        report.problems.push(format!(
            "missing: {} (Message-ID {}, subject {:?}) is in the manifest but not in the export",
            r.file, r.message_id, r.subject
        ));
    }
}
