//! `/logs` (issue #17): an administrator without shell access reads why an account fails,
//! filtered by level, source and account; never a secret; readers are refused.

use crate::common::auth::{PASSWORD, spawn_auth_app};

#[tokio::test]
async fn an_administrator_reads_an_accounts_failure_in_the_logs_without_its_secrets() {
    daygle::telemetry::init("text", "info");
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    // What the scheduler logs when a pass fails, with a field that must never be shown.
    tracing::warn!(
        target: "daygle::ingest::scheduler",
        account = "logs-test-sales",
        error = "the server refused the sign-in: check the user name and password",
        password = "logs-test-hunter2",
        "sync pass failed"
    );
    tracing::info!(target: "daygle::ingest::scheduler", account = "logs-test-other", "sync pass done");

    let (status, html) = app.page(&admin, "/logs?account=logs-test-sales").await;
    assert_eq!(status, 200);
    assert!(html.contains("sync pass failed"), "{html}");
    assert!(html.contains("check the user name and password"), "{html}");
    assert!(html.contains("password=[hidden]"), "{html}");
    assert!(!html.contains("logs-test-hunter2"), "{html}");
    assert!(
        !html.contains("logs-test-other"),
        "another account's event: {html}"
    );

    let (_, warnings) = app.page(&admin, "/logs?level=warn&source=sync").await;
    assert!(warnings.contains("logs-test-sales"), "{warnings}");
    assert!(
        !warnings.contains("logs-test-other"),
        "an info event: {warnings}"
    );
    let (_, other) = app
        .page(&admin, "/logs?source=web&account=logs-test-sales")
        .await;
    assert!(!other.contains("sync pass failed"), "{other}");

    let res = admin
        .get(app.url("/logs?account=logs-test-sales&format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let csv = res.text().await.unwrap();
    assert!(
        csv.starts_with("time,level,source,account,message,fields"),
        "{csv}"
    );
    assert!(
        csv.contains("warn,sync,logs-test-sales,sync pass failed"),
        "{csv}"
    );
    assert!(!csv.contains("logs-test-hunter2"), "{csv}");

    let (_, dashboard) = app.page(&admin, "/").await;
    assert!(
        dashboard.contains("href=\"/logs?level=warn\""),
        "linked from the cockpit"
    );

    app.create_user("reader", "Read Only", &[]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    assert_eq!(app.page(&reader, "/logs").await.0, 403);
}
