use super::fixtures::{listed_ids, world};

#[tokio::test]
async fn a_read_only_user_sees_only_granted_mail_everywhere() {
    let w = world().await;
    let secret = w.board_ids[0];
    let invoice = w.sales_ids[0];

    let (status, html) = w.app.page(&w.reader, "/messages").await;
    assert_eq!(status, 200);
    let listed = listed_ids(&html);
    assert_eq!(listed.len(), 4);
    assert!(!listed.contains(&secret));
    assert!(!html.contains("Secret plan"));

    let (status, html) = w.app.page(&w.reader, "/messages?q=restructuring").await;
    assert_eq!(status, 200, "an empty result, not an error page");
    assert!(
        listed_ids(&html).is_empty(),
        "search leaked a foreign message"
    );
    let (status, html) = w
        .app
        .page(&w.reader, &format!("/messages?account={}", w.board))
        .await;
    assert_eq!(status, 200, "an empty result, not an error page");
    assert!(
        listed_ids(&html).is_empty(),
        "account filter leaked a foreign account"
    );

    for path in [
        format!("/messages/{secret}"),
        format!("/messages/{secret}/body"),
        format!("/messages/{secret}/raw"),
        format!("/messages/{secret}/attachments/1"),
        format!("/messages/{secret}/cid/x"),
    ] {
        let (status, body) = w.app.page(&w.reader, &path).await;
        assert_eq!(status, 404, "{path} must look like it does not exist");
        assert!(!body.contains("Secret plan") && !body.contains("Board eyes"));
    }
    // A message that really does not exist answers the same way.
    assert_eq!(w.app.page(&w.reader, "/messages/99999999").await.0, 404);

    // The thread of the invoice includes the board's reply for the admin, not for the reader.
    let (status, admin_view) = w.app.page(&w.admin, &format!("/messages/{invoice}")).await;
    assert_eq!(status, 200);
    assert!(
        admin_view.contains("Secret plan"),
        "admin sees the whole conversation"
    );
    let (status, reader_view) = w.app.page(&w.reader, &format!("/messages/{invoice}")).await;
    assert_eq!(status, 200);
    assert!(
        reader_view.contains("Re: Invoice 1042"),
        "granted reply is in the thread"
    );
    assert!(
        !reader_view.contains("Secret plan"),
        "thread leaked a foreign message"
    );
}

#[tokio::test]
async fn exports_never_contain_foreign_mail() {
    let w = world().await;
    let secret = w.board_ids[0];
    // The reader's role cannot export at all.
    let res = w
        .reader
        .get(w.app.url("/messages/export?format=mbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // An exporter with only "sales" who asks for a board message by id gets nothing of it.
    sqlx::query(
        "INSERT INTO roles (name, permissions) VALUES ('Exporter', array['view_mail','export_mail'])",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.app.create_user("exporter", "Exporter", &[w.sales]).await;
    let exporter = w
        .app
        .sign_in("exporter", crate::common::auth::PASSWORD)
        .await;
    let id = secret.to_string();
    let res = w
        .app
        .submit(
            &exporter,
            "/messages",
            "/messages/export",
            &[("id", &id), ("format", "mbox")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(
        text.matches("\nFrom ").count() + usize::from(text.starts_with("From ")),
        1,
        "only the export's manifest message, no foreign message: {text}"
    );
    assert!(text.contains("X-Daygle-Export-Manifest: 1") && !text.contains("Secret plan"));
    let res = exporter
        .get(w.app.url("/messages/export?format=mbox&q=invoice"))
        .send()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&res.bytes().await.unwrap()).to_string();
    assert!(body.contains("Invoice 1042") && !body.contains("Secret plan"));
}

async fn searches_recorded(w: &super::fixtures::World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'mail.search'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

/// The `after=` value of the page's "next" link.
fn next_cursor(html: &str) -> Option<String> {
    let start = html.find("after=")? + "after=".len();
    let end = html[start..].find(['"', '&'])? + start;
    Some(html[start..end].to_string())
}

#[tokio::test]
async fn page_links_are_signed_for_one_reader_and_one_search() {
    let w = world().await;
    let bulk: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            let id = format!("bulk-{i}@example.org");
            let subject = format!("Bulk statement {i}");
            super::fixtures::build(&super::fixtures::Mail {
                subject: &subject,
                body: "Monthly statement enclosed.",
                message_id: &id,
                date: 1_714_521_600 + i * 3600,
                ..super::fixtures::Mail::default()
            })
        })
        .collect();
    super::fixtures::archive(&w.app, w.sales, "Statements", bulk).await;
    sqlx::query("UPDATE users SET page_size = 10")
        .execute(&w.app.pool)
        .await
        .unwrap();

    let (status, first) = w.app.page(&w.reader, "/messages?q=statement").await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&first).len(), 10);
    assert_eq!(searches_recorded(&w).await, 1);
    let after = next_cursor(&first).expect("a next link");
    let (status, second) = w
        .app
        .page(&w.reader, &format!("/messages?q=statement&after={after}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        listed_ids(&second).len(),
        2,
        "the genuine link continues the search"
    );
    assert_eq!(
        searches_recorded(&w).await,
        1,
        "a continued search is one search"
    );

    // A made-up cursor, an edited one, the reader's link under another search or in another
    // person's hands: each is ignored — the first page, recorded as a search of its own.
    let (text, _) = after.split_once('.').unwrap();
    let forged = [
        (
            "reader",
            "/messages?q=statement&after=d99999999999999999_1".to_string(),
        ),
        ("reader", format!("/messages?q=statement&after={text}")),
        (
            "reader",
            format!("/messages?q=statement&after={text}.AAAAAAAAAAAAAAAAAAAAAA"),
        ),
        ("reader", format!("/messages?q=monthly&after={after}")),
        ("admin", format!("/messages?q=statement&after={after}")),
    ];
    for (n, (who, path)) in forged.iter().enumerate() {
        let c = if *who == "admin" { &w.admin } else { &w.reader };
        let (status, html) = w.app.page(c, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(listed_ids(&html).len(), 10, "{path} shows the first page");
        assert_eq!(
            searches_recorded(&w).await,
            2 + n as i64,
            "{path} is audited"
        );
    }
}

#[tokio::test]
async fn an_export_of_selected_messages_records_the_ids_that_left() {
    let w = world().await;
    sqlx::query(
        "INSERT INTO roles (name, permissions) VALUES ('Exporter', array['view_mail','export_mail'])",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.app.create_user("exporter", "Exporter", &[w.sales]).await;
    let exporter = w
        .app
        .sign_in("exporter", crate::common::auth::PASSWORD)
        .await;
    let (mine, other, secret) = (w.sales_ids[2], w.sales_ids[0], w.board_ids[0]);
    let ids = [mine, secret, other, mine, 99_999_999].map(|i| i.to_string());
    let mut fields: Vec<(&str, &str)> = ids.iter().map(|i| ("id", i.as_str())).collect();
    fields.push(("format", "mbox"));
    let res = w
        .app
        .submit(&exporter, "/messages", "/messages/export", &fields)
        .await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'mail.export' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        details["ids"],
        serde_json::json!([mine, other]),
        "{details}"
    );
    assert_eq!(details["messages"], 2);
    let joined = format!("{mine},{other}");
    assert_eq!(
        details["ids_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(joined.as_bytes()))
    );
}
