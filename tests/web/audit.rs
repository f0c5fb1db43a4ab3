use daygle::audit::{self, Action, Actor, AuditEvent, Target};
use serde_json::json;

use crate::common::TestApp;
use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};
use crate::common::process::daygle;

fn verify_audit(app: &TestApp) -> (bool, String) {
    let out = daygle(&app.data_path())
        .args(["verify", "audit"])
        .env("DAYGLE__DATABASE__URL", &app.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", app.data_path())
        .output()
        .expect("run daygle verify audit");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_audit_log_refuses_updates_deletes_and_truncation() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    for sql in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql).execute(&app.pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn verify_audit_passes_an_intact_chain_and_names_the_first_tampered_row() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    app.sign_in(ADMIN, PASSWORD).await;
    app.login(&crate::common::client(), ADMIN, "wrong password here")
        .await;
    let (ok, out) = verify_audit(&app);
    assert!(ok, "{out}");
    assert!(out.contains("intact"), "{out}");

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(ids.len() >= 3);
    let victim = ids[1];
    // The database owner can get past the trigger; the chain still tells.
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET username = 'someone else' WHERE id = $1")
        .bind(victim)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (ok, out) = verify_audit(&app);
    assert!(!ok, "a tampered chain must fail: {out}");
    assert!(out.contains(&format!("BROKEN at entry {victim}")), "{out}");
}

#[tokio::test]
async fn a_deleted_row_breaks_the_link_of_the_row_after_it() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    app.sign_in(ADMIN, PASSWORD).await;
    app.sign_in(ADMIN, PASSWORD).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE id = $1")
        .bind(ids[1])
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let result = daygle::audit::chain::verify(&app.pool).await.unwrap();
    assert_eq!(result.broken.map(|b| b.id), Some(ids[2]));
}

#[tokio::test]
async fn concurrent_audit_writers_still_form_one_chain() {
    let app = spawn_auth_app().await;
    let writers = (0..20).map(|i| {
        let pool = app.pool.clone();
        async move {
            audit::record_now(
                &pool,
                &AuditEvent::by(&Actor::cli(), Action::MailSearch).details(json!({ "n": i })),
            )
            .await
            .unwrap();
        }
    });
    futures::future::join_all(writers).await;
    let result = daygle::audit::chain::verify(&app.pool).await.unwrap();
    assert_eq!(result.broken, None);
    assert_eq!(result.rows, 20);
}

#[tokio::test]
async fn the_audit_page_filters_by_action_and_exports_csv_without_formula_injection() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    // A hostile username attempt lands in the log verbatim.
    app.login(
        &crate::common::client(),
        "=HYPERLINK(\"http://evil\")",
        "whatever password",
    )
    .await;
    let (status, html) = app.page(&admin, "/audit?action=login").await;
    assert_eq!(status, 200);
    assert!(html.contains("login.failure"));
    assert!(
        !html.contains("setup.first_admin"),
        "filtered to login actions"
    );
    let csv = admin
        .get(app.url("/audit.csv?action=login"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let body = csv.text().await.unwrap();
    assert!(body.starts_with("id,at,username"));
    assert!(
        body.contains("\"'=HYPERLINK("),
        "formula cells are neutralised: {body}"
    );
    assert!(!body.contains(",\"=HYPERLINK"));
}

#[tokio::test]
async fn auditors_read_the_audit_log_but_read_only_users_do_not() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    app.create_user("auditor", "Auditor", &[]).await;
    app.create_user("reader", "Read Only", &[]).await;
    let auditor = app.sign_in("auditor", PASSWORD).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    assert_eq!(app.page(&auditor, "/audit").await.0, 200);
    assert_eq!(app.page(&reader, "/audit").await.0, 403);
    assert_eq!(
        app.page(&auditor, "/users").await.0,
        403,
        "auditors change nothing"
    );
}

#[tokio::test]
async fn the_audit_page_shows_a_page_at_a_time_newest_first_with_a_link_to_older_entries() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    for i in 0..15 {
        audit::record_now(
            &app.pool,
            // The target numbers the rows: step 0 is `message:100`, step 14 `message:114`.
            &AuditEvent::by(&Actor::cli(), Action::MailExport).target(Target::Message(100 + i)),
        )
        .await
        .unwrap();
    }
    app.submit(
        &admin,
        "/profile",
        "/profile/preferences",
        &[
            ("timezone", "UTC"),
            ("date_format", "%Y-%m-%d %H:%M"),
            ("page_size", "10"),
            ("theme", "auto"),
        ],
    )
    .await;
    let (_, first) = app.page(&admin, "/audit?action=mail.export").await;
    assert_eq!(first.matches("<code>mail.export").count(), 10);
    assert!(first.contains("message:114") && !first.contains("message:104"));
    let marker = "&amp;before=";
    let start = first.find(marker).expect("a link to older entries") + marker.len();
    let before: String = first[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (_, second) = app
        .page(
            &admin,
            &format!("/audit?action=mail.export&before={before}"),
        )
        .await;
    assert_eq!(second.matches("<code>mail.export").count(), 5);
    assert!(second.contains("message:104") && !second.contains("message:105"));
    assert!(
        !second.contains(marker),
        "no older entries after the last page"
    );
}
