use super::driver::{self, Browser, Driver};
use crate::common::auth::{PASSWORD, spawn_auth_app};
use crate::common::smtp::{self, SmtpServer};

#[tokio::test]
async fn a_new_install_is_set_up_and_a_read_only_user_sees_only_their_granted_archive() {
    if !driver::available() {
        eprintln!(
            "skipped: /usr/bin/chromium and /usr/bin/chromedriver are needed (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let app = spawn_auth_app().await;
    let granted = app.insert_account("sales@example.org").await;
    app.insert_account("board@example.org").await;
    let chrome = Driver::start().await;
    let b = chrome.browser().await;

    // First run: any page leads to the wizard.
    b.goto(&app.url("/")).await;
    b.wait_path("/setup").await;
    b.screenshot("01-setup-desktop").await;
    b.fill("input[name=username]", "admin").await;
    b.fill("input[name=email]", "admin@example.org").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=password_confirm]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
    assert!(b.text("h1").await.contains("Dashboard"));
    assert!(b.text(".usermenu").await.contains("admin"));

    // Sign out and back in through the form.
    b.click(".usermenu button").await;
    b.wait_path("/login").await;
    b.screenshot("02-login-desktop").await;
    b.fill("input[name=username]", "admin").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
    b.screenshot("03-dashboard-admin-desktop").await;

    // A Read Only user with one of the two archive accounts.
    b.goto(&app.url("/users/new")).await;
    b.fill("input[name=username]", "carol").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click(&format!("input[name=account][value=\"{granted}\"]"))
        .await;
    b.screenshot("04-new-user-desktop").await;
    b.click("main button[type=submit]").await;
    b.wait_path_where("/users/<id>?done=created", |p| {
        p.starts_with("/users/") && p.ends_with("?done=created")
    })
    .await;
    assert!(b.text(".notice").await.contains("User created"));
    b.goto(&app.url("/users")).await;
    assert!(b.text("#users").await.contains("Read Only"));
    b.screenshot("05-users-desktop").await;
    b.click(".usermenu button").await;
    b.wait_path("/login").await;

    // Carol sees only what was shared with her, once she has replaced the password the
    // administrator chose.
    b.fill("input[name=username]", "carol").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/password/change").await;
    assert!(
        b.text("#change-required")
            .await
            .contains("An administrator chose")
    );
    b.goto(&app.url("/archives")).await;
    b.wait_path("/password/change").await;
    b.fill("input[name=current_password]", PASSWORD).await;
    b.fill("input[name=password]", "carol's own passphrase")
        .await;
    b.fill("input[name=password_confirm]", "carol's own passphrase")
        .await;
    b.click("main button[type=submit]").await;
    b.wait_path("/profile?done=password").await;
    b.goto(&app.url("/")).await;
    let summary = b.text("#archive-summary").await;
    assert!(
        summary.contains("sales@example.org") && !summary.contains("board@example.org"),
        "{summary}"
    );
    b.goto(&app.url("/archives")).await;
    let archives = b.text("#archives").await;
    assert!(archives.contains("sales@example.org"), "{archives}");
    assert!(!archives.contains("board@example.org"), "{archives}");
    let nav = b.text("header nav").await;
    assert!(!nav.contains("Users") && !nav.contains("Audit"), "{nav}");
    b.screenshot("06-archives-readonly-desktop").await;
    b.set_width(390, 844).await;
    b.screenshot("07-archives-readonly-phone").await;

    // Her profile in dark, on a phone.
    b.goto(&app.url("/profile")).await;
    b.click("select[name=theme] option[value=dark]").await;
    b.click("form[action=\"/profile/preferences\"] button")
        .await;
    b.wait_path("/profile?done=preferences").await;
    assert!(b.text(".notice").await.contains("Preferences saved"));
    b.screenshot("08-profile-dark-phone").await;
    b.set_width(1280, 900).await;
    b.goto(&app.url("/")).await;
    b.screenshot("09-dashboard-dark-desktop").await;

    b.click(".usermenu button").await;
    b.wait_path("/login").await;
    b.goto(&app.url("/archives")).await;
    b.wait_path("/login").await;
    b.close().await;
}

/// `url` at desktop and phone width, light and dark: a screenshot of each, and none may scroll
/// sideways.
async fn shots(b: &Browser, url: &str, name: &str) {
    for theme in ["light", "dark"] {
        for width in [1366, 390] {
            b.set_width(width, 900).await;
            b.goto(url).await;
            b.execute(&format!(
                "localStorage.setItem('daygle-theme', '{theme}'); document.documentElement.setAttribute('data-theme', '{theme}');"
            ))
            .await;
            let fits = b
                .execute("const r = document.documentElement; return r.scrollWidth <= r.clientWidth + 1;")
                .await;
            assert_eq!(
                fits,
                serde_json::json!(true),
                "{name} scrolls sideways at {width}px"
            );
            b.screenshot(&format!("{name}-{theme}-{width}")).await;
        }
    }
    b.execute("localStorage.removeItem('daygle-theme');").await;
    b.set_width(1366, 900).await;
}

#[tokio::test]
async fn a_forgotten_password_is_replaced_through_the_link_in_the_mail() {
    if !driver::available() || !smtp::available() {
        eprintln!("skipped: needs chromium, chromium-driver and python3-aiosmtpd");
        return;
    }
    let server = SmtpServer::start();
    let smtp_settings = server.settings();
    let app = crate::common::spawn_app_with(move |s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        s.smtp = smtp_settings;
    })
    .await;
    app.set_up_admin().await;
    let alice = app.create_user("alice", "Read Only", &[]).await;
    sqlx::query("UPDATE users SET email = 'alice@example.org' WHERE id = $1")
        .bind(alice)
        .execute(&app.pool)
        .await
        .unwrap();
    let chrome = Driver::start().await;
    let b = chrome.browser().await;

    b.goto(&app.url("/login")).await;
    b.click("a[href='/password/forgot']").await;
    b.wait_path("/password/forgot").await;
    shots(&b, &app.url("/password/forgot"), "people-forgot").await;
    b.fill("input[name=who]", "alice@example.org").await;
    b.click("main button[type=submit]").await;
    b.wait_path("/password/forgot").await;
    assert!(
        b.text("#forgot-answer")
            .await
            .contains("If that username or e-mail address belongs to an account here")
    );
    b.screenshot("people-forgot-answer-light-1366").await;

    let mut mail = None;
    for _ in 0..200 {
        if let Some(m) = server.received().into_iter().next() {
            mail = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mail = mail.expect("the reset mail arrives");
    let parsed = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .unwrap();
    let body = parsed.body_text(0).unwrap().to_string();
    let start = body.find("/password/reset?token=").expect("a link");
    let link: String = body[start..].split_whitespace().next().unwrap().into();

    shots(&b, &app.url(&link), "people-set-password").await;
    assert_eq!(
        b.execute("return document.querySelector('input[name=username]').value")
            .await,
        serde_json::json!("alice")
    );
    b.fill("input[name=password]", "alice's new passphrase")
        .await;
    b.fill("input[name=password_confirm]", "alice's new passphrase")
        .await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
    assert!(b.text(".usermenu").await.contains("alice"));
    b.close().await;
}

#[tokio::test]
async fn without_e_mail_an_invitation_link_is_shown_once_to_copy_and_works() {
    if !driver::available() {
        eprintln!("skipped: needs chromium and chromium-driver");
        return;
    }
    let app = spawn_auth_app().await;
    let chrome = Driver::start().await;
    let b = chrome.browser().await;
    b.goto(&app.url("/setup")).await;
    b.fill("input[name=username]", "admin").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=password_confirm]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;

    b.goto(&app.url("/users")).await;
    b.click("a[href='/users/invite']").await;
    b.wait_path("/users/invite").await;
    assert!(b.text("#smtp-off").await.contains("E-mail is not set up"));
    b.fill("input[name=username]", "erin").await;
    b.fill("input[name=email]", "erin@example.org").await;
    b.screenshot("people-invite-light-1366").await;
    b.click("main button[type=submit]").await;
    b.wait_path("/users/invitations").await;
    let link = b
        .execute("return document.querySelector('#link').value")
        .await;
    let link = link.as_str().expect("the link to copy").to_string();
    assert!(link.contains("/invitation?token="), "{link}");
    for width in [1366, 390] {
        b.set_width(width, 900).await;
        let fits = b
            .execute(
                "const r = document.documentElement; return r.scrollWidth <= r.clientWidth + 1;",
            )
            .await;
        assert_eq!(
            fits,
            serde_json::json!(true),
            "the link page scrolls sideways at {width}px"
        );
        b.screenshot(&format!("people-invited-light-{width}")).await;
    }
    b.goto(&app.url("/users")).await;
    assert!(b.text("#invitations").await.contains("erin"));
    b.screenshot("people-users-invitations-light-390").await;

    // The link as the invitee would open it.
    b.click(".usermenu button").await;
    b.wait_path("/login").await;
    let path = &link[link.find("/invitation").unwrap()..];
    b.goto(&app.url(path)).await;
    b.fill("input[name=password]", "erin's own passphrase")
        .await;
    b.fill("input[name=password_confirm]", "erin's own passphrase")
        .await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
    assert!(b.text(".usermenu").await.contains("erin"));
    b.close().await;
}
