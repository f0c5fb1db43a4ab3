//! The delegation ceiling (issue #9, item 1): nobody grants, creates or assigns what they do
//! not hold; nobody edits a role they hold; acting on someone who holds more needs at least
//! their rights; the last user who can manage users or roles stays.

use crate::common::TestApp;
use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};

async fn role(app: &TestApp, name: &str, permissions: &[&str], all_accounts: bool) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO roles (name, permissions, all_accounts) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(permissions)
    .bind(all_accounts)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn role_id(app: &TestApp, name: &str) -> String {
    daygle::auth::users::role_id_by_name(&app.pool, name)
        .await
        .unwrap()
        .to_string()
}

async fn post(app: &TestApp, c: &reqwest::Client, action: &str, fields: &[(&str, &str)]) -> u16 {
    app.submit(c, "/profile", action, fields)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_user_manager_cannot_hand_out_or_take_over_more_than_they_hold() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let sales = app.insert_account("sales").await.to_string();
    role(&app, "User desk", &["manage_users"], false).await;
    let desk = app.create_user("desk", "User desk", &[]).await;
    let c = app.sign_in("desk", PASSWORD).await;
    let admin_role = role_id(&app, "Administrator").await;
    let desk_role = role_id(&app, "User desk").await;
    let admin_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(ADMIN)
        .fetch_one(&app.pool)
        .await
        .unwrap();

    // Give themselves the Administrator role, or an archive: refused.
    let me = format!("/users/{desk}");
    let promote = [
        ("email", ""),
        ("role", desk_role.as_str()),
        ("role", admin_role.as_str()),
    ];
    assert_eq!(post(&app, &c, &me, &promote).await, 403);
    let grant = [
        ("email", ""),
        ("role", desk_role.as_str()),
        ("account", sales.as_str()),
    ];
    assert_eq!(post(&app, &c, &me, &grant).await, 403);
    // Create an administrator: refused, nothing created.
    let create = [
        ("username", "mole"),
        ("email", ""),
        ("password", "a long enough password"),
        ("role", admin_role.as_str()),
    ];
    assert_eq!(post(&app, &c, "/users", &create).await, 403);
    let moles: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'mole'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(moles, 0);
    // Take over the administrator: every action on them is refused.
    let admin_path = format!("/users/{admin_id}");
    for (action, fields) in [
        (
            format!("{admin_path}/password"),
            vec![("password", "taken over by desk")],
        ),
        (
            format!("{admin_path}/totp/remove"),
            vec![("confirm", "yes")],
        ),
        (format!("{admin_path}/sessions/end"), vec![]),
        (format!("{admin_path}/enabled"), vec![("enabled", "false")]),
        (format!("{admin_path}/delete"), vec![("confirm", "yes")]),
        (
            admin_path.clone(),
            vec![("email", ""), ("role", desk_role.as_str())],
        ),
    ] {
        assert_eq!(post(&app, &c, &action, &fields).await, 403, "{action}");
    }
    app.sign_in(ADMIN, PASSWORD).await;

    // Within the ceiling it works: someone holding nothing can be created and reset.
    let ok = [
        ("username", "newbie"),
        ("email", ""),
        ("password", "a long enough password"),
        ("role", desk_role.as_str()),
    ];
    assert_eq!(post(&app, &c, "/users", &ok).await, 303);
    let newbie: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'newbie'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let reset = [("password", "another long password")];
    assert_eq!(
        post(&app, &c, &format!("/users/{newbie}/password"), &reset).await,
        303
    );
}

#[tokio::test]
async fn a_role_manager_cannot_raise_their_own_role_or_define_a_bigger_one() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let own = role(&app, "Role desk", &["manage_roles"], false).await;
    app.create_user("roles", "Role desk", &[]).await;
    let c = app.sign_in("roles", PASSWORD).await;
    let everything: Vec<(&str, &str)> = daygle::auth::Permission::ALL
        .iter()
        .map(|p| ("permission", p.as_str()))
        .collect();
    let mut raise = vec![("name", "Role desk"), ("description", "")];
    raise.extend(everything.iter().copied());
    assert_eq!(post(&app, &c, &format!("/roles/{own}"), &raise).await, 403);
    let perms: Vec<String> = sqlx::query_scalar("SELECT permissions FROM roles WHERE id = $1")
        .bind(own)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(perms, vec!["manage_roles".to_string()], "unchanged");

    let mut bigger = vec![("name", "Bigger"), ("description", "")];
    bigger.push(("permission", "manage_users"));
    assert_eq!(post(&app, &c, "/roles", &bigger).await, 403);
    let all_archives = [
        ("name", "Reads all"),
        ("description", ""),
        ("all_accounts", "on"),
    ];
    assert_eq!(post(&app, &c, "/roles", &all_archives).await, 403);
    let same = [
        ("name", "Another desk"),
        ("description", ""),
        ("permission", "manage_roles"),
    ];
    assert_eq!(
        post(&app, &c, "/roles", &same).await,
        303,
        "within the ceiling"
    );
}

#[tokio::test]
async fn the_last_user_who_can_manage_roles_cannot_demote_themselves() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let users_only = role(&app, "Users only", &["manage_users"], false).await;
    let admin_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(ADMIN)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let demote = [("email", ""), ("role", &users_only.to_string() as &str)];
    let res = app
        .submit(&admin, "/profile", &format!("/users/{admin_id}"), &demote)
        .await;
    assert_eq!(res.status().as_u16(), 409);
    assert!(res.text().await.unwrap().contains("nobody who can"));
    let still: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id
         WHERE ur.user_id = $1 AND r.name = 'Administrator'",
    )
    .bind(admin_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(still, 1);
}
