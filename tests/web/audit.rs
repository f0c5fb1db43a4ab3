use daygle::audit::seal::{AuditKey, seal_head};
use daygle::audit::{self, Action, Actor, AuditEvent, Target};
use serde_json::json;

use crate::common::TestApp;
use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};
use crate::common::process::daygle;

fn audit_key(app: &TestApp) -> AuditKey {
    daygle::secrets::Keys::load_audit_key(
        &daygle::config::Settings::default().security,
        &app.data_path(),
    )
    .expect("the server generated an audit key on first run")
}

fn verify_audit(app: &TestApp) -> (bool, String) {
    verify_audit_with(app, &[])
}

fn verify_audit_with(app: &TestApp, extra: &[&str]) -> (bool, String) {
    let out = daygle(&app.data_path())
        .args(["verify", "audit"])
        .args(extra)
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
    let result = daygle::audit::chain::verify(&app.pool, &audit_key(&app), None)
        .await
        .unwrap();
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
    let result = daygle::audit::chain::verify(&app.pool, &audit_key(&app), None)
        .await
        .unwrap();
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

/// The database owner's attack: switch the triggers off, edit a row, recompute the plain
/// SHA-256 chain after it. The seal (HMAC under a key outside the database) still catches it,
/// and a kept checkpoint catches the removal of the seals too.
#[tokio::test]
async fn the_database_owner_cannot_rewrite_the_log_behind_a_seal_or_a_checkpoint() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    app.sign_in(ADMIN, PASSWORD).await;
    app.sign_in(ADMIN, PASSWORD).await;
    let head = seal_head(&app.pool, &audit_key(&app))
        .await
        .unwrap()
        .expect("a head to seal");
    let (ok, out) = verify_audit(&app);
    assert!(ok, "{out}");
    let printed = out
        .lines()
        .find_map(|l| l.strip_prefix("head seal (keep as a checkpoint): "))
        .unwrap_or_else(|| panic!("verify prints the head seal: {out}"))
        .to_string();
    let printed_seq: i64 = printed.split(':').next().unwrap().parse().unwrap();
    assert!(printed_seq >= head.seq, "{printed} vs {head}");
    let (ok, out) = verify_audit_with(&app, &["--since-checkpoint", &printed]);
    assert!(ok && out.contains("still holds"), "{out}");

    let rows: Vec<daygle::audit::chain::Row> = sqlx::query_as(
        "SELECT id, at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash
         FROM audit_log ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let victim = rows[1].id;
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut prev = rows[0].hash.clone();
    for mut row in rows.into_iter().skip(1) {
        if row.id == victim {
            row.username = "someone else".into();
        }
        row.prev_hash = prev;
        row.hash = daygle::audit::chain::hash_row(&row);
        sqlx::query("UPDATE audit_log SET username = $2, prev_hash = $3, hash = $4 WHERE id = $1")
            .bind(row.id)
            .bind(&row.username)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(&mut *tx)
            .await
            .unwrap();
        prev = row.hash;
    }
    tx.commit().await.unwrap();
    let (ok, out) = verify_audit(&app);
    assert!(!ok, "a recomputed chain must not pass the seal: {out}");
    assert!(out.contains("seal does not match"), "{out}");

    // Removing every seal as well leaves a chain that looks whole, but not the checkpoint.
    app.shutdown.cancel();
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_seals")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (ok, out) = verify_audit_with(&app, &["--since-checkpoint", &printed]);
    assert!(!ok, "{out}");
    assert!(out.contains("checkpoint is not in the log"), "{out}");
}
