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
    daygle::auth::totp::enable(
        &mut conn,
        &env.keys.sealing,
        user_id,
        "JBSWY3DPEHPK3PXP",
        0,
        &daygle::auth::totp::RecoveryCodes::generate()
            .await
            .expect("codes"),
    )
    .await
    .expect("totp");
    let quarantined_raw = message("held", 1);
    let facts = daygle::scan::MessageFacts::from_raw(&quarantined_raw);
    let held = daygle::scan::quarantine::put(
        &mut conn,
        &env.keys.sealing,
        &facts,
        &quarantined_raw,
        "Eicar-Test-Signature",
        daygle::scan::Source::Ingest,
        0,
    )
    .await
    .expect("quarantine")
    .expect("new entry");
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
    assert!(stdout.contains("re-sealed 4 stored secrets"), "{stdout}");

    // Destroy the old key: only the new one is left on disk.
    let mut switched = env.settings.clone();
    let moved = env.data_dir.path().join("sealing_key_now");
    std::fs::rename(&new_key, &moved).expect("move new key");
    std::fs::remove_file(env.data_dir.path().join("secrets").join("sealing_key"))
        .expect("destroy the old key");
    switched.security.sealing_key_file = moved.display().to_string();
    let keys = Keys::load(&switched.security, env.data_dir.path()).expect("new keys");
    let mut conn = env.pool.acquire().await.expect("conn");
    let opened = daygle::scan::quarantine::open_raw(&mut *conn, &keys.sealing, held)
        .await
        .expect("the quarantined message opens under the new key alone");
    assert_eq!(opened.as_slice(), quarantined_raw.as_slice());
    assert!(
        daygle::scan::quarantine::open_raw(&mut *conn, &env.keys.sealing, held)
            .await
            .is_err(),
        "a leaked old key no longer opens quarantined mail"
    );
    drop(conn);
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

#[tokio::test]
async fn a_password_opens_only_for_the_server_it_was_entered_for() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    assert!(account.password(&env.keys.sealing).is_ok());
    for change in [
        "UPDATE accounts SET host = 'attacker.example' WHERE id = $1",
        "UPDATE accounts SET port = 2525 WHERE id = $1",
        "UPDATE accounts SET username = 'mallory' WHERE id = $1",
        "UPDATE accounts SET tls_mode = 'implicit' WHERE id = $1",
    ] {
        let mut tx = env.pool.begin().await.expect("tx");
        sqlx::query(change)
            .bind(account.id)
            .execute(&mut *tx)
            .await
            .expect("edit the row in SQL");
        let moved: daygle::ingest::accounts::Account =
            daygle::ingest::accounts::get(&mut *tx, account.id)
                .await
                .expect("row");
        assert!(
            moved.password(&env.keys.sealing).is_err(),
            "{change}: the sealed password must not open for another endpoint"
        );
        tx.rollback().await.expect("rollback");
    }
}

#[tokio::test]
async fn passwords_sealed_before_endpoint_binding_are_upgraded_at_start_up() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    let legacy = env
        .keys
        .sealing
        .seal(b"alice-pw", &format!("account:{}:password", account.id));
    sqlx::query("UPDATE accounts SET password_sealed = $2 WHERE id = $1")
        .bind(account.id)
        .bind(&legacy)
        .execute(&env.pool)
        .await
        .expect("store a legacy value");
    assert!(
        env.reload(account.id)
            .await
            .password(&env.keys.sealing)
            .is_err()
    );
    daygle::reseal::upgrade_stored(&env.pool, &env.keys.sealing)
        .await
        .expect("upgrade");
    let upgraded = env.reload(account.id).await;
    assert_ne!(upgraded.password_sealed.as_deref(), Some(legacy.as_str()));
    assert_eq!(
        upgraded
            .password(&env.keys.sealing)
            .expect("opens")
            .as_str(),
        "alice-pw"
    );
}

/// One list of sealed things: every column that holds an `enc:v1:` value after the fixtures
/// below, and every column whose name says it holds a secret, must be in `reseal::Sealed`.
#[tokio::test]
async fn every_sealed_column_is_in_the_rotation_list() {
    let env = env().await;
    env.account("Alice", "alice").await;
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
    daygle::auth::totp::enable(
        &mut conn,
        &env.keys.sealing,
        user_id,
        "JBSWY3DPEHPK3PXP",
        0,
        &daygle::auth::totp::RecoveryCodes::generate()
            .await
            .expect("codes"),
    )
    .await
    .expect("totp");
    let raw = message("listed", 1);
    daygle::scan::quarantine::put(
        &mut conn,
        &env.keys.sealing,
        &daygle::scan::MessageFacts::from_raw(&raw),
        &raw,
        "Eicar-Test-Signature",
        daygle::scan::Source::Ingest,
        0,
    )
    .await
    .expect("quarantine");
    let listed: std::collections::BTreeSet<(String, String)> = daygle::reseal::Sealed::ALL
        .iter()
        .map(|k| {
            let (t, c) = k.column();
            (t.to_string(), c.to_string())
        })
        .collect();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying')",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("columns");
    // Columns whose names suggest a secret but that hold none, with the reason.
    let not_sealed = [
        ("users", "password_hash"),        // argon2id, not reversible
        ("api_tokens", "token_hash"),      // SHA-256 of the token, not reversible
        ("invitations", "token_hash"),     // SHA-256 of the invitation link's token
        ("password_resets", "token_hash"), // SHA-256 of the reset link's token
        ("settings", "key"),               // the name of a setting
        ("accounts", "oauth_token_url"),   // where a refresh token may be sent, not a secret
    ];
    for (table, column) in columns {
        let key = (table.clone(), column.clone());
        let named_secret = ["sealed", "wrapped", "secret", "token", "password", "key"]
            .iter()
            .any(|w| column.contains(w));
        let holds_sealed: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM \"{table}\" WHERE left(\"{column}\"::text COLLATE \"C\", 7) = 'enc:v1:')"
        ))
        .fetch_one(&mut *conn)
        .await
        .expect("scan column");
        if holds_sealed
            || (named_secret && !not_sealed.contains(&(table.as_str(), column.as_str())))
        {
            assert!(
                listed.contains(&key),
                "{table}.{column} holds a sealed value but is not in reseal::Sealed, so key rotation would leave it under the old key"
            );
        }
    }
}

#[tokio::test]
async fn rotate_key_refuses_while_a_server_seals_under_the_old_key() {
    let env = env().await;
    env.account("Alice", "alice").await;
    let mut settings = env.settings.clone();
    settings.server.bind = "127.0.0.1:0".into();
    settings.sync.enabled = false;
    let server = daygle::App::build(settings).await.expect("server");
    let new_key = env.data_dir.path().join("new_sealing_key");
    std::fs::write(&new_key, generate_key()).expect("write key");
    let rotate = || {
        Command::new(daygle_bin())
            .current_dir(env.data_dir.path())
            .env("DAYGLE__DATABASE__URL", &env.database_url)
            .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
            .args(["rotate-key", "--new-key-file"])
            .arg(&new_key)
            .output()
            .expect("rotate-key")
    };
    let out = rotate();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse while serving: {text}");
    assert!(text.contains("running daygle server"), "{text}");
    let stored: String = sqlx::query_scalar("SELECT password_sealed FROM accounts")
        .fetch_one(&env.pool)
        .await
        .expect("row");
    assert!(
        !env.keys.sealing.needs_reseal(&stored),
        "nothing was re-sealed"
    );
    drop(server);
    let out = rotate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
