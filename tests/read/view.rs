use super::fixtures::{Mail, archive, build, world};

#[tokio::test]
async fn the_message_page_shows_headers_attachments_and_the_thread() {
    let w = world().await;
    let [invoice, reply, figures, _] = w.sales_ids[..] else {
        panic!()
    };
    let (status, html) = w.app.page(&w.reader, &format!("/messages/{reply}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Bob Baker &lt;bob@example.com&gt;")
            || html.contains("Bob Baker &#60;bob@example.com&#62;"),
        "{html}"
    );
    assert!(html.contains("reply-1042@example.com"));
    assert!(html.contains("Paid today."));
    assert!(html.contains("Show all headers"));
    assert!(
        html.contains(&format!("href=\"/messages/{invoice}\"")),
        "thread links to the parent"
    );

    let (_, html) = w.app.page(&w.reader, &format!("/messages/{figures}")).await;
    assert!(html.contains("figures-q1.pdf"));
    let link = format!("/messages/{figures}/attachments/");
    let start = html.find(&link).expect("attachment link");
    let end = html[start..].find('"').unwrap() + start;
    let res = w
        .reader
        .get(w.app.url(&html[start..end]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"figures-q1.pdf\"")
    );
    assert_eq!(
        &res.bytes().await.unwrap()[..],
        b"%PDF-1.4 not really a pdf"
    );

    let actions = w.app.audit_actions().await;
    assert!(actions.iter().filter(|a| *a == "mail.view").count() >= 2);
    assert!(actions.contains(&"mail.attachment".to_string()));
}

#[tokio::test]
async fn the_original_downloads_byte_for_byte() {
    let w = world().await;
    let id = w.sales_ids[0];
    let stored: Vec<u8> = sqlx::query_scalar("SELECT blob_sha256 FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    let res = w
        .reader
        .get(w.app.url(&format!("/messages/{id}/raw")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".eml")
    );
    let bytes = res.bytes().await.unwrap();
    assert_eq!(daygle::archive::blobs::sha256(&bytes).to_vec(), stored);
    assert!(
        w.app
            .audit_actions()
            .await
            .contains(&"mail.download".to_string())
    );
}

#[tokio::test]
async fn html_bodies_are_sanitised_framed_and_remote_images_wait_for_consent() {
    let w = world().await;
    let raw = build(&Mail {
        subject: "Hostile newsletter",
        message_id: "hostile@example.org",
        html: Some(
            r#"<h1 onclick="alert(1)">Big news</h1><script>document.title='pwned'</script>
               <img src="https://tracker.example/pixel.gif"><a href="javascript:alert(2)">click</a>
               <form action="https://evil.example"><input name="pw"></form>"#,
        ),
        ..Mail::default()
    });
    let id = archive(&w.app, w.sales, "Promotions", vec![raw]).await[0];
    let (status, page) = w.app.page(&w.reader, &format!("/messages/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<iframe class="mail-frame" title="Message body" sandbox="allow-popups allow-popups-to-escape-sandbox""#));
    assert!(page.contains("Load 1 remote image(s)"));

    let res = w
        .reader
        .get(w.app.url(&format!("/messages/{id}/body")))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("sandbox")
            && csp.contains("form-action 'none'")
    );
    assert!(
        !csp.contains("https:"),
        "remote images allowed without consent: {csp}"
    );
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    let body = res.text().await.unwrap();
    assert!(body.contains("Big news"));
    for bad in [
        "<script",
        "onclick",
        "javascript:",
        "<form",
        "tracker.example",
    ] {
        assert!(!body.contains(bad), "{bad} in sanitised body");
    }

    let res = w
        .reader
        .get(w.app.url(&format!("/messages/{id}/body?remote=1")))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("https:")
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("https://tracker.example/pixel.gif")
    );
}

#[tokio::test]
async fn plain_text_is_escaped_with_safe_links() {
    let w = world().await;
    let raw = build(&Mail {
        subject: "Plain",
        message_id: "plain@example.org",
        body: "<b>not bold</b> see https://example.org/x",
        ..Mail::default()
    });
    let id = archive(&w.app, w.sales, "Plain", vec![raw]).await[0];
    let (_, html) = w.app.page(&w.reader, &format!("/messages/{id}")).await;
    assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"));
    assert!(html.contains(
        r#"<a href="https://example.org/x" rel="noopener noreferrer nofollow" target="_blank">"#
    ));
}
