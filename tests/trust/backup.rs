//! `daygle backup` and `daygle restore`, run as an operator runs them: a backup taken while a
//! sync is writing, restored into a fresh database and into a fresh embedded data directory.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use daygle::audit::Actor;
use daygle::auth::manage::{self, NewUser};
use daygle::auth::users;

use super::support::{archive_with_mail, outcome, run};
use crate::common::auth::PASSWORD;
use crate::common::process::{daygle, shared_tempdir};
use crate::common::{self, TestApp, pg};
use crate::ingest_support::{self, messages};

/// `daygle ARGS` against the database at `url` (none: the private cluster) and `data_dir`.
fn daygle_at(url: Option<&str>, data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = daygle(data_dir);
    cmd.args(args).env("DAYGLE__STORAGE__DATA_DIR", data_dir);
    if let Some(url) = url {
        cmd.env("DAYGLE__DATABASE__URL", url);
    }
    cmd.output().expect("run daygle")
}

async fn create_admin(pool: &sqlx::PgPool) {
    let role = users::role_id_by_name(pool, "Administrator")
        .await
        .expect("role");
    manage::create_user(
        pool,
        &Actor::cli(),
        &NewUser {
            username: "admin",
            email: "",
            password: PASSWORD,
            role_ids: &[role],
            account_ids: &[],
        },
        12,
    )
    .await
    .expect("admin");
}

#[tokio::test]
async fn a_backup_taken_during_a_sync_restores_into_a_fresh_database_and_data_dir() {
    let env = ingest_support::env_with(|s| s.sync.batch_messages = 40).await;
    let account = env.account("alice", "alice").await;
    env.dovecot
        .write_messages("alice", "INBOX", &messages("bk", 400), Duration::ZERO);
    create_admin(&env.pool).await;
    let work = shared_tempdir();
    let file = work.path().join("archive.backup");
    let file_arg = file.display().to_string();
    let data_dir = env.data_dir.path().to_path_buf();
    let url = env.database_url.clone();
    // The backup starts once the sync has committed its first batches, while it goes on.
    let backup = async {
        while env.count("SELECT count(*) FROM messages").await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::spawn_blocking(move || {
            daygle_at(
                Some(&url),
                &data_dir,
                &["backup", "--output", &file_arg, "--include-keys"],
            )
        })
        .await
        .unwrap()
    };
    let (synced, backed_up) = tokio::join!(env.sync(&account), backup);
    synced.expect("sync");
    let (code, out) = outcome(&backed_up);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("keys not included"), "{out}");
    let in_backup: i64 = out
        .split(" messages,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("message count in: {out}"));
    assert!(in_backup > 0 && in_backup <= 400, "{out}");

    // The original refuses to be overwritten.
    let (code, out) = outcome(&daygle_at(
        Some(&env.database_url),
        env.data_dir.path(),
        &["restore", &file.display().to_string()],
    ));
    assert_ne!(code, Some(0));
    assert!(out.contains("the target database is not empty"), "{out}");

    // A fresh database and data directory, as after losing the machine.
    let fresh_url = pg::fresh_database().await;
    let fresh_dir = tempfile::tempdir().unwrap();
    let (code, out) = outcome(&daygle_at(
        Some(&fresh_url),
        fresh_dir.path(),
        &["restore", &file.display().to_string()],
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("every count matches the manifest"), "{out}");
    assert!(
        fresh_dir.path().join("secrets/sealing_key").is_file(),
        "{out}"
    );
    for check in [["verify", "archive"], ["verify", "audit"]] {
        let (code, out) = outcome(&daygle_at(Some(&fresh_url), fresh_dir.path(), &check));
        assert_eq!(code, Some(0), "{check:?}: {out}");
    }
    let restored = sqlx::PgPool::connect(&fresh_url).await.unwrap();
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT uid, blob_sha256 FROM messages ORDER BY uid")
            .fetch_all(&restored)
            .await
            .unwrap();
    assert_eq!(rows.len() as i64, in_backup);
    let server = env.server("alice", "INBOX").await;
    for (uid, sha) in &rows {
        assert_eq!(
            server.get(uid),
            Some(&hex::encode(sha)),
            "UID {uid} is what the server holds"
        );
    }
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id DESC LIMIT 2")
            .fetch_all(&restored)
            .await
            .unwrap();
    assert_eq!(actions, ["backup.restore", "backup.create"]);
    restored.close().await;

    // Users sign in to the restored archive.
    let app = start_app(&fresh_url, fresh_dir).await;
    let admin = app.sign_in("admin", PASSWORD).await;
    assert_eq!(app.page(&admin, "/users").await.0, 200);
    app.stop().await;

    // The same file restores into an empty embedded data directory too.
    let embedded = shared_tempdir();
    let (code, out) = outcome(&daygle_at(
        None,
        embedded.path(),
        &["restore", &file.display().to_string()],
    ));
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = outcome(&daygle_at(None, embedded.path(), &["verify", "archive"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("checked {in_backup} messages")),
        "{out}"
    );
}

async fn start_app(url: &str, data_dir: tempfile::TempDir) -> TestApp {
    let mut settings = daygle::config::Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = daygle::config::Secret::new(url);
    settings.database.max_connections = 5;
    settings.storage.data_dir = data_dir.path().display().to_string();
    let app = daygle::App::build(settings).await.expect("app builds");
    let addr = app.local_addr();
    let pool = app.state().pool.clone();
    let shutdown = app.shutdown_token();
    let db_health = app.state().db_health.clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        url: format!("http://{addr}"),
        client: common::client(),
        pool,
        database_url: url.into(),
        data_dir,
        shutdown,
        server: Some(server),
        db_health,
    }
}

#[tokio::test]
async fn an_encrypted_backup_needs_its_key_and_a_tampered_one_is_refused() {
    let a = archive_with_mail().await;
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("backup.key");
    let other = work.path().join("other.key");
    std::fs::write(&key, daygle::secrets::generate_key()).unwrap();
    std::fs::write(&other, daygle::secrets::generate_key()).unwrap();
    let file = work.path().join("sealed.backup");
    let f = file.display().to_string();
    let (code, out) = outcome(&run(
        &a.app,
        &[
            "backup",
            "--output",
            &f,
            "--encrypt-key-file",
            &key.display().to_string(),
        ],
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("encrypted"), "{out}");
    assert!(
        out.contains("keys not included"),
        "without --include-keys it says so: {out}"
    );
    let sealed = std::fs::read(&file).unwrap();
    assert!(
        !sealed.windows(5).any(|w| w == b"PGDMP")
            && !sealed.windows(13).any(|w| w == b"manifest.json"),
        "nothing readable without the key"
    );

    let target = pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let restore = |extra: &[&str]| {
        let mut args = vec!["restore", f.as_str()];
        args.extend_from_slice(extra);
        outcome(&daygle_at(Some(&target), dir.path(), &args))
    };
    let (code, out) = restore(&[]);
    assert_ne!(code, Some(0));
    assert!(out.contains("this backup is encrypted"), "{out}");
    let (code, out) = restore(&["--decrypt-key-file", &other.display().to_string()]);
    assert_ne!(code, Some(0));
    assert!(out.contains("encrypted with key"), "{out}");

    let mut tampered = sealed.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    std::fs::write(&file, &tampered).unwrap();
    let (code, out) = restore(&["--decrypt-key-file", &key.display().to_string()]);
    assert_ne!(code, Some(0));
    assert!(out.contains("damaged or was altered"), "{out}");
    let target_pool = sqlx::PgPool::connect(&target).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&target_pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a refused backup changes nothing");

    std::fs::write(&file, &sealed).unwrap();
    let (code, out) = restore(&["--decrypt-key-file", &key.display().to_string()]);
    assert_eq!(code, Some(0), "{out}");
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&target_pool)
        .await
        .unwrap();
    assert_eq!(messages, 4);
}

#[tokio::test]
async fn a_backup_of_an_older_schema_is_migrated_on_restore_and_an_altered_one_is_refused() {
    let old_url = pg::fresh_database().await;
    let old = sqlx::PgPool::connect(&old_url).await.unwrap();
    let newest = daygle::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    let older = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            daygle::db::MIGRATOR
                .iter()
                .filter(|m| m.version < newest)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    older.run(&old).await.expect("older schema");
    create_admin(&old).await;
    old.close().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.backup");
    let f = file.display().to_string();
    let (code, out) = outcome(&daygle_at(
        Some(&old_url),
        dir.path(),
        &["backup", "--output", &f],
    ));
    assert_eq!(code, Some(0), "{out}");
    let target = pg::fresh_database().await;
    let original = std::fs::read(&file).unwrap();
    let mut altered = original.clone();
    altered[original.len() / 2] ^= 0x20;
    std::fs::write(&file, &altered).unwrap();
    let (code, out) = outcome(&daygle_at(Some(&target), dir.path(), &["restore", &f]));
    assert_ne!(code, Some(0));
    assert!(
        out.contains("database.dump does not match its SHA-256 in the manifest"),
        "{out}"
    );
    std::fs::write(&file, &original).unwrap();
    let (code, out) = outcome(&daygle_at(Some(&target), dir.path(), &["restore", &f]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("applied 1 newer schema migrations"), "{out}");
    let pool = sqlx::PgPool::connect(&target).await.unwrap();
    let status = daygle::db::migration_status(&pool).await.unwrap();
    assert!(status.is_current(), "{status:?}");
}
