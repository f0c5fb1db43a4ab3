//! End-to-end ingest throughput: generates realistic mail (5-50 KB, recombined parts, fresh
//! Message-IDs), loads it into a private Dovecot, syncs it into a fresh PostgreSQL database,
//! then imports an mbox of the same size. Prints messages/s, MB/s, peak RSS (VmHWM, reset per
//! phase) and stored bytes against raw bytes. Figures only: nothing is asserted.
//!
//! cargo bench --bench ingest            (BENCH_MESSAGES=20000 by default)

// dovecot.rs allows dead_code itself; a second allow here is a clippy error.
#[path = "../tests/common/dovecot.rs"]
mod dovecot;
#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::io::Write;
use std::time::{Duration, Instant};

use daygle::config::Settings;
use daygle::ingest::accounts::{self, ImapSettings, TlsMode};
use daygle::ingest::imap::sync::{SyncDeps, sync_account};
use daygle::secrets::Keys;
use sqlx::PgPool;

const WORDS: &[&str] = &[
    "quarterly",
    "report",
    "meeting",
    "budget",
    "project",
    "deadline",
    "invoice",
    "customer",
    "contract",
    "review",
    "schedule",
    "please",
    "attached",
    "update",
    "status",
    "team",
    "proposal",
    "delivery",
    "shipment",
    "order",
    "thanks",
    "regards",
    "follow",
    "question",
    "answer",
    "tomorrow",
    "afternoon",
    "agenda",
    "minutes",
    "approval",
    "security",
    "release",
    "the",
    "and",
    "for",
    "with",
    "that",
    "this",
    "from",
    "about",
    "will",
    "have",
    "your",
    "our",
    "we",
    "you",
    "can",
    "next",
    "week",
    "monday",
    "friday",
    "office",
    "travel",
    "expenses",
];
const NAMES: &[&str] = &[
    "Anna Schmidt",
    "Brian O'Neill",
    "Chloé Martin",
    "Daniel Kowalski",
    "Eva Lindqvist",
    "Farid Haddad",
    "Grace Liu",
    "Hiro Tanaka",
    "Isabel García",
    "Jonas Weber",
];

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sentence(rng: &mut Rng) -> String {
    let n = 6 + rng.below(14);
    let mut s: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    let first = s[0].to_string();
    let cap = first[..1].to_uppercase() + &first[1..];
    s[0] = &cap;
    format!("{}.", s.join(" "))
}

fn paragraphs(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes {
        for _ in 0..(3 + rng.below(4)) {
            out.push_str(&sentence(rng));
            out.push(' ');
        }
        out.push_str("\r\n\r\n");
    }
    // Wrap at ~76 columns like real mail clients do.
    let mut wrapped = String::with_capacity(out.len() + out.len() / 70);
    let mut col = 0;
    for word in out.split(' ') {
        if col + word.len() > 76 {
            wrapped.push_str("\r\n");
            col = 0;
        }
        wrapped.push_str(word);
        wrapped.push(' ');
        col += word.len() + 1;
    }
    wrapped
}

/// One message of 5-50 KB: plain text, text+HTML, or text with a base64 attachment.
fn message(rng: &mut Rng, tag: &str, i: usize) -> Vec<u8> {
    let from = NAMES[rng.below(NAMES.len())];
    let to = NAMES[rng.below(NAMES.len())];
    let addr = |n: &str| n.split(' ').next().unwrap_or("x").to_lowercase();
    let subject = sentence(rng);
    let kind = rng.below(10);
    let mut m = format!(
        "Return-Path: <{f}@example.org>\r\nReceived: from mail.example.org (mail.example.org [192.0.2.{r}])\r\n\tby mx.example.com with ESMTPS id {i}{tag}; Mon, 6 May 2024 09:{mm:02}:00 +0200\r\n\
         Message-ID: <{tag}.{i}.{n}@mail.example.org>\r\nDate: Mon, 6 May 2024 09:{mm:02}:00 +0200\r\nFrom: {from} <{f}@example.org>\r\nTo: {to} <{t}@example.com>\r\n\
         Subject: {subject}\r\nMIME-Version: 1.0\r\n",
        f = addr(from),
        t = addr(to),
        r = rng.below(250),
        mm = rng.below(60),
        n = rng.next(),
    );
    match kind {
        0..=5 => {
            let body = {
                let len = 4_000 + rng.below(10_000);
                paragraphs(rng, len)
            };
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            m.push_str(&body);
        }
        6..=8 => {
            let body = {
                let len = 4_000 + rng.below(8_000);
                paragraphs(rng, len)
            };
            let html: String = body
                .split("\r\n\r\n")
                .map(|p| {
                    format!("<p style=\"font-family:Arial,sans-serif;font-size:14px\">{p}</p>\r\n")
                })
                .collect();
            m.push_str("Content-Type: multipart/alternative; boundary=\"alt-b\"\r\n\r\n--alt-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body);
            m.push_str("\r\n--alt-b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
            m.push_str(&html);
            m.push_str("</body></html>\r\n--alt-b--\r\n");
        }
        _ => {
            let body = {
                let len = 1_000 + rng.below(3_000);
                paragraphs(rng, len)
            };
            // A document-like attachment: text with binary noise, as office files are.
            let mut doc = {
                let len = 12_000 + rng.below(14_000);
                paragraphs(rng, len)
            }
            .into_bytes();
            for b in doc.iter_mut().step_by(7) {
                *b = (rng.next() & 0xff) as u8;
            }
            let b64 = base64_wrapped(&doc);
            m.push_str("Content-Type: multipart/mixed; boundary=\"mix-b\"\r\n\r\n--mix-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body);
            m.push_str(&format!("\r\n--mix-b\r\nContent-Type: application/pdf; name=\"report-{i}.pdf\"\r\nContent-Disposition: attachment; filename=\"report-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
            m.push_str(&b64);
            m.push_str("--mix-b--\r\n");
        }
    }
    m.into_bytes()
}

fn base64_wrapped(data: &[u8]) -> String {
    use base64::prelude::*;
    let enc = BASE64_STANDARD.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 * 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn stored(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(length(zstd)), 0)::bigint, coalesce(sum(size), 0)::bigint,
                (pg_total_relation_size('blobs') + pg_total_relation_size('messages')
                 + pg_total_relation_size('attachments'))::bigint FROM blobs",
    )
    .fetch_one(pool)
    .await
    .expect("sizes")
}

fn report(phase: &str, n: u64, raw: u64, secs: f64, peak: f64) {
    println!(
        "{phase}: {n} messages, {:.1} MB in {secs:.2} s = {:.0} msg/s, {:.1} MB/s, peak RSS {peak:.0} MB",
        raw as f64 / 1e6,
        n as f64 / secs,
        raw as f64 / 1e6 / secs
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dovecot = dovecot::Dovecot::start();
    dovecot.add_user("bench", "bench-pw");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut raw_total = 0u64;
    let folders = [
        ("INBOX", n * 6 / 10),
        ("Archive/2024", n * 3 / 10),
        ("Sent", n - n * 9 / 10),
    ];
    for (folder, count) in folders {
        let mut batch = Vec::with_capacity(500);
        for i in 0..count {
            let m = message(&mut rng, folder, i);
            raw_total += m.len() as u64;
            batch.push(m);
            if batch.len() == 500 {
                dovecot.write_messages("bench", folder, &batch, Duration::ZERO);
                batch.clear();
            }
        }
        dovecot.write_messages("bench", folder, &batch, Duration::ZERO);
    }
    println!(
        "generated {n} messages ({:.1} MB, {:.1} KB average) in {:.1} s",
        raw_total as f64 / 1e6,
        raw_total as f64 / n as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );

    let data_dir = tempfile::tempdir().expect("dir");
    let database_url = pg::fresh_database().await;
    let mut settings = Settings::default();
    settings.database.url = daygle::config::Secret::new(database_url.clone());
    settings.storage.data_dir = data_dir.path().display().to_string();
    // BENCH_CLAMD=host:port (or a socket path) measures the same sync with virus scanning on.
    if let Ok(address) = std::env::var("BENCH_CLAMD") {
        settings.clamav.enabled = true;
        settings.clamav.address = address;
        println!("scanning with clamd at {}", settings.clamav.address);
    }
    let pool = pg::migrated_pool(&database_url).await;
    let keys = Keys::load(&settings.security, data_dir.path()).expect("keys");
    let account_settings = ImapSettings {
        name: "Bench".into(),
        host: "127.0.0.1".into(),
        port: dovecot.port,
        tls: TlsMode::None,
        username: "bench".into(),
        folders_include: vec![],
        folders_exclude: vec![],
        poll_interval_secs: 300,
        delete_after_days: None,
        expunge: true,
        pinned_cert_sha256: None,
    };
    let mut tx = pool.begin().await.expect("tx");
    let id = accounts::create_imap(&mut tx, &keys.sealing, &account_settings, "bench-pw")
        .await
        .expect("account");
    tx.commit().await.expect("commit");
    let mut conn = pool.acquire().await.expect("conn");
    let account = accounts::get(&mut *conn, id).await.expect("account");
    drop(conn);

    // Warm-up: Dovecot indexes the new folders on first access; not ours to measure.
    let warm = daygle::ingest::imap::test_connection(
        &account,
        &account.password(&keys.sealing).expect("pw"),
        daygle::ingest::imap::Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(600),
        },
    )
    .await
    .expect("warm-up");
    println!("dovecot indexed {} folders", warm.folders.len());

    reset_peak_rss();
    let t = Instant::now();
    let deps = SyncDeps {
        pool: &pool,
        settings: &settings,
        keys: &keys.sealing,
        heartbeat: None,
    };
    let outcome = sync_account(&deps, &account).await.expect("sync");
    let secs = t.elapsed().as_secs_f64();
    report("sync", outcome.archived, outcome.bytes, secs, peak_rss_mb());
    let (blob_bytes, raw_bytes, db_bytes) = stored(&pool).await;
    println!(
        "stored: blobs {:.1} MB = {:.3} x raw; blobs + messages + attachments incl. indexes and search vectors {:.1} MB = {:.3} x raw",
        blob_bytes as f64 / 1e6,
        blob_bytes as f64 / raw_bytes as f64,
        db_bytes as f64 / 1e6,
        db_bytes as f64 / raw_bytes as f64
    );

    // Import: an mbox with the same mix, fresh Message-IDs.
    let mbox_path = data_dir.path().join("bench.mbox");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&mbox_path).expect("mbox"));
        for i in 0..n {
            let m = message(&mut rng, "mbox", i);
            f.write_all(b"From bench@example.org Mon May  6 09:00:00 2024\n")
                .expect("w");
            // mboxrd: body lines starting with "From " are escaped, as mail clients do.
            let escaped = String::from_utf8_lossy(&m).replace("\nFrom ", "\n>From ");
            f.write_all(escaped.as_bytes()).expect("w");
            f.write_all(b"\n").expect("w");
        }
    }
    let mut conn = pool.acquire().await.expect("conn");
    let import_account = accounts::import_account(&mut conn, "Bench import")
        .await
        .expect("import account");
    drop(conn);
    reset_peak_rss();
    let t = Instant::now();
    let r = daygle::ingest::files::import_paths(
        &pool,
        &settings,
        &keys.sealing,
        &import_account,
        &[mbox_path],
        &|_| {},
    )
    .await
    .expect("import");
    let secs = t.elapsed().as_secs_f64();
    report("import", r.imported, r.bytes, secs, peak_rss_mb());
    drop(dovecot);
}
