//! Live sync progress (issue #17): the account page and the dashboard follow a running sync
//! without a reload, under the page's CSP (script from /static only, fetch to 'self').

use std::time::{Duration, Instant};

use super::driver::{self, Browser, Driver};
use crate::common::auth::{ADMIN, PASSWORD};
use crate::common::spawn_app_with;

async fn wait_for_text(b: &Browser, css: &str, expected: &str) -> String {
    let start = Instant::now();
    loop {
        let text = b.text(css).await;
        if text.contains(expected) || start.elapsed() > Duration::from_secs(20) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn the_account_page_and_the_dashboard_follow_a_running_sync() {
    if !driver::available() {
        eprintln!("skipped: /usr/bin/chromium and /usr/bin/chromedriver are needed");
        return;
    }
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
    })
    .await;
    app.set_up_admin().await;
    let id = app.insert_account("sales@example.org").await;
    let chrome = Driver::start().await;
    let b = chrome.browser().await;
    b.set_width(1366, 900).await;
    b.goto(&app.url("/login")).await;
    b.fill("input[name=username]", ADMIN).await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
    let before = b.text(&format!("tr[data-live-row=\"{id}\"]")).await;
    assert!(before.contains("Waiting for the first sync"), "{before}");

    b.goto(&app.url(&format!("/accounts/{id}"))).await;
    assert!(
        b.text("#sync-status")
            .await
            .contains("Waiting for the first sync")
    );
    sqlx::query(
        "INSERT INTO workers (name, account_id, state, activity, last_run_at)
         VALUES ($1, $2, 'running', 'INBOX: 5 of 10 new messages', now())",
    )
    .bind(format!("sync:account:{id}"))
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let text = wait_for_text(&b, "#sync-status", "Syncing: INBOX: 5 of 10 new messages").await;
    assert!(
        text.contains("Syncing: INBOX: 5 of 10 new messages"),
        "{text}"
    );
    b.screenshot("live-account-running-1366").await;

    b.goto(&app.url("/")).await;
    sqlx::query(
        "UPDATE workers SET state = 'idle', activity = NULL, last_success_at = now(),
           next_run_at = now() + interval '5 minutes'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let row = format!("tr[data-live-row=\"{id}\"]");
    let text = wait_for_text(&b, &row, "next sync in 4 min").await;
    assert!(
        text.contains("Last synced") && text.contains("next sync in 4 min"),
        "{text}"
    );
    b.screenshot("live-dashboard-idle-1366").await;
    b.close().await;
}
