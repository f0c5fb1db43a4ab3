//! Several `daygle serve` processes on one PostgreSQL: one web process and two workers share
//! twenty Dovecot accounts through leases; a worker killed mid-sync hands its accounts (and,
//! being the leader, the leader jobs) to the other within the lease time, and every message
//! is archived exactly once.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::PgPool;
use uuid::Uuid;

use super::support::*;
use crate::common::dovecot::Dovecot;
use crate::common::process::{Server, daygle, http_get, shared_tempdir};
use crate::common::{self};
use daygle::ingest::{accounts, leases};
use daygle::secrets::Keys;

const ACCOUNTS: usize = 20;
const PER_ACCOUNT: usize = 150;
const LEASE_SECS: u64 = 5;

fn start(dir: &std::path::Path, database_url: &str, role: &str) -> Server {
    let lease = LEASE_SECS.to_string();
    Server::start(
        dir,
        &dir.join("data"),
        &[
            ("DAYGLE__DATABASE__URL", database_url),
            ("DAYGLE__SERVER__ROLE", role),
            ("DAYGLE__WORKERS__LEASE_SECS", &lease),
            ("DAYGLE__SYNC__BATCH_MESSAGES", "10"),
            ("DAYGLE__SYNC__CONCURRENCY", "3"),
            ("DAYGLE__DATABASE__MAX_CONNECTIONS", "8"),
            ("DAYGLE__LOGGING__LEVEL", "info"),
        ],
    )
}

/// The process id `serve` registered for the child `pid`.
async fn process_id(pool: &PgPool, pid: u32) -> Uuid {
    sqlx::query_scalar("SELECT id FROM processes WHERE pid = $1 AND stopped_at IS NULL")
        .bind(pid as i32)
        .fetch_one(pool)
        .await
        .expect("the process registered itself")
}

/// account id → holder of its live lease.
async fn holders(pool: &PgPool) -> BTreeMap<i64, Option<Uuid>> {
    leases::account_holders(pool)
        .await
        .expect("leases")
        .into_iter()
        .collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_twenty_accounts_and_a_killed_one_hands_over_within_the_lease() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    let database_url = common::pg::fresh_database().await;
    let pool = common::pg::migrated_pool(&database_url).await;
    let dir = shared_tempdir();
    let web = tokio::task::block_in_place(|| start(dir.path(), &database_url, "web"));
    let keys = Keys::load(&Default::default(), &dir.path().join("data")).expect("keys");
    let mut ids = Vec::new();
    for n in 0..ACCOUNTS {
        let user = format!("user{n:02}");
        dovecot.add_user(&user, &format!("{user}-pw"));
        dovecot.write_messages(&user, "INBOX", &messages(&user, PER_ACCOUNT), NEW);
        let mut tx = pool.begin().await.expect("tx");
        let id = accounts::create_imap(
            &mut tx,
            &keys.sealing,
            &imap_account(&user, dovecot.port, &user),
            &format!("{user}-pw"),
        )
        .await
        .expect("account");
        tx.commit().await.expect("commit");
        ids.push((id, user));
    }

    let (a, b) = tokio::task::block_in_place(|| {
        (
            start(dir.path(), &database_url, "worker"),
            start(dir.path(), &database_url, "worker"),
        )
    });
    let (web_id, a_id, b_id) = (
        process_id(&pool, web.child.id()).await,
        process_id(&pool, a.child.id()).await,
        process_id(&pool, b.child.id()).await,
    );

    // Both workers hold a share; the web process holds nothing; one leader among the workers.
    let started = Instant::now();
    let leader = loop {
        let h = holders(&pool).await;
        let of = |p: Uuid| h.values().filter(|x| **x == Some(p)).count();
        let leader = leases::leader(&pool).await.expect("leader");
        if let Some(leader) = leader
            && of(a_id) == ACCOUNTS / 2
            && of(b_id) == ACCOUNTS / 2
        {
            assert_eq!(of(web_id), 0);
            break leader;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the workers never split the accounts: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        leader == a_id || leader == b_id,
        "a worker leads, not the web process"
    );
    let out = tokio::task::block_in_place(|| {
        daygle(dir.path())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("workers")
            .env("DAYGLE__DATABASE__URL", &database_url)
            .output()
            .expect("daygle workers")
    });
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    let lines: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("process "))
        .collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(", leader)")).count(),
        1,
        "{listing}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("role worker") && l.contains("user"))
            .count(),
        2,
        "both workers hold accounts: {listing}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("role web") && l.ends_with("no accounts")),
        "{listing}"
    );
    let (victim, survivor, survivor_id) = if leader == a_id {
        (a, b, b_id)
    } else {
        (b, a, a_id)
    };

    // Kill the leader while it is syncing one of its accounts.
    let total = (ACCOUNTS * PER_ACCOUNT) as i64;
    let started = Instant::now();
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workers w JOIN account_leases l ON l.account_id = w.account_id
             WHERE w.state = 'running' AND l.holder = $1",
        )
        .bind(leader)
        .fetch_one(&pool)
        .await
        .expect("running");
        let archived = count(&pool, "SELECT count(*) FROM messages").await;
        if running > 0 && archived >= total / 4 {
            break;
        }
        assert!(archived < total, "everything was archived before the kill");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no sync running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victims: HashSet<i64> = holders(&pool)
        .await
        .into_iter()
        .filter(|(_, h)| *h == Some(leader))
        .map(|(id, _)| id)
        .collect();
    let archived_at_kill = count(&pool, "SELECT count(*) FROM messages").await;
    victim.signal(Signal::SIGKILL);
    let killed = Instant::now();
    let (code, victim_log) = tokio::task::block_in_place(|| victim.wait(Duration::from_secs(10)));
    assert_eq!(code, None, "killed by a signal");

    // Its accounts move to the survivor, and so does the leader lease.
    let (accounts_moved, leader_moved) = {
        let (mut accounts_moved, mut leader_moved) = (None, None);
        while accounts_moved.is_none() || leader_moved.is_none() {
            let h = holders(&pool).await;
            if accounts_moved.is_none() && victims.iter().all(|id| h[id] == Some(survivor_id)) {
                accounts_moved = Some(killed.elapsed());
            }
            if leader_moved.is_none()
                && leases::leader(&pool).await.expect("leader") == Some(survivor_id)
            {
                leader_moved = Some(killed.elapsed());
            }
            assert!(
                killed.elapsed() < Duration::from_secs(LEASE_SECS * 4),
                "no failover within {}s: {h:?}",
                LEASE_SECS * 4
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (accounts_moved.unwrap(), leader_moved.unwrap())
    };
    eprintln!(
        "killed the leader with {} of {total} archived: its {} accounts moved after {accounts_moved:?}, the leader lease after {leader_moved:?} (lease {LEASE_SECS} s)",
        archived_at_kill,
        victims.len()
    );
    // Renewed every third of the lease: a lease expires at most one lease after the kill, and
    // the survivor sees it at its next renewal.
    let bound = Duration::from_millis(LEASE_SECS * 1000 * 5 / 3 + 1000);
    assert!(accounts_moved <= bound, "{accounts_moved:?} > {bound:?}");
    assert!(leader_moved <= bound, "{leader_moved:?} > {bound:?}");

    // Everything arrives, exactly once, hash-equal to the server.
    let started = Instant::now();
    while count(&pool, "SELECT count(*) FROM messages").await < total {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the survivor never finished"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM messages").await, total);
    assert_eq!(count(&pool, "SELECT count(*) FROM blobs").await, total);
    for (id, user) in &ids {
        assert_eq!(
            archived_in(&pool, *id, "INBOX").await,
            server_hashes(dovecot.port, user, "INBOX").await,
            "{user}"
        );
    }

    // Leader jobs started in one process at a time: the killed leader, then the survivor.
    let became_leader = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("this process is now the leader"))
            .count()
    };
    assert_eq!(became_leader(&victim_log), 1);
    survivor.signal(Signal::SIGTERM);
    web.signal(Signal::SIGTERM);
    let (code, survivor_log) =
        tokio::task::block_in_place(|| survivor.wait(Duration::from_secs(30)));
    assert_eq!(code, Some(0), "{}", survivor_log.join("\n"));
    assert_eq!(
        became_leader(&survivor_log),
        1,
        "{}",
        survivor_log.join("\n")
    );
    let (code, web_log) = tokio::task::block_in_place(|| web.wait(Duration::from_secs(30)));
    assert_eq!(code, Some(0));
    assert_eq!(became_leader(&web_log), 0);
    // A graceful stop gives its leases back at once.
    assert_eq!(
        holders(&pool)
            .await
            .values()
            .filter(|h| h.is_some())
            .count(),
        0
    );
    assert_eq!(leases::leader(&pool).await.expect("leader"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_answers_only_the_probes() {
    let database_url = common::pg::fresh_database().await;
    let _pool = common::pg::migrated_pool(&database_url).await;
    let dir = shared_tempdir();
    let worker = tokio::task::block_in_place(|| start(dir.path(), &database_url, "worker"));
    let url = worker.url.clone();
    let (ready, login) = tokio::task::spawn_blocking(move || {
        (
            http_get(&format!("{url}/readyz")),
            http_get(&format!("{url}/login")),
        )
    })
    .await
    .unwrap();
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(login.0, 404, "the UI lives in web processes");
    worker.signal(Signal::SIGTERM);
    let (code, _) = tokio::task::block_in_place(|| worker.wait(Duration::from_secs(30)));
    assert_eq!(code, Some(0));
}
