//! Retention at scale: an archive of BENCH_MESSAGES (default 1,000,000) message rows written
//! straight into the tables (metadata, sizes, dates over ten years, 5% sharing a blob with
//! another message; the preview and purge read only these columns, never the raw bytes), two
//! overlapping policies and a legal hold. Times the preview (as an administrator and as a
//! one-archive retention manager), then the purge, while a reader pages through search results;
//! prints the reader's p95 idle and during the purge. Figures only.
//!
//! BENCH_DATABASE_URL=postgres://…/daygle_bench_retention cargo bench --bench retention
//! (the database is filled if it has fewer messages; the purge consumes the old mail, so use a
//! fresh database for each run; without it a throwaway database is used)

#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daygle::archive::listing::{Filters, Listing, Sort};
use daygle::archive::search;
use daygle::audit::Actor;
use daygle::auth::Grants;
use daygle::retention::{Plan, holds, policies, preview, purge};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const ACCOUNTS: &[&str] = &["sales", "support", "board", "engineering", "legal"];
const CHUNK: u64 = 100_000;

async fn build(pool: &PgPool, total: u64) -> Vec<i64> {
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
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(pool)
        .await
        .unwrap();
    if existing as u64 >= total {
        println!("archive: reusing {existing} messages");
        return ids;
    }
    let started = Instant::now();
    let mut from = existing as u64 + 1;
    while from <= total {
        let to = (from + CHUNK - 1).min(total);
        // Message g's content is blob g, except every 20th, which shares blob g-7's content.
        sqlx::query(
            "INSERT INTO blobs (sha256, size, zstd)
             SELECT sha256(int8send(g)), 2000 + (g * 7919) % 38000, '\\x28b52ffd'::bytea
             FROM generate_series($1::bigint, $2::bigint) g WHERE g % 20 <> 0",
        )
        .bind(from as i64)
        .bind(to as i64)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO messages (account_id, folder, uidvalidity, uid, blob_sha256, message_id,
                 subject, from_addr, to_addrs, date, size, snippet, scan_status, search, search_pending)
             SELECT ($3::bigint[])[1 + g % 5],
                    (ARRAY['INBOX', 'Sent', 'Archive', 'Projects/Atlas'])[1 + (g / 5) % 4],
                    1, g,
                    sha256(int8send(CASE WHEN g % 20 = 0 THEN g - 7 ELSE g END)),
                    g || '@bench.example', s.subject,
                    'person' || (g % 997) || '@example.org', 'team' || (g % 13) || '@example.com',
                    now() - make_interval(days => ((g * 7919) % 3650)::int, secs => (g % 86400)::int),
                    2000 + (CASE WHEN g % 20 = 0 THEN g - 7 ELSE g END * 7919) % 38000,
                    left(s.subject, 60), 'clean', setweight(to_tsvector('english', s.subject), 'A'), false
             FROM generate_series($1::bigint, $2::bigint) g,
                  LATERAL (SELECT (ARRAY['meeting', 'contract', 'budget', 'report', 'invoice',
                                         'schedule', 'review'])[1 + (g / 7) % 7]
                                  || ' for project ' || (g % 101) || ' week ' || (g % 52) AS subject) s",
        )
        .bind(from as i64)
        .bind(to as i64)
        .bind(&ids)
        .execute(pool)
        .await
        .unwrap();
        println!("  {to} messages written");
        from = to + 1;
    }
    // An archive that grew over years has been vacuumed by autovacuum (visibility map set).
    sqlx::query("VACUUM ANALYZE messages")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE blobs")
        .execute(pool)
        .await
        .unwrap();
    println!(
        "archive: {} messages written in {:.0} s",
        total - existing as u64,
        started.elapsed().as_secs_f64()
    );
    ids
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A reader paging through search results and the newest mail, until `stop`.
async fn reader(pool: PgPool, stop: Arc<AtomicBool>, min_runs: usize) -> Vec<Duration> {
    let queries = [
        search::parse("meeting").unwrap(),
        search::parse("").unwrap(),
    ];
    let filters = Filters::default();
    let mut times = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) || times.len() < min_runs {
        let listing = Listing {
            grants: &Grants::All,
            query: &queries[i % 2],
            filters: &filters,
            sort: Sort::Newest,
        };
        let t = Instant::now();
        listing.page(&pool, None, 50).await.unwrap();
        times.push(t.elapsed());
        i += 1;
        if stop.load(Ordering::Relaxed) && times.len() >= min_runs {
            break;
        }
    }
    times.sort();
    times
}

fn input(name: &str, keep_days: i32, accounts: Vec<i64>) -> policies::PolicyInput {
    policies::PolicyInput {
        name: name.into(),
        account_ids: accounts,
        keep_days,
        age_basis: "message".into(),
        enabled: true,
        ..Default::default()
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
        .max_connections(6)
        .connect(&url)
        .await
        .unwrap();
    daygle::db::migrate(&pool).await.unwrap();
    let accounts = build(&pool, total).await;
    let actor = Actor::cli();
    let all = Grants::All;
    // Nine years everywhere (about 10% of the ten years is older); legal keeps twelve (longest
    // wins); the board's contracts are under a hold.
    sqlx::query("DELETE FROM retention_policies")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM legal_holds")
        .execute(&pool)
        .await
        .unwrap();
    policies::save(
        &pool,
        &actor,
        &all,
        None,
        &input("nine years", 3285, vec![]),
    )
    .await
    .unwrap();
    policies::save(
        &pool,
        &actor,
        &all,
        None,
        &input("legal twelve years", 4380, vec![accounts[4]]),
    )
    .await
    .unwrap();
    holds::place(
        &pool,
        &actor,
        &all,
        &holds::HoldInput {
            name: "board contracts".into(),
            reason: "bench".into(),
            account_ids: vec![accounts[2]],
            query: Some("subject:contract".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("\n{count} messages; policies: nine years everywhere, twelve for legal; one hold\n");

    let mut plan = None;
    for (who, grants) in [
        ("administrator", all.clone()),
        (
            "one-archive retention manager",
            Grants::Accounts(vec![accounts[0]]),
        ),
    ] {
        for run in 0..3 {
            let t = Instant::now();
            let p = Plan::current(&pool, &grants).await.unwrap();
            let shown = preview::preview(&pool, &p, 20).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "preview as {who:<30} run {run}: {secs:>6.2} s — {} messages, {:.1} MB, {:.1} MB freed, {} held",
                shown.messages(),
                shown.bytes() as f64 / 1e6,
                shown.freed_bytes() as f64 / 1e6,
                shown.held()
            );
            if grants == all {
                plan = Some((p, shown.messages()));
            }
        }
    }
    let (plan, expected) = plan.unwrap();
    if std::env::var("BENCH_EXPLAIN").is_ok() {
        for line in preview::explain(&pool, &plan).await.unwrap() {
            println!("    {line}");
        }
    }
    if std::env::var("BENCH_SKIP_PURGE").is_ok() {
        return;
    }

    let stop = Arc::new(AtomicBool::new(true));
    let idle = reader(pool.clone(), stop.clone(), 60).await;
    stop.store(false, Ordering::Relaxed);
    let during = tokio::spawn(reader(pool.clone(), stop.clone(), 1));
    let t = Instant::now();
    let report = purge::purge(
        &pool,
        &actor,
        &plan,
        Some(&plan.fingerprint()),
        2000,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let during = during.await.unwrap();
    println!(
        "\npurge: {} messages (preview said {expected}) in {} batches, {secs:.1} s = {:.0} messages/s; {} blobs, {:.1} MB freed",
        report.messages,
        report.batches,
        report.messages as f64 / secs,
        report.collected.blobs,
        report.collected.bytes as f64 / 1e6
    );
    println!(
        "reader (search page of 50): idle p95 {:.1} ms ({} runs), during the purge p95 {:.1} ms ({} runs)",
        percentile(&idle, 0.95).as_secs_f64() * 1e3,
        idle.len(),
        percentile(&during, 0.95).as_secs_f64() * 1e3,
        during.len()
    );
}
