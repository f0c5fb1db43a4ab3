use super::driver::{self, Driver};
use crate::common::auth::{PASSWORD, spawn_auth_app};

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

    // Carol sees only what was shared with her.
    b.fill("input[name=username]", "carol").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
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
