use crate::common::auth::{PASSWORD, csrf_from, spawn_auth_app};

#[tokio::test]
async fn a_form_post_without_or_with_a_wrong_csrf_token_is_refused_with_a_friendly_page() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let missing = admin
        .post(app.url("/users"))
        .form(&[("username", "mallory"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let html = missing.text().await.unwrap();
    assert!(html.contains("did not come from this site"), "{html}");
    assert!(
        html.contains("/static/css/app.css"),
        "the refusal is a page in the layout"
    );

    let wrong = admin
        .post(app.url("/users"))
        .form(&[
            ("username", "mallory"),
            ("password", PASSWORD),
            ("csrf_token", "not-the-token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'mallory'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no user was created by the refused posts");
}

#[tokio::test]
async fn a_token_from_another_session_does_not_work() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let other = crate::common::client();
    let foreign_token = csrf_from(
        &other
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let res = admin
        .post(app.url("/logout"))
        .form(&[("csrf_token", foreign_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.page(&admin, "/").await.0, 200, "still signed in");
}

#[tokio::test]
async fn a_post_with_a_foreign_origin_is_refused_even_with_a_valid_token() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let token = csrf_from(&app.page(&admin, "/profile").await.1);
    let res = admin
        .post(app.url("/logout"))
        .header("origin", "http://evil.example")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = admin
        .post(app.url("/logout"))
        .header("origin", app.url.clone())
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "our own origin is fine");
}

#[tokio::test]
async fn a_post_whose_referer_is_another_site_is_refused() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let token = csrf_from(&app.page(&admin, "/profile").await.1);
    let res = admin
        .post(app.url("/logout"))
        .header("referer", "http://evil.example/page?x=1")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = admin
        .post(app.url("/logout"))
        .header("referer", app.url("/profile"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}
