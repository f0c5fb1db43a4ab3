//! People (issue #17): invitations and "forgot password" links through a real SMTP server on
//! loopback (aiosmtpd with STARTTLS and AUTH), read from the mail that arrives; passwords an
//! administrator chose must be changed at the next sign-in.

use daygle::audit::Actor;
use daygle::auth::tokens::{self, NewToken, Scope};
use daygle::config::Settings;

use crate::common::auth::{PASSWORD, csrf_from};
use crate::common::smtp::{self, SmtpServer};
use crate::common::{TestApp, client};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

async fn app_with(smtp: Option<&SmtpServer>, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let smtp = smtp.map(SmtpServer::settings);
    crate::common::spawn_app_with(move |s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        if let Some(smtp) = smtp {
            s.smtp = smtp;
        }
        adjust(s);
    })
    .await
}

fn smtp_missing() -> bool {
    if smtp::available() {
        return false;
    }
    eprintln!("skipped: needs python3-aiosmtpd and openssl (apt-get install python3-aiosmtpd)");
    true
}

/// The link to `path` in a received message (decoded as a mail reader would), as a path
/// with its query, and the message's recipients line.
fn link_in(mail: &str, path: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .expect("a mail");
    let body = parsed.body_text(0).expect("a text body").to_string();
    let start = body
        .find(&format!("{path}?token="))
        .unwrap_or_else(|| panic!("no {path} link in:\n{body}"));
    body[start..].split_whitespace().next().unwrap().to_string()
}

/// Waits (up to 10 s, without blocking the app's tasks) for `n` messages, then a moment
/// longer for any that should not come.
async fn mails(server: &SmtpServer, n: usize) -> Vec<String> {
    for _ in 0..200 {
        if server.received().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.received()
}

fn recipients(mail: &str) -> &str {
    mail.lines().next().unwrap_or("")
}

async fn role_id(app: &TestApp, name: &str) -> String {
    sqlx::query_scalar::<_, i64>("SELECT id FROM roles WHERE name = $1")
        .bind(name)
        .fetch_one(&app.pool)
        .await
        .unwrap()
        .to_string()
}

/// Opens a link page (invitation or reset) in `c`: its CSRF token, to post the form later.
async fn open_link(app: &TestApp, c: &reqwest::Client, link: &str) -> String {
    let (status, html) = app.page(c, link).await;
    assert_eq!(status, 200, "{html}");
    csrf_from(&html)
}

/// Posts the link page's form (opened with [`open_link`]) with [`NEW_PASSWORD`].
async fn post_password(
    app: &TestApp,
    c: &reqwest::Client,
    link: &str,
    csrf: &str,
) -> reqwest::Response {
    let token = link.split("token=").nth(1).unwrap();
    let action = link.split('?').next().unwrap();
    c.post(app.url(action))
        .form(&[
            ("csrf_token", csrf),
            ("token", token),
            ("password", NEW_PASSWORD),
            ("password_confirm", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
}

/// Sets a password through a link page (invitation or reset) with the browser `c`.
async fn set_password_through(app: &TestApp, c: &reqwest::Client, link: &str) -> reqwest::Response {
    let csrf = open_link(app, c, link).await;
    post_password(app, c, link, &csrf).await
}

#[tokio::test]
async fn an_invitation_link_signs_the_invitee_in_once_with_the_rights_chosen() {
    if smtp_missing() {
        return;
    }
    let server = SmtpServer::start();
    let app = app_with(Some(&server), |_| {}).await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("sales@example.org").await;
    app.insert_account("board@example.org").await;
    let role = role_id(&app, "Read Only").await;
    let res = app
        .submit(
            &admin,
            "/users/invite",
            "/users/invitations",
            &[
                ("username", "erin"),
                ("email", "erin@example.org"),
                ("role", &role),
                ("account", &sales.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Invitation sent to erin@example.org"),
        "{page}"
    );
    assert!(!page.contains("token="), "a mailed link is not shown");

    let mails = mails(&server, 1).await;
    assert_eq!(mails.len(), 1);
    assert!(recipients(&mails[0]).contains("erin@example.org"));
    let link = link_in(&mails[0], "/invitation");
    let (_, users_page) = app.page(&admin, "/users").await;
    assert!(users_page.contains("id=\"invitations\"") && users_page.contains("erin"));

    let erin = client();
    let res = set_password_through(&app, &erin, &link).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let (status, archives) = app.page(&erin, "/archives").await;
    assert_eq!(status, 200, "signed in at once");
    assert!(archives.contains("sales@example.org") && !archives.contains("board@example.org"));
    app.sign_in("erin", NEW_PASSWORD).await;

    // Once only.
    let (status, html) = app.page(&client(), &link).await;
    assert_eq!(status, 410);
    assert!(html.contains("already been used"), "{html}");
    let (_, users_page) = app.page(&admin, "/users").await;
    assert!(!users_page.contains("id=\"invitations\""), "no longer open");
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"invitation.create".to_string()));
    assert!(actions.contains(&"invitation.accept".to_string()));
}

#[tokio::test]
async fn an_expired_invitation_is_refused_and_a_resend_makes_a_new_link() {
    if smtp_missing() {
        return;
    }
    let server = SmtpServer::start();
    let app = app_with(Some(&server), |_| {}).await;
    let admin = app.set_up_admin().await;
    let role = role_id(&app, "Read Only").await;
    app.submit(
        &admin,
        "/users/invite",
        "/users/invitations",
        &[
            ("username", "frank"),
            ("email", "frank@example.org"),
            ("role", &role),
        ],
    )
    .await;
    let first = link_in(&mails(&server, 1).await[0], "/invitation");
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 minute'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, html) = app.page(&client(), &first).await;
    assert_eq!(status, 410);
    assert!(html.contains("has expired"), "{html}");
    let (_, users_page) = app.page(&admin, "/users").await;
    assert!(users_page.contains("expired"), "{users_page}");

    let id: i64 = sqlx::query_scalar("SELECT id FROM invitations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = app
        .submit(
            &admin,
            "/users",
            &format!("/users/invitations/{id}/resend"),
            &[],
        )
        .await;
    assert_eq!(res.status(), 200);
    let second = link_in(&mails(&server, 2).await[1], "/invitation");
    assert_ne!(first, second);
    assert_eq!(
        app.page(&client(), &first).await.0,
        410,
        "the old link stays dead"
    );
    let res = set_password_through(&app, &client(), &second).await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn nobody_invites_with_more_than_they_hold_and_a_demoted_inviter_s_links_die() {
    let app = app_with(None, |_| {}).await;
    let admin = app.set_up_admin().await;
    let own = app.insert_account("own@example.org").await;
    let foreign = app.insert_account("foreign@example.org").await;
    sqlx::query(
        "INSERT INTO roles (name, permissions) VALUES ('People', ARRAY['manage_users','view_mail'])",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let manager = app.create_user("manager", "People", &[own]).await;
    let m = app.sign_in("manager", PASSWORD).await;
    let admin_role = role_id(&app, "Administrator").await;
    let people_role = role_id(&app, "People").await;

    for (role, account) in [(&admin_role, own), (&people_role, foreign)] {
        let res = app
            .submit(
                &m,
                "/users/invite",
                "/users/invitations",
                &[
                    ("username", "mallory"),
                    ("email", "mallory@example.org"),
                    ("role", role),
                    ("account", &account.to_string()),
                ],
            )
            .await;
        assert_eq!(res.status(), 422);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("nobody can grant more than they hold"),
            "{html}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invitations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // Within their rights it works; with e-mail off the link is shown to copy, once.
    let res = app
        .submit(
            &m,
            "/users/invite",
            "/users/invitations",
            &[
                ("username", "nina"),
                ("email", "nina@example.org"),
                ("role", &people_role),
                ("account", &own.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("E-mail is not set up on this server"),
        "{html}"
    );
    let start = html.find("/invitation?token=").expect("the link to copy");
    let link: String = html[start..].chars().take_while(|c| *c != '"').collect();

    // The manager loses the right to manage users before nina accepts: the link is dead.
    let read_only = role_id(&app, "Read Only").await;
    let res = app
        .submit(
            &admin,
            &format!("/users/{manager}"),
            &format!("/users/{manager}"),
            &[
                ("email", ""),
                ("role", &read_only),
                ("account", &own.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let res = set_password_through(&app, &client(), &link).await;
    assert_eq!(res.status(), 410);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("no longer has the rights")
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'nina'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

async fn user_with_email(app: &TestApp, username: &str, email: &str) -> i64 {
    let id = app.create_user(username, "Read Only", &[]).await;
    sqlx::query("UPDATE users SET email = $2 WHERE id = $1")
        .bind(id)
        .bind(email)
        .execute(&app.pool)
        .await
        .unwrap();
    id
}

async fn ask_for_reset(app: &TestApp, c: &reqwest::Client, who: &str) -> (u16, String) {
    let res = app
        .submit(c, "/password/forgot", "/password/forgot", &[("who", who)])
        .await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

#[tokio::test]
async fn forgot_password_answers_the_same_whether_or_not_the_address_is_known() {
    if smtp_missing() {
        return;
    }
    let server = SmtpServer::start();
    let app = app_with(Some(&server), |_| {}).await;
    app.set_up_admin().await;
    user_with_email(&app, "alice", "alice@example.org").await;
    let gone = user_with_email(&app, "gus", "gus@example.org").await;
    sqlx::query("UPDATE users SET enabled = false WHERE id = $1")
        .bind(gone)
        .execute(&app.pool)
        .await
        .unwrap();
    app.create_user("nomail", "Read Only", &[]).await;

    let c = client();
    let (status, known) = ask_for_reset(&app, &c, "alice").await;
    assert_eq!(status, 200);
    assert!(known.contains("If that username or e-mail address belongs to an account here"));
    for who in [
        "nobody",
        "nobody@example.org",
        "gus",
        "nomail",
        "ALICE@example.org",
    ] {
        let (status, answer) = ask_for_reset(&app, &c, who).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(answer, known, "the answer for {who} differs");
    }
    // Only alice (by name, then by address in any case) was sent anything.
    let mails = mails(&server, 2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        mails
            .iter()
            .all(|m| recipients(m).contains("alice@example.org"))
    );
    let actions = app.audit_actions().await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "password_reset.request")
            .count(),
        6
    );
}

#[tokio::test]
async fn a_reset_link_sets_the_password_once_ends_other_sessions_and_expires() {
    if smtp_missing() {
        return;
    }
    let server = SmtpServer::start();
    let app = app_with(Some(&server), |_| {}).await;
    app.set_up_admin().await;
    user_with_email(&app, "alice", "alice@example.org").await;
    let elsewhere = app.sign_in("alice", PASSWORD).await;
    assert_eq!(app.page(&elsewhere, "/profile").await.0, 200);

    ask_for_reset(&app, &client(), "alice@example.org").await;
    let link = link_in(&mails(&server, 1).await[0], "/password/reset");
    let browser = client();
    let res = set_password_through(&app, &browser, &link).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    assert_eq!(app.page(&browser, "/profile").await.0, 200, "signed in");
    let res = elsewhere.get(app.url("/profile")).send().await.unwrap();
    assert_eq!(res.status(), 303, "the other session has ended");
    assert_eq!(app.login(&client(), "alice", PASSWORD).await.status(), 401);
    app.sign_in("alice", NEW_PASSWORD).await;

    let (status, html) = app.page(&client(), &link).await;
    assert_eq!(status, 410, "single use");
    assert!(html.contains("already been used"));

    // A second link, expired before use.
    ask_for_reset(&app, &client(), "alice").await;
    let late = link_in(&mails(&server, 2).await[1], "/password/reset");
    let slow = client();
    let csrf = open_link(&app, &slow, &late).await;
    sqlx::query("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let res = post_password(&app, &slow, &late, &csrf).await;
    assert_eq!(res.status(), 410, "expired while the form was open");
    assert!(res.text().await.unwrap().contains("has expired"));
    assert_eq!(app.page(&client(), &late).await.0, 410);
    assert!(
        app.audit_actions()
            .await
            .contains(&"password_reset.complete".to_string())
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM password_resets")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let token = late.split("token=").nth(1).unwrap();
    assert!(
        stored.iter().all(|h| h.len() == 64 && h != token),
        "only hashes are stored"
    );
}

#[tokio::test]
async fn reset_requests_are_limited_per_address_and_per_client() {
    if smtp_missing() {
        return;
    }
    let server = SmtpServer::start();
    let app = app_with(Some(&server), |s| {
        s.security.password_reset_per_hour = 2;
        s.security.login_rate_per_minute = 5;
    })
    .await;
    // The admin signs in through the wizard (no sign-in form), so the client limit is whole.
    app.set_up_admin().await;
    user_with_email(&app, "alice", "alice@example.org").await;
    let c = client();
    let (_, first) = ask_for_reset(&app, &c, "alice").await;
    for _ in 0..3 {
        let (status, again) = ask_for_reset(&app, &c, "alice").await;
        assert_eq!(status, 200);
        assert_eq!(again, first, "a limited address gets the same answer");
    }
    // The sixth request from this client within the minute is refused outright.
    let (status, html) = ask_for_reset(&app, &c, "someone-else").await;
    assert_eq!(status, 200, "{html}");
    let (status, _) = ask_for_reset(&app, &c, "someone-else").await;
    assert_eq!(status, 429);
    assert_eq!(
        mails(&server, 2).await.len(),
        2,
        "two links an hour for one address"
    );
}

#[tokio::test]
async fn a_password_an_administrator_chose_must_be_changed_before_anything_else() {
    let app = app_with(None, |_| {}).await;
    let admin = app.set_up_admin().await;
    let role = role_id(&app, "Read Only").await;
    let res = app
        .submit(
            &admin,
            "/users/new",
            "/users",
            &[("username", "bob"), ("password", PASSWORD), ("role", &role)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let bob_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bob'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // An API token of his works regardless (the change is for people at the UI).
    let (_, api_token) = tokens::create(
        &app.pool,
        &Actor::cli(),
        bob_id,
        NewToken {
            name: "script".into(),
            scopes: vec![Scope::MailRead],
            account_ids: None,
            expires_in_days: None,
        },
    )
    .await
    .unwrap();

    let bob = app.sign_in("bob", PASSWORD).await;
    for path in ["/", "/archives", "/profile", "/messages?q=x"] {
        let res = bob.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/password/change", "{path}");
    }
    let (status, html) = app.page(&bob, "/password/change").await;
    assert_eq!(status, 200);
    assert!(html.contains("An administrator chose your current password"));
    let api = client()
        .get(app.url("/api/v1/accounts"))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200, "API tokens are not held up");

    let res = app
        .submit(
            &bob,
            "/password/change",
            "/password/change",
            &[
                ("current_password", PASSWORD),
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.page(&bob, "/archives").await.0, 200, "free to go");

    // An administrator's reset puts the requirement back.
    let res = app
        .submit(
            &admin,
            &format!("/users/{bob_id}"),
            &format!("/users/{bob_id}/password"),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let bob = app.sign_in("bob", PASSWORD).await;
    let res = bob.get(app.url("/archives")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/password/change");
}

#[tokio::test]
async fn a_reset_link_does_not_skip_the_second_factor() {
    if smtp_missing() {
        return;
    }
    let server = SmtpServer::start();
    let app = app_with(Some(&server), |_| {}).await;
    app.set_up_admin().await;
    user_with_email(&app, "alice", "alice@example.org").await;
    let alice = app.sign_in("alice", PASSWORD).await;
    let (_, html) = app.page(&alice, "/profile/totp").await;
    let marker = "<code class=\"secret\">";
    let start = html.find(marker).unwrap() + marker.len();
    let secret = html[start..start + html[start..].find('<').unwrap()].to_string();
    let code = daygle::auth::totp::build(&secret, "alice")
        .unwrap()
        .generate_current()
        .to_string();
    let res = app
        .submit(
            &alice,
            "/profile/totp",
            "/profile/totp",
            &[("code", &code), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 200);

    ask_for_reset(&app, &client(), "alice").await;
    let link = link_in(&mails(&server, 1).await[0], "/password/reset");
    let browser = client();
    let res = set_password_through(&app, &browser, &link).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login/totp");
    let res = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login", "not signed in yet");
    assert_eq!(app.page(&browser, "/login/totp").await.0, 200);
    // The new password is in force; the code is still asked for at every sign-in.
    let res = app.login(&client(), "alice", NEW_PASSWORD).await;
    assert_eq!(res.headers()["location"], "/login/totp");
}
