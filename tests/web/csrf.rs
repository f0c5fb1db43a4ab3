use crate::common::auth::{ADMIN, PASSWORD, csrf_from, session_cookie, spawn_auth_app};

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

/// Sends a signed-in POST that declares an 8 MiB body but delivers only its first 64 KiB, and
/// returns the status line the server answers with while the rest is still owed.
async fn post_partial_body(app: &crate::common::TestApp, cookie: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.addr;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let declared = 8 * 1024 * 1024;
    let mut body = head.as_bytes().to_vec();
    body.resize(64 * 1024, b'a');
    let request = format!(
        "POST /profile/email HTTP/1.1\r\nHost: {addr}\r\nCookie: daygle_session={cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {declared}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    // Not a speed assertion: a server that waits for the whole body never answers while
    // 8 MiB - 64 KiB are still owed (it would time the request out instead).
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(60), tcp.read(&mut answer))
        .await
        .expect("the server answered without waiting for the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_signed_in_post_without_its_token_first_is_refused_before_the_body_is_read() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let res = app.login(&crate::common::client(), ADMIN, PASSWORD).await;
    let cookie = session_cookie(&res).expect("sign-in sets the session cookie");

    let status = post_partial_body(&app, &cookie, "email=a%40example.org&x=").await;
    assert!(status.contains(" 403 "), "token-less POST: {status}");
    let status = post_partial_body(&app, &cookie, "csrf_token=made-up&email=").await;
    assert!(status.contains(" 403 "), "wrong token: {status}");

    // The token as the first field (as our forms send it) still works, and the handler still
    // receives the whole body, including what the check read.
    let c = app.sign_in(ADMIN, PASSWORD).await;
    let token = csrf_from(&app.page(&c, "/profile").await.1);
    let res = c
        .post(app.url("/profile/email"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "first@example.org"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE username = $1")
        .bind(ADMIN)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(email, "first@example.org");
}
