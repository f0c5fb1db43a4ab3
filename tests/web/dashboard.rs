//! The dashboard tells the truth (issue #17): administrators see what is failing first, with
//! the reason and a link; readers see their archives and recent mail and nothing about the
//! infrastructure; a new installation gets a checklist; chart tables match the archive.

use crate::common::TestApp;
use crate::common::auth::PASSWORD;
use crate::common::mail::{Mail, archive, build};

/// An app without the sync scheduler (the test sets worker state itself) and with clamd
/// configured at a port where nothing listens.
async fn app() -> TestApp {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    crate::common::spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        s.clamav.enabled = true;
        s.clamav.address = format!("127.0.0.1:{dead_port}");
        s.clamav.timeout_secs = 2;
    })
    .await
}

async fn fail_account(app: &TestApp, account: i64, reason: &str) {
    sqlx::query(
        "INSERT INTO workers (name, account_id, state, last_error, last_error_at, consecutive_failures)
         VALUES ($1, $2, 'backoff', $3, now(), 4)",
    )
    .bind(format!("sync:account:{account}"))
    .bind(account)
    .bind(reason)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// The text of the element with `id` (up to its closing tag of the same name), roughly.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in page"));
    let rest = &html[start..];
    let end = rest
        .find("</section>")
        .or_else(|| rest.find("</li>"))
        .unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test]
async fn an_administrator_sees_the_failing_account_and_the_dead_scanner_first() {
    let app = app().await;
    let admin = app.set_up_admin().await;
    let broken = app.insert_account("broken@example.org").await;
    let fine = app.insert_account("fine@example.org").await;
    fail_account(&app, broken, "LOGIN failed: authentication failed").await;
    archive(&app, fine, "INBOX", vec![build(&Mail::default())]).await;

    let (status, html) = app.page(&admin, "/").await;
    assert_eq!(status, 200);
    let health = section(&html, "health");
    assert!(health.contains("Archiving needs attention"), "{health}");
    let failing = section(&html, "health")
        .split("failing-account")
        .nth(1)
        .expect("a failing account line");
    assert!(
        failing.contains(&format!("href=\"/accounts/{broken}\"")),
        "{failing}"
    );
    assert!(failing.contains("broken@example.org"), "{failing}");
    assert!(
        failing.contains("LOGIN failed: authentication failed"),
        "{failing}"
    );
    assert!(!health.contains("fine@example.org"), "{health}");
    let scanner = section(&html, "scanner-state");
    assert!(scanner.contains("class=\"bad\""), "{scanner}");
    assert!(scanner.contains("Virus scanner unreachable"), "{scanner}");
    assert!(html.contains("id=\"quarantine-waiting\""));
    // Totals come from the archive.
    assert!(section(&html, "total-messages").contains(">1<"));
    assert!(section(&html, "total-accounts").contains(">2<"));
    // One account, one message, archived today: the chart's table says so.
    let chart = section(&html, "chart-archived");
    assert!(chart.contains("<svg"), "{chart}");
    assert!(chart.contains("<title id=\"chart-archived-t\">"), "{chart}");
    assert!(chart.contains("1 in total"), "{chart}");
    // Two accounts and only the administrator: the checklist still asks for users.
    let checklist = section(&html, "setup-checklist");
    assert!(checklist.contains("Add the people who read the archive"));

    // When the account recovers the page says all is well (apart from the scanner).
    sqlx::query(
        "UPDATE workers SET consecutive_failures = 0, last_error = NULL, last_success_at = now()",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (_, html) = app.page(&admin, "/").await;
    assert!(!html.contains("failing-account"));
}

#[tokio::test]
async fn a_reader_sees_their_archives_and_recent_mail_and_no_infrastructure() {
    let app = app().await;
    app.set_up_admin().await;
    let sales = app.insert_account("sales@example.org").await;
    let board = app.insert_account("board@example.org").await;
    fail_account(&app, board, "LOGIN failed").await;
    let undated = b"From: a@example.org\r\nSubject: No date here\r\n\r\nbody\r\n".to_vec();
    archive(
        &app,
        sales,
        "INBOX",
        vec![
            build(&Mail {
                subject: "Quarterly figures",
                ..Mail::default()
            }),
            undated,
        ],
    )
    .await;
    archive(
        &app,
        board,
        "INBOX",
        vec![build(&Mail {
            subject: "Board secret",
            ..Mail::default()
        })],
    )
    .await;
    app.create_user("reader", "Read Only", &[sales]).await;
    let reader = app.sign_in("reader", PASSWORD).await;

    let (status, html) = app.page(&reader, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("action=\"/messages\""), "a search box");
    let archives = section(&html, "archive-summary");
    assert!(
        archives.contains("sales@example.org") && archives.contains(">2<"),
        "{archives}"
    );
    assert!(!html.contains("board@example.org"));
    let recent = section(&html, "recent-mail");
    assert!(recent.contains("Quarterly figures"), "{recent}");
    assert!(!recent.contains("Board secret"), "{recent}");
    assert!(
        recent.contains("No date here") && recent.contains("undated"),
        "{recent}"
    );
    for infrastructure in [
        "Virus scanner",
        "id=\"health\"",
        "Storage",
        "/metrics",
        "Schema",
        "LOGIN failed",
    ] {
        assert!(
            !html.contains(infrastructure),
            "reader sees {infrastructure}"
        );
    }
}

#[tokio::test]
async fn a_new_installation_gets_a_checklist_and_honest_empty_charts() {
    let app = app().await;
    let admin = app.set_up_admin().await;
    let (_, html) = app.page(&admin, "/?days=365").await;
    let checklist = section(&html, "setup-checklist");
    assert!(checklist.contains("href=\"/accounts\""), "{checklist}");
    assert!(!checklist.contains("done"), "{checklist}");
    assert!(html.contains("Nothing in this period yet"));
    assert!(html.contains("href=\"/?days=365\" aria-current=\"page\""));
    // The old dashboard greeted a new administrator with a green "nothing shared with you".
    assert!(!html.contains("No archive account has been shared"));
}
