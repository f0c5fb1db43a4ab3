//! OIDC sign-in guards (#18): the provider's answers are read only up to a size, a sign-in
//! counts once against the per-address rate limit, and the group mapping never demotes the
//! last user who can manage users or roles (issue #9's rule).

use super::oidc::{app_with, last_refusal, sso, through_provider};
use crate::common::client;
use crate::common::idp::Idp;

#[tokio::test]
async fn an_oversized_key_set_is_refused_with_a_clear_reason_and_not_read_into_memory() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| s.security.login_rate_per_minute = 100).await;
    idp.next_user("sub-di", "di", "di@example.org", true, &[])
        .await;
    // At discovery (the first sign-in reads the key set with the discovery document, before
    // the browser leaves for the provider).
    idp.oversized_jwks(true).await;
    let res = client().get(app.url("/login/oidc")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body = res.text().await.unwrap();
    assert!(body.contains("did not work"), "{body}");
    let reason = last_refusal(&app).await;
    assert!(
        reason.contains("signing keys") || reason.contains("discovery document"),
        "{reason}"
    );
    assert!(reason.contains("larger than 1024 KiB"), "{reason}");
    // Nothing broken is kept: once the provider behaves, sign-in works.
    idp.oversized_jwks(false).await;
    assert_eq!(sso(&app).await.1, 303);
    // And when a rotated key sends us back for the key set, which has grown too large.
    idp.oversized_jwks(true).await;
    idp.rotate().await;
    let (_, status, body) = sso(&app).await;
    assert_eq!(status, 401, "{body}");
    let reason = last_refusal(&app).await;
    assert!(
        reason.contains("signing keys") && reason.contains("larger than 1024 KiB"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_sign_in_counts_once_against_the_rate_limit_and_forged_answers_count_too() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| s.security.login_rate_per_minute = 3).await;
    idp.next_user("sub-ed", "ed", "ed@example.org", true, &[])
        .await;
    for n in 1..=2 {
        let (_, status, body) = sso(&app).await;
        assert_eq!(status, 303, "sign-in {n} of 3 allowed: {body}");
    }
    // The third allowed attempt is a forged answer (a state nobody started): refused and
    // counted; the fourth attempt is over the limit.
    let forged = app.url("/login/oidc/callback?state=forged&code=x");
    let res = client().get(&forged).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = client().get(&forged).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let res = client().get(app.url("/login/oidc")).send().await.unwrap();
    assert_eq!(res.status(), 429, "a new sign-in waits too");
}

#[tokio::test]
async fn the_groups_never_demote_the_last_user_who_can_manage_users() {
    let idp = Idp::start();
    let app = app_with(&idp, |s| {
        s.security.login_rate_per_minute = 100;
        s.oidc.group_roles = "admins=Administrator, staff=Read Only".into();
    })
    .await;
    let roles_of_flo = || async {
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT r.name::text FROM users u JOIN user_roles ur ON ur.user_id = u.id
             JOIN roles r ON r.id = ur.role_id WHERE u.username = 'flo' ORDER BY 1",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        roles
    };
    idp.next_user("sub-flo", "flo", "flo@example.org", true, &["admins"])
        .await;
    assert_eq!(sso(&app).await.1, 303);
    assert_eq!(roles_of_flo().await, ["Administrator"]);
    // The local administrator leaves: flo is the last who can manage users and roles.
    sqlx::query("UPDATE users SET enabled = false WHERE username = 'admin'")
        .execute(&app.pool)
        .await
        .unwrap();
    // Moved to another group at the provider: she keeps her rights, and the audit says why.
    idp.next_user("sub-flo", "flo", "flo@example.org", true, &["staff"])
        .await;
    let (c, status, body) = sso(&app).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(roles_of_flo().await, ["Administrator"]);
    assert_eq!(
        app.page(&c, "/users").await.0,
        200,
        "she still manages users"
    );
    let kept: Option<String> = sqlx::query_scalar(
        "SELECT details->>'kept' FROM audit_log WHERE action = 'user.oidc_access'
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let kept = kept.unwrap_or_default();
    assert!(kept.contains("last user who can manage users"), "{kept}");
    // In no mapped group at all: still not locked out.
    idp.next_user("sub-flo", "flo", "flo@example.org", true, &[])
        .await;
    assert_eq!(sso(&app).await.1, 303);
    assert_eq!(roles_of_flo().await, ["Administrator"]);
    // Once someone else can manage users again, the groups apply.
    sqlx::query("UPDATE users SET enabled = true WHERE username = 'admin'")
        .execute(&app.pool)
        .await
        .unwrap();
    idp.next_user("sub-flo", "flo", "flo@example.org", true, &["staff"])
        .await;
    let c = client();
    let (res, _) = through_provider(&app, &c).await;
    assert_eq!(res.status(), 303);
    assert_eq!(roles_of_flo().await, ["Read Only"]);
    assert_eq!(app.page(&c, "/users").await.0, 403);
}
