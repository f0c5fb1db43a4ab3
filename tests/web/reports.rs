//! Reports (issue #17): every figure equals a count made directly in the database, archive
//! figures stop at the reader's grants (in SQL), and the people reports need every archive.

use crate::common::auth::PASSWORD;
use crate::common::mail::{Mail, archive, build};
use crate::common::{TestApp, spawn_app_with};

async fn csv(app: &TestApp, c: &reqwest::Client, path: &str) -> (u16, Vec<Vec<String>>) {
    let res = c.get(app.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let rows = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (status, rows)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn report_figures_equal_direct_counts_and_stop_at_the_readers_grants() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
    })
    .await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("sales@example.org").await;
    let board = app.insert_account("board@example.org").await;
    let mail = |subject: &'static str, from: &'static str, to: &'static str| {
        build(&Mail {
            subject,
            from: ("Sender", from),
            to,
            message_id: subject,
            ..Mail::default()
        })
    };
    let shared = mail(
        "shared",
        "carol@example.org",
        "sales@example.org, board@example.org",
    );
    archive(
        &app,
        sales,
        "INBOX",
        vec![
            shared.clone(),
            mail("one", "carol@example.org", "sales@example.org"),
            mail("two", "dave@example.org", "sales@example.org"),
        ],
    )
    .await;
    archive(
        &app,
        sales,
        "Sent",
        vec![mail("three", "sales@example.org", "erin@example.org")],
    )
    .await;
    archive(
        &app,
        board,
        "INBOX",
        vec![
            shared,
            mail("secret", "mallory@example.org", "board@example.org"),
        ],
    )
    .await;

    let (status, html) = app.page(&admin, "/reports").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Messages archived per month, by account") && html.contains("<svg"),
        "{html}"
    );
    assert!(
        html.contains("Access review") && html.contains("User activity"),
        "{html}"
    );

    // Volume per account and folder.
    let (_, volume) = csv(&app, &admin, "/reports/volume.csv").await;
    assert_eq!(volume.len(), 3, "{volume:?}");
    for row in &volume {
        let direct: (i64, i64) = sqlx::query_as(
            "SELECT count(*), sum(m.size)::bigint FROM messages m JOIN accounts a ON a.id = m.account_id
             WHERE a.name = $1 AND m.folder = $2",
        )
        .bind(&row[1])
        .bind(&row[2])
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(
            (
                row[3].parse::<i64>().unwrap(),
                row[4].parse::<i64>().unwrap()
            ),
            direct,
            "{row:?}"
        );
    }
    // Verdicts.
    let (_, verdicts) = csv(&app, &admin, "/reports/verdicts.csv").await;
    let total: i64 = verdicts.iter().map(|r| r[2].parse::<i64>().unwrap()).sum();
    assert_eq!(total, count(&app, "SELECT count(*) FROM messages").await);
    // Storage: the shared message is in both accounts' rows, once in the total.
    let (_, html) = app.page(&admin, "/reports").await;
    let all_blobs = count(&app, "SELECT sum(octet_length(zstd))::bigint FROM blobs").await;
    assert!(
        html.contains(&format!(
            "{} stored in all",
            daygle::render::format::size(all_blobs as u64)
        )),
        "{html}"
    );
    let (_, storage) = csv(&app, &admin, "/reports/storage.csv").await;
    assert_eq!(storage.len(), 2);
    assert_eq!(
        storage
            .iter()
            .find(|r| r[0] == "sales@example.org")
            .unwrap()[1],
        "4"
    );
    // Top senders and recipients of one archive.
    let (_, senders) = csv(
        &app,
        &admin,
        &format!("/reports/senders.csv?account={sales}"),
    )
    .await;
    assert_eq!(senders[0][0], "carol@example.org");
    assert_eq!(senders[0][1], "2");
    assert_eq!(
        senders.len() as i64,
        count(
            &app,
            &format!("SELECT count(DISTINCT from_addr) FROM messages WHERE account_id = {sales}")
        )
        .await
    );
    let (_, recipients) = csv(
        &app,
        &admin,
        &format!("/reports/recipients.csv?account={sales}"),
    )
    .await;
    assert_eq!(
        recipients[0],
        vec![
            "sales@example.org".to_string(),
            "3".into(),
            recipients[0][2].clone()
        ]
    );
    // People: sign-ins from the audit log; a user who never signed in is flagged.
    app.create_user("reader", "Read Only", &[sales]).await;
    sqlx::query("INSERT INTO users (username, password_hash, last_login_at) VALUES ('olduser', 'x', now() - interval '200 days')")
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, activity) = csv(&app, &admin, "/reports/activity.csv").await;
    let admin_row = activity.iter().find(|r| r[0] == "admin").unwrap();
    assert_eq!(
        admin_row[1].parse::<i64>().unwrap(),
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'login.success' AND username = 'admin'"
        )
        .await
    );
    let (_, access) = csv(&app, &admin, "/reports/access.csv").await;
    let flag = |name: &str| {
        access
            .iter()
            .find(|r| r[0] == name)
            .unwrap()
            .last()
            .unwrap()
            .clone()
    };
    assert_eq!(flag("reader"), "never signed in");
    assert_eq!(flag("olduser"), "stale");
    assert_eq!(flag("admin"), "");

    // A reporter who may read only the sales archive: board's mail is not counted anywhere,
    // even when asked for by id, and the people reports are not theirs.
    sqlx::query("INSERT INTO roles (name, permissions) VALUES ('Reporter', ARRAY['view_reports'])")
        .execute(&app.pool)
        .await
        .unwrap();
    app.create_user("reporter", "Reporter", &[sales]).await;
    let reporter = app.sign_in("reporter", PASSWORD).await;
    let (status, html) = app.page(&reporter, "/reports").await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("Access review") && !html.contains("User activity"),
        "{html}"
    );
    let (_, storage) = csv(&app, &reporter, "/reports/storage.csv").await;
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert_eq!(storage[0][0], "sales@example.org");
    let (_, volume) = csv(&app, &reporter, "/reports/volume.csv").await;
    assert!(
        volume.iter().all(|r| r[1] == "sales@example.org"),
        "{volume:?}"
    );
    let (_, senders) = csv(
        &app,
        &reporter,
        &format!("/reports/senders.csv?account={board}"),
    )
    .await;
    assert!(senders.is_empty(), "{senders:?}");
    let (_, verdicts) = csv(&app, &reporter, "/reports/verdicts.csv").await;
    assert_eq!(
        verdicts
            .iter()
            .map(|r| r[2].parse::<i64>().unwrap())
            .sum::<i64>(),
        4
    );
    assert_eq!(csv(&app, &reporter, "/reports/access.csv").await.0, 404);
    assert_eq!(csv(&app, &reporter, "/reports/activity.csv").await.0, 404);
}
