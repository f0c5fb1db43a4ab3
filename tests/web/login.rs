use crate::common::auth::{ADMIN, PASSWORD, csrf_from, session_cookie, spawn_auth_app};
use crate::common::{client, spawn_app_with};

const FAILED: &str = "Sign-in failed";

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let c = client();
    let unknown = app.login(&c, "nobody-here", PASSWORD).await;
    let unknown_status = unknown.status();
    let unknown_html = unknown.text().await.unwrap();
    let wrong = app.login(&c, ADMIN, "wrong password entirely").await;
    assert_eq!(unknown_status, 401);
    assert_eq!(wrong.status(), 401);
    let wrong_html = wrong.text().await.unwrap();
    assert!(unknown_html.contains(FAILED) && wrong_html.contains(FAILED));
    let message = |html: &str| {
        html.lines()
            .find(|l| l.contains(FAILED))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(message(&unknown_html), message(&wrong_html));
    let actions = app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "login.failure").count(), 2);
}

#[tokio::test]
async fn signing_in_gives_a_new_session_id_and_signing_out_ends_it() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let c = client();
    let page = c.get(app.url("/login")).send().await.unwrap();
    assert_eq!(
        session_cookie(&page),
        None,
        "the login page starts no server-side session (its CSRF token is signed instead)"
    );
    let nonce = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("daygle_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("the login page sets its CSRF nonce cookie")
        .to_string();
    let token = csrf_from(&page.text().await.unwrap());
    // A session id an attacker planted (here one that has since ended) is replaced at sign-in.
    let first = client();
    let res = app.login(&first, ADMIN, PASSWORD).await;
    let before = session_cookie(&res).expect("sign-in sets the cookie");
    assert_eq!(app.submit(&first, "/", "/logout", &[]).await.status(), 303);
    let res = client()
        .post(app.url("/login"))
        .header(
            "cookie",
            format!("daygle_session={before}; daygle_csrf={nonce}"),
        )
        .form(&[
            ("username", ADMIN),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let after = session_cookie(&res).expect("sign-in sets the cookie");
    assert_ne!(
        before, after,
        "the session id changes at sign-in (no fixation)"
    );
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http test server: no Secure flag"
    );

    // The old id is worthless: a client presenting it is not signed in.
    let stale = client();
    let res = stale
        .get(app.url("/"))
        .header("cookie", format!("daygle_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/login");

    let c = app.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(app.page(&c, "/").await.0, 200);
    let res = app.submit(&c, "/", "/logout", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    let res = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login", "signed out");
    let actions = app.audit_actions().await;
    assert!(
        actions.contains(&"login.success".to_string()) && actions.contains(&"logout".to_string())
    );
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let app = spawn_app_with(|s| s.server.public_url = "https://archive.example.org".into()).await;
    let res = app.get("/setup").await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn too_many_wrong_passwords_lock_the_account_until_the_lock_runs_out() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.security.lockout_threshold = 3;
    })
    .await;
    app.set_up_admin().await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            app.login(&c, ADMIN, "not the password at all")
                .await
                .status(),
            401
        );
    }
    // Locked: even the right password fails, with the same message.
    let res = app.login(&c, ADMIN, PASSWORD).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains(FAILED));
    let actions = app.audit_actions().await;
    assert!(
        actions.contains(&"login.lockout".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"login.refused_locked".to_string()),
        "{actions:?}"
    );

    // Time passes (the lock's end moves into the past) and the right password works again.
    sqlx::query("UPDATE users SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.login(&c, ADMIN, PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn the_lock_lasts_the_configured_minutes() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.security.lockout_threshold = 2;
        s.security.lockout_minutes = 7;
    })
    .await;
    app.set_up_admin().await;
    let c = client();
    for _ in 0..2 {
        app.login(&c, ADMIN, "not the password at all").await;
    }
    let minutes: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM locked_until - now())::float8 / 60 FROM users",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((6.9..=7.0).contains(&minutes), "{minutes}");
}

#[tokio::test]
async fn too_many_sign_in_attempts_from_one_address_are_slowed_down() {
    let app = spawn_app_with(|s| s.security.login_rate_per_minute = 3).await;
    app.set_up_admin().await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.login(&c, ADMIN, "not the password at all")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    let res = app.login(&c, ADMIN, PASSWORD).await;
    assert_eq!(res.status(), 429, "even the right password waits");
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many sign-in attempts")
    );
    // Refusals are written once a minute per address with a count (tests/web/floods.rs).
}

#[tokio::test]
async fn signed_in_users_do_not_see_the_login_form_again() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let res = admin.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/");
}

#[tokio::test]
async fn after_signing_in_you_return_to_the_page_you_asked_for() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let c = client();
    let res = c.get(app.url("/audit?action=login")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login");
    let res = app.login(&c, ADMIN, PASSWORD).await;
    assert_eq!(res.headers()["location"], "/audit?action=login");
}

/// A client whose requests arrive through a proxy that says they came from `forwarded_for`.
fn proxied_client(forwarded_for: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", forwarded_for.parse().unwrap());
    crate::common::install_tls_provider();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn audited_ips(app: &crate::common::TestApp, action: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT ip FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_address_and_sign_in_limit() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 3;
        s.server.trusted_proxies = "127.0.0.1, ::1".into();
    })
    .await;
    app.set_up_admin().await;
    // The proxy appends the address it saw to what the client sent, forged or not.
    let noisy = proxied_client("10.9.9.9, 198.51.100.7");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = app.login(&noisy, ADMIN, "not the password at all").await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 429]);
    // Another client behind the same proxy is not held back by the first one's attempts.
    let other = proxied_client("198.51.100.8");
    assert_eq!(app.login(&other, ADMIN, PASSWORD).await.status(), 303);
    assert_eq!(
        audited_ips(&app, "login.failure").await,
        vec!["198.51.100.7"; 3]
    );
    assert_eq!(
        audited_ips(&app, "login.success").await,
        vec!["198.51.100.8"]
    );
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = spawn_app_with(|s| s.security.login_rate_per_minute = 3).await;
    app.set_up_admin().await;
    for n in 0..4 {
        // A client inventing a new address each time is still one client.
        let c = proxied_client(&format!("198.51.100.{n}"));
        let status = app
            .login(&c, ADMIN, "not the password at all")
            .await
            .status();
        assert_eq!(status, if n < 3 { 401 } else { 429 });
    }
    assert_eq!(
        audited_ips(&app, "login.failure").await,
        vec!["127.0.0.1"; 3]
    );
}
