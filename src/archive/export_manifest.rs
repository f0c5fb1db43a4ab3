//! The manifest every export carries, so a third party can check it without daygle:
//! - `manifest.csv`: one row per message — file (zip) or position (mbox), SHA-256, size,
//!   account, folder, UID, Date header, archive time, Message-ID, scan verdict, sender, subject;
//! - `export.json`: who exported, when, the query, the count, the audit log entry of the
//!   export, and the SHA-256 of `manifest.csv`;
//! - zip only: `SHA256SUMS`, so `sha256sum -c SHA256SUMS` checks an extracted zip.
//!
//! A zip holds the three files beside the messages. An mbox ends with one extra message (header
//! `X-Daygle-Export-Manifest: 1`) with `export.json` and `manifest.csv` attached; the importer
//! skips it.

use std::fs::File;
use std::io::{self, Read, Seek, Write};

use base64::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The header that marks an mbox's manifest message.
pub const MANIFEST_HEADER: &str = "X-Daygle-Export-Manifest";
pub const CSV_HEADER: &str =
    "file,sha256,size,account,folder,uid,date,archived_at,message_id,verdict,from,subject";

/// What an export says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    pub exported_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    /// The search (or selection) the export was made from; empty: everything.
    pub query: String,
    pub format: String,
    /// The id of the export's row in the audit log.
    pub audit_seq: Option<i64>,
    /// Set when the export is finished.
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub withheld: u64,
    /// SHA-256 of manifest.csv as written.
    #[serde(default)]
    pub manifest_sha256: String,
}

impl ExportInfo {
    /// An export about to start; the counts and the manifest hash are filled in at the end.
    pub fn new(exported_by: &str, query: &str, format: &str, audit_seq: Option<i64>) -> Self {
        Self {
            exported_by: exported_by.into(),
            exported_at: OffsetDateTime::now_utc(),
            query: query.trim().into(),
            format: format.into(),
            audit_seq,
            count: 0,
            withheld: 0,
            manifest_sha256: String::new(),
        }
    }
}

/// One message's line in the manifest.
pub struct Line<'a> {
    /// The .eml name in a zip, the 1-based position in an mbox; empty when withheld.
    pub file: &'a str,
    pub sha256: &'a [u8],
    pub size: i64,
    pub account: &'a str,
    pub folder: &'a str,
    pub uid: Option<i64>,
    pub date: Option<OffsetDateTime>,
    pub archived_at: OffsetDateTime,
    pub message_id: Option<&'a str>,
    pub verdict: &'a str,
    pub from: Option<&'a str>,
    pub subject: Option<&'a str>,
}

/// Collects the manifest in temporary files while the export is written.
pub struct ManifestWriter {
    csv: File,
    sums: File,
}

impl ManifestWriter {
    pub fn new() -> io::Result<Self> {
        let mut csv = tempfile::tempfile()?;
        writeln!(csv, "{CSV_HEADER}")?;
        Ok(Self {
            csv,
            sums: tempfile::tempfile()?,
        })
    }

    pub fn add(&mut self, l: &Line<'_>) -> io::Result<()> {
        let time = |t: Option<OffsetDateTime>| {
            t.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
        };
        writeln!(
            self.csv,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            cell(l.file),
            hex::encode(l.sha256),
            l.size,
            cell(l.account),
            cell(l.folder),
            l.uid.map(|u| u.to_string()).unwrap_or_default(),
            time(l.date),
            time(Some(l.archived_at)),
            cell(l.message_id.unwrap_or("")),
            cell(l.verdict),
            cell(l.from.unwrap_or("")),
            cell(l.subject.unwrap_or("")),
        )?;
        if !l.file.is_empty() {
            writeln!(self.sums, "{}  {}", hex::encode(l.sha256), l.file)?;
        }
        Ok(())
    }

    /// The finished manifest.csv and SHA256SUMS, rewound, and `info` completed with the
    /// manifest's hash.
    pub fn finish(mut self, info: &mut ExportInfo) -> io::Result<(File, File)> {
        self.csv.rewind()?;
        let mut hasher = Sha256::new();
        io::copy(&mut self.csv, &mut HashOnly(&mut hasher))?;
        info.manifest_sha256 = hex::encode(hasher.finalize());
        self.csv.rewind()?;
        self.sums.rewind()?;
        Ok((self.csv, self.sums))
    }
}

struct HashOnly<'a>(&'a mut Sha256);

impl Write for HashOnly<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// True when `raw` is an export's manifest message (its header block has [`MANIFEST_HEADER`]),
/// which an import must skip.
pub fn is_manifest_message(raw: &[u8]) -> bool {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .into_iter()
        .chain(raw.windows(4).position(|w| w == b"\r\n\r\n"))
        .min()
        .unwrap_or(raw.len());
    let name = MANIFEST_HEADER.as_bytes();
    raw[..end].split(|&b| b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':'
    })
}

/// Writes the mbox's closing manifest message (mboxrd framing like every other message).
pub fn write_mbox_manifest<W: Write>(
    out: &mut W,
    info: &ExportInfo,
    mut csv: File,
) -> io::Result<()> {
    let boundary = format!("daygle-manifest-{}", uuid::Uuid::new_v4().simple());
    let date = info
        .exported_at
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    writeln!(out, "From MAILER-DAEMON Thu Jan  1 00:00:00 1970")?;
    write!(
        out,
        "From: Daygle export <export@daygle.invalid>\r\nSubject: Daygle export manifest\r\n\
         Date: {date}\r\nMessage-ID: <{boundary}@daygle.invalid>\r\n{MANIFEST_HEADER}: 1\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         This message lists the messages of this export and their SHA-256; `daygle verify \
         export` checks them.\r\n"
    )?;
    let json = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
    attachment(
        out,
        &boundary,
        "application/json",
        "export.json",
        &mut json.as_slice(),
    )?;
    attachment(out, &boundary, "text/csv", "manifest.csv", &mut csv)?;
    write!(out, "--{boundary}--\r\n")?;
    out.write_all(b"\n")
}

fn attachment<W: Write>(
    out: &mut W,
    boundary: &str,
    content_type: &str,
    name: &str,
    data: &mut dyn Read,
) -> io::Result<()> {
    write!(
        out,
        "--{boundary}\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )?;
    // 57 input bytes make one 76-character base64 line.
    let mut chunk = vec![0u8; 57 * 1024];
    loop {
        let mut filled = 0;
        while filled < chunk.len() {
            match data.read(&mut chunk[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        for line in chunk[..filled].chunks(57) {
            out.write_all(BASE64_STANDARD.encode(line).as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        if filled < chunk.len() {
            return Ok(());
        }
    }
}

/// A CSV cell: always quoted (so [`parse_record`] reads it back), never a spreadsheet formula,
/// on one line.
pub fn cell(value: &str) -> String {
    let value = crate::render::csv::spreadsheet_safe(value);
    format!(
        "\"{}\"",
        value.replace(['\r', '\n'], " ").replace('"', "\"\"")
    )
}

/// Splits one CSV record as [`cell`] writes it (quoted cells, `""` inside) or plain cells.
pub fn parse_record(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_become_formulas_and_read_back() {
        assert_eq!(cell("=1+1"), "\"'=1+1\"");
        let line = format!("{},{},7", cell("say \"hi\", then"), cell(""));
        assert_eq!(parse_record(&line), ["say \"hi\", then", "", "7"]);
    }

    #[test]
    fn only_a_manifest_header_in_the_header_block_marks_the_manifest() {
        assert!(is_manifest_message(
            b"Subject: m\r\nx-daygle-export-manifest: 1\r\n\r\nbody"
        ));
        assert!(!is_manifest_message(
            b"Subject: m\r\n\r\nX-Daygle-Export-Manifest: 1\r\n"
        ));
    }
}
