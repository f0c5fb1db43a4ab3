//! Zip containers: Office Open XML (docx, xlsx, pptx) and OpenDocument files are zips of XML
//! parts whose text nodes are the document's text; a zip attachment holds files. Every member
//! is read through a byte cap, so a zip bomb stops at the cap instead of filling memory.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{Limits, Sink};

/// Text of the XML members whose names start with one of `prefixes`, in name order.
pub(super) fn ooxml(
    bytes: &[u8],
    limits: &Limits,
    sink: &mut Sink,
    prefixes: &[&str],
) -> Result<(), String> {
    let mut zip = open(bytes)?;
    let mut names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.ends_with(".xml") && prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    // slide2 before slide10.
    names.sort_by_key(|n| (n.len(), n.clone()));
    if names.is_empty() {
        return Err("not a document of this kind (its text part is missing)".into());
    }
    for name in names {
        let data = {
            let member = zip
                .by_name(&name)
                .map_err(|e| format!("the document is malformed: {e}"))?;
            read_capped(member, limits.max_unpacked_bytes)?
        };
        xml_text(&data, sink)?;
        if sink.full() {
            break;
        }
        sink.check_time()?;
    }
    Ok(())
}

/// Calls `each` with the name and bytes of the first `limits.max_zip_members` files.
pub(super) fn zip_members(
    bytes: &[u8],
    limits: &Limits,
    sink: &mut Sink,
    mut each: impl FnMut(&str, &[u8], &mut Sink) -> Result<(), String>,
) -> Result<(), String> {
    let mut zip = open(bytes)?;
    for i in 0..zip.len().min(limits.max_zip_members) {
        let (name, data) = {
            let member = zip
                .by_index(i)
                .map_err(|e| format!("the zip is malformed: {e}"))?;
            if member.is_dir() || member.encrypted() {
                continue;
            }
            let name = member.name().map(|n| n.to_string()).unwrap_or_default();
            if super::kind_of_member(&name).is_none() {
                continue;
            }
            (name, read_capped(member, limits.max_unpacked_bytes)?)
        };
        // One unreadable member does not spoil the others.
        if each(&name, &data, sink).is_err() {
            continue;
        }
        if sink.full() {
            break;
        }
        sink.check_time()?;
    }
    Ok(())
}

fn open(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, String> {
    zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable zip: {e}"))
}

/// All of `reader`, refusing more than `cap` bytes (whatever the zip's header claims).
fn read_capped(reader: impl Read, cap: u64) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("a part could not be unpacked: {e}"))?;
    if data.len() as u64 > cap {
        return Err(format!(
            "unpacks to more than {} MB (a zip bomb?)",
            cap / (1024 * 1024)
        ));
    }
    Ok(data)
}

/// The text nodes of an XML document; paragraphs, rows and cells end with a space or a line.
pub(super) fn xml_text(xml: &[u8], sink: &mut Sink) -> Result<(), String> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Text(t)) => {
                if let Ok(text) = t.decode() {
                    sink.push(&text);
                }
            }
            Ok(Event::CData(t)) => {
                if let Ok(text) = t.decode() {
                    sink.push(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    sink.push(c.encode_utf8(&mut [0; 4]));
                } else if let Ok(name) = r.decode()
                    && let Some(text) = quick_xml::escape::resolve_predefined_entity(&name)
                {
                    sink.push(text);
                }
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"p" | b"tr" | b"row" | b"h" | b"table-row" => sink.push("\n"),
                b"c" | b"tc" | b"table-cell" | b"si" | b"tab" => sink.push(" "),
                _ => {}
            },
            Ok(Event::Empty(e)) => {
                if matches!(
                    e.local_name().as_ref(),
                    b"tab" | b"br" | b"s" | b"line-break"
                ) {
                    sink.push(" ");
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                // Keep what was read before the damage.
                if sink.text.trim().is_empty() {
                    return Err(format!("the document's XML is malformed: {e}"));
                }
                return Ok(());
            }
        }
        if sink.full() {
            return Ok(());
        }
        buf.clear();
    }
}
