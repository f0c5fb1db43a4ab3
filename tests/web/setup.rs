use crate::common::auth::{ADMIN, PASSWORD, csrf_from, spawn_auth_app};
use crate::common::client;

#[tokio::test]
async fn before_anyone_exists_every_page_leads_to_the_setup_wizard() {
    let app = spawn_auth_app().await;
    for path in ["/", "/login", "/users", "/audit", "/profile"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/setup", "{path}");
    }
    for path in ["/healthz", "/readyz", "/static/css/app.css"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let html = app.get("/setup").await.text().await.unwrap();
    assert!(html.contains("Create the first Administrator"));
}

#[tokio::test]
async fn the_wizard_creates_a_signed_in_administrator_and_then_disappears_for_good() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (status, html) = app.page(&admin, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains(ADMIN), "the dashboard shows who is signed in");
    assert!(
        html.contains("href=\"/users\""),
        "an administrator sees the Users page"
    );
    assert_eq!(app.get("/setup").await.status(), 404);
    assert_eq!(
        client()
            .get(app.url("/setup"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(
        app.audit_actions()
            .await
            .contains(&"setup.first_admin".to_string())
    );
}

#[tokio::test]
async fn the_wizard_refuses_a_short_password_and_mismatched_confirmation() {
    let app = spawn_auth_app().await;
    let res = app
        .submit(
            &app.client,
            "/setup",
            "/setup",
            &[
                ("username", ADMIN),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("at least 12 characters"));
    let res = app
        .submit(
            &app.client,
            "/setup",
            "/setup",
            &[
                ("username", ADMIN),
                ("password", PASSWORD),
                ("password_confirm", "something else entirely"),
            ],
        )
        .await;
    assert!(res.text().await.unwrap().contains("do not match"));
    let res = app
        .submit(
            &app.client,
            "/setup",
            "/setup",
            &[
                ("username", "samesame12345"),
                ("password", "samesame12345"),
                ("password_confirm", "samesame12345"),
            ],
        )
        .await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("must not be the same as the username")
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn concurrent_setup_posts_create_exactly_one_administrator() {
    let app = spawn_auth_app().await;
    // Every browser loads the form before anyone submits it.
    let mut prepared = Vec::new();
    for _ in 0..8 {
        let c = client();
        let html = c
            .get(app.url("/setup"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        prepared.push((c, csrf_from(&html)));
    }
    let posts = prepared.into_iter().enumerate().map(|(i, (c, token))| {
        let url = app.url("/setup");
        async move {
            let name = format!("admin{i}");
            c.post(url)
                .form(&[
                    ("username", name.as_str()),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(posts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 404),
        "{statuses:?}"
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn a_fresh_install_answers_setup_only_to_its_own_host_names() {
    let app = crate::common::spawn_app_with(|s| {
        s.server.public_url = "https://archive.example.org".into();
    })
    .await;
    // A DNS-rebinding page reaches the server under the attacker's host name.
    for host in ["rebind.attacker.example", "rebind.attacker.example:8080"] {
        let res = app
            .client
            .get(app.url("/setup"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 421, "{host}");
    }
    for host in [
        "archive.example.org",
        "ARCHIVE.example.org:443",
        "127.0.0.1:8080",
        "localhost",
        "[::1]:8080",
    ] {
        let res = app
            .client
            .get(app.url("/setup"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
}
