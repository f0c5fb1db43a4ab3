use std::process::Stdio;
use std::time::Duration;

use super::support::*;
use crate::common::process::daygle;

/// `n` messages in `account` dated `age_days` ago, written straight into the tables (the
/// pipeline is tested elsewhere; this needs tens of thousands quickly). Each has its own blob.
async fn bulk(env: &Env, account: i64, tag: &str, n: i64, age_days: i64) {
    sqlx::query(
        "WITH b AS (
             INSERT INTO blobs (sha256, size, zstd)
             SELECT sha256(convert_to($2 || i, 'UTF8')), 100, '\\x00'::bytea FROM generate_series(1, $3) i
             RETURNING sha256)
         INSERT INTO messages (account_id, folder, uidvalidity, uid, blob_sha256, subject, date, size, search)
         SELECT $1, 'INBOX', 1, row_number() OVER () + (SELECT coalesce(max(uid), 0) FROM messages WHERE account_id = $1),
                sha256, $2, now() - make_interval(days => $4), 100, to_tsvector('simple', $2)
         FROM b",
    )
    .bind(account)
    .bind(tag)
    .bind(n)
    .bind(age_days as i32)
    .execute(&env.pool)
    .await
    .expect("bulk insert");
}

fn purge_cmd(env: &Env) -> std::process::Command {
    let mut cmd = daygle(env.data_dir.path());
    cmd.env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
        .env("DAYGLE__RETENTION__BATCH_SIZE", "250")
        .env("DAYGLE__LOGGING__LEVEL", "warn")
        .args(["retention", "run", "--yes"]);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_killed_mid_run_and_run_again_removes_exactly_what_is_in_scope() {
    let env = env().await;
    let (scope, held, other) = (
        env.account("Scope").await,
        env.account("Held").await,
        env.account("Other").await,
    );
    bulk(&env, scope, "old", 20_000, 400).await;
    bulk(&env, scope, "young", 2_000, 10).await;
    bulk(&env, held, "held", 2_000, 400).await;
    bulk(&env, other, "out of scope", 2_000, 400).await;
    env.policy("one year", 365, &[scope, held], None, None)
        .await;
    env.hold("lawsuit", &[held], None).await;

    let mut child = purge_cmd(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start purge");
    loop {
        let left = env.count("SELECT count(*) FROM messages WHERE account_id IN (SELECT id FROM accounts WHERE name = 'Scope')").await;
        if left <= 22_000 - 1_000 {
            break;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the purge ended before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let partial = env
        .count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {scope} AND subject = 'old'"
        ))
        .await;
    assert!(
        partial > 0 && partial < 20_000,
        "killed mid-run: {partial} of 20000 left"
    );

    // The killed process's session may hold the purge lock for a moment.
    let mut out = None;
    for _ in 0..50 {
        let o = purge_cmd(&env).output().expect("run purge again");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if !text.contains("already running") {
            assert!(o.status.success(), "{text}");
            out = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = out.expect("the killed purge's lock was released");
    assert!(out.contains(&format!("purged {partial} messages")), "{out}");

    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {scope} AND subject = 'old'"
        ))
        .await,
        0
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {scope} AND subject = 'young'"
        ))
        .await,
        2_000
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {held}"
        ))
        .await,
        2_000
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {other}"
        ))
        .await,
        2_000
    );
    assert_eq!(
        env.count("SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_sha256 = b.sha256)").await,
        0,
        "every purged message's blob went with it, also in the killed run"
    );
    assert_eq!(
        env.count("SELECT sum(messages)::bigint FROM deletion_stats WHERE cause = 'retention'")
            .await,
        20_000,
        "the statistics count each message once"
    );
}
