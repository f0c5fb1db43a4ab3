//! The private PostgreSQL dying (SIGKILL, as a crash or the OOM killer would do it) under a
//! running `daygle serve` and under a command, with a sync against real Dovecot in flight.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::support::*;
use crate::common::dovecot::Dovecot;
use crate::common::process::{Server, daygle, http_get, postgres_processes, shared_tempdir};
use daygle::ingest::accounts;
use daygle::secrets::Keys;

/// A pool on the private cluster under `data` (its socket; the test runs as its owner or root).
fn cluster_pool(data: &Path) -> PgPool {
    let options = PgConnectOptions::new()
        .socket(data.join("postgres"))
        .port(5432)
        .username("daygle")
        .database("daygle");
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options)
}

/// `SELECT count(*)`, or -1 while the database does not answer.
async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(-1)
}

async fn wait_for_count(pool: &PgPool, sql: &str, at_least: i64, limit: Duration) {
    let started = Instant::now();
    while count(pool, sql).await < at_least {
        assert!(
            started.elapsed() < limit,
            "`{sql}` did not reach {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILL to the postmaster of the private cluster under `data`.
fn kill_postmaster(data: &Path) {
    let text =
        std::fs::read_to_string(data.join("postgres/data/postmaster.pid")).expect("pid file");
    let pid: i32 = text.lines().next().unwrap().trim().parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the postmaster");
}

async fn readyz(url: &str) -> (u16, String) {
    let url = format!("{url}/readyz");
    tokio::task::spawn_blocking(move || http_get(&url))
        .await
        .expect("readyz")
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_restarts_its_killed_cluster_and_mail_keeps_arriving_hash_equal() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("alice", "alice-pw");
    dovecot.write_messages("alice", "INBOX", &messages("before", 3000), NEW);
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let server = tokio::task::block_in_place(|| {
        Server::start(
            dir.path(),
            &data,
            &[
                ("DAYGLE__SYNC__BATCH_MESSAGES", "20"),
                ("DAYGLE__LOGGING__LEVEL", "info"),
            ],
        )
    });
    let pool = cluster_pool(&data);
    let keys = Keys::load(&Default::default(), &data).expect("the server's keys");
    let mut tx = pool.begin().await.expect("tx");
    let id = accounts::create_imap(
        &mut tx,
        &keys.sealing,
        &imap_account("Alice", dovecot.port, "alice"),
        "alice-pw",
    )
    .await
    .expect("account");
    tx.commit().await.expect("commit");

    // Mid-sync: some batches committed, most still to come.
    wait_for_count(
        &pool,
        "SELECT count(*) FROM messages",
        300,
        Duration::from_secs(120),
    )
    .await;
    kill_postmaster(&data);
    let killed = Instant::now();

    let (mut down_seen, mut supervisor_seen) = (None, false);
    let recovered = loop {
        let (status, body) = readyz(&server.url).await;
        if status == 503 {
            down_seen = down_seen.or(Some(killed.elapsed()));
            // The supervisor's own account of it, once it noticed.
            supervisor_seen |= body.contains("exited; restarting it");
        }
        if status == 200 {
            // The supervisor's own account of it: on /readyz while it restarted (when a poll
            // fell in that window; on a quiet machine the restart can be quicker than a poll),
            // or the outage it records once the database is back.
            let recorded = count(
                &pool,
                "SELECT count(*) FROM database_outages WHERE detail LIKE '%exited%'",
            )
            .await;
            if supervisor_seen || recorded > 0 {
                break killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "not ready again within 60 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("cluster killed: /readyz 503 after {down_seen:?}, 200 again after {recovered:?}");

    // New mail after the outage arrives too, without anyone restarting anything.
    dovecot.write_messages("alice", "INBOX", &messages("after", 50), NEW);
    let started = Instant::now();
    loop {
        let server_side = server_hashes(dovecot.port, "alice", "INBOX").await;
        if count(&pool, "SELECT count(*) FROM messages").await == 3050
            && archived_in(&pool, id, "INBOX").await == server_side
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the archive never caught up after the outage"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "archive hash-equal to the server {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM blobs").await, 3050);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM database_outages").await,
        1,
        "the outage is recorded for the dashboard"
    );
    pool.close().await;

    server.signal(Signal::SIGTERM);
    let (code, log) = tokio::task::block_in_place(|| server.wait(Duration::from_secs(30)));
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|l| l.contains("restarting the private PostgreSQL cluster")),
        "{}",
        log.join("\n")
    );
    assert!(postgres_processes(&data).is_empty());
}

/// `daygle …` in `dir` on the data directory `data`.
fn command(dir: &Path, data: &Path) -> Command {
    let mut cmd = daygle(dir);
    cmd.arg("--data-dir").arg(data);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_whose_cluster_dies_stops_within_seconds_with_one_sentence() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("alice", "alice-pw");
    dovecot.write_messages("alice", "INBOX", &messages("cli", 3000), NEW);
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let port = dovecot.port.to_string();
    let mut add = command(dir.path(), &data)
        .args(["account", "add", "--name", "Alice", "--host", "127.0.0.1"])
        .args(["--port", &port, "--tls", "none", "--username", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("account add");
    add.stdin.take().unwrap().write_all(b"alice-pw\n").unwrap();
    assert!(add.wait().unwrap().success());

    let mut sync = command(dir.path(), &data)
        .args(["sync", "--once"])
        .env("DAYGLE__SYNC__BATCH_MESSAGES", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sync --once");
    let pool = cluster_pool(&data);
    wait_for_count(
        &pool,
        "SELECT count(*) FROM messages",
        200,
        Duration::from_secs(120),
    )
    .await;
    pool.close().await;
    kill_postmaster(&data);
    let killed = Instant::now();
    let out = tokio::task::block_in_place(|| {
        let started = Instant::now();
        while sync.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "sync --once still running a minute after its database died"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sync.wait_with_output().unwrap()
    });
    let took = killed.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("sync --once ended {took:?} after the kill:\n{stderr}");
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(10), "{took:?}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("database went away"), "{stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");

    // The next run starts the cluster again (crash recovery) and finishes the job.
    let again = tokio::task::block_in_place(|| {
        command(dir.path(), &data)
            .args(["sync", "--once"])
            .output()
            .unwrap()
    });
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again = tokio::task::block_in_place(|| {
        command(dir.path(), &data)
            .args(["export", "--format", "mbox", "--output", "all.mbox"])
            .output()
            .unwrap()
    });
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let mbox = std::fs::read(dir.path().join("all.mbox")).expect("export");
    let text = String::from_utf8_lossy(&mbox);
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Message-ID: <cli-"))
        .collect();
    let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 3000, "every message archived once");
    assert_eq!(distinct.len(), 3000, "every message archived once");
    assert!(postgres_processes(&data).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_database_url_serve_reports_the_outage_and_reconnects_when_it_is_back() {
    use daygle::db::Cluster;
    // "Someone else's" PostgreSQL: a cluster this test runs, reached through database.url.
    let dir = shared_tempdir();
    let cluster = Cluster::new(&dir.path().join("pg"), "", "postgres").expect("PostgreSQL");
    let started = cluster.clone();
    tokio::task::spawn_blocking(move || {
        started.init()?;
        started.start()
    })
    .await
    .unwrap()
    .expect("start the outside PostgreSQL");
    daygle::db::create_database_if_missing(&cluster.connect_options("postgres"), "daygle")
        .await
        .expect("create database");
    let url = format!(
        "postgres://daygle@localhost/daygle?host={}",
        cluster.root().display()
    );
    let data = dir.path().join("data");
    let server = tokio::task::block_in_place(|| {
        Server::start(
            dir.path(),
            &data,
            &[("DAYGLE__DATABASE__URL", url.as_str())],
        )
    });
    assert_eq!(readyz(&server.url).await.0, 200);

    let pid = cluster.postmaster_pid().expect("postmaster pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL");
    let killed = Instant::now();
    loop {
        let (status, body) = readyz(&server.url).await;
        if status == 503 && body.contains("reconnecting") {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "/readyz never reported the outage: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("outage reported after {:?}", killed.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !cluster.is_running(),
        "daygle must not start a server it does not own"
    );

    let restarted = cluster.clone();
    tokio::task::spawn_blocking(move || restarted.start())
        .await
        .unwrap()
        .expect("the operator starts PostgreSQL again");
    let back = Instant::now();
    loop {
        if readyz(&server.url).await.0 == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(40),
            "no reconnect within 40 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("ready again {:?} after PostgreSQL was", back.elapsed());

    server.signal(Signal::SIGTERM);
    let (code, log) = tokio::task::block_in_place(|| server.wait(Duration::from_secs(30)));
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("database reachable again")),
        "{}",
        log.join("\n")
    );
    let stopped = cluster.clone();
    tokio::task::spawn_blocking(move || stopped.stop())
        .await
        .unwrap()
        .expect("stop");
}
