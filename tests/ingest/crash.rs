use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::*;
use crate::common::daygle_bin;

fn daygle(env: &Env, batch: usize) -> Command {
    let mut cmd = Command::new(daygle_bin());
    cmd.current_dir(env.data_dir.path())
        .env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
        .env("DAYGLE__SYNC__BATCH_MESSAGES", batch.to_string())
        .env("DAYGLE__LOGGING__LEVEL", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs `daygle sync --once` until it is not turned away by the previous run's lock (the
/// killed process's database session may take a moment to end).
fn sync_to_completion(env: &Env) -> String {
    for _ in 0..50 {
        let out = daygle(env, 25)
            .args(["sync", "--once"])
            .output()
            .expect("run daygle sync");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "sync failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !stdout.contains("already being synced") {
            return stdout;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the lock of the killed process was never released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_batch_and_restarted_ends_with_exactly_the_servers_messages() {
    let env = env().await;
    let account = env.account("Big", "alice").await;
    let total = 4000;
    env.dovecot
        .write_messages("alice", "INBOX", &messages("crash", total), NEW);
    // Work: 500 messages sharing 7 attachments, stored once each (#14).
    let work: Vec<Vec<u8>> = (0..500)
        .map(|i| with_shared_attachment("crash-work", i, 7))
        .collect();
    env.dovecot.write_messages("alice", "Work", &work, NEW);

    let mut child = daygle(&env, 25)
        .args(["sync", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daygle sync");
    loop {
        let n = env.count("SELECT count(*) FROM messages").await;
        if n >= 300 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sync ended before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    child.wait().expect("reap");
    let partial = env.count("SELECT count(*) FROM messages").await;
    assert!(
        partial < (total + 500) as i64,
        "killed mid-way ({partial} archived)"
    );

    let env_ref = &env;
    let out = tokio::task::block_in_place(|| sync_to_completion(env_ref));
    assert!(out.contains("Big:"), "{out}");

    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    assert_eq!(
        env.archived(account.id, "Work").await,
        env.server("alice", "Work").await
    );
    assert_eq!(
        env.count("SELECT count(*) FROM messages").await,
        (total + 500) as i64
    );
    assert_eq!(
        env.count("SELECT count(*) FROM blobs").await,
        (total + 500) as i64
    );
    // The shared attachments: each stored once, referenced by every message that has it, and
    // every message of the folder reassembles to the server's bytes.
    assert_eq!(env.count("SELECT count(*) FROM parts").await, 7);
    assert_eq!(env.count("SELECT count(*) FROM blob_parts").await, 500);
    let mut conn = env.pool.acquire().await.expect("conn");
    for sha in env.archived(account.id, "Work").await.values() {
        let sha: [u8; 32] = hex::decode(sha).unwrap().try_into().unwrap();
        let raw = daygle::archive::blobs::read_verified(&mut conn, &sha)
            .await
            .expect("read")
            .expect("reassembles and verifies");
        assert_eq!(daygle::archive::blobs::sha256(&raw), sha);
    }
}
