//! IMAP folder names in modified UTF-7 (RFC 3501 5.1.3): `Entw&APw-rfe` on the wire is
//! `Entwürfe` to a person. The archive stores and searches the decoded name; commands to the
//! server always use the name exactly as the server listed it.
//!
//! Decoding is strict: only the canonical encoding of a name decodes (the one an encoder
//! produces), anything else — raw UTF-8 from a server that ignores the RFC, a stray `&`, a
//! non-canonical run — is kept as the server spelled it. Canonical encodings and names map
//! one to one, so two folders of one account never land under the same archive name.
//! Migration 0750 holds the same rules in SQL (`mutf7_decode`); a test keeps the two equal.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// The name a person reads: the decoded name, or the wire name when it is not canonical
/// modified UTF-7.
pub fn display(wire: &str) -> String {
    decode(wire).unwrap_or_else(|| wire.to_string())
}

/// The decoded name when `wire` is canonical modified UTF-7.
pub fn decode(wire: &str) -> Option<String> {
    if !wire.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return None;
    }
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    let mut after_run = false;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        if amp > 0 {
            after_run = false;
        }
        let tail = &rest[amp + 1..];
        let end = tail.find('-')?;
        let run = &tail[..end];
        rest = &tail[end + 1..];
        if run.is_empty() {
            out.push('&');
            after_run = false;
            continue;
        }
        // An encoder writes adjacent non-ASCII characters as one run.
        if after_run {
            return None;
        }
        out.push_str(&decode_run(run)?);
        after_run = true;
    }
    out.push_str(rest);
    Some(out)
}

/// One base64 run (without `&` and `-`) as text, or None when it is not canonical.
fn decode_run(run: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    for b in run.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 16 {
            nbits -= 16;
            units.push(((bits >> nbits) & 0xffff) as u16);
            bits &= (1 << nbits) - 1;
        }
    }
    // No half unit, zero padding bits, and exactly as many characters as the encoder writes.
    if nbits >= 8 || bits != 0 || units.is_empty() || run.len() != (units.len() * 16).div_ceil(6) {
        return None;
    }
    let mut out = String::new();
    for c in char::decode_utf16(units) {
        let c = c.ok()?;
        // Printable ASCII is never encoded, and NUL has no place in a name.
        if ('\u{20}'..='\u{7e}').contains(&c) || c == '\0' {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// The modified UTF-7 spelling of a name (how a client must send a name it made up).
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if ('\u{20}'..='\u{7e}').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

fn flush(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    for u in units.drain(..) {
        bits = (bits << 16) | u32::from(u);
        nbits += 16;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 0x3f) as usize] as char);
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out.push('-');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_rfc_examples_and_common_names() {
        assert_eq!(decode("&AOQ-").as_deref(), Some("ä"));
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(decode("R&-D").as_deref(), Some("R&D"));
        assert_eq!(decode("INBOX").as_deref(), Some("INBOX"));
        assert_eq!(decode("&2D3eAA-").as_deref(), Some("😀"));
    }

    #[test]
    fn keeps_what_is_not_canonical() {
        for wire in [
            "R&D",        // no closing '-'
            "&Jjo!",      // not base64
            "&AGE-",      // 'a' must not be encoded
            "&AOQ-&APY-", // two adjacent runs are one run to an encoder
            "&AOQA-",     // padding bits not zero / a half unit
            "&A-",        // too short to hold a unit
            "Entwürfe",   // raw UTF-8 from a server that ignores the RFC
            "&2D0-",      // a lone surrogate
        ] {
            assert_eq!(decode(wire), None, "{wire}");
            assert_eq!(display(wire), wire);
        }
    }

    #[test]
    fn encoding_and_decoding_round_trip() {
        for name in [
            "ä",
            "Entwürfe",
            "台北/日本語",
            "R&D",
            "a&ö&",
            "😀 x",
            "Gesendete Objekte",
        ] {
            let wire = encode(name);
            assert!(wire.is_ascii(), "{wire}");
            assert_eq!(decode(&wire).as_deref(), Some(name), "{wire}");
        }
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("台北"), "&U,BTFw-");
    }
}
