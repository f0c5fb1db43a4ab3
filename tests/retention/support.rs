//! A migrated database, accounts, and mail stored through the real ingest pipeline.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::common::{self, mail::Mail};
use daygle::audit::Actor;
pub use daygle::auth::Grants;
use daygle::ingest::pipeline::{self, Batch, Incoming};
use daygle::retention::{Plan, holds, policies, preview, purge};

pub struct Env {
    pub pool: PgPool,
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
}

pub async fn env() -> Env {
    let (_, data_dir, database_url) = common::test_settings().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&database_url)
        .await
        .expect("connect");
    daygle::db::migrate(&pool).await.expect("migrate");
    Env {
        pool,
        database_url,
        data_dir,
    }
}

pub fn actor() -> Actor {
    Actor {
        username: "test-operator".into(),
        ..Actor::default()
    }
}

/// Unix time `days` days ago.
pub fn days_ago(days: i64) -> i64 {
    (OffsetDateTime::now_utc() - time::Duration::days(days)).unix_timestamp()
}

/// One message to store: subject, sender address, age in days.
pub struct Msg<'a> {
    pub subject: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub age_days: i64,
}

pub fn raw(m: &Msg<'_>, unique: &str) -> Vec<u8> {
    common::mail::build(&Mail {
        from: ("Sender", m.from),
        to: m.to,
        subject: m.subject,
        body: &format!("Body of {} ({unique}).", m.subject),
        date: days_ago(m.age_days),
        message_id: &format!("{unique}@test.example"),
        ..Mail::default()
    })
}

impl Env {
    pub async fn account(&self, name: &str) -> i64 {
        sqlx::query_scalar("INSERT INTO accounts (name, kind) VALUES ($1, 'imap') RETURNING id")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .expect("insert account")
    }

    /// Stores raw messages in `folder` with UIDs from `first_uid`; returns their ids in order.
    pub async fn store_raw(
        &self,
        account: i64,
        folder: &str,
        first_uid: i64,
        raws: Vec<Vec<u8>>,
    ) -> Vec<i64> {
        let n = raws.len() as i64;
        let messages = raws
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Incoming {
                uid: Some(first_uid + i as i64),
                raw,
                internal_date: None,
                flags: Vec::new(),
            })
            .collect();
        pipeline::store(
            &self.pool,
            3,
            Batch {
                account_id: account,
                folder: folder.into(),
                uidvalidity: Some(1),
                messages,
                ledger: Vec::new(),
                advance_to: Some(first_uid + n - 1),
            },
        )
        .await
        .expect("store batch");
        sqlx::query_scalar(
            "SELECT id FROM messages WHERE account_id = $1 AND folder = $2
               AND uid BETWEEN $3 AND $4 ORDER BY uid",
        )
        .bind(account)
        .bind(folder)
        .bind(first_uid)
        .bind(first_uid + n - 1)
        .fetch_all(&self.pool)
        .await
        .expect("ids")
    }

    /// Stores one message; returns its id.
    pub async fn store(&self, account: i64, folder: &str, uid: i64, m: &Msg<'_>) -> i64 {
        let unique = format!("a{account}-{folder}-{uid}");
        self.store_raw(account, folder, uid, vec![raw(m, &unique)])
            .await[0]
    }

    pub async fn ids(&self) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("ids")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }

    pub async fn policy(
        &self,
        name: &str,
        keep_days: i32,
        accounts: &[i64],
        folder: Option<&str>,
        query: Option<&str>,
    ) -> i64 {
        policies::save(
            &self.pool,
            &actor(),
            &Grants::All,
            None,
            &policies::PolicyInput {
                name: name.into(),
                account_ids: accounts.to_vec(),
                folder_pattern: folder.map(str::to_string),
                query: query.map(str::to_string),
                keep_days,
                age_basis: "message".into(),
                enabled: true,
            },
        )
        .await
        .expect("save policy")
    }

    pub async fn hold(&self, name: &str, accounts: &[i64], query: Option<&str>) -> i64 {
        holds::place(
            &self.pool,
            &actor(),
            &Grants::All,
            &holds::HoldInput {
                name: name.into(),
                reason: "litigation".into(),
                account_ids: accounts.to_vec(),
                query: query.map(str::to_string),
                date_from: None,
                date_to: None,
            },
        )
        .await
        .expect("place hold")
    }

    pub async fn plan(&self) -> Plan {
        Plan::current(&self.pool, &Grants::All).await.expect("plan")
    }

    pub async fn matching(&self, plan: &Plan) -> Vec<i64> {
        preview::matching_ids(&self.pool, plan)
            .await
            .expect("matching ids")
    }

    pub async fn purge(&self, plan: &Plan) -> purge::PurgeReport {
        purge::purge(
            &self.pool,
            &actor(),
            plan,
            Some(&plan.fingerprint()),
            7,
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("purge")
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("audit")
    }
}
