//! RTF to text: control words dropped, `\'hh` and `\uN` decoded, groups that are not body text
//! (font and colour tables, pictures, `{\*…}` destinations) skipped.

use super::Sink;

/// Destinations whose content is not text a person wrote.
const SKIPPED: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "themedata",
    "datastore",
    "latentstyles",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "header",
    "footer",
];

pub(super) fn text(bytes: &[u8], sink: &mut Sink) {
    let mut out = String::new();
    // Depth of each group, and the depth below which everything is skipped.
    let mut depth = 0usize;
    let mut skip_below: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'{' => {
                depth += 1;
                if bytes.get(i + 1..i + 3) == Some(b"\\*") && skip_below.is_none() {
                    skip_below = Some(depth);
                }
                i += 1;
            }
            b'}' => {
                if skip_below == Some(depth) {
                    skip_below = None;
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'\\' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
                    j += 1;
                }
                if j == start {
                    // A control symbol: \\ \{ \} \'hh \~ …
                    match bytes.get(start) {
                        Some(b'\'') => {
                            let hex = bytes.get(start + 1..start + 3).unwrap_or(b"");
                            if let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
                                && skip_below.is_none()
                            {
                                // Windows-1252 is the usual code page; Latin-1 is close enough.
                                out.push(char::from(v));
                            }
                            i = start + 3;
                        }
                        Some(&c) => {
                            if skip_below.is_none() && matches!(c, b'\\' | b'{' | b'}') {
                                out.push(char::from(c));
                            } else if skip_below.is_none() && c == b'~' {
                                out.push(' ');
                            }
                            i = start + 1;
                        }
                        None => i = start,
                    }
                    continue;
                }
                let word = String::from_utf8_lossy(&bytes[start..j]).into_owned();
                let num_start = j;
                if j < bytes.len() && bytes[j] == b'-' {
                    j += 1;
                }
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                let number: Option<i32> = std::str::from_utf8(&bytes[num_start..j])
                    .ok()
                    .and_then(|n| n.parse().ok());
                if j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                i = j;
                if SKIPPED.contains(&word.as_str()) && skip_below.is_none() {
                    skip_below = Some(depth);
                }
                if skip_below.is_some() {
                    continue;
                }
                match word.as_str() {
                    "par" | "line" | "row" | "sect" | "page" => out.push('\n'),
                    "tab" | "cell" => out.push(' '),
                    "u" => {
                        if let Some(c) = number
                            .map(|n| if n < 0 { n + 65536 } else { n } as u32)
                            .and_then(char::from_u32)
                        {
                            out.push(c);
                        }
                        // The fallback character after \uN.
                        if i < bytes.len() && bytes[i] != b'\\' && bytes[i] != b'{' {
                            i += 1;
                        }
                    }
                    _ => {}
                }
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                if skip_below.is_none() {
                    out.push(char::from(b));
                }
                i += 1;
            }
        }
        if out.len() > 64 * 1024 {
            sink.push(&out);
            out.clear();
            if sink.full() {
                return;
            }
        }
    }
    sink.push(&out);
}
