use std::process::Command;

use super::support::*;
use crate::common::daygle_bin;
use daygle::secrets::{Keys, generate_key};

#[tokio::test]
async fn imap_passwords_are_sealed_and_a_wrong_key_is_a_clear_error_not_an_empty_password() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;

    let stored: String = sqlx::query_scalar("SELECT password_sealed FROM accounts WHERE id = $1")
        .bind(account.id)
        .fetch_one(&env.pool)
        .await
        .expect("row");
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert!(!stored.contains("alice-pw"));

    let other_dir = tempfile::tempdir().expect("dir");
    let other = Keys::load(&env.settings.security, other_dir.path()).expect("other keys");
    let err = account
        .password(&other.sealing)
        .expect_err("wrong key")
        .to_string();
    assert!(err.contains("not loaded"), "{err}");
    let deps = daygle::ingest::imap::sync::SyncDeps {
        pool: &env.pool,
        settings: &env.settings,
        keys: &other.sealing,
        heartbeat: None,
    };
    let err = daygle::ingest::imap::sync::sync_account(&deps, &account)
        .await
        .expect_err("no login without the key")
        .to_string();
    assert!(err.contains("sealed with key"), "{err}");
}

#[tokio::test]
async fn rotate_key_keeps_every_account_able_to_connect() {
    let env = env().await;
    let a = env.account("Alice", "alice").await;
    let b = env.account("Bob", "bob").await;
    env.dovecot
        .write_messages("alice", "INBOX", &messages("rot", 2), NEW);
    let user_id = daygle::auth::manage::create_user(
        &env.pool,
        &daygle::audit::Actor::cli(),
        &daygle::auth::manage::NewUser {
            username: "carol",
            email: "",
            password: "a long enough password",
            role_ids: &[],
            account_ids: &[],
        },
        12,
    )
    .await
    .expect("user");
    let mut conn = env.pool.acquire().await.expect("conn");
    daygle::auth::totp::enable(&mut conn, &env.keys.sealing, user_id, "JBSWY3DPEHPK3PXP", 0)
        .await
        .expect("totp");
    drop(conn);
    let new_key = env.data_dir.path().join("new_sealing_key");
    std::fs::write(&new_key, generate_key()).expect("write key");

    let out = Command::new(daygle_bin())
        .current_dir(env.data_dir.path())
        .env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
        .args(["rotate-key", "--new-key-file"])
        .arg(&new_key)
        .output()
        .expect("rotate-key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("re-sealed 3 stored secrets"), "{stdout}");

    let mut switched = env.settings.clone();
    switched.security.sealing_key_file = new_key.display().to_string();
    let keys = Keys::load(&switched.security, env.data_dir.path()).expect("new keys");
    for account in [env.reload(a.id).await, env.reload(b.id).await] {
        let password = account
            .password(&keys.sealing)
            .expect("opens under the new key");
        daygle::ingest::imap::test_connection(&account, &password, timeouts())
            .await
            .expect("still connects");
        assert!(
            account.password(&env.keys.sealing).is_err(),
            "the old key alone no longer opens it"
        );
    }
    let totp: String = sqlx::query_scalar("SELECT totp_secret FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&env.pool)
        .await
        .expect("totp row");
    let opened = keys
        .sealing
        .open(&totp, &format!("user:{user_id}:totp"))
        .expect("two-factor secret re-sealed too");
    assert_eq!(opened.as_slice(), b"JBSWY3DPEHPK3PXP");
    let deps = daygle::ingest::imap::sync::SyncDeps {
        pool: &env.pool,
        settings: &switched,
        keys: &keys.sealing,
        heartbeat: None,
    };
    let outcome = daygle::ingest::imap::sync::sync_account(&deps, &env.reload(a.id).await)
        .await
        .expect("sync after rotation");
    assert_eq!(outcome.archived, 2);
}
