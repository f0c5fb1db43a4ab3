//! "Connect Google account" in a real browser against the fake Google on loopback: the add
//! form's three choices, the connect button's form leaving for the provider (the account page's
//! CSP lets exactly that origin through), the way back, and the account page of a connected
//! account — each at desktop and phone width, light and dark, screenshotted as
//! `test-artifacts/layout-connect-*.png`.

use super::driver::{self, Driver};
use super::layout::check;
use crate::common::auth::{ADMIN, PASSWORD};
use crate::common::fake_google::{self, FakeGoogle};
use crate::common::spawn_app_with;

#[tokio::test]
async fn a_google_account_is_added_and_connected_in_the_browser() {
    if !driver::available() {
        eprintln!("skipped: /usr/bin/chromium and /usr/bin/chromedriver are needed");
        return;
    }
    crate::common::install_tls_provider();
    let google = FakeGoogle::start("alice@example.com").await;
    for n in 0..3 {
        google.deliver(
            format!("From: bob@example.com\r\nTo: alice@example.com\r\nSubject: Browser {n}\r\nMessage-ID: <b{n}@example.com>\r\n\r\nHello\r\n").as_bytes(),
            &["INBOX"],
        );
    }
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("google");
    std::fs::write(&secret, fake_google::CLIENT_SECRET).unwrap();
    let mut used = None;
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        google.configure(s, secret.to_str().unwrap());
        used = Some(s.clone());
    })
    .await;
    let settings = used.unwrap();
    app.set_up_admin().await;
    let chrome = Driver::start().await;
    let b = chrome.browser().await;
    b.goto(&app.url("/login")).await;
    b.fill("input[name=username]", ADMIN).await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;

    b.goto(&app.url("/accounts?add=google")).await;
    b.fill("#add-oauth input[name=name]", "Alice Gmail").await;
    b.click("#add-oauth button[type=submit]").await;
    b.wait_path_where("/accounts/", |p| p.ends_with("?done=created-oauth"))
        .await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE name = 'Alice Gmail'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut problems = Vec::new();
    let mut shots = |p: Vec<String>| problems.extend(p);
    for width in [1366, 390] {
        b.set_width(width, 900).await;
        shots(check(&b, &app, &format!("/accounts/{id}"), "connect-new", width).await);
    }

    // Off to the fake consent page and back, in the browser: the button's redirect must pass
    // the page's form-action policy.
    b.goto(&app.url(&format!("/accounts/{id}"))).await;
    b.click("#connect button").await;
    b.wait_path(&format!("/accounts/{id}?done=connected")).await;
    assert!(
        b.text("#oauth-identity")
            .await
            .contains("alice@example.com")
    );
    assert_eq!(b.text("#oauth-state").await, "connected");
    // One sync, so the page shows a delta position and a ledger line.
    let keys = daygle::secrets::Keys::load(&settings.security, app.data_dir.path()).unwrap();
    let account = daygle::ingest::accounts::get(&app.pool, id).await.unwrap();
    let deps = daygle::ingest::source::SyncDeps {
        pool: &app.pool,
        settings: &settings,
        keys: &keys.sealing,
        heartbeat: None,
    };
    let synced = daygle::ingest::source::sync_account(&deps, &account)
        .await
        .unwrap();
    assert_eq!(synced.archived, 3);

    for (theme, suffix) in [("light", ""), ("dark", "-dark")] {
        sqlx::query("UPDATE users SET theme = $1")
            .bind(theme)
            .execute(&app.pool)
            .await
            .unwrap();
        for width in [1366, 390] {
            b.set_width(width, 900).await;
            for source in ["imap", "google", "microsoft"] {
                shots(
                    check(
                        &b,
                        &app,
                        &format!("/accounts?add={source}"),
                        &format!("connect-form-{source}{suffix}"),
                        width,
                    )
                    .await,
                );
            }
            shots(
                check(
                    &b,
                    &app,
                    &format!("/accounts/{id}"),
                    &format!("connect-account{suffix}"),
                    width,
                )
                .await,
            );
        }
    }
    b.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
