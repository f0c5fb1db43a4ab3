//! Finding and reading mail at scale: builds an archive of BENCH_MESSAGES (default 1,000,000)
//! realistic messages through the real ingest pipeline, then times every search shape, the
//! message page and exports, and shows the plans of the shapes that trap others. Figures only.
//!
//! BENCH_DATABASE_URL=postgres://…/daygle_bench cargo bench --bench search
//! (reuses an archive already built there; without it a throwaway cluster is used)

#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use daygle::archive::export::{self, Format};
use daygle::archive::listing::{Filters, Listing, Sort};
use daygle::archive::search::reindex::{self, Scope};
use daygle::archive::{reading, search, threads};
use daygle::auth::Grants;
use daygle::ingest::pipeline::{self, Batch, Incoming};
use daygle::render::html::{HtmlOptions, sanitize_email_html};
use sqlx::PgPool;

const ACCOUNTS: &[&str] = &["sales", "support", "board", "engineering", "archive-2019"];
const FOLDERS: &[&str] = &[
    "INBOX",
    "Sent",
    "Archive/2022",
    "Archive/2023",
    "Projects/Atlas",
    "Lists/announce",
];
const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "Dana", "Erik", "Fatima", "Gustav", "Hana", "Ivan", "Jules", "Kenji",
    "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Ulla", "Viktor",
    "Wen", "Xavier", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Archer",
    "Baker",
    "Clerk",
    "Dalton",
    "Ekberg",
    "Fischer",
    "Garcia",
    "Huber",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Umarov",
    "Varga",
    "Weber",
    "Xu",
    "Young",
    "Zimmermann",
];
const COMMON: &[&str] = &[
    "the", "and", "for", "with", "please", "thanks", "regards", "meeting", "project", "update",
    "report", "team", "schedule", "review", "customer", "order", "budget", "deadline", "status",
    "question", "tomorrow", "agenda", "minutes", "approval", "release", "delivery", "contract",
    "proposal", "attached", "follow", "week", "next", "call", "plan", "draft", "final", "numbers",
];

/// A small deterministic PRNG so every run builds the same archive.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

/// A pseudo-word from syllables: thousands of distinct, pronounceable rare words.
fn rare_word(rng: &mut Rng) -> String {
    const SYL: &[&str] = &[
        "ka", "lo", "mi", "ner", "tu", "vas", "qui", "zor", "bel", "dra", "fin", "gos",
    ];
    (0..2 + rng.below(2)).map(|_| rng.pick(SYL)).collect()
}

fn person(rng: &mut Rng) -> (String, String) {
    let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
    let domain = [
        "example.org",
        "example.com",
        "corp.example",
        "mail.example.net",
    ][rng.below(4)];
    (
        format!("{f} {l}"),
        format!("{}.{}@{domain}", f.to_lowercase(), l.to_lowercase()),
    )
}

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        match rng.below(100) {
            0..=79 => s.push_str(rng.pick(COMMON)),
            80..=97 => s.push_str(&rare_word(rng)),
            98 => s.push_str("invoice"),
            // Shapes of issue #13: accents, compounds searched by a part.
            _ => s.push_str(match rng.below(40) {
                0 => "Zürich",
                1 => "draft-ietf-mboned-mix-00.txt",
                2 => "scoffman@wellpartner.com",
                _ if rng.below(10_000) == 0 => "zanzibar",
                _ => "kickoff",
            }),
        }
    }
    s
}

/// One message: 2-8 KB of text, 8% with a 10-40 KB attachment, 30% replies.
fn message(
    rng: &mut Rng,
    n: u64,
    date: i64,
    parent: Option<&(String, String)>,
) -> (Vec<u8>, String, String) {
    let (from_name, from_addr) = person(rng);
    let (to_name, to_addr) = person(rng);
    let message_id = format!("{n}.{}@bench.example", rng.next() % 1_000_000);
    let subject = match parent {
        Some((_, subj)) => format!("Re: {subj}"),
        None => {
            let words = 3 + rng.below(5);
            let mut s = sentence(rng, words);
            s[..1].make_ascii_uppercase();
            s
        }
    };
    let date_text = time::OffsetDateTime::from_unix_timestamp(date)
        .unwrap()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap();
    let mut head = format!(
        "From: {from_name} <{from_addr}>\r\nTo: {to_name} <{to_addr}>\r\nSubject: {subject}\r\nDate: {date_text}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n"
    );
    if let Some((pid, _)) = parent {
        head.push_str(&format!("In-Reply-To: <{pid}>\r\nReferences: <{pid}>\r\n"));
    }
    let mut body = String::new();
    for _ in 0..(4 + rng.below(12)) {
        let words = 40 + rng.below(60);
        body.push_str(&sentence(rng, words));
        body.push_str(".\r\n\r\n");
    }
    let attach = rng.below(100);
    let raw = if attach < 4 {
        // A CSV attachment: text the background stage extracts (weight D).
        let csv = sentence(rng, 200).replace(' ', ",");
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b{n}\r\nContent-Type: text/csv; name=\"figures-{n}.csv\"\r\nContent-Disposition: attachment; filename=\"figures-{n}.csv\"\r\n\r\n{csv}\r\n--b{n}--\r\n"
        )
    } else if attach < 8 {
        let size = 10_000 + rng.below(30_000);
        let bytes: Vec<u8> = (0..size).map(|_| (rng.next() & 0xff) as u8).collect();
        let b64 = base64_lines(&bytes);
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b{n}\r\nContent-Type: application/pdf; name=\"{}-{n}.pdf\"\r\nContent-Disposition: attachment; filename=\"{}-{n}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b{n}--\r\n",
            rng.pick(COMMON),
            rng.pick(COMMON)
        )
    } else {
        format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")
    };
    (raw.into_bytes(), message_id, subject)
}

fn base64_lines(bytes: &[u8]) -> String {
    use base64::prelude::*;
    let text = BASE64_STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

async fn build_archive(pool: &PgPool, total: u64) {
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(pool)
        .await
        .unwrap();
    if existing as u64 >= total {
        println!("archive: reusing {existing} messages");
        return;
    }
    let mut ids = Vec::new();
    for name in ACCOUNTS {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, kind) VALUES ($1, 'imap')
             ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let started = Instant::now();
    let mut rng = Rng(0x5eed_1234_abcd_0001 ^ existing as u64);
    let per_folder = total.div_ceil((ACCOUNTS.len() * FOLDERS.len()) as u64);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let store_pool = pool.clone();
    let storer = tokio::spawn(async move {
        let mut stored = 0u64;
        while let Some(batch) = rx.recv().await {
            stored += batch.messages.len() as u64;
            pipeline::store(&store_pool, 3, batch).await.unwrap();
            if stored.is_multiple_of(50_000) {
                println!("  {stored} stored");
            }
        }
        stored
    });
    let span = 5 * 365 * 86_400i64;
    let mut n = 0u64;
    for (ai, account) in ids.iter().enumerate() {
        for folder in FOLDERS {
            let mut recent: Vec<(String, String)> = Vec::new();
            let mut uid = 0i64;
            while (uid as u64) < per_folder && n < total {
                let mut messages = Vec::with_capacity(1000);
                for _ in 0..1000.min(per_folder - uid as u64) {
                    uid += 1;
                    n += 1;
                    let date =
                        1_600_000_000 + (uid * span / per_folder as i64) + rng.below(3600) as i64;
                    let parent = (rng.below(100) < 30 && !recent.is_empty())
                        .then(|| recent[rng.below(recent.len())].clone());
                    let (raw, mid, subject) =
                        message(&mut rng, n + ai as u64 * 10_000_000, date, parent.as_ref());
                    if recent.len() > 50 {
                        recent.remove(0);
                    }
                    recent.push((mid, subject.trim_start_matches("Re: ").to_string()));
                    messages.push(Incoming {
                        uid: Some(uid),
                        raw,
                        internal_date: None,
                        flags: vec![],
                    });
                }
                tx.send(Batch {
                    account_id: *account,
                    folder: folder.to_string(),
                    uidvalidity: Some(1),
                    messages,
                    ledger: vec![],
                    advance_to: Some(uid),
                })
                .await
                .unwrap();
            }
        }
    }
    drop(tx);
    let stored = storer.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "archive: built {stored} messages in {secs:.0} s ({:.0} msg/s)",
        stored as f64 / secs
    );
    // The background stage: attachment text of the messages archived pending.
    let started = Instant::now();
    let done = reindex::run(pool, Scope::default(), |_| {}).await.unwrap();
    println!(
        "attachment text stage: {done} messages in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE messages")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE attachments")
        .execute(pool)
        .await
        .unwrap();
}

/// The search index of a sample as PostgreSQL's `simple` configuration built it before issue
/// #13, and as the Rust tokenizer builds it now: GIN index and vector sizes.
async fn index_sizes(pool: &PgPool) {
    let rows: Vec<(Vec<u8>, i64, String)> = sqlx::query_as(
        "SELECT b.zstd, b.size, m.search::text FROM messages m
         JOIN blobs b ON b.sha256 = m.blob_sha256 ORDER BY m.id LIMIT 20000",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut subject = Vec::new();
    let mut address = Vec::new();
    let mut body = Vec::new();
    let mut new = Vec::new();
    for (zstd, size, search) in rows {
        let raw = zstd::bulk::decompress(&zstd, size as usize).unwrap();
        let p = daygle::archive::parse::parse(&raw);
        subject.push(p.subject.clone().unwrap_or_default());
        address.push(p.address_text());
        body.push(p.body_text.clone());
        new.push(search);
    }
    for sql in [
        "DROP TABLE IF EXISTS bench_old, bench_new",
        "CREATE TABLE bench_old (v tsvector)",
        "CREATE TABLE bench_new (v tsvector)",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO bench_old SELECT setweight(to_tsvector('simple', s), 'A')
             || setweight(to_tsvector('simple', a), 'B') || setweight(to_tsvector('simple', b), 'C')
         FROM unnest($1::text[], $2::text[], $3::text[]) AS t(s, a, b)",
    )
    .bind(&subject)
    .bind(&address)
    .bind(&body)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO bench_new SELECT v::tsvector FROM unnest($1::text[]) AS t(v)")
        .bind(&new)
        .execute(pool)
        .await
        .unwrap();
    let mut sizes = Vec::new();
    for t in ["bench_old", "bench_new"] {
        sqlx::query(&format!("CREATE INDEX {t}_gin ON {t} USING gin (v)"))
            .execute(pool)
            .await
            .unwrap();
        let (index, table): (i64, i64) = sqlx::query_as(&format!(
            "SELECT pg_relation_size('{t}_gin'), pg_total_relation_size('{t}') - pg_relation_size('{t}_gin')"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        sizes.push((index, table));
    }
    let mb = |b: i64| b as f64 / 1_048_576.0;
    println!(
        "\nsearch index on the first 20,000 messages: GIN {:.1} MB (simple) -> {:.1} MB (tokenizer), {:+.0} %; vectors {:.1} MB -> {:.1} MB, {:+.0} %",
        mb(sizes[0].0),
        mb(sizes[1].0),
        (sizes[1].0 as f64 / sizes[0].0 as f64 - 1.0) * 100.0,
        mb(sizes[0].1),
        mb(sizes[1].1),
        (sizes[1].1 as f64 / sizes[0].1 as f64 - 1.0) * 100.0,
    );
    sqlx::query("DROP TABLE bench_old, bench_new")
        .execute(pool)
        .await
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name:<44} p50 {:>7.1} ms   p95 {:>7.1} ms   max {:>7.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
}

async fn time_shape(
    pool: &PgPool,
    name: &str,
    grants: &Grants,
    q: &str,
    filters: Filters,
    sort: Sort,
    deep: bool,
) {
    let query = search::parse(q).unwrap();
    let listing = Listing {
        grants,
        query: &query,
        filters: &filters,
        sort,
    };
    let cursor = if deep {
        // The cursor of a page about 5,000 messages in: what "Older" clicked many times gives.
        let mut c = None;
        for _ in 0..100 {
            c = listing.page(pool, c, 50).await.unwrap().next;
        }
        c
    } else {
        None
    };
    let mut times = Vec::new();
    for _ in 0..25 {
        let t = Instant::now();
        listing.page(pool, cursor, 50).await.unwrap();
        times.push(t.elapsed());
    }
    report(name, times);
    if std::env::var("BENCH_EXPLAIN").is_ok() {
        for line in listing.explain_page(pool, cursor, 50).await.unwrap() {
            println!("    {line}");
        }
    }
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let url = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => pg::fresh_database().await,
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    daygle::db::migrate(&pool).await.unwrap();
    build_archive(&pool, total).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&pool)
            .await
            .unwrap();
    println!("\n{count} messages, database {size}; 50 rows per page, 25 runs per shape\n");
    let accounts: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let all = Grants::All;
    let reader = Grants::Accounts(accounts[..2].to_vec());
    let f = Filters::default;
    for (who, grants) in [("admin", &all), ("reader of 2 accounts", &reader)] {
        println!("-- as {who}");
        time_shape(&pool, "newest first", grants, "", f(), Sort::Newest, false).await;
        time_shape(
            &pool,
            "newest first, deep page (~5,000 in)",
            grants,
            "",
            f(),
            Sort::Newest,
            true,
        )
        .await;
        time_shape(
            &pool,
            "common word (invoice)",
            grants,
            "invoice",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "rare word (zanzibar)",
            grants,
            "zanzibar",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "two words + phrase",
            grants,
            "budget \"final numbers\"",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "word -word",
            grants,
            "invoice -draft",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "a OR b",
            grants,
            "zanzibar OR kickoff",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "from:name",
            grants,
            "from:nakamura",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "to:address + after:",
            grants,
            "to:lena.weber@example.org after:2023-01-01",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "subject:word",
            grants,
            "subject:invoice",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "has:attachment larger:20K",
            grants,
            "has:attachment larger:20K",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "filename:",
            grants,
            "filename:budget",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        let folder = Filters {
            account_id: Some(accounts[1]),
            folder: Some("Projects/Atlas".into()),
            ..f()
        };
        time_shape(
            &pool,
            "folder filter",
            grants,
            "",
            folder.clone(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "folder filter + word",
            grants,
            "invoice",
            folder.clone(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "folder filter, deep page",
            grants,
            "",
            folder,
            Sort::Newest,
            true,
        )
        .await;
        time_shape(
            &pool,
            "date range filter",
            grants,
            "",
            Filters {
                from_day: Some(time::macros::date!(2022 - 03 - 01)),
                to_day: Some(time::macros::date!(2022 - 03 - 31)),
                ..f()
            },
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "msgid:",
            grants,
            "msgid:<5000.1@bench.example>",
            f(),
            Sort::Newest,
            false,
        )
        .await;
        time_shape(
            &pool,
            "relevance sort (invoice)",
            grants,
            "invoice",
            f(),
            Sort::Relevance,
            false,
        )
        .await;
        for (name, q) in [
            ("prefix (invoic*)", "invoic*"),
            ("accent-folded (zurich = Zürich)", "zurich"),
            ("part-word (mboned)", "mboned"),
            ("part of an address (wellpartner.com)", "wellpartner.com"),
            ("attachment text (attachment:invoice)", "attachment:invoice"),
            (
                "attachment text, rarer (attachment:zurich)",
                "attachment:zurich",
            ),
        ] {
            time_shape(&pool, name, grants, q, f(), Sort::Newest, false).await;
        }
        let query = search::parse("invoice").unwrap();
        let filters = f();
        let listing = Listing {
            grants,
            query: &query,
            filters: &filters,
            sort: Sort::Newest,
        };
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            listing.count(&pool, 10_000).await.unwrap();
            times.push(t.elapsed());
        }
        report("count, capped at 10,000 (invoice)", times);
    }

    // The message page's server work: row, original, parse, sanitise.
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM messages TABLESAMPLE SYSTEM (1) LIMIT 200")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut times = Vec::new();
    for id in &ids {
        let t = Instant::now();
        let row = reading::find(&pool, &all, *id).await.unwrap().unwrap();
        let raw = reading::raw(&pool, &row).await.unwrap();
        let parts = reading::render_parts(raw, false).await.unwrap();
        threads::conversation(&pool, &all, &row).await.unwrap();
        if let Some(html) = parts.html_body {
            sanitize_email_html(
                &html,
                HtmlOptions {
                    message_id: *id,
                    load_remote_images: false,
                },
            );
        }
        times.push(t.elapsed());
    }
    println!();
    report(
        "message page (row + original + parse + sanitise + thread)",
        times,
    );
    index_sizes(&pool).await;

    // Export: 20,000 messages streamed to nowhere, memory measured by the caller (time -v).
    let export_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM messages ORDER BY sort_date DESC LIMIT 20000")
            .fetch_all(&pool)
            .await
            .unwrap();
    for format in [Format::Mbox, Format::Zip] {
        let t = Instant::now();
        let done = export::export(
            &pool,
            &all,
            export::HeldMail::Include,
            export_ids.clone(),
            format,
            export::ExportInfo::new("bench", "", format.extension(), None),
            std::io::sink(),
            |_| {},
        )
        .await
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "export {:<4} {} messages, {:.0} MB in {secs:.1} s: {:.0} messages/s, {:.0} MB/s",
            format.extension(),
            done.messages,
            done.bytes as f64 / 1e6,
            done.messages as f64 / secs,
            done.bytes as f64 / 1e6 / secs
        );
    }
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("")
        .to_string();
    println!("peak RSS of the benchmark process: {rss}");
}
