//! Test messages. Each call gives unique bytes (a fresh Message-ID), because clamd caches
//! verdicts for content it has already seen.

use base64::prelude::*;

use crate::common::clamd::EICAR;

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn headers(subject: &str) -> String {
    format!(
        "From: Alice Sender <alice@example.org>\r\nTo: bob@example.com\r\n\
         Subject: {subject}\r\nMessage-ID: <{}@example.org>\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
        unique()
    )
}

pub fn clean() -> Vec<u8> {
    format!(
        "{}Content-Type: text/plain; charset=utf-8\r\n\r\nLunch on Friday? Nothing to see here.\r\n",
        headers("Lunch")
    )
    .into_bytes()
}

/// EICAR as a base64-encoded attachment: only found when clamd decodes MIME.
pub fn eicar_base64_attachment() -> Vec<u8> {
    format!(
        "{}Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nPlease see the attached invoice.\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"invoice.com\"\r\n\
         Content-Disposition: attachment; filename=\"invoice.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        headers("Invoice attached"),
        BASE64_STANDARD.encode(EICAR)
    )
    .into_bytes()
}

pub fn eicar_in_plain_body() -> Vec<u8> {
    let mut m = format!(
        "{}Content-Type: text/plain\r\n\r\nHere it is:\r\n",
        headers("Inline")
    )
    .into_bytes();
    m.extend_from_slice(EICAR);
    m.extend_from_slice(b"\r\n");
    m
}

pub fn eicar_quoted_printable_part() -> Vec<u8> {
    let mut m = format!(
        "{}Content-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n\
         --b2\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
         --b2\r\nContent-Type: text/plain; name=\"readme.txt\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n",
        headers("Quoted")
    )
    .into_bytes();
    m.extend_from_slice(EICAR);
    m.extend_from_slice(b"\r\n--b2--\r\n");
    m
}

/// A clean message of about `size` bytes.
pub fn clean_of_size(size: usize) -> Vec<u8> {
    let mut m = headers("Big").into_bytes();
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
    let line = b"The quick brown fox jumps over the lazy dog again and again.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}
