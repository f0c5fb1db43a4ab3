//! Single sign-on in a real browser (#18): the login page's "Sign in with …" button, through the
//! test identity provider (its own process, real OIDC over HTTP) and back, signed in with the
//! rights the groups map to; signing out also visits the provider's end-session endpoint.

use super::driver::{self, Driver};
use super::layout::check;
use crate::common::idp::Idp;
use crate::common::spawn_app_with;

#[tokio::test]
async fn a_person_signs_in_with_the_provider_button_and_out_again() {
    if !driver::available() {
        eprintln!(
            "skipped: /usr/bin/chromium and /usr/bin/chromedriver are needed (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let idp = Idp::start();
    let app = spawn_app_with(|s| {
        idp.configure(s);
        s.oidc.group_roles = "archive-auditors=Auditor".into();
        s.security.login_rate_per_minute = 10_000;
    })
    .await;
    app.set_up_admin().await;
    idp.next_user(
        "sub-gus",
        "gus",
        "gus@example.org",
        true,
        &["archive-auditors"],
    )
    .await;
    let chrome = Driver::start().await;
    let b = chrome.browser().await;
    let mut problems = Vec::new();
    // Light, then dark: an anonymous page follows the theme toggle's choice in this browser.
    for (theme, name) in [("light", "login-sso"), ("dark", "login-sso-dark")] {
        b.goto(&app.url("/login")).await;
        b.execute(&format!(
            "localStorage.setItem('daygle-theme', '{theme}'); return null;"
        ))
        .await;
        for width in [1366, 390] {
            b.set_width(width, 900).await;
            problems.extend(check(&b, &app, "/login", name, width).await);
            let shown: serde_json::Value = b
                .execute("return document.documentElement.getAttribute('data-theme');")
                .await;
            assert_eq!(shown, theme, "{name} at {width}px");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    b.set_width(1366, 900).await;
    b.goto(&app.url("/login")).await;
    assert!(b.text("main").await.contains("Sign in with Test IdP"));
    b.click("a.sso-button").await;
    b.wait_path("/").await;
    assert!(b.text(".usermenu").await.contains("gus"));
    // Auditor, from the group: the audit log is open to them.
    b.goto(&app.url("/audit")).await;
    assert!(b.text("h1").await.contains("Audit"));
    b.click(".usermenu button").await;
    b.wait_path("/login").await;
    let log = idp.log().await;
    assert!(
        log.iter().any(|e| e["path"] == "/logout"),
        "the browser passed the provider's end-session endpoint: {log:?}"
    );
    b.close().await;
}
