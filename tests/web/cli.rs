use std::io::Write;
use std::process::Stdio;

use crate::common::auth::{PASSWORD, spawn_auth_app};
use crate::common::process::daygle;
use crate::common::{TestApp, client};

/// Runs `daygle user …` against the test database with `stdin` piped in.
fn user_command(app: &TestApp, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = daygle(&app.data_path())
        .arg("user")
        .args(args)
        .env("DAYGLE__DATABASE__URL", &app.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", app.data_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run daygle user");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_creates_an_administrator_with_a_password_from_stdin_and_resets_it() {
    let app = spawn_auth_app().await;
    let (ok, out) = user_command(
        &app,
        &[
            "create",
            "--admin",
            "--email",
            "root@example.org",
            "rootadmin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{out}");
    assert!(out.contains("Administrator"), "{out}");
    assert!(!out.contains(PASSWORD), "the password is never echoed");
    let admin = app.sign_in("rootadmin", PASSWORD).await;
    assert_eq!(
        app.page(&admin, "/users").await.0,
        200,
        "an administrator manages users"
    );
    assert_eq!(
        app.get("/setup").await.status(),
        404,
        "no setup wizard once a user exists"
    );

    let (ok, out) = user_command(&app, &["create", "reader"], &format!("{PASSWORD}\n"));
    assert!(ok && out.contains("Read Only"), "{out}");
    let reader = app.sign_in("reader", PASSWORD).await;
    assert_eq!(app.page(&reader, "/users").await.0, 403);

    let (ok, out) = user_command(
        &app,
        &["reset-password", "reader"],
        "a brand new passphrase\n",
    );
    assert!(ok, "{out}");
    assert_eq!(
        reader
            .get(app.url("/archives"))
            .send()
            .await
            .unwrap()
            .headers()["location"],
        "/login"
    );
    assert_eq!(app.login(&client(), "reader", PASSWORD).await.status(), 401);
    app.sign_in("reader", "a brand new passphrase").await;
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"user.password_reset".to_string()));
}

#[tokio::test]
async fn the_cli_refuses_a_weak_password_and_an_unknown_user() {
    let app = spawn_auth_app().await;
    let (ok, out) = user_command(&app, &["create", "--admin", "someone"], "short\n");
    assert!(!ok);
    assert!(out.contains("at least 12 characters"), "{out}");
    let (ok, out) = user_command(
        &app,
        &["reset-password", "nobody"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!ok);
    assert!(out.contains("no user named nobody"), "{out}");
}
