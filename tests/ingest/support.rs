//! Shared set-up for the ingest tests: a database, keys, an account on a private Dovecot.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use sqlx::PgPool;
use zeroize::Zeroizing;

use crate::common::{self, dovecot::Dovecot};
use daygle::archive::listing::{Filters, Listing, Sort};
use daygle::archive::search::query;
use daygle::auth::grants::Grants;
use daygle::config::Settings;
use daygle::ingest::accounts::{self, Account, ImapSettings, TlsMode};
use daygle::ingest::imap::sync::{SyncDeps, SyncOutcome, sync_account};
use daygle::ingest::imap::{self, Endpoint, Timeouts};
use daygle::secrets::Keys;

pub struct Env {
    pub settings: Settings,
    pub pool: PgPool,
    pub keys: Keys,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    pub dovecot: Dovecot,
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

pub async fn env_with(adjust: impl FnOnce(&mut Settings)) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    let (mut settings, data_dir, database_url) = common::test_settings().await;
    settings.sync.connect_timeout_secs = 10;
    settings.sync.command_timeout_secs = 60;
    adjust(&mut settings);
    let pool = common::pg::migrated_pool(&database_url).await;
    let keys = Keys::load(&settings.security, data_dir.path()).expect("keys");
    Env {
        settings,
        pool,
        keys,
        data_dir,
        database_url,
        dovecot,
    }
}

impl Env {
    pub fn imap_settings(&self, name: &str, user: &str) -> ImapSettings {
        ImapSettings {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: self.dovecot.port,
            tls: TlsMode::None,
            username: user.into(),
            folders_include: vec![],
            folders_exclude: vec!["Trash".into(), "Junk".into(), "Spam".into()],
            poll_interval_secs: 60,
            delete_after_days: None,
            expunge: true,
            pinned_cert_sha256: None,
        }
    }

    /// Creates the Dovecot user and an archive account for it.
    pub async fn account(&self, name: &str, user: &str) -> Account {
        self.dovecot.add_user(user, &format!("{user}-pw"));
        self.account_with(self.imap_settings(name, user), &format!("{user}-pw"))
            .await
    }

    pub async fn account_with(&self, s: ImapSettings, password: &str) -> Account {
        let mut tx = self.pool.begin().await.expect("tx");
        let id = accounts::create_imap(&mut tx, &self.keys.sealing, &s, password)
            .await
            .expect("create account");
        tx.commit().await.expect("commit");
        self.reload(id).await
    }

    pub async fn reload(&self, id: i64) -> Account {
        let mut conn = self.pool.acquire().await.expect("conn");
        accounts::get(&mut *conn, id).await.expect("account")
    }

    pub async fn sync(&self, account: &Account) -> daygle::error::Result<SyncOutcome> {
        let deps = SyncDeps {
            pool: &self.pool,
            settings: &self.settings,
            keys: &self.keys.sealing,
            heartbeat: None,
        };
        sync_account(&deps, account).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }

    /// uid → hex SHA-256 of what the archive holds for this account folder.
    pub async fn archived(&self, account_id: i64, folder: &str) -> BTreeMap<i64, String> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT uid, blob_sha256 FROM messages WHERE account_id = $1 AND folder = $2",
        )
        .bind(account_id)
        .bind(folder)
        .fetch_all(&self.pool)
        .await
        .expect("archived");
        let mut map = BTreeMap::new();
        for (uid, sha) in rows {
            assert!(
                map.insert(uid, hex::encode(sha)).is_none(),
                "uid {uid} archived twice"
            );
        }
        map
    }

    /// uid → hex SHA-256 of what the server serves over IMAP (BODY.PEEK[]).
    pub async fn server(&self, user: &str, folder: &str) -> BTreeMap<i64, String> {
        server_hashes(self.dovecot.port, user, folder).await
    }

    pub async fn session(&self, user: &str) -> imap::Session {
        session(self.dovecot.port, user).await
    }

    /// Ids of the messages a full-access reader finds with `q`, newest first.
    pub async fn search(&self, q: &str) -> Vec<i64> {
        let query = query::parse(q).expect("query");
        let filters = Filters::default();
        let listing = Listing {
            grants: &Grants::All,
            query: &query,
            filters: &filters,
            sort: Sort::Newest,
        };
        let page = listing.page(&self.pool, None, 100).await.expect("search");
        page.items.into_iter().map(|m| m.id).collect()
    }
}

/// uid → hex SHA-256 of what the Dovecot on `port` serves `user` in `folder` (BODY.PEEK[]).
pub async fn server_hashes(port: u16, user: &str, folder: &str) -> BTreeMap<i64, String> {
    let mut s = session(port, user).await;
    s.examine(folder).await.expect("examine");
    let mut out = BTreeMap::new();
    {
        let mut stream = s
            .uid_fetch("1:*", "(UID BODY.PEEK[])")
            .await
            .expect("fetch");
        while let Some(f) = stream.next().await {
            let f = f.expect("fetch item");
            if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                out.insert(
                    i64::from(uid),
                    hex::encode(daygle::archive::blobs::sha256(body)),
                );
            }
        }
    }
    let _ = s.logout().await;
    out
}

/// An IMAP session as `user` (password `<user>-pw`) on the Dovecot at `port`.
pub async fn session(port: u16, user: &str) -> imap::Session {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: user.into(),
        pinned_cert_sha256: None,
    };
    imap::connect(&ep, &Zeroizing::new(format!("{user}-pw")), timeouts())
        .await
        .expect("test session")
}

/// uid → hex SHA-256 of what the archive holds for this account folder (any database).
pub async fn archived_in(pool: &PgPool, account_id: i64, folder: &str) -> BTreeMap<i64, String> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT uid, blob_sha256 FROM messages WHERE account_id = $1 AND folder = $2",
    )
    .bind(account_id)
    .bind(folder)
    .fetch_all(pool)
    .await
    .expect("archived");
    let mut map = BTreeMap::new();
    for (uid, sha) in rows {
        assert!(
            map.insert(uid, hex::encode(sha)).is_none(),
            "uid {uid} archived twice"
        );
    }
    map
}

/// An IMAP account on the Dovecot at `port` for `user`, polled every 10 s.
pub fn imap_account(name: &str, port: u16, user: &str) -> ImapSettings {
    ImapSettings {
        name: name.into(),
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: user.into(),
        folders_include: vec![],
        folders_exclude: vec!["Trash".into(), "Junk".into(), "Spam".into()],
        poll_interval_secs: 10,
        delete_after_days: None,
        expunge: true,
        pinned_cert_sha256: None,
    }
}

pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(10),
        command: Duration::from_secs(60),
    }
}

/// A realistic small message with a fresh Message-ID.
pub fn message(tag: &str, i: usize) -> Vec<u8> {
    format!(
        "Message-ID: <{tag}-{i}@test.example>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: Sender {i} <sender{i}@example.org>\r\nTo: alice@example.com\r\nSubject: {tag} message {i}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, this is {tag} number {i}. Quarterly figures attached.\r\n"
    )
    .into_bytes()
}

pub fn messages(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| message(tag, i)).collect()
}

/// Message `i` of a series whose attachments come from `distinct` different files (12 KB each,
/// incompressible), so that many messages share each one — stored once by the archive.
pub fn with_shared_attachment(tag: &str, i: usize, distinct: usize) -> Vec<u8> {
    let which = i % distinct;
    let mut x = (which as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let file: Vec<u8> = (0..12_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    mail_builder::MessageBuilder::new()
        .from(("Ann", "ann@example.org"))
        .to("bob@example.org")
        .subject(format!("{tag} report {i}"))
        .message_id(format!("{tag}-{i}@test.example"))
        .text_body(format!("Report {i}, file {which}."))
        .attachment("application/pdf", format!("report-{which}.pdf"), file)
        .write_to_vec()
        .expect("build message")
}

/// A message with a PDF-ish attachment, built with mail-builder.
pub fn with_attachment(tag: &str) -> Vec<u8> {
    mail_builder::MessageBuilder::new()
        .from(("Ann", "ann@example.org"))
        .to("bob@example.org")
        .subject(format!("{tag} invoice"))
        .message_id(format!("{tag}@test.example"))
        .text_body("Please find the invoice attached.")
        .attachment(
            "application/pdf",
            "invoice-2024.pdf",
            b"%PDF-1.4 fake".as_slice(),
        )
        .write_to_vec()
        .expect("build message")
}

pub const OLD: Duration = Duration::from_secs(30 * 86400);
pub const NEW: Duration = Duration::from_secs(0);
