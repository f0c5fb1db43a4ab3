//! The Microsoft Graph source against a fake Microsoft 365 on loopback (written to the Graph
//! v1.0 reference): folder tree, delta rounds with nextLink/deltaLink, `$value` byte-exact,
//! incremental passes, expired delta tokens, throttling, revoked consent, and a sync killed
//! mid-pass that resumes hash-equal.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::common::microsoft::{self, FakeMicrosoft};
use crate::common::{self, daygle_bin};
use daygle::audit::Actor;
use daygle::config::Settings;
use daygle::ingest::accounts::{self, Account, OAuthSettings};
use daygle::ingest::imap::sync::SyncDeps;
use daygle::ingest::{manage, source};
use daygle::secrets::Keys;

use super::support::message;

const USER: &str = "ann@contoso.example";

struct Env {
    settings: Settings,
    pool: PgPool,
    keys: Keys,
    data_dir: tempfile::TempDir,
    database_url: String,
    ms: FakeMicrosoft,
}

async fn env() -> Env {
    let ms = FakeMicrosoft::start().await;
    let (mut settings, data_dir, database_url) = common::test_settings().await;
    let secret = data_dir.path().join("graph-secret");
    std::fs::write(&secret, format!("{}\n", microsoft::CLIENT_SECRET)).expect("secret file");
    settings.microsoft.tenant_id = microsoft::TENANT.into();
    settings.microsoft.client_id = microsoft::CLIENT_ID.into();
    settings.microsoft.client_secret_file = secret.display().to_string();
    settings.microsoft.token_url = ms.token_url();
    settings.microsoft.api_url = ms.url.clone();
    settings.sync.batch_messages = 4;
    let pool = common::pg::migrated_pool(&database_url).await;
    let keys = Keys::load(&settings.security, data_dir.path()).expect("keys");
    Env {
        settings,
        pool,
        keys,
        data_dir,
        database_url,
        ms,
    }
}

impl Env {
    async fn account(&self, name: &str, mailbox: &str) -> Account {
        let id = manage::create_oauth_account(
            &self.pool,
            &Actor::cli(),
            &OAuthSettings {
                name: name.into(),
                kind: "graph".into(),
                mailbox: Some(mailbox.into()),
                app_only: true,
                poll_interval_secs: 60,
            },
        )
        .await
        .expect("create account");
        accounts::get(&self.pool, id).await.expect("account")
    }

    async fn sync(&self, account: &Account) -> daygle::error::Result<source::SyncOutcome> {
        let deps = SyncDeps {
            pool: &self.pool,
            settings: &self.settings,
            keys: &self.keys.sealing,
            heartbeat: None,
        };
        source::sync_account(&deps, account).await
    }

    /// folder → sorted hex SHA-256s of what the archive holds for the account.
    async fn archived(&self, account_id: i64) -> BTreeMap<String, Vec<String>> {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT folder, uid, blob_sha256 FROM messages WHERE account_id = $1 ORDER BY uid",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .expect("archived");
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for (folder, uid, sha) in rows {
            assert!(
                seen.insert((folder.clone(), uid)),
                "{folder}/{uid} stored twice"
            );
            out.entry(folder).or_default().push(hex::encode(sha));
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    /// The same shape for what the fake mailbox holds (`path` → folder id).
    fn server(&self, folders: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (path, id) in folders {
            let mut v: Vec<String> = self
                .ms
                .messages(USER, id)
                .iter()
                .map(|(_, raw)| hex::encode(daygle::archive::blobs::sha256(raw)))
                .collect();
            v.sort();
            if !v.is_empty() {
                out.insert(path.to_string(), v);
            }
        }
        out
    }
}

fn batch(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| message(tag, i)).collect()
}

/// Inbox (23 messages: three delta pages), Inbox/Projects (3), Sent Items (2, one of them the
/// same content as an Inbox message), an empty Archive: paths and ids.
fn mailbox(ms: &FakeMicrosoft) -> Vec<(&'static str, String)> {
    let inbox = ms.add_folder(USER, "Inbox", None);
    let projects = ms.add_folder(USER, "Projects", Some(&inbox));
    let sent = ms.add_folder(USER, "Sent Items", None);
    let archive = ms.add_folder(USER, "Archive", None);
    ms.deliver(USER, &inbox, &batch("inbox", 23));
    ms.deliver(USER, &projects, &batch("projects", 3));
    ms.deliver(USER, &sent, &[message("sent", 0), message("inbox", 5)]);
    vec![
        ("Inbox", inbox),
        ("Inbox/Projects", projects),
        ("Sent Items", sent),
        ("Archive", archive),
    ]
}

fn refs<'a>(folders: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    folders.iter().map(|(p, id)| (*p, id.as_str())).collect()
}

#[tokio::test]
async fn a_first_pass_archives_every_folder_byte_exact_and_later_passes_fetch_only_new_mail() {
    let env = env().await;
    let folders = mailbox(&env.ms);
    let account = env.account("Contoso Ann", USER).await;

    let first = env.sync(&account).await.expect("first pass");
    assert_eq!(first.folders, 4);
    assert_eq!((first.fetched, first.archived), (28, 28));
    assert_eq!(env.archived(account.id).await, env.server(&refs(&folders)));
    // The same content in two folders: two copies, one blob.
    let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(blobs, 27);
    assert_eq!(env.ms.calls("value"), 28);

    let quiet = env.sync(&account).await.expect("second pass");
    assert_eq!((quiet.fetched, quiet.archived), (0, 0));
    assert_eq!(env.ms.calls("value"), 28, "nothing is downloaded again");

    env.ms.deliver(USER, &folders[0].1, &batch("later", 2));
    env.ms
        .deliver(USER, &folders[1].1, &batch("later-projects", 1));
    let next = env.sync(&account).await.expect("third pass");
    assert_eq!((next.fetched, next.archived), (3, 3));
    assert_eq!(env.archived(account.id).await, env.server(&refs(&folders)));
}

#[tokio::test]
async fn an_expired_delta_token_lists_the_folder_again_without_storing_anything_twice() {
    let env = env().await;
    let folders = mailbox(&env.ms);
    let account = env.account("Contoso Ann", USER).await;
    env.sync(&account).await.expect("first pass");
    let downloads = env.ms.calls("value");

    env.ms.expire_deltas(USER, &folders[0].1);
    env.ms
        .deliver(USER, &folders[0].1, &batch("after-expiry", 2));
    let pass = env.sync(&account).await.expect("pass after expiry");
    assert_eq!((pass.fetched, pass.archived), (2, 2));
    assert_eq!(
        env.ms.calls("value"),
        downloads + 2,
        "only the new messages are downloaded"
    );
    assert_eq!(env.archived(account.id).await, env.server(&refs(&folders)));
}

#[tokio::test]
async fn throttled_calls_wait_as_retry_after_says_and_the_pass_completes() {
    let env = env().await;
    let folders = mailbox(&env.ms);
    let account = env.account("Contoso Ann", USER).await;
    env.ms.world.lock().unwrap().throttle_next = 3;
    let pass = env.sync(&account).await.expect("throttled pass");
    assert_eq!(pass.archived, 28);
    assert_eq!(env.ms.world.lock().unwrap().throttled, 3);
    assert_eq!(env.archived(account.id).await, env.server(&refs(&folders)));
}

#[tokio::test]
async fn revoked_consent_and_a_removed_secret_stop_the_pass_with_words_an_operator_can_act_on() {
    let env = env().await;
    mailbox(&env.ms);
    let account = env.account("Contoso Ann", USER).await;
    env.ms.world.lock().unwrap().consent_revoked = true;
    let err = env.sync(&account).await.expect_err("refused");
    let text = daygle::error::chain(&err);
    assert!(text.contains("admin consent"), "{text}");
    assert_eq!(env.ms.calls("value"), 0);

    {
        let mut w = env.ms.world.lock().unwrap();
        w.consent_revoked = false;
        w.secret_revoked = true;
        w.tokens.clear();
    }
    let err = env.sync(&account).await.expect_err("no token");
    let text = daygle::error::chain(&err);
    assert!(text.contains("invalid_client"), "{text}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn deleted_items_and_junk_are_left_out_by_their_well_known_ids_unless_a_pattern_names_them() {
    let env = env().await;
    let inbox = env.ms.add_folder(USER, "Inbox", None);
    // A German mailbox: the well-known folders have other names, and a folder the person made
    // is called "Junk Email" without being the junk folder.
    let deleted = env
        .ms
        .add_well_known_folder(USER, "Gelöschte Elemente", "deleteditems");
    let deleted_child = env.ms.add_folder(USER, "Altes Projekt", Some(&deleted));
    let junk = env
        .ms
        .add_well_known_folder(USER, "Junk-E-Mail", "junkemail");
    let own = env.ms.add_folder(USER, "Junk Email", None);
    let inbox_ids = env.ms.deliver(USER, &inbox, &batch("inbox", 2));
    env.ms.deliver(USER, &deleted, &batch("deleted", 2));
    env.ms
        .deliver(USER, &deleted_child, &batch("deleted-child", 1));
    env.ms.deliver(USER, &junk, &batch("junk", 1));
    env.ms.deliver(USER, &own, &batch("own", 1));
    let account = env.account("Contoso Ann", USER).await;

    let pass = env.sync(&account).await.expect("first pass");
    assert_eq!(pass.folders, 2);
    assert_eq!(
        env.archived(account.id).await,
        env.server(&[("Inbox", inbox.as_str()), ("Junk Email", own.as_str())]),
        "Deleted Items (and what is inside it) and Junk Email are left out by id"
    );

    // The arrival time is Graph's receivedDateTime, not when the archive fetched it.
    for id in &inbox_ids {
        let expected = time::OffsetDateTime::parse(
            &env.ms.received(USER, id),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time");
        let stored: Option<time::OffsetDateTime> = sqlx::query_scalar(
            "SELECT m.internal_date FROM messages m JOIN graph_ids g
                 ON g.account_id = m.account_id AND g.folder = m.folder AND g.uid = m.uid
             WHERE g.graph_id = $1",
        )
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .expect("stored");
        assert_eq!(stored, Some(expected), "{id}");
    }

    // An include pattern that names them brings them back: by well-known name, or by the
    // folder's own name.
    sqlx::query("UPDATE accounts SET folders_include = $2 WHERE id = $1")
        .bind(account.id)
        .bind(vec!["Inbox", "DeletedItems", "Junk-E-*"])
        .execute(&env.pool)
        .await
        .expect("patterns");
    let account = accounts::get(&env.pool, account.id).await.expect("account");
    let pass = env.sync(&account).await.expect("second pass");
    assert_eq!(pass.folders, 3);
    assert_eq!(
        env.archived(account.id).await,
        env.server(&[
            ("Inbox", inbox.as_str()),
            ("Junk Email", own.as_str()),
            ("Gelöschte Elemente", deleted.as_str()),
            ("Junk-E-Mail", junk.as_str()),
        ]),
        "the named ones come back; the folder inside Deleted Items was not named"
    );
}

fn daygle(env: &Env) -> Command {
    let mut cmd = Command::new(daygle_bin());
    let secret = env.data_dir.path().join("graph-secret");
    cmd.current_dir(env.data_dir.path())
        .env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
        .env("DAYGLE__SYNC__BATCH_MESSAGES", "4")
        .env("DAYGLE__LOGGING__LEVEL", "warn")
        .env("DAYGLE__MICROSOFT__TENANT_ID", microsoft::TENANT)
        .env("DAYGLE__MICROSOFT__CLIENT_ID", microsoft::CLIENT_ID)
        .env("DAYGLE__MICROSOFT__CLIENT_SECRET_FILE", &secret)
        .env("DAYGLE__MICROSOFT__TOKEN_URL", env.ms.token_url())
        .env("DAYGLE__MICROSOFT__API_URL", &env.ms.url)
        .stdin(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_pass_resumes_and_ends_hash_equal_with_the_mailbox() {
    let env = env().await;
    let inbox = env.ms.add_folder(USER, "Inbox", None);
    env.ms.deliver(USER, &inbox, &batch("crash", 120));
    // An operator adds the mailbox from the command line (app-only, [microsoft] settings).
    let out = daygle(&env)
        .args([
            "account",
            "add",
            "--kind",
            "graph",
            "--name",
            "Contoso Ann",
            "--mailbox",
            USER,
        ])
        .output()
        .expect("account add");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.ms.world.lock().unwrap().value_delay_ms = 20;
    let mut child = daygle(&env)
        .args(["sync", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daygle sync");
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        if n >= 12 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "sync ended too early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    let _ = child.wait();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(stored < 120, "killed mid-pass ({stored} stored)");
    env.ms.world.lock().unwrap().value_delay_ms = 0;
    let mut done = false;
    for _ in 0..50 {
        let out = daygle(&env)
            .args(["sync", "--once"])
            .output()
            .expect("sync again");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !stdout.contains("already being synced") {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(done, "the killed process's lock was released");
    let account_id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE kind = 'graph'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        env.archived(account_id).await,
        env.server(&[("Inbox", inbox.as_str())]),
        "every message exactly once, byte for byte"
    );
}
