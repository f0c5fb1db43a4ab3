use crate::common::TestApp;
use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};
use crate::common::client;

#[tokio::test]
async fn a_read_only_user_sees_only_the_archive_accounts_granted_to_them() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("sales@example.org").await;
    let _board = app.insert_account("board@example.org").await;
    let read_only: i64 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Read Only'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (role, account) = (read_only.to_string(), sales.to_string());
    let res = app
        .submit(
            &admin,
            "/users/new",
            "/users",
            &[
                ("username", "carol"),
                ("email", "carol@example.org"),
                ("password", PASSWORD),
                ("role", &role),
                ("account", &account),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());

    let carol = app.sign_in("carol", PASSWORD).await;
    // The administrator chose her password: she chooses her own before anything else.
    assert_eq!(app.page(&carol, "/archives").await.0, 303);
    let res = app
        .submit(
            &carol,
            "/password/change",
            "/password/change",
            &[
                ("current_password", PASSWORD),
                ("password", "carol's own passphrase"),
                ("password_confirm", "carol's own passphrase"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, archives) = app.page(&carol, "/archives").await;
    assert!(archives.contains("sales@example.org"));
    assert!(!archives.contains("board@example.org"));
    let (_, dashboard) = app.page(&carol, "/").await;
    assert!(dashboard.contains("sales@example.org") && !dashboard.contains("board@example.org"));
    assert_eq!(dashboard.matches("href=\"/messages?account=").count(), 1);
    assert!(
        !dashboard.contains("href=\"/users\""),
        "no Users link without manage_users"
    );

    let (_, admin_view) = app.page(&admin, "/archives").await;
    assert!(admin_view.contains("sales@example.org") && admin_view.contains("board@example.org"));
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"user.create".to_string()));
}

#[tokio::test]
async fn granting_and_revoking_an_archive_account_changes_what_the_user_sees() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("sales@example.org").await;
    let id = app.create_user("dave", "Read Only", &[]).await;
    let dave = app.sign_in("dave", PASSWORD).await;
    assert!(
        app.page(&dave, "/archives")
            .await
            .1
            .contains("No archive account has been shared with you yet")
    );
    assert_eq!(app.page(&dave, &format!("/archives/{sales}")).await.0, 404);

    let read_only: i64 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Read Only'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (role, account) = (read_only.to_string(), sales.to_string());
    let res = app
        .submit(
            &admin,
            &format!("/users/{id}"),
            &format!("/users/{id}"),
            &[("email", ""), ("role", &role), ("account", &account)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.page(&dave, &format!("/archives/{sales}")).await.0, 200);

    app.submit(
        &admin,
        &format!("/users/{id}"),
        &format!("/users/{id}"),
        &[("email", ""), ("role", &role)],
    )
    .await;
    assert_eq!(app.page(&dave, &format!("/archives/{sales}")).await.0, 404);
    let grants = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "user.grants")
        .count();
    assert_eq!(grants, 2, "both grant changes are in the audit log");
}

#[tokio::test]
async fn a_custom_role_gives_exactly_its_permissions_and_system_roles_cannot_be_deleted() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let res = app
        .submit(
            &admin,
            "/roles/new",
            "/roles",
            &[
                ("name", "Compliance"),
                ("description", "Reads the audit log"),
                ("permission", "view_dashboard"),
                ("permission", "view_audit"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (role_id, perms): (i64, Vec<String>) =
        sqlx::query_as("SELECT id, permissions FROM roles WHERE name = 'Compliance'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(perms, vec!["view_audit", "view_dashboard"]);
    let user = app.create_user("eve", "Read Only", &[]).await;
    sqlx::query("UPDATE user_roles SET role_id = $1 WHERE user_id = $2")
        .bind(role_id)
        .bind(user)
        .execute(&app.pool)
        .await
        .unwrap();
    let eve = app.sign_in("eve", PASSWORD).await;
    assert_eq!(app.page(&eve, "/audit").await.0, 200);
    assert_eq!(app.page(&eve, "/archives").await.0, 403);

    let admin_role: i64 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Administrator'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = app
        .submit(
            &admin,
            &format!("/roles/{admin_role}"),
            &format!("/roles/{admin_role}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("System roles cannot be deleted")
    );
    let res = app
        .submit(
            &admin,
            &format!("/roles/{admin_role}"),
            &format!("/roles/{admin_role}"),
            &[("name", "Administrator"), ("permission", "view_dashboard")],
        )
        .await;
    assert_eq!(res.status(), 409);
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"role.create".to_string()));
}

#[tokio::test]
async fn forbidden_pages_are_friendly_and_keep_the_users_navigation() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    app.create_user("reader", "Read Only", &[]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    let (status, html) = app.page(&reader, "/users").await;
    assert_eq!(status, 403);
    assert!(html.contains("You do not have permission"));
    assert!(html.contains(">reader</a>"), "the user menu is still there");
    assert!(html.contains("href=\"/archives\""));
}

#[tokio::test]
async fn an_administrator_cannot_disable_or_delete_themselves() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let me: i64 = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = app
        .submit(
            &admin,
            "/profile",
            &format!("/users/{me}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 409);
    let res = app
        .submit(
            &admin,
            "/profile",
            &format!("/users/{me}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(app.page(&admin, "/").await.0, 200);
}

#[tokio::test]
async fn preferences_change_the_theme_and_how_times_are_shown() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let res = app
        .submit(
            &admin,
            "/profile",
            "/profile/preferences",
            &[
                ("timezone", "Europe/Berlin"),
                ("date_format", "%d.%m.%Y %H:%M %Z"),
                ("page_size", "25"),
                ("theme", "dark"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, html) = app.page(&admin, "/audit").await;
    assert!(html.contains("<html lang=\"en\" data-theme=\"dark\">"));
    assert!(
        html.contains("CET") || html.contains("CEST"),
        "audit times in the user's zone"
    );
    let res = app
        .submit(
            &admin,
            "/profile",
            "/profile/preferences",
            &[
                ("timezone", "Mars/Olympus"),
                ("date_format", "%Y"),
                ("page_size", "25"),
                ("theme", "dark"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("is not a known time zone")
    );
}

#[tokio::test]
async fn two_factor_sign_in_needs_a_fresh_code_or_an_unused_recovery_code() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (_, html) = app.page(&admin, "/profile/totp").await;
    let start = html.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let secret = html[start..start + html[start..].find('<').unwrap()].to_string();
    assert!(html.contains("<svg"), "the QR code is drawn by the server");
    let totp = daygle::auth::totp::build(&secret, ADMIN).unwrap();
    let code = totp.generate_current().to_string();
    let res = app
        .submit(
            &admin,
            "/profile/totp",
            "/profile/totp",
            &[("code", &code), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let codes = shown_codes(&res.text().await.unwrap());
    assert_eq!(codes.len(), 10, "ten recovery codes are shown once");
    assert_recovery_codes_are_strong_and_stored_slowly(&app, &codes).await;

    let c = client();
    let res = app.login(&c, ADMIN, PASSWORD).await;
    assert_eq!(
        res.headers()["location"],
        "/login/totp",
        "the password alone is not enough"
    );
    assert_eq!(
        c.get(app.url("/")).send().await.unwrap().headers()["location"],
        "/login"
    );
    let res = app
        .submit(&c, "/login/totp", "/login/totp", &[("code", &code)])
        .await;
    assert_eq!(
        res.status(),
        401,
        "the code used at enrolment cannot be replayed"
    );
    let res = app
        .submit(&c, "/login/totp", "/login/totp", &[("code", &codes[0])])
        .await;
    assert_eq!(res.status(), 303, "a recovery code works");
    assert_eq!(app.page(&c, "/").await.0, 200);

    let c2 = client();
    app.login(&c2, ADMIN, PASSWORD).await;
    let res = app
        .submit(&c2, "/login/totp", "/login/totp", &[("code", &codes[0])])
        .await;
    assert_eq!(res.status(), 401, "each recovery code works once");
    let next = totp
        .generate(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 30,
        )
        .to_string();
    let res = app
        .submit(&c2, "/login/totp", "/login/totp", &[("code", &next)])
        .await;
    assert_eq!(res.status(), 303, "a code for a new time step works");
}

#[tokio::test]
async fn a_missing_page_is_a_friendly_404_with_the_users_navigation() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    for path in ["/no/such/page", "/users/999999"] {
        let (status, html) = app.page(&admin, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("There is nothing at this address."), "{path}");
        assert!(
            html.contains(&format!(">{ADMIN}</a>")),
            "{path}: the user menu is still there"
        );
    }
}

/// The recovery codes on a page that shows them.
fn shown_codes(page: &str) -> Vec<String> {
    page.split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_string())
        .collect()
}

/// Codes of 20 characters from a 32-letter alphabet (100 bits; 80 behind the hash) in groups
/// of four, stored as salted argon2id under a 4-character selector, never in the clear.
async fn assert_recovery_codes_are_strong_and_stored_slowly(app: &TestApp, codes: &[String]) {
    let alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    for c in codes {
        let groups: Vec<&str> = c.split('-').collect();
        assert_eq!(groups.len(), 5, "{c}");
        assert!(groups.iter().all(|g| g.len() == 4), "{c}");
        assert!(
            c.chars().all(|ch| ch == '-' || alphabet.contains(ch)),
            "{c}"
        );
    }
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT selector, code_hash FROM recovery_codes WHERE used_at IS NULL")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), codes.len());
    let salts: std::collections::HashSet<_> = stored
        .iter()
        .map(|(_, h)| h.split('$').nth(4).unwrap_or("").to_string())
        .collect();
    assert_eq!(salts.len(), codes.len(), "each code has its own salt");
    for (selector, hash) in &stored {
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(selector.len(), 4);
        assert!(codes.iter().any(|c| c.starts_with(selector.as_str())));
        assert!(!codes.iter().any(|c| hash.contains(&c.replace('-', ""))));
    }
}

#[tokio::test]
async fn two_factor_changes_need_the_current_password() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (_, html) = app.page(&admin, "/profile/totp").await;
    let start = html.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let secret = html[start..start + html[start..].find('<').unwrap()].to_string();
    let totp = daygle::auth::totp::build(&secret, ADMIN).unwrap();
    let code = totp.generate_current().to_string();
    for fields in [
        vec![("code", code.as_str())],
        vec![
            ("code", code.as_str()),
            ("password", "not the password at all"),
        ],
    ] {
        let res = app
            .submit(&admin, "/profile/totp", "/profile/totp", &fields)
            .await;
        assert_eq!(res.status(), 422, "{fields:?}");
        let on: bool =
            sqlx::query_scalar("SELECT totp_secret IS NOT NULL FROM users WHERE username = $1")
                .bind(ADMIN)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert!(
            !on,
            "two-factor sign-in stays off without the password ({fields:?})"
        );
    }
    let res = app
        .submit(
            &admin,
            "/profile/totp",
            "/profile/totp",
            &[("code", &code), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let first = shown_codes(&res.text().await.unwrap());
    assert_eq!(first.len(), 10);

    // New recovery codes: refused with a wrong password, and the old ones then stop working.
    let res = app
        .submit(
            &admin,
            "/profile",
            "/profile/totp/recovery",
            &[("password", "not the password at all")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .submit(
            &admin,
            "/profile",
            "/profile/totp/recovery",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let second = shown_codes(&res.text().await.unwrap());
    assert_eq!(second.len(), 10);
    assert_recovery_codes_are_strong_and_stored_slowly(&app, &second).await;
    assert!(
        app.audit_actions()
            .await
            .contains(&"profile.recovery_codes".to_string())
    );

    let c = client();
    app.login(&c, ADMIN, PASSWORD).await;
    let res = app
        .submit(&c, "/login/totp", "/login/totp", &[("code", &first[0])])
        .await;
    assert_eq!(res.status(), 401, "an old code stopped working");
    // Typed in lower case with spaces instead of dashes, a new code works.
    let typed = second[3].to_lowercase().replace('-', " ");
    let res = app
        .submit(&c, "/login/totp", "/login/totp", &[("code", &typed)])
        .await;
    assert_eq!(res.status(), 303, "a new code works");

    // Turning it off needs the password as well (unchanged), and leaves no codes behind.
    let res = app
        .submit(
            &admin,
            "/profile",
            "/profile/totp/remove",
            &[("password", "wrong")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .submit(
            &admin,
            "/profile",
            "/profile/totp/remove",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM recovery_codes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn retired_old_style_recovery_codes_are_explained_on_the_profile() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    // What migration 0402 leaves for a user who had unused 40-bit SHA-256 codes.
    sqlx::query(
        "UPDATE users SET totp_secret = 'x', recovery_codes_retired = TRUE WHERE username = $1",
    )
    .bind(ADMIN)
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, html) = app.page(&admin, "/profile").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"recovery-retired\""), "{html}");
    assert!(html.contains("no longer work"));
    assert!(html.contains("Make new recovery codes"));
}
