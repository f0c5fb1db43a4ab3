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
    google: FakeGoogle,
}

async fn env() -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let google = FakeGoogle::start("alice@example.com").await;
    let (mut settings, dir, database_url) = common::test_settings().await;
    let secret = dir.path().join("google_client_secret");
    std::fs::write(&secret, format!("{}\n", common::fake_google::CLIENT_SECRET)).expect("secret");
    google.configure(&mut settings, secret.to_str().expect("path"));
    settings.sync.batch_messages = 2;
    let pool = common::pg::migrated_pool(&database_url).await;
    let keys = Keys::load(&settings.security, dir.path()).expect("keys");
    Env {
        settings,
        pool,
        keys,
        _dir: dir,
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
