//! Attachments stored once (#14): messages whose attachments are shared, partly shared,
//! nested, malformed, 8-bit or binary go through a real Dovecot and sync, and every one reads
//! back byte for byte — through the raw read, `verify archive` and an export.

use std::collections::BTreeMap;

use base64::prelude::*;

use super::support::*;
use daygle::archive::blobs;

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn wrapped(data: &[u8], width: usize, eol: &str) -> String {
    let text = BASE64_STANDARD.encode(data);
    let mut out = String::new();
    for line in text.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str(eol);
    }
    out
}

fn head(id: &str, extra: &str) -> String {
    format!(
        "{extra}Message-ID: <{id}@test.example>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: {id}\r\nMIME-Version: 1.0\r\n"
    )
}

fn attachment(boundary: &str, name: &str, body: &str) -> String {
    format!(
        "--{boundary}\r\nContent-Type: application/pdf; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}"
    )
}

fn mixed(id: &str, extra: &str, parts: &[String]) -> Vec<u8> {
    let mut m = head(id, extra);
    m.push_str("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n");
    for p in parts {
        m.push_str(p);
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

/// The shapes the issue lists, keyed by name.
fn shapes() -> BTreeMap<&'static str, Vec<u8>> {
    let x = wrapped(&noise(1, 30_000), 76, "\r\n");
    let y = wrapped(&noise(2, 20_000), 76, "\r\n");
    let z = wrapped(&noise(3, 9_000), 64, "\r\n");
    let mut m = BTreeMap::new();
    m.insert(
        "shared-a",
        mixed("shared-a", "", &[attachment("b1", "x.pdf", &x)]),
    );
    m.insert(
        "shared-b",
        mixed(
            "shared-b",
            "Delivered-To: carol@example.org\r\n",
            &[attachment("b1", "x.pdf", &x)],
        ),
    );
    m.insert(
        "partly",
        mixed(
            "partly",
            "",
            &[attachment("b1", "x.pdf", &x), attachment("b1", "y.pdf", &y)],
        ),
    );
    // A forward: the first message inside, as message/rfc822, and one more attachment.
    let inner = String::from_utf8(mixed("inner", "", &[attachment("b1", "x.pdf", &x)])).unwrap();
    let mut nested = head("nested", "");
    nested.push_str("Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nForwarded.\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n");
    nested.push_str(&inner);
    nested.push_str(&attachment("outer", "z.pdf", &z));
    nested.push_str("--outer--\r\n");
    m.insert("nested", nested.into_bytes());
    // The boundary in the header is not the one used in the body.
    let mut bad = head("bad-boundary", "");
    bad.push_str("Content-Type: multipart/mixed; boundary=\"declared\"\r\n\r\n");
    bad.push_str(&attachment("used", "x.pdf", &x));
    bad.push_str("--used--\r\n");
    m.insert("bad-boundary", bad.into_bytes());
    // Base64 cut off mid-line, no closing boundary.
    let cut = &y[..y.len() / 2 + 13];
    m.insert(
        "truncated",
        mixed("truncated", "", &[attachment("b1", "y.pdf", cut)]),
    );
    let mut truncated = head("truncated-open", "");
    truncated.push_str("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n");
    truncated.push_str(&attachment("b1", "y.pdf", cut));
    m.insert("truncated-open", truncated.into_bytes());
    // 8-bit text (Latin-1 bytes) and a binary part (CTE binary, every byte value but CR/LF
    // runs that IMAP would rewrite), plus LF-only base64 with 64-character lines.
    let mut eight = head("eightbit", "").into_bytes();
    eight.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdfe aus K\xf6ln, \xe9t\xe9.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\nContent-Disposition: attachment; filename=\"blob.bin\"\r\nContent-Transfer-Encoding: binary\r\n\r\n");
    let binary: Vec<u8> = noise(4, 12_000)
        .into_iter()
        .map(|b| if b == b'\r' || b == b'\n' { b'.' } else { b })
        .collect();
    eight.extend_from_slice(&binary);
    eight.extend_from_slice(b"\r\n");
    eight.extend_from_slice(
        attachment("b1", "z.pdf", &wrapped(&noise(5, 9_000), 64, "\n")).as_bytes(),
    );
    eight.extend_from_slice(b"--b1--\r\n");
    m.insert("eightbit", eight);
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_nested_malformed_and_binary_attachments_come_back_byte_for_byte() {
    let env = env().await;
    let account = env.account("Shared", "alice").await;
    let shapes = shapes();
    let raws: Vec<Vec<u8>> = shapes.values().cloned().collect();
    env.dovecot.write_messages("alice", "INBOX", &raws, NEW);
    env.sync(&account).await.expect("sync");

    let archived = env.archived(account.id, "INBOX").await;
    let server = env.server("alice", "INBOX").await;
    assert_eq!(
        archived, server,
        "the archive holds exactly what the server serves"
    );
    assert_eq!(archived.len(), shapes.len());

    // Every message reassembles to the bytes the server served, by the checked read path.
    let mut conn = env.pool.acquire().await.expect("conn");
    for sha in archived.values() {
        let sha: [u8; 32] = hex::decode(sha).unwrap().try_into().unwrap();
        let raw = blobs::read_verified(&mut conn, &sha)
            .await
            .expect("read")
            .expect("reads back and verifies");
        assert_eq!(blobs::sha256(&raw), sha);
    }
    drop(conn);

    // x.pdf is in the two copies, the partly shared message and the malformed one (the copy
    // inside the forward stays with its message/rfc822 part): stored once.
    let most_shared = env
        .count("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM blob_parts GROUP BY part_sha256) t")
        .await;
    assert!(
        most_shared >= 3,
        "x.pdf is referenced by {most_shared} messages"
    );
    let skeletons = env
        .count("SELECT count(*) FROM blobs WHERE layout = 1")
        .await;
    assert!(skeletons >= 4, "{skeletons} messages stored as skeletons");
    let stored_once = env.count("SELECT count(*) FROM parts").await;
    let references = env.count("SELECT count(*) FROM blob_parts").await;
    assert!(
        stored_once < references,
        "{stored_once} parts for {references} references"
    );

    // `verify archive` reads every blob the same way and finds nothing wrong.
    let summary = daygle::verify::archive::verify_archive(
        &env.pool,
        None,
        &daygle::verify::archive::Scope::default(),
        &daygle::verify::Quiet,
    )
    .await
    .expect("verify");
    assert!(summary.is_clean(), "{summary:?}");
    assert_eq!(summary.blobs_checked, shapes.len() as u64);
}

/// An archive from before attachments were stored once (every blob whole, layout 0) converts
/// through the reindex that `serve` runs in the background and `daygle reindex` runs at once:
/// afterwards the shared attachment is stored once and every message still reads back exactly.
#[tokio::test(flavor = "multi_thread")]
async fn an_archive_stored_whole_converts_on_reindex_and_reads_back_byte_for_byte() {
    let env = env().await;
    let account = env.account("Legacy", "alice").await;
    let shapes = shapes();
    let raws: Vec<Vec<u8>> = shapes.values().cloned().collect();
    env.dovecot.write_messages("alice", "INBOX", &raws, NEW);
    env.sync(&account).await.expect("sync");
    // Turn the archive into what an older version wrote: whole messages, no parts.
    let mut conn = env.pool.acquire().await.expect("conn");
    let archived = env.archived(account.id, "INBOX").await;
    for sha in archived.values() {
        let sha: [u8; 32] = hex::decode(sha).unwrap().try_into().unwrap();
        let raw = blobs::read_verified(&mut conn, &sha)
            .await
            .unwrap()
            .unwrap();
        sqlx::query("UPDATE blobs SET layout = 0, zstd = $2 WHERE sha256 = $1")
            .bind(sha.as_slice())
            .bind(zstd::bulk::compress(&raw, 3).unwrap())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM blob_parts")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM parts")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(
        env.count("SELECT count(*) FROM blobs WHERE layout = 0")
            .await,
        shapes.len() as i64
    );

    use daygle::archive::search::reindex;
    reindex::schedule(&env.pool, reindex::Scope::default())
        .await
        .expect("schedule");
    reindex::run(&env.pool, reindex::Scope::default(), |_| {})
        .await
        .expect("reindex");

    assert_eq!(
        env.count("SELECT count(*) FROM blobs WHERE layout = 0")
            .await,
        0
    );
    assert!(
        env.count("SELECT count(*) FROM blobs WHERE layout = 1")
            .await
            >= 4
    );
    let stored_once = env.count("SELECT count(*) FROM parts").await;
    let references = env.count("SELECT count(*) FROM blob_parts").await;
    assert!(
        stored_once < references,
        "{stored_once} parts for {references} references"
    );
    let mut conn = env.pool.acquire().await.expect("conn");
    for sha in archived.values() {
        let sha: [u8; 32] = hex::decode(sha).unwrap().try_into().unwrap();
        let raw = blobs::read_verified(&mut conn, &sha)
            .await
            .unwrap()
            .expect("reads back after conversion");
        assert_eq!(blobs::sha256(&raw), sha);
    }
}
