use super::fixtures::{listed_ids, world};

#[tokio::test]
async fn a_read_only_user_sees_only_granted_mail_everywhere() {
    let w = world().await;
    let secret = w.board_ids[0];
    let invoice = w.sales_ids[0];

    let (_, html) = w.app.page(&w.reader, "/messages").await;
    let listed = listed_ids(&html);
    assert_eq!(listed.len(), 4);
    assert!(!listed.contains(&secret));
    assert!(!html.contains("Secret plan"));

    let (_, html) = w.app.page(&w.reader, "/messages?q=restructuring").await;
    assert!(
        listed_ids(&html).is_empty(),
        "search leaked a foreign message"
    );
    let (_, html) = w
        .app
        .page(&w.reader, &format!("/messages?account={}", w.board))
        .await;
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
    let (_, admin_view) = w.app.page(&w.admin, &format!("/messages/{invoice}")).await;
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
