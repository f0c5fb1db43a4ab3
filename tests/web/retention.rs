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
