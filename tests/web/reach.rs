//! `/audit` and `/workers` for a user whose grants cover one archive (#9): they see the rows
//! about that archive, rows about every archive and their own, nothing about other archives
//! and nothing that concerns no archive (other people's sign-ins, user administration).

use crate::common::TestApp;
use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};
use crate::common::mail::{Mail, archive, build};

/// (username, action, target) of each row of an audit page.
fn audit_rows(html: &str) -> Vec<(String, String, String)> {
    html.split("<tr><td>")
        .skip(1)
        .filter_map(|row| {
            let cells: Vec<&str> = row.split("</td><td").collect();
            let text = |i: usize| -> Option<String> {
                let c = cells.get(i)?;
                let c = c.split_once('>').map_or(*c, |(_, rest)| rest);
                Some(
                    c.replace("<code>", "")
                        .replace("</code>", "")
                        .trim()
                        .to_string(),
                )
            };
            Some((text(2)?, text(3)?, text(4)?))
        })
        .collect()
}

fn has(rows: &[(String, String, String)], user: &str, action: &str, target: &str) -> bool {
    rows.iter()
        .any(|(u, a, t)| u == user && a == action && (target.is_empty() || t == target))
}

async fn archive_auditor(app: &TestApp, own: i64) {
    sqlx::query(
        "INSERT INTO roles (name, permissions)
         VALUES ('Archive auditor', ARRAY['view_audit', 'view_workers'])",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.create_user("auditor-one", "Archive auditor", &[own])
        .await;
}

#[tokio::test]
async fn a_one_archive_auditor_sees_only_audit_rows_about_their_archive() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let own = app.insert_account("Own mailbox").await;
    let foreign = app.insert_account("Foreign mailbox").await;
    let own_msg = archive(&app, own, "INBOX", vec![build(&Mail::default())]).await[0];
    let foreign_msg = archive(&app, foreign, "INBOX", vec![build(&Mail::default())]).await[0];
    archive_auditor(&app, own).await;
    let own_reader = app.create_user("reader-own", "Read Only", &[own]).await;
    let foreign_reader = app
        .create_user("reader-foreign", "Read Only", &[foreign])
        .await;

    // Reads of each archive's mail, searches over all / over the foreign archive, sign-ins.
    for id in [own_msg, foreign_msg] {
        assert_eq!(app.page(&admin, &format!("/messages/{id}")).await.0, 200);
    }
    assert_eq!(app.page(&admin, "/messages?q=hello").await.0, 200);
    let reader = app.sign_in("reader-foreign", PASSWORD).await;
    assert_eq!(app.page(&reader, "/messages?q=hello").await.0, 200);
    let auditor = app.sign_in("auditor-one", PASSWORD).await;

    let (status, all) = app.page(&admin, "/audit").await;
    assert_eq!(status, 200);
    let all = audit_rows(&all);
    let foreign_view = ("mail.view", format!("message:{foreign_msg}"));
    // The rows exist (the administrator sees every one), so their absence below means hidden.
    assert!(has(&all, ADMIN, foreign_view.0, &foreign_view.1), "{all:?}");
    assert!(has(&all, "reader-foreign", "mail.search", ""), "{all:?}");
    assert!(has(&all, ADMIN, "setup.first_admin", ""), "{all:?}");
    assert!(has(&all, "reader-foreign", "login.success", ""), "{all:?}");
    let foreign_grant = format!("user:{foreign_reader}");
    assert!(
        all.iter()
            .any(|r| r.1 == "user.create" && r.2 == foreign_grant),
        "{all:?}"
    );

    let (status, html) = app.page(&auditor, "/audit").await;
    assert_eq!(status, 200);
    let seen = audit_rows(&html);
    // About their archive, about every archive, and their own rows.
    assert!(
        has(&seen, ADMIN, "mail.view", &format!("message:{own_msg}")),
        "{seen:?}"
    );
    assert!(
        has(&seen, ADMIN, "mail.search", ""),
        "a search over every archive: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.1 == "user.create" && r.2 == format!("user:{own_reader}")),
        "access granted to their archive: {seen:?}"
    );
    assert!(has(&seen, "auditor-one", "login.success", ""), "{seen:?}");
    // Nothing about the other archive, nothing that concerns no archive.
    assert!(
        !has(&seen, ADMIN, foreign_view.0, &foreign_view.1),
        "{seen:?}"
    );
    assert!(!has(&seen, "reader-foreign", "mail.search", ""), "{seen:?}");
    assert!(!seen.iter().any(|r| r.2 == foreign_grant), "{seen:?}");
    assert!(
        !has(&seen, "reader-foreign", "login.success", ""),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|r| r.1 == "setup.first_admin"), "{seen:?}");

    // The CSV export applies the same rule.
    let csv = auditor
        .get(app.url("/audit.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains(&format!("message:{own_msg}")), "{csv}");
    assert!(!csv.contains(&format!("message:{foreign_msg}")), "{csv}");
    assert!(!csv.contains("reader-foreign"), "{csv}");
}

#[tokio::test]
async fn a_one_archive_viewer_of_workers_sees_only_their_archives_workers() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let own = app.insert_account("Own mailbox").await;
    let foreign = app.insert_account("Foreign mailbox").await;
    archive_auditor(&app, own).await;
    for (name, account, error) in [
        (
            format!("sync:account:{own}"),
            Some(own),
            "own server refused",
        ),
        (
            format!("sync:account:{foreign}"),
            Some(foreign),
            "foreign server refused",
        ),
        (
            "retention".to_string(),
            None,
            "could not purge Foreign mailbox",
        ),
    ] {
        sqlx::query(
            "INSERT INTO workers (name, account_id, state, last_error, consecutive_failures)
             VALUES ($1, $2, 'backoff', $3, 1)",
        )
        .bind(&name)
        .bind(account)
        .bind(error)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let (status, all) = app.page(&admin, "/workers").await;
    assert_eq!(status, 200, "{all}");
    for text in [
        "own server refused",
        "foreign server refused",
        "could not purge",
    ] {
        assert!(all.contains(text), "the administrator sees {text}");
    }
    let auditor = app.sign_in("auditor-one", PASSWORD).await;
    let (status, html) = app.page(&auditor, "/workers").await;
    assert_eq!(status, 200);
    assert!(html.contains("own server refused"), "{html}");
    assert!(!html.contains("foreign server refused"), "{html}");
    assert!(!html.contains("Foreign mailbox"), "{html}");
    assert!(!html.contains("could not purge"), "{html}");

    let status: serde_json::Value = auditor
        .get(app.url("/workers/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = status["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![own], "{status}");
}
