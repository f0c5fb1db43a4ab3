//! OIDC sign-in (#18) against a provider running as its own process on loopback
//! (`common::idp`), through the login page's button with a cookie-keeping client, the way a
//! browser goes: our app → the provider's authorization endpoint → our callback.

use crate::common::auth::{ADMIN, PASSWORD, csrf_from};
use crate::common::idp::Idp;
use crate::common::{TestApp, client, spawn_app_with};

pub(super) async fn app_with(
    idp: &Idp,
    adjust: impl FnOnce(&mut daygle::config::Settings),
) -> TestApp {
    let app = spawn_app_with(|s| {
        idp.configure(s);
        adjust(s);
    })
    .await;
    app.set_up_admin().await;
    app
}

/// One browser's trip: the login page's button, the provider, back to our callback. Returns
/// the callback's response (not followed) and the callback URL.
pub(super) async fn through_provider(
    app: &TestApp,
    c: &reqwest::Client,
) -> (reqwest::Response, String) {
    let html = c
        .get(app.url("/login"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("body");
    assert!(html.contains("Sign in with Test IdP"), "{html}");
    assert!(html.contains("href=\"/login/oidc\""), "{html}");
    let res = c.get(app.url("/login/oidc")).send().await.expect("start");
    assert_eq!(res.status(), 303, "the button leads to the provider");
    let authorize = location(&res);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("nonce="), "{authorize}");
    let res = c.get(&authorize).send().await.expect("authorize");
    assert_eq!(res.status(), 302, "the provider sends the browser back");
    let callback = location(&res);
    assert!(
        callback.starts_with(&app.url("/login/oidc/callback")),
        "{callback}"
    );
    (c.get(&callback).send().await.expect("callback"), callback)
}

pub(super) fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .expect("ascii")
        .to_string()
}

/// Signs in through the provider with a fresh browser; returns it when that worked.
pub(super) async fn sso(app: &TestApp) -> (reqwest::Client, u16, String) {
    let c = client();
    let (res, _) = through_provider(app, &c).await;
    let status = res.status().as_u16();
    let body = res.text().await.expect("body");
    (c, status, body)
}

pub(super) async fn last_refusal(app: &TestApp) -> String {
    sqlx::query_scalar(
        "SELECT details->>'reason' FROM audit_log
         WHERE action = 'login.failure' AND details->>'method' = 'oidc' ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&app.pool)
    .await
    .expect("audit")
    .unwrap_or_default()
}

async fn username_of(app: &TestApp, c: &reqwest::Client) -> String {
    let (status, html) = app.page(c, "/profile").await;
    assert_eq!(status, 200, "signed in");
    html
}

#[tokio::test]
async fn a_person_signs_in_through_the_provider_and_is_provisioned_with_their_groups() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| {
        s.oidc.group_roles = "archive-auditors=Auditor".into();
    })
    .await;
    idp.next_user(
        "sub-ann",
        "ann",
        "ann@example.org",
        true,
        &["archive-auditors"],
    )
    .await;
    let (c, status, _) = sso(&app).await;
    assert_eq!(status, 303, "signed in and sent on");
    assert!(username_of(&app, &c).await.contains("ann"));
    // Auditor reads the audit log; the provisioned user holds exactly that role.
    let (status, _) = app.page(&c, "/audit").await;
    assert_eq!(status, 200);
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT r.name::text FROM users u JOIN user_roles ur ON ur.user_id = u.id
         JOIN roles r ON r.id = ur.role_id WHERE u.username = 'ann'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("roles");
    assert_eq!(roles, ["Auditor"]);
    let actions = app.audit_actions().await;
    for a in ["user.oidc_provision", "user.oidc_access", "login.success"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    // The token request carried the PKCE verifier and the client authenticated.
    let log = idp.log().await;
    assert!(
        log.iter().any(|e| e["path"] == "/token"
            && e["form"]["code_verifier"]
                .as_str()
                .is_some_and(|v| v.len() >= 43)),
        "{log:?}"
    );
}

#[tokio::test]
async fn group_changes_at_the_provider_change_access_at_the_next_sign_in() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| {
        s.oidc.group_roles = "staff=Read Only, archive-auditors=Auditor".into();
        s.oidc.group_archives = "sales=Sales".into();
    })
    .await;
    let sales = app.insert_account("Sales").await;
    idp.next_user(
        "sub-bo",
        "bo",
        "bo@example.org",
        true,
        &["staff", "sales", "archive-auditors"],
    )
    .await;
    let (first, status, _) = sso(&app).await;
    assert_eq!(status, 303);
    assert_eq!(
        app.page(&first, "/audit").await.0,
        200,
        "auditor may read the audit log"
    );
    assert_eq!(app.page(&first, &format!("/archives/{sales}")).await.0, 200);

    // Removed from two groups upstream: at the next sign-in the role and the archive go, and
    // the earlier session (which held them) ends too.
    idp.next_user("sub-bo", "bo", "bo@example.org", true, &["staff"])
        .await;
    let (second, status, _) = sso(&app).await;
    assert_eq!(status, 303);
    assert_eq!(app.page(&second, "/audit").await.0, 403);
    assert_eq!(
        app.page(&second, &format!("/archives/{sales}")).await.0,
        404
    );
    let old = first
        .get(app.url("/audit"))
        .send()
        .await
        .expect("old session");
    assert_eq!(old.status(), 303, "the session with the old rights ended");

    // No mapped group left: refused, and nothing remains.
    idp.next_user("sub-bo", "bo", "bo@example.org", true, &["canteen"])
        .await;
    let (_, status, body) = sso(&app).await;
    assert_eq!(status, 401);
    assert!(body.contains("none of the user"), "{body}");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id WHERE u.username = 'bo'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn flawed_id_tokens_are_refused_with_the_reason_audited() {
    let idp = Idp::start();
    // Nine sign-ins from one address within a minute: above the default sign-in rate.
    let app = app_with(&idp, |s| s.security.login_rate_per_minute = 100).await;
    idp.next_user("sub-cy", "cy", "cy@example.org", true, &[])
        .await;
    for (flaw, reason) in [
        ("bad_signature", "signature"),
        ("alg_none", "signature"),
        ("wrong_issuer", "issuer"),
        ("wrong_audience", "audience"),
        ("extra_audience", "not a trusted audience"),
        ("expired", "expired"),
        ("wrong_nonce", "nonce"),
        ("other_azp", "another client"),
    ] {
        idp.flaw(flaw).await;
        let (c, status, body) = sso(&app).await;
        assert_eq!(status, 401, "{flaw} refused: {body}");
        assert!(body.contains("did not work"), "{flaw}: {body}");
        let audited = last_refusal(&app).await.to_lowercase();
        assert!(
            audited.contains(reason),
            "{flaw}: audited reason {audited:?}"
        );
        assert_eq!(
            app.page(&c, "/profile").await.0,
            303,
            "{flaw}: not signed in"
        );
    }
    idp.flaw("").await;
    let (_, status, _) = sso(&app).await;
    assert_eq!(status, 303, "a sound token still works");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'cy'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(users, 1, "only the sound sign-in created the user");
}

#[tokio::test]
async fn a_state_works_once_and_only_in_the_browser_that_started_it() {
    let idp = Idp::start();
    let app = app_with(&idp, |_| {}).await;
    idp.next_user("sub-di", "di", "di@example.org", true, &[])
        .await;

    // The provider's answer for browser A, delivered to browser B (login CSRF): refused.
    let a = client();
    let res = a.get(app.url("/login/oidc")).send().await.unwrap();
    let res = a.get(location(&res)).send().await.unwrap();
    let callback = location(&res);
    let b = client();
    let res = b.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(last_refusal(&app).await.contains("another browser"));
    // Now spent: not even browser A can use it.
    let res = a.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(last_refusal(&app).await.contains("already used"));

    // A sound sign-in, then its answer replayed: refused.
    let c = client();
    let (res, callback) = through_provider(&app, &c).await;
    assert_eq!(res.status(), 303);
    let res = c.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 401, "replayed");
    assert!(last_refusal(&app).await.contains("already used"));

    // No state at all, or one never issued.
    let res = c
        .get(app.url("/login/oidc/callback?code=x&state=made-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_signing_key_rotates_during_the_run() {
    let idp = Idp::start();
    let app = app_with(&idp, |_| {}).await;
    idp.next_user("sub-ed", "ed", "ed@example.org", true, &[])
        .await;
    assert_eq!(sso(&app).await.1, 303, "first key");
    let jwks_reads =
        |log: &[serde_json::Value]| log.iter().filter(|e| e["path"] == "/jwks").count();
    let before = jwks_reads(&idp.log().await);
    let kid = idp.rotate().await;
    assert!(!kid.is_empty());
    assert_eq!(sso(&app).await.1, 303, "tokens under the new key verify");
    assert_eq!(
        jwks_reads(&idp.log().await),
        before + 1,
        "the unknown key made us read the JWKS again, once"
    );
    assert_eq!(sso(&app).await.1, 303, "and the new key is kept");
    assert_eq!(jwks_reads(&idp.log().await), before + 1);
}

#[tokio::test]
async fn linking_by_e_mail_needs_a_verified_address_and_the_operators_consent() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| {
        s.oidc.link_by_email = true;
        s.oidc.jit_provisioning = false;
    })
    .await;
    // The local admin has admin@example.org. The provider vouches for the address but says it
    // is unverified: no takeover.
    idp.next_user("sub-mallory", "mallory", "admin@example.org", false, &[])
        .await;
    let (_, status, body) = sso(&app).await;
    assert_eq!(status, 401);
    assert!(body.contains("not verified"), "{body}");
    let linked: Option<String> =
        sqlx::query_scalar("SELECT oidc_subject FROM users WHERE username = $1")
            .bind(ADMIN)
            .fetch_one(&app.pool)
            .await
            .expect("admin");
    assert_eq!(linked, None);

    // Verified: linked, and the admin is signed in without the password or a second factor.
    idp.next_user("sub-admin", "the-admin", "admin@example.org", true, &[])
        .await;
    let (c, status, _) = sso(&app).await;
    assert_eq!(status, 303);
    assert!(username_of(&app, &c).await.contains(ADMIN));
    assert!(
        app.audit_actions()
            .await
            .iter()
            .any(|a| a == "user.oidc_link")
    );

    // Someone unknown with provisioning off: refused.
    idp.next_user("sub-new", "newcomer", "new@example.org", true, &[])
        .await;
    let (_, status, body) = sso(&app).await;
    assert_eq!(status, 401);
    assert!(body.contains("provisioning is off"), "{body}");
}

#[tokio::test]
async fn without_local_login_only_break_glass_users_use_a_password() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| {
        s.oidc.local_login = false;
        s.oidc.break_glass_users = ADMIN.into();
    })
    .await;
    app.create_user("clerk", "Read Only", &[]).await;
    let (_, html) = app.page(&client(), "/login").await;
    assert!(html.contains("Sign in with Test IdP"));
    assert!(
        !html.contains("name=\"password\""),
        "no password form: {html}"
    );
    let (_, html) = app.page(&client(), "/login/local").await;
    assert!(html.contains("name=\"password\""), "break-glass form");
    let form = |user: &'static str| [("username", user), ("password", PASSWORD)];
    let res = app
        .submit(&client(), "/login/local", "/login", &form("clerk"))
        .await;
    assert_eq!(res.status(), 401, "a right password is not enough");
    let res = app
        .submit(&client(), "/login/local", "/login", &form(ADMIN))
        .await;
    assert_eq!(res.status(), 303, "the break-glass administrator gets in");
}

#[tokio::test]
async fn signing_out_also_signs_out_at_the_provider() {
    let idp = Idp::start();
    let app = app_with(&idp, |_| {}).await;
    idp.next_user("sub-flo", "flo", "flo@example.org", true, &[])
        .await;
    let (c, status, _) = sso(&app).await;
    assert_eq!(status, 303);
    let (_, html) = app.page(&c, "/profile").await;
    let res = c
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf_from(&html))])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), 200, "a page that moves on to the provider");
    let page = res.text().await.expect("body");
    let to = page
        .split("url=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a refresh to the provider")
        .replace("&amp;", "&");
    assert!(to.starts_with(&format!("{}/logout?", idp.issuer)), "{to}");
    assert!(to.contains("id_token_hint="), "{to}");
    assert!(to.contains("post_logout_redirect_uri="), "{to}");
    assert_eq!(app.page(&c, "/profile").await.0, 303, "signed out here");
}
