//! One heavy e-mail must not stall the UI (issue #9 item 8): a message of BENCH_IMAGES (default
//! 5,000) inline `cid:` images of BENCH_IMAGE_BYTES (default 8,000, so ~40 MB) is opened by
//! BENCH_READERS (default 10) readers at once — each loads the body frame and every inline image
//! it links (at most `render::html::MAX_INLINE_IMAGES`) — while a probe times other pages.
//! Prints figures; asserts nothing.
//!
//! cargo bench --bench inline     (uses DATABASE_URL, or a throwaway cluster)

#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daygle::ingest::pipeline::{self, Batch, Incoming};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = html[start..].find('"').expect("quote") + start;
    html[start..end].to_string()
}

#[tokio::main]
async fn main() {
    let images = env("BENCH_IMAGES", 5_000);
    let image_bytes = env("BENCH_IMAGE_BYTES", 8_000);
    let readers = env("BENCH_READERS", 10);

    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = daygle::config::Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = daygle::config::Secret::new(pg::fresh_database().await);
    settings.storage.data_dir = data_dir.path().display().to_string();
    settings.security.login_rate_per_minute = 10_000;
    let app = daygle::App::build(settings).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let pool = app.state().pool.clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let html = client
        .get(format!("{base}/setup"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let password = "correct horse battery staple";
    let res = client
        .post(format!("{base}/setup"))
        .form(&[
            ("username", "admin"),
            ("email", "admin@example.org"),
            ("password", password),
            ("password_confirm", password),
            ("csrf_token", &csrf_from(&html)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "setup");

    let account: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (name, kind) VALUES ('heavy', 'imap') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let started = Instant::now();
    let mut body = String::from("<p>Catalogue</p>");
    let mut b = mail_builder::MessageBuilder::new()
        .from(("Catalogue", "catalogue@example.org"))
        .to("team@example.org")
        .subject("Heavy catalogue")
        .message_id("heavy@example.org");
    for i in 0..images {
        body.push_str(&format!("<img src=\"cid:img{i}@example.org\">"));
        // Incompressible-ish bytes so the stored blob is as large as the message.
        let bytes: Vec<u8> = (0..image_bytes)
            .map(|j| ((i * 7919 + j * 104_729) % 251) as u8)
            .collect();
        b = b.inline("image/png", format!("img{i}@example.org"), bytes);
    }
    let raw = b.html_body(body).write_to_vec().unwrap();
    let size = raw.len();
    pipeline::store(
        &pool,
        3,
        Batch {
            account_id: account,
            folder: "INBOX".into(),
            uidvalidity: Some(1),
            messages: vec![Incoming {
                uid: Some(1),
                raw,
                internal_date: None,
                flags: Vec::new(),
            }],
            ledger: Vec::new(),
            advance_to: Some(1),
        },
    )
    .await
    .expect("store");
    let id: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE account_id = $1")
        .bind(account)
        .fetch_one(&pool)
        .await
        .unwrap();
    println!(
        "message: {images} inline images, {:.1} MB, archived in {}",
        size as f64 / 1e6,
        ms(started.elapsed())
    );

    // The probe: other pages, every 50 ms, while the readers work.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for path in ["/messages", "/profile"] {
                    let t = Instant::now();
                    let res = client.get(format!("{base}{path}")).send().await.unwrap();
                    assert_eq!(res.status(), 200, "{path}");
                    res.bytes().await.unwrap();
                    times.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            times
        })
    };
    let baseline_wait = tokio::time::sleep(Duration::from_millis(500));
    baseline_wait.await;

    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let body = client
                    .get(format!("{base}/messages/{id}/body"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let body_time = t.elapsed();
                let links: Vec<String> = body
                    .split("src=\"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next())
                    .filter(|s| s.contains("/cid/"))
                    .map(str::to_string)
                    .collect();
                let mut image_times = Vec::new();
                for chunk in links.chunks(6) {
                    let fetches = chunk.iter().map(|link| {
                        let (client, url) = (client.clone(), format!("{base}{link}"));
                        async move {
                            let t = Instant::now();
                            let res = client.get(url).send().await.unwrap();
                            assert_eq!(res.status(), 200);
                            res.bytes().await.unwrap();
                            t.elapsed()
                        }
                    });
                    image_times.extend(futures::future::join_all(fetches).await);
                }
                (body_time, links.len(), image_times)
            })
        })
        .collect();
    let mut bodies = Vec::new();
    let mut image_times = Vec::new();
    let mut linked = 0;
    for t in tasks {
        let (body, n, times) = t.await.unwrap();
        bodies.push(body);
        linked = n;
        image_times.extend(times);
    }
    let readers_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut probe_times = probe.await.unwrap();
    bodies.sort();
    image_times.sort();
    probe_times.sort();
    println!(
        "{readers} readers: all done in {}; body frame p50 {} / max {}; body links {linked} of {images} images",
        ms(readers_time),
        ms(percentile(&bodies, 0.5)),
        ms(percentile(&bodies, 1.0)),
    );
    println!(
        "inline images: {} requests, p50 {}, p95 {}, max {}",
        image_times.len(),
        ms(percentile(&image_times, 0.5)),
        ms(percentile(&image_times, 0.95)),
        ms(percentile(&image_times, 1.0)),
    );
    println!(
        "other pages meanwhile (/messages, /profile): {} requests, p50 {}, p95 {}, max {}",
        probe_times.len(),
        ms(percentile(&probe_times, 0.5)),
        ms(percentile(&probe_times, 0.95)),
        ms(percentile(&probe_times, 1.0)),
    );
    shutdown.cancel();
    let _ = server.await;
}
