use crate::common::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/healthz", "/static/css/app.css", "/no-such-page"] {
        let res = app.get(path).await;
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(h.contains_key("permissions-policy"), "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
        // Plain http: HSTS would lock browsers out of a non-TLS install.
        assert!(!h.contains_key("strict-transport-security"), "{path}");
    }
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = spawn_app_with(|s| s.server.public_url = "https://archive.example.org".into()).await;
    let res = app.get("/healthz").await;
    assert!(
        res.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
}

#[tokio::test]
async fn pages_use_the_layout_with_local_assets_and_no_inline_script() {
    let app = spawn_app().await;
    // Before the first user exists every page leads to the setup wizard, in the layout.
    let res = app.get("/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/setup");
    let html = app.get("/setup").await.text().await.unwrap();
    assert!(html.contains("<title>Set up · Daygle Mail Archiver</title>"));
    assert!(html.contains("href=\"/static/css/app.css"));
    assert!(html.contains("src=\"/static/js/theme.js"));
    assert!(html.contains("id=\"theme-toggle\""));
    assert!(html.contains("name=\"viewport\""));
    assert!(!html.contains("<script>"), "inline script found");
    assert!(
        !html.contains("https://"),
        "a page must not load anything from elsewhere"
    );
    for asset in [
        "/static/css/app.css",
        "/static/js/theme.js",
        "/static/img/logo.svg",
    ] {
        let res = app.get(asset).await;
        assert_eq!(res.status(), 200, "{asset}");
    }
    let css = app.get("/static/css/app.css").await.text().await.unwrap();
    assert!(css.contains("prefers-color-scheme: dark"));
    assert!(css.contains("[data-theme=\"dark\"]"));
}

#[tokio::test]
async fn unknown_pages_get_a_friendly_404_in_the_layout() {
    let app = spawn_app().await;
    let res = app.get("/definitely/not/here").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(html.contains("There is nothing at this address."));
    assert!(html.contains("/static/css/app.css"));
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = spawn_app().await;
    // A valid token, so only the cross-site signals can be what refuses the post.
    let html = app.get("/setup").await.text().await.unwrap();
    let token = crate::common::auth::csrf_from(&html);
    let form = [
        ("username", "admin"),
        ("email", ""),
        ("password", "correct horse battery staple"),
        ("password_confirm", "does not match"),
        ("csrf_token", token.as_str()),
    ];
    let post = |headers: &[(&str, &str)]| {
        let mut req = app.client.post(app.url("/setup")).form(&form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("referer", "https://evil.example/page")][..],
    ] {
        let res = post(headers).await.unwrap();
        assert_eq!(res.status(), 403, "{headers:?}");
    }
    // The same form from this site reaches the handler (which explains the mismatch).
    let own = app.url("/setup");
    let res = post(&[
        ("origin", app.url.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("referer", own.as_str()),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 422);
}
