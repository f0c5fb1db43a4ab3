use crate::common::auth::spawn_auth_app;
use crate::common::mail::{self, Mail};

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect(name) + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn old(subject: &str, id: &str) -> Vec<u8> {
    mail::build(&Mail {
        subject,
        message_id: id,
        date: 1_262_304_000, // 2010-01-01
        ..Mail::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_sets_a_policy_holds_one_account_previews_and_purges_in_the_ui() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (sales, legal) = (
        app.insert_account("Sales").await,
        app.insert_account("Legal").await,
    );
    mail::archive(
        &app,
        sales,
        "INBOX",
        vec![old("quote", "q1@x"), old("order", "o1@x")],
    )
    .await;
    let held = mail::archive(&app, legal, "INBOX", vec![old("brief", "b1@x")]).await;

    let res = app
        .submit(
            &admin,
            "/retention",
            "/retention/policies",
            &[("name", "seven years"), ("keep_days", "2555")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let legal_id = legal.to_string();
    let res = app
        .submit(
            &admin,
            "/holds",
            "/holds",
            &[
                ("name", "lawsuit"),
                ("reason", "Smith v. Acme"),
                ("account", &legal_id),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, holds) = app.page(&admin, "/holds").await;
    assert!(
        holds.contains("lawsuit")
            && holds.contains("Smith v. Acme")
            && holds.contains("<td>1</td>"),
        "{holds}"
    );

    let (status, page) = app.page(&admin, "/retention").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Delete these 2 messages") && page.contains("1 held messages stay"),
        "{page}"
    );
    assert!(
        page.contains("/messages/") && page.contains("quote"),
        "the sample opens the messages"
    );
    let form = [
        ("as_of", hidden(&page, "as_of")),
        ("max_id", hidden(&page, "max_id")),
        ("fingerprint", hidden(&page, "fingerprint")),
        ("confirm", "yes".to_string()),
        ("csrf_token", crate::common::auth::csrf_from(&page)),
    ];
    let res = admin
        .post(app.url("/retention/purge"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    let done = res.text().await.expect("body");
    assert!(done.contains("Purged 2 messages"), "{done}");
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    assert_eq!(left, held, "the held account's mail stays");

    let csv = admin
        .get(app.url("/retention/stats.csv"))
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("body");
    assert!(
        csv.contains("Sales,") && csv.contains(",retention,2,"),
        "{csv}"
    );
    let actions = app.audit_actions().await;
    for a in [
        "retention.policy_create",
        "hold.place",
        "retention.purge_batch",
        "retention.purge",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// A custom role holding `manage_retention` for one archive: every page and form stays within
/// that archive (a permission is a ceiling, not a key to every archive).
#[tokio::test(flavor = "multi_thread")]
async fn a_retention_manager_for_one_archive_reaches_only_that_archive_in_the_ui() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (own, foreign) = (
        app.insert_account("Own mailbox").await,
        app.insert_account("Foreign mailbox").await,
    );
    sqlx::query(
        "INSERT INTO roles (name, permissions) VALUES ('Keeper', ARRAY['manage_retention'])",
    )
    .execute(&app.pool)
    .await
    .expect("role");
    app.create_user("keeper", "Keeper", &[own]).await;
    let keeper = app.sign_in("keeper", crate::common::auth::PASSWORD).await;
    let own_ids = mail::archive(&app, own, "INBOX", vec![old("own report", "r1@x")]).await;
    let foreign_ids =
        mail::archive(&app, foreign, "INBOX", vec![old("secret merger", "m1@x")]).await;
    let (own_s, foreign_s) = (own.to_string(), foreign.to_string());

    // Policies: every account, or a foreign one, are refused; nothing is stored.
    for fields in [
        vec![("name", "all"), ("keep_days", "1")],
        vec![
            ("name", "theirs"),
            ("keep_days", "1"),
            ("account", &foreign_s),
        ],
        vec![
            ("name", "both"),
            ("keep_days", "1"),
            ("account", &own_s),
            ("account", &foreign_s),
        ],
    ] {
        let res = app
            .submit(&keeper, "/retention", "/retention/policies", &fields)
            .await;
        assert_eq!(res.status(), 422, "{fields:?}");
    }
    let policies: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_policies")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(policies, 0);
    // Holds likewise, with or without a query.
    for fields in [
        vec![("name", "all"), ("reason", "r")],
        vec![("name", "q"), ("reason", "r"), ("query", "subject:merger")],
        vec![("name", "theirs"), ("reason", "r"), ("account", &foreign_s)],
    ] {
        let res = app.submit(&keeper, "/holds", "/holds", &fields).await;
        assert_eq!(res.status(), 422, "{fields:?}");
    }

    // The administrator's installation-wide policy and hold, and a hold on the foreign archive.
    for (action, fields) in [
        (
            "/retention/policies",
            vec![("name", "a week everywhere"), ("keep_days", "7")],
        ),
        ("/holds", vec![("name", "everything"), ("reason", "audit")]),
        // Matches none of the mail: the foreign mail below is protected by the grants alone.
        (
            "/holds",
            vec![
                ("name", "foreign case"),
                ("reason", "Foreign v. Acme"),
                ("account", &foreign_s),
                ("query", "subject:unrelated"),
            ],
        ),
    ] {
        let page = if action == "/holds" {
            "/holds"
        } else {
            "/retention"
        };
        assert_eq!(
            app.submit(&admin, page, action, &fields).await.status(),
            303
        );
    }
    let (_, holds_page) = app.page(&keeper, "/holds").await;
    assert!(holds_page.contains("everything"), "{holds_page}");
    assert!(
        !holds_page.contains("foreign case") && !holds_page.contains("Foreign"),
        "a hold on another archive is not shown: {holds_page}"
    );
    let wide: i64 = sqlx::query_scalar("SELECT id FROM legal_holds WHERE name = 'everything'")
        .fetch_one(&app.pool)
        .await
        .expect("hold id");
    let res = app
        .submit(
            &keeper,
            "/holds",
            &format!("/holds/{wide}/release"),
            &[("reason", "mine now")],
        )
        .await;
    assert_eq!(
        res.status(),
        403,
        "an installation-wide hold is out of reach"
    );
    let res = app
        .submit(
            &admin,
            "/holds",
            &format!("/holds/{wide}/release"),
            &[("reason", "audit over")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let policy: i64 = sqlx::query_scalar("SELECT id FROM retention_policies")
        .fetch_one(&app.pool)
        .await
        .expect("policy id");
    let res = app
        .submit(
            &keeper,
            "/retention",
            &format!("/retention/policies/{policy}/delete"),
            &[],
        )
        .await;
    assert_eq!(
        res.status(),
        403,
        "an installation-wide policy is out of reach"
    );

    // The preview and its sample show only the keeper's archive; Purge now purges only it.
    let (_, page) = app.page(&keeper, "/retention").await;
    assert!(page.contains("own report"), "{page}");
    assert!(
        !page.contains("secret merger") && !page.contains("Foreign mailbox"),
        "nothing of another archive shows: {page}"
    );
    assert!(page.contains("Delete these 1 messages"), "{page}");
    let form = [
        ("as_of", hidden(&page, "as_of")),
        ("max_id", hidden(&page, "max_id")),
        ("fingerprint", hidden(&page, "fingerprint")),
        ("confirm", "yes".to_string()),
        ("csrf_token", crate::common::auth::csrf_from(&page)),
    ];
    let res = keeper
        .post(app.url("/retention/purge"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    assert_eq!(left, foreign_ids, "the foreign archive is out of reach");
    assert!(!own_ids.is_empty());
}
