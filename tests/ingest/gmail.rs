//! The Gmail API source against a fake Google on loopback (tests/common/fake_google.rs): first
//! sync byte-exact with labels, incremental history with label changes, expired history,
//! rate limits, revoked consent, the browser connect flow's PKCE and state checks, and a
//! service account with domain-wide delegation.

use std::collections::BTreeMap;

use sha2::Digest;

use crate::common::{self, fake_google::FakeGoogle};
use daygle::config::Settings;
use daygle::ingest::accounts::{self, Account, OAuthSettings};
use daygle::ingest::oauth::{connect, store};
use daygle::ingest::source::{SyncDeps, SyncOutcome, sync_account};
use daygle::secrets::Keys;

struct Env {
    settings: Settings,
    pool: sqlx::PgPool,
    keys: Keys,
    _dir: tempfile::TempDir,
    database_url: String,
    google: FakeGoogle,
}

async fn env() -> Env {
    let (settings, dir, database_url) = common::test_settings().await;
    let pool = common::pg::migrated_pool(&database_url).await;
    env_on(settings, dir, pool, database_url).await
}

/// The Gmail side of a test on `pool` (a fresh database, or a running app's).
async fn env_on(
    mut settings: Settings,
    dir: tempfile::TempDir,
    pool: sqlx::PgPool,
    database_url: String,
) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let google = FakeGoogle::start("alice@example.com").await;
    let secret = dir.path().join("google_client_secret");
    std::fs::write(&secret, format!("{}\n", common::fake_google::CLIENT_SECRET)).expect("secret");
    google.configure(&mut settings, secret.to_str().expect("path"));
    settings.sync.batch_messages = 2;
    let keys = Keys::load(&settings.security, dir.path()).expect("keys");
    Env {
        settings,
        pool,
        keys,
        _dir: dir,
        database_url,
        google,
    }
}

fn raw(n: usize) -> Vec<u8> {
    // CRLF, an 8-bit byte and trailing whitespace: stored byte for byte or the hash differs.
    format!(
        "From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: Gmail {n}\r\nMessage-ID: <g{n}@example.com>\r\nDate: Mon, 6 Nov 2023 10:00:00 +0000\r\n\r\nBody {n} caf\u{e9}  \r\n"
    )
    .into_bytes()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Env {
    /// A Gmail account connected in the browser (its refresh token stored sealed).
    async fn connected(&self, name: &str) -> Account {
        let mut tx = self.pool.begin().await.expect("tx");
        let id = accounts::create_oauth(
            &mut tx,
            &OAuthSettings {
                name: name.into(),
                kind: "gmail".into(),
                mailbox: None,
                app_only: false,
                poll_interval_secs: 60,
            },
        )
        .await
        .expect("create");
        let account = accounts::get(&mut *tx, id).await.expect("account");
        self.google.grant_refresh("1//stored-refresh");
        store::save_connection(
            &mut tx,
            &self.keys.sealing,
            &account,
            &self.settings.google.token_url,
            &store::Connection {
                refresh: "1//stored-refresh",
                identity: "alice@example.com",
                expires_at: time::OffsetDateTime::now_utc(),
            },
        )
        .await
        .expect("connect");
        tx.commit().await.expect("commit");
        self.reload(id).await
    }

    async fn reload(&self, id: i64) -> Account {
        let mut conn = self.pool.acquire().await.expect("conn");
        accounts::get(&mut *conn, id).await.expect("account")
    }

    async fn sync(&self, account: &Account) -> daygle::error::Result<SyncOutcome> {
        let deps = SyncDeps {
            pool: &self.pool,
            settings: &self.settings,
            keys: &self.keys.sealing,
            heartbeat: None,
        };
        sync_account(&deps, account).await
    }

    /// Gmail id → (SHA-256 of the archived bytes, labels) for the account.
    async fn archived(&self, account_id: i64) -> BTreeMap<String, (String, Vec<String>)> {
        let rows: Vec<(i64, Vec<u8>, Vec<String>)> = sqlx::query_as(
            "SELECT uid, blob_sha256, labels FROM messages WHERE account_id = $1 AND folder = 'All Mail'",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .expect("archived");
        let mut out = BTreeMap::new();
        for (uid, sha, mut labels) in rows {
            labels.sort();
            let id = daygle::ingest::gmail::id_of(uid);
            assert!(
                out.insert(id.clone(), (hex::encode(sha), labels)).is_none(),
                "{id} archived twice"
            );
        }
        out
    }

    /// What the fake mailbox holds outside spam and trash, as `archived` shows it.
    fn expected(&self) -> BTreeMap<String, (String, Vec<String>)> {
        self.google
            .lock()
            .messages
            .iter()
            .filter(|(_, m)| !m.labels.iter().any(|l| l == "SPAM" || l == "TRASH"))
            .map(|(id, m)| {
                let mut labels = m.labels.clone();
                labels.sort();
                (id.clone(), (sha(&m.raw), labels))
            })
            .collect()
    }

    async fn position(&self, account_id: i64) -> Option<String> {
        sqlx::query_scalar(
            "SELECT delta FROM sync_state WHERE account_id = $1 AND folder = 'All Mail'",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .expect("position")
        .flatten()
    }
}

#[tokio::test]
async fn first_sync_is_byte_exact_one_message_per_id_with_labels_then_history_follows() {
    let env = env().await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let labels: &[&str] = match n {
            0 => &["INBOX", "Label_1", "Label_2"],
            1 => &["SPAM"],
            2 => &["SENT"],
            _ => &["INBOX", "UNREAD"],
        };
        ids.push(env.google.deliver(&raw(n), labels));
    }
    let account = env.connected("Alice Gmail").await;
    let first = env.sync(&account).await.expect("first sync");
    assert_eq!(first.archived, 6, "six messages outside spam, each once");
    assert_eq!(env.archived(account.id).await, env.expected());
    assert_eq!(
        env.position(account.id).await.as_deref(),
        Some("1007"),
        "the position is the historyId read before listing"
    );
    // One message with three labels is one row carrying all three, by name.
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(l.name, x) FROM messages m CROSS JOIN unnest(m.labels) x
         LEFT JOIN account_labels l ON l.account_id = m.account_id AND l.label_id = x
         WHERE m.account_id = $1 AND m.uid = $2 ORDER BY 1",
    )
    .bind(account.id)
    .bind(daygle::ingest::gmail::uid_of(&ids[0]).expect("id"))
    .fetch_all(&env.pool)
    .await
    .expect("labels");
    assert_eq!(names, ["INBOX", "Invoices", "Projects/Apollo"]);

    // Incremental: a new message, a label added and one removed, and spam moved to the inbox.
    let new_id = env.google.deliver(&raw(7), &["INBOX"]);
    env.google.relabel(&ids[2], "Label_2", true);
    env.google.relabel(&ids[0], "Label_1", false);
    env.google.relabel(&ids[1], "INBOX", true);
    env.google.relabel(&ids[1], "SPAM", false);
    let gets_before = env.google.lock().get_calls;
    let second = env.sync(&account).await.expect("incremental sync");
    assert_eq!(
        second.archived, 2,
        "the new message and the one out of spam"
    );
    assert_eq!(
        env.google.lock().get_calls - gets_before,
        2,
        "only new messages are fetched"
    );
    assert_eq!(env.archived(account.id).await, env.expected());
    assert!(env.archived(account.id).await.contains_key(&new_id));
    let history_now = env.google.lock().history_id.to_string();
    assert_eq!(env.position(account.id).await, Some(history_now));

    // Nothing new: nothing fetched, nothing stored.
    let third = env.sync(&account).await.expect("quiet sync");
    assert_eq!((third.archived, third.fetched), (0, 0));
}

#[tokio::test]
async fn expired_history_relists_the_mailbox_and_adds_nothing_twice() {
    let env = env().await;
    for n in 0..5 {
        env.google.deliver(&raw(n), &["INBOX"]);
    }
    let account = env.connected("Alice Gmail").await;
    env.sync(&account).await.expect("first sync");
    let before = env.archived(account.id).await;
    env.google.deliver(&raw(5), &["INBOX"]);
    env.google.expire_history();
    let again = env.sync(&account).await.expect("sync after expiry");
    assert_eq!(again.archived, 1, "only the new message is added");
    let after = env.archived(account.id).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after, env.expected());
    let history_now = env.google.lock().history_id.to_string();
    assert_eq!(env.position(account.id).await, Some(history_now));
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_nothing_is_lost() {
    let env = env().await;
    for n in 0..4 {
        env.google.deliver(&raw(n), &["INBOX"]);
    }
    let account = env.connected("Alice Gmail").await;
    {
        let mut g = env.google.lock();
        g.throttle_429 = 2;
        g.throttle_403 = 1;
    }
    env.sync(&account).await.expect("sync through throttling");
    assert_eq!(env.google.lock().throttled, 3);
    assert_eq!(env.archived(account.id).await, env.expected());
}

#[tokio::test]
async fn revoked_consent_stops_the_account_until_it_is_reconnected_without_retrying() {
    let env = env().await;
    env.google.deliver(&raw(0), &["INBOX"]);
    let account = env.connected("Alice Gmail").await;
    env.google.revoke_all();
    let err = env.sync(&account).await.expect_err("refused");
    assert!(
        daygle::error::chain(&err).contains("reconnect this account"),
        "{}",
        daygle::error::chain(&err)
    );
    let stopped = env.reload(account.id).await;
    assert_eq!(stopped.oauth_state, "reconnect");
    assert!(
        stopped.oauth_refresh_sealed.is_none(),
        "the dead token is dropped"
    );
    let calls = env.google.lock().token_calls;
    assert!(env.sync(&stopped).await.is_err());
    assert_eq!(
        env.google.lock().token_calls,
        calls,
        "a stopped account does not ask the token endpoint again"
    );
    let due = daygle::ingest::scheduler::due_accounts(&env.pool)
        .await
        .expect("due");
    assert!(
        due.iter().all(|a| a.id != account.id),
        "the scheduler skips it"
    );
    let findings = daygle::notify::conditions::check(
        &daygle::notify::conditions::Context {
            pool: &env.pool,
            scanner: None,
            data_dir: env._dir.path(),
        },
        &daygle::notify::triggers::Trigger::AccountReconnect.default_config(),
    )
    .await
    .expect("alert check");
    assert_eq!(findings.len(), 1);
    assert!(
        findings[0]
            .title
            .contains("Reconnect the account Alice Gmail")
    );
}

/// Follows the fake consent page: the code and state it redirects back with.
async fn consent(url: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client.get(url).send().await.expect("consent page");
    let location = response
        .headers()
        .get("location")
        .expect("redirect")
        .to_str()
        .expect("text")
        .to_string();
    let parsed = url::Url::parse(&location).expect("url");
    assert_eq!(parsed.path(), connect::CALLBACK_PATH);
    let q: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
    (q["state"].clone(), q["code"].clone())
}

#[tokio::test]
async fn connecting_needs_this_sessions_fresh_single_use_state_and_the_pkce_verifier() {
    let env = env().await;
    env.google.deliver(&raw(0), &["INBOX"]);
    let mut tx = env.pool.begin().await.expect("tx");
    let id = accounts::create_oauth(
        &mut tx,
        &OAuthSettings {
            name: "Alice Gmail".into(),
            kind: "gmail".into(),
            mailbox: None,
            app_only: false,
            poll_interval_secs: 60,
        },
    )
    .await
    .expect("create");
    tx.commit().await.expect("commit");
    let redirect = connect::redirect_url("http://archive.test");
    let actor = daygle::audit::Actor::cli();
    let finish = |pending: Option<connect::Pending>, state: String, code: String| {
        let (pool, settings, keys, actor, redirect) = (
            &env.pool,
            &env.settings,
            &env.keys.sealing,
            &actor,
            &redirect,
        );
        async move {
            connect::finish(
                pool,
                settings,
                keys,
                actor,
                pending,
                &connect::Callback {
                    state: Some(&state),
                    code: Some(&code),
                    error: None,
                },
                redirect,
            )
            .await
        }
    };

    let (url, pending) = connect::begin(&env.pool, &env.settings, id, &redirect)
        .await
        .expect("begin");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("gmail.readonly"), "{url}");
    assert!(
        !url.contains(&pending.verifier),
        "the verifier never leaves"
    );
    let (state, code) = consent(&url).await;

    // Another session (no pending connection), a forged state, then the right one.
    assert!(finish(None, state.clone(), code.clone()).await.is_err());
    assert!(
        finish(Some(pending.clone()), "forged".into(), code.clone())
            .await
            .is_err()
    );
    let (_, identity) = finish(Some(pending.clone()), state.clone(), code.clone())
        .await
        .expect("connect");
    assert_eq!(identity, "alice@example.com");
    // Used once: the session no longer holds it, and the code is spent at Google too.
    assert!(finish(None, state.clone(), code.clone()).await.is_err());
    assert!(finish(Some(pending), state, code).await.is_err());

    // A code redeemed with another connection's verifier is refused by PKCE.
    let (url2, mut pending2) = connect::begin(&env.pool, &env.settings, id, &redirect)
        .await
        .expect("begin");
    let (state2, code2) = consent(&url2).await;
    pending2.verifier = "x".repeat(64);
    let err = finish(Some(pending2), state2, code2)
        .await
        .expect_err("pkce");
    assert!(daygle::error::chain(&err).contains("invalid_grant"));

    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'account.connect_refused'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("audit");
    assert_eq!(refused, 5, "every refused callback is audited");
    let account = env.reload(id).await;
    assert_eq!(account.oauth_identity.as_deref(), Some("alice@example.com"));
    assert_eq!(account.mailbox.as_deref(), Some("alice@example.com"));
    env.sync(&account).await.expect("sync after connecting");
    assert_eq!(env.archived(id).await, env.expected());
}

#[tokio::test]
async fn a_service_account_archives_each_mailbox_by_impersonating_it() {
    let mut env = env().await;
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": common::fake_google::SA_EMAIL,
        "private_key_id": "test-key-1",
        "private_key": std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/google/service_account_test_key.pem")
        ).expect("key"),
    });
    let key_file = env._dir.path().join("sa.json");
    std::fs::write(&key_file, key.to_string()).expect("write key");
    env.settings.google.service_account_key_file = key_file.to_str().expect("path").into();
    for n in 0..3 {
        env.google.deliver(&raw(n), &["INBOX"]);
    }
    daygle::ingest::oauth::check_app_credentials(&env.settings, "gmail", Some("bob@example.com"))
        .await
        .expect("credentials work");
    let mut tx = env.pool.begin().await.expect("tx");
    let id = accounts::create_oauth(
        &mut tx,
        &OAuthSettings {
            name: "bob@example.com".into(),
            kind: "gmail".into(),
            mailbox: Some("bob@example.com".into()),
            app_only: true,
            poll_interval_secs: 60,
        },
    )
    .await
    .expect("create");
    tx.commit().await.expect("commit");
    let account = env.reload(id).await;
    env.sync(&account).await.expect("sync");
    assert_eq!(env.archived(id).await, env.expected());
    assert!(
        env.google
            .lock()
            .jwt_subjects
            .iter()
            .all(|s| s == "bob@example.com")
    );
}

/// Message ids a list page links to, in order.
fn listed(html: &str) -> Vec<i64> {
    html.split("<a href=\"/messages/")
        .skip(1)
        .filter_map(|rest| rest[..rest.find(['"', '?'])?].parse().ok())
        .collect()
}

#[tokio::test]
async fn labels_show_as_tags_are_found_with_label_and_follow_gmail_changes() {
    let app = common::auth::spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut settings = Settings::default();
    settings.storage.data_dir = dir.path().display().to_string();
    let env = env_on(settings, dir, app.pool.clone(), app.database_url.clone()).await;
    let two = env.google.deliver(
        &raw(0),
        &["INBOX", "IMPORTANT", "UNREAD", "Label_1", "Label_3"],
    );
    let sent = env.google.deliver(&raw(1), &["SENT"]);
    let other_gmail = env.google.deliver(&raw(2), &["INBOX", "Label_2"]);
    let account = env.connected("Alice Gmail").await;
    env.sync(&account).await.expect("first sync");
    // Another account names its own Label_2 "Projects/Apollo": that must not make this
    // account's Label_2 (Invoices) answer to the name.
    let elsewhere = app.insert_account("elsewhere").await;
    sqlx::query("INSERT INTO account_labels (account_id, label_id, name) VALUES ($1, 'Label_2', 'Projects/Apollo')")
        .bind(elsewhere)
        .execute(&app.pool)
        .await
        .expect("other account's label");
    let row = |gmail_id: String| {
        let pool = app.pool.clone();
        let account = account.id;
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM messages WHERE account_id = $1 AND uid = $2",
            )
            .bind(account)
            .bind(daygle::ingest::gmail::uid_of(&gmail_id).expect("gmail id"))
            .fetch_one(&pool)
            .await
            .expect("archived once")
        }
    };
    let (two, sent, other) = (
        row(two).await,
        row(sent).await,
        row(other_gmail.clone()).await,
    );
    let search = |q: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let url = format!("/messages?q={}", daygle::render::html::percent_encode(q));
            let (status, html) = app.page(admin, &url).await;
            assert_eq!(status, 200, "{q}");
            let mut ids = listed(&html);
            ids.sort();
            (ids, html)
        }
    };

    // One message, both user labels as tags (system labels by Gmail's names, no unread tag,
    // no raw ids), escaped.
    let (ids, html) = search("label:\"projects/apollo\"").await;
    assert_eq!(ids, [two]);
    for tag in [
        "Inbox",
        "Important",
        "Client A &#60;b&#62;",
        "Projects/Apollo",
    ] {
        assert!(
            html.contains(&format!("<span class=\"tag\" title=\"{tag}\">{tag}</span>")),
            "row tag {tag}: {html}"
        );
    }
    assert!(!html.contains("Client A <b>"), "a label name is escaped");
    for raw_id in ["Label_1", "Label_3", "UNREAD", "Unread", "IMPORTANT"] {
        assert!(!html.contains(raw_id), "{raw_id} shown: {html}");
    }
    let (_, page) = app.page(&admin, &format!("/messages/{two}")).await;
    let labels = &page[page
        .find("id=\"labels\"")
        .expect("labels on the message page")..];
    let labels = &labels[..labels.find("</dd>").expect("end")];
    let shown: Vec<&str> = labels
        .split("class=\"tag\"")
        .skip(1)
        .filter_map(|t| {
            t.split_once('>')
                .and_then(|(_, r)| r.split_once('<'))
                .map(|(n, _)| n)
        })
        .collect();
    assert_eq!(
        shown,
        [
            "Inbox",
            "Important",
            "Client A &#60;b&#62;",
            "Projects/Apollo"
        ]
    );
    assert!(
        labels.contains("href=\"/messages?q=label%3A%22Projects%2FApollo%22\""),
        "{labels}"
    );

    // Case-insensitive, quoted names with spaces, system labels by name, negation.
    assert_eq!(search("label:\"CLIENT A <b>\"").await.0, [two]);
    assert_eq!(search("label:sent").await.0, [sent]);
    let mut inbox = vec![two, other];
    inbox.sort();
    assert_eq!(search("label:Inbox").await.0, inbox);
    assert_eq!(search("label:invoices").await.0, [other]);
    assert_eq!(search("gmail -label:inbox").await.0, [sent]);
    assert_eq!(
        search("label:Label_1").await.0,
        Vec::<i64>::new(),
        "not by raw id"
    );

    // Removed upstream (labelsRemoved), and added to another message (labelsAdded).
    let two_gmail = daygle::ingest::gmail::id_of(
        sqlx::query_scalar::<_, i64>("SELECT uid FROM messages WHERE id = $1")
            .bind(two)
            .fetch_one(&app.pool)
            .await
            .expect("uid"),
    );
    env.google.relabel(&two_gmail, "Label_1", false);
    env.google.relabel(&other_gmail, "Label_1", true);
    let again = env.sync(&account).await.expect("incremental sync");
    assert_eq!(again.archived, 0, "a label change stores nothing new");
    assert_eq!(search("label:\"projects/apollo\"").await.0, [other]);
    let (_, page) = app.page(&admin, &format!("/messages/{two}")).await;
    assert!(
        !page.contains("Projects/Apollo"),
        "the removed label is gone"
    );
    assert!(
        page.contains("Client A &#60;b&#62;"),
        "the other label stays"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE account_id = $1")
        .bind(account.id)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 3, "still one row per Gmail message");
}

/// Writes the service account key the fake accepts; returns its path.
fn service_account_key(dir: &std::path::Path) -> std::path::PathBuf {
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": common::fake_google::SA_EMAIL,
        "private_key_id": "test-key-1",
        "private_key": std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/google/service_account_test_key.pem")
        ).expect("key"),
    });
    let path = dir.join("sa.json");
    std::fs::write(&path, key.to_string()).expect("write key");
    path
}

/// `daygle` as an operator runs it against this test's database and fake Google.
fn daygle(env: &Env) -> std::process::Command {
    let dir = env._dir.path();
    let mut cmd = std::process::Command::new(common::daygle_bin());
    cmd.current_dir(dir)
        .env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", dir)
        .env("DAYGLE__SYNC__BATCH_MESSAGES", "4")
        .env("DAYGLE__LOGGING__LEVEL", "warn")
        .env("DAYGLE__GOOGLE__CLIENT_ID", common::fake_google::CLIENT_ID)
        .env(
            "DAYGLE__GOOGLE__CLIENT_SECRET_FILE",
            &env.settings.google.client_secret_file,
        )
        .env(
            "DAYGLE__GOOGLE__SERVICE_ACCOUNT_KEY_FILE",
            service_account_key(dir),
        )
        .env("DAYGLE__GOOGLE__AUTH_URL", &env.settings.google.auth_url)
        .env("DAYGLE__GOOGLE__TOKEN_URL", &env.settings.google.token_url)
        .env("DAYGLE__GOOGLE__API_URL", &env.settings.google.api_url)
        .stdin(std::process::Stdio::null());
    cmd
}

/// `daygle sync --once` until the killed run's lock no longer turns it away.
async fn sync_with_cli(env: &Env) {
    for _ in 0..50 {
        let out = daygle(env).args(["sync", "--once"]).output().expect("sync");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !stdout.contains("already being synced") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the killed process's lock was never released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_full_listing_resumes_hash_equal_and_moves_the_history_id_only_with_the_rows()
 {
    let env = env().await;
    env.google.lock().page_size = 10;
    for n in 0..120 {
        let labels: &[&str] = if n % 7 == 0 {
            &["INBOX", "Label_1", "Label_2"]
        } else {
            &["INBOX"]
        };
        env.google.deliver(&raw(n), labels);
    }
    let listing_start = env.google.lock().history_id.to_string();
    let out = daygle(&env)
        .args([
            "account",
            "add",
            "--kind",
            "gmail",
            "--name",
            "Alice Gmail",
            "--mailbox",
            "alice@example.com",
        ])
        .output()
        .expect("account add");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let account_id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE kind = 'gmail'")
        .fetch_one(&env.pool)
        .await
        .expect("account");

    env.google.lock().get_delay_ms = 40;
    let mut child = daygle(&env)
        .args(["sync", "--once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start daygle sync");
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&env.pool)
            .await
            .expect("count");
        if n >= 12 {
            break;
        }
        assert!(
            child.try_wait().expect("child").is_none(),
            "sync ended before it could be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    child.wait().expect("reap");
    let partial = env.archived(account_id).await;
    assert!(
        !partial.is_empty() && partial.len() < 120,
        "killed mid-listing ({} archived)",
        partial.len()
    );
    assert_eq!(
        env.position(account_id).await,
        None,
        "no history id before every listed message is archived"
    );
    // What the killed rows hold is what Gmail holds for them, labels included.
    let expected = env.expected();
    for (id, row) in &partial {
        assert_eq!(Some(row), expected.get(id), "{id}");
    }

    // Meanwhile in Gmail: a new message, and a label removed from an archived one.
    let late = env.google.deliver(&raw(500), &["INBOX", "Label_2"]);
    let relabelled = partial.keys().next().expect("one archived").clone();
    env.google.relabel(&relabelled, "INBOX", false);
    env.google.lock().get_delay_ms = 0;
    let gets_before = env.google.lock().get_calls;
    sync_with_cli(&env).await;
    assert_eq!(
        env.position(account_id).await,
        Some(listing_start),
        "the listing's own start becomes the position once it is complete"
    );
    assert_eq!(
        env.google.lock().get_calls - gets_before,
        (121 - partial.len()) as usize,
        "only what the killed run had not archived is fetched"
    );
    // The next pass follows the history from there: the label change arrives, nothing twice.
    sync_with_cli(&env).await;
    assert_eq!(env.archived(account_id).await, env.expected());
    assert!(env.archived(account_id).await.contains_key(&late));
    let now = env.google.lock().history_id.to_string();
    assert_eq!(env.position(account_id).await, Some(now));
}
