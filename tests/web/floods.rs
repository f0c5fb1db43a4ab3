//! Unauthenticated floods (issue #9 item 7): no session rows for anonymous requests, refused
//! sign-ins aggregated in the audit log, limits keyed on the real client behind a trusted proxy
//! and on the IPv6 /64, and audited reads that do not hold up everyone else.

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::common::auth::{ADMIN, PASSWORD, csrf_from, spawn_auth_app};
use crate::common::{client, spawn_app_with};

async fn session_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_without_a_cookie_create_no_session_rows() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let before = session_rows(&app.pool).await;
    for path in [
        "/login",
        "/",
        "/audit",
        "/messages",
        "/no-such-page",
        "/setup",
    ] {
        for _ in 0..5 {
            let res = client().get(app.url(path)).send().await.unwrap();
            assert!(res.status().as_u16() < 500, "{path}: {}", res.status());
        }
    }
    // A sign-in form posted with a token from a page is refused when wrong, and creates nothing.
    let c = client();
    let html = c
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_from(&html);
    let res = client()
        .post(app.url("/login"))
        .form(&[
            ("username", ADMIN),
            ("password", "wrong"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a token without its cookie is refused");
    assert_eq!(
        session_rows(&app.pool).await,
        before,
        "anonymous requests wrote session rows"
    );
    // The form still works with its own cookie, and signing in creates exactly one row.
    let res = c
        .post(app.url("/login"))
        .form(&[
            ("username", ADMIN),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(session_rows(&app.pool).await, before + 1);
    assert_eq!(app.page(&c, "/").await.0, 200);
}

#[tokio::test]
async fn refused_sign_ins_are_audited_once_per_address_with_a_count() {
    let app = spawn_app_with(|s| s.security.login_rate_per_minute = 2).await;
    app.set_up_admin().await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(
            app.login(&c, ADMIN, "not the password")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..3], &[401, 401, 429]);
    assert!(statuses[2..].iter().all(|s| *s == 429));
    let url = app.database_url.clone();
    app.stop().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT ip, details FROM audit_log WHERE action = 'login.rate_limited' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "one row for the address, not one per attempt: {rows:?}"
    );
    assert_eq!(rows[0].0, "127.0.0.1");
    assert_eq!(rows[0].1["refused"], 28);
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'login.failure'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        failures, 2,
        "only the attempts that were checked are failures"
    );
    pool.close().await;
}

async fn login_from(app: &crate::common::TestApp, forwarded: &str) -> u16 {
    let c = client();
    let html = c
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_from(&html);
    c.post(app.url("/login"))
        .header("x-forwarded-for", forwarded)
        .form(&[
            ("username", ADMIN),
            ("password", "not it"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_per_ipv6_64() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 2;
        s.server.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    app.set_up_admin().await;
    // Three addresses of one /64 share one budget of two.
    assert_eq!(login_from(&app, "2001:db8:1:2::1").await, 401);
    assert_eq!(login_from(&app, "2001:db8:1:2::2").await, 401);
    assert_eq!(login_from(&app, "2001:db8:1:2:ffff::3").await, 429);
    // Another /64, and an IPv4 client, have budgets of their own; the client cannot choose its
    // address by writing more to the left of the header.
    assert_eq!(login_from(&app, "2001:db8:1:3::1").await, 401);
    assert_eq!(login_from(&app, "2001:db8:1:2::9, 192.0.2.10").await, 401);
    let ips: Vec<String> =
        sqlx::query_scalar("SELECT ip FROM audit_log WHERE action = 'login.failure' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        ips,
        [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:3::1",
            "192.0.2.10"
        ],
        "the audit log names the client, not the proxy"
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(|s| s.security.login_rate_per_minute = 2).await;
    app.set_up_admin().await;
    assert_eq!(login_from(&app, "192.0.2.1").await, 401);
    assert_eq!(login_from(&app, "192.0.2.2").await, 401);
    assert_eq!(
        login_from(&app, "192.0.2.3").await,
        429,
        "a new header is not a new budget"
    );
    let ips: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT ip FROM audit_log WHERE action = 'login.failure'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(ips, ["127.0.0.1"]);
}

/// The audit chain's advisory lock (`audit::CHAIN_LOCK`).
const CHAIN_LOCK: i64 = 0x6461_7967_6c65_4155;

#[tokio::test]
async fn audited_reads_waiting_for_the_log_do_not_hold_up_other_pages() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.database.max_connections = 5;
        s.database.acquire_timeout_secs = 3;
    })
    .await;
    let admin = app.set_up_admin().await;
    // Someone holds the audit log (a long change, or a flood of writers ahead of us).
    let mut holder = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(CHAIN_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let searches: Vec<_> = (0..12)
        .map(|i| {
            let c = admin.clone();
            let url = app.url(&format!("/messages?q=invoice{i}"));
            tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile a page that writes no audit row answers at once.
    let started = Instant::now();
    let (status, _) = app.page(&admin, "/profile").await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(2),
        "/profile took {took:?} while reads queued for the audit log"
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(CHAIN_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    for s in searches {
        assert_eq!(s.await.unwrap(), 200);
    }
    let searched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'mail.search'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(searched, 12, "every search is still recorded");
    let key = daygle::secrets::Keys::load_audit_key(
        &daygle::config::Settings::default().security,
        &app.data_path(),
    )
    .unwrap();
    let v = daygle::audit::chain::verify(&app.pool, &key, None)
        .await
        .unwrap();
    assert_eq!(v.broken, None, "the chain still holds");
}
