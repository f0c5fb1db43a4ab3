use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};

const NEW_PASSWORD: &str = "an even better passphrase";

fn signed_out(res: &reqwest::Response) -> bool {
    res.status() == 303 && res.headers()["location"] == "/login"
}

#[tokio::test]
async fn changing_your_password_ends_your_other_sessions_but_keeps_this_one() {
    let app = spawn_auth_app().await;
    let here = app.set_up_admin().await;
    let elsewhere = app.sign_in(ADMIN, PASSWORD).await;
    let res = app
        .submit(
            &here,
            "/profile",
            "/profile/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (status, html) = app.page(&here, "/profile?done=password").await;
    assert_eq!(status, 200, "this session carries on");
    assert!(html.contains("Password changed"));
    assert!(
        signed_out(&elsewhere.get(app.url("/")).send().await.unwrap()),
        "the other session ended"
    );
    app.sign_in(ADMIN, NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    let app = spawn_auth_app().await;
    let here = app.set_up_admin().await;
    let res = app
        .submit(
            &here,
            "/profile",
            "/profile/password",
            &[
                ("current_password", "not my password"),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("is not your current password")
    );
    app.sign_in(ADMIN, PASSWORD).await;
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_they_cannot_sign_in() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let id = app.create_user("reader", "Read Only", &[]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    assert_eq!(app.page(&reader, "/archives").await.0, 200);
    let res = app
        .submit(
            &admin,
            &format!("/users/{id}"),
            &format!("/users/{id}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(signed_out(
        &reader.get(app.url("/archives")).send().await.unwrap()
    ));
    assert_eq!(
        app.login(&crate::common::client(), "reader", PASSWORD)
            .await
            .status(),
        401
    );
    assert!(
        app.audit_actions()
            .await
            .contains(&"user.disable".to_string())
    );
}

#[tokio::test]
async fn an_administrator_can_end_all_sessions_of_a_user() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let id = app.create_user("reader", "Read Only", &[]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    app.submit(
        &admin,
        &format!("/users/{id}"),
        &format!("/users/{id}/sessions/end"),
        &[],
    )
    .await;
    assert!(signed_out(
        &reader.get(app.url("/archives")).send().await.unwrap()
    ));
    app.sign_in("reader", PASSWORD).await;
}

#[tokio::test]
async fn a_password_reset_by_an_administrator_ends_the_users_sessions() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let id = app.create_user("reader", "Read Only", &[]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    let res = app
        .submit(
            &admin,
            &format!("/users/{id}"),
            &format!("/users/{id}/password"),
            &[("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(signed_out(
        &reader.get(app.url("/archives")).send().await.unwrap()
    ));
    app.sign_in("reader", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_session_left_idle_past_its_expiry_no_longer_signs_you_in() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    assert_eq!(app.page(&admin, "/").await.0, 200);
    // What an hour of silence does: the store's expiry (moved only by activity) passes.
    sqlx::query("UPDATE tower_sessions.session SET expiry_date = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(signed_out(&admin.get(app.url("/")).send().await.unwrap()));
}

#[tokio::test]
async fn activity_keeps_a_session_alive_within_the_idle_limit() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let expiry = || async {
        sqlx::query_scalar::<_, time::OffsetDateTime>(
            "SELECT max(expiry_date) FROM tower_sessions.session",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let first = expiry().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minutes_left = (first.unix_timestamp() - now) / 60;
    assert!(
        (58..=60).contains(&minutes_left),
        "idle limit defaults to 60 minutes: {minutes_left}"
    );
    assert_eq!(app.page(&admin, "/").await.0, 200);
}

#[tokio::test]
async fn ending_your_other_sessions_keeps_only_this_one() {
    let app = spawn_auth_app().await;
    let here = app.set_up_admin().await;
    let laptop = app.sign_in(ADMIN, PASSWORD).await;
    let phone = app.sign_in(ADMIN, PASSWORD).await;
    let res = app
        .submit(&here, "/profile", "/profile/sessions/end", &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.page(&here, "/").await.0, 200);
    assert!(signed_out(&laptop.get(app.url("/")).send().await.unwrap()));
    assert!(signed_out(&phone.get(app.url("/")).send().await.unwrap()));
}

#[tokio::test]
async fn guessing_the_current_password_on_the_profile_is_rate_limited() {
    let app = crate::common::spawn_app_with(|s| s.security.login_rate_per_minute = 3).await;
    let here = app.set_up_admin().await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = app
            .submit(
                &here,
                "/profile",
                "/profile/password",
                &[
                    ("current_password", "a wrong guess at it"),
                    ("new_password", NEW_PASSWORD),
                    ("new_password_confirm", NEW_PASSWORD),
                ],
            )
            .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(&statuses[3..], &[429, 429], "{statuses:?}");
    assert!(statuses[..3].iter().all(|s| *s != 429), "{statuses:?}");
    let res = app
        .submit(
            &here,
            "/profile",
            "/profile/totp/remove",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 429, "second-factor removal shares the limit");
    // Turning two-factor sign-in on (and making new recovery codes) checks the password too.
    let res = app
        .submit(
            &here,
            "/profile/totp",
            "/profile/totp",
            &[("code", "123456"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 429, "enabling two-factor shares the limit");
    let res = app
        .submit(
            &here,
            "/profile",
            "/profile/totp/recovery",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 429, "new recovery codes share the limit");
}
